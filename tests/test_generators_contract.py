"""The generator contract (caloedu.generators.base), checked on every registered family: caloedu's own and the
test-only families of tests/families.py (a two-optimizer GAN on point clouds, a Gaussian with a likelihood).
Raw showers in, showers in MeV out, clear errors, .keras save / load / resume with every optimizer's state,
a NaN guard, budgets in showers, the CLI."""

import subprocess
import sys

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import keras
import numpy as np
import pytest

from caloedu.cli import main
from caloedu.data import CalorimeterGeometry, save_showers, simulate_showers
from caloedu.generators import TrainingBudget, TrainingDiverged
from caloedu.generators.registry import family_names, get_family

GEOMETRY = CalorimeterGeometry.preset("teaching")
FAMILIES = family_names()


def make(name, **options):
    family = get_family(name)
    return family(GEOMETRY, **{"seed": 0, **family.smoke_options, **options})


def to_numpy(value):
    return keras.ops.convert_to_numpy(value)


@pytest.fixture(scope="module")
def showers():
    return simulate_showers(GEOMETRY, 300, seed=3)


@pytest.fixture(scope="module")
def trained(showers):
    """One trained generator per family, shared by the tests that do not change it."""
    models = {}
    for name in FAMILIES:
        keras.utils.set_random_seed(0)
        models[name] = make(name)
        models[name].fit(*showers, epochs=1, batch_size=100, verbose=0)
    return models


def test_the_registry_holds_caloedus_families_and_the_test_families():
    assert {"flow-matching", "toy-point-cloud-gan", "toy-gaussian"} <= set(FAMILIES)
    assert len(get_family("toy-point-cloud-gan").default_optimizers(make("toy-point-cloud-gan"))) == 2


@pytest.mark.parametrize("name", FAMILIES)
def test_fit_on_raw_showers_reports_every_loss(name, showers):
    generator = make(name)
    history = generator.fit(*showers, epochs=2, batch_size=100, validation_split=0.2, verbose=0)
    expected = set(generator.loss_names) | {f"val_{loss}" for loss in generator.loss_names}
    assert set(history.history) == expected
    assert all(np.all(np.isfinite(values)) for values in history.history.values())
    assert int(to_numpy(generator.showers_seen)) == 2 * 240 and int(to_numpy(generator.training_steps)) == 6


@pytest.mark.parametrize("name", FAMILIES)
def test_sample_gives_showers_in_mev_above_the_threshold(name, trained):
    generator = trained[name]
    incident_energies = np.array([2e3, 5e4, 8e5])
    generated = generator.sample(incident_energies, seed=1)
    assert generated.shape == (3, GEOMETRY.n_voxels) and generated.dtype == np.float32
    assert np.all(np.isfinite(generated)) and np.all(generated >= 0)
    below = (generated > 0) & (generated < generator.options.threshold_mev)
    assert not below.any(), "voxels below the readout threshold must be zero"
    assert generated.max() > 1.0, "showers look like fractions, not MeV"


@pytest.mark.parametrize("name", FAMILIES)
def test_the_same_seed_gives_the_same_showers(name, trained):
    generator = trained[name]
    energies = np.geomspace(1e3, 1e6, 5)
    first = generator.sample(energies, seed=7)
    np.testing.assert_array_equal(generator.sample(energies, seed=7), first)
    assert not np.array_equal(first, generator.sample(energies, seed=8))


@pytest.mark.parametrize("name", FAMILIES)
def test_keras_file_samples_the_same_and_resumes_with_every_optimizers_state(name, trained, showers, tmp_path):
    generator = trained[name]
    energies = np.geomspace(1e3, 1e6, 4)
    before = generator.sample(energies, seed=11)
    path = tmp_path / "generator.keras"
    generator.save(path)
    loaded = caloedu.load_model(path)
    assert type(loaded) is type(generator) and loaded.geometry == GEOMETRY and loaded.options == generator.options
    np.testing.assert_array_equal(loaded.sample(energies, seed=11), before)
    assert loaded.optimizers.keys() == generator.optimizers.keys()
    for key, optimizer in generator.optimizers.items():
        restored = loaded.optimizers[key]
        assert len(restored.variables) == len(optimizer.variables) > 2, f"optimizer {key!r} has no state"
        for saved, back in zip(optimizer.variables, restored.variables):
            np.testing.assert_array_equal(to_numpy(saved), to_numpy(back), err_msg=f"optimizer {key!r}: {saved.path}")
    iterations = {key: int(o.iterations) for key, o in loaded.optimizers.items()}
    steps = int(to_numpy(loaded.training_steps))
    loaded.fit(*showers, epochs=1, batch_size=100, verbose=0)
    assert int(to_numpy(loaded.training_steps)) == steps + 3
    # Each optimizer goes on from its saved count (a reset would go back to 0); a family may step one less
    # often than once a batch (a GAN's generator, once per n_critic critic steps), but in 3 batches at least once.
    assert all(1 <= int(o.iterations) - iterations[key] <= 3 for key, o in loaded.optimizers.items()), \
        "every optimizer must go on from its saved step count"


