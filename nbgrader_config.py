"""nbgrader reads ``nbgrader_config.py`` from the current directory: this file lets JupyterLab started at the
repository root (``caloedu course open``, or a plain ``jupyter lab``) and nbgrader commands run here see the
course. The configuration itself is ``course/nbgrader_config.py``, its one source."""

import os

load_subconfig(os.path.join(os.path.dirname(os.path.abspath(__file__)), "course", "nbgrader_config.py"))  # noqa: F821
