"""Representations: how showers in MeV become what a generator's network learns, and back.

A representation is an object, fitted once on training showers and stored in the generator's .keras file:

    representation = make_representation("energy-gap", geometry).fit(incident_energies, showers)
    x = representation.forward(incident_energies, showers)          # (N, n_features) float32
    showers_again = representation.inverse(incident_energies, x)    # (N, n_voxels) float32 MeV
    representation.layout                                           # where the parts of x sit

Two kinds:

- **voxels**: a flat feature vector per shower, made by a named recipe (a `Chain` of transforms). Its
  `VoxelLayout` says what the network sees: ``n_scalars`` global numbers first (the u-variables of the
  "energy-*" recipes, one per layer, or none), then the voxels in the geometry's order, so a network can
  cut them into layers, or into rings of radial voxels.
- **point-cloud**: every hit voxel becomes a point (z, alpha, r, E) (`PointCloudTransform`); showers are
  padded to the fitted ``max_hits`` and come with a mask: ``forward`` gives a `PointCloud`.

The recipes ("voxel-ratios" ... "energy-gap") are described in `VOXEL_RECIPES`; the README's results section
has what each reached in training. A representation has a density in MeV space when it maps R^n_voxels
one to one onto its features (``has_density``); then ``log_det_jacobian`` gives log |det dx / dE|, what a
likelihood of the features needs to become a likelihood of showers in MeV (`ShowerGenerator.log_prob`).
"""

from dataclasses import dataclass

import numpy as np

from caloedu.data.ratios import EnergyRatioTransform, OneToOneEnergyRatioTransform
from caloedu.data.geometry import DS2_THRESHOLD_MEV, CalorimeterGeometry
from caloedu.data.pointcloud import FEATURES as POINT_FEATURES
from caloedu.data.pointcloud import PointCloud, PointCloudTransform
from caloedu.data.shower_transforms import (
    EnergyRatioLogTransform,
    EmptyVoxelGap,
    GappedShapePower,
    IncidentEnergyRatio,
    ScalarLogitShapeLog,
    ScalarLogitShapePower,
    ThresholdLogRatio,
)
from caloedu.data.transforms import Chain, LogitTransform, Standardizer, serialize, transform_from_config

_CHUNK_VALUES = 1 << 24  # float64 values per chunk (~128 MB): bounds the temporaries of a chain
FIT_ROWS = 50_000  # the statistics of 50k showers are as good as those of all of them, at a fraction of the memory


def dequantize(showers, width_mev, rng):
    """Showers with every empty voxel (exactly 0) replaced by ``width_mev`` * u, u ~ U(0, 1]: the continuous
    stand-in for "below the readout threshold" that a density in MeV space is defined on. float64."""
    showers = np.array(showers, dtype=np.float64)
    empty = showers == 0
    showers[empty] = width_mev * (1.0 - rng.random(int(empty.sum())))
    return showers


@dataclass(frozen=True)
class VoxelLayout:
    """Where things sit in a flat feature vector x (N, n_features): ``n_scalars`` global numbers (one per
    layer, the u-variables, or none), then the voxels in the geometry's order (radial bin fastest, then
    angular bin, then layer). A one-to-one recipe ('inn-ratios') leaves one voxel's share per layer out
    (``dropped_per_layer`` = 1): each layer then has one feature fewer than voxels, and no ring shape."""

    n_scalars: int
    n_alpha: tuple
    n_radial: tuple
    dropped_per_layer: int = 0

    @property
    def n_layers(self):
        return len(self.n_alpha)

    @property
    def voxels_per_layer(self):
        return tuple(a * r for a, r in zip(self.n_alpha, self.n_radial))

    @property
    def features_per_layer(self):
        return tuple(v - self.dropped_per_layer for v in self.voxels_per_layer)

    @property
    def n_voxels(self):
        return sum(self.voxels_per_layer)

    @property
    def n_features(self):
        return self.n_scalars + sum(self.features_per_layer)

    @property
    def is_regular(self):
        """Every layer has the same (n_alpha, n_radial), none is empty and every voxel has its feature: the
        voxels form (L, A, R) rings."""
        return (len(set(zip(self.n_alpha, self.n_radial))) == 1 and self.n_radial[0] > 0
                and self.dropped_per_layer == 0)

    @property
    def ring_shape(self):
        """(n_layers, n_alpha, n_radial) of a regular layout: the voxels reshaped into rings."""
        if not self.is_regular:
            raise ValueError("This layout's layers differ in binning (or some are empty, or a share per layer is "
                             "left out): it has no ring shape.")
        return (self.n_layers, self.n_alpha[0], self.n_radial[0])

    def layer_slice(self, layer):
        """The slice of x that holds ``layer``'s voxels (its kept shares, for a one-to-one recipe)."""
        start = self.n_scalars + sum(self.features_per_layer[:layer])
        return slice(start, start + self.features_per_layer[layer])


