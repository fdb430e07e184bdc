"""Physics of the GFLASH-style shower simulator, checked with tolerances a calorimeter physicist accepts.

One sample at fixed energies (1 GeV - 1 TeV, DS2) is simulated once per module and shared.
"""

import numpy as np
import pytest

from caloedu.data import (
    PRESETS,
    CalorimeterGeometry,
    ShowerSimulator,
    longitudinal_layer_fractions,
    sample_longitudinal_parameters,
    simulate_showers,
)

ENERGIES_MEV = np.array([1e3, 4e3, 16e3, 64e3, 256e3, 1e6])
SHOWERS_PER_ENERGY = 400


@pytest.fixture(scope="module")
def ds2():
    return CalorimeterGeometry.preset("ds2")


@pytest.fixture(scope="module")
def fixed_energy_showers(ds2):
    energies = np.repeat(ENERGIES_MEV, SHOWERS_PER_ENERGY)
    incident, showers = ShowerSimulator(ds2).simulate(incident_energies=energies, seed=7)
    return incident[:, 0], showers.reshape(len(ENERGIES_MEV), SHOWERS_PER_ENERGY, -1)


def test_shower_maximum_moves_one_x0_deeper_per_efold_of_energy(ds2, fixed_energy_showers):
    _, showers = fixed_energy_showers
    front, back = ds2.layer_depth_x0
    centres = 0.5 * (front + back)
    mean_t_max = [centres[ds2.layer_energies(s).argmax(axis=1)].mean() for s in showers]
    slope, _ = np.polyfit(np.log(ENERGIES_MEV), mean_t_max, 1)
    assert 0.7 <= slope <= 1.3, f"shower maximum moves {slope:.2f} X0 per e-fold of energy, expected ~1"


def test_response_is_flat_in_energy(fixed_energy_showers):
    _, showers = fixed_energy_showers
    response = showers.sum(axis=2).mean(axis=1) / ENERGIES_MEV  # calibrated: E_dep / E_inc ~ 1 - leakage
    assert 0.95 <= response.mean() <= 1.01, f"mean response {response.mean():.3f}, expected ~0.98 (calibrated)"
    deviation = np.abs(response / response.mean() - 1.0)
    assert deviation.max() < 0.03, f"response varies by {deviation.max():.1%} across 1 GeV - 1 TeV: {response}"


def test_resolution_falls_like_stochastic_over_sqrt_e_plus_constant(fixed_energy_showers):
    _, showers = fixed_energy_showers
    totals = showers.sum(axis=2)
    relative = totals.std(axis=1) / totals.mean(axis=1)
    assert np.all(np.diff(relative) < 0), f"sigma/E must fall with energy: {relative}"
    # (sigma/E)^2 = a^2 / E + b^2 is linear in 1/E (E in GeV); weight each point by its relative error
    slope, intercept = np.polyfit(1e3 / ENERGIES_MEV, relative**2, 1, w=1.0 / relative**2)
    a, b = np.sqrt(slope), np.sqrt(max(intercept, 0.0))
    assert 0.15 <= a <= 0.27, f"stochastic term a = {a:.3f}/sqrt(GeV), expected ~0.20 for DS2-like W/Si"
    assert 0.003 <= b <= 0.02, f"constant term b = {b:.4f}, expected ~0.01"


def test_ninety_percent_of_the_energy_within_one_moliere_radius(ds2):
    _, showers = simulate_showers(ds2, 600, seed=3)
    images = ds2.as_images(showers)  # (N, layers, alpha, r): DS2's second radial edge is 9.3 mm = 1 R_M
    inside = images[..., :2].sum() / images.sum()
    assert 0.85 <= inside <= 0.95, f"{inside:.3f} of the energy within 1 R_M, expected ~0.90"


