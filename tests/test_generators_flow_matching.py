"""FlowMatchingGenerator: the CFM loss falls while training, every architecture, preprocessing and
prediction runs, the networks see the calorimeter as designed, the time budget stops training."""

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import keras
import numpy as np
import pytest

from caloedu.data import CalorimeterGeometry, simulate_showers
from caloedu.generators import FlowMatchingGenerator, TimeBudget
from caloedu.generators.velocity import LayerTransformerVelocity, RingMeanFieldVelocity

GEOMETRY = CalorimeterGeometry.preset("teaching")


@pytest.fixture(scope="module")
def showers():
    return simulate_showers(GEOMETRY, 400, seed=5)


def test_cfm_loss_decreases_over_a_few_epochs(showers):
    keras.utils.set_random_seed(1)
    generator = FlowMatchingGenerator(GEOMETRY, hidden_units=128, n_blocks=2, embedding_units=32, seed=1,
                                      ema_momentum=None)
    losses = generator.fit(*showers, epochs=6, batch_size=50, verbose=0).history["loss"]
    # Untrained, v ~ 0 gives a loss of ~2 (|eps - x_0|^2 per standardised feature); learning the mean
    # flow alone brings it well below.
    assert losses[0] > losses[-1], f"loss did not fall: {losses}"
    assert losses[-1] < 0.85 * losses[0], f"loss fell by less than 15%: {losses}"