@dataclass(frozen=True)
class PointCloudLayout:
    """Padded point clouds: ``max_hits`` points (None until fitted) of ``point_features`` each, and a mask."""

    max_hits: int = None
    point_features: tuple = POINT_FEATURES

    @property
    def n_point_features(self):
        return len(self.point_features)


def _logit_chain(first, alpha):
    return [first, LogitTransform(alpha), Standardizer()]


EMPTY_GAP_NATS = 3.0  # 'inn-gap': how far (in ln E) the empty voxels sit below the smallest hit

# name -> (has u-variables, builder(geometry, alpha, threshold_mev) -> list of transforms, description)
VOXEL_RECIPES = {
    "voxel-ratios": (False, lambda g, a, t: _logit_chain(IncidentEnergyRatio(), a),
                     "E_voxel / E_inc, logit, standardised (CaloINN / CaloDREAM): the simplest joint model"),
    "energy-ratios": (True, lambda g, a, t: _logit_chain(EnergyRatioTransform(g, response_scale=2.0), a),
                      "u-variables, then each layer's voxels over the layer energy; logit, standardised"),
    "inn-ratios": (True, lambda g, a, t: _logit_chain(OneToOneEnergyRatioTransform(g, response_scale=2.0), a),
                   "'energy-ratios' without one share per layer (what the others leave), so one to one, with a "
                   "density: the likelihood families' recipe (CaloINN)"),
    "inn-gap": (True, lambda g, a, t: [EmptyVoxelGap(t, EMPTY_GAP_NATS), OneToOneEnergyRatioTransform(g, 2.0),
                                       ScalarLogitShapeLog(g.n_layers, a), Standardizer()],
                "'inn-ratios' with the empty voxels a factor e^3 below the threshold and ln of the shares: one to "
                "one, and a generated value in the gap reads empty (the flow's default)"),
    "log-ratios": (False, lambda g, a, t: [ThresholdLogRatio(t), Standardizer()],
                   "ln((E_voxel + E_thr) / E_inc), standardised: empty voxels next to the smallest deposits"),
    "energy-log-ratios": (True, lambda g, a, t: [EnergyRatioLogTransform(g, t, a), Standardizer()],
                          "the energies of 'energy-ratios' with the empty voxels of 'log-ratios'"),
    "energy-sqrt": (True, lambda g, a, t: [EnergyRatioTransform(g, response_scale=2.0),
                                           ScalarLogitShapePower(g.n_layers, 0.5, a), Standardizer()],
                    "logit u-variables, square root of the layer shares: network errors stay errors in energy"),
    "energy-shares": (True, lambda g, a, t: [EnergyRatioTransform(g, response_scale=2.0),
                                             ScalarLogitShapePower(g.n_layers, 1.0, a), Standardizer()],
                      "logit u-variables, each layer's voxel shares as they are (standardised): what a per-layer "
                      "softmax reads back (the VAE's 'shares' decoder)"),
    "energy-gap": (True, lambda g, a, t: [EnergyRatioTransform(g, response_scale=2.0),
                                          GappedShapePower(g.n_layers, 0.5, 1.0, a), Standardizer()],
                   "'energy-sqrt' with empty voxels at 0 and hits one spread higher; below that gap reads empty"),
}
REPRESENTATIONS = (*VOXEL_RECIPES, "point-cloud")
# the recipes that map a shower one to one onto its features (``has_density``), the likelihood families' choices
DENSITY_RECIPES = ("inn-gap", "inn-ratios", "voxel-ratios", "log-ratios")


