"""Energy ratios (the u-variables of CaloFlow, CaloINN and CaloDREAM): the layer energies of a shower as
one total and a chain of fractions, each in [0, 1], which a generator learns far more easily than
energies spread over six orders of magnitude.

    u_0 = sum_i E_i / E_inc,        u_i = E_{i-1} / sum_{j >= i-1} E_j   for i = 1 .. L-1

(the last layer's share is what remains, so it needs no number). The inverse walks down the layers:
E_tot = u_0 E_inc, E_i = (E_tot - sum_{j<i} E_j) u_{i+1}, and the last layer gets what is left.
"""

import numpy as np

from caloedu.data.geometry import CalorimeterGeometry
from caloedu.data.transforms import Transform, incident_column, register_transform, safe_divide


def energy_ratios(layer_energies, incident_energies):
    """(u_0, u_1 ... u_{L-1}) of each shower, shape (N, L); a ratio with nothing below it is 0, never NaN.

    Args:
        layer_energies: (N, L) MeV.
        incident_energies: (N,) or (N, 1) MeV.
    """
    layer_energies = np.asarray(layer_energies, dtype=np.float64)
    remaining = np.cumsum(layer_energies[:, ::-1], axis=1)[:, ::-1]  # sum_{j >= i} E_j, (N, L)
    u0 = remaining[:, :1] / incident_column(incident_energies, "energy_ratios")
    return np.concatenate([u0, safe_divide(layer_energies[:, :-1], remaining[:, :-1])], axis=1)


def layer_energies_from_ratios(u, incident_energies):
    """Invert `energy_ratios`: (N, L) ratios -> (N, L) layer energies in MeV.

    Generated ratios may stray outside their range: u_0 is clipped at 0 and the other ratios to [0, 1], so
    the layer energies are never negative and add up to u_0 E_inc.

    Args:
        u: (N, L) with u[:, 0] = u_0.
        incident_energies: (N,) or (N, 1) MeV.
    """
    u = np.asarray(u, dtype=np.float64)
    remaining = np.clip(u[:, 0], 0.0, None) * incident_column(incident_energies, "layer_energies_from_ratios")[:, 0]
    ratios = np.clip(u[:, 1:], 0.0, 1.0)
    energies = np.zeros(u.shape)
    for layer in range(u.shape[1] - 1):  # E_i = (E_tot - sum_{j<i} E_j) u_{i+1}
        energies[:, layer] = remaining * ratios[:, layer]
        remaining = remaining - energies[:, layer]
    energies[:, -1] = remaining
    return energies


@register_transform
class EnergyRatioTransform(Transform):
    """Showers (N, n_voxels) MeV -> (N, n_layers + n_voxels): the energy ratios, then each voxel divided by
    its layer's energy (the layer's normalised shape). Empty layers and showers without energy give 0.

    Not a one-to-one map of R^n_voxels (the shapes of a layer sum to 1, so n_layers of the outputs are
    redundant): its outputs have no density in MeV space.

    Args:
        geometry: the `CalorimeterGeometry` of the showers (or its config, or a preset name).
        response_scale: divides u_0; set it so u_0 < 1 when a logit follows (e.g. 2.0: E_dep / E_inc
            fluctuates above 1 at low energy).
    """

    def __init__(self, geometry, response_scale=1.0):
        self.geometry = CalorimeterGeometry.coerce(geometry)
        self.response_scale = float(response_scale)

    def forward(self, showers, incident_energies=None):
        self.geometry.check_showers(showers)
        showers = np.asarray(showers, dtype=np.float64)
        layers = self.geometry.layer_energies(showers)  # (N, L)
        u = energy_ratios(layers, incident_column(incident_energies, "EnergyRatioTransform"))
        u[:, 0] /= self.response_scale
        shapes = safe_divide(showers, layers[:, self.geometry.voxel_layer])  # (N, n_voxels)
        return np.concatenate([u, shapes], axis=1)

    def inverse(self, y, incident_energies=None):
        y = np.asarray(y, dtype=np.float64)
        n_layers = self.geometry.n_layers
        u = y[:, :n_layers].copy()
        u[:, 0] *= self.response_scale
        layers = layer_energies_from_ratios(u, incident_column(incident_energies, "EnergyRatioTransform.inverse"))
        # Renormalise each layer's shape so generated shapes that do not sum to 1 keep the layer energy.
        shapes = np.clip(y[:, n_layers:], 0.0, None)
        sums = self.geometry.layer_energies(shapes)  # (N, L)
        return shapes * safe_divide(layers, sums)[:, self.geometry.voxel_layer]

    def get_config(self):
        return {"geometry": self.geometry.get_config(), "response_scale": self.response_scale}


