"""Packages whose public names load from their submodules on first use, so that importing one name (the CLI
importing the generator registry, say) does not import keras, h5py or scipy."""

import importlib
import sys


def lazy_exports(package, exports):
    """``(__getattr__, __dir__, __all__)`` for ``package`` (its ``__name__``): ``exports`` maps each submodule
    to the names it provides, and ``from package import name`` imports that submodule when first asked."""
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name):
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)
        setattr(sys.modules[package], name, value)  # found directly next time
        return value

    def __dir__():
        return sorted({*vars(sys.modules[package]), *module_of})

    return __getattr__, __dir__, list(module_of)
