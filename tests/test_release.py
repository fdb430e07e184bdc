"""The committed release matches the solutions: exercises/ is exactly what `caloedu course release`
(nbgrader generate_assignment) makes from solutions/, and no committed notebook carries outputs.
Every committed notebook is stored as JupyterLab saves it, with the metadata JupyterLab writes for this
environment's kernel, so opening and saving one in JupyterLab leaves git status clean
(tests/test_course_browser.py does exactly that, where a browser is installed)."""

import nbformat
import pytest
from conftest import REPO_ROOT

from caloedu.cli.course import find_assignments
from caloedu.cli.notebook_metadata import jupyterlab_metadata

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


def without_python_version(metadata):
    """The metadata with language_info.version left out: it is the patch version of whichever Python
    released (a kernel of another Python rewrites that line, nothing else), so pinning it here would fail
    on every machine with another Python; the release test of test_course_cli checks it exactly."""
    language_info = {k: v for k, v in metadata.get("language_info", {}).items() if k != "version"}
    return {"kernelspec": metadata.get("kernelspec"), "language_info": language_info}


def test_committed_notebooks_carry_the_kernel_metadata_jupyterlab_writes():
    expected = without_python_version(jupyterlab_metadata())
    stale = [str(path.relative_to(REPO_ROOT)) for path in COMMITTED_NOTEBOOKS
             if without_python_version(nbformat.read(path, as_version=4).metadata) != expected]
    assert not stale, (f"JupyterLab would rewrite the kernelspec or language_info of {stale} on save "
                       f"(it writes {expected}); run `caloedu course release` for exercises/, or open and save "
                       "a lecture or solution in JupyterLab")


def test_committed_notebooks_are_formatted_as_jupyterlab_saves_them():
    # Jupyter's server writes nbformat's JSON: sorted keys, one-space indent, a final newline.
    reformatted = [str(path.relative_to(REPO_ROOT)) for path in COMMITTED_NOTEBOOKS
                   if path.read_text(encoding="utf-8") != nbformat.writes(nbformat.read(path, as_version=4)) + "\n"]
    assert not reformatted, (f"JupyterLab would reformat {reformatted} on save (keys out of order, another indent?); "
                             "write notebooks with nbformat.write, or open and save them in JupyterLab")


@pytest.fixture(scope="module")
def fresh_release(released_course):
    """The exercises nbgrader generates now, from a temporary copy of solutions/ (conftest.released_course)."""
    return released_course.root / "exercises"


def graded_view(notebook):
    """What the release is made of: each cell's type, source and nbgrader metadata (with checksums)."""
    return [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in notebook.cells]


def released_files(folder):
    """Files of a release folder, without what opening it in JupyterLab leaves (checkpoints, caches), which
    nbgrader's own ignore list never releases either."""
    left_by_jupyter = {".ipynb_checkpoints", "__pycache__"}
    return sorted(p.relative_to(folder) for p in folder.rglob("*")
                  if p.is_file() and not left_by_jupyter & set(p.relative_to(folder).parts))


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercise_equals_a_fresh_release(assignment, fresh_release):
    committed, fresh = REPO_ROOT / "exercises" / assignment, fresh_release / assignment
    stale = f"run `caloedu course release {assignment}` and commit exercises/{assignment}"
    assert committed.is_dir(), f"exercises/{assignment} does not exist: {stale}"
    committed_files = released_files(committed)
    fresh_files = released_files(fresh)
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
