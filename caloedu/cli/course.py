"""``caloedu course ...``: the instructor side of the course.

- ``open``          start JupyterLab at the repository root (``--no-browser`` for a headless machine)
- ``run-lectures``  execute every ``lectures/*.ipynb`` headless, in a temporary copy, and report
- ``release``       regenerate ``exercises/`` from ``solutions/`` with ``nbgrader generate_assignment``
- ``validate``      the solutions pass their tests, the released exercises fail theirs

nbgrader reads ``nbgrader_config.py`` from the current directory: every nbgrader call here runs in
``course/``, where the course's configuration is; JupyterLab runs at the repository root, whose
``nbgrader_config.py`` loads that same file (so the Formgrader and the Assignment List see the course).
Subprocesses get this Python's scripts folder on PATH, so all of it works from a virtual environment
that was never activated.
"""

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG_RELATIVE = Path("course") / "nbgrader_config.py"
# Left behind by a run in JupyterLab; never worth copying into a temporary execution folder.
COPY_IGNORE = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.keras", "*.h5")


def find_course_root(start=None):
    """The repository root: the folder holding ``course/nbgrader_config.py``.

    Searched from ``start`` (default: the current directory) upwards, then from this package's
    location (an editable install inside the repository)."""
    starts = [Path(start or os.getcwd()).resolve(), Path(__file__).resolve().parent]
    for origin in starts:
        for folder in (origin, *origin.parents):
            if (folder / CONFIG_RELATIVE).is_file():
                return folder
    raise FileNotFoundError(
        f"no course found: none of the folders above {starts[0]} (nor above the caloedu package) "
        f"holds {CONFIG_RELATIVE}; run this inside the caloedu repository"
    )


def find_assignments(root):
    """Assignment names: the folders of ``solutions/`` that hold a notebook, sorted."""
    solutions = Path(root) / "solutions"
    if not solutions.is_dir():
        return []
    return sorted(d.name for d in solutions.iterdir() if d.is_dir() and any(d.glob("*.ipynb")))


def environment_with_this_python():
    """os.environ with this Python's scripts folder first on PATH: nbgrader runs ``alembic`` (and JupyterLab
    its helpers) by name, which fails from a virtual environment that was not activated."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    return env


def run_nbgrader(root, *args, check=True):
    """Run ``nbgrader ARGS`` in ``ROOT/course`` (where its config is) with this Python."""
    command = [sys.executable, "-m", "nbgrader", *map(str, args)]
    result = subprocess.run(command, cwd=Path(root) / "course", capture_output=True, text=True,
                            env=environment_with_this_python())
    if check and result.returncode != 0:
        raise RuntimeError(
            f"`nbgrader {' '.join(map(str, args))}` failed (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    return result


def release(root, assignments=None):
    """Regenerate ``exercises/NAME/`` from ``solutions/NAME/`` for each assignment (all by default).

    Returns the generated exercise notebooks. ``--force`` replaces the old release, so files
    removed from a solution folder disappear from the exercise folder too."""
    available = find_assignments(root)
    names = list(assignments or available)
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise ValueError(f"no solutions/NAME/*.ipynb for {unknown}; assignments: {available}")
    for name in names:
        run_nbgrader(root, "generate_assignment", name, "--force")
    return sorted(p for name in names for p in (Path(root) / "exercises" / name).glob("*.ipynb"))


@dataclasses.dataclass
class NotebookRun:
    """How one notebook execution went: ``ok``, seconds, and where and why it stopped."""

    path: Path
    ok: bool
    seconds: float
    cell_index: int = None
    error: str = ""  # one line: "ValueError: ..."
    details: str = ""  # the failing cell's source and traceback, for a test report

    def describe(self):
        if self.ok:
            return f"{self.path.name} ran top to bottom in {self.seconds:.0f} s"
        return f"{self.path} failed at cell {self.cell_index} ({self.error})\n{self.details}"


def kernel_environment(fast):
    """The kernel's environment: fast mode on (CALOEDU_FAST=1) or every fast switch off."""
    env = dict(os.environ)
    env.pop("NBGRADER_EXECUTION", None)
    env.pop("CALOEDU_FAST", None)
    if fast:
        env["CALOEDU_FAST"] = "1"
    env.setdefault("MPLBACKEND", "Agg")  # figures render inline; no window opens headless
    return env


