"""The numbers behind the comparison plots: display ranges and bins, normalised histograms with Poisson
uncertainties, under- and overflow, and generated / reference ratios (numpy only, no matplotlib).

Display binning is chosen for the eye and differs from the separation-power binning of
`caloedu.evaluation.metrics` (``reference_bin_edges``: ``n_bins`` bins over the reference's full range):

- the range comes from quantiles of *each* sample (0.5 % - 99.5 %, or leaving out 5 values per side
  of a sample larger than 1,000, so a handful of outliers do not squeeze the bulk while a large sample
  keeps its tails), within fences one central-90 % range beyond the 5 % and 95 % quantiles (which only
  bite on heavy tails), the union of the two samples' ranges; it extends past the reference's own range
  by at most ``max_extension`` times that range on each side (log10 of it on log axes), so a generated
  sample far off the reference ends up in the under- or overflow, where it is counted, instead of
  shrinking the reference to one bin;
- values outside the range are counted in an underflow and an overflow bin (on log axes zeros and
  negative values are underflow), non-finite values separately; fractions are normalised to all values
  of a sample, so the drawn bins plus under- and overflow sum to 1;
- features that only take values on a lattice (sparsity: multiples of 1 / voxels in the layer) get bins
  of a whole number of lattice steps with edges halfway between lattice points, so no bin is empty or
  doubly filled by aliasing.

Uncertainties are statistical: sqrt(N) per bin (Poisson) of each sample, divided by the sample size for
the normalised fraction; the ratio r = f_gen / f_ref carries the generated sample's relative error
(sigma_r = r / sqrt(N_gen)) and the reference's relative error 1 / sqrt(N_ref) is drawn as a band
around 1; the two add in quadrature for the total.
"""

import math
from dataclasses import dataclass

import numpy as np

# The display range leaves out this fraction of each sample on each side: 0.5 %, or 5 values when that is
# less (large samples, such as the voxel spectrum, then keep their tails), but at least 0.01 %.
TAIL_FRACTION, TAIL_VALUES, MIN_TAIL_FRACTION = 0.005, 5, 1e-4
# Fences for heavy tails: no display range reaches beyond the 5 % and 95 % quantiles by more than this many
# central-90 % ranges.
FENCE = 1.0
# How far (in units of the reference's quantile range) the display may extend beyond the reference.
MAX_EXTENSION = 1.0
# Values are taken for a lattice k * d only when the range holds at most this many steps d.
MAX_LATTICE_STEPS = 10_000


def _finite(values):
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return values[np.isfinite(values)]


def tail_fraction(n_values):
    """The fraction of a sample of ``n_values`` left out of the display range on each side."""
    return min(TAIL_FRACTION, max(MIN_TAIL_FRACTION, TAIL_VALUES / max(n_values, 1)))


def _quantile_range(values, tail=None):
    """(low, high) quantiles leaving out ``tail`` (default `tail_fraction`) on each side, within fences
    one central-90 % range beyond the 5 % and 95 % quantiles (when those differ). The quantiles never
    interpolate towards an extreme value: the lower one rounds up, the upper one rounds down, so a single
    outlier is ignored even in a small sample. The fences matter only for heavy tails (the centre of
    energy of deep layers: a core with tails ten times wider), whose core then fills the range; for a
    Gaussian they lie at 4.9 sigma, beyond the quantiles."""
    tail = tail_fraction(values.size) if tail is None else tail
    low = float(np.quantile(values, tail, method="higher"))
    high = float(np.quantile(values, 1 - tail, method="lower"))
    q05, q95 = np.quantile(values, [0.05, 0.95])
    if q95 > q05:
        reach = FENCE * (q95 - q05)
        low, high = max(low, q05 - reach), min(high, q95 + reach)
    return low, high


