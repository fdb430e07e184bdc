"""``caloedu sample``: generate showers with a trained generator and write them to a CaloChallenge .h5 file.

    caloedu sample model.keras --n 10000 -o generated.h5
    caloedu sample model.keras --energies-from reference.h5 -o generated.h5 --solver rk4 --steps 10
    caloedu sample model.keras --help        # the sampling options of the model's family

The family's sampling options (``--solver``, ``--steps`` for flow matching) come from its
``sampling_options_class``; the family is read from the .keras file.
"""

import sys
import time


def register(subparsers):
    parser = subparsers.add_parser("sample", help="generate showers with a trained .keras generator", add_help=False,
                                   description="Generate showers with a trained generator; add the model file and "
                                               "--help for its family's sampling options.")
    parser.add_argument("-h", "--help", action="store_true", help="show this help (with the model's sampling options)")
    parser.add_argument("model", nargs="?", help="the .keras file written by `caloedu train`")
    parser.add_argument("-o", "--output", help="the .h5 file to write")
    parser.add_argument("--n", type=int, default=None, help="number of showers (default: all of --energies-from)")
    parser.add_argument("--energy-range", type=float, nargs=2, metavar=("MIN_MEV", "MAX_MEV"), default=None,
                        help="incident energies log-uniform in this range, MeV (default: the model's range)")
    parser.add_argument("--energies-from", default=None, metavar="REFERENCE.h5",
                        help="use the incident energies of this file (e.g. the held-out showers to compare with)")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: the cores not busy with other work, at least 1)")
    parser.add_argument("--trust-units", action="store_true",
                        help="accept incident energies that look like GeV (below 100 MeV); caloedu works in MeV")
    parser.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    parser.set_defaults(func=run, family_options=True, parser=parser)


def incident_energies_for(args, energy_range):
    """(N, 1) MeV: the reference file's energies (first --n of them) or --n log-uniform ones."""
    import numpy as np

    from caloedu.data import load_showers
    from caloedu.data.simulation import log_uniform_energies

    if args.energies_from is not None:
        if args.energy_range is not None:
            raise ValueError("Give either --energies-from or --energy-range, not both.")
        energies, _ = load_showers(args.energies_from, stop=args.n, check_units=not args.trust_units)
        if args.n is not None and len(energies) < args.n:
            raise ValueError(f"{args.energies_from} holds {len(energies)} showers, fewer than --n {args.n}.")
        return np.asarray(energies, dtype=np.float64)
    if args.n is None:
        raise ValueError("Give the number of showers with --n (or --energies-from a reference file).")
    low, high = args.energy_range or energy_range
    return log_uniform_energies(args.n, (low, high), np.random.default_rng(args.seed))[:, None]


def run(args):
    from caloedu.cli.family_options import family_arguments, family_of_model_file
    from caloedu.cli.paths import check_input_file, check_output
    from caloedu.data.checks import check_requested_energy
    from caloedu.generators.registry import get_family

    if args.model is None:
        if args.help:
            args.parser.print_help()
            return 0
        raise ValueError("Name the model: caloedu sample MODEL.keras -o OUTPUT.h5 ...")
    check_input_file(args.model, "the model")
    family_name = family_of_model_file(args.model)
    options_class = get_family(family_name).sampling_options_class
    options = family_arguments(args, options_class, f"{family_name} sampling options",
                               f"{args.parser.prog} {args.model}")
    if options is None:  # --help
        return 0
    if args.output is None:
        raise ValueError("-o/--output is required: the .h5 file to write.")
    if args.n is not None and args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}.")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if args.energy_range is not None:
        low, high = args.energy_range
        if not 0 < low < high:
            raise ValueError(f"--energy-range needs 0 < MIN < MAX in MeV, got {low:g} {high:g}.")
        if not args.trust_units:
            check_requested_energy(low, "--energy-range")
    if args.energies_from is not None:
        check_input_file(args.energies_from, "--energies-from")
    check_output(args.output, "-o", args.overwrite, inputs=[("MODEL", args.model), ("--energies-from",
                                                                                     args.energies_from)])

    import caloedu
    from caloedu.cli.progress import ProgressBar
    from caloedu.data import save_showers

    threads = caloedu.runtime.set_threads(args.threads)
    try:
        generator = caloedu.load_model(args.model)
    except (OSError, KeyError, TypeError) as err:
        # Keras' TypeError quotes the whole model config; the first line says what is wrong.
        reason = str(err).splitlines()[0][:300]
        raise ValueError(f"{args.model} is not a caloedu generator .keras file ({reason}).") from err
    incident_energies = incident_energies_for(args, generator.options.energy_range)
    print(f"sampling {len(incident_energies):,} showers with {args.model} ({family_name}), "
          f"{caloedu.runtime.describe_threads(threads)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    # sample warns (one line, through the CLI) for energies outside the range the model was trained on.
    # Features first, then the representation undone, timed apart: for point clouds that is the voxelisation.
    features = generator.sample_features(incident_energies, batch_size=args.batch_size, seed=args.seed,
                                         progress=ProgressBar("sampling"), **options)
    network_seconds = time.perf_counter() - start
    showers = generator.postprocess(features, incident_energies)
    seconds = time.perf_counter() - start
    save_showers(args.output, incident_energies, showers, geometry=generator.geometry, overwrite=args.overwrite)
    undo = "voxelisation" if generator.representation.kind == "point-cloud" else "undoing the preprocessing"
    print(f"wrote {len(showers)} generated showers ({generator.geometry.name}, {generator.geometry.n_voxels} voxels) "
          f"to {args.output} in {seconds:.1f} s ({seconds / len(showers) * 1e3:.2f} ms/shower; without "
          f"{undo} {network_seconds / len(showers) * 1e3:.2f} ms/shower)")
    return 0
