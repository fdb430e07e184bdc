"""Shared fixtures: the repository root, notebook execution in fast mode, and throwaway copies of
the nbgrader course (config + solutions) in which the release/grading pipeline can run freely."""

import json
import shutil
from pathlib import Path

import families  # noqa: F401  (registers the test-only generator families)
import nbformat
import pytest

from caloedu.cli.course import execute_notebook, find_course_root, run_nbgrader

REPO_ROOT = find_course_root(Path(__file__).parent)
# Seconds one cell may take in the notebook tests; fast mode keeps real cells to seconds.
CELL_TIMEOUT = 600


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def run_notebook_fast():
    """Execute a notebook top to bottom with CALOEDU_FAST=1 in a temporary copy of its folder;
    returns a :class:`caloedu.cli.course.NotebookRun` (``.ok``, ``.describe()`` names the cell)."""

    def run(path, timeout=CELL_TIMEOUT):
        return execute_notebook(path, fast=True, timeout=timeout)

    return run


class CourseCopy:
    """A course folder in a temporary place: ``course/nbgrader_config.py`` copied from the repository
    (its root follows the file, so nbgrader works on this copy) plus the assignments given.
    Gradebook, submitted/, autograded/ and feedback/ all live inside the copy."""

    def __init__(self, root):
        self.root = Path(root)
        (self.root / "course").mkdir(parents=True)
        shutil.copy(REPO_ROOT / "course" / "nbgrader_config.py", self.root / "course")

    def add_config(self, *lines):
        """Append config lines (``c.Execute.timeout = 20``) to this copy's nbgrader_config.py."""
        with open(self.root / "course" / "nbgrader_config.py", "a") as config:
            config.write("\n" + "\n".join(lines) + "\n")

    def add_solution_folder(self, folder):
        shutil.copytree(folder, self.root / "solutions" / Path(folder).name)

    def add_solution_notebook(self, assignment, notebook):
        (self.root / "solutions" / assignment).mkdir(parents=True)
        nbformat.write(notebook, self.root / "solutions" / assignment / f"{assignment}.ipynb")

    def nbgrader(self, *args, check=True):
        return run_nbgrader(self.root, *args, check=check)

    def submit(self, student, assignment, notebooks):
        """Place ``{file name: notebook}`` as ``submitted/<student>/<assignment>/``."""
        folder = self.root / "submitted" / student / assignment
        folder.mkdir(parents=True)
        (folder / "timestamp.txt").write_text("2025-07-01 12:00:00.000000 UTC")
        for name, notebook in notebooks.items():
            nbformat.write(notebook, folder / name)

    def grades(self, assignment, student):
        """``{grade_id: (score, max_score)}`` of every graded cell in the student's submission."""
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{self.root / 'gradebook.db'}", "caloedu") as gradebook:
            submission = gradebook.find_submission(assignment, student)
            return {
                grade.name: (grade.score, grade.max_score)
                for notebook in submission.notebooks
                for grade in notebook.grades
            }


@pytest.fixture(scope="session")
def make_course_copy(tmp_path_factory):
    def make():
        return CourseCopy(tmp_path_factory.mktemp("course") / "caloedu")

    return make


@pytest.fixture(scope="session")
def released_course(make_course_copy):
    """A course copy holding every assignment of solutions/, released once (nbgrader generate_assignment):
    test_release compares it with exercises/, the pipeline grades fake students in it."""
    from caloedu.cli.course import find_assignments, release

    course = make_course_copy()
    for assignment in find_assignments(REPO_ROOT):
        course.add_solution_folder(REPO_ROOT / "solutions" / assignment)
    release(course.root)
    return course


def nbgrader_cell(kind, source, grade_id, points=0):
    """A code cell with nbgrader metadata: kind is 'answer', 'tests' or 'readonly'."""
    meta = {"grade": kind == "tests", "solution": kind == "answer", "locked": kind != "answer",
            "task": False, "grade_id": grade_id, "schema_version": 3}
    if kind == "tests":
        meta["points"] = points
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = meta
    return cell


def tiny_assignment():
    """Two answers (add, mul), each followed by a visible-and-hidden test cell."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbgrader_cell("readonly", "import math", "imports"),
        nbgrader_cell("answer", "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION", "add"),
        nbgrader_cell("tests", 'assert add(1, 2) == 3, "add(1, 2) should be 3"\n'
                      "### BEGIN HIDDEN TESTS\nassert add(-1, 1) == 0\n### END HIDDEN TESTS", "test_add", 2),
        nbgrader_cell("answer", "def mul(a, b):\n    ### BEGIN SOLUTION\n    return a * b\n    ### END SOLUTION", "mul"),
        nbgrader_cell("tests", 'assert mul(2, 3) == 6, "mul(2, 3) should be 6"\n'
                      "### BEGIN HIDDEN TESTS\nassert math.isclose(mul(0.5, 4), 2)\n### END HIDDEN TESTS",
                      "test_mul", 3),
    ]
    return notebook


def load_mistakes():
    """The registry of typical mistakes, ``{assignment: [mistake, ...]}`` (tests/nbgrader_mistakes.json; its format is
    described in tests/test_exercise_mistakes.py)."""
    path = Path(__file__).parent / "nbgrader_mistakes.json"
    return json.loads(path.read_text()) if path.exists() else {}

