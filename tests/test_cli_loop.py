"""The command-line loop on tiny files: simulate -> train -> sample -> evaluate, and its one-line errors."""

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import numpy as np
import pytest

from caloedu.cli import main
from caloedu.data import CalorimeterGeometry, load_showers

GEOMETRY = CalorimeterGeometry.preset("teaching")


@pytest.fixture(scope="module")
def trained_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loop")
    files = {name: folder / name for name in ("train.h5", "reference.h5", "model.keras", "generated.h5")}
    assert main(["simulate", "--geometry", "teaching", "--n", "300", "--seed", "1", "-o", str(files["train.h5"])]) == 0
    assert main(["simulate", "--geometry", "teaching", "--n", "60", "--seed", "2",
                 "-o", str(files["reference.h5"])]) == 0
    # No --geometry: train reads the one `caloedu simulate` recorded in the file.
    assert main(["train", "--model", "flow-matching", "--data", str(files["train.h5"]), "-o", str(files["model.keras"]),
                 "--epochs", "1", "--batch-size", "100", "--seed", "0", "--quiet"]) == 0
    return files


def test_sample_writes_showers_for_the_reference_energies(trained_files):
    files = trained_files
    assert main(["sample", str(files["model.keras"]), "--energies-from", str(files["reference.h5"]),
                 "-o", str(files["generated.h5"]), "--solver", "euler", "--steps", "2", "--seed", "3"]) == 0
    reference_energies, _ = load_showers(files["reference.h5"])
    incident_energies, showers = load_showers(files["generated.h5"], geometry=GEOMETRY)
    np.testing.assert_array_equal(incident_energies, reference_energies)
    assert showers.shape == (60, GEOMETRY.n_voxels) and np.all(showers >= 0)


def test_sample_with_an_energy_range(trained_files, tmp_path):
    out = tmp_path / "range.h5"
    assert main(["sample", str(trained_files["model.keras"]), "--n", "7", "--energy-range", "1e4", "2e4",
                 "--steps", "2", "-o", str(out)]) == 0
    incident_energies, showers = load_showers(out)
    assert showers.shape == (7, GEOMETRY.n_voxels)
    assert np.all((incident_energies >= 1e4) & (incident_energies <= 2e4))


def test_train_resumes_the_saved_model(trained_files):
    assert main(["train", "--data", str(trained_files["train.h5"]), "-o", str(trained_files["model.keras"]),
                 "--epochs", "1", "--batch-size", "100", "--resume", "--quiet"]) == 0
    # --seed seeds the run, it is not one of the model's options: allowed when resuming
    assert main(["train", "--data", str(trained_files["train.h5"]), "-o", str(trained_files["model.keras"]),
                 "--epochs", "1", "--batch-size", "100", "--resume", "--seed", "3", "--quiet"]) == 0


def test_generated_showers_can_be_evaluated(trained_files):
    files = trained_files
    if not files["generated.h5"].exists():
        main(["sample", str(files["model.keras"]), "--energies-from", str(files["reference.h5"]),
              "-o", str(files["generated.h5"]), "--steps", "2"])
    # `caloedu evaluate` is being written elsewhere; its library core is what it will run.
    from caloedu.evaluation.features import compute_features
    from caloedu.evaluation.metrics import separation_powers

    reference = compute_features(*load_showers(files["reference.h5"]), GEOMETRY)
    generated = compute_features(*load_showers(files["generated.h5"]), GEOMETRY)
    powers = separation_powers(reference, generated)
    assert all(0.0 <= value <= 1.0 for value in powers.values())


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "missing.h5", "-o", "m.keras", "--geometry", "teaching"], "--data missing.h5 does not exist"),
    (["train", "--data", "x.h5", "-o", "model.h5"], "must name a .keras file"),
    (["train", "--data", "x.h5", "-o", "m.keras", "--minutes", "0"], "--minutes must be positive"),
    (["sample", "missing.keras", "--n", "5", "-o", "g.h5"], "the model missing.keras does not exist"),
    (["simulate", "--n", "5", "-o", "no/such/folder/s.h5"], "The folder of -o no/such/folder/s.h5 does not exist"),
    (["train", "--data", "x.h5", "-o", "no/such/folder/m.keras"], "does not exist; create it first"),
    (["train", "--model", "flow-matching", "--data", "x.h5", "-o", "m.keras", "--ema-momentum", "2"],
     "ema_momentum must be in (0, 1)"),
])
def test_user_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith(f"caloedu {argv[0]}: error:")


def test_sample_never_writes_over_its_own_model(trained_files, capsys):
    model = str(trained_files["model.keras"])
    assert main(["sample", model, "--n", "3", "-o", model, "--overwrite"]) == 2
    assert "is also the input MODEL" in capsys.readouterr().err
    assert caloedu.load_model(model) is not None


def test_sample_needs_n_or_reference_energies(trained_files, capsys, tmp_path):
    assert main(["sample", str(trained_files["model.keras"]), "-o", str(tmp_path / "g.h5")]) == 2
    assert "--n" in capsys.readouterr().err


def test_train_refuses_showers_of_another_geometry(trained_files, capsys, tmp_path):
    assert main(["train", "--data", str(trained_files["train.h5"]), "--geometry", "ds1-photons",
                 "-o", str(tmp_path / "m.keras"), "--epochs", "1", "--quiet"]) == 2
    assert "368" in capsys.readouterr().err  # ds1-photons expects 368 voxels, the file has 960
