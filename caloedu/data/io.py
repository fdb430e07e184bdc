"""CaloChallenge HDF5 shower files: ``incident_energies`` (N, 1) and ``showers`` (N, n_voxels), in MeV.

Arrays are stored with the dtype they are given (the simulator gives float64 energies and float32
showers), gzip-compressed in row chunks, so a save and a load give back the same bits. Writing goes to
a temporary file in the same folder that is renamed at the end: an interrupted save never leaves a
half-written file under the final name, and an existing file is replaced only with ``overwrite=True``.

Every problem with a file's content raises a `ShowerFileError` (a ValueError) that says what is wrong.
"""

import json
import os
import tempfile

import h5py
import numpy as np

from caloedu.data.checks import check_energy_units, check_finite_non_negative, check_incident_energies
from caloedu.data.geometry import CalorimeterGeometry

ENERGY_KEY = "incident_energies"
SHOWER_KEY = "showers"
_CHUNK_BYTES = 1 << 20  # ~1 MB per HDF5 chunk: small enough to read a few rows, big enough to compress


class ShowerFileError(ValueError):
    """A shower file (or the arrays for one) does not hold valid CaloChallenge showers."""


def _check_shapes(energy_shape, shower_shape, geometry, source):
    if len(energy_shape) != 2 or energy_shape[1] != 1:
        raise ShowerFileError(f"{source}: '{ENERGY_KEY}' has shape {tuple(energy_shape)}; expected (N, 1).")
    if len(shower_shape) != 2:
        raise ShowerFileError(f"{source}: '{SHOWER_KEY}' has shape {tuple(shower_shape)}; expected (N, n_voxels).")
    if energy_shape[0] != shower_shape[0]:
        raise ShowerFileError(
            f"{source}: '{ENERGY_KEY}' has {energy_shape[0]} rows but '{SHOWER_KEY}' has {shower_shape[0]}; "
            "every shower needs one incident energy."
        )
    if geometry is not None and shower_shape[1] != geometry.n_voxels:
        raise ShowerFileError(
            f"{source}: '{SHOWER_KEY}' has {shower_shape[1]} voxels per shower, but geometry '{geometry.name}' "
            f"expects n_voxels={geometry.n_voxels} ({geometry.n_layers} layers)."
        )


def save_showers(path, incident_energies, showers, geometry=None, overwrite=False, compression_level=4):
    """Write showers to a CaloChallenge HDF5 file.

    Args:
        path: the .h5 / .hdf5 file to write.
        incident_energies: (N, 1) or (N,) MeV.
        showers: (N, n_voxels) MeV, >= 0.
        geometry: optional `CalorimeterGeometry` (or preset name): checks n_voxels and records the geometry (as JSON
            in the ``geometry`` attribute) for readers that want it; CaloChallenge readers ignore it.
        overwrite: replace an existing file (otherwise FileExistsError).
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    incident_energies = np.asarray(incident_energies)
    if incident_energies.ndim == 1:
        incident_energies = incident_energies[:, None]
    showers = np.asarray(showers)
    if geometry is not None:
        geometry = CalorimeterGeometry.coerce(geometry)
    _check_shapes(incident_energies.shape, showers.shape, geometry, "cannot save")
    check_incident_energies(incident_energies, f"'{ENERGY_KEY}' to save", error=ShowerFileError)
    check_finite_non_negative(showers, f"'{SHOWER_KEY}' to save", error=ShowerFileError)

    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".", suffix=".h5.part", dir=folder)
    os.close(handle)
    try:
        rows = max(1, min(len(showers), _CHUNK_BYTES // max(1, showers.shape[1] * showers.itemsize)))
        with h5py.File(temporary, "w") as file:
            file.create_dataset(ENERGY_KEY, data=incident_energies, compression="gzip",
                                compression_opts=compression_level)
            file.create_dataset(SHOWER_KEY, data=showers, chunks=(rows, showers.shape[1]) if len(showers) else None,
                                compression="gzip", compression_opts=compression_level)
            file.attrs["unit"] = "MeV"
            if geometry is not None:
                file.attrs["geometry"] = json.dumps(geometry.get_config())
        # mkstemp makes the file private (0600); give it the permissions a plain open() would have, so
        # showers written on a shared machine stay readable by the group as the umask allows.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)  # atomic on POSIX: readers see the old file or the complete new one
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _umask():
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _hdf5_problem(err):
    """What an h5py OSError means for the user, without HDF5's internal dump."""
    text = str(err)
    if "file signature not found" in text:
        return "it is not an HDF5 file"
    if "truncated file" in text:
        return "it is truncated (an interrupted copy or download?)"
    if "Permission denied" in text or "errno = 13" in text:
        return "it is not readable by you"
    if "unable to lock file" in text.lower():
        return "another program holds it open for writing"
    reason = text.split("(", 1)[-1].split(",", 1)[0].rstrip(")")
    return f"HDF5 says: {reason}"


