"""FlowMatchingGenerator: the CFM loss falls while training, both architectures and both preprocessings
run, the time budget stops training."""

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import keras
import numpy as np
import pytest

from caloedu.data import CalorimeterGeometry, simulate_showers
from caloedu.generators import FlowMatchingGenerator, TimeBudget
from caloedu.generators.velocity import LayerTransformerVelocity

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
