"""Paths are checked before any work starts, so a long run never ends in "cannot write", and an output
never replaces one of the command's inputs.

Every check raises a ValueError whose sentence names the user's path and the flag it came with.
"""

import os


def _same_file(a, b):
    """Whether paths ``a`` and ``b`` name the same file (also through links, or before ``a`` exists)."""
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def _check_folder_writable(folder, flag, path):
    if not os.path.isdir(folder):
        raise ValueError(f"The folder of {flag} {path} does not exist; create it first (nothing was done).")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"The folder of {flag} {path} is not writable by you; choose another place (nothing was "
                         "done).")


def check_input_file(path, flag):
    """Raise ValueError unless ``path`` (given as ``flag``) is an existing, readable file."""
    if path is None:
        raise ValueError(f"{flag} is required.")
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path} is a folder; name the file to read.")
    if not os.path.exists(path):
        raise ValueError(f"{flag} {path} does not exist.")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{flag} {path} is not readable by you.")


def check_output(path, flag, overwrite=False, hint="pass --overwrite to replace it", inputs=()):
    """Raise ValueError unless ``path`` (given as ``flag``) can be written: it is not a folder, not one of
    ``inputs`` (pairs of (flag, path)), its folder exists and is writable, and it does not exist yet unless
    ``overwrite``."""
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path} is a folder; name the file to write.")
    for input_flag, input_path in inputs:
        if input_path is not None and _same_file(path, input_path):
            raise ValueError(f"{flag} {path} is also the input {input_flag}; writing it would destroy the input. "
                             "Choose another output file.")
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"{path} exists; {hint}.")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"{flag} {path} exists and is not writable by you.")
    _check_folder_writable(os.path.dirname(os.path.abspath(path)), flag, path)


def check_output_folder(folder, flag, inputs=()):
    """Raise ValueError unless ``folder`` (given as ``flag``) is a writable folder, or can be created as one
    (its parent exists and is writable); it must not be a file, nor one of ``inputs`` ((flag, path) pairs)."""
    for input_flag, input_path in inputs:
        if input_path is not None and _same_file(folder, input_path):
            raise ValueError(f"{flag} {folder} is the input {input_flag}; {flag} names a folder for the output.")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"{flag} {folder} is a file; {flag} names a folder (it is created if missing).")
    if os.path.isdir(folder):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"{flag} {folder} is not writable by you; choose another folder (nothing was done).")
        return
    parent = os.path.dirname(os.path.abspath(folder))
    if not os.path.isdir(parent):
        raise ValueError(f"The folder above {flag} {folder} does not exist; create it first (nothing was done).")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {folder} cannot be created: its parent folder is not writable by you.")


def save_atomically(save, path):
    """Call ``save(temporary_path)`` on a hidden file beside ``path`` (same extension), then rename it to
    ``path``: an interrupted save never leaves a half-written file, and an old file is replaced only by a
    complete new one."""
    import tempfile

    folder, name = os.path.split(os.path.abspath(path))
    extension = os.path.splitext(name)[1]
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=f".part{extension}", dir=folder)
    os.close(handle)
    os.remove(temporary)  # Keras refuses to write over a file it did not make
    try:
        save(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
