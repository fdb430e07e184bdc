"""FlowMatchingGenerator: the CFM loss falls while training, every architecture, preprocessing and
prediction runs, the networks see the calorimeter as designed, the time budget stops training. (What every
family does, save / load / errors, is in test_generators_contract.py.)"""

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import keras
import numpy as np
import pytest

from caloedu.data import CalorimeterGeometry, simulate_showers
from caloedu.generators import FlowMatchingGenerator, TrainingBudget, cfm_loss
from caloedu.generators.velocity import LayerTransformerVelocity, RingMeanFieldVelocity

GEOMETRY = CalorimeterGeometry.preset("teaching")


@pytest.fixture(scope="module")
def showers():
    return simulate_showers(GEOMETRY, 400, seed=5)


def test_cfm_loss_decreases_over_a_few_epochs(showers):
    keras.utils.set_random_seed(1)
    generator = FlowMatchingGenerator(GEOMETRY, architecture="mlp", preprocessing="energy-ratios",
                                      prediction="velocity", energy_loss_weight=1.0, units=128, n_blocks=2,
                                      embedding_units=32, seed=1, ema_momentum=None)
    losses = generator.fit(*showers, epochs=6, batch_size=50, verbose=0).history["loss"]
    # Untrained, v ~ 0 gives a loss of ~2 (|eps - x_0|^2 per standardised feature); learning the mean
    # flow alone brings it well below.
    assert losses[0] > losses[-1], f"loss did not fall: {losses}"
    assert losses[-1] < 0.85 * losses[0], f"loss fell by less than 15%: {losses}"


