"""The notebook metadata JupyterLab writes for this environment's ``python3`` kernel, and the nbgrader
preprocessor that gives every released exercise exactly that metadata.

Why: JupyterLab replaces a notebook's ``kernelspec`` and ``language_info`` with what the running kernel
reports as soon as the kernel starts. A release carrying anything else (nbgrader copies the solution's
metadata, ``"Python 3"`` and a bare ``language_info``) is modified the moment a student opens and saves it,
so ``git status`` shows a change nobody made. ``course/nbgrader_config.py`` adds :class:`KernelMetadata`
to ``nbgrader generate_assignment``, so ``caloedu course release``, a plain ``nbgrader generate_assignment``
and the Formgrader's *Generate* button all write the same metadata.

``language_info.version`` is the Python version of the interpreter that released: a kernel of another Python
rewrites that one line on save (harmless: nbgrader reads neither field), so the course's Python should be the
one that releases.
"""

import copy

from nbgrader.preprocessors import NbGraderPreprocessor

KERNEL_NAME = "python3"


def jupyterlab_metadata(kernel_name=KERNEL_NAME):
    """``{"kernelspec": ..., "language_info": ...}`` as JupyterLab saves them for ``kernel_name``.

    JupyterLab writes the kernel spec's name, display name and language, and the ``language_info`` of the
    kernel's info reply; ipykernel answers with its class attribute, computed from this interpreter
    (the server starts a ``python`` kernel spec with its own ``sys.executable``)."""
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        raise RuntimeError(f"this environment has no '{kernel_name}' Jupyter kernel; "
                           f"install ipykernel (pip install -e \".[course]\")") from None
    return {
        "kernelspec": {"display_name": spec.display_name, "language": spec.language, "name": kernel_name},
        "language_info": copy.deepcopy(IPythonKernel.language_info),
    }


class KernelMetadata(NbGraderPreprocessor):  # enabled by default, as nbgrader's own
    """Set a notebook's ``kernelspec`` and ``language_info`` to what JupyterLab would save for the
    ``python3`` kernel: always that kernel, since a solution saved on an author's machine may name
    a kernel ("conda-env-calo") that students do not have."""

    def preprocess(self, nb, resources):
        nb.metadata.update(jupyterlab_metadata())
        return nb, resources