def display_range(reference, generated, scale="linear", tail=None, max_extension=MAX_EXTENSION):
    """The x range (low, high) to draw two samples on (see the module docstring).

    Args:
        reference, generated: the samples, any shape (flattened); non-finite values are ignored.
        scale: 'linear' or 'log' (then only positive values count and the range is positive).
        tail: the fraction of each sample left out on each side (default: `tail_fraction` of its size,
            0.5 % for samples up to 1,000 values).
        max_extension: the range reaches at most this many reference ranges beyond the reference's.
    Returns:
        (low, high) with low < high.
    """
    log = scale == "log"
    samples = []
    for values in (reference, generated):
        values = _finite(values)
        if log:
            values = np.log10(values[values > 0])
        samples.append(values)
    ranges = [_quantile_range(values, tail) if values.size else None for values in samples]
    if ranges[0] is None and ranges[1] is None:
        low, high = (-3.0, 0.0) if log else (0.0, 1.0)
    elif ranges[0] is None:
        low, high = ranges[1]
    else:
        ref_low, ref_high = ranges[0]
        low, high = ref_low, ref_high
        if ranges[1] is not None:
            reach = max_extension * max(ref_high - ref_low, _degenerate_width(ref_low, log))
            low = max(min(ref_low, ranges[1][0]), ref_low - reach)
            high = min(max(ref_high, ranges[1][1]), ref_high + reach)
    if high - low <= 1e-12 * max(1.0, abs(low)):
        half = 0.5 * _degenerate_width(low, log)
        low, high = low - half, high + half
    return (10.0**low, 10.0**high) if log else (low, high)


def _degenerate_width(centre, log):
    """The range given to a sample of one value: one decade on log axes, else 1 (or 10 % of it)."""
    if log:
        return 1.0
    return max(1.0, 0.1 * abs(centre)) if centre != 0 else 1.0


def _lattice_step(values, low, high):
    """The step d when all values in [low, high] are k * d (d > 0) and that gives few enough bins, else None."""
    inside = np.unique(values[(values >= low) & (values <= high)])
    if inside.size < 2:
        return None
    step = float(np.min(np.diff(inside)))
    if step <= 0 or (high - low) / step > MAX_LATTICE_STEPS:
        return None
    multiples = inside / step
    if np.max(np.abs(multiples - np.round(multiples))) > 1e-6 * max(1.0, np.max(np.abs(multiples))):
        return None
    return step


def display_bin_edges(reference, generated, n_bins=50, scale="linear", **range_options):
    """Bin edges (n + 1,) for drawing two samples: ``n_bins`` equal bins (log-spaced for ``scale='log'``)
    over `display_range`; for a feature that only takes values k * d (sparsity), at most ``n_bins`` bins of
    a whole number of steps d each, with edges halfway between lattice points (so no bin is empty by
    aliasing)."""
    low, high = display_range(reference, generated, scale, **range_options)
    if scale == "log":
        return np.logspace(np.log10(low), np.log10(high), n_bins + 1)
    values = np.concatenate([_finite(reference), _finite(generated)])
    step = _lattice_step(values, low, high)
    if step is not None:
        first, last = np.round(low / step), np.round(high / step)
        n_steps = int(last - first) + 1
        stride = math.ceil(n_steps / n_bins)
        return (first - 0.5 + stride * np.arange(math.ceil(n_steps / stride) + 1)) * step
    return np.linspace(low, high, n_bins + 1)


def display_n_bins(n_bins, n_reference, n_generated):
    """The number of drawn bins: the hint ``n_bins``, fewer for small samples (1.5 x the Rice rule 2 N^(1/3)
    of the smaller sample, at least 10: 38 bins for 2,000 showers) so the bins are not dominated by noise."""
    smallest = max(1, min(n_reference, n_generated))
    return int(min(n_bins, max(10, round(3 * smallest ** (1 / 3)))))


@dataclass(frozen=True)
class SampleHistogram:
    """Counts of one sample in bins ``edges`` (n + 1,): ``counts`` (n,), ``underflow``, ``overflow``,
    ``nonfinite`` and the sample size ``total`` (all values, so fractions of all bins sum to 1)."""

    edges: np.ndarray
    counts: np.ndarray
    underflow: int
    overflow: int
    nonfinite: int
    total: int

    @classmethod
    def of(cls, values, edges):
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        finite = values[np.isfinite(values)]
        counts, _ = np.histogram(finite, bins=edges)
        return cls(np.asarray(edges, dtype=np.float64), counts.astype(np.float64),
                   int(np.count_nonzero(finite < edges[0])), int(np.count_nonzero(finite > edges[-1])),
                   int(values.size - finite.size), int(values.size))

    def _per_total(self, x):
        return np.asarray(x, dtype=np.float64) / max(self.total, 1)

    @property
    def fractions(self):
        """Fraction of the sample in each bin, (n,)."""
        return self._per_total(self.counts)

    @property
    def errors(self):
        """Poisson uncertainty of each fraction, sqrt(N) / total, (n,)."""
        return self._per_total(np.sqrt(self.counts))

    @property
    def underflow_fraction(self):
        return float(self._per_total(self.underflow))

    @property
    def overflow_fraction(self):
        return float(self._per_total(self.overflow))

    def with_flow(self):
        """(counts, fractions, errors) of [underflow, bins..., overflow], (n + 2,) each."""
        counts = np.concatenate([[self.underflow], self.counts, [self.overflow]]).astype(np.float64)
        return counts, self._per_total(counts), self._per_total(np.sqrt(counts))


