"""CaloChallenge high-level features of calorimeter showers, and the classifier inputs built on them.

For N showers of a geometry with L layers (CaloChallenge HighLevelFeatures.py):

- ``energy_ratio``: E_tot / E_inc, shape (N,);
- ``layer_energies``: energy per layer (MeV), shape (N, L);
- ``centre_eta``, ``centre_phi``: energy-weighted centre of each layer, <x> = sum(E x) / sum(E) (mm), (N, L);
- ``width_eta``, ``width_phi``: energy-weighted width sqrt(<x^2> - <x>^2) of each layer (mm), (N, L);
- ``sparsity``: fraction of a layer's voxels that are empty (energy at or below the threshold), (N, L), the
  convention of CaloChallenge's HighLevelFeatures.py (1 = an empty layer; its complement is the occupancy);
- ``voxel_energies``: the spectrum of the voxel energies above the threshold (MeV), 1-D.

A layer without energy has centre 0 and width 0 (never NaN), so empty layers stay comparable.
"""

from dataclasses import dataclass, field

import numpy as np

from caloedu.data.checks import check_incident_energies

# Showers are processed this many voxel values at a time so DS3 (40,500 voxels) stays within memory.
_CHUNK_VALUES = 2**24
# At most this many voxel energies are kept for the voxel spectrum; beyond it, a fixed subset of showers
# (the same for every file of the same size) gives the spectrum, so memory stays bounded on DS2/DS3.
MAX_VOXEL_VALUES = 5_000_000
# log10 of 0 is guarded with this (MeV, or a dimensionless ratio): far below any real deposit
# (the DS2 readout threshold is 0.015 MeV), so an empty layer becomes an outlier value of -8, not -inf.
LOG_EPSILON = 1e-8


@dataclass
class HighLevelFeatures:
    """The high-level features of N showers in a geometry of L layers (see the module docstring)."""

    incident_energies: np.ndarray  # (N,) MeV
    energy_ratio: np.ndarray  # (N,) E_tot / E_inc
    layer_energies: np.ndarray  # (N, L) MeV
    centre_eta: np.ndarray  # (N, L) mm
    centre_phi: np.ndarray  # (N, L) mm
    width_eta: np.ndarray  # (N, L) mm
    width_phi: np.ndarray  # (N, L) mm
    sparsity: np.ndarray  # (N, L) fraction of the layer's voxels at or below threshold (empty)
    voxel_energies: np.ndarray  # (M,) MeV, voxels above threshold
    occupied_layers: np.ndarray = field(default=None)  # (L,) bool: the layer has voxels in the geometry

    @property
    def total_energies(self):
        """E_tot, the deposited energy of each shower (MeV), shape (N,)."""
        return self.layer_energies.sum(axis=1)

    def __len__(self):
        return len(self.incident_energies)


@dataclass(frozen=True)
class FeatureDistribution:
    """One 1-D distribution to compare: ``values`` (M,), its ``unit`` ('' when dimensionless) and a
    binning hint: ``scale`` 'linear' or 'log' (log-spaced bins, for energies) and ``n_bins``."""

    name: str
    values: np.ndarray
    unit: str
    scale: str = "linear"
    n_bins: int = 50
    label: str = ""
    group: str = ""
    layer: int = -1


def _as_arrays(incident_energies, showers, geometry):
    incident_energies = check_incident_energies(incident_energies)
    # Shape only: the voxel values were checked where the showers came from (a file, a generator).
    geometry.check_showers(showers)
    if len(incident_energies) != len(showers):
        raise ValueError(f"showers has {len(showers)} rows but there are {len(incident_energies)} incident "
                         "energies; every shower needs one incident energy.")
    return incident_energies[:, 0], showers