def test_same_seed_same_showers_other_seed_other_showers(ds2):
    a = simulate_showers(ds2, 50, seed=11)
    b = simulate_showers(ds2, 50, seed=11)
    c = simulate_showers(ds2, 50, seed=12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_readout_threshold_leaves_no_voxel_between_zero_and_threshold(ds2):
    _, showers = ShowerSimulator(ds2, threshold_mev=0.5).simulate(200, seed=5, energy_range=(1e3, 1e4))
    assert not np.any((showers > 0) & (showers.astype(np.float64) < 0.5))
    _, showers = simulate_showers(ds2, 100, seed=5)
    assert not np.any((showers > 0) & (showers.astype(np.float64) < 0.01515))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_gives_finite_non_negative_showers(preset):
    geometry = CalorimeterGeometry.preset(preset)
    incident, showers = simulate_showers(geometry, 20, seed=0)
    assert incident.shape == (20, 1) and incident.dtype == np.float64
    assert showers.shape == (20, geometry.n_voxels) and showers.dtype == np.float32
    assert np.all(np.isfinite(showers)) and np.all(showers >= 0)
    assert np.all(showers.sum(axis=1) > 0)


def test_given_energies_are_used_and_range_is_log_uniform(ds2):
    energies = np.array([[2e3], [5e4], [7e5]])
    incident, showers = simulate_showers(ds2, incident_energies=energies, seed=0)
    np.testing.assert_array_equal(incident, energies)
    assert np.allclose(showers.sum(axis=1) / energies[:, 0], 1.0, atol=0.25)
    incident, _ = ShowerSimulator(CalorimeterGeometry.preset("teaching")).simulate(4000, seed=1, energy_range=(1e3, 1e6))
    log_e = np.log10(incident[:, 0])
    assert 3.0 <= log_e.min() and log_e.max() <= 6.0
    assert abs(np.mean(log_e < 4.5) - 0.5) < 0.03, "energies should be log-uniform: half below 31.6 GeV"


def test_batch_size_does_not_change_the_energy_scale(ds2):
    _, small = ShowerSimulator(ds2).simulate(incident_energies=np.full(300, 1e4), seed=2, batch_size=7)
    assert abs(small.sum(axis=1).mean() / 1e4 - 0.99) < 0.02


def test_bad_energies_raise_clear_errors(ds2):
    simulator = ShowerSimulator(ds2)
    with pytest.raises(ValueError, match="at least 100 MeV"):
        simulator.simulate(incident_energies=[50.0])
    with pytest.raises(ValueError, match="number of showers"):
        simulator.simulate()


def test_sampling_fraction_stores_visible_energy(ds2):
    energies = np.full(200, 1e4)
    _, calibrated = ShowerSimulator(ds2).simulate(incident_energies=energies, seed=4)
    _, visible = ShowerSimulator(ds2, sampling_fraction=0.02).simulate(incident_energies=energies, seed=4)
    ratio = visible.sum() / calibrated.sum()
    assert abs(ratio - 0.02) < 0.001, f"visible / calibrated = {ratio:.4f}, expected the sampling fraction 0.02"


def test_longitudinal_parameters_are_correlated_and_grow_with_energy():
    rng = np.random.default_rng(0)
    t_low, alpha_low = sample_longitudinal_parameters(np.full(20000, 1e3), rng)
    t_high, alpha_high = sample_longitudinal_parameters(np.full(20000, 1e6), rng)
    # GFLASH sampling calorimeter: rho(ln T, ln alpha) = 0.784 - 0.023 ln y, ~0.67 at 1 GeV
    rho = np.corrcoef(np.log(t_low), np.log(alpha_low))[0, 1]
    assert 0.6 <= rho <= 0.75, f"corr(ln T, ln alpha) = {rho:.2f}, expected ~0.67 at 1 GeV"
    assert 6.0 <= np.median(t_high) - np.median(t_low) <= 7.5, "T should grow by ~ln(1000) = 6.9 X0"
    assert np.all(alpha_low > 1.0) and np.all(alpha_high > 1.0)


def test_longitudinal_fractions_integrate_the_gamma_profile():
    edges = np.linspace(0.0, 60.0, 301)  # 0.2 X0 layers, deep enough to contain the shower
    fractions = longitudinal_layer_fractions(np.array([5.0, 10.0]), np.array([3.0, 4.0]), edges)
    np.testing.assert_allclose(fractions.sum(axis=1), 1.0, atol=1e-4)  # leakage behind 60 X0
    peak = 0.5 * (edges[1:] + edges[:-1])[fractions.argmax(axis=1)]
    np.testing.assert_allclose(peak, [5.0, 10.0], atol=0.2)  # the maximum of the Gamma profile is T


def test_simulate_command_writes_a_calochallenge_file(tmp_path, capsys):
    from caloedu.cli import main
    from caloedu.data import load_showers

    path = tmp_path / "showers.h5"
    assert main(["simulate", "--geometry", "teaching", "--n", "30", "--seed", "1", "-o", str(path)]) == 0
    incident, showers = load_showers(path, geometry=CalorimeterGeometry.preset("teaching"))
    assert incident.shape == (30, 1) and showers.shape == (30, 960)
    assert "wrote 30 showers" in capsys.readouterr().out
    assert main(["simulate", "--geometry", "teaching", "--n", "30", "-o", str(path)]) == 2  # exists: refused
    assert "--overwrite" in capsys.readouterr().err
    assert main(["simulate", "--geometry", "teaching", "--n", "4", "--energy", "5e4", "-o", str(path), "--overwrite"]) == 0
    np.testing.assert_array_equal(load_showers(path)[0], np.full((4, 1), 5e4))