def _open(path):
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ShowerFileError(f"{path} is a folder, not a shower file; name the .h5 file in it.")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No shower file at {path}.")
    try:
        file = h5py.File(path, "r")
    except OSError as err:
        raise ShowerFileError(f"{path} is not a readable shower file: {_hdf5_problem(err)}.") from err
    missing = [key for key in (ENERGY_KEY, SHOWER_KEY) if key not in file]
    if missing:
        keys = ", ".join(sorted(file.keys())) or "nothing"
        file.close()
        raise ShowerFileError(
            f"{path} lacks the dataset(s) {', '.join(missing)}; it holds {keys}. "
            f"A CaloChallenge file has '{ENERGY_KEY}' (N, 1) and '{SHOWER_KEY}' (N, n_voxels)."
        )
    try:
        _check_shapes(file[ENERGY_KEY].shape, file[SHOWER_KEY].shape, None, path)
    except ShowerFileError:
        file.close()
        raise
    return file


def _refuse_empty(file, path):
    if file[SHOWER_KEY].shape[0] == 0:
        raise ShowerFileError(f"{path} holds no showers (its '{SHOWER_KEY}' dataset has 0 rows).")


def _read_rows(file, path, geometry, start, stop, check_units):
    if geometry is not None:
        geometry = CalorimeterGeometry.coerce(geometry)
        _check_shapes(file[ENERGY_KEY].shape, file[SHOWER_KEY].shape, geometry, path)
    incident_energies = file[ENERGY_KEY][start:stop]
    showers = file[SHOWER_KEY][start:stop]
    check_incident_energies(incident_energies, f"{path}: '{ENERGY_KEY}'", offset=start, error=ShowerFileError)
    check_finite_non_negative(showers, f"{path}: '{SHOWER_KEY}'", offset=start, error=ShowerFileError)
    if check_units:
        check_energy_units(incident_energies, showers, path, error=ShowerFileError)
    return incident_energies, showers


def load_showers(path, geometry=None, start=0, stop=None, check_units=True):
    """Read showers from a CaloChallenge HDF5 file.

    Args:
        path: the file.
        geometry: optional `CalorimeterGeometry` (or preset name, or binning .xml) the showers must fit.
        start, stop: read rows ``start:stop`` only.
        check_units: refuse energies that look like GeV (see `caloedu.data.checks.check_energy_units`).
    Returns:
        (incident_energies (N, 1), showers (N, n_voxels)) in MeV, with the file's dtypes.
    """
    with _open(path) as file:
        _refuse_empty(file, os.fspath(path))
        return _read_rows(file, os.fspath(path), geometry, start, stop, check_units)


def count_showers(path):
    """Number of showers in a file, without reading them."""
    with _open(path) as file:
        return int(file[SHOWER_KEY].shape[0])


def iter_showers(path, chunk_size=10_000, geometry=None, check_units=True):
    """Yield (incident_energies, showers) chunks of at most ``chunk_size`` rows, for files larger than memory."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
    with _open(path) as file:
        n = file[SHOWER_KEY].shape[0]
        _refuse_empty(file, os.fspath(path))
        for start in range(0, n, chunk_size):
            yield _read_rows(file, os.fspath(path), geometry, start, min(start + chunk_size, n), check_units)


def recorded_geometry(path):
    """The `CalorimeterGeometry` that ``caloedu simulate`` (or `save_showers` with a geometry) recorded in the
    file, or None when the file does not record one."""
    with _open(path) as file:
        recorded = file.attrs.get("geometry")
    if recorded is None:
        return None
    try:
        return CalorimeterGeometry.from_config(json.loads(recorded))
    except (ValueError, TypeError) as err:
        raise ShowerFileError(f"{os.fspath(path)} records a geometry that cannot be read ({err}); give it with "
                              "--geometry.") from err
