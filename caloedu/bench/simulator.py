"""``caloedu bench simulator``: showers per second of the GFLASH-style simulator on the CPU.

    caloedu bench simulator --geometry ds2 --n 5000 --threads 1

Energies are log-uniform over 1 GeV - 1 TeV (the DS2 spectrum); the figure is the best of ``--repeat``
runs, since other work on a shared machine only ever slows a run down.
"""

import os
import time


def register(subparsers):
    parser = subparsers.add_parser("simulator", help="showers/s of the shower simulator (ds2 and teaching by default)")
    parser.add_argument("--geometry", action="append", default=None,
                        help="preset or binning .xml (repeatable; default: ds2 and teaching)")
    parser.add_argument("--n", type=int, default=5000, help="showers per run (default 5000)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for numpy/torch (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per geometry; the best is reported (default 3)")
    parser.set_defaults(func=run)


def _limit_threads(threads):
    # The simulator is elementwise numpy (one thread); capping the BLAS/OpenMP pools and torch keeps any
    # library that would spread out to the figure's thread count. numpy is already loaded, so the
    # environment variables only reach libraries loaded later: threadpoolctl caps the loaded ones.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass
    import torch

    torch.set_num_threads(threads)


def run(args):
    _limit_threads(args.threads)
    from caloedu.data import CalorimeterGeometry, ShowerSimulator

    for name in args.geometry or ["ds2", "teaching"]:
        geometry = CalorimeterGeometry.from_name_or_path(name)
        simulator = ShowerSimulator(geometry)
        simulator.simulate(n=min(200, args.n), seed=0)  # warm up (imports, allocator)
        best = float("inf")
        for repeat in range(max(1, args.repeat)):
            start = time.perf_counter()
            simulator.simulate(n=args.n, seed=repeat)
            best = min(best, time.perf_counter() - start)
        print(f"simulator {geometry.name:>10s} ({geometry.n_voxels:>5d} voxels): {args.n / best:8,.0f} showers/s "
              f"({1e3 * best / args.n:.3f} ms/shower, {args.n} showers, 1 GeV - 1 TeV, {args.threads} thread(s))")
    return 0
