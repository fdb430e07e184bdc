"""Generation time per shower of any sampler, measured the way CaloChallenge reports it (ms per shower
at a given batch size)."""

import time

import numpy as np

from caloedu.data.checks import check_incident_energies


def _synchronise():
    """Wait for queued CUDA kernels: without it a GPU sampler returns before its work is done."""
    try:
        import torch
    except ImportError:  # a pure NumPy sampler needs no torch
        return
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def time_per_shower(sampler, incident_energies, batch_size=100, repeats=5, warmup=1):
    """Median wall time per generated shower, in milliseconds.

    Args:
        sampler: a callable ``sampler(incident_energies_batch) -> showers`` (for a generator, e.g.
            ``lambda e: generator.sample(e, batch_size=len(e))``). It is called batch by batch.
        incident_energies: (N, 1) or (N,) incident energies (MeV) to generate showers for.
        batch_size: showers per call.
        repeats: timed passes over all of ``incident_energies``; the median is reported.
        warmup: untimed calls on the first batch first (lazy initialisation, kernel compilation, caches).

    Returns:
        float: milliseconds per shower (median over the repeats).
    """
    incident_energies = check_incident_energies(incident_energies)
    n = len(incident_energies)
    if n == 0:
        raise ValueError("time_per_shower needs at least one incident energy.")
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ValueError("batch_size and repeats must be >= 1 and warmup >= 0.")
    batches = [incident_energies[start:start + batch_size] for start in range(0, n, batch_size)]
    for _ in range(warmup):
        sampler(batches[0])
    _synchronise()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            sampler(batch)
        _synchronise()
        times.append(time.perf_counter() - start)
    return float(np.median(times) / n * 1e3)
