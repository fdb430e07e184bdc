"""``caloedu train``: train a generator on a CaloChallenge .h5 file and save it as a .keras file.

    caloedu train --model flow-matching --data showers.h5 --geometry teaching -o model.keras --minutes 10
    caloedu train --model flow-matching --data showers.h5 -o model.keras --showers 1.6e6 --units 96
    caloedu train --data showers.h5 -o model.keras --epochs 5 --resume
    caloedu train --model flow-matching --help          # the family's own options, with their defaults

The family's options (``--architecture``, ``--learning-rate``...) come from its options dataclass
(`caloedu.generators.options`); their defaults are the library's.
"""

import json
import os
import sys


def register(subparsers):
    from caloedu.generators.registry import family_names  # no keras: `caloedu --help` stays fast

    parser = subparsers.add_parser("train", help="train a generator on showers from a .h5 file", add_help=False,
                                   description="Train a generator family on showers; add --model NAME --help "
                                               "for that family's options.")
    parser.add_argument("-h", "--help", action="store_true", help="show this help (with the family's options)")
    parser.add_argument("--model", choices=family_names(), default=None,
                        help="generator family (default: flow-matching, or the family of the model resumed)")
    parser.add_argument("--data", required=False, help="CaloChallenge .h5 file with incident_energies and showers")
    parser.add_argument("--geometry", default=None,
                        help="preset name or binning .xml (default: the geometry recorded in the data file)")
    parser.add_argument("-o", "--output", required=False, help="the .keras file to write")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: 1000 with a budget, else 20)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="time budget: stop after this many minutes, learning rate decaying as a cosine over it")
    parser.add_argument("--showers", type=float, default=None,
                        help="budget in training showers seen in this run (e.g. 1.6e6): reproduces a run on any "
                             "machine")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--validation-split", type=float, default=0.0)
    parser.add_argument("--resume", action="store_true", help="continue training the model already in --output")
    parser.add_argument("--seed", type=int, default=None, help="seeds Python, NumPy, torch and the generator")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is steadier on a busy machine)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run, family_options=True, parser=parser)


def geometry_of_file(path, name_or_path=None):
    """The geometry named on the command line, else the one ``caloedu simulate`` recorded in the file."""
    import h5py

    from caloedu.data import CalorimeterGeometry, ShowerFileError

    if name_or_path is not None:
        return CalorimeterGeometry.from_name_or_path(name_or_path)
    try:
        with h5py.File(path, "r") as file:
            recorded = file.attrs.get("geometry")
    except OSError as err:
        raise ShowerFileError(f"{path} is not a readable HDF5 file: {err}") from err
    if recorded is None:
        raise ValueError(f"{path} does not record its geometry; give it with --geometry (a preset or a binning .xml).")
    return CalorimeterGeometry.from_config(json.loads(recorded))


def check_arguments(args):
    from caloedu.cli.paths import check_output

    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}.")
    if args.minutes is not None and args.minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {args.minutes}.")
    if args.showers is not None and args.showers < 1:
        raise ValueError(f"--showers must be at least 1, got {args.showers:g}.")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}.")
    for flag, value in (("--data", args.data), ("-o/--output", args.output)):
        if value is None:
            raise ValueError(f"{flag} is required.")
    if not args.output.endswith(".keras"):
        raise ValueError(f"-o must name a .keras file, got {args.output}.")
    check_output(args.output, "-o", overwrite=args.resume,
                 hint="pass --resume to continue training it, or choose another -o")
    if not os.path.exists(args.data):
        raise FileNotFoundError(f"No shower file at {args.data}.")


def run(args):
    from caloedu.cli.family_options import family_arguments, family_of_model_file
    from caloedu.generators.registry import get_family

    resuming = args.resume and args.output is not None and os.path.exists(args.output)
    family_name = args.model or ("flow-matching" if not resuming else None)
    if family_name is None:
        family_name = family_of_model_file(args.output)
    family = get_family(family_name)
    options = family_arguments(args, family.options_class, f"{family_name} options",
                               f"{args.parser.prog} --model {family_name}")
    if options is None:  # --help
        return 0
    if resuming and options:
        raise ValueError(f"--resume continues {args.output} with the options it was trained with; drop "
                         f"{', '.join('--' + name.replace('_', '-') for name in options)}.")
    family.options_class.create(family_name, **options)  # wrong values are named before any work
    check_arguments(args)

    import caloedu
    from caloedu.data import load_showers
    from caloedu.generators import TrainingBudget

    caloedu.runtime.set_threads(args.threads)
    if args.seed is not None:
        caloedu.runtime.set_seed(args.seed)
    if resuming:
        generator = caloedu.load_model(args.output)
        if generator.family != family_name:
            raise ValueError(f"{args.output} holds a {generator.family} generator, not {family_name}.")
        geometry = generator.geometry
        print(f"resuming {args.output} after {int(generator.training_steps)} training steps "
              f"({int(generator.showers_seen):,} showers)")
    else:
        geometry = geometry_of_file(args.data, args.geometry)
        generator = family(geometry, **{"seed": args.seed, **options})
    incident_energies, showers = load_showers(args.data, geometry=geometry)
    budget = None
    if args.minutes is not None or args.showers is not None:
        budget = TrainingBudget(minutes=args.minutes, showers=args.showers)
    epochs = args.epochs or (1000 if budget else 20)
    # A progress bar redrawn with carriage returns fills a batch job's log file: one line per epoch there.
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    history = generator.fit(incident_energies, showers, epochs=epochs, batch_size=args.batch_size,
                            validation_split=args.validation_split, callbacks=[budget] if budget else [],
                            verbose=verbose)
    generator.save(args.output)
    final = ", ".join(f"{name} {values[-1]:.4f}" for name, values in history.history.items())
    print(f"trained {family_name} ({generator.count_trainable_params():,} parameters) on {len(showers)} showers for "
          f"{len(next(iter(history.history.values())))} epochs, {int(generator.showers_seen):,} showers seen in all "
          f"(final {final}); saved {args.output}")
    return 0