def centre_and_width(layer_showers, x):
    """Energy-weighted centre <x> = sum(E x) / sum(E) and width sqrt(<x^2> - <x>^2) of one layer.

    Args:
        layer_showers: (N, V) energies of the layer's V voxels, MeV.
        x: (V,) coordinate of each voxel centre, mm.
    Returns:
        (centre, width), two arrays (N,) in mm; 0 and 0 (never NaN) for a layer without energy.
    """
    energy = np.asarray(layer_showers, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    total = energy.sum(axis=1)
    safe = np.where(total > 0, total, 1.0)  # an empty layer: the numerators are 0 too, so both come out 0
    centre = energy @ x / safe
    # Rounding can make <x^2> - <x>^2 slightly negative for a single hit voxel.
    return centre, np.sqrt(np.maximum(energy @ (x * x) / safe - centre**2, 0.0))


def _chunks(n_showers, n_voxels):
    step = max(1, _CHUNK_VALUES // max(n_voxels, 1))
    for start in range(0, n_showers, step):
        yield slice(start, min(start + step, n_showers))


def compute_features(incident_energies, showers, geometry, threshold=0.0):
    """The CaloChallenge high-level features of ``showers``.

    Args:
        incident_energies: (N, 1) or (N,) incident energies (MeV).
        showers: (N, n_voxels) voxel energies (MeV) in the voxel order of ``geometry``.
        geometry: the `CalorimeterGeometry` of the showers.
        threshold: a voxel counts as hit (voxel spectrum) when its energy is above this, as empty (sparsity)
            otherwise (MeV).

    Returns:
        `HighLevelFeatures` with arrays in float64 (the voxel spectrum in float32).
    """
    incident_energies, showers = _as_arrays(incident_energies, showers, geometry)
    n_showers, n_layers = len(showers), geometry.n_layers
    centres = geometry.voxel_centres()
    bounds = geometry.layer_boundaries
    out = {name: np.zeros((n_showers, n_layers)) for name in
           ("layer_energies", "centre_eta", "centre_phi", "width_eta", "width_phi", "sparsity")}

    for rows in _chunks(n_showers, geometry.n_voxels):
        chunk = np.asarray(showers[rows], dtype=np.float64)  # (n, n_voxels)
        for layer in range(n_layers):
            lo, hi = bounds[layer], bounds[layer + 1]
            if hi == lo:
                continue  # a layer with no voxels (DS1) keeps all features at 0
            energy = chunk[:, lo:hi]  # (n, voxels in layer)
            out["layer_energies"][rows, layer] = energy.sum(axis=1)
            out["sparsity"][rows, layer] = (energy <= threshold).mean(axis=1)
            for axis in ("eta", "phi"):
                centre, width = centre_and_width(energy, getattr(centres, axis)[lo:hi])
                out[f"centre_{axis}"][rows, layer] = centre
                out[f"width_{axis}"][rows, layer] = width

    total = out["layer_energies"].sum(axis=1)
    return HighLevelFeatures(
        incident_energies=incident_energies,
        energy_ratio=total / incident_energies,
        voxel_energies=voxel_spectrum(showers, threshold),
        occupied_layers=geometry.voxels_per_layer > 0,
        **out,
    )


def voxel_spectrum(showers, threshold=0.0, max_values=MAX_VOXEL_VALUES):
    """Energies (MeV) of the voxels above ``threshold``, 1-D float32.

    When the showers hold more than ``max_values`` voxels, an evenly spaced subset of showers is used so
    that the memory stays bounded; the subset depends only on the number of showers, not on their content.
    """
    n_showers, n_voxels = np.shape(showers)
    n_keep = min(n_showers, max(1, max_values // max(n_voxels, 1)))
    rows = np.unique(np.linspace(0, n_showers - 1, n_keep).astype(np.int64)) if n_showers else []
    parts = []
    for block in _chunks(len(rows), n_voxels):
        chunk = np.asarray(showers[rows[block]], dtype=np.float32)
        parts.append(chunk[chunk > threshold])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def feature_distributions(features):
    """The 1-D distributions that separation powers and plots compare, as a list of `FeatureDistribution`.

    Layer features are listed per layer (``E_layer_03``...); layers without voxels are left out.
    """
    layers = np.flatnonzero(features.occupied_layers)
    dists = [FeatureDistribution("E_ratio", features.energy_ratio, "", label="E_tot / E_inc", group="E_ratio")]
    per_layer = (
        ("E_layer", features.layer_energies, "MeV", "log", "E_layer"),
        ("centre_eta", features.centre_eta, "mm", "linear", "<eta>"),
        ("centre_phi", features.centre_phi, "mm", "linear", "<phi>"),
        ("width_eta", features.width_eta, "mm", "linear", "width eta"),
        ("width_phi", features.width_phi, "mm", "linear", "width phi"),
        ("sparsity", features.sparsity, "", "linear", "sparsity"),
    )
    for group, array, unit, scale, label in per_layer:
        for layer in layers:
            dists.append(FeatureDistribution(
                f"{group}_{layer:02d}", array[:, layer], unit, scale,
                label=f"{label}, layer {layer}", group=group, layer=int(layer),
            ))
    dists.append(FeatureDistribution(
        "voxel_energy", features.voxel_energies, "MeV", "log", n_bins=60,
        label="voxel energy", group="voxel_energy",
    ))
    return dists


def high_level_classifier_inputs(incident_energies, showers, geometry, features=None):
    """CaloChallenge high-level classifier inputs, shape (N, 2 + 6 L') for the L' layers with voxels:

    [log10 E_inc, log10 E_layer, centre_eta / 100, centre_phi / 100, width_eta / 100, width_phi / 100,
     log10 E_tot, sparsity] (energies in MeV, lengths in mm). log10 of an empty layer is guarded
    with ``LOG_EPSILON`` (log10(E + 1e-8 MeV)), as in the CaloChallenge code. Pass ``features`` (from
    `compute_features`) to reuse them; the showers are then not read again.
    """
    if features is None:
        features = compute_features(incident_energies, showers, geometry)
    layers = features.occupied_layers
    return np.concatenate([
        np.log10(features.incident_energies)[:, None],
        np.log10(features.layer_energies[:, layers] + LOG_EPSILON),
        features.centre_eta[:, layers] / 100.0,
        features.centre_phi[:, layers] / 100.0,
        features.width_eta[:, layers] / 100.0,
        features.width_phi[:, layers] / 100.0,
        np.log10(features.total_energies + LOG_EPSILON)[:, None],
        features.sparsity[:, layers],
    ], axis=1).astype(np.float32)


def low_level_classifier_inputs(incident_energies, showers, geometry=None):
    """CaloChallenge low-level classifier inputs [log10 E_inc, voxel / E_inc], shape (N, 1 + n_voxels), float32."""
    if geometry is not None:
        geometry.check_showers(showers)
    incident_energies = np.asarray(incident_energies, dtype=np.float64).reshape(-1, 1)
    out = np.empty((len(showers), 1 + np.shape(showers)[1]), dtype=np.float32)
    out[:, 0] = np.log10(incident_energies[:, 0])
    for rows in _chunks(len(showers), np.shape(showers)[1]):
        out[rows, 1:] = np.asarray(showers[rows], dtype=np.float64) / incident_energies[rows]
    return out
