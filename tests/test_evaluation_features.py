"""High-level features on hand-made showers with known answers (CaloChallenge definitions)."""

import caloedu  # noqa: F401  (selects the torch backend first)
import numpy as np
import pytest

from caloedu.data import CalorimeterGeometry
from caloedu.evaluation import features as features_module
from caloedu.evaluation import (
    compute_features,
    feature_distributions,
    high_level_classifier_inputs,
    low_level_classifier_inputs,
)


@pytest.fixture(scope="module")
def geometry():
    return CalorimeterGeometry.preset("teaching")


def test_single_hit_voxel_gives_its_centre_and_zero_width(geometry):
    centres = geometry.voxel_centres()
    voxel = geometry.layer_slice(3).start + 17  # layer 3, some off-axis voxel
    showers = np.zeros((1, geometry.n_voxels), dtype=np.float32)
    showers[0, voxel] = 2500.0
    f = compute_features([[5000.0]], showers, geometry)
    assert f.energy_ratio[0] == pytest.approx(0.5, rel=1e-12)
    assert f.layer_energies[0, 3] == pytest.approx(2500.0)
    assert f.centre_eta[0, 3] == pytest.approx(centres.eta[voxel], abs=1e-9)
    assert f.centre_phi[0, 3] == pytest.approx(centres.phi[voxel], abs=1e-9)
    assert f.width_eta[0, 3] == pytest.approx(0.0, abs=1e-4)
    assert f.width_phi[0, 3] == pytest.approx(0.0, abs=1e-4)
    assert f.sparsity[0, 3] == pytest.approx(1 - 1 / geometry.voxels_per_layer[3])  # CaloChallenge: empty fraction
    # Layers without energy: every feature 0, never NaN.
    for array in (f.centre_eta, f.centre_phi, f.width_eta, f.width_phi, f.sparsity, f.layer_energies):
        assert np.all(np.isfinite(array))
    for array in (f.centre_eta, f.centre_phi, f.width_eta, f.width_phi, f.layer_energies):
        assert np.all(np.delete(array[0], 3) == 0.0)
    assert np.all(np.delete(f.sparsity[0], 3) == 1.0), "a layer without energy is all empty voxels: sparsity 1"
    np.testing.assert_allclose(f.voxel_energies, [2500.0])


def test_two_equal_hits_give_midpoint_centre_and_half_distance_width(geometry):
    centres = geometry.voxel_centres()
    lo = geometry.layer_slice(0).start
    a, b = lo + 2, lo + 5 * 8 + 2  # same radius, alpha bins 0 and 5: opposite sides of the axis
    showers = np.zeros((1, geometry.n_voxels))
    showers[0, [a, b]] = 100.0
    f = compute_features([[1000.0]], showers, geometry)
    assert f.centre_eta[0, 0] == pytest.approx(0.5 * (centres.eta[a] + centres.eta[b]), abs=1e-9)
    assert f.width_eta[0, 0] == pytest.approx(0.5 * abs(centres.eta[a] - centres.eta[b]), rel=1e-9)
    assert f.width_phi[0, 0] == pytest.approx(0.5 * abs(centres.phi[a] - centres.phi[b]), rel=1e-9)


def test_chunked_computation_matches_one_pass(geometry, monkeypatch):
    rng = np.random.default_rng(0)
    showers = rng.exponential(1.0, (50, geometry.n_voxels)) * (rng.random((50, geometry.n_voxels)) < 0.3)
    energies = rng.uniform(1e3, 1e4, (50, 1))
    whole = compute_features(energies, showers, geometry)
    monkeypatch.setattr(features_module, "_CHUNK_VALUES", geometry.n_voxels * 7)  # 7 showers per chunk
    chunked = compute_features(energies, showers, geometry)
    for name in ("energy_ratio", "layer_energies", "centre_eta", "width_phi", "sparsity"):
        np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), rtol=1e-12)


def test_classifier_inputs_follow_calochallenge(geometry):
    rng = np.random.default_rng(1)
    showers = rng.exponential(1.0, (20, geometry.n_voxels))
    showers[0, geometry.layer_slice(0)] = 0.0  # an empty layer: the log must stay finite
    energies = rng.uniform(1e3, 1e6, (20, 1))
    high = high_level_classifier_inputs(energies, showers, geometry)
    assert high.shape == (20, 2 + 6 * geometry.n_layers)
    assert np.all(np.isfinite(high))
    assert high[0, 1] == pytest.approx(np.log10(features_module.LOG_EPSILON))
    low = low_level_classifier_inputs(energies, showers, geometry)
    assert low.shape == (20, 1 + geometry.n_voxels)
    np.testing.assert_allclose(low[:, 0], np.log10(energies[:, 0]), rtol=1e-6)
    np.testing.assert_allclose(low[:, 1:].sum(axis=1), showers.sum(axis=1) / energies[:, 0], rtol=1e-5)


def test_distributions_skip_layers_without_voxels():
    geometry = CalorimeterGeometry.preset("ds1-photons")  # some layers have r_edges = [0]: no voxels
    showers = np.random.default_rng(2).exponential(1.0, (10, geometry.n_voxels))
    f = compute_features(np.full((10, 1), 1e4), showers, geometry)
    names = [dist.name for dist in feature_distributions(f)]
    occupied = np.flatnonzero(geometry.voxels_per_layer > 0)
    assert names[0] == "E_ratio" and names[-1] == "voxel_energy"
    assert len(names) == 2 + 6 * len(occupied)
    assert all(f"E_layer_{layer:02d}" in names for layer in occupied)


def test_wrong_shapes_are_refused(geometry):
    with pytest.raises(ValueError, match="does not fit geometry"):
        compute_features(np.ones((3, 1)), np.ones((3, 10)), geometry)
    with pytest.raises(ValueError, match="incident energies"):
        compute_features(np.ones((2, 1)), np.ones((3, geometry.n_voxels)), geometry)
