"""Separation power, JSD and the timing helper on cases with known answers."""

import time

import caloedu  # noqa: F401  (selects the torch backend first)
import numpy as np
import pytest

from caloedu.data import CalorimeterGeometry, simulate_showers
from caloedu.evaluation import (
    compute_features,
    histogram_with_overflow,
    jensen_shannon_divergence,
    jsd_from_bce,
    separation_power,
    separation_powers,
    time_per_shower,
)


def test_separation_power_is_zero_for_identical_samples():
    values = np.random.default_rng(0).normal(size=1000)
    assert separation_power(values, values) == 0.0
    assert jensen_shannon_divergence(values, values) == 0.0


def test_separation_power_is_one_for_disjoint_samples():
    reference = np.random.default_rng(0).uniform(0, 1, 500)
    generated = reference + 10.0  # all in the overflow bin of the reference binning
    assert separation_power(reference, generated) == pytest.approx(1.0)
    assert jensen_shannon_divergence(reference, generated) == pytest.approx(1.0)
    assert separation_power(reference, np.full(10, np.nan)) == pytest.approx(1.0)  # NaN counts against


def test_separation_power_of_known_histograms():
    # h1 = [1, 0], h2 = [1/2, 1/2]: S = 1/2 (0.25 / 1.5 + 0.25 / 0.5) = 1/3
    assert separation_power([0.25, 0.25], [0.25, 0.75], bins=[0.0, 0.5, 1.0]) == pytest.approx(1 / 3)


def test_histogram_counts_every_value_once():
    counts = histogram_with_overflow([np.nan, -1.0, 0.0, 0.5, 1.0, 2.0, np.inf], np.array([0.0, 0.5, 1.0]))
    np.testing.assert_array_equal(counts, [2, 1, 1, 2, 1])  # non-finite, under, [0, .5), [.5, 1], over


def test_jsd_from_bce_limits():
    assert jsd_from_bce(np.log(2.0)) == pytest.approx(0.0)
    assert jsd_from_bce(0.0) == pytest.approx(1.0)


def test_independent_simulations_have_small_separation_powers():
    geometry = CalorimeterGeometry.preset("teaching")
    reference = compute_features(*simulate_showers(geometry, 2000, seed=11), geometry)
    generated = compute_features(*simulate_showers(geometry, 2000, seed=12), geometry)
    powers = separation_powers(reference, generated)
    assert len(powers) == 2 + 6 * geometry.n_layers
    # 50 bins and 2000 showers each give S ~ 50 / (2 * 2000) = 0.0125 from statistics alone.
    assert max(powers.values()) < 0.04


def test_time_per_shower_measures_the_sampler():
    def sampler(incident_energies):
        time.sleep(0.01)  # 10 ms per batch of 10 showers: 1 ms per shower
        return np.zeros((len(incident_energies), 5))

    ms = time_per_shower(sampler, np.ones((40, 1)), batch_size=10, repeats=3)
    assert 0.9 < ms < 3.0
    with pytest.raises(ValueError):
        time_per_shower(sampler, np.ones((0, 1)))
