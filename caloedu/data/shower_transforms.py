"""The transforms behind the voxel representations (`caloedu.data.representation`), beyond the generic ones
of `caloedu.data.transforms`: per-voxel energy ratios and logarithms, and the square-root "shape power" with
the gap between empty and hit voxels.
"""

import numpy as np

from caloedu.data.ratios import EnergyRatioTransform
from caloedu.data.geometry import DS2_THRESHOLD_MEV
from caloedu.data.transforms import LogitTransform, Transform, incident_column, register_transform


@register_transform
class IncidentEnergyRatio(Transform):
    """Showers (N, n_voxels) MeV -> E_voxel / (scale E_inc), in [0, 1] for a logit to follow.

    Args:
        scale: divides the ratio; 1 suffices since a single voxel never holds more than E_inc.
    """

    has_log_det = True

    def __init__(self, scale=1.0):
        self.scale = float(scale)

    def forward(self, showers, incident_energies=None):
        e_inc = incident_column(incident_energies, "IncidentEnergyRatio")
        return np.asarray(showers, dtype=np.float64) / (self.scale * e_inc)

    def inverse(self, y, incident_energies=None):
        e_inc = incident_column(incident_energies, "IncidentEnergyRatio.inverse")
        return np.clip(np.asarray(y, dtype=np.float64), 0.0, None) * self.scale * e_inc

    def log_det_jacobian(self, showers, incident_energies=None):
        e_inc = incident_column(incident_energies, "IncidentEnergyRatio")[:, 0]
        return -np.shape(showers)[1] * np.log(self.scale * e_inc)

    def get_config(self):
        return {"scale": self.scale}


@register_transform
class ThresholdLogRatio(Transform):
    """Showers (N, n_voxels) MeV -> ln((E_voxel + threshold_mev) / E_inc); the inverse clips at 0 MeV."""

    has_log_det = True

    def __init__(self, threshold_mev=DS2_THRESHOLD_MEV):
        if threshold_mev <= 0:
            raise ValueError(f"ThresholdLogRatio needs a positive threshold_mev, got {threshold_mev}.")
        self.threshold_mev = float(threshold_mev)

    def forward(self, showers, incident_energies=None):
        e_inc = incident_column(incident_energies, "ThresholdLogRatio")
        return np.log(np.asarray(showers, dtype=np.float64) + self.threshold_mev) - np.log(e_inc)

    def inverse(self, y, incident_energies=None):
        e_inc = incident_column(incident_energies, "ThresholdLogRatio.inverse")
        # exp is capped at E_inc per voxel (y <= 0), as no voxel can hold more than the incident energy.
        return np.clip(np.exp(np.minimum(np.asarray(y, dtype=np.float64), 0.0)) * e_inc - self.threshold_mev, 0.0, None)

    def log_det_jacobian(self, showers, incident_energies=None):
        return -np.log(np.asarray(showers, dtype=np.float64) + self.threshold_mev).sum(axis=1)

    def get_config(self):
        return {"threshold_mev": self.threshold_mev}


@register_transform
class EnergyRatioLogTransform(Transform):
    """Showers (N, n_voxels) MeV -> (N, n_layers + n_voxels): logit of the u-variables of
    `EnergyRatioTransform` (response_scale 2), then ln(shape + c) per voxel with c = E_thr / (E_layer + E_thr),
    so an empty voxel sits just below the smallest deposit its layer can read out (and at 0 in an empty layer)."""

    def __init__(self, geometry, threshold_mev=DS2_THRESHOLD_MEV, alpha=1e-6):
        self.ratios = EnergyRatioTransform(geometry, response_scale=2.0)
        self.logit = LogitTransform(alpha)
        self.threshold_mev = float(threshold_mev)

    def _offsets(self, layer_energies):
        voxel_layer = self.ratios.geometry.voxel_layer
        return (self.threshold_mev / (layer_energies + self.threshold_mev))[:, voxel_layer]  # (N, n_voxels)

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
    the empty point stays empty instead of becoming a spurious small deposit, which the low-level
    classifier sees more easily than anything else (README, "Results").
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