@pytest.mark.parametrize("name", FAMILIES)
def test_wrong_input_gets_one_clear_sentence(name, showers, trained):
    incident_energies, raw = showers
    generator = make(name)
    with pytest.raises(ValueError, match="not been trained"):
        generator.sample([1e4])
    with pytest.raises(ValueError, match="does not fit geometry 'teaching'"):
        generator.fit(incident_energies, raw[:, :-1], verbose=0)
    bad = raw.copy()
    bad[5, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf.*row 5"):
        generator.fit(incident_energies, bad, verbose=0)
    bad[5, 0] = -1.0
    with pytest.raises(ValueError, match="negative energies.*row 5"):
        generator.fit(incident_energies, bad, verbose=0)
    with pytest.raises(ValueError, match="negative energies"):
        generator.fit(-incident_energies, raw, verbose=0)
    with pytest.raises(ValueError, match="0 MeV"):
        generator.fit(incident_energies * 0, raw, verbose=0)
    with pytest.raises(ValueError, match="rows"):
        generator.fit(incident_energies[:10], raw, verbose=0)
    with pytest.raises(ValueError, match="has no option 'colour'"):
        make(name, colour="red")
    with pytest.raises(ValueError, match="has no option 'colour'"):
        trained[name].sample([1e4], colour="red")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        trained[name].sample([1e4], batch_size=0)


@pytest.mark.parametrize("name", FAMILIES)
def test_a_loss_that_turns_nan_stops_training_with_advice(name, showers, monkeypatch):
    generator = make(name)
    original = type(generator).compute_losses

    def poisoned(self, x, condition):
        losses = original(self, x, condition)
        first = self.loss_names[0]
        return {**losses, first: losses[first] * float("nan")}

    monkeypatch.setattr(type(generator), "compute_losses", poisoned)
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch 1, batch 1 .*Lower the learning rate"):
        generator.fit(*showers, epochs=3, batch_size=100, verbose=0)
    assert int(to_numpy(generator.training_steps)) == 1, "training must stop at the first non-finite loss"


@pytest.mark.parametrize("name", FAMILIES)
def test_a_budget_in_showers_stops_at_the_same_step_on_any_machine(name, showers):
    generator = make(name)
    budget = TrainingBudget(showers=450)
    generator.fit(*showers, epochs=100, batch_size=100, callbacks=[budget], verbose=0)
    assert budget.stopped_early and int(to_numpy(generator.showers_seen)) == 500  # 5 batches reach 450
    for optimizer, rate in zip(generator.optimizers.values(), budget.initial_learning_rates):
        assert float(to_numpy(optimizer.learning_rate)) == pytest.approx(rate), "the schedule must be undone"


@pytest.mark.parametrize("name", FAMILIES)
def test_the_cli_trains_and_samples_every_family(name, showers, tmp_path):
    data, model, out = tmp_path / "train.h5", tmp_path / "model.keras", tmp_path / "generated.h5"
    save_showers(data, *showers, geometry=GEOMETRY)
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in get_family(name).smoke_options.items()]
    assert main(["train", "--model", name, "--data", str(data), "-o", str(model), "--epochs", "1",
                 "--batch-size", "100", "--seed", "0", "--quiet", *flags]) == 0
    assert main(["sample", str(model), "--n", "4", "-o", str(out), "--seed", "1"]) == 0
    assert caloedu.data.load_showers(out, geometry=GEOMETRY)[1].shape == (4, GEOMETRY.n_voxels)


