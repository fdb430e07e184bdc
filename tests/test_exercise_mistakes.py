"""Every typical mistake of tests/nbgrader_mistakes.json, graded as a student would meet it, in seconds.

The house rule for exercises: visible tests whose messages name the likely mistake, hidden tests that catch
shortcuts and calls to the library, and, here, two or more typical mistakes per answer cell, each run to check
that the grade and the message are the right ones. An entry of the registry

    {"name": "max without keepdims", "cell": "softmax", "find": "...", "replace": "...",
     "fails": ["test_softmax", "test_attention"], "message": "keepdims=True"}

edits the answer cell ``cell`` of the solution (the first ``find`` becomes ``replace``) and says which graded
test cells then fail (all others must pass) and a piece of the message the first of them must show: an
AssertionError whose text holds ``message``, never a raw NumPy or Python error. An entry with ``"fails": []``
is a correct variant (a float32 answer, say) that must pass every test.

Graded in this process, not through nbgrader: the solution notebook's code cells run with ``exec`` in one
namespace named ``__main__`` (as in a kernel), hidden tests included, as autograde runs them. The clean
solution runs once per notebook, keeping a copy of the namespace before each cell and each test cell's result; a
mistake starts from the copy before its answer cell and runs that cell, edited, and the cells after it that can
see the edit: those naming something the edited cell defines, or defined by a cell that does (attention calls
softmax, so a softmax mistake reruns the attention tests too). The other test cells keep the solution's result:
they never reach the edited code. The first entry of each assignment is also graded end to end by nbgrader in
tests/test_nbgrader_pipeline.py.
"""

import ast
import contextlib
import io
import json
import re
import warnings

import pytest
from conftest import REPO_ROOT, load_mistakes

from caloedu.cli.course import find_assignments

ASSIGNMENTS = find_assignments(REPO_ROOT)
MISTAKES = load_mistakes()
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


