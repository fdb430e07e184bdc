"""caloedu: transformers and deep generative models for calorimeter simulation.

A small Keras 3 library on the PyTorch backend, kept by the course's lecture notebooks.
Importing caloedu selects Keras' torch backend, so import it before keras::

    import caloedu          # sets KERAS_BACKEND=torch
    import keras

``caloedu.load_model("model.keras")`` loads any caloedu model (it imports the classes Keras needs first).
"""

import os
import sys
import warnings

__version__ = "0.1.0"


def _select_torch_backend():
    """Make Keras use torch; refuse to go on if keras already runs on another backend."""
    if "keras" in sys.modules:
        import keras

        backend = keras.backend.backend()
        if backend != "torch":
            raise ImportError(
                f"caloedu needs Keras' torch backend, but keras was already imported with the "
                f"'{backend}' backend. Import caloedu before keras (or set KERAS_BACKEND=torch "
                f"before Python starts) and restart the kernel."
            )
        return
    requested = os.environ.get("KERAS_BACKEND")
    if requested and requested != "torch":
        warnings.warn(
            f"KERAS_BACKEND={requested} is set; caloedu switches it to 'torch' "
            "(the only backend the course supports).",
            stacklevel=3,
        )
    os.environ["KERAS_BACKEND"] = "torch"


_select_torch_backend()

from caloedu import runtime  # noqa: E402  (after the backend is chosen)
from caloedu.saving import load_model  # noqa: E402  (imports keras only when called)

_SUBMODULES = ("layers", "models", "data", "generators", "evaluation", "cli")


def __getattr__(name):
    # Submodules load on first use so `import caloedu` stays fast (no keras import until needed).
    if name in _SUBMODULES:
        import importlib

        module = importlib.import_module(f"caloedu.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'caloedu' has no attribute {name!r}")


__all__ = ["runtime", "load_model", "__version__", *_SUBMODULES]
