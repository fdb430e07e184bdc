"""Preprocessing chains a generator fits on its first ``fit`` and stores in its .keras file.

Six recipes, all ending in a standardisation. Measured on the teaching preset, 3-minute trainings on
2 CPU cores, low-level classifier AUC (lower is better): with the MLP velocity voxel-ratios 0.997,
energy-ratios 0.969, log-ratios 0.989, energy-log-ratios 0.969 (velocity prediction, 1 core);
energy-ratios 0.970, energy-sqrt 0.915, energy-gap 0.932 (data prediction, see FlowMatchingGenerator);
with the mean-field velocity, energy-ratios 0.975 and energy-gap 0.905, the only one that also got the
fraction of hit voxels right (0.378 against 0.377 simulated; energy-ratios gave 0.49).

- ``"voxel-ratios"``: each voxel divided by the incident energy, x = E_voxel / E_inc, then a logit
  (CaloINN / CaloDREAM, REFERENCES.md), (N, n_voxels). The simplest joint model.
- ``"energy-ratios"``: the u-variables (total and per-layer energy ratios) followed by the layer-normalised
  voxel shapes, then a logit, (N, n_layers + n_voxels) (`caloedu.data.EnergyRatioTransform`).
- ``"log-ratios"``: y = ln((E_voxel + E_thr) / E_inc) with E_thr the readout threshold, (N, n_voxels).
  Empty voxels sit at ln(E_thr / E_inc), right next to the smallest deposits, instead of at ln(alpha)
  far below them: samples that land between "empty" and "hit" become deposits near the threshold
  (mostly cut to 0) rather than a spread of spurious small energies. Without u-variables the total
  energy is a sum of 960 noisy voxels, though, and came out far too wide.
- ``"energy-log-ratios"``: the u-variables (logit) as in "energy-ratios", and each layer-normalised shape
  as ln(shape + E_thr / (E_layer + E_thr)): the energies of "energy-ratios" with the empty voxels of
  "log-ratios", (N, n_layers + n_voxels).
- ``"energy-sqrt"``: the u-variables (logit) and the square root of each layer-normalised shape. The logit
  of a shape spreads a voxel's values over ~14 units, most of them for deposits of a few MeV, so a small
  error of the network becomes a factor of e in energy; the square root keeps errors close to errors in energy.
- ``"energy-gap"``: "energy-sqrt" with empty voxels at 0 and hits at gap_v + sqrt(shape), gap_v one
  spread of voxel v's hit values; values below gap_v come back empty (`GappedShapePower`).
  What `caloedu train` and `caloedu bench` use.

The chains work on numpy float64 and are applied in row chunks so that 100k DS2 showers fit in memory.
"""

import numpy as np

from caloedu.data import CalorimeterGeometry
from caloedu.data.transforms import (
    Chain,
    EnergyRatioTransform,
    LogitTransform,
    Standardizer,
    Transform,
    register_transform,
    transform_from_config,
)

PREPROCESSINGS = ("voxel-ratios", "energy-ratios", "log-ratios", "energy-log-ratios", "energy-sqrt", "energy-gap")
_CHUNK_VALUES = 1 << 24  # float64 values per chunk (~128 MB): bounds the temporaries of the chain


@register_transform
class IncidentEnergyRatio(Transform):
    """Showers (N, n_voxels) MeV -> E_voxel / (scale E_inc), in [0, 1] for a logit to follow.

    Args:
        scale: divides the ratio; 1 suffices since a single voxel never holds more than E_inc.
    """

    def __init__(self, scale=1.0):
        self.scale = float(scale)

    def forward(self, showers, incident_energies=None):
        if incident_energies is None:
            raise ValueError("IncidentEnergyRatio needs the incident_energies (N, 1) MeV.")
        e_inc = np.asarray(incident_energies, dtype=np.float64).reshape(-1, 1)
        return np.asarray(showers, dtype=np.float64) / (self.scale * e_inc)

    def inverse(self, y, incident_energies=None):
        if incident_energies is None:
            raise ValueError("IncidentEnergyRatio.inverse needs the incident_energies (N, 1) MeV.")
        e_inc = np.asarray(incident_energies, dtype=np.float64).reshape(-1, 1)
        return np.clip(np.asarray(y, dtype=np.float64), 0.0, None) * self.scale * e_inc

    def get_config(self):
        return {"scale": self.scale}


