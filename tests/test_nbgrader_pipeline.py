"""The nbgrader pipeline end to end on fake students, in a temporary copy of the course:
generate_assignment -> submitted/<student>/<assignment>/ -> autograde -> generate_feedback -> gradebook.

Each fake student stands for a case an instructor meets:
  perfect      the solution typed in: full marks
  blank        the release handed back untouched: zero
  mistake      one typical error (tests/nbgrader_mistakes.json): loses that test's points only
  edits_tests  the release with its locked test cells replaced by `pass`: graded with the original
               tests, so the same score as `blank`
  loops        the solution with an endless loop in an answer cell: stopped by the timeout, and the
               other cells' points still count (full marks, as the loop comes after the answer)
  missing      the notebook handed in under another name: autograde fails for that student, names
               them, and the gradebook gives zero
  empty        an assignment folder with no notebook at all: nbgrader sees no submission

A tiny assignment (conftest.tiny_assignment) proves the machinery on its own in seconds; the same checks then run on
every assignment in solutions/.
"""

import copy

import nbformat
import pytest
from conftest import REPO_ROOT, load_mistakes, tiny_assignment
from nbgrader.api import MissingEntry

from caloedu.cli.course import find_assignments

# The loop student gets a short per-cell timeout (the others run under the course's own); a real
# assignment's slowest cell (imports, a fast-mode fit) must finish within it on a loaded CI machine.
LOOP_TIMEOUT = 30
LOOP_CODE = "\n\nwhile True:  # a student's loop that never ends\n    pass\n"
SOLUTION_MARKERS = {"### BEGIN SOLUTION", "### END SOLUTION"}
TINY_MISTAKE = {"cell": "mul", "find": "return a * b", "replace": "return a ** b", "fails": ["test_mul"]}


def graded_code_ids(notebook):
    """grade_ids of the cells autograde scores (graded code cells)."""
    return [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]


def cells_by_id(notebook):
    return {c.metadata["nbgrader"]["grade_id"]: c for c in notebook.cells if "nbgrader" in c.metadata}


def filled_in(release, solution):
    """The release with each answer cell holding the solution's code, as a student would type it."""
    student = copy.deepcopy(release)
    solutions = cells_by_id(solution)
    for cell in student.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            lines = solutions[meta["grade_id"]].source.splitlines()
            cell.source = "\n".join(line for line in lines if line.strip() not in SOLUTION_MARKERS)
    return student


def with_mistake(notebook, mistake):
    student = copy.deepcopy(notebook)
    cell = cells_by_id(student).get(mistake["cell"])
    if cell is None or mistake["find"] not in cell.source:
        raise ValueError(f"nbgrader_mistakes.json is stale: {mistake['find']!r} is not in answer cell "
                         f"{mistake['cell']!r} of the solution")
    cell.source = cell.source.replace(mistake["find"], mistake["replace"], 1)
    return student


def with_tests_replaced_by_pass(notebook):
    student = copy.deepcopy(notebook)
    for cell in student.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and meta.get("locked") and not meta.get("solution"):
            cell.source = "pass  # the student removed the tests"
    return student