def execute_notebook(path, fast=True, timeout=600):
    """Execute the notebook at ``path`` in a temporary copy of its folder (the repository's files
    never receive outputs or anything the notebook writes). ``timeout`` is seconds per cell."""
    import nbclient
    import nbformat
    from nbclient.exceptions import CellControlSignal, CellTimeoutError, DeadKernelError

    path = Path(path).resolve()
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="caloedu-run-") as scratch:
        workdir = Path(scratch) / path.parent.name
        shutil.copytree(path.parent, workdir, ignore=COPY_IGNORE)
        # Always this environment's python3 kernel: a kernelspec name saved by an author's machine
        # ("conda-env-calo") would not exist here.
        client = nbclient.NotebookClient(
            notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
        )
        index = None
        try:
            with client.setup_kernel(env=kernel_environment(fast)):  # cwd: the copy (resources path)
                for index, cell in enumerate(notebook.cells):
                    client.execute_cell(cell, index)
        except (CellControlSignal, DeadKernelError) as err:
            if isinstance(err, CellTimeoutError):
                error = f"CellTimeoutError: the cell ran longer than {timeout} s"
            elif isinstance(err, DeadKernelError):
                error = "DeadKernelError: the kernel died (out of memory?)"
            else:
                error = f"{err.ename}: {err.evalue}"
            source = notebook.cells[index].source if index is not None else ""
            details = f"--- cell {index} source ---\n{source}\n--- error ---\n{strip_ansi(str(err))}"
            error = (error.splitlines() or [""])[0][:300]
            return NotebookRun(path, False, time.perf_counter() - started, index, error, details)
    return NotebookRun(path, True, time.perf_counter() - started)


def strip_ansi(text):
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def select_notebooks(notebooks, names):
    """The notebooks whose file name, stem or number prefix ("01") is among ``names``."""
    if not names:
        return list(notebooks)
    wanted = {Path(n).name.removesuffix(".ipynb") for n in names}
    chosen = [nb for nb in notebooks if nb.stem in wanted or nb.stem.split("_")[0] in wanted]
    if not chosen:
        raise ValueError(f"no lecture matches {sorted(wanted)}; lectures: {[nb.stem for nb in notebooks]}")
    return chosen


def run_lectures(args):
    root = find_course_root()
    notebooks = select_notebooks(sorted((root / "lectures").glob("*.ipynb")), args.names)
    if not notebooks:
        print(f"no lecture notebooks in {root / 'lectures'}; nothing to run")
        return 0
    mode = "fast (CALOEDU_FAST=1)" if args.fast else "full"
    print(f"running {len(notebooks)} lecture notebook(s) in {mode} mode, {args.timeout} s per cell")
    runs = []
    for notebook in notebooks:
        run = execute_notebook(notebook, fast=args.fast, timeout=args.timeout)
        runs.append(run)
        where = "" if run.ok else f"cell {run.cell_index}: {run.error}"
        status = "OK" if run.ok else "FAILED"
        print(f"  {notebook.name:<40} {status:<7} {run.seconds:7.1f} s  {where}", flush=True)
    failed = [run for run in runs if not run.ok]
    for run in failed:
        print(f"\n{run.describe()}")
    print(f"{len(runs) - len(failed)} ran, {len(failed)} failed")
    return 1 if failed else 0


def validate(args):
    """Solutions must pass all their tests; the released exercises must fail them (``--invert``)."""
    from nbgrader.validator import Validator
    from traitlets.config.loader import PyFileConfigLoader

    root = find_course_root()
    config = PyFileConfigLoader(CONFIG_RELATIVE.name, path=str(root / "course")).load_config()
    checks = [(nb, False) for nb in sorted(root.glob("solutions/*/*.ipynb"))]
    checks += [(nb, True) for nb in sorted(root.glob("exercises/*/*.ipynb"))]
    if not checks:
        print("no notebooks in solutions/ or exercises/; nothing to validate")
        return 0
    problems = 0
    for notebook, invert in checks:
        # In a temporary copy: whatever the notebook writes (models, showers) stays out of the repository.
        with tempfile.TemporaryDirectory(prefix="caloedu-validate-") as scratch:
            copy = Path(scratch) / notebook.parent.name
            shutil.copytree(notebook.parent, copy, ignore=COPY_IGNORE)
            results = Validator(config=config, invert=invert).validate(str(copy / notebook.name))
        if results.get("changed"):
            verdict = (f"FAILED: {len(results['changed'])} locked cell(s) differ from the release; "
                       "run `caloedu course release`")
        elif results.get("type_changed"):
            verdict = "FAILED: a cell's type differs from its nbgrader metadata"
        elif invert and results.get("passed"):
            verdict = f"FAILED: {len(results['passed'])} test cell(s) pass on the blank exercise"
        elif not invert and results.get("failed"):
            first_error = strip_ansi(results["failed"][0]["raw_error"])
            verdict = f"FAILED: {len(results['failed'])} test cell(s) fail, first:\n{first_error}"
        else:
            verdict = "OK (fails its tests, as a blank exercise should)" if invert else "OK (passes all tests)"
        problems += verdict.startswith("FAILED")
        print(f"  {notebook.relative_to(root)}: {verdict}", flush=True)
    return 1 if problems else 0