@register_transform
class ThresholdLogRatio(Transform):
    """Showers (N, n_voxels) MeV -> ln((E_voxel + threshold_mev) / E_inc); the inverse clips at 0 MeV."""

    def __init__(self, threshold_mev=0.01515):
        if threshold_mev <= 0:
            raise ValueError(f"ThresholdLogRatio needs a positive threshold_mev, got {threshold_mev}.")
        self.threshold_mev = float(threshold_mev)

    def forward(self, showers, incident_energies=None):
        if incident_energies is None:
            raise ValueError("ThresholdLogRatio needs the incident_energies (N, 1) MeV.")
        e_inc = np.asarray(incident_energies, dtype=np.float64).reshape(-1, 1)
        return np.log(np.asarray(showers, dtype=np.float64) + self.threshold_mev) - np.log(e_inc)

    def inverse(self, y, incident_energies=None):
        if incident_energies is None:
            raise ValueError("ThresholdLogRatio.inverse needs the incident_energies (N, 1) MeV.")
        e_inc = np.asarray(incident_energies, dtype=np.float64).reshape(-1, 1)
        # exp is capped at E_inc per voxel (y <= 0), as no voxel can hold more than the incident energy.
        return np.clip(np.exp(np.minimum(np.asarray(y, dtype=np.float64), 0.0)) * e_inc - self.threshold_mev, 0.0, None)

    def get_config(self):
        return {"threshold_mev": self.threshold_mev}


@register_transform
class EnergyRatioLogTransform(Transform):
    """Showers (N, n_voxels) MeV -> (N, n_layers + n_voxels): logit of the u-variables of
    `EnergyRatioTransform` (response_scale 2), then ln(shape + c) per voxel with c = E_thr / (E_layer + E_thr),
    so an empty voxel sits just below the smallest deposit its layer can read out (and at 0 in an empty layer)."""

    def __init__(self, geometry, threshold_mev=0.01515, alpha=1e-6):
        if isinstance(geometry, dict):
            geometry = CalorimeterGeometry.from_config(geometry)
        self.ratios = EnergyRatioTransform(geometry, response_scale=2.0)
        self.logit = LogitTransform(alpha)
        self.threshold_mev = float(threshold_mev)

    def _offsets(self, layer_energies):
        index = self.ratios._layer_index()
        return (self.threshold_mev / (layer_energies + self.threshold_mev))[:, index]  # (N, n_voxels)

    def forward(self, showers, incident_energies=None):
        z = self.ratios.forward(showers, incident_energies)
        n_layers = self.ratios.geometry.n_layers
        layers = self.ratios.geometry.layer_energies(np.asarray(showers, dtype=np.float64))
        shapes = np.log(z[:, n_layers:] + self._offsets(layers))
        return np.concatenate([self.logit.forward(z[:, :n_layers]), shapes], axis=1)

    def inverse(self, y, incident_energies=None):
        y = np.asarray(y, dtype=np.float64)
        geometry = self.ratios.geometry
        u = self.logit.inverse(y[:, :geometry.n_layers])
        # Layer energies follow from the u-variables alone: invert them with flat shapes.
        flat = self.ratios.inverse(np.concatenate([u, np.ones((len(y), geometry.n_voxels))], axis=1), incident_energies)
        offsets = self._offsets(geometry.layer_energies(flat))
        shapes = np.clip(np.exp(np.minimum(y[:, geometry.n_layers:], 0.0)) - offsets, 0.0, None)
        return self.ratios.inverse(np.concatenate([u, shapes], axis=1), incident_energies)

    def get_config(self):
        return {"geometry": self.ratios.geometry.get_config(), "threshold_mev": self.threshold_mev,
                "alpha": self.logit.alpha}


@register_transform
class ScalarLogitShapePower(Transform):
    """(N, n_scalars + n_voxels) u-variables and shapes in [0, 1] -> logit of the u-variables and
    shape ** power: a power (0.5: square root) keeps the shapes close to linear energy, so that an error of
    the network is an error in energy, not in the logarithm of energy."""

    def __init__(self, n_scalars, power=0.5, alpha=1e-6):
        self.n_scalars, self.power = int(n_scalars), float(power)
        self.logit = LogitTransform(alpha)

    def forward(self, z, incident_energies=None):
        z = np.asarray(z, dtype=np.float64)
        return np.concatenate([self.logit.forward(z[:, :self.n_scalars]),
                               np.power(np.clip(z[:, self.n_scalars:], 0.0, None), self.power)], axis=1)

    def inverse(self, y, incident_energies=None):
        y = np.asarray(y, dtype=np.float64)
        return np.concatenate([self.logit.inverse(y[:, :self.n_scalars]),
                               np.power(np.clip(y[:, self.n_scalars:], 0.0, None), 1.0 / self.power)], axis=1)

    def get_config(self):
        return {"n_scalars": self.n_scalars, "power": self.power, "alpha": self.logit.alpha}


