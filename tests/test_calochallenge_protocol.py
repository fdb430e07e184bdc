"""The CaloChallenge classifier protocol: split, network and training as evaluate.py has them, and every AUC
labelled with the protocol that gave it."""

import json

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import numpy as np
import pytest

from caloedu.cli import main
from caloedu.data import CalorimeterGeometry, save_showers, simulate_showers
from caloedu.evaluation import classifier_metric
from caloedu.evaluation.calochallenge_protocol import (
    CALOCHALLENGE,
    build_calochallenge_classifier,
    calochallenge_split,
)


def test_split_is_evaluate_pys_ttv_split():
    rng = np.random.default_rng(0)
    reference = np.arange(0, 107, dtype=np.float32)[:, None]
    generated = np.arange(1000, 1125, dtype=np.float32)[:, None]  # the larger sample is cut to 107
    (x_train, y_train), (x_test, y_test), (x_val, y_val) = calochallenge_split(reference, generated, rng)
    # int(0.6 * 107) = 64, int(0.2 * 107) = 21, the rest 22: per class
    assert (len(x_train), len(x_test), len(x_val)) == (128, 42, 44)
    for y in (y_train, y_test, y_val):
        assert y.mean() == 0.5
    every = np.concatenate([x_train, x_test, x_val])[:, 0]
    assert len(np.unique(every)) == len(every) == 214, "no shower in two splits"
    assert np.all((x_train[y_train == 0] < 1000)) and np.all(x_train[y_train == 1] >= 1000)


def test_network_is_initialised_as_torch_linear():
    model = build_calochallenge_classifier(500)
    dense = [layer for layer in model.layers if layer.weights]
    assert [layer.units for layer in dense] == [*CALOCHALLENGE["hidden_units"], 1]
    fan_in = 500
    for layer in dense:
        kernel, bias = (np.asarray(w) for w in layer.get_weights())
        bound = 1 / np.sqrt(fan_in)
        # float32 draws may round up to the float32 neighbour of the bound: allow one part in 10^6
        assert np.abs(kernel).max() <= bound * (1 + 1e-6) and np.abs(bias).max() <= bound * (1 + 1e-6)
        # uniform on [-b, b]: standard deviation b / sqrt(3) (Glorot would give another)
        assert kernel.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
        fan_in = layer.units


def test_protocol_tells_apart_what_differs_and_not_what_does_not():
    rng = np.random.default_rng(1)
    same = classifier_metric(rng.normal(size=(600, 4)), rng.normal(size=(600, 4)), protocol="calochallenge",
                             epochs=3, inputs="high")
    shifted = classifier_metric(rng.normal(size=(600, 4)), rng.normal(size=(600, 4)) + 1.5,
                                protocol="calochallenge", epochs=3, inputs="high")
    assert same.protocol == shifted.protocol == "calochallenge" and same.size == "calochallenge"
    assert same.auc == pytest.approx(0.5, abs=0.1) and shifted.auc > 0.8
    assert (same.n_train, same.n_test, same.n_validation) == (720, 240, 240)
    with pytest.raises(ValueError, match="Unknown classifier protocol"):
        classifier_metric(np.zeros((20, 2)), np.zeros((20, 2)), protocol="official")


def test_every_auc_says_which_protocol_gave_it(tmp_path, capsys):
    geometry = CalorimeterGeometry.preset("teaching")
    paths = []
    for seed in (1, 2):
        paths.append(str(tmp_path / f"{seed}.h5"))
        save_showers(paths[-1], *simulate_showers(geometry, 150, seed=seed))
    common = ["evaluate", *paths, "--no-plots", "--classifier", "high", "--epochs", "1", "--threads", "1"]
    assert main([*common, "--protocol", "calochallenge", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["classifier_protocol"]["name"] == "calochallenge"
    assert "comparable with published" in results["classifier_protocol"]["description"]
    assert results["classifier"]["high"]["protocol"] == "calochallenge"
    assert main(common) == 0
    out = capsys.readouterr().out
    assert "protocol caloedu" in out and "not comparable with published" in out
