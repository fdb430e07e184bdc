"""Where caloedu runs and how much it trains: device report, seeding, fast/full budgets.

Fast mode (small training sizes for CI and autograding) is on when ``CALOEDU_FAST=1`` or when
nbgrader executes a notebook (it sets ``NBGRADER_EXECUTION``). Notebooks read their sizes with
``budget(fast=..., full=...)`` so a grader never trains for minutes.
"""

import os
import platform
import random

import numpy as np

_TRUE = {"1", "true", "yes", "on"}


def fast_mode():
    """True when training sizes should be small (``CALOEDU_FAST`` or nbgrader's ``NBGRADER_EXECUTION``)."""
    if os.environ.get("CALOEDU_FAST", "").strip().lower() in _TRUE:
        return True
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def budget(fast, full):
    """Return ``fast`` in fast mode, else ``full``: ``epochs = budget(fast=2, full=40)``."""
    return fast if fast_mode() else full


def device():
    """The torch device Keras computes on: ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_report():
    """One paragraph saying what this kernel computes on (CPU or CUDA, with names and versions)."""
    import keras
    import torch

    lines = [
        f"keras {keras.__version__} (backend: {keras.backend.backend()}), torch {torch.__version__}, "
        f"python {platform.python_version()}",
    ]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            lines.append(
                f"device: cuda:{i} {props.name} ({props.total_memory / 2**30:.1f} GiB, "
                f"CUDA {torch.version.cuda})"
            )
    else:
        cpu = platform.processor() or platform.machine()
        lines.append(f"device: cpu ({cpu}, {torch.get_num_threads()} torch threads); no CUDA GPU visible")
    lines.append(f"budget: {'fast (CALOEDU_FAST / nbgrader)' if fast_mode() else 'full'}")
    return "\n".join(lines)


def available_cores():
    """CPU cores this process may run on (its affinity mask, which containers and batch systems set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads():
    """Torch threads when none are asked for: the cores not already busy (cores minus the 1-minute load
    average, rounded), at least 1. Two threads beside another job on 2 cores ran 3-6x slower than one."""
    cores = available_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on Windows
        return cores
    return max(1, min(cores, int(round(cores - load))))


def set_threads(threads=None):
    """Use ``threads`` CPU threads in torch (None: `default_threads`); returns the number used. On a busy
    2-core machine one thread trains faster than two, which then compete with the other work."""
    if threads is None:
        threads = default_threads()
    if int(threads) != threads or threads < 1:
        raise ValueError(f"--threads must be a positive whole number, got {threads}.")
    import torch

    torch.set_num_threads(int(threads))
    return int(threads)


def describe_threads(threads):
    """'2 torch threads on 2 cores (load 0.1)', for the first line of a long command."""
    try:
        load = f", load {os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):
        load = ""
    return f"{threads} torch thread{'s' if threads != 1 else ''} on {available_cores()} cores{load}"


def set_seed(seed):
    """Seed Python, NumPy, torch and Keras so a notebook gives the same numbers twice (same device)."""
    import keras

    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)  # also seeds torch (and CUDA) through the backend
