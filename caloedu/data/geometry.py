"""Calorimeter geometry in the CaloChallenge layout: layers x angular (alpha) bins x radial bins.

Voxel order (**fixed**, as in the CaloChallenge files): the radial bin runs fastest, then the angular
bin, then the layer. Layer ``l`` holds ``n_alpha[l] * (len(r_edges[l]) - 1)`` voxels; a layer whose
``r_edges`` is ``[0]`` is empty (DS1 uses such layers). Radii are in mm, angles in radians.

The shower axis is the z axis; within a layer a voxel is the ring sector
``r_edges[i] <= r < r_edges[i+1]`` and ``alpha_edges[j] <= alpha < alpha_edges[j+1]`` with
``alpha_edges = linspace(-pi, pi, n_alpha + 1)``. In the CaloChallenge convention the transverse
coordinates are ``eta = r cos(alpha)`` and ``phi = r sin(alpha)`` (both in mm).
"""

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import resources

import numpy as np

# Thickness of one readout layer in radiation lengths, used by the shower simulator. DS2/DS3 read
# 2 x (1.4 mm W + 0.3 mm Si) per layer: 2.8 mm of tungsten (X0 = 3.504 mm) is 0.80 X0.
DS2_LAYER_X0 = 2 * 1.4 / 3.504
# The CaloChallenge DS2/DS3 readout threshold per voxel (15.15 keV): the simulator cuts at it, generators
# set generated voxels below it to 0, and below it a voxel counts as empty.
DS2_THRESHOLD_MEV = 0.01515

# DS1 is the ATLAS barrel at |eta| ~ 0.2: 24 layer ids of which only the EM barrel (0-3) and the tile
# barrel (12-14) have voxels. Approximate depths in X0: presampler with the material in front of it ~2,
# strips 4.3, middle 16, back 2, tile A/BC/D ~ 1.5/4.1/1.8 interaction lengths (~11/30/14 X0). The
# empty ids (outside this eta) get a negligible depth so they do not push the shower deeper.
_EMPTY_X0 = 1e-3
DS1_LAYER_X0 = (2.0, 4.3, 16.0, 2.0, *([_EMPTY_X0] * 8), 11.0, 30.0, 14.0, *([_EMPTY_X0] * 9))

_PRESET_FILES = {
    "ds1-photons": ("binning_dataset_1_photons.xml", DS1_LAYER_X0),
    "ds1-pions": ("binning_dataset_1_pions.xml", DS1_LAYER_X0),
    "ds2": ("binning_dataset_2.xml", DS2_LAYER_X0),
    "ds3": ("binning_dataset_3.xml", DS2_LAYER_X0),
}

# The teaching preset: a DS2-like calorimeter coarse enough to train on a laptop CPU in minutes.
# 12 layers of 2.4 X0 (three DS2 layers each; 28.8 X0 in all, enough to contain 1 TeV showers),
# 10 angular bins and 8 radial bins reaching 4.5 Moliere radii (R_M = 9.3 mm) like DS2.
TEACHING_LAYERS = 12
TEACHING_R_EDGES = (0.0, 2.325, 4.65, 9.3, 13.95, 18.6, 27.9, 37.2, 41.85)
TEACHING_N_ALPHA = 10
TEACHING_LAYER_X0 = 3 * DS2_LAYER_X0

PRESETS = (*_PRESET_FILES, "teaching")


@dataclass(frozen=True)
class VoxelCentres:
    """Per-voxel coordinates, each an array of shape (n_voxels,): layer index, r and alpha of the bin
    centre (mm, rad), and eta = r cos(alpha), phi = r sin(alpha) (mm)."""

    layer: np.ndarray
    r: np.ndarray
    alpha: np.ndarray
    eta: np.ndarray
    phi: np.ndarray