@pytest.mark.parametrize("preprocessing", ["voxel-ratios", "energy-ratios"])
def test_transformer_over_layers_trains_and_samples(showers, preprocessing):
    generator = FlowMatchingGenerator(GEOMETRY, architecture="transformer", preprocessing=preprocessing, d_model=32,
                                      num_heads=2, d_ff=64, num_blocks=1, embedding_units=16, steps=2, seed=0)
    history = generator.fit(*showers, epochs=1, batch_size=100, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    generated = generator.sample([1e3, 1e5], solver="euler", steps=2, seed=0)
    assert generated.shape == (2, GEOMETRY.n_voxels) and np.all(generated >= 0)


def test_transformer_tokens_are_layers(showers):
    # Token l must hold exactly layer l's voxels (and u_l): changing one layer's voxels changes the
    # input of one token only, which shows in the output of every layer only through attention.
    velocity = LayerTransformerVelocity(12, 80, n_scalars=12, d_model=16, num_heads=2, d_ff=16, num_blocks=0)
    velocity.build()
    x = np.zeros((1, 12 + 960), np.float32)
    t = c = np.zeros((1, 1), np.float32)
    base = keras.ops.convert_to_numpy(velocity((x, t, c)))
    x[0, 12 + 3 * 80: 12 + 4 * 80] = 1.0  # layer 3's voxels
    changed = np.abs(keras.ops.convert_to_numpy(velocity((x, t, c))) - base) > 1e-6
    shapes = changed[0, 12:].reshape(12, 80).any(axis=1)
    assert shapes.tolist() == [i == 3 for i in range(12)] and changed[0, :12].tolist() == [i == 3 for i in range(12)]


def test_solvers_and_steps_are_sample_options(showers):
    generator = FlowMatchingGenerator(GEOMETRY, hidden_units=32, n_blocks=1, embedding_units=8, seed=0)
    generator.fit(*showers, epochs=1, batch_size=200, verbose=0)
    for solver in ("euler", "midpoint", "rk4"):
        assert generator.sample([5e4], solver=solver, steps=3, seed=0).shape == (1, GEOMETRY.n_voxels)
    with pytest.raises(ValueError, match="steps"):
        generator.sample([5e4], steps=0)


def test_time_budget_stops_training_and_restores_the_learning_rate(showers):
    generator = FlowMatchingGenerator(GEOMETRY, hidden_units=32, n_blocks=1, embedding_units=8, seed=0)
    budget = TimeBudget(minutes=0.02)  # 1.2 s
    history = generator.fit(*showers, epochs=10_000, batch_size=20, callbacks=[budget], verbose=0)
    assert budget.stopped_early and len(history.history["loss"]) < 10_000
    assert float(keras.ops.convert_to_numpy(generator.optimizer.learning_rate)) == pytest.approx(1e-3)
    assert budget.learning_rate_factor(0.5) == pytest.approx(0.51, abs=0.01)
    with pytest.raises(ValueError, match="positive"):
        TimeBudget(0)


def test_energy_features_weigh_more_in_the_cfm_loss():
    generator = FlowMatchingGenerator(GEOMETRY, preprocessing="energy-ratios", energy_loss_weight=30.0,
                                      hidden_units=16, n_blocks=1, embedding_units=8)
    weights = generator.feature_weights
    assert weights.shape == (GEOMETRY.n_layers + GEOMETRY.n_voxels,)
    assert weights.mean() == pytest.approx(1.0) and weights[0] / weights[-1] == pytest.approx(30.0)
    # Without u-variables there is nothing to weigh.
    assert FlowMatchingGenerator(GEOMETRY, preprocessing="voxel-ratios", hidden_units=16, n_blocks=1,
                                 embedding_units=8).feature_weights is None


def test_mean_field_tokens_are_rings_without_angular_position():
    # Rotating a shower by one angular bin (in every layer) must rotate the velocity the same way, and
    # leave the u-variables' velocity unchanged: the rings share weights and carry no angular position.
    # (The per-voxel skip gate could break this once trained; it starts at zero.)
    n_layers, n_alpha, n_radial = 3, 5, 4
    velocity = RingMeanFieldVelocity(n_layers, n_alpha, n_radial, n_scalars=n_layers, units=16, n_blocks=2,
                                     global_units=32, embedding_units=16, n_frequencies=2)
    velocity.build()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, n_layers + n_layers * n_alpha * n_radial)).astype(np.float32)
    t = np.full((2, 1), 0.3, np.float32)
    c = np.full((2, 1), 0.7, np.float32)

    def rotate(a):
        rings = a[:, n_layers:].reshape(2, n_layers, n_alpha, n_radial)
        return np.concatenate([a[:, :n_layers], np.roll(rings, 1, axis=2).reshape(2, -1)], axis=1)

    out = keras.ops.convert_to_numpy(velocity((x, t, c)))
    out_rotated = keras.ops.convert_to_numpy(velocity((rotate(x), t, c)))
    np.testing.assert_allclose(out_rotated, rotate(out), rtol=1e-4, atol=1e-5)
    # ... while the layers are told apart: swapping two layers' voxels does not just swap the outputs.
    swapped = x.copy()
    blocks = swapped[:, n_layers:].reshape(2, n_layers, -1)
    blocks[:, [0, 1]] = blocks[:, [1, 0]]
    out_swapped = keras.ops.convert_to_numpy(velocity((swapped, t, c)))[:, n_layers:].reshape(2, n_layers, -1)
    assert not np.allclose(out_swapped[:, [1, 0]], out[:, n_layers:].reshape(2, n_layers, -1)[:, [0, 1]], atol=1e-4)


@pytest.mark.parametrize("architecture", ["mlp", "mean-field"])
def test_data_prediction_trains_and_samples_with_every_solver(showers, architecture):
    keras.utils.set_random_seed(2)
    generator = FlowMatchingGenerator(GEOMETRY, architecture=architecture, preprocessing="energy-gap",
                                      prediction="data", hidden_units=64, n_blocks=1, ring_units=8,
                                      global_units=16, embedding_units=8, seed=0)
    losses = generator.fit(*showers, epochs=3, batch_size=50, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], f"loss did not fall: {losses}"
    for solver in ("euler", "midpoint", "rk4"):  # rk4 evaluates at t = 0, where v = (x_t - x_0_hat) / t
        generated = generator.sample([2e3, 2e5], solver=solver, steps=3, seed=0)
        assert generated.shape == (2, GEOMETRY.n_voxels) and np.all(np.isfinite(generated))
        assert np.all(generated >= 0)
