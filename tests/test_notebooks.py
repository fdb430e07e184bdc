"""Every lecture runs top to bottom in fast mode (CALOEDU_FAST=1).

Parametrised over the files present, so a new module is covered as soon as its notebook lands.
Each runs in a temporary copy of its folder: the repository's notebooks never receive outputs. The solution
notebooks run top to bottom where they are graded: the "perfect" student of test_nbgrader_pipeline.py is the
solution, hidden tests included, executed by nbgrader in fast mode."""

import pytest
from conftest import REPO_ROOT

NOTEBOOKS = sorted(REPO_ROOT.glob("lectures/*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_notebook_runs_top_to_bottom_in_fast_mode(notebook, run_notebook_fast):
    run = run_notebook_fast(notebook)
    if not run.ok:
        pytest.fail(f"{notebook.relative_to(REPO_ROOT)} failed at cell {run.cell_index}: {run.error}\n"
                    f"{run.details}", pytrace=False)