@register_transform
class GappedShapePower(Transform):
    """(N, n_scalars + n_voxels) u-variables and shapes in [0, 1] -> logit of the u-variables, and per voxel
    y = 0 when empty, y = gap_v + shape ** power when hit.

    The gap gap_v (``gap`` times the spread of voxel v's hit values, fitted) separates "empty" from the
    smallest deposit, and the inverse calls everything below gap_v empty: a generated value that misses
    the empty point stays empty instead of becoming a spurious small deposit (the low-level classifier is
    very sensitive to those: Exp(0.5 MeV) deposits added to the empty voxels of simulated showers gave
    AUC 0.86). Reading values between f * gap_v and gap_v (f from 0.3 to 0.7) as the voxel's smallest
    hits instead brings the fraction of hit voxels of the trained teaching model from 0.361 to 0.379-0.388
    (simulated 0.379) but raised its low-level AUC from 0.696 to 0.705-0.721 (10k showers), so the cut
    stays at gap_v.
    """

    def __init__(self, n_scalars, power=0.5, gap=1.0, alpha=1e-6, gaps=None):
        self.n_scalars, self.power, self.gap = int(n_scalars), float(power), float(gap)
        self.logit = LogitTransform(alpha)
        self.gaps = None if gaps is None else np.asarray(gaps, dtype=np.float64)

    def fit(self, z, incident_energies=None):
        values = np.power(np.clip(np.asarray(z, dtype=np.float64)[:, self.n_scalars:], 0.0, None), self.power)
        hit = values > 0
        counts = hit.sum(axis=0)
        mean = np.where(counts > 0, values.sum(axis=0) / np.maximum(counts, 1), 0.0)
        var = np.where(counts > 1, (np.square(values - mean) * hit).sum(axis=0) / np.maximum(counts - 1, 1), 0.0)
        spread = np.sqrt(var)
        # A voxel (almost) never hit has no spread of its own: borrow the median spread.
        typical = np.median(spread[counts > 1]) if np.any(counts > 1) else 1.0
        self.gaps = self.gap * np.where(counts > 10, np.maximum(spread, 1e-3 * typical), typical)
        return self

    def forward(self, z, incident_energies=None):
        z = np.asarray(z, dtype=np.float64)
        shapes = np.clip(z[:, self.n_scalars:], 0.0, None)
        y = np.where(shapes > 0, self.gaps + np.power(shapes, self.power), 0.0)
        return np.concatenate([self.logit.forward(z[:, :self.n_scalars]), y], axis=1)

    def inverse(self, y, incident_energies=None):
        y = np.asarray(y, dtype=np.float64)
        v = y[:, self.n_scalars:]
        shapes = np.power(np.clip(v - self.gaps, 0.0, None), 1.0 / self.power)
        return np.concatenate([self.logit.inverse(y[:, :self.n_scalars]), shapes], axis=1)

    def get_config(self):
        return {"n_scalars": self.n_scalars, "power": self.power, "gap": self.gap, "alpha": self.logit.alpha,
                "gaps": None if self.gaps is None else self.gaps.tolist()}


def make_preprocessing(name, geometry, alpha=1e-6, threshold_mev=0.01515):
    """An unfitted `Chain` for the recipe ``name`` (see the module docstring)."""
    if name == "energy-log-ratios":
        return Chain([EnergyRatioLogTransform(geometry, threshold_mev, alpha), Standardizer()])
    if name == "energy-gap":
        return Chain([EnergyRatioTransform(geometry, response_scale=2.0),
                      GappedShapePower(geometry.n_layers, 0.5, 1.0, alpha), Standardizer()])
    if name == "energy-sqrt":
        return Chain([EnergyRatioTransform(geometry, response_scale=2.0),
                      ScalarLogitShapePower(geometry.n_layers, 0.5, alpha), Standardizer()])
    if name == "log-ratios":
        return Chain([ThresholdLogRatio(threshold_mev), Standardizer()])
    if name == "voxel-ratios":
        first = IncidentEnergyRatio()
    elif name == "energy-ratios":
        # u0 = E_tot / (2 E_inc): E_dep / E_inc fluctuates above 1 at low energy, the logit needs < 1.
        first = EnergyRatioTransform(geometry, response_scale=2.0)
    else:
        raise ValueError(f"Unknown preprocessing {name!r}; choose one of {', '.join(PREPROCESSINGS)}.")
    return Chain([first, LogitTransform(alpha), Standardizer()])


def n_features(name, geometry):
    """Width of the preprocessed showers for recipe ``name``."""
    return geometry.n_voxels + (geometry.n_layers if name.startswith("energy-") else 0)


def chain_from_config(config):
    return None if config is None else transform_from_config(config)


def _row_chunks(n_rows, n_columns):
    step = max(1, _CHUNK_VALUES // max(1, n_columns))
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def apply_forward(chain, showers, incident_energies):
    """Preprocessed showers, float32 (N, n_features), computed chunk by chunk."""
    parts = [chain.forward(showers[rows], incident_energies[rows]).astype(np.float32)
             for rows in _row_chunks(len(showers), np.shape(showers)[1])]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def apply_inverse(chain, x, incident_energies):
    """Showers in MeV, float32 (N, n_voxels), from preprocessed ``x``, chunk by chunk."""
    parts = [chain.inverse(x[rows], incident_energies[rows]).astype(np.float32)
             for rows in _row_chunks(len(x), np.shape(x)[1])]
    return np.concatenate(parts)


def fit_preprocessing(chain, showers, incident_energies, max_rows=50_000):
    """Fit ``chain`` on (at most ``max_rows`` of) the training showers; the statistics of 50k showers
    are as good as those of all of them and cost a fraction of the memory."""
    rows = slice(0, min(len(showers), max_rows))
    return chain.fit(np.asarray(showers[rows], dtype=np.float64), incident_energies[rows])
