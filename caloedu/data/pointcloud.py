"""Showers as point clouds (MDMA, seed 001): every voxel above zero becomes a hit (z, alpha, r, E).

Two steps, each invertible:
1. ``showers_to_hits`` / ``hits_to_showers``: voxels <-> hits in cell units. A hit's coordinates are its
   cell numbers plus uniform dequantisation noise, z = layer + U(0, 1), alpha = angular bin + U(0, 1),
   r = radial bin + U(0, 1), so ``floor`` gives the voxel back; E is the voxel energy (MeV). Showers have
   different numbers of hits: they are padded to ``max_hits`` and come with a boolean mask.
2. `PointCloudTransform`, a `Transform` from showers to the scaled clouds a network sees. Coordinates:
   min-max to [0, 1] (dividing by n_layers, n_alpha, n_radial), logit, standardisation; energy: Box-Cox
   (lambda fitted), standardisation. Its output is a `PointCloud` (points, mask):

    transform = PointCloudTransform(geometry).fit(showers, seed=0)
    cloud = transform.forward(showers, seed=1)           # cloud.points (N, max_hits, 4), cloud.mask (N, max_hits)
    showers_again = transform.inverse(cloud)             # (N, n_voxels) MeV, the same energies
"""

from typing import NamedTuple

import numpy as np
from scipy import special

from caloedu.data.geometry import CalorimeterGeometry
from caloedu.data.transforms import Transform, register_transform

FEATURES = ("z", "alpha", "r", "energy")


class PointCloud(NamedTuple):
    """Padded point clouds: ``points`` (N, max_hits, n_features) and ``mask`` (N, max_hits) bool, True for a hit."""

    points: np.ndarray
    mask: np.ndarray


def _voxel_cells(geometry):
    """For every voxel in file order: its (layer, alpha bin, radial bin), three arrays (n_voxels,)."""
    layers, alphas, radii = [], [], []
    for layer in range(geometry.n_layers):
        n_alpha, n_r = geometry.n_alpha[layer], int(geometry.n_radial[layer])
        if n_r == 0:
            continue
        alpha, r = np.meshgrid(np.arange(n_alpha), np.arange(n_r), indexing="ij")  # r fastest
        layers.append(np.full(alpha.size, layer))
        alphas.append(alpha.reshape(-1))
        radii.append(r.reshape(-1))
    return np.concatenate(layers), np.concatenate(alphas), np.concatenate(radii)


def showers_to_hits(showers, geometry, seed=None, max_hits=None):
    """Voxel showers -> padded hits in cell units.

    Args:
        showers: (N, n_voxels) MeV.
        geometry: their `CalorimeterGeometry`.
        seed: int or Generator for the dequantisation noise.
        max_hits: pad to this many hits (default: the largest number of hits in ``showers``).
    Returns:
        hits (N, max_hits, 4) float64 as (z, alpha, r, E), padding rows 0; mask (N, max_hits) bool.
    """
    geometry.check_showers(showers)
    showers = np.asarray(showers)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    shower_index, voxel_index = np.nonzero(showers > 0)  # row-major: hits of a shower are contiguous
    n_hits = np.bincount(shower_index, minlength=len(showers))
    largest = int(n_hits.max()) if len(showers) else 0
    if max_hits is None:
        max_hits = largest
    elif largest > max_hits:
        raise ValueError(f"A shower has {largest} hits, more than max_hits={max_hits}; raise max_hits.")
    starts = np.concatenate([[0], np.cumsum(n_hits)[:-1]])
    slot = np.arange(len(shower_index)) - starts[shower_index]  # position of each hit in its shower

    layer, alpha, r = _voxel_cells(geometry)
    cells = np.stack([layer[voxel_index], alpha[voxel_index], r[voxel_index]], axis=1)
    hits = np.zeros((len(showers), max_hits, 4))
    hits[shower_index, slot, :3] = cells + rng.uniform(size=cells.shape)
    hits[shower_index, slot, 3] = showers[shower_index, voxel_index]
    mask = np.zeros((len(showers), max_hits), dtype=bool)
    mask[shower_index, slot] = True
    return hits, mask


COLLISIONS = ("sum", "move")


