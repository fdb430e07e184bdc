"""Calorimeter data: geometry, the GFLASH-style shower simulator, CaloChallenge HDF5 files, transforms and the
representations generators learn (flat feature vectors, point clouds).

Names load from their modules on first use (``from caloedu.data import load_showers`` works as usual), so that
``caloedu --help`` or a geometry lookup does not import h5py and scipy.
"""

from caloedu.lazy import lazy_exports

_EXPORTS = {
    "geometry": ("CalorimeterGeometry", "VoxelCentres", "PRESETS", "DS2_THRESHOLD_MEV"),
    "gflash": ("SamplingMedium", "sample_longitudinal_parameters", "longitudinal_layer_fractions", "radial_cdf"),
    "simulation": ("ShowerSimulator", "simulate_showers"),
    "io": ("save_showers", "load_showers", "iter_showers", "count_showers", "recorded_geometry", "ShowerFileError"),
    "checks": ("check_incident_energies", "check_showers", "check_energy_units"),
    "transforms": ("Transform", "Chain", "LogitTransform", "LogEnergyCondition", "Standardizer",
                   "register_transform", "transform_from_config"),
    "ratios": ("EnergyRatioTransform", "energy_ratios", "layer_energies_from_ratios"),
    "pointcloud": ("PointCloudTransform", "PointCloud", "showers_to_hits", "hits_to_showers"),
    "representation": ("Representation", "VoxelRepresentation", "PointCloudRepresentation", "VoxelLayout",
                       "PointCloudLayout", "REPRESENTATIONS", "make_representation", "dequantize"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