def release_command(args):
    root = find_course_root()
    if not find_assignments(root) and not args.assignments:
        print(f"no assignments in {root / 'solutions'}; nothing to release")
        return 0
    try:
        notebooks = release(root, args.assignments)
    except RuntimeError as err:
        print(f"caloedu course release: {err}", file=sys.stderr)
        return 1
    for notebook in notebooks:
        print(f"  wrote {notebook.relative_to(root)}")
    orphans = sorted(set(p.parent.name for p in root.glob("exercises/*/*.ipynb")) - set(find_assignments(root)))
    for orphan in orphans:  # left for a person to delete: release never removes what it did not make
        print(f"  warning: exercises/{orphan} has no solutions/{orphan}; delete it if the module was dropped")
    return 0


def raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


LAB_URL = re.compile(r"https?://\S+?/lab(?:\?token=\S+)?")


def open_lab(args):
    """Start JupyterLab at the repository root; echo its log and print the URL once it is known."""
    root = find_course_root()
    command = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={root}"]
    command += ["--no-browser"] if args.no_browser else []
    command += [f"--port={args.port}"] if args.port else []
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # course containers often run as root; Jupyter refuses otherwise
    command += args.lab_args
    print(f"caloedu course open: starting JupyterLab in {root}", flush=True)
    # At the root, as a plain `jupyter lab` would: nbgrader's extensions read the root's nbgrader_config.py.
    lab = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, bufsize=1, env=environment_with_this_python())
    url_shown = False
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)  # a `kill` stops the server too
    try:
        for line in lab.stdout:
            sys.stdout.write(line)
            match = LAB_URL.search(line)
            if match and not url_shown:
                url_shown = True
                print(f"\ncaloedu course open: JupyterLab is at {match.group(0)}\n", flush=True)
        return lab.wait()
    except KeyboardInterrupt:
        lab.terminate()
        return lab.wait()


def register(subparsers):
    parser = subparsers.add_parser("course", help="instructor tools: open, run-lectures, release, validate")
    inner = parser.add_subparsers(dest="course_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    opener = inner.add_parser("open", help="start JupyterLab at the repository root")
    opener.add_argument("--no-browser", action="store_true", help="do not open a browser (headless machine)")
    opener.add_argument("--port", type=int, help="port to serve on (default: JupyterLab's, 8888)")
    opener.add_argument("lab_args", nargs="*", help="further `jupyter lab` arguments, after `--`")
    opener.set_defaults(func=open_lab)

    lectures = inner.add_parser("run-lectures", help="execute lectures/*.ipynb headless and report")
    mode = lectures.add_mutually_exclusive_group()
    mode.add_argument("--fast", dest="fast", action="store_true", default=True, help="small budgets (default)")
    mode.add_argument("--full", dest="fast", action="store_false", help="full training budgets")
    lectures.add_argument("--timeout", type=int, default=600, help="seconds one cell may run (default 600)")
    lectures.add_argument("names", nargs="*", help="lectures to run: 01, 01_attention or a file name")
    lectures.set_defaults(func=run_lectures)

    releaser = inner.add_parser("release", help="regenerate exercises/ from solutions/ (nbgrader)")
    releaser.add_argument("assignments", nargs="*", help="assignments to release (default: all)")
    releaser.set_defaults(func=release_command)

    validator = inner.add_parser("validate", help="solutions pass their tests, exercises fail them")
    validator.set_defaults(func=validate)
