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
