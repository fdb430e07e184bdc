"""The nbgrader pipeline end to end on fake students, in a temporary copy of the course:
generate_assignment -> submitted/<student>/<assignment>/ -> autograde -> generate_feedback -> gradebook.

Each fake student stands for a case an instructor meets:
  perfect      the solution typed in: full marks
  blank        the release handed back untouched: zero
  mistake      one typical error, the assignment's first in tests/nbgrader_mistakes.json: loses the points of the
               tests it names only (tests/test_exercise_mistakes.py runs every entry in process, in seconds)
  edits_tests  the release with its locked test cells replaced by `pass`: graded with the original
               tests, so the same score as `blank`
  loops        the solution with an endless loop in an answer cell: stopped by the timeout, and the
               other cells' points still count (full marks, as the loop comes after the answer)
  missing      the notebook handed in under another name: autograde fails for that student, names
               them, and the gradebook gives zero
  empty        an assignment folder with no notebook at all: nbgrader sees no submission

The last four test nbgrader's machinery and our configuration, which do not depend on the assignment: they run
on a tiny assignment (conftest.tiny_assignment) in seconds. Every assignment in solutions/ gets the three that
depend on its content (perfect, blank, mistake), in the course copy the release test made; the perfect student
is also where each solution notebook runs top to bottom (tests/test_notebooks.py runs the lectures).
"""

import copy

import nbformat
import pytest
from conftest import REPO_ROOT, load_mistakes, tiny_assignment
from nbgrader.api import MissingEntry

from caloedu.cli.course import find_assignments

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


def release_notebooks(course, assignment):
    """{file name: (release, solution)} notebooks of an assignment already generated in ``course``."""
    names = sorted(p.name for p in (course.root / "solutions" / assignment).glob("*.ipynb"))
    return {n: (nbformat.read(course.root / "exercises" / assignment / n, as_version=4),
                nbformat.read(course.root / "solutions" / assignment / n, as_version=4)) for n in names}


def content_students(notebooks, mistake):
    """The students whose grades depend on the assignment's content: perfect, blank and (if any) mistake."""
    filled = {n: filled_in(release, solution) for n, (release, solution) in notebooks.items()}
    students = {"perfect": filled, "blank": {n: release for n, (release, _) in notebooks.items()}}
    if mistake:
        # with_mistake says the registry is stale when no notebook has the cell
        holder = next((n for n in filled if mistake["cell"] in cells_by_id(filled[n])), next(iter(filled)))
        students["mistake"] = {**filled, holder: with_mistake(filled[holder], mistake)}
    return students, filled


def grade(course, assignment, students):
    for student, notebooks in students.items():
        course.submit(student, assignment, notebooks)
    course.nbgrader("autograde", assignment)  # all of them in one run


def check_content_grades(course, assignment, notebooks, students, mistake):
    """Full marks for the solution, zero for the release, and the mistake loses its test's points only."""
    tested = [grade_id for release, _ in notebooks.values() for grade_id in graded_code_ids(release)]
    assert tested, f"{assignment} has no graded code cells"
    def scores(student):
        grades = course.grades(assignment, student)
        return {grade_id: grades[grade_id][0] for grade_id in tested}

    full = {grade_id: max_score for grade_id, (_, max_score) in course.grades(assignment, "perfect").items()
            if grade_id in tested}
    assert scores("perfect") == full, f"{assignment}: the solution does not get full marks"
    assert scores("blank") == {grade_id: 0 for grade_id in tested}, f"{assignment}: the untouched release earns points"
    if mistake:
        lost = sorted(g for g, score in scores("mistake").items() if score < full[g])
        assert lost == sorted(mistake["fails"]), (
            f"{assignment}: the mistake {mistake['replace']!r} should lose the points of "
            f"{sorted(mistake['fails'])} only; it lost those of {lost}")
    return scores, full


def test_pipeline_on_a_tiny_assignment(make_course_copy):
    course = make_course_copy()
    course.add_solution_notebook("tiny", tiny_assignment())
    course.nbgrader("generate_assignment", "tiny", "--force")
    notebooks = release_notebooks(course, "tiny")
    students, filled = content_students(notebooks, TINY_MISTAKE)
    students["edits_tests"] = {n: with_tests_replaced_by_pass(release) for n, (release, _) in notebooks.items()}
    grade(course, "tiny", students)
    scores, full = check_content_grades(course, "tiny", notebooks, students, TINY_MISTAKE)
    assert scores("edits_tests") == scores("blank"), \
        "replacing the locked tests by `pass` changed the score (tests not restored)"

    name = next(iter(filled))
    course.submit("loops", "tiny", {**filled, name: with_endless_loop(filled[name])})
    course.nbgrader("autograde", "tiny", "--student=loops", "--Execute.timeout=5")
    assert scores("loops") == full, "after the endless loop was stopped, the other cells were not graded in full"
    loop_notebook = nbformat.read(next((course.root / "autograded" / "loops" / "tiny").glob("*.ipynb")), 4)
    loop_cell = next(c for c in loop_notebook.cells if "while True" in c.source)
    stopped = [o.get("ename") for o in loop_cell.outputs if o.output_type == "error"]
    assert stopped and set(stopped) <= {"CellTimeoutError", "KeyboardInterrupt"}, \
        f"the endless loop was not stopped by the timeout (outputs: {stopped})"

    course.submit("missing", "tiny", {n.replace(".ipynb", "-Copy1.ipynb"): nb for n, nb in filled.items()})
    (course.root / "submitted" / "empty" / "tiny").mkdir(parents=True)
    # Everyone graded above is skipped (autograded/ has them); only missing and empty are new.
    missing_run = course.nbgrader("autograde", "tiny", check=False)
    assert missing_run.returncode != 0 and "'missing'" in missing_run.stdout + missing_run.stderr, \
        "autograde did not name the student whose notebook is missing"
    assert sum(score for score, _ in course.grades("tiny", "missing").values()) == 0
    assert "'empty'" not in missing_run.stdout + missing_run.stderr
    with pytest.raises(MissingEntry):
        course.grades("tiny", "empty")

    course.nbgrader("generate_feedback", "tiny")
    for student in ("perfect", "blank", "loops"):
        assert list((course.root / "feedback" / student / "tiny").glob("*.html")), f"no feedback for {student}"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", find_assignments(REPO_ROOT))
def test_pipeline_on_course_assignment(assignment, released_course):
    mistake = next(iter(load_mistakes().get(assignment, [])), None)  # the first: one nbgrader run is ~10 s
    if mistake is None:
        print(f"{assignment}: no entry in tests/nbgrader_mistakes.json; the typical-mistake case is skipped")
    notebooks = release_notebooks(released_course, assignment)
    students, _ = content_students(notebooks, mistake)
    grade(released_course, assignment, students)
    check_content_grades(released_course, assignment, notebooks, students, mistake)
    released_course.nbgrader("generate_feedback", assignment, "--student=perfect")
    assert list((released_course.root / "feedback" / "perfect" / assignment).glob("*.html")), "no feedback"
