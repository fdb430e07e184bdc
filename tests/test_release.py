"""The committed release matches the solutions: exercises/ is exactly what `caloedu course release`
(nbgrader generate_assignment) makes from solutions/, and no committed notebook carries outputs."""

import nbformat
import pytest
from conftest import REPO_ROOT

from caloedu.cli.course import find_assignments

ASSIGNMENTS = find_assignments(REPO_ROOT)
COMMITTED_NOTEBOOKS = sorted(REPO_ROOT.glob("lectures/*.ipynb")) + sorted(
    REPO_ROOT.glob("solutions/*/*.ipynb")) + sorted(REPO_ROOT.glob("exercises/*/*.ipynb"))


def notebooks_under(folder):
    return {str(p.relative_to(folder)) for p in folder.glob("*/*.ipynb")}


def test_every_solution_has_an_exercise_and_vice_versa():
    solutions, exercises = notebooks_under(REPO_ROOT / "solutions"), notebooks_under(REPO_ROOT / "exercises")
    assert not solutions - exercises, \
        f"solutions without a released exercise: {sorted(solutions - exercises)}; run `caloedu course release`"
    assert not exercises - solutions, \
        f"exercises without a solution (delete them or restore the solution): {sorted(exercises - solutions)}"


def test_committed_notebooks_have_no_outputs():
    dirty = []
    for path in COMMITTED_NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        cells = [i for i, c in enumerate(notebook.cells)
                 if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
        if cells:
            dirty.append(f"{path.relative_to(REPO_ROOT)} (cells {cells})")
    assert not dirty, ("notebooks committed with outputs: " + ", ".join(dirty)
                       + "; clear them (`jupyter nbconvert --clear-output --inplace FILE`)")


@pytest.fixture(scope="module")
def fresh_release(released_course):
    """The exercises nbgrader generates now, from a temporary copy of solutions/ (conftest.released_course)."""
    return released_course.root / "exercises"


def graded_view(notebook):
    """What the release is made of: each cell's type, source and nbgrader metadata (with checksums)."""
    return [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in notebook.cells]


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercise_equals_a_fresh_release(assignment, fresh_release):
    committed, fresh = REPO_ROOT / "exercises" / assignment, fresh_release / assignment
    stale = f"run `caloedu course release {assignment}` and commit exercises/{assignment}"
    assert committed.is_dir(), f"exercises/{assignment} does not exist: {stale}"
    committed_files = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    fresh_files = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    assert committed_files == fresh_files, f"exercises/{assignment} holds other files than a release: {stale}"
    for name in fresh_files:
        if name.suffix != ".ipynb":
            assert (committed / name).read_bytes() == (fresh / name).read_bytes(), f"{name} differs: {stale}"
            continue
        ours = graded_view(nbformat.read(committed / name, as_version=4))
        theirs = graded_view(nbformat.read(fresh / name, as_version=4))
        assert len(ours) == len(theirs), f"exercises/{assignment}/{name} has {len(ours)} cells, " \
                                         f"a release has {len(theirs)}: {stale}"
        differing = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
        assert not differing, f"exercises/{assignment}/{name}: cells {differing} differ from a release: {stale}"