def first_answer_code_cell(notebook):
    return next(c for c in notebook.cells
                if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"))


def with_endless_loop(notebook):
    student = copy.deepcopy(notebook)
    first_answer_code_cell(student).source += LOOP_CODE
    return student


def run_pipeline(course, assignment, mistake, loop_timeout):
    """Generate, submit for every fake student, autograde, feedback; returns the gradebook grades,
    the release notebooks and the autograde result of the `missing` student."""
    course.nbgrader("generate_assignment", assignment, "--force")
    names = sorted(p.name for p in (course.root / "solutions" / assignment).glob("*.ipynb"))
    release = {n: nbformat.read(course.root / "exercises" / assignment / n, as_version=4) for n in names}
    solution = {n: nbformat.read(course.root / "solutions" / assignment / n, as_version=4) for n in names}
    filled = {n: filled_in(release[n], solution[n]) for n in names}

    students = {"perfect": filled, "blank": release,
                "edits_tests": {n: with_tests_replaced_by_pass(release[n]) for n in names}}
    if mistake:
        # with_mistake says the registry is stale when no notebook has the cell
        holder = next((n for n in names if mistake["cell"] in cells_by_id(filled[n])), names[0])
        students["mistake"] = {**filled, holder: with_mistake(filled[holder], mistake)}
    for student, notebooks in students.items():
        course.submit(student, assignment, notebooks)
    course.nbgrader("autograde", assignment)  # all ordinary students in one run

    course.submit("loops", assignment, {**filled, names[0]: with_endless_loop(filled[names[0]])})
    course.nbgrader("autograde", assignment, "--student=loops", f"--Execute.timeout={loop_timeout}")

    course.submit("missing", assignment, {n.replace(".ipynb", "-Copy1.ipynb"): filled[n] for n in names})
    (course.root / "submitted" / "empty" / assignment).mkdir(parents=True)
    # Everyone graded above is skipped (autograded/ has them); only missing and empty are new.
    missing_run = course.nbgrader("autograde", assignment, check=False)

    course.nbgrader("generate_feedback", assignment)
    grades = {student: course.grades(assignment, student) for student in [*students, "loops", "missing"]}
    return grades, release, missing_run


def check_pipeline(course, assignment, mistake, loop_timeout=LOOP_TIMEOUT):
    grades, release, missing_run = run_pipeline(course, assignment, mistake, loop_timeout)
    tested = [grade_id for notebook in release.values() for grade_id in graded_code_ids(notebook)]
    assert tested, f"{assignment} has no graded code cells"

    def scores(student):
        return {grade_id: grades[student][grade_id][0] for grade_id in tested}

    full = {grade_id: grades["perfect"][grade_id][1] for grade_id in tested}
    zero = {grade_id: 0 for grade_id in tested}
    assert scores("perfect") == full, f"{assignment}: the solution does not get full marks"
    assert scores("blank") == zero, f"{assignment}: the untouched release earns points"
    assert scores("edits_tests") == scores("blank"), \
        f"{assignment}: replacing the locked tests by `pass` changed the score (tests not restored)"
    assert scores("loops") == full, \
        f"{assignment}: after the endless loop was stopped, the other cells were not graded in full"

    if mistake:
        lost = sorted(g for g, score in scores("mistake").items() if score < full[g])
        assert lost == sorted(mistake["fails"]), (
            f"{assignment}: the mistake {mistake['replace']!r} should lose the points of "
            f"{sorted(mistake['fails'])} only; it lost those of {lost}")

    loop_notebook = nbformat.read(next((course.root / "autograded" / "loops" / assignment).glob("*.ipynb")), 4)
    loop_cell = next(c for c in loop_notebook.cells if "while True" in c.source)
    stopped = [o.get("ename") for o in loop_cell.outputs if o.output_type == "error"]
    assert stopped and set(stopped) <= {"CellTimeoutError", "KeyboardInterrupt"}, \
        f"{assignment}: the endless loop was not stopped by the timeout (outputs: {stopped})"

    assert missing_run.returncode != 0 and "'missing'" in missing_run.stdout + missing_run.stderr, \
        f"{assignment}: autograde did not name the student whose notebook is missing"
    assert sum(score for score, _ in grades["missing"].values()) == 0
    assert "'empty'" not in missing_run.stdout + missing_run.stderr
    with pytest.raises(MissingEntry):
        course.grades(assignment, "empty")

    feedback = course.root / "feedback"
    for student in ("perfect", "blank", "loops"):
        assert list((feedback / student / assignment).glob("*.html")), f"no feedback for {student}"


def test_pipeline_on_a_tiny_assignment(make_course_copy):
    course = make_course_copy()
    course.add_solution_notebook("tiny", tiny_assignment())
    check_pipeline(course, "tiny", TINY_MISTAKE, loop_timeout=5)


@pytest.mark.slow
@pytest.mark.parametrize("assignment", find_assignments(REPO_ROOT))
def test_pipeline_on_course_assignment(assignment, make_course_copy):
    course = make_course_copy()
    course.add_solution_folder(REPO_ROOT / "solutions" / assignment)
    mistake = load_mistakes().get(assignment)
    if mistake is None:
        print(f"{assignment}: no entry in tests/nbgrader_mistakes.json; the typical-mistake case is skipped")
    check_pipeline(course, assignment, mistake)
