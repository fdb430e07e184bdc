"""The course in a real browser: JupyterLab started as `caloedu course open` starts it (at the root of a
temporary copy of the course, from a virtual environment that is not activated), then

- a released exercise opened, its kernel idle, saved with Ctrl+S: the file is byte for byte unchanged;
- the Formgrader lists the course's assignments;
- the Assignment List (menu Nbgrader) loads without an error.

Needs Playwright and a Chromium, neither a dependency of caloedu (CI has neither: this test skips there):
``pip install playwright`` and ``apt-get install chromium`` (or ``playwright install chromium``);
another browser binary: ``CALOEDU_CHROMIUM=/path/to/chrome``.
"""

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT
from test_course_cli import answers_ok, environment_without_this_python, free_port

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser check needs Playwright: pip install playwright (and a Chromium)")

EXERCISE = "exercises/01_attention/01_attention.ipynb"
LECTURE = "lectures/01_attention.ipynb"
ASSIGNMENTS = ["01_attention", "02_calorimeter_showers", "03_gans", "04_variational_autoencoders",
               "05_normalizing_flows", "06_flow_matching"]
SYSTEM_CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_executable():
    """CALOEDU_CHROMIUM, a Chromium on PATH, or the one `playwright install chromium` downloaded; else None."""
    candidates = [os.environ.get("CALOEDU_CHROMIUM")] + [shutil.which(name) for name in SYSTEM_CHROMIUMS]
    found = next((path for path in candidates if path and os.path.exists(path)), None)
    if found:
        return found
    with sync_api.sync_playwright() as playwright:
        bundled = playwright.chromium.executable_path
    return bundled if os.path.exists(bundled) else None


@pytest.fixture(scope="module")
def browser():
    executable = chromium_executable()
    if executable is None:
        pytest.skip("the browser check needs a Chromium: apt-get install chromium (or playwright install chromium)")
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: Chromium refuses to start as root (containers) with its sandbox on.
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


def copy_of_the_course(destination):
    """What JupyterLab needs of the repository: both nbgrader configs, the notebooks' folders."""
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.keras", "*.h5")
    for folder in ("solutions", "exercises", "lectures"):
        shutil.copytree(REPO_ROOT / folder, destination / folder, ignore=ignore)
    (destination / "course").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "course" / "nbgrader_config.py", destination / "course")
    shutil.copy(REPO_ROOT / "nbgrader_config.py", destination)
    return destination


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base URL, token, course root) of JupyterLab serving a copy of the course."""
    root = copy_of_the_course(tmp_path_factory.mktemp("browser") / "caloedu")
    state = tmp_path_factory.mktemp("lab-state")  # workspaces and settings: not the user's own
    token = "caloedu-browser-check"
    port = free_port()
    command = [sys.executable, "-m", "caloedu.cli", "course", "open", "--no-browser", "--port", str(port), "--",
               f"--IdentityProvider.token={token}", f"--LabApp.workspaces_dir={state / 'workspaces'}",
               f"--LabApp.user_settings_dir={state / 'settings'}", "--NotebookNotary.db_file=:memory:"]
    log = state / "lab.log"
    with open(log, "w") as output:
        server = subprocess.Popen(command, cwd=root, env=environment_without_this_python(),
                                  stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        assert answers_ok(f"{base}/api/status?token={token}", within=60), \
            f"JupyterLab did not start within 60 s; its log ends:\n{log.read_text()[-3000:]}"
        yield base, token, root
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def page(browser):
    page = browser.new_page()
    yield page
    page.close()


def wait_for_file_write(path, since_ns, within):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.stat().st_mtime_ns != since_ns:
            return True
        time.sleep(0.2)
    return False


# The exercise only: a student opens it, and each notebook costs a kernel start (~10 s). Lectures and solutions
# get the same metadata and format (tests/test_release.py); pass LECTURE here to see one in the browser.
@pytest.mark.parametrize("relative", [EXERCISE])
def test_a_notebook_is_unchanged_after_open_and_save(lab, page, relative):
    base, token, root = lab
    notebook = root / relative
    before, written_ns = notebook.read_bytes(), notebook.stat().st_mtime_ns
    page.goto(f"{base}/lab/tree/{relative}?reset&token={token}")  # reset: only this notebook open
    page.get_by_text(re.compile(r"\| Idle$")).wait_for(timeout=60_000)  # the status bar: "Python 3 (ipykernel) | Idle"
    # JupyterLab writes the kernel's metadata into the notebook as the kernel connects; give it a moment.
    page.wait_for_timeout(2_000)
    page.locator(".jp-Notebook >> visible=true").click()
    page.keyboard.press("Control+s")
    assert wait_for_file_write(notebook, written_ns, within=20), "Ctrl+S did not save the notebook within 20 s"
    expected = before
    released_with = json.loads(before)["metadata"].get("language_info", {}).get("version")
    if released_with and released_with != platform.python_version():  # released on another Python: that line may change
        expected = before.replace(f'"version": "{released_with}"'.encode(),
                                  f'"version": "{platform.python_version()}"'.encode())
    saved = notebook.read_bytes()
    fix = "run `caloedu course release`" if relative == EXERCISE else "commit the notebook as JupyterLab saved it"
    assert saved == expected, (f"JupyterLab changed {relative} on save; saved metadata: "
                               f"{json.loads(saved)['metadata']}; {fix}")


def body_text_once_it_shows(page, texts, within_ms):
    """The page's text once every one of ``texts`` is in it (or after ``within_ms``)."""
    try:
        page.wait_for_function("texts => texts.every(t => document.body.innerText.includes(t))",
                               arg=texts, timeout=within_ms)
    except sync_api.TimeoutError:
        pass
    return page.inner_text("body")


def test_the_formgrader_lists_the_assignments(lab, page):
    base, token, _ = lab
    page.goto(f"{base}/formgrader?token={token}")
    text = body_text_once_it_shows(page, ASSIGNMENTS, within_ms=30_000)
    missing = [name for name in ASSIGNMENTS if name not in text]
    assert not missing, f"the Formgrader does not list {missing}; it shows:\n{text}"
    assert "does not exist" not in text, f"the Formgrader shows an error:\n{text}"


def test_the_assignment_list_shows_no_error(lab, page):
    base, token, _ = lab
    page.goto(f"{base}/lab?reset&token={token}")  # reset: not the workspace the other test left
    page.get_by_text("Nbgrader", exact=True).click()
    page.get_by_text("Assignment List", exact=True).click()
    # Each of its three lists says "There are no ..." once loaded, or an error.
    text = body_text_once_it_shows(page, ["There are no assignments to fetch", "There are no submitted"], 30_000)
    assert "Released assignments" in text, f"the Assignment List did not open; the page shows:\n{text}"
    panel = text[text.index("Released assignments"):]
    errors = [line for line in panel.splitlines() if re.search(r"error|does not exist", line, re.IGNORECASE)]
    assert not errors, f"the Assignment List shows errors: {errors}"
    assert "There are no assignments to fetch" in panel, f"the Assignment List did not load:\n{panel}"