def test_train_help_lists_the_familys_options(capsys):
    assert main(["train", "--model", "toy-point-cloud-gan", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--critic-learning-rate" in text and "--generator-learning-rate" in text and "--data" in text


@pytest.mark.parametrize("name", [n for n in FAMILIES if get_family(n).has_likelihood()])
def test_log_prob_is_the_feature_likelihood_plus_the_log_jacobian(name, trained, showers):
    generator = trained[name]
    if get_family(name).likelihood_options:  # its defaults have no likelihood: train the variant that has one
        keras.utils.set_random_seed(0)
        generator = make(name, **get_family(name).likelihood_options)
        generator.fit(*showers, epochs=1, batch_size=100, verbose=0)
    incident_energies, raw = showers[0][:20], showers[1][:20]
    log_p = generator.log_prob(incident_energies, raw, seed=4)
    assert log_p.shape == (20,) and np.all(np.isfinite(log_p))
    np.testing.assert_array_equal(generator.log_prob(incident_energies, raw, seed=4), log_p)
    from caloedu.data.representation import dequantize

    dequantized = dequantize(raw, generator.options.threshold_mev, np.random.default_rng(4))
    x = generator.representation.forward(incident_energies, dequantized)
    with generator.averaged_weights():
        condition = keras.ops.convert_to_tensor(generator.condition(incident_energies))
        # a bound drawn at random (a VAE's) draws from the rng log_prob seeds
        extra = {"rng": np.random.default_rng([4, 1])} if generator.likelihood_is_bound else {}
        features = to_numpy(generator.feature_log_prob(keras.ops.convert_to_tensor(x), condition, **extra))
    jacobian = generator.representation.log_det_jacobian(incident_energies, dequantized)
    np.testing.assert_allclose(log_p, features + jacobian, rtol=1e-6)


def test_log_prob_is_refused_without_a_likelihood_or_a_density(trained, showers):
    with pytest.raises(ValueError, match="has no likelihood"):
        trained["flow-matching"].log_prob(*showers)
    gaussian = make("toy-gaussian")
    gaussian.fit(*showers, epochs=1, batch_size=100, verbose=0)
    gaussian.representation = caloedu.data.make_representation("energy-gap", GEOMETRY).fit(*showers)
    with pytest.raises(ValueError, match="redundant features"):
        gaussian.log_prob(*showers)


def test_sampling_uses_the_weight_average_and_training_the_raw_weights(showers):
    generator = make("flow-matching", ema_momentum=0.9)
    generator.fit(*showers, epochs=1, batch_size=50, verbose=0)
    raw = [to_numpy(w).copy() for w in generator.sampler_weights()]
    averages = [to_numpy(a) for a in generator.ema_weights]
    assert any(not np.allclose(r, a) for r, a in zip(raw, averages)), "the average should differ from the weights"
    with generator.averaged_weights():
        inside = [to_numpy(w).copy() for w in generator.sampler_weights()]
    for r, a, i, w in zip(raw, averages, inside, generator.sampler_weights()):
        np.testing.assert_array_equal(i, a)
        np.testing.assert_array_equal(to_numpy(w), r)


def test_caloedu_load_model_works_in_a_fresh_interpreter(trained, tmp_path):
    # What a student does after `caloedu train`: nothing but `import caloedu` before loading. Plain
    # keras.saving.load_model would not know FlowMatchingGenerator until its module is imported.
    path = tmp_path / "generator.keras"
    trained["flow-matching"].save(path)
    code = "import caloedu, sys; g = caloedu.load_model(sys.argv[1]); print(type(g).__name__, g.geometry.name)"
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["FlowMatchingGenerator", GEOMETRY.name]


def test_load_model_names_a_missing_or_wrong_file(tmp_path, showers):
    with pytest.raises(FileNotFoundError, match="No model file at .*absent.keras"):
        caloedu.load_model(tmp_path / "absent.keras")
    shower_file = tmp_path / "showers.h5"
    save_showers(shower_file, *showers)
    with pytest.raises(ValueError, match="showers.h5 is not a Keras 3 .keras model file"):
        caloedu.load_model(shower_file)
    renamed = tmp_path / "showers.keras"
    shower_file.rename(renamed)
    with pytest.raises(ValueError, match="not a Keras 3 .keras model file"):
        caloedu.load_model(renamed)
