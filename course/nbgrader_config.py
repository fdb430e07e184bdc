"""nbgrader configuration of the caloedu course.

nbgrader reads this file from the current directory, so run every nbgrader command from ``course/``
(``cd course && nbgrader autograde 01_attention``) or through ``caloedu course ...``, which does that.
The course root is computed from this file's location, not from the current directory, so the
folders it names (solutions/, exercises/, submitted/, autograded/, feedback/, gradebook.db) are
always the ones at the repository root, and a copy of the course (as the tests make) points at
its own copy.
"""

import os

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