def hits_to_showers(hits, mask, geometry, collisions="sum"):
    """Bin hits (cell units, as `showers_to_hits` makes them) back into voxels.

    Coordinates outside a layer's bins are clipped into its edge bins; hits in empty layers are lost.
    ``collisions``: what happens to hits of one shower that land in the same voxel: "sum" adds their energies
    (the voxel then counts once); "move" keeps one hit per voxel, as a simulated shower has: hits claim their
    voxels in order of energy, and a hit whose voxel is taken moves to the nearest free voxel of its layer
    (nearest in the transverse plane; it stays, and adds up, when its layer is full). A generator draws n hits
    for n hit voxels; with "sum" its showers have fewer.
    Returns (N, n_voxels) float64 MeV.
    """
    if collisions not in COLLISIONS:
        raise ValueError(f"Unknown collisions {collisions!r}; choose one of {', '.join(COLLISIONS)}.")
    hits = np.asarray(hits, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    n = len(hits)
    shower_index, slot = np.nonzero(mask)
    points = hits[shower_index, slot]  # (n_hits, 4)
    layer = np.clip(np.floor(points[:, 0]).astype(np.int64), 0, geometry.n_layers - 1)
    n_alpha = np.asarray(geometry.n_alpha)[layer]
    n_r = geometry.n_radial[layer]
    alpha = np.clip(np.floor(points[:, 1]).astype(np.int64), 0, n_alpha - 1)
    r = np.clip(np.floor(points[:, 2]).astype(np.int64), 0, np.maximum(n_r - 1, 0))
    keep = n_r > 0
    voxel = geometry.layer_boundaries[layer] + alpha * n_r + r
    if collisions == "move":
        voxel = _move_collisions(voxel, shower_index, points, layer, keep, geometry)
    flat = shower_index[keep] * geometry.n_voxels + voxel[keep]
    showers = np.bincount(flat, weights=points[keep, 3], minlength=n * geometry.n_voxels)
    return showers.reshape(n, geometry.n_voxels)


def _transverse_positions(alpha, r, n_alpha):
    """(x, y) in radial-bin units, (n, 2), of positions at angle ``alpha`` (in angular bins of ``n_alpha``) and
    radius ``r`` (in radial bins)."""
    angle = 2 * np.pi * np.asarray(alpha, dtype=np.float64) / n_alpha
    return np.stack([r * np.cos(angle), r * np.sin(angle)], axis=-1)


def _move_collisions(voxel, shower_index, points, layer, keep, geometry):
    """``voxel`` (n_hits,) with every shower's voxels made unique where its layer has room (see
    `hits_to_showers`): the hit of highest energy keeps a voxel, the others move to the nearest free one."""
    voxel = voxel.copy()
    centres = {}  # layer -> transverse centres of its voxels (n_alpha n_r, 2), in file order (r fastest)
    order = np.lexsort((-points[:, 3], shower_index))  # by shower, then by energy, highest first
    starts = np.flatnonzero(np.r_[True, np.diff(shower_index[order]) != 0, True])
    for begin, end in zip(starts[:-1], starts[1:]):
        rows = order[begin:end][keep[order[begin:end]]]
        _, first = np.unique(voxel[rows], return_index=True)
        movers = np.setdiff1d(np.arange(len(rows)), first)
        if not len(movers):
            continue
        taken = np.zeros(geometry.n_voxels, bool)
        taken[voxel[rows[first]]] = True
        for row in rows[np.sort(movers)]:  # in order of energy
            lay = int(layer[row])
            if lay not in centres:
                a, r = np.meshgrid(np.arange(geometry.n_alpha[lay]) + 0.5,
                                   np.arange(int(geometry.n_radial[lay])) + 0.5, indexing="ij")
                centres[lay] = _transverse_positions(a.ravel(), r.ravel(), geometry.n_alpha[lay])
            start = int(geometry.layer_boundaries[lay])
            free = ~taken[start:start + len(centres[lay])]
            if not free.any():
                continue  # the layer is full: the hit adds to its voxel
            position = _transverse_positions(points[row, 1], points[row, 2], geometry.n_alpha[lay])
            distance = np.where(free, np.sum((centres[lay] - position) ** 2, axis=1), np.inf)
            voxel[row] = start + int(np.argmin(distance))
            taken[voxel[row]] = True
    return voxel


@register_transform
class PointCloudTransform(Transform):
    """Voxel showers <-> the scaled, padded point clouds a point-cloud generator learns (MDMA).

    Not a one-to-one map (a shower has fewer hits than voxels, and the dequantisation noise is drawn),
    so it has no log-Jacobian.

    Args:
        geometry: the `CalorimeterGeometry` (or its config, or a preset name).
        max_hits: padding length (default: fitted, the largest number of hits seen by ``fit``).
        alpha: logit squeeze, x' = alpha + (1 - 2 alpha) x, so cell edges stay finite.
    """

    def __init__(self, geometry, max_hits=None, alpha=1e-6, mean=None, std=None, boxcox_lambda=None):
        self.geometry = CalorimeterGeometry.coerce(geometry)
        self.max_hits = None if max_hits is None else int(max_hits)
        self.alpha = float(alpha)
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)
        self.boxcox_lambda = None if boxcox_lambda is None else float(boxcox_lambda)
        # Min-max scale: the cell-unit coordinates run over [0, n_layers), [0, max n_alpha), [0, max n_r).
        geometry = self.geometry
        self._extent = np.array([geometry.n_layers, max(geometry.n_alpha), int(geometry.n_radial.max())], float)

    def _unscaled(self, hits, mask):
        """Cell-unit hits -> (logit coordinates, Box-Cox energy) before standardisation, (N, H, 4)."""
        x = self.alpha + (1.0 - 2.0 * self.alpha) * hits[..., :3] / self._extent
        out = np.zeros(hits.shape)
        out[..., :3] = np.log(x) - np.log1p(-x)
        energies = np.where(mask, hits[..., 3], 1.0)  # padding: any positive value, masked out later
        out[..., 3] = special.boxcox(energies, self.boxcox_lambda)
        return out

    def fit(self, showers, incident_energies=None, seed=None, max_fit_hits=200_000):
        """Fit the padding length, Box-Cox lambda (on at most ``max_fit_hits`` energies) and the scaler."""
        from scipy import stats  # scipy.stats takes a second to import: only when fitting

        hits, mask = showers_to_hits(showers, self.geometry, seed=seed)
        if self.max_hits is None:
            self.max_hits = hits.shape[1]
        energies = hits[..., 3][mask]
        if len(energies) == 0:
            raise ValueError("Cannot fit a PointCloudTransform on showers without any hit.")
        rng = np.random.default_rng(0)
        sample = energies if len(energies) <= max_fit_hits else rng.choice(energies, max_fit_hits, replace=False)
        self.boxcox_lambda = float(stats.boxcox(sample)[1])
        values = self._unscaled(hits, mask)[mask]  # (n_hits, 4)
        self.mean, self.std = values.mean(axis=0), np.maximum(values.std(axis=0), 1e-12)
        return self

    def _check_fitted(self):
        if self.mean is None or self.boxcox_lambda is None or self.max_hits is None:
            raise ValueError("PointCloudTransform is not fitted: call fit(showers) first.")

    def forward(self, showers, incident_energies=None, seed=None, max_hits=None):
        """(N, n_voxels) MeV -> `PointCloud`: points (N, L, 4) float64 (z, alpha, r, E scaled), mask (N, L);
        L = ``max_hits`` (default: the fitted one; it must hold the largest shower)."""
        self._check_fitted()
        hits, mask = showers_to_hits(showers, self.geometry, seed=seed, max_hits=max_hits or self.max_hits)
        points = (self._unscaled(hits, mask) - self.mean) / self.std
        return PointCloud(np.where(mask[..., None], points, 0.0), mask)

    def inverse(self, cloud, incident_energies=None, collisions="sum"):
        """A `PointCloud` (or a (points, mask) pair) -> (N, n_voxels) MeV showers; ``collisions`` as in
        `hits_to_showers` (by default hits in one voxel add up)."""
        self._check_fitted()
        points, mask = cloud
        values = np.asarray(points, dtype=np.float64) * self.std + self.mean
        hits = np.zeros(values.shape)
        x = special.expit(values[..., :3])
        hits[..., :3] = (x - self.alpha) / (1.0 - 2.0 * self.alpha) * self._extent
        energies = special.inv_boxcox(values[..., 3], self.boxcox_lambda)
        hits[..., 3] = np.where(np.isfinite(energies), np.maximum(energies, 0.0), 0.0)  # outside Box-Cox's range
        return hits_to_showers(hits, mask, self.geometry, collisions)

    def get_config(self):
        return {
            "geometry": self.geometry.get_config(),
            "max_hits": self.max_hits,
            "alpha": self.alpha,
            "mean": None if self.mean is None else self.mean.tolist(),
            "std": None if self.std is None else self.std.tolist(),
            "boxcox_lambda": self.boxcox_lambda,
        }
