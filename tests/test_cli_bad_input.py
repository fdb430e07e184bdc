"""The CLI under bad input: nothing lost, nothing silent, never a traceback.

Every failure is one line on stderr naming the user's path (and the row, for bad values), with exit code 2,
and comes before any work; an input is never written over (checked byte for byte).
"""

import hashlib
import io
import os

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import h5py
import numpy as np
import pytest

from caloedu.cli import main
from caloedu.cli.paths import save_atomically
from caloedu.cli.progress import ProgressBar
from caloedu.cli.train import epochs_run
from caloedu.data import CalorimeterGeometry, ShowerFileError, load_showers, save_showers, simulate_showers

GEOMETRY = CalorimeterGeometry.preset("teaching")
SMALL_MODEL = ["--architecture", "mlp", "--units", "32", "--n-blocks", "1", "--embedding-units", "8"]


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def hidden_files(folder):
    return [name for name in os.listdir(folder) if name.startswith(".")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_input")
    energies, showers = simulate_showers(GEOMETRY, 300, seed=5)
    paths = {name: folder / f"{name}.h5" for name in ("showers", "gev", "gev_incident", "empty", "zero", "fixed")}
    save_showers(paths["showers"], energies, showers, geometry=GEOMETRY)
    # A file written in GeV: what a user converting from another tool might give.
    for name, e, s in (("gev", energies / 1e3, showers / 1e3), ("gev_incident", energies / 1e3, showers)):
        with h5py.File(paths[name], "w") as file:
            file["incident_energies"], file["showers"] = e, s
    with h5py.File(paths["empty"], "w") as file:
        file["incident_energies"] = np.zeros((0, 1))
        file["showers"] = np.zeros((0, GEOMETRY.n_voxels), np.float32)
    zero = energies.copy()
    zero[7] = 0.0
    with h5py.File(paths["zero"], "w") as file:
        file["incident_energies"], file["showers"] = zero, showers
    save_showers(paths["fixed"], np.full_like(energies, 5e4), showers)
    paths["truncated"] = folder / "truncated.h5"
    paths["truncated"].write_bytes(paths["showers"].read_bytes()[:50_000])
    paths["text"] = folder / "notes.txt"
    paths["text"].write_text("not showers\n")
    paths["model"] = folder / "model.keras"
    assert main(["train", "--model", "flow-matching", *SMALL_MODEL, "--data", str(paths["showers"]),
                 "-o", str(paths["model"]), "--epochs", "1", "--batch-size", "100", "--quiet", "--threads", "1"]) == 0
    return paths


def fails_in_one_line(capsys, argv, *expected):
    """Run the CLI; assert exit 2 and that stderr ends with one error line holding every ``expected`` text
    (progress lines may come before it); return that line."""
    assert main([*map(str, argv)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert [line for line in lines if "error:" in line] == lines[-1:], err
    assert lines[-1].startswith(f"caloedu {argv[0]}: error:"), err
    for text in expected:
        assert text in lines[-1], err
    return lines[-1]


# --- nothing lost: outputs checked before the work, inputs never written over --------------------------
def test_sample_never_writes_over_its_model_or_its_energy_file(files, capsys, tmp_path):
    model, reference = files["model"], files["showers"]
    before = digest(model), digest(reference)
    fails_in_one_line(capsys, ["sample", model, "--n", "3", "-o", model, "--overwrite"], "is also the input MODEL")
    fails_in_one_line(capsys, ["sample", model, "--energies-from", reference, "-o", reference, "--overwrite"],
                      "is also the input --energies-from")
    assert (digest(model), digest(reference)) == before


def test_sample_into_a_missing_folder_fails_before_sampling(files, capsys, tmp_path):
    fails_in_one_line(capsys, ["sample", files["model"], "--n", "3", "-o", tmp_path / "no" / "g.h5"],
                      "does not exist; create it first")
    assert not hidden_files(tmp_path)


def test_evaluate_plots_into_a_file_fails_before_any_metric(files, capsys, tmp_path):
    target = tmp_path / "plots"
    target.write_text("keep me")
    err = fails_in_one_line(capsys, ["evaluate", files["showers"], files["showers"], "--classifier", "none",
                                     "--plots", target], "is a file", "names a folder")
    assert "separation" not in err and target.read_text() == "keep me"
    fails_in_one_line(capsys, ["evaluate", files["showers"], files["showers"], "--plots", tmp_path / "a" / "b"],
                      "does not exist")
    fails_in_one_line(capsys, ["evaluate", files["showers"], files["showers"], "--plots", files["showers"]],
                      "is the input REFERENCE")


def test_an_interrupted_save_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "model.keras"
    target.write_bytes(b"the old model")

    def save_then_fail(path):
        open(path, "wb").write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_atomically(save_then_fail, target)
    assert target.read_bytes() == b"the old model" and not hidden_files(tmp_path)
    save_atomically(lambda path: open(path, "wb").write(b"new"), target)
    assert target.read_bytes() == b"new" and not hidden_files(tmp_path)


def test_train_output_cannot_be_its_data(files, capsys, tmp_path):
    data = tmp_path / "data.keras"  # a shower file with an odd name
    data.write_bytes(files["showers"].read_bytes())
    fails_in_one_line(capsys, ["train", "--model", "flow-matching", "--data", data, "-o", data],
                      "is also the input --data")
    assert digest(data) == digest(files["showers"])


# --- never a traceback ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, expected", [
    ("truncated", "is truncated"),
    ("text", "not an HDF5 file"),
])
def test_train_on_a_broken_file_without_geometry_is_one_line(files, capsys, tmp_path, name, expected):
    fails_in_one_line(capsys, ["train", "--data", files[name], "-o", tmp_path / "m.keras"], expected)


def test_a_folder_given_as_a_shower_file_is_named(files, capsys, tmp_path):
    fails_in_one_line(capsys, ["evaluate", files["showers"], tmp_path, "--no-plots"], "is a folder")
    with pytest.raises(ShowerFileError, match="is a folder, not a shower file"):
        load_showers(tmp_path)


def test_an_unforeseen_failure_is_one_line_and_debug_shows_the_traceback(files, capsys, monkeypatch):
    import caloedu.cli.evaluate as evaluate

    def broken(args):
        raise RuntimeError("something nobody foresaw\nsecond line")

    monkeypatch.setattr(evaluate, "evaluate_files", broken)
    argv = ["evaluate", files["showers"], files["showers"], "--no-plots"]
    fails_in_one_line(capsys, argv, "RuntimeError: something nobody foresaw", "--debug")
    with pytest.raises(RuntimeError):
        main([*map(str, argv), "--debug"])


# --- units, zeros, empty files -----------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "evaluate", "sample"])
def test_energies_in_gev_are_refused_everywhere(files, capsys, tmp_path, command):
    argv = {
        "train": ["train", "--data", files["gev"], "--geometry", "teaching", "-o", tmp_path / "m.keras"],
        "evaluate": ["evaluate", files["showers"], files["gev"], "--no-plots", "--classifier", "none"],
        "sample": ["sample", files["model"], "--energies-from", files["gev"], "-o", tmp_path / "g.h5"],
    }[command]
    fails_in_one_line(capsys, argv, str(files["gev"]), "incident energy in row", "are these GeV? caloedu works in MeV")


def test_simulate_refuses_energies_that_look_like_gev(capsys, tmp_path):
    fails_in_one_line(capsys, ["simulate", "--geometry", "teaching", "--n", "5", "--energy", "50",
                               "-o", tmp_path / "s.h5"], "--energy asks for 50 MeV", "are these GeV?")
    assert not os.listdir(tmp_path)


def test_showers_and_incident_energies_in_different_units_are_named(files, capsys):
    energies, showers = load_showers(files["showers"])
    with pytest.raises(ShowerFileError, match="E_dep/E_inc is .* different units"):
        caloedu.data.check_energy_units(energies, showers * 1e-3, "x.h5", error=ShowerFileError)
    with pytest.raises(ValueError, match="are these GeV"):
        load_showers(files["gev_incident"])


def test_trust_units_lets_gev_through(files, capsys):
    assert main(["evaluate", str(files["gev"]), str(files["gev"]), "--no-plots", "--classifier", "none",
                 "--trust-units"]) == 0
    assert load_showers(files["gev"], check_units=False)[0].max() < 1e3


def test_generator_fit_refuses_gev(files):
    from caloedu.generators.registry import get_family

    family = get_family("flow-matching")
    gen = family(GEOMETRY, **family.smoke_options)
    energies, showers = load_showers(files["showers"])
    with pytest.raises(ValueError, match="are these GeV"):
        gen.fit(energies / 1e3, showers / 1e3, verbose=0)


def test_a_zero_incident_energy_is_named_with_file_and_row_without_numpy_warnings(files, capsys, recwarn):
    for argv in (["evaluate", files["showers"], files["zero"], "--no-plots"],
                 ["train", "--data", files["zero"], "--geometry", "teaching", "-o", files["zero"].parent / "z.keras"]):
        fails_in_one_line(capsys, argv, str(files["zero"]), "row 7", "0 MeV")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    with pytest.raises(ShowerFileError, match="row 7"):
        load_showers(files["zero"])


@pytest.mark.parametrize("command", ["train", "evaluate", "sample"])
def test_an_empty_file_is_named(files, capsys, tmp_path, command):
    argv = {
        "train": ["train", "--data", files["empty"], "--geometry", "teaching", "-o", tmp_path / "m.keras"],
        "evaluate": ["evaluate", files["showers"], files["empty"], "--no-plots"],
        "sample": ["sample", files["model"], "--energies-from", files["empty"], "-o", tmp_path / "g.h5"],
    }[command]
    fails_in_one_line(capsys, argv, str(files["empty"]), "holds no showers")


def test_load_showers_takes_a_preset_name_and_refuses_zero_like_negative(files):
    energies, showers = load_showers(files["showers"], geometry="teaching")
    assert showers.shape == (300, GEOMETRY.n_voxels)
    with pytest.raises(ShowerFileError, match="0 MeV"):
        load_showers(files["zero"])


def test_a_binning_file_with_a_word_for_a_layer_id_is_named(tmp_path):
    xml = tmp_path / "binning.xml"
    xml.write_text('<Bins><Bin pid="11" name="el"><Layer id="zero" r_edges="0,1,2" n_bin_alpha="1"/></Bin></Bins>')
    with pytest.raises(ValueError, match='id="zero"; a layer id is a whole number'):
        CalorimeterGeometry.from_xml(xml)


# --- warnings for results that would mislead ---------------------------------------------------------------
def test_evaluate_warns_when_the_incident_energies_differ(files, capsys):
    assert main(["evaluate", str(files["showers"]), str(files["fixed"]), "--no-plots", "--classifier", "none"]) == 0
    err = capsys.readouterr().err
    assert "warning: the incident energies" in err and "Kolmogorov-Smirnov" in err and "p = " in err
    assert main(["evaluate", str(files["showers"]), str(files["showers"]), "--no-plots", "--classifier", "none"]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in err and "p = 1" in out


def test_sample_warns_outside_the_training_range_and_shows_progress(files, capsys, tmp_path):
    assert main(["sample", str(files["model"]), "--n", "5", "--energy-range", "1e6", "4e6", "--steps", "2",
                 "-o", str(tmp_path / "g.h5"), "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "warning: 5 of 5 incident energies" in err and "outside the range" in err
    assert "sampling: 5/5 showers" in err


def test_progress_bar_in_a_log_file_writes_a_line_per_tenth():
    stream = io.StringIO()
    bar = ProgressBar("sampling", stream=stream)
    for done in range(0, 1001, 10):
        bar(done, 1000)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11 and lines[-1].startswith("sampling: 1,000/1,000 showers")


def test_default_threads_leave_busy_cores_alone(monkeypatch):
    from caloedu import runtime

    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.4, 1.0, 1.0))
    assert runtime.default_threads() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert runtime.default_threads() == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (7.0, 7.0, 7.0))
    assert runtime.default_threads() == 1


def test_a_budget_that_stops_inside_an_epoch_says_so(files, capsys, tmp_path):
    assert epochs_run(250, 300) == "0.83" and epochs_run(600, 300) == "2"
    assert main(["train", "--model", "flow-matching", *SMALL_MODEL, "--data", str(files["showers"]),
                 "-o", str(tmp_path / "m.keras"), "--showers", "250", "--batch-size", "50", "--quiet",
                 "--threads", "1"]) == 0
    assert "for 0.83 epochs (250 showers this run" in capsys.readouterr().out


def test_the_edges_of_the_nominal_range_are_not_an_extrapolation(files):
    generator = caloedu.load_model(files["model"])
    assert generator.energies_outside_training([1e3, 1e6]) is None  # trained on 1-1000 GeV, log-uniform
    assert "1 of 2 incident energies" in generator.energies_outside_training([5e2, 1e5])