def code_cells(assignment):
    """[(grade_id, kind, source)] of the solution notebook's code cells; kind: answer, tests or readonly."""
    cells = []
    for path in sorted((REPO_ROOT / "solutions" / assignment).glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code":
                continue
            meta = cell["metadata"]["nbgrader"]
            kind = "answer" if meta.get("solution") else "tests" if meta.get("grade") else "readonly"
            cells.append((meta["grade_id"], kind, "".join(cell["source"])))
    return cells


def defined_names(source):
    """Names a cell defines at its top level (functions, classes, assignments, imports)."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def used_names(source):
    return {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}


def run_cell(grade_id, source, namespace):
    """Run one cell as a kernel would; returns the exception it raised, or None."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            exec(compile(source, f"<cell {grade_id}>", "exec"), namespace)
        except Exception as error:  # noqa: BLE001  (a student's cell may raise anything)
            return error
    return None


class GradedNotebook:
    """The solution of one assignment, run once, and re-run from any answer cell with that cell edited."""

    def __init__(self, assignment):
        self.cells = code_cells(assignment)
        namespace = {"__name__": "__main__"}
        self.before = []  # a shallow copy of the namespace before each cell
        self.errors = {}
        for grade_id, kind, source in self.cells:
            self.before.append(dict(namespace))
            error = run_cell(grade_id, source, namespace)
            if error is not None:
                self.errors[grade_id] = error
        self.defines = [defined_names(source) for _, _, source in self.cells]
        self.uses = [used_names(source) for _, _, source in self.cells]

    def index(self, grade_id):
        return next(i for i, (cell_id, _, _) in enumerate(self.cells) if cell_id == grade_id)

    def grade_with(self, grade_id, source):
        """{test grade_id: exception or None} with answer cell ``grade_id`` holding ``source``."""
        start = self.index(grade_id)
        namespace = dict(self.before[start])
        results = {cell_id: self.errors.get(cell_id) for cell_id, kind, _ in self.cells if kind == "tests"}
        reached = set(self.defines[start]) | defined_names(source)  # what the edit can change
        for i, (cell_id, kind, cell_source) in enumerate(self.cells[start:], start):
            if i > start and not self.uses[i] & reached:
                if kind != "tests":  # cheap definitions later cells may need; tests keep the solution's result
                    run_cell(cell_id, cell_source, namespace)
                continue
            if kind != "tests":  # what a test cell defines is its own business
                reached |= self.defines[i]
            error = run_cell(cell_id, source if cell_id == grade_id else cell_source, namespace)
            if kind == "answer" and error is not None:
                raise AssertionError(f"answer cell {cell_id} raised {error!r}: the registry's edit is broken")
            if kind == "tests":
                results[cell_id] = error
        return results


@pytest.fixture(scope="module")
def graded_notebooks(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.chdir(tmp_path_factory.mktemp("mistakes"))  # whatever a cell writes stays out of the repo
    monkeypatch_module.setenv("CALOEDU_FAST", "1")
    return {}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def graded(graded_notebooks, assignment):
    if assignment not in graded_notebooks:
        graded_notebooks[assignment] = GradedNotebook(assignment)
    return graded_notebooks[assignment]


def describe(error):
    return "passed" if error is None else f"{type(error).__name__}: {error}"


def registry_cases():
    return [pytest.param(assignment, mistake, id=f"{assignment}-{mistake['cell']}-{mistake['name']}")
            for assignment in ASSIGNMENTS for mistake in MISTAKES.get(assignment, [])]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_passes_every_test_in_process(assignment, graded_notebooks):
    notebook = graded(graded_notebooks, assignment)
    assert not notebook.errors, "the solution fails in process: " + "; ".join(
        f"{cell}: {describe(error)}" for cell, error in notebook.errors.items())


@pytest.mark.parametrize(("assignment", "mistake"), registry_cases())
def test_typical_mistake_fails_with_its_message(assignment, mistake, graded_notebooks):
    notebook = graded(graded_notebooks, assignment)
    source = next((s for cell_id, kind, s in notebook.cells if cell_id == mistake["cell"] and kind == "answer"), None)
    assert source is not None, f"nbgrader_mistakes.json: {assignment} has no answer cell {mistake['cell']!r}"
    assert source.count(mistake["find"]) == 1, (
        f"nbgrader_mistakes.json is stale: {mistake['find']!r} is not (or not once) in answer cell {mistake['cell']!r}")
    results = notebook.grade_with(mistake["cell"], source.replace(mistake["find"], mistake["replace"], 1))
    failed = sorted(cell for cell, error in results.items() if error is not None)
    outcome = "\n".join(f"  {cell}: {describe(error)}" for cell, error in results.items())
    assert failed == sorted(mistake["fails"]), (
        f"the mistake should fail {sorted(mistake['fails'])} and pass the other tests; it failed {failed}:\n{outcome}")
    if mistake["fails"]:
        error = results[mistake["fails"][0]]
        assert isinstance(error, AssertionError), (
            f"{mistake['fails'][0]} stops on a raw {type(error).__name__}, not on a message: {error}")
        assert mistake["message"] in str(error), (
            f"the message of {mistake['fails'][0]} should name the mistake ({mistake['message']!r}); it says: {error}")


def answer_functions(source):
    """Names of the functions and classes an answer cell defines."""
    return [node.name for node in ast.parse(source).body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_answer_has_typical_mistakes_and_a_library_check(assignment):
    cells = code_cells(assignment)
    registered = MISTAKES.get(assignment, [])
    for i, (grade_id, kind, source) in enumerate(cells):
        if kind != "answer":
            continue
        real = [m for m in registered if m["cell"] == grade_id and m["fails"]]
        assert len(real) >= 2, (f"{assignment}: answer cell {grade_id!r} has {len(real)} typical mistake(s) in "
                                "tests/nbgrader_mistakes.json; record two or more")
        tests = next(s for _, k, s in cells[i + 1:] if k == "tests")
        hidden = "".join(HIDDEN.findall(tests))
        for name in answer_functions(source):
            assert re.search(rf"\buses\(\s*{name}\b", hidden), (
                f"{assignment}: the hidden tests after {grade_id!r} do not check that {name} is the student's "
                "own code (uses(...): no call to caloedu's twin or to scipy)")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_assert_in_the_tests_has_a_message(assignment):
    bare = [f"{grade_id} line {node.lineno}" for grade_id, kind, source in code_cells(assignment) if kind == "tests"
            for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Assert) and node.msg is None]
    assert not bare, f"{assignment}: asserts without a message (a bare AssertionError tells a student nothing): {bare}"