class CalorimeterGeometry:
    """Layers of ring-sector voxels, as described by a CaloChallenge binning file.

    Args:
        r_edges: one sequence of radial bin edges (mm) per layer; ``[0]`` marks an empty layer.
        n_alpha: number of angular bins per layer (an int for all layers, or one per layer).
        name: a label (the preset name, or the file it came from).
        layer_thickness_x0: depth of each readout layer in radiation lengths (float or one per
            layer); the shower simulator needs it, the CaloChallenge files do not carry it.
            Defaults to the DS2 value (0.80 X0).
    """

    def __init__(self, r_edges, n_alpha, name="custom", layer_thickness_x0=None):
        r_edges = [np.asarray(edges, dtype=np.float64).reshape(-1) for edges in r_edges]
        if not r_edges:
            raise ValueError("A calorimeter geometry needs at least one layer; r_edges is empty.")
        if np.isscalar(n_alpha):
            n_alpha = [int(n_alpha)] * len(r_edges)
        n_alpha = [int(n) for n in n_alpha]
        if len(n_alpha) != len(r_edges):
            raise ValueError(
                f"n_alpha has {len(n_alpha)} entries but r_edges describes {len(r_edges)} layers."
            )
        for layer, (edges, n) in enumerate(zip(r_edges, n_alpha)):
            if n < 1:
                raise ValueError(f"Layer {layer} has n_alpha={n}; every layer needs at least one angular bin.")
            if len(edges) == 0 or edges[0] != 0.0:
                raise ValueError(f"Layer {layer}: r_edges must start at 0 mm, got {edges[:3].tolist()}.")
            if np.any(np.diff(edges) <= 0):
                raise ValueError(f"Layer {layer}: r_edges must increase strictly, got {edges.tolist()}.")
        if layer_thickness_x0 is None:
            layer_thickness_x0 = DS2_LAYER_X0
        thickness = np.broadcast_to(np.asarray(layer_thickness_x0, dtype=np.float64), (len(r_edges),))
        if np.any(thickness <= 0):
            raise ValueError("layer_thickness_x0 must be positive for every layer.")
        self.r_edges = r_edges
        self.n_alpha = n_alpha
        self.name = str(name)
        self.layer_thickness_x0 = thickness.copy()

    # --- sizes -------------------------------------------------------------------------------
    @property
    def n_layers(self):
        """Number of layers, the empty ones included."""
        return len(self.r_edges)

    @property
    def n_radial(self):
        """Radial bins per layer, shape (n_layers,); 0 for an empty layer."""
        return np.array([len(edges) - 1 for edges in self.r_edges], dtype=np.int64)

    @property
    def voxels_per_layer(self):
        """Voxels per layer, shape (n_layers,)."""
        return self.n_radial * np.array(self.n_alpha, dtype=np.int64)

    @property
    def n_voxels(self):
        """Total number of voxels: the width of the ``showers`` array."""
        return int(self.voxels_per_layer.sum())

    @property
    def voxel_layer(self):
        """The layer of every voxel in file order, shape (n_voxels,)."""
        return np.repeat(np.arange(self.n_layers), self.voxels_per_layer)

    @property
    def layer_boundaries(self):
        """Voxel index where each layer starts, plus the end: shape (n_layers + 1,)."""
        return np.concatenate([[0], np.cumsum(self.voxels_per_layer)])

    def layer_slice(self, layer):
        """The slice of voxel indices that belong to ``layer``."""
        bounds = self.layer_boundaries
        return slice(int(bounds[layer]), int(bounds[layer + 1]))

    @property
    def is_regular(self):
        """True when every layer has the same (n_alpha, n_radial) and none is empty (DS2, DS3, teaching)."""
        shapes = {(a, r) for a, r in zip(self.n_alpha, self.n_radial)}
        return len(shapes) == 1 and self.n_radial[0] > 0

    @property
    def shape(self):
        """(n_layers, n_alpha, n_radial) for a regular geometry."""
        if not self.is_regular:
            raise ValueError(f"Geometry '{self.name}' has layers of different binning; it has no single image shape.")
        return (self.n_layers, self.n_alpha[0], int(self.n_radial[0]))

    @property
    def layer_depth_x0(self):
        """Depth of each layer's front face and back face in X0: two arrays of shape (n_layers,)."""
        back = np.cumsum(self.layer_thickness_x0)
        return back - self.layer_thickness_x0, back

    # --- coordinates -------------------------------------------------------------------------
    def alpha_edges(self, layer):
        """Angular bin edges of ``layer`` (rad), shape (n_alpha + 1,)."""
        return np.linspace(-np.pi, np.pi, self.n_alpha[layer] + 1)

    def voxel_centres(self):
        """Bin centres of every voxel in file order (see `VoxelCentres`)."""
        layers, radii, alphas = [], [], []
        for layer, edges in enumerate(self.r_edges):
            if len(edges) < 2:
                continue
            r_mid = 0.5 * (edges[1:] + edges[:-1])
            a_edges = self.alpha_edges(layer)
            a_mid = 0.5 * (a_edges[1:] + a_edges[:-1])
            alpha, r = np.meshgrid(a_mid, r_mid, indexing="ij")  # (n_alpha, n_r): r fastest
            radii.append(r.reshape(-1))
            alphas.append(alpha.reshape(-1))
            layers.append(np.full(r.size, layer))
        r = np.concatenate(radii)
        alpha = np.concatenate(alphas)
        return VoxelCentres(np.concatenate(layers), r, alpha, r * np.cos(alpha), r * np.sin(alpha))

    # --- arrays in this geometry ---------------------------------------------------------------
    def check_showers(self, showers, what="showers", error=ValueError):
        """Raise ``error`` (a ValueError) unless ``showers`` has shape (N, n_voxels)."""
        shape = np.shape(showers)
        if len(shape) != 2 or shape[1] != self.n_voxels:
            raise error(
                f"{what} has shape {shape}, which does not fit geometry '{self.name}': "
                f"expected (N, {self.n_voxels}) voxels ({self.n_layers} layers)."
            )

    def as_images(self, showers):
        """Reshape (N, n_voxels) showers to (N, n_layers, n_alpha, n_radial) for a regular geometry."""
        self.check_showers(showers)
        return np.reshape(showers, (len(showers), *self.shape))

    def layer_energies(self, showers):
        """Energy in each layer, shape (N, n_layers), in the unit of ``showers`` (MeV)."""
        self.check_showers(showers)
        showers = np.asarray(showers)
        out = np.zeros((len(showers), self.n_layers), dtype=showers.dtype)
        bounds = self.layer_boundaries
        for layer in range(self.n_layers):
            if bounds[layer + 1] > bounds[layer]:
                out[:, layer] = showers[:, bounds[layer]:bounds[layer + 1]].sum(axis=1)
        return out

    # --- construction ----------------------------------------------------------------------------
    @classmethod
    def from_xml(cls, path, layer_thickness_x0=None, name=None):
        """Read a CaloChallenge binning file (``<Bins><Bin><Layer r_edges=... n_bin_alpha=.../>``)."""
        try:
            root = ET.parse(path).getroot()
        except (ET.ParseError, OSError) as err:
            raise ValueError(f"Cannot read the binning file {path}: {err}") from err
        layers = root.findall("./Bin/Layer")
        if not layers:
            raise ValueError(f"{path} has no <Bin><Layer .../></Bin> elements; is it a CaloChallenge binning file?")
        for position, element in enumerate(layers, start=1):
            layer_id = element.get("id", "0")
            if not layer_id.strip().isdigit():
                raise ValueError(f"{path}: <Layer> number {position} has id=\"{layer_id}\"; a layer id is a whole "
                                 "number >= 0 (0 for the front layer).")
        r_edges, n_alpha = [], []
        for element in sorted(layers, key=lambda e: int(e.get("id", "0"))):
            try:
                r_edges.append([float(x) for x in element.get("r_edges").split(",")])
                n_alpha.append(int(element.get("n_bin_alpha")))
            except (AttributeError, TypeError, ValueError) as err:
                raise ValueError(
                    f"{path}: layer {element.get('id')} needs r_edges='0,...' and n_bin_alpha='k' attributes."
                ) from err
        return cls(r_edges, n_alpha, name=name or str(path), layer_thickness_x0=layer_thickness_x0)

    @classmethod
    def preset(cls, name):
        """A named geometry: 'ds1-photons', 'ds1-pions', 'ds2', 'ds3' or 'teaching'."""
        if name == "teaching":
            return cls(
                [TEACHING_R_EDGES] * TEACHING_LAYERS,
                TEACHING_N_ALPHA,
                name="teaching",
                layer_thickness_x0=TEACHING_LAYER_X0,
            )
        if name not in _PRESET_FILES:
            raise ValueError(f"Unknown geometry preset '{name}'; choose one of {', '.join(PRESETS)}.")
        filename, thickness = _PRESET_FILES[name]
        path = resources.files("caloedu.data") / "binning" / filename
        with resources.as_file(path) as real_path:
            return cls.from_xml(real_path, layer_thickness_x0=thickness, name=name)

    @classmethod
    def coerce(cls, geometry):
        """A `CalorimeterGeometry` from itself, its config dict (as .keras files store it), a preset name
        or the path of a binning .xml file: what every constructor that takes a geometry accepts."""
        if isinstance(geometry, CalorimeterGeometry):
            return geometry
        if isinstance(geometry, dict):
            return cls.from_config(geometry)
        if isinstance(geometry, (str, os.PathLike)):
            return cls.from_name_or_path(os.fspath(geometry))
        raise ValueError(f"A geometry is a CalorimeterGeometry, a preset name ({', '.join(PRESETS)}) or a binning "
                         f".xml path; got {type(geometry).__name__}.")

    @classmethod
    def from_name_or_path(cls, name_or_path):
        """A preset name or the path of a binning XML file (what the CLI's --geometry takes)."""
        if name_or_path in PRESETS:
            return cls.preset(name_or_path)
        if str(name_or_path).endswith(".xml"):
            return cls.from_xml(name_or_path)
        raise ValueError(
            f"Geometry '{name_or_path}' is neither a preset ({', '.join(PRESETS)}) nor a binning .xml file."
        )

    # --- serialization (generators store their geometry in .keras files) --------------------------
    def get_config(self):
        return {
            "r_edges": [edges.tolist() for edges in self.r_edges],
            "n_alpha": list(self.n_alpha),
            "name": self.name,
            "layer_thickness_x0": self.layer_thickness_x0.tolist(),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        if not isinstance(other, CalorimeterGeometry):
            return NotImplemented
        return (
            self.n_alpha == other.n_alpha
            and len(self.r_edges) == len(other.r_edges)
            and all(np.array_equal(a, b) for a, b in zip(self.r_edges, other.r_edges))
            and np.allclose(self.layer_thickness_x0, other.layer_thickness_x0)
        )

    def __repr__(self):
        desc = "x".join(map(str, self.shape)) if self.is_regular else f"{self.n_layers} layers"
        return f"CalorimeterGeometry('{self.name}', {desc}, n_voxels={self.n_voxels})"
