"""The generator contract (caloedu.generators.base) as FlowMatchingGenerator follows it: raw showers in,
showers in MeV out, preprocessing inside, clear errors, .keras save / load / resume."""

import subprocess
import sys

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import keras
import numpy as np
import pytest

from caloedu.data import CalorimeterGeometry, simulate_showers
from caloedu.generators import FlowMatchingGenerator, make_preprocessing
from caloedu.generators.preprocessing import apply_forward, apply_inverse

GEOMETRY = CalorimeterGeometry.preset("teaching")
TINY = dict(hidden_units=64, n_blocks=1, embedding_units=16, n_frequencies=3, steps=3, seed=0)


@pytest.fixture(scope="module")
def showers():
    return simulate_showers(GEOMETRY, 300, seed=3)


@pytest.fixture(scope="module")
def trained(showers):
    keras.utils.set_random_seed(0)
    generator = FlowMatchingGenerator(GEOMETRY, **TINY)
    generator.fit(*showers, epochs=1, batch_size=100, verbose=0)
    return generator


@pytest.mark.parametrize("name", ["voxel-ratios", "energy-ratios", "log-ratios", "energy-log-ratios", "energy-sqrt",
                                  "energy-gap"])
def test_preprocessing_chain_round_trips_showers(showers, name):
    incident_energies, raw = showers
    chain = make_preprocessing(name, GEOMETRY).fit(raw, incident_energies)
    x = apply_forward(chain, raw, incident_energies)
    assert x.dtype == np.float32 and np.all(np.isfinite(x))
    back = apply_inverse(chain, x, incident_energies)
    # float32 in the network's space: relative precision ~1e-6 of E_inc per voxel is plenty.
    np.testing.assert_allclose(back, raw, atol=1e-4 * incident_energies.max(), rtol=1e-3)


def test_sample_gives_showers_in_mev_in_the_geometry_layout(trained, showers):
    incident_energies = np.array([2e3, 5e4, 8e5])
    generated = trained.sample(incident_energies, seed=1)
    assert generated.shape == (3, GEOMETRY.n_voxels) and generated.dtype == np.float32
    assert np.all(generated >= 0)
    below = (generated > 0) & (generated < trained.threshold_mev)
    assert not below.any(), "voxels below the readout threshold must be zero"
    # MeV, and bounded as the energy-ratio preprocessing promises: u0 = E_tot / (2 E_inc) <= 1.
    assert np.all(generated.sum(axis=1) <= 2.0 * incident_energies * (1 + 1e-5))
    assert generated.max() > 1.0, "showers look like fractions, not MeV"


def test_sample_is_reproducible_with_a_seed_and_independent_of_batch_size(trained):
    energies = np.full((5, 1), 1e4)
    first = trained.sample(energies, seed=7, batch_size=5)
    # The noise is drawn for all showers at once, so only float rounding in the network (BLAS picks
    # kernels by batch size) can differ; a voxel may cross the threshold (0.015 MeV) by rounding.
    np.testing.assert_allclose(trained.sample(energies, seed=7, batch_size=2), first, rtol=1e-3, atol=0.02)
    np.testing.assert_array_equal(trained.sample(energies, seed=7, batch_size=5), first)
    assert not np.array_equal(first, trained.sample(energies, seed=8))


def test_fit_keeps_the_preprocessing_fitted_on_the_first_call(trained, showers):
    mean = trained.chain.transforms[-1].mean.copy()
    trained.fit(showers[0][:100], showers[1][:100] * 0.5, epochs=1, batch_size=100, verbose=0)
    np.testing.assert_array_equal(trained.chain.transforms[-1].mean, mean)


def test_fit_is_keras_fit_with_loss_validation_and_a_nan_guard(showers, monkeypatch):
    generator = FlowMatchingGenerator(GEOMETRY, **TINY)
    history = generator.fit(*showers, epochs=1, batch_size=100, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "val_loss"}
    seen = {}
    original = keras.Model.fit

    def spy(self, *args, **kwargs):
        seen["callbacks"] = kwargs["callbacks"]
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    generator.fit(*showers, epochs=1, batch_size=300, verbose=0)
    assert any(isinstance(c, keras.callbacks.TerminateOnNaN) for c in seen["callbacks"])


