"""`caloedu course` on a small course of its own (one tiny assignment, a lecture that runs and one
that fails): the root is found, release is reproducible and writes the metadata JupyterLab would,
validate catches a hand-edited exercise, run-lectures reports the failing cell, open serves JupyterLab
headless with the course in its Formgrader and a working Assignment List; release and open also from a
virtual environment that was not activated (its scripts folder not on PATH)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest
from conftest import REPO_ROOT, tiny_assignment

from caloedu.cli import course as course_cli
from caloedu.cli import main
from caloedu.cli.notebook_metadata import jupyterlab_metadata


@pytest.fixture(scope="module")
def fake_course(tmp_path_factory):
    root = tmp_path_factory.mktemp("fake") / "course-repo"
    (root / "course").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "course" / "nbgrader_config.py", root / "course")
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root)  # the root's, for JupyterLab started there
    (root / "solutions" / "01_tiny").mkdir(parents=True)
    nbformat.write(tiny_assignment(), root / "solutions" / "01_tiny" / "01_tiny.ipynb")
    (root / "lectures").mkdir()
    for name, code in [("01_runs", "import caloedu\nassert caloedu.runtime.fast_mode()"),
                       ("02_fails", "raise ValueError('the shower has no energy')")]:
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, root / "lectures" / f"{name}.ipynb")
    return root


def test_course_root_is_found_from_a_subfolder(fake_course):
    assert course_cli.find_course_root(fake_course / "lectures") == fake_course


def test_course_root_falls_back_to_the_package_location(tmp_path):
    assert course_cli.find_course_root(tmp_path) == REPO_ROOT


def test_missing_course_root_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(course_cli, "__file__", str(tmp_path / "course.py"))
    with pytest.raises(FileNotFoundError, match="nbgrader_config.py"):
        course_cli.find_course_root(tmp_path)


@pytest.mark.slow
def test_release_is_reproducible_and_validate_catches_a_hand_edit(fake_course, monkeypatch):
    monkeypatch.chdir(fake_course / "lectures")
    exercise = fake_course / "exercises" / "01_tiny" / "01_tiny.ipynb"
    assert main(["course", "release"]) == 0
    first = exercise.read_bytes()
    assert main(["course", "release", "01_tiny"]) == 0
    assert exercise.read_bytes() == first, "two releases of the same solutions differ"
    released = nbformat.read(exercise, as_version=4)
    assert "a + b" not in first.decode() and "HIDDEN" not in first.decode(), "solutions leaked"
    assert all(not c.get("outputs") for c in released.cells)

    assert main(["course", "validate"]) == 0
    released.cells[2].source = "pass"  # a locked test cell edited by hand
    nbformat.write(released, exercise)
    assert main(["course", "validate"]) == 1
    assert main(["course", "release"]) == 0 and main(["course", "validate"]) == 0


def environment_without_this_python():
    """os.environ as in a shell where this virtual environment was never activated: its scripts folder
    (``alembic``, ``jupyter``, ``nbgrader``) is not on PATH."""
    scripts = os.path.dirname(sys.executable)
    path = [folder for folder in os.environ.get("PATH", "").split(os.pathsep) if folder and folder != scripts]
    env = {name: value for name, value in os.environ.items() if name != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(path or [os.defpath])
    return env


@pytest.mark.slow
def test_release_without_an_activated_environment_writes_the_kernel_metadata_of_jupyterlab(fake_course):
    command = [sys.executable, "-m", "caloedu.cli", "course", "release", "01_tiny"]
    result = subprocess.run(command, cwd=fake_course, env=environment_without_this_python(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"release failed without the venv on PATH:\n{result.stdout}{result.stderr}"
    released = nbformat.read(fake_course / "exercises" / "01_tiny" / "01_tiny.ipynb", as_version=4)
    # The solution says {"display_name": "Python 3"} and no language_info: the release must not copy that.
    expected = jupyterlab_metadata()
    assert {key: released.metadata.get(key) for key in expected} == expected


@pytest.mark.slow
def test_run_lectures_reports_the_failing_cell(fake_course, monkeypatch, capsys):
    monkeypatch.chdir(fake_course)
    assert main(["course", "run-lectures"]) == 1
    report = capsys.readouterr().out
    assert "01_runs.ipynb" in report and "02_fails.ipynb" in report
    assert "FAILED" in report and "cell 0: ValueError: the shower has no energy" in report
    assert main(["course", "run-lectures", "01"]) == 0
    assert main(["course", "run-lectures", "09"]) == 2  # no such lecture: a usage error


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers_ok(url, within):
    """True once GET url answers 200 (the server may print its URL just before it listens)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status == 200
        except OSError:
            time.sleep(1)
    return False


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_open_serves_jupyterlab_headless_with_formgrader_and_assignment_list(fake_course):
    command = [sys.executable, "-m", "caloedu.cli", "course", "open", "--no-browser", "--port", str(free_port())]
    lab = subprocess.Popen(command, cwd=fake_course, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=environment_without_this_python())
    try:
        deadline, url = time.monotonic() + 120, None
        while url is None and time.monotonic() < deadline and lab.poll() is None:
            line = lab.stdout.readline()
            if "JupyterLab is at " in line:
                url = line.split("JupyterLab is at ")[1].strip()
        assert url, "caloedu course open printed no URL"
        assert answers_ok(url, within=60), f"nothing serves {url}"
        base, token = url.split("/lab?token=")
        # What the Formgrader page and the Assignment List panel ask the server for.
        formgrader = get_json(f"{base}/formgrader/api/assignments?token={token}")
        assert "01_tiny" in [a["name"] for a in formgrader], f"the Formgrader lists no 01_tiny: {formgrader}"
        assignments = get_json(f"{base}/assignments?course_id=caloedu&token={token}")
        assert assignments["success"], f"the Assignment List fails: {assignments['value']}"
    finally:
        lab.terminate()
        lab.wait(timeout=30)
