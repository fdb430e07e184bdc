"""Input checks shared by the shower files, the simulator, the evaluation and the generators.

Each problem gets one sentence that names what was given (an argument, or a file) and, where rows are
involved, the first bad row, so that a user can find it. ``error`` lets a caller raise its own subclass
of ValueError (`caloedu.data.ShowerFileError` for files).
"""

import numpy as np


def first_row(mask, offset=0):
    """Index (plus ``offset``) of the first row of ``mask`` (N, ...) that holds a True."""
    return int(np.argwhere(mask)[0][0]) + offset


def check_finite_non_negative(array, what, offset=0, error=ValueError, unit="MeV"):
    """Raise ``error`` unless every value of ``array`` is finite and >= 0 (energies in ``unit``)."""
    array = np.asarray(array)
    bad = ~np.isfinite(array)
    if bad.any():
        raise error(f"{what} holds {int(bad.sum())} NaN or inf values (the first in row {first_row(bad, offset)}).")
    negative = array < 0
    if negative.any():
        raise error(f"{what} holds {int(negative.sum())} negative energies (the first in row "
                    f"{first_row(negative, offset)}, {float(array[negative][0]):g} {unit}); energies in {unit} "
                    "must be >= 0.")


def check_incident_energies(incident_energies, what="incident_energies", offset=0, error=ValueError):
    """Incident energies as a float64 column (N, 1) in MeV, each finite and > 0; else ``error``."""
    energies = np.asarray(incident_energies, dtype=np.float64)
    if energies.ndim == 1:
        energies = energies[:, None]
    if energies.ndim != 2 or energies.shape[1] != 1:
        raise error(f"{what} must have shape (N,) or (N, 1) in MeV, got {np.shape(incident_energies)}.")
    check_finite_non_negative(energies, what, offset, error)
    zero = energies <= 0
    if zero.any():
        raise error(f"{what} holds {int(zero.sum())} incident energies of 0 MeV (the first in row "
                    f"{first_row(zero, offset)}); every shower needs a positive incident energy.")
    return energies


def check_showers(showers, geometry=None, n_rows=None, what="showers", offset=0, error=ValueError):
    """Showers as an array (N, n_voxels) that fits ``geometry`` (if given), with ``n_rows`` rows (if given),
    every voxel energy finite and >= 0 MeV; else ``error``. The dtype is kept."""
    showers = np.asarray(showers)
    if geometry is not None:
        geometry.check_showers(showers, what, error=error)
    elif showers.ndim != 2:
        raise error(f"{what} has shape {showers.shape}; expected (N, n_voxels).")
    if n_rows is not None and len(showers) != n_rows:
        raise error(f"{what} has {len(showers)} rows but there are {n_rows} incident energies; "
                    "every shower needs one incident energy.")
    check_finite_non_negative(showers, what, offset, error)
    return showers


def check_positive_int(value, what):
    """``value`` as an int >= 1, or a ValueError naming ``what``."""
    if int(value) != value or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value}.")
    return int(value)


# Below this incident energy a CaloChallenge-style file is almost surely in GeV: the datasets start at
# 256 MeV (DS1 photons) and 1 GeV (DS2, DS3), and 100 GeV written in GeV reads as 100 MeV.
MIN_INCIDENT_ENERGY_MEV = 100.0
# The median deposited fraction E_dep / E_inc of a calorimeter lies between ~0.01 (the raw signal of a thin
# silicon sampler) and ~1 (homogeneous, or corrected for the sampling fraction). Showers and incident energies
# in different units (GeV against MeV) are off by a factor 1000; the accepted range is wide enough that a
# merely bad generator (5x too much energy, say) is still evaluated, and narrow enough to catch that factor.
DEPOSITED_FRACTION_RANGE = (2e-3, 30.0)
UNITS_OVERRIDE = "pass --trust-units (command line) or check_units=False (Python) if they are right"


def check_requested_energy(energy_mev, flag):
    """Raise ValueError when an incident energy asked for on the command line (``flag``) lies below
    `MIN_INCIDENT_ENERGY_MEV`: GeV rather than MeV."""
    if energy_mev < MIN_INCIDENT_ENERGY_MEV:
        raise ValueError(f"{flag} asks for {energy_mev:g} MeV, below {MIN_INCIDENT_ENERGY_MEV:g} MeV: are these GeV? "
                         "caloedu works in MeV; multiply by 1000, or pass --trust-units if they are right.")


def check_energy_units(incident_energies, showers, what, error=ValueError):
    """Raise ``error`` when energies look like GeV rather than MeV: an incident energy below
    `MIN_INCIDENT_ENERGY_MEV`, or a median E_dep / E_inc outside `DEPOSITED_FRACTION_RANGE`."""
    energies = np.asarray(incident_energies, dtype=np.float64).reshape(-1)
    if len(energies) == 0:
        return
    low = energies < MIN_INCIDENT_ENERGY_MEV
    if low.any():
        row = first_row(low)
        raise error(f"{what}: the incident energy in row {row} is {energies[row]:g} MeV, below "
                    f"{MIN_INCIDENT_ENERGY_MEV:g} MeV ({int(low.sum())} such rows): are these GeV? caloedu works in "
                    f"MeV; multiply by 1000, or {UNITS_OVERRIDE}.")
    deposited = np.asarray(showers, dtype=np.float64).sum(axis=1) / energies
    median = float(np.median(deposited))
    lo, hi = DEPOSITED_FRACTION_RANGE
    if not lo <= median <= hi:
        raise error(f"{what}: the median deposited fraction E_dep/E_inc is {median:.3g}, far outside what a "
                    f"calorimeter gives ({lo:g} to {hi:g} accepted): are the showers and the incident energies in "
                    f"different units (GeV and MeV), or are the showers empty? caloedu works in MeV for both; convert "
                    f"them, or {UNITS_OVERRIDE}.")
