"""Distances between a reference and a generated distribution: separation power and Jensen-Shannon divergence.

The separation power of two histograms normalised to sum 1 (CaloChallenge) is

    S = 1/2 sum_i (h1_i - h2_i)^2 / (h1_i + h2_i),

0 for identical and 1 for disjoint distributions. Bins with h1_i + h2_i = 0 add nothing.

Binning: the bins span the *reference*, so the measure answers "does the generator look like the
reference?". Values outside the reference range are not dropped (a generator that overshoots must pay):
they fall into an underflow and an overflow bin, and non-finite values (NaN, inf) into a bin of their own.
"""

import numpy as np

from caloedu.evaluation.features import FeatureDistribution, HighLevelFeatures, feature_distributions


def reference_bin_edges(reference, n_bins=50, scale="linear"):
    """``n_bins`` bin edges spanning the finite values of ``reference``, shape (n_bins + 1,).

    ``scale='log'`` gives log-spaced edges over the positive values (energies); zeros then fall
    into the underflow bin of `histogram_with_overflow`.
    """
    if scale not in ("linear", "log"):
        raise ValueError(f"scale must be 'linear' or 'log', got {scale!r}.")
    values = np.asarray(reference, dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    if scale == "log":
        values = values[values > 0]
        if values.size == 0:
            return np.logspace(-3, 0, n_bins + 1)  # any edges: all values land in under/overflow
        lo, hi = np.log10(values.min()), np.log10(values.max())
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        return np.logspace(lo, hi, n_bins + 1)
    if values.size == 0:
        return np.linspace(0.0, 1.0, n_bins + 1)
    # histogram_bin_edges widens a constant sample (an empty layer's width, all 0) to +-0.5.
    return np.histogram_bin_edges(values, bins=n_bins)


def histogram_with_overflow(values, edges):
    """Counts in [non-finite, underflow, bin_1 ... bin_n, overflow], shape (n_bins + 3,), float64.

    Each value is counted once: inner bins as in ``np.histogram`` (the last bin includes its right
    edge), values below the first edge in underflow, above the last edge in overflow.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = np.isfinite(values)
    inside, _ = np.histogram(values[finite], bins=edges)
    return np.concatenate([
        [np.count_nonzero(~finite)],
        [np.count_nonzero(values[finite] < edges[0])],
        inside,
        [np.count_nonzero(values[finite] > edges[-1])],
    ]).astype(np.float64)


def _normalised_histograms(reference, generated, bins, scale):
    edges = reference_bin_edges(reference, bins, scale) if np.ndim(bins) == 0 else np.asarray(bins, float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("bins must be a number of bins or increasing bin edges (at least two).")
    hists = []
    for what, values in (("reference", reference), ("generated", generated)):
        counts = histogram_with_overflow(values, edges)
        if counts.sum() == 0:
            raise ValueError(f"The {what} sample is empty; a distribution needs at least one value.")
        hists.append(counts / counts.sum())
    return hists


def separation_power_from_counts(counts_1, counts_2):
    """Separation power S in [0, 1] of two histograms given as counts of the same bins, shape (B,) each:
    both are normalised to sum 1, and bins empty in both add nothing."""
    h1 = np.asarray(counts_1, dtype=np.float64)
    h2 = np.asarray(counts_2, dtype=np.float64)
    h1, h2 = h1 / h1.sum(), h2 / h2.sum()
    filled = (h1 + h2) > 0
    return float(0.5 * np.sum((h1[filled] - h2[filled]) ** 2 / (h1[filled] + h2[filled])))


def separation_power(reference, generated, bins=50, scale="linear"):
    """Separation power S in [0, 1] of two samples (any shape; flattened).

    Args:
        reference, generated: the two samples.
        bins: number of bins spanning the reference (see `reference_bin_edges`), or bin edges.
        scale: 'linear' or 'log' spacing when ``bins`` is a number.
    """
    return separation_power_from_counts(*_normalised_histograms(reference, generated, bins, scale))


def jensen_shannon_divergence(reference, generated, bins=50, scale="linear"):
    """Jensen-Shannon divergence in bits (0 identical, 1 disjoint), with the binning of `separation_power`."""
    h1, h2 = _normalised_histograms(reference, generated, bins, scale)
    mixture = 0.5 * (h1 + h2)

    def kl(p, q):
        nonzero = p > 0  # 0 log 0 = 0; q > 0 wherever p > 0 since q is the mixture
        return np.sum(p[nonzero] * np.log2(p[nonzero] / q[nonzero]))

    return float(max(0.5 * kl(h1, mixture) + 0.5 * kl(h2, mixture), 0.0))


def jsd_from_bce(bce):
    """The classifier metric's JSD estimate from a binary cross-entropy in nats: (ln 2 - BCE) / ln 2.

    A classifier that cannot tell the samples apart reaches BCE = ln 2 at best, so JSD = 0; one that
    separates them perfectly reaches BCE = 0, JSD = 1.
    """
    return float((np.log(2.0) - bce) / np.log(2.0))


def _as_distributions(features):
    if isinstance(features, HighLevelFeatures):
        return feature_distributions(features)
    return list(features)


def separation_powers(reference_features, generated_features):
    """Separation power of every high-level feature: {name: S}, in the order of `feature_distributions`.

    Both arguments are `HighLevelFeatures` (of the same geometry) or lists of `FeatureDistribution`;
    the binning (number of bins, linear or log) follows each reference distribution's hint.
    """
    reference = _as_distributions(reference_features)
    generated = {dist.name: dist for dist in _as_distributions(generated_features)}
    missing = [dist.name for dist in reference if dist.name not in generated]
    if missing:
        raise ValueError(
            f"The generated features lack {', '.join(missing[:5])}: were both computed in the same geometry?"
        )
    return {
        dist.name: separation_power(dist.values, generated[dist.name].values, dist.n_bins, dist.scale)
        for dist in reference
    }


def summarise_by_group(powers, distributions):
    """Mean and max separation power per feature group ('E_layer', 'width_eta'...):
    {group: {'mean': float, 'max': float, 'worst': name}}, in the order of ``distributions``."""
    groups = {}
    for dist in distributions:
        if isinstance(dist, FeatureDistribution) and dist.name in powers:
            groups.setdefault(dist.group or dist.name, []).append(dist.name)
    summary = {}
    for group, names in groups.items():
        values = np.array([powers[name] for name in names])
        summary[group] = {
            "mean": float(values.mean()),
            "max": float(values.max()),
            "worst": names[int(values.argmax())],
            "n": len(names),
        }
    return summary


def incident_energy_test(reference_energies, generated_energies):
    """Two-sample Kolmogorov-Smirnov test of the incident energies of two files: {'statistic', 'p_value'}.

    Reference and generated showers must be compared at the same incident energies (every feature
    depends on E_inc); a small p-value (below 1e-3, say) means the two files were not made for the same
    energies, and their differences say little about the generator.
    """
    from scipy import stats

    result = stats.ks_2samp(np.ravel(reference_energies), np.ravel(generated_energies))
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue)}
