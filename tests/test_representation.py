"""Representations (caloedu.data.representation): every one inverts to the showers it came from and survives
a JSON round trip; layouts say where the u-variables and the voxels sit; the log-Jacobian of the ones with a
density is the log-determinant of the full Jacobian, and a density built on it integrates to 1 in MeV."""

import json

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import numpy as np
import pytest
from scipy import stats

from caloedu.data import CalorimeterGeometry, simulate_showers
from caloedu.data.geometry import DS2_THRESHOLD_MEV
from caloedu.data.representation import REPRESENTATIONS, dequantize, make_representation

GEOMETRY = CalorimeterGeometry.preset("teaching")


@pytest.fixture(scope="module")
def showers():
    return simulate_showers(GEOMETRY, 300, seed=3)


@pytest.mark.parametrize("name", REPRESENTATIONS)
def test_representation_round_trips_showers_and_its_state(name, showers):
    incident_energies, raw = showers
    if name == "inn-gap":  # the logarithm of the shares needs them positive: dequantised showers
        raw = dequantize(raw, DS2_THRESHOLD_MEV, np.random.default_rng(0))
    representation = make_representation(name, GEOMETRY).fit(incident_energies, raw)
    features = representation.forward(incident_energies, raw, seed=1)
    back = representation.inverse(incident_energies, features)
    assert back.dtype == np.float32
    # float32 features: relative precision ~1e-6 of E_inc per voxel is plenty.
    np.testing.assert_allclose(back, raw, atol=1e-4 * incident_energies.max(), rtol=1e-3)
    state = json.loads(json.dumps(representation.get_state()))
    again = make_representation(name, GEOMETRY, state=state)
    assert again.is_fitted
    np.testing.assert_array_equal(again.inverse(incident_energies, features), back)


def test_voxel_layout_places_u_variables_first_and_voxels_in_file_order():
    energy = make_representation("energy-gap", GEOMETRY).layout
    plain = make_representation("voxel-ratios", GEOMETRY).layout
    assert (energy.n_scalars, plain.n_scalars) == (GEOMETRY.n_layers, 0)
    assert energy.n_features == GEOMETRY.n_layers + GEOMETRY.n_voxels and plain.n_features == GEOMETRY.n_voxels
    assert energy.ring_shape == (12, 10, 8) and energy.layer_slice(1) == slice(12 + 80, 12 + 160)
    ds1 = make_representation("energy-ratios", CalorimeterGeometry.preset("ds1-photons")).layout
    assert not ds1.is_regular
    with pytest.raises(ValueError, match="no ring shape"):
        ds1.ring_shape


def test_point_cloud_representation_pads_to_the_fitted_multiplicity(showers):
    incident_energies, raw = showers
    representation = make_representation("point-cloud", GEOMETRY)
    assert representation.layout.max_hits is None
    representation.fit(incident_energies, raw)
    points, mask = representation.forward(incident_energies, raw, seed=0)
    assert representation.layout.max_hits == (raw > 0).sum(axis=1).max() == points.shape[1]
    np.testing.assert_array_equal(mask.sum(axis=1), (raw > 0).sum(axis=1))
    assert points.dtype == np.float32 and np.all(points[~mask] == 0)


def numeric_log_det(representation, incident_energies, shower, step=1e-6):
    """log |det J| of the map shower -> features by central differences, in float64."""
    def features(e):
        return representation.transform.forward(e[None, :], incident_energies[None, :])[0]

    columns = []
    for i in range(len(shower)):
        h = step * max(shower[i], 1e-3)
        up, down = shower.copy(), shower.copy()
        up[i] += h
        down[i] -= h
        columns.append((features(up) - features(down)) / (2 * h))
    return np.linalg.slogdet(np.stack(columns, axis=1))[1]


@pytest.mark.parametrize("name", ["voxel-ratios", "log-ratios"])
def test_log_det_jacobian_is_the_log_determinant_of_the_full_jacobian(name):
    geometry = CalorimeterGeometry([[0.0, 5.0, 20.0]] * 2, 2, name="tiny")  # 2 layers x 2 x 2 = 8 voxels
    rng = np.random.default_rng(0)
    incident_energies = np.array([[5e3], [2e4], [8e4]])
    raw = rng.exponential(300.0, size=(3, 8)) * (rng.uniform(size=(3, 8)) < 0.7)
    representation = make_representation(name, geometry).fit(incident_energies, raw)
    assert representation.has_density
    dequantized = dequantize(raw, representation.threshold_mev, rng)
    analytic = representation.log_det_jacobian(incident_energies, dequantized)
    numeric = [numeric_log_det(representation, incident_energies[i], dequantized[i]) for i in range(3)]
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5)


def test_representations_with_redundant_features_have_no_density(showers):
    representation = make_representation("energy-gap", GEOMETRY).fit(*showers)
    assert not representation.has_density
    with pytest.raises(ValueError, match="one to one"):
        representation.log_det_jacobian(*showers)


def test_a_gaussian_in_feature_space_is_a_normalised_density_in_mev():
    # Two voxels, one shower energy: p(E) = N(x(E)) |det dx/dE| must integrate to 1 over E in [0, E_inc]^2.
    # The grid is uniform in logit space and the volume of each cell is measured in MeV, so the integral
    # checks the analytic Jacobian against the grid's own geometry.
    geometry = CalorimeterGeometry([[0.0, 5.0, 20.0]], 1, name="two voxels")
    e_inc = 1e4
    rng = np.random.default_rng(1)
    raw = e_inc * rng.beta(2.0, 5.0, size=(500, 2)) * 0.5
    representation = make_representation("voxel-ratios", geometry).fit(np.full((500, 1), e_inc), raw)
    z = np.linspace(-14.0, 14.0, 401)
    edges = e_inc * (1 / (1 + np.exp(-z)))  # voxel energies, MeV, dense near 0 and near E_inc
    centres = 0.5 * (edges[1:] + edges[:-1])
    widths = np.diff(edges)
    grid = np.stack(np.meshgrid(centres, centres, indexing="ij"), axis=-1).reshape(-1, 2)
    energies = np.full((len(grid), 1), e_inc)
    x = representation.forward(energies, grid).astype(np.float64)
    log_density = stats.norm.logpdf(x).sum(axis=1) + representation.log_det_jacobian(energies, grid)
    integral = np.sum(np.exp(log_density) * np.outer(widths, widths).reshape(-1))
    # N(0, 1) in the standardised logit space puts ~all its mass inside the grid.
    assert integral == pytest.approx(1.0, abs=0.01)
