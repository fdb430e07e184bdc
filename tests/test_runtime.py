"""Backend selection, device report and the fast/full budget switch."""

import os
import subprocess
import sys

import caloedu
from caloedu import runtime


def test_import_selects_torch_backend():
    import keras

    assert keras.backend.backend() == "torch"
    assert os.environ["KERAS_BACKEND"] == "torch"


def test_keras_imported_with_another_backend_is_refused():
    # Stand in for a keras already running on JAX (JAX itself is not installed here).
    code = (
        "import sys, types; keras = types.ModuleType('keras');"
        "keras.backend = types.SimpleNamespace(backend=lambda: 'jax'); sys.modules['keras'] = keras;"
        "import caloedu"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "caloedu needs Keras' torch backend" in result.stderr and "'jax'" in result.stderr


def test_another_backend_in_the_environment_is_switched_to_torch():
    code = "import caloedu, keras; print(keras.backend.backend())"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "torch", result.stderr
    assert "switches it to 'torch'" in result.stderr


def test_budget_follows_fast_mode(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setenv("CALOEDU_FAST", "0")
    assert not runtime.fast_mode() and runtime.budget(fast=1, full=100) == 100
    monkeypatch.setenv("CALOEDU_FAST", "1")
    assert runtime.budget(fast=1, full=100) == 1
    monkeypatch.delenv("CALOEDU_FAST")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert runtime.fast_mode()


def test_device_report_names_the_device():
    report = runtime.device_report()
    assert "torch" in report and ("cuda:" in report or "cpu" in report)


def test_set_seed_makes_keras_random_repeatable():
    import keras

    runtime.set_seed(3)
    a = keras.ops.convert_to_numpy(keras.random.normal((4,)))
    runtime.set_seed(3)
    b = keras.ops.convert_to_numpy(keras.random.normal((4,)))
    assert (a == b).all()
    assert caloedu.__version__