def ratio_with_errors(reference, generated):
    """Generated / reference per bin of [underflow, bins..., overflow] (n + 2,) of two `SampleHistogram`.

    Returns:
        dict of arrays (n + 2,): ``ratio`` (NaN where both are empty, inf where only the reference is),
        ``ratio_error`` = ratio / sqrt(N_gen) (the generated sample's Poisson error; 1 / f_ref / total_gen
        where N_gen = 0 would give 0, so it is left 0 there), ``reference_band`` = 1 / sqrt(N_ref) (the
        reference's relative error, drawn around 1; NaN where the reference is empty), and the counts
        ``n_reference``, ``n_generated``.
    """
    n_ref, f_ref, _ = reference.with_flow()
    n_gen, f_gen, _ = generated.with_flow()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(f_ref > 0, f_gen / f_ref, np.where(f_gen > 0, np.inf, np.nan))
        ratio_error = np.where((f_ref > 0) & (n_gen > 0), ratio / np.sqrt(n_gen), 0.0)
        band = np.where(n_ref > 0, 1.0 / np.sqrt(n_ref), np.nan)
    return {"ratio": ratio, "ratio_error": ratio_error, "reference_band": band,
            "n_reference": n_ref, "n_generated": n_gen}


# Ratio ranges a page may use, narrowest first (see `choose_ratio_range`); off-scale ratios get arrows.
RATIO_RANGES = ((0.8, 1.2), (0.5, 1.5), (0.0, 2.0))
# A bin counts as well measured when both samples have this many entries (relative errors <= 14 %).
WELL_MEASURED = 50
# The ratio range shows at least this many typical reference uncertainties either side of 1.
NOISE_SIGMAS = 3.0


def choose_ratio_range(ratios, candidates=RATIO_RANGES, min_entries=WELL_MEASURED, sigmas=NOISE_SIGMAS):
    """The narrowest ``candidates`` range that holds the ratio of every bin with at least ``min_entries``
    entries in both samples and reaches ``sigmas`` typical statistical fluctuations (the median reference
    uncertainty 1 / sqrt(N_ref) of the bins with 10 or more reference entries) either side of 1, over all
    the `ratio_with_errors` dicts given (one page); the widest when none does. So small samples get a wide
    scale (their noise is large) and large ones a narrow one, unless a well-measured bin is off by more."""
    values, bands = [np.zeros(0)], [np.zeros(0)]
    for r in ratios:
        values.append(r["ratio"][(r["n_reference"] >= min_entries) & (r["n_generated"] >= min_entries)])
        bands.append(r["reference_band"][r["n_reference"] >= 10])
    values, bands = np.concatenate(values), np.concatenate(bands)
    noise = sigmas * (np.median(bands) if bands.size else 1.0)
    low, high = np.min(values, initial=1.0 - noise), np.max(values, initial=1.0 + noise)
    for candidate in candidates:
        if candidate[0] <= low and high <= candidate[1]:
            return candidate
    return candidates[-1]


def off_scale(ratio, limits):
    """Boolean masks (above, below) of the ratios outside ``limits`` (inf counts as above; NaN as neither)."""
    ratio = np.asarray(ratio, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return ratio > limits[1], ratio < limits[0]


def statistical_power_floor(reference_counts, n_reference, n_generated):
    """The separation power two samples of ``n_reference`` and ``n_generated`` values drawn from the same
    distribution have on average: (B / 4) (1 / n_reference + 1 / n_generated) for the B bins with entries
    in ``reference_counts`` (the reference histogram, in the separation power's binning).

    Each bin adds (r_i - g_i)^2 / (2 (r_i + g_i)) with E[(r_i - g_i)^2] = p_i (1/N_ref + 1/N_gen) (Poisson)
    and r_i + g_i ~ 2 p_i, so 1/4 (1/N_ref + 1/N_gen) per filled bin; valid when most filled bins hold
    several entries (it overestimates a little for sparse bins). NaN when a sample is empty.
    """
    if n_reference < 1 or n_generated < 1:
        return float("nan")
    filled = int(np.count_nonzero(np.asarray(reference_counts) > 0))
    return 0.25 * filled * (1.0 / n_reference + 1.0 / n_generated)
