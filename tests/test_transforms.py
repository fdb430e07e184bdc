"""Preprocessing transforms and point clouds: exact inverses on simulated showers, JSON configs."""

import json

import numpy as np
import pytest

from caloedu.data import (
    CalorimeterGeometry,
    Chain,
    EnergyRatioTransform,
    LogEnergyCondition,
    LogitTransform,
    PointCloudTransform,
    Standardizer,
    hits_to_showers,
    showers_to_hits,
    simulate_showers,
    transform_from_config,
)
from caloedu.data.transforms import serialize


@pytest.fixture(scope="module", params=["teaching", "ds1-photons"])
def sample(request):
    geometry = CalorimeterGeometry.preset(request.param)
    incident, showers = simulate_showers(geometry, 60, seed=1)
    return geometry, incident, showers


def test_energy_ratios_invert_to_the_same_showers(sample):
    geometry, incident, showers = sample
    transform = EnergyRatioTransform(geometry)
    x = transform.forward(showers, incident)
    assert x.shape == (len(showers), geometry.n_layers + geometry.n_voxels)
    assert np.all(np.isfinite(x)), "empty layers must give 0, not NaN"
    np.testing.assert_allclose(x[:, 0], showers.sum(axis=1) / incident[:, 0], rtol=1e-6)
    assert np.all((x[:, 1:] >= 0) & (x[:, 1:] <= 1 + 1e-12))
    np.testing.assert_allclose(transform.inverse(x, incident), showers, rtol=1e-6, atol=1e-9)


def test_energy_ratios_are_the_u_variables_and_their_inverse():
    from caloedu.data import energy_ratios, layer_energies_from_ratios

    u = energy_ratios(np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 2.0, 0.0]]), np.array([20.0, 10.0]))
    np.testing.assert_allclose(u, [[0.5, 1 / 10, 2 / 9, 3 / 7], [0.2, 0.0, 0.0, 1.0]])
    np.testing.assert_allclose(layer_energies_from_ratios(u, np.array([[20.0], [10.0]])),
                               [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 2.0, 0.0]], atol=1e-12)


def test_energy_ratios_of_an_empty_shower_are_zero_not_nan():
    geometry = CalorimeterGeometry.preset("teaching")
    transform = EnergyRatioTransform(geometry)
    x = transform.forward(np.zeros((2, geometry.n_voxels)), np.full((2, 1), 1e3))
    assert np.all(x == 0)
    assert np.all(transform.inverse(x, np.full((2, 1), 1e3)) == 0)


def test_logit_round_trip_and_range_check():
    x = np.array([[0.0, 1e-7, 0.3, 1.0]])
    logit = LogitTransform(alpha=1e-6)
    np.testing.assert_allclose(logit.inverse(logit.forward(x)), x, atol=1e-12)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        logit.forward(np.array([1.2]))


def test_log_energy_condition_maps_the_range_to_unit_interval():
    condition = LogEnergyCondition(1e3, 1e6)
    np.testing.assert_allclose(condition.forward(np.array([1e3, 10**4.5, 1e6])), [0.0, 0.5, 1.0])
    energies = np.array([[1234.5], [987654.0]])
    np.testing.assert_allclose(condition.inverse(condition.forward(energies)), energies, rtol=1e-12)


def test_standardizer_fits_zero_mean_unit_std_and_keeps_constant_features():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(500, 3))
    x[:, 2] = 7.0
    scaler = Standardizer().fit(x)
    y = scaler.forward(x)
    np.testing.assert_allclose(y[:, :2].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(y[:, :2].std(axis=0), 1.0, rtol=1e-12)
    assert np.all(y[:, 2] == 0)
    np.testing.assert_allclose(scaler.inverse(y), x, rtol=1e-12)
    with pytest.raises(ValueError, match="not fitted"):
        Standardizer().forward(x)


def test_chain_round_trip_and_json_config(sample):
    geometry, incident, showers = sample
    chain = Chain([EnergyRatioTransform(geometry, response_scale=2.0), LogitTransform(), Standardizer()])
    x = chain.fit(showers, incident).forward(showers, incident)
    rebuilt = transform_from_config(json.loads(json.dumps(serialize(chain))))
    np.testing.assert_allclose(rebuilt.forward(showers, incident), x, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rebuilt.inverse(x, incident), showers, rtol=1e-5, atol=1e-6)


def test_voxels_to_hits_to_voxels_returns_the_same_showers(sample):
    geometry, _, showers = sample
    hits, mask = showers_to_hits(showers, geometry, seed=0)
    assert hits.shape == (len(showers), mask.sum(axis=1).max(), 4)
    np.testing.assert_array_equal(mask.sum(axis=1), (showers > 0).sum(axis=1))
    np.testing.assert_allclose(hits[..., 3].sum(axis=1), showers.sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(hits_to_showers(hits, mask, geometry), showers, rtol=1e-12)


def test_point_cloud_transform_round_trip_and_scaling(sample):
    geometry, _, showers = sample
    cloud = PointCloudTransform(geometry).fit(showers, seed=0)
    points, mask = cloud.forward(showers, seed=1)  # a PointCloud: (points, mask)
    assert points.shape == (len(showers), cloud.max_hits, 4)
    values = points[mask]
    np.testing.assert_allclose(values.mean(axis=0), 0.0, atol=0.1)  # standardised (different noise draw)
    np.testing.assert_allclose(values.std(axis=0), 1.0, atol=0.1)
    assert np.all(points[~mask] == 0)
    rebuilt = PointCloudTransform.from_config(json.loads(json.dumps(cloud.get_config())))
    np.testing.assert_allclose(rebuilt.inverse((points, mask)), showers, rtol=1e-6, atol=1e-9)
    assert isinstance(transform_from_config(serialize(cloud)), PointCloudTransform), "a registered Transform"
    with pytest.raises(ValueError, match="max_hits"):
        PointCloudTransform(geometry, max_hits=1).fit(showers).forward(showers)