@register_transform
class OneToOneEnergyRatioTransform(Transform):
    """`EnergyRatioTransform` made one to one (CaloINN): showers (N, n_voxels) MeV -> (N, n_voxels), the
    u-variables then each layer's shares without one of them (the voxel with the largest mean share, fitted):
    the shares of a layer sum to 1, so that one is what the others leave. Now the map has a density,

        log |det d(u, shares) / dE| = -ln(s E_inc) - sum_{i < L-1} ln R_i - sum_l (V_l - 1) ln E_l,

    with s the response scale, R_i = sum_{j >= i} E_j what reaches layer i, and V_l the voxels of layer l
    (stick-breaking for the u-variables; a layer's energy and V_l - 1 shares for its voxels). It holds where
    every voxel is positive: dequantise the showers first (`caloedu.data.representation.dequantize`).

    Args:
        geometry: the `CalorimeterGeometry` (every layer needs at least one voxel).
        response_scale: divides u_0 (as `EnergyRatioTransform`).
        dropped: the voxel index left out in each layer (fitted; None before ``fit``).
    """

    has_log_det = True

    def __init__(self, geometry, response_scale=2.0, dropped=None):
        self.ratios = EnergyRatioTransform(geometry, response_scale)
        geometry = self.ratios.geometry
        if np.any(np.asarray(geometry.voxels_per_layer) == 0):
            raise ValueError(f"Geometry '{geometry.name}' has layers without voxels: energy ratios cannot map its "
                             "showers one to one.")
        self.dropped = None if dropped is None else np.asarray(dropped, dtype=np.int64)

    @property
    def geometry(self):
        return self.ratios.geometry

    def fit(self, showers, incident_energies=None):
        shares = self.ratios.forward(showers, incident_energies)[:, self.geometry.n_layers:]
        mean = shares.mean(axis=0)
        self.dropped = np.array([start + int(np.argmax(mean[start:stop])) for start, stop in self._layer_bounds()])
        return self

    def _layer_bounds(self):
        edges = self.geometry.layer_boundaries
        return list(zip(edges[:-1], edges[1:]))

    def _kept(self):
        if self.dropped is None:
            raise ValueError("OneToOneEnergyRatioTransform is not fitted: call fit(showers, incident_energies) first.")
        kept = np.ones(self.geometry.n_voxels, bool)
        kept[self.dropped] = False
        return kept

    def forward(self, showers, incident_energies=None):
        kept = self._kept()
        z = self.ratios.forward(showers, incident_energies)
        return np.concatenate([z[:, :self.geometry.n_layers], z[:, self.geometry.n_layers:][:, kept]], axis=1)

    def inverse(self, y, incident_energies=None):
        y = np.asarray(y, dtype=np.float64)
        kept, n_layers = self._kept(), self.geometry.n_layers
        shares = np.zeros((len(y), self.geometry.n_voxels))
        shares[:, kept] = np.clip(y[:, n_layers:], 0.0, None)
        # The left-out share is what the others leave; when they overshoot 1, the inverse renormalises the layer.
        others = self.geometry.layer_energies(shares)  # (N, L): the kept shares of each layer, summed
        shares[:, self.dropped] = np.clip(1.0 - others, 0.0, None)
        return self.ratios.inverse(np.concatenate([y[:, :n_layers], shares], axis=1), incident_energies)

    def log_det_jacobian(self, showers, incident_energies=None):
        showers = np.asarray(showers, dtype=np.float64)
        layers = self.geometry.layer_energies(showers)  # (N, L)
        reaching = np.cumsum(layers[:, ::-1], axis=1)[:, ::-1]  # R_i = sum_{j >= i} E_j
        e_inc = incident_column(incident_energies, "OneToOneEnergyRatioTransform")[:, 0]
        sizes = self.geometry.voxels_per_layer
        return (-np.log(self.ratios.response_scale * e_inc) - np.log(reaching[:, :-1]).sum(axis=1)
                - (np.log(layers) * (sizes - 1)).sum(axis=1))

    def get_config(self):
        return {"geometry": self.geometry.get_config(), "response_scale": self.ratios.response_scale,
                "dropped": None if self.dropped is None else self.dropped.tolist()}
