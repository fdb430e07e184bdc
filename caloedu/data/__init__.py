"""Calorimeter data: geometry, the GFLASH-style shower simulator, CaloChallenge HDF5 files, transforms."""

from caloedu.data.geometry import PRESETS, CalorimeterGeometry, VoxelCentres
from caloedu.data.gflash import (
    SamplingMedium,
    longitudinal_layer_fractions,
    radial_cdf,
    sample_longitudinal_parameters,
)
from caloedu.data.io import ShowerFileError, count_showers, iter_showers, load_showers, save_showers
from caloedu.data.pointcloud import PointCloudTransform, hits_to_showers, showers_to_hits
from caloedu.data.simulation import ShowerSimulator, simulate_showers
from caloedu.data.transforms import (
    Chain,
    EnergyRatioTransform,
    LogEnergyCondition,
    LogitTransform,
    Standardizer,
    transform_from_config,
)

__all__ = [
    "CalorimeterGeometry",
    "VoxelCentres",
    "PRESETS",
    "ShowerSimulator",
    "simulate_showers",
    "SamplingMedium",
    "sample_longitudinal_parameters",
    "longitudinal_layer_fractions",
    "radial_cdf",
    "save_showers",
    "load_showers",
    "iter_showers",
    "count_showers",
    "ShowerFileError",
    "EnergyRatioTransform",
    "LogitTransform",
    "LogEnergyCondition",
    "Standardizer",
    "Chain",
    "transform_from_config",
    "PointCloudTransform",
    "showers_to_hits",
    "hits_to_showers",
]