@pytest.mark.parametrize("preprocessing", ["voxel-ratios", "energy-ratios"])
def test_transformer_over_layers_trains_and_samples(showers, preprocessing):
    generator = FlowMatchingGenerator(GEOMETRY, architecture="transformer", preprocessing=preprocessing, units=32,
                                      n_heads=2, ff_units=64, n_blocks=1, embedding_units=16, steps=2, seed=0)
    history = generator.fit(*showers, epochs=1, batch_size=100, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    generated = generator.sample([1e3, 1e5], solver="euler", steps=2, seed=0)
    assert generated.shape == (2, GEOMETRY.n_voxels) and np.all(generated >= 0)


def test_transformer_tokens_are_layers(showers):
    # Token l must hold exactly layer l's voxels (and u_l): changing one layer's voxels changes the
    # input of one token only, which shows in the output of every layer only through attention.
    velocity = LayerTransformerVelocity(12, 80, n_scalars=12, units=16, n_heads=2, ff_units=16, n_blocks=0)
    velocity.build()
    x = np.zeros((1, 12 + 960), np.float32)
    t = c = np.zeros((1, 1), np.float32)
    base = keras.ops.convert_to_numpy(velocity((x, t, c)))
    x[0, 12 + 3 * 80: 12 + 4 * 80] = 1.0  # layer 3's voxels
    changed = np.abs(keras.ops.convert_to_numpy(velocity((x, t, c))) - base) > 1e-6
    shapes = changed[0, 12:].reshape(12, 80).any(axis=1)
    assert shapes.tolist() == [i == 3 for i in range(12)] and changed[0, :12].tolist() == [i == 3 for i in range(12)]


def test_solvers_and_steps_are_sample_options(showers):
    generator = FlowMatchingGenerator(GEOMETRY, architecture="mlp", units=32, n_blocks=1, embedding_units=8, seed=0)
    generator.fit(*showers, epochs=1, batch_size=200, verbose=0)
    for solver in ("euler", "midpoint", "rk4"):
        assert generator.sample([5e4], solver=solver, steps=3, seed=0).shape == (1, GEOMETRY.n_voxels)
    with pytest.raises(ValueError, match="steps"):
        generator.sample([5e4], steps=0)


def test_time_budget_stops_training_and_restores_the_learning_rate(showers):
    generator = FlowMatchingGenerator(GEOMETRY, architecture="mlp", units=32, n_blocks=1, embedding_units=8, seed=0)
    budget = TrainingBudget(minutes=0.02)  # 1.2 s
    history = generator.fit(*showers, epochs=10_000, batch_size=20, callbacks=[budget], verbose=0)
    assert budget.stopped_early and len(history.history["loss"]) < 10_000
    assert float(keras.ops.convert_to_numpy(generator.optimizer.learning_rate)) == pytest.approx(1e-3)
    assert budget.learning_rate_factor(0.5) == pytest.approx(0.51, abs=0.01)
    with pytest.raises(ValueError, match="positive"):
        TrainingBudget(0)
    with pytest.raises(ValueError, match="minutes or showers"):
        TrainingBudget()


def test_energy_features_weigh_more_in_the_cfm_loss():
    generator = FlowMatchingGenerator(GEOMETRY, architecture="mlp", preprocessing="energy-ratios",
                                      energy_loss_weight=30.0, units=16, n_blocks=1, embedding_units=8)
    weights = generator.feature_weights
    assert weights.shape == (GEOMETRY.n_layers + GEOMETRY.n_voxels,)
    assert weights.mean() == pytest.approx(1.0) and weights[0] / weights[-1] == pytest.approx(30.0)
    # Without u-variables there is nothing to weigh.
    assert FlowMatchingGenerator(GEOMETRY, architecture="mlp", preprocessing="voxel-ratios", units=16, n_blocks=1,
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
                                      prediction="data", units=64 if architecture == "mlp" else 8, n_blocks=1,
                                      global_units=16, embedding_units=8, seed=0)
    losses = generator.fit(*showers, epochs=3, batch_size=50, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], f"loss did not fall: {losses}"
    for solver in ("euler", "midpoint", "rk4"):  # rk4 evaluates at t = 0, where v = (x_t - x_0_hat) / t
        generated = generator.sample([2e3, 2e5], solver=solver, steps=3, seed=0)
        assert generated.shape == (2, GEOMETRY.n_voxels) and np.all(np.isfinite(generated))
        assert np.all(generated >= 0)


def test_the_defaults_are_the_recommended_setup_and_the_textbook_is_one_call_away():
    recommended = FlowMatchingGenerator(GEOMETRY, n_blocks=1, embedding_units=8, global_units=16, units=8)
    assert (recommended.architecture, recommended.options.preprocessing, recommended.options.prediction,
            recommended.solver, recommended.steps) == ("mean-field", "energy-gap", "data", "euler", 32)
    textbook = FlowMatchingGenerator(GEOMETRY, architecture="mlp", preprocessing="energy-ratios", prediction="velocity",
                                     energy_loss_weight=1.0, units=16, n_blocks=1, embedding_units=8)
    assert (textbook.solver, textbook.steps, textbook.feature_weights) == ("midpoint", 16, None)
    ds1 = FlowMatchingGenerator(CalorimeterGeometry.preset("ds1-photons"), units=16, n_blocks=1, embedding_units=8)
    assert ds1.architecture == "mlp", "auto falls back to the MLP when the layers differ"
    with pytest.raises(ValueError, match="Unknown architecture"):
        FlowMatchingGenerator(GEOMETRY, architecture="unet")
    with pytest.raises(ValueError, match="Unknown ODE solver|Unknown solver"):
        FlowMatchingGenerator(GEOMETRY, solver="leapfrog")
    with pytest.raises(ValueError, match="Unknown prediction"):
        FlowMatchingGenerator(GEOMETRY, prediction="noise")
    with pytest.raises(ValueError, match="mean-field network needs the same voxels"):
        FlowMatchingGenerator(CalorimeterGeometry.preset("ds1-photons"), architecture="mean-field")


def test_the_training_loss_is_cfm_loss_with_the_generators_draws(showers):
    # compute_losses draws t, then eps, from the seed generator and hands them to the module-level cfm_loss.
    generator = FlowMatchingGenerator(GEOMETRY, architecture="mlp", preprocessing="energy-ratios",
                                      prediction="velocity", energy_loss_weight=1.0, units=16, n_blocks=1,
                                      embedding_units=8)
    generator.fit(*showers, epochs=1, batch_size=300, verbose=0)
    x, condition = generator.preprocess(*showers)
    x, condition = keras.ops.convert_to_tensor(x[:32]), keras.ops.convert_to_tensor(condition[:32])
    generator.seed_generator = keras.random.SeedGenerator(5)
    library = float(keras.ops.convert_to_numpy(generator.compute_losses(x, condition)["loss"]))
    replay = keras.random.SeedGenerator(5)
    t = keras.random.uniform((32, 1), seed=replay)
    eps = keras.random.normal(x.shape, seed=replay)
    ours = cfm_loss(lambda x_t, tt: generator.velocity((x_t, tt, condition)), x, eps, keras.ops.reshape(t, (-1,)))
    assert float(keras.ops.convert_to_numpy(ours)) == pytest.approx(library, rel=1e-5)
