"""``caloedu simulate``: GFLASH-style showers written to a CaloChallenge HDF5 file.

    caloedu simulate --geometry ds2 --n 10000 --seed 1 -o showers.h5
    caloedu simulate --geometry teaching --n 1000 --energy 50000 -o e50GeV.h5
"""

import time


def register(subparsers):
    from caloedu.data.geometry import DS2_THRESHOLD_MEV  # numpy only: `caloedu --help` stays fast

    parser = subparsers.add_parser("simulate", help="simulate electromagnetic showers into a CaloChallenge .h5 file")
    parser.add_argument("--geometry", default="ds2", help="preset name (ds1-photons, ds1-pions, ds2, ds3, teaching) "
                        "or a CaloChallenge binning .xml file (default: ds2)")
    parser.add_argument("--n", type=int, required=True, help="number of showers")
    parser.add_argument("--seed", type=int, default=None, help="random seed (same seed, same showers)")
    parser.add_argument("-o", "--output", required=True, help="the .h5 file to write")
    parser.add_argument("--energy-range", type=float, nargs=2, metavar=("MIN_MEV", "MAX_MEV"), default=(1e3, 1e6),
                        help="incident energies log-uniform in this range, MeV (default: 1e3 1e6, 1 GeV - 1 TeV)")
    parser.add_argument("--energy", type=float, default=None, metavar="E_MEV",
                        help="a fixed incident energy in MeV instead of a range")
    parser.add_argument("--threshold", type=float, default=DS2_THRESHOLD_MEV, metavar="MEV",
                        help=f"readout threshold per voxel, MeV (default: {DS2_THRESHOLD_MEV}, DS2's 15.15 keV)")
    parser.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    parser.add_argument("--trust-units", action="store_true",
                        help="simulate incident energies below 100 MeV (they look like GeV; caloedu works in MeV)")
    parser.set_defaults(func=run)


def run(args):
    import numpy as np

    from caloedu.cli.paths import check_output
    from caloedu.cli.progress import ProgressBar
    from caloedu.data import CalorimeterGeometry, ShowerSimulator, save_showers
    from caloedu.data.checks import check_requested_energy

    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}.")
    check_output(args.output, "-o", args.overwrite)
    if not args.trust_units:
        if args.energy is not None:
            check_requested_energy(args.energy, "--energy")
        else:
            check_requested_energy(min(args.energy_range), "--energy-range")
    geometry = CalorimeterGeometry.from_name_or_path(args.geometry)
    simulator = ShowerSimulator(geometry, threshold_mev=args.threshold)
    energies = None if args.energy is None else np.full(args.n, args.energy)
    start = time.perf_counter()
    incident_energies, showers = simulator.simulate(
        n=args.n, incident_energies=energies, energy_range=tuple(args.energy_range), seed=args.seed,
        callback=ProgressBar("simulating"),
    )
    seconds = time.perf_counter() - start
    save_showers(args.output, incident_energies, showers, geometry=geometry, overwrite=args.overwrite)
    response = showers.sum(axis=1) / incident_energies[:, 0]
    print(
        f"wrote {args.n} showers ({geometry.name}, {geometry.n_voxels} voxels, E_inc {incident_energies.min():.4g}-"
        f"{incident_energies.max():.4g} MeV, mean E_dep/E_inc {response.mean():.3f}) to {args.output} "
        f"in {seconds:.1f} s ({args.n / seconds:,.0f} showers/s)"
    )
    return 0
