"""nbgrader configuration of the caloedu course.

nbgrader reads ``nbgrader_config.py`` from the current directory: this file from ``course/``
(``cd course && nbgrader autograde 01_attention``, and every ``caloedu course ...`` command), and the one at
the repository root, which loads this file, from there (JupyterLab started at the root, whose Formgrader
and Assignment List then see this course).
The course root is computed from this file's location, not from the current directory, so the
folders it names (solutions/, exercises/, submitted/, autograded/, feedback/, gradebook.db) are
always the ones at the repository root, and a copy of the course (as the tests make) points at
its own copy.
"""

import os

from nbgrader.converters import GenerateAssignment

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)

COURSE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

c.CourseDirectory.root = COURSE_ROOT
c.CourseDirectory.course_id = "caloedu"
# solutions/NN_topic/NN_topic.ipynb is the instructor version; exercises/NN_topic/ what students get.
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
# Files a run of a notebook may leave next to it (checkpoints, saved models, shower files) never
# travel into a release or get copied over a submission.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints",
    "*.pyc",
    "__pycache__",
    "feedback",
    "*.keras",
    "*.h5",
]

# Seconds one cell may run during autograde and validate. Grading runs in fast mode
# (NBGRADER_EXECUTION is set, so caloedu.runtime.fast_mode() is on) where a training cell takes
# seconds on a laptop CPU; the margin covers a loaded grading machine. A student's infinite loop
# is interrupted after this long and the remaining cells are still graded.
c.Execute.timeout = 120

# Keep timing metadata that a run in JupyterLab writes out of the released exercises.
c.ClearOutput.remove_metadata_fields = ["collapsed", "scrolled", "execution", "ExecuteTime"]

# Released exercises carry the kernelspec and language_info JupyterLab writes for this environment's python3
# kernel, so a student who opens one and saves it finds it unchanged (see caloedu/cli/notebook_metadata.py).
c.GenerateAssignment.preprocessors = [
    *GenerateAssignment.class_traits()["preprocessors"].default(),  # nbgrader's own, in their order
    "caloedu.cli.notebook_metadata.KernelMetadata",
]

# The exchange: where `nbgrader release_assignment` puts an assignment and the Assignment List (menu
# Nbgrader) fetches it from. A summer-school student works in a clone of this repository on a laptop and
# opens exercises/ directly; the Assignment List panel comes with nbgrader and cannot be switched off from
# here, and with no exchange it greets them with "The exchange directory does not exist" errors. So on a
# laptop the course brings its own exchange: a git-ignored folder in the repository, created here. The list
# it shows is empty (not an error) until an instructor releases into it, which also lets one rehearse
# release, fetch, submit and collect on one machine. On a JupyterHub (JUPYTERHUB_USER is set) the hub's
# exchange, configured by its administrator, stays in charge.
if "JUPYTERHUB_USER" not in os.environ:
    c.Exchange.root = os.path.join(COURSE_ROOT, ".nbgrader-exchange")
    os.makedirs(c.Exchange.root, exist_ok=True)