def test_wrong_showers_and_energies_get_clear_errors(showers):
    incident_energies, raw = showers
    generator = FlowMatchingGenerator(GEOMETRY, **TINY)
    with pytest.raises(ValueError, match="does not fit geometry 'teaching'"):
        generator.fit(incident_energies, raw[:, :-1], verbose=0)
    bad = raw.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        generator.fit(incident_energies, bad, verbose=0)
    bad[0, 0] = -1.0
    with pytest.raises(ValueError, match="negative voxel energies"):
        generator.fit(incident_energies, bad, verbose=0)
    with pytest.raises(ValueError, match="must be positive"):
        generator.fit(-incident_energies, raw, verbose=0)
    with pytest.raises(ValueError, match="rows"):
        generator.fit(incident_energies[:10], raw, verbose=0)
    with pytest.raises(ValueError, match="not been trained"):
        generator.sample([1e4])
    with pytest.raises(ValueError, match="Unknown architecture"):
        FlowMatchingGenerator(GEOMETRY, architecture="unet")
    with pytest.raises(ValueError, match="Unknown ODE solver"):
        FlowMatchingGenerator(GEOMETRY, solver="leapfrog")
    with pytest.raises(ValueError, match="Unknown prediction"):
        FlowMatchingGenerator(GEOMETRY, prediction="noise")


def test_save_load_samples_identically_and_resumes_training(trained, showers, tmp_path):
    path = tmp_path / "generator.keras"
    energies = np.geomspace(1e3, 1e6, 6)
    before = trained.sample(energies, seed=11)
    steps = int(trained.optimizer.iterations)
    trained.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, FlowMatchingGenerator) and loaded.geometry == GEOMETRY
    np.testing.assert_array_equal(loaded.sample(energies, seed=11), before)
    # The optimizer state survives: Adam's moments and step count, so training resumes where it was.
    assert int(loaded.optimizer.iterations) == steps
    for saved, restored in zip(trained.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(saved), keras.ops.convert_to_numpy(restored))
    history = loaded.fit(*showers, epochs=1, batch_size=100, verbose=0)
    assert int(loaded.optimizer.iterations) == steps + 3 and np.isfinite(history.history["loss"][0])


def test_caloedu_load_model_works_in_a_fresh_interpreter(trained, tmp_path):
    # What a student does after `caloedu train`: nothing but `import caloedu` before loading. Plain
    # keras.saving.load_model would not know FlowMatchingGenerator until caloedu.generators is imported.
    path = tmp_path / "generator.keras"
    trained.save(path)
    code = "import caloedu, sys; g = caloedu.load_model(sys.argv[1]); print(type(g).__name__, g.geometry.name)"
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["FlowMatchingGenerator", GEOMETRY.name]


def test_load_model_names_a_missing_or_wrong_file(tmp_path, showers):
    with pytest.raises(FileNotFoundError, match="No model file at .*absent.keras"):
        caloedu.load_model(tmp_path / "absent.keras")
    shower_file = tmp_path / "showers.h5"
    caloedu.data.save_showers(shower_file, *showers)
    with pytest.raises(ValueError, match="showers.h5 is not a Keras 3 .keras model file"):
        caloedu.load_model(shower_file)
    renamed = tmp_path / "showers.keras"
    shower_file.rename(renamed)
    with pytest.raises(ValueError, match="not a Keras 3 .keras model file"):
        caloedu.load_model(renamed)


def test_energy_gap_keeps_near_misses_of_the_empty_point_empty(showers):
    incident_energies, raw = showers
    chain = make_preprocessing("energy-gap", GEOMETRY).fit(raw, incident_energies)
    gapped = chain.transforms[1]
    gaps = gapped.gaps
    assert gaps.shape == (GEOMETRY.n_voxels,) and np.all(gaps > 0)
    # In the gapped space (before standardisation) empty voxels are at 0 and hits above their gap.
    z = chain.transforms[0].forward(raw, incident_energies)
    y = gapped.forward(z)[:, GEOMETRY.n_layers:]
    hit = raw > 0
    assert np.all(y[~hit] == 0) and np.all(y[hit] > np.broadcast_to(gaps, y.shape)[hit])
    # A generated value that misses "empty" by anything short of the gap is read back as empty, not as a deposit.
    y_scalars = gapped.forward(z)[:, :GEOMETRY.n_layers]
    near_misses = np.where(hit, y, np.random.default_rng(0).uniform(-1.0, 0.999, y.shape) * gaps)
    shapes = gapped.inverse(np.concatenate([y_scalars, near_misses], axis=1))[:, GEOMETRY.n_layers:]
    assert np.all(shapes[~hit] == 0)
    np.testing.assert_allclose(shapes[hit], z[:, GEOMETRY.n_layers:][hit], rtol=1e-9)