@register_transform
class EmptyVoxelGap(Transform):
    """Dequantised showers (N, n_voxels) MeV -> the same, with every voxel below the readout threshold scaled
    by exp(-gap): the empty voxels (E_thr u, u ~ U(0, 1]) move to (0, E_thr e^-gap), a factor e^gap below the
    smallest hit. A generator's smooth density between "empty" and "hit" then falls in the gap, and the
    inverse reads the gap as empty: spurious small deposits are what a classifier sees best (module 06).

    One to one (a monotone map with a jump at the threshold): log |det| = -gap per empty voxel.

    Args:
        threshold_mev: the readout threshold E_thr (MeV); voxels below it are the empty ones.
        gap: the shift of the empty voxels in ln(E), in nats (> 0).
    """

    has_log_det = True

    def __init__(self, threshold_mev=DS2_THRESHOLD_MEV, gap=3.0):
        if not threshold_mev > 0 or not gap > 0:
            raise ValueError(f"EmptyVoxelGap needs threshold_mev > 0 and gap > 0, got {threshold_mev} and {gap}.")
        self.threshold_mev, self.gap = float(threshold_mev), float(gap)

    def forward(self, showers, incident_energies=None):
        showers = np.asarray(showers, dtype=np.float64)
        return np.where(showers < self.threshold_mev, showers * np.exp(-self.gap), showers)

    def inverse(self, y, incident_energies=None):
        y = np.asarray(y, dtype=np.float64)
        # Exact on the image; a value in the gap (no shower maps there) reads as empty. The edge has a little
        # room (float32 features move an empty voxel at E_thr e^-gap by ~1e-6), and the empty branch stays
        # below the threshold.
        edge = self.threshold_mev * np.exp(-self.gap) * (1.0 + min(1e-4, np.expm1(self.gap) / 2))
        empty = np.minimum(y * np.exp(self.gap), np.nextafter(self.threshold_mev, 0.0))
        return np.where(y < edge, empty, np.where(y < self.threshold_mev, 0.0, y))

    def log_det_jacobian(self, showers, incident_energies=None):
        return -self.gap * (np.asarray(showers, dtype=np.float64) < self.threshold_mev).sum(axis=1)

    def get_config(self):
        return {"threshold_mev": self.threshold_mev, "gap": self.gap}


@register_transform
class ScalarLogitShapeLog(Transform):
    """(N, n_scalars + n_shares) u-variables in [0, 1] and voxel shares in (0, 1] -> logit of the u-variables,
    ln of the shares. The logarithm, unlike a logit with its alpha, keeps the small shares of high-energy layers
    (E_thr / E_layer ~ 1e-7) apart instead of squeezing them onto logit(alpha). One to one; the shares must be
    positive (dequantised showers)."""

    has_log_det = True

    def __init__(self, n_scalars, alpha=1e-6):
        self.n_scalars = int(n_scalars)
        self.logit = LogitTransform(alpha)

    def _shares(self, z):
        shares = np.asarray(z, dtype=np.float64)[:, self.n_scalars:]
        if shares.size and not shares.min() > 0:
            raise ValueError("ScalarLogitShapeLog needs positive voxel shares: dequantise the showers first "
                             "(caloedu.data.representation.dequantize), so that no voxel is exactly 0.")
        return shares

    def forward(self, z, incident_energies=None):
        z = np.asarray(z, dtype=np.float64)
        return np.concatenate([self.logit.forward(z[:, :self.n_scalars]), np.log(self._shares(z))], axis=1)

    def inverse(self, y, incident_energies=None):
        y = np.asarray(y, dtype=np.float64)
        # a share cannot exceed 1: exp is capped there (no overflow on a generator's far tails)
        return np.concatenate([self.logit.inverse(y[:, :self.n_scalars]),
                               np.exp(np.minimum(y[:, self.n_scalars:], 0.0))], axis=1)

    def log_det_jacobian(self, z, incident_energies=None):
        z = np.asarray(z, dtype=np.float64)
        return self.logit.log_det_jacobian(z[:, :self.n_scalars]) - np.log(self._shares(z)).sum(axis=1)

    def get_config(self):
        return {"n_scalars": self.n_scalars, "alpha": self.logit.alpha}
