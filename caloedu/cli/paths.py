"""Output paths are checked before any work starts, so a long run never ends in "cannot write"."""

import os


def check_output(path, flag, overwrite=False, hint="pass --overwrite to replace it"):
    """Raise ValueError unless ``path`` (given as ``flag``) can be written: its folder exists, and it does not
    exist yet unless ``overwrite``."""
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path} is a folder; name the file to write.")
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"{path} exists; {hint}.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"The folder of {flag} {path} does not exist; create it first (nothing was done).")
