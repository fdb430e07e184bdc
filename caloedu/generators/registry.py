"""The generator families: each is registered once, here, by its name and where its class lives.

The CLI (``caloedu train --model NAME``, ``caloedu sample``, ``caloedu bench generator``), the benches and
the contract tests find families only through this registry; adding a family touches none of them. A family
module is imported only when it is asked for, so listing the names costs nothing (``caloedu --help``).

Outside caloedu (a user's own family, the tests' toy families) ``register_generator(name, cls)`` adds one.
"""

import importlib

# name -> "module:class". A new family adds one line.
FAMILIES = {
    "flow-matching": "caloedu.generators.flow_matching:FlowMatchingGenerator",
    "normalizing-flow": "caloedu.generators.normalizing_flow:NormalizingFlowGenerator",
    "wgan-gp": "caloedu.generators.wgan_gp:WGANGPGenerator",
    "mdma": "caloedu.generators.mdma:MDMAGenerator",
    "vae": "caloedu.generators.vae:VAEGenerator",
}


def register_generator(name, cls):
    """Register a `ShowerGenerator` subclass (or a "module:class" path) under ``name``; returns ``cls``."""
    if name in FAMILIES and FAMILIES[name] is not cls:
        raise ValueError(f"A generator family called {name!r} is registered already.")
    FAMILIES[name] = cls
    if not isinstance(cls, str):
        cls.family = name
    return cls


def family_names():
    return tuple(FAMILIES)


def get_family(name):
    """The generator class registered as ``name`` (imported on first use)."""
    if name not in FAMILIES:
        raise ValueError(f"Unknown generator family {name!r}; choose one of {', '.join(FAMILIES)}.")
    entry = FAMILIES[name]
    if isinstance(entry, str):
        module, _, attribute = entry.partition(":")
        entry = getattr(importlib.import_module(module), attribute)
        entry.family = name
        FAMILIES[name] = entry
    return entry


def family_of_class_name(class_name):
    """The family name of the generator class called ``class_name`` (what a .keras file records), or None."""
    for name, entry in FAMILIES.items():
        if (entry.rpartition(":")[2] if isinstance(entry, str) else entry.__name__) == class_name:
            return name
    return None
