"""`caloedu evaluate` end to end on simulated files (the done-when checks of the evaluation issue).

Two independent simulations must look alike (classifier AUC 0.5 +- 0.03, small separation powers);
showers scaled by 5 % must be told apart (large E_tot/E_inc separation power, high-level AUC well above 0.5).
The classifier trains 5 epochs here (as in fast mode) to keep the test short.
"""

import json
import os

import caloedu  # noqa: F401  (selects the torch backend first)
import h5py
import numpy as np
import pytest

from caloedu.cli import main
from caloedu.data import CalorimeterGeometry, save_showers, simulate_showers


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate")
    geometry = CalorimeterGeometry.preset("teaching")
    paths = {}
    # 4000 showers give a validation split of 800 per class: AUC noise ~0.014, so +-0.03 is ~2 sigma.
    for name, n, seed, scale in (("reference", 4000, 101, 1.0), ("same", 4000, 202, 1.0), ("scaled", 2000, 303, 1.05)):
        energies, showers = simulate_showers(geometry, n, seed=seed)
        paths[name] = str(folder / f"{name}.h5")
        save_showers(paths[name], energies, showers * np.float32(scale))
    return paths


@pytest.fixture(autouse=True)
def one_torch_thread():
    # On shared CPUs torch's spinning worker threads make the small classifier ~10x slower.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def evaluate(capsys, *argv):
    code = main(["evaluate", *map(str, argv), "--threads", "1"])
    out, err = capsys.readouterr()
    return code, out, err


def evaluate_json(capsys, *argv):
    code, out, err = evaluate(capsys, *argv, "--json", "--no-plots", "--epochs", 5)
    assert code == 0, err
    return json.loads(out)


def test_independent_simulations_are_indistinguishable(files, capsys):
    results = evaluate_json(capsys, files["reference"], files["same"], "--geometry", "teaching")
    for kind in ("low", "high"):
        assert results["classifier"][kind]["auc"] == pytest.approx(0.5, abs=0.03), kind
        assert abs(results["classifier"][kind]["jsd"]) < 0.05, kind
    assert results["classifier"]["low"]["n_validation"] == 1600
    assert results["separation_power"]["E_ratio"] < 0.02
    assert max(results["separation_power"].values()) < 0.03


def test_five_percent_energy_scale_is_detected(files, capsys):
    results = evaluate_json(capsys, files["reference"], files["scaled"])  # geometry found from the voxel count
    assert results["geometry"] == "teaching"
    assert results["separation_power"]["E_ratio"] > 0.15
    assert results["classifier"]["high"]["auc"] > 0.62
    assert results["classifier"]["high"]["jsd"] > 0.03
    assert results["classifier"]["low"]["auc"] > 0.56


def test_text_report_and_plots(files, capsys, tmp_path):
    code, out, _ = evaluate(capsys, files["reference"], files["scaled"], "--classifier", "none",
                            "--plots", tmp_path / "plots")
    assert code == 0
    assert "separation power" in out and "E_ratio" in out and "width_eta" in out
    pngs = sorted(os.listdir(tmp_path / "plots"))
    assert "average_shower.png" in pngs and "E_ratio.png" in pngs and "voxel_energy.png" in pngs
    assert all(os.path.getsize(tmp_path / "plots" / name) > 1000 for name in pngs)


@pytest.mark.parametrize("problem", ["missing", "keys", "geometry", "mixed"])
def test_bad_inputs_give_one_clear_line(files, capsys, tmp_path, problem):
    reference = files["reference"]
    generated = files["same"]
    extra = []
    expected = {"missing": "does not exist", "keys": "lacks the dataset", "geometry": "geometry 'ds2'",
                "mixed": "different geometries"}[problem]
    if problem == "missing":
        generated = tmp_path / "nowhere.h5"
    elif problem == "keys":
        generated = tmp_path / "wrong_keys.h5"
        with h5py.File(generated, "w") as file:
            file["energies"] = np.ones((3, 1))
    elif problem == "geometry":
        extra = ["--geometry", "ds2"]
    elif problem == "mixed":
        generated = tmp_path / "ds1.h5"
        ds1 = CalorimeterGeometry.preset("ds1-photons")
        save_showers(generated, np.full((5, 1), 1e4), np.ones((5, ds1.n_voxels), dtype=np.float32))
    code, out, err = evaluate(capsys, reference, generated, "--classifier", "none", "--no-plots", *extra)
    assert code == 2
    assert err.startswith("caloedu evaluate: error:") and expected in err
    assert len(err.strip().splitlines()) == 1
