"""``caloedu sample``: generate showers with a trained generator and write them to a CaloChallenge .h5 file.

    caloedu sample model.keras --n 10000 -o generated.h5
    caloedu sample model.keras --energies-from reference.h5 -o generated.h5 --solver rk4 --steps 10
"""

import os
import time


def register(subparsers):
    parser = subparsers.add_parser("sample", help="generate showers with a trained .keras generator")
    parser.add_argument("model", help="the .keras file written by `caloedu train`")
    parser.add_argument("-o", "--output", required=True, help="the .h5 file to write")
    parser.add_argument("--n", type=int, default=None, help="number of showers (default: all of --energies-from)")
    parser.add_argument("--energy-range", type=float, nargs=2, metavar=("MIN_MEV", "MAX_MEV"), default=None,
                        help="incident energies log-uniform in this range, MeV (default: the model's range)")
    parser.add_argument("--energies-from", default=None, metavar="REFERENCE.h5",
                        help="use the incident energies of this file (e.g. the held-out showers to compare with)")
    parser.add_argument("--solver", choices=("euler", "midpoint", "rk4"), default=None,
                        help="ODE solver (flow matching; default: the model's)")
    parser.add_argument("--steps", type=int, default=None, help="ODE steps (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    parser.set_defaults(func=run)


def incident_energies_for(args, energy_range):
    """(N, 1) MeV: the reference file's energies (first --n of them) or --n log-uniform ones."""
    import numpy as np

    from caloedu.data import load_showers
    from caloedu.data.simulation import log_uniform_energies

    if args.energies_from is not None:
        if args.energy_range is not None:
            raise ValueError("Give either --energies-from or --energy-range, not both.")
        energies, _ = load_showers(args.energies_from, stop=args.n)
        if args.n is not None and len(energies) < args.n:
            raise ValueError(f"{args.energies_from} holds {len(energies)} showers, fewer than --n {args.n}.")
        return np.asarray(energies, dtype=np.float64)
    if args.n is None:
        raise ValueError("Give the number of showers with --n (or --energies-from a reference file).")
    low, high = args.energy_range or energy_range
    return log_uniform_energies(args.n, (low, high), np.random.default_rng(args.seed))[:, None]


def run(args):
    if args.n is not None and args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}.")
    if not os.path.exists(args.model):
        raise FileNotFoundError(f"No model at {args.model}.")
    if os.path.exists(args.output) and not args.overwrite:
        raise ValueError(f"{args.output} exists; pass --overwrite to replace it.")

    import caloedu
    from caloedu.data import save_showers
    from caloedu.generators import ShowerGenerator

    try:
        generator = caloedu.load_model(args.model)
    except (OSError, KeyError, TypeError) as err:
        # Keras' TypeError quotes the whole model config; the first line says what is wrong.
        reason = str(err).splitlines()[0][:300]
        raise ValueError(f"{args.model} is not a caloedu generator .keras file ({reason}).") from err
    if not isinstance(generator, ShowerGenerator):
        raise ValueError(f"{args.model} holds a {type(generator).__name__}, not a caloedu generator.")
    incident_energies = incident_energies_for(args, generator.energy_range)
    options = {key: value for key, value in (("solver", args.solver), ("steps", args.steps)) if value is not None}
    start = time.perf_counter()
    showers = generator.sample(incident_energies, batch_size=args.batch_size, seed=args.seed, **options)
    seconds = time.perf_counter() - start
    save_showers(args.output, incident_energies, showers, geometry=generator.geometry, overwrite=args.overwrite)
    print(f"wrote {len(showers)} generated showers ({generator.geometry.name}, {generator.geometry.n_voxels} voxels) "
          f"to {args.output} in {seconds:.1f} s ({seconds / len(showers) * 1e3:.2f} ms/shower)")
    return 0
