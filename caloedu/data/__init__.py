"""Calorimeter data: geometry, the GFLASH-style shower simulator, CaloChallenge HDF5 files, transforms."""

from caloedu.data.geometry import PRESETS, CalorimeterGeometry, VoxelCentres

__all__ = ["CalorimeterGeometry", "VoxelCentres", "PRESETS"]