def density_recipes_sentence():
    """'inn-gap', 'inn-ratios', ... or 'log-ratios': the recipes with a density, for error messages."""
    quoted = [f"'{name}'" for name in DENSITY_RECIPES]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}"
ONE_TO_ONE_RATIOS = ("inn-ratios", "inn-gap")  # recipes that leave one share per layer out (VoxelLayout.dropped_per_layer)


def _in_chunks(function, values, incident_energies, n_columns):
    """``function(values[rows] float64, incident_energies[rows] (n, 1))`` over row chunks of at most
    ``_CHUNK_VALUES / n_columns`` rows, so the float64 temporaries stay bounded; the results concatenated."""
    incident_energies = np.asarray(incident_energies, dtype=np.float64).reshape(-1, 1)
    step = max(1, _CHUNK_VALUES // max(1, n_columns))
    starts = range(0, max(len(values), 1), step)  # one empty chunk for no rows keeps the output's shape
    return np.concatenate([function(np.asarray(values[start:start + step], dtype=np.float64),
                                    incident_energies[start:start + step]) for start in starts])


class Representation:
    """Base: a named, fittable map between showers (N, n_voxels) MeV and a network's features.

    Args:
        name: the representation's name (`REPRESENTATIONS`).
        geometry: the `CalorimeterGeometry` (or its config, or a preset name).
        transform: the fitted transform (a `Chain` or a `PointCloudTransform`), or None before ``fit``.
        threshold_mev: the readout threshold: voxels below it are empty (and dequantised below it).
        fitted: whether ``transform`` is fitted (it is when it comes from a stored state).
    """

    kind = None

    def __init__(self, name, geometry, transform, threshold_mev=DS2_THRESHOLD_MEV, fitted=False):
        self.name = name
        self.geometry = geometry  # a CalorimeterGeometry (the subclasses coerce what they are given)
        self.transform = transform
        self.threshold_mev = float(threshold_mev)
        self.is_fitted = fitted

    def _require_fitted(self):
        if not self.is_fitted:
            raise ValueError(f"The '{self.name}' representation is not fitted yet: fit it on training showers first.")

    @property
    def has_density(self):
        """True when the features have a density in the showers' space: the map is one to one, with a log-Jacobian."""
        return self.transform.has_log_det

    def log_det_jacobian(self, incident_energies, showers):
        """log |det d features / d showers| (N,) float64, at showers in MeV (dequantised: no exact zeros)."""
        self._require_fitted()
        if not self.has_density:
            raise ValueError(f"The '{self.name}' representation does not map a shower one to one onto its features, "
                             f"so a likelihood in MeV space is not defined for it; use {density_recipes_sentence()}.")
        return _in_chunks(self.transform.log_det_jacobian, showers, incident_energies, self.geometry.n_voxels)

    def get_state(self):
        """The fitted transform's config (JSON), what a .keras file keeps; None before ``fit``."""
        return serialize(self.transform) if self.is_fitted else None

    def __repr__(self):
        return f"{type(self).__name__}('{self.name}', {self.geometry!r}, {'fitted' if self.is_fitted else 'not fitted'})"


class VoxelRepresentation(Representation):
    """Showers <-> flat feature vectors (N, n_features) by a recipe of `VOXEL_RECIPES`; see the module docstring."""

    kind = "voxels"

    def __init__(self, name, geometry, logit_alpha=1e-6, threshold_mev=DS2_THRESHOLD_MEV, state=None):
        if name not in VOXEL_RECIPES:
            raise ValueError(f"Unknown representation {name!r}; choose one of {', '.join(REPRESENTATIONS)}.")
        geometry = CalorimeterGeometry.coerce(geometry)
        has_scalars, build, _ = VOXEL_RECIPES[name]
        # The log recipes need a positive threshold to place empty voxels, even when no cut is applied.
        transform = Chain(build(geometry, logit_alpha, threshold_mev or DS2_THRESHOLD_MEV)) if state is None \
            else transform_from_config(state)
        super().__init__(name, geometry, transform, threshold_mev, fitted=state is not None)
        self.layout = VoxelLayout(geometry.n_layers if has_scalars else 0, tuple(int(a) for a in geometry.n_alpha),
                                  tuple(int(r) for r in geometry.n_radial), int(name in ONE_TO_ONE_RATIOS))

    def fit(self, incident_energies, showers):
        rows = slice(0, min(len(showers), FIT_ROWS))
        self.transform.fit(np.asarray(showers[rows], dtype=np.float64), np.asarray(incident_energies[rows]))
        self.is_fitted = True
        return self

    def forward(self, incident_energies, showers, seed=None):
        """(N, n_voxels) MeV -> features (N, n_features) float32, chunk by chunk."""
        self._require_fitted()
        return _in_chunks(lambda s, e: self.transform.forward(s, e).astype(np.float32), showers, incident_energies,
                          self.layout.n_features)

    def inverse(self, incident_energies, features):
        """Features (N, n_features) -> showers (N, n_voxels) float32 MeV, chunk by chunk."""
        self._require_fitted()
        return _in_chunks(lambda x, e: self.transform.inverse(x, e).astype(np.float32), features, incident_energies,
                          self.layout.n_features)


class PointCloudRepresentation(Representation):
    """Showers <-> padded point clouds of hits (z, alpha, r, E), scaled by `PointCloudTransform`."""

    kind = "point-cloud"

    def __init__(self, name, geometry, logit_alpha=1e-6, threshold_mev=DS2_THRESHOLD_MEV, state=None, max_hits=None):
        geometry = CalorimeterGeometry.coerce(geometry)
        transform = PointCloudTransform(geometry, max_hits=max_hits, alpha=logit_alpha) if state is None \
            else transform_from_config(state)
        super().__init__(name, geometry, transform, threshold_mev, fitted=state is not None)

    @property
    def layout(self):
        return PointCloudLayout(self.transform.max_hits)

    def fit(self, incident_energies, showers, seed=0):
        rows = slice(0, min(len(showers), FIT_ROWS))
        self.transform.fit(showers[rows], seed=seed)
        self.is_fitted = True
        return self

    def forward(self, incident_energies, showers, seed=None):
        """(N, n_voxels) MeV -> `PointCloud` (points (N, L, 4) float32, mask (N, L) bool), L the fitted
        ``max_hits`` or, if one of these showers has more hits, its number; ``seed`` draws the coordinates'
        dequantisation noise."""
        self._require_fitted()
        rng = np.random.default_rng(seed)
        # held-out showers may have more hits than any training shower: then these clouds are longer
        length = max(self.transform.max_hits, int((np.asarray(showers) > 0).sum(axis=1).max(initial=0)))
        points = np.empty((len(showers), length, len(POINT_FEATURES)), np.float32)
        mask = np.empty((len(showers), length), bool)
        step = max(1, _CHUNK_VALUES // (length * len(POINT_FEATURES)))
        for start in range(0, len(showers), step):  # float64 hits of one chunk at a time
            rows = slice(start, start + step)
            points[rows], mask[rows] = self.transform.forward(showers[rows], seed=rng, max_hits=length)
        return PointCloud(points, mask)

    def inverse(self, incident_energies, features, collisions="sum"):
        """A `PointCloud` (or a (points, mask) pair) -> showers (N, n_voxels) float32 MeV; ``collisions``: what
        hits in one voxel do (`caloedu.data.pointcloud.hits_to_showers`)."""
        self._require_fitted()
        points, mask = features
        return self.transform.inverse(PointCloud(points, mask), collisions=collisions).astype(np.float32)


def make_representation(name, geometry, logit_alpha=1e-6, threshold_mev=DS2_THRESHOLD_MEV, state=None):
    """The representation called ``name`` (`REPRESENTATIONS`), unfitted, or fitted from a stored ``state``."""
    if name == "point-cloud":
        return PointCloudRepresentation(name, geometry, logit_alpha, threshold_mev, state)
    return VoxelRepresentation(name, geometry, logit_alpha, threshold_mev, state)


def describe_representations():
    """One line per representation: what the CLI's --help lists."""
    lines = [f"{name}: {description}" for name, (_, _, description) in VOXEL_RECIPES.items()]
    return lines + ["point-cloud: every hit voxel a point (z, alpha, r, E), padded, with a mask (MDMA)"]


__all__ = ["Representation", "VoxelRepresentation", "PointCloudRepresentation", "VoxelLayout", "PointCloudLayout",
           "REPRESENTATIONS", "VOXEL_RECIPES", "make_representation", "dequantize"]
