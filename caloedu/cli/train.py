"""``caloedu train``: train a generator on a CaloChallenge .h5 file and save it as a .keras file.

    caloedu train --model flow-matching --data showers.h5 --geometry teaching -o model.keras --minutes 10
    caloedu train --model flow-matching --data showers.h5 -o model.keras --showers 1.6e6 --units 96
    caloedu train --data showers.h5 -o model.keras --epochs 5 --resume
    caloedu train --model flow-matching --help          # the family's own options, with their defaults

The family's options (``--architecture``, ``--learning-rate``...) come from its options dataclass
(`caloedu.generators.options`); their defaults are the library's.
"""

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
    parser.add_argument("--batch-size", type=int, default=None,
                        help="showers per training batch (default: the family's, 256 for most)")
    parser.add_argument("--validation-split", type=float, default=0.0)
    parser.add_argument("--resume", action="store_true", help="continue training the model already in --output")
    parser.add_argument("--seed", type=int, default=None, help="seeds Python, NumPy, torch and the generator")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: the cores not busy with other work, at least 1)")
    parser.add_argument("--trust-units", action="store_true",
                        help="train on energies that look like GeV (incident energies below 100 MeV, or an unusual "
                             "E_dep/E_inc); caloedu works in MeV")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run, family_options=True, parser=parser)


def geometry_of_file(path, name_or_path=None):
    """The geometry named on the command line, else the one ``caloedu simulate`` recorded in the file."""
    from caloedu.data import CalorimeterGeometry, recorded_geometry

    if name_or_path is not None:
        return CalorimeterGeometry.from_name_or_path(name_or_path)
    geometry = recorded_geometry(path)
    if geometry is None:
        raise ValueError(f"{path} does not record its geometry; give it with --geometry (a preset or a binning .xml).")
    return geometry


def check_arguments(args):
    from caloedu.cli.paths import check_input_file, check_output

    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}.")
    if args.minutes is not None and args.minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {args.minutes}.")
    if args.showers is not None and args.showers < 1:
        raise ValueError(f"--showers must be at least 1, got {args.showers:g}.")
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if args.output is None:
        raise ValueError("-o/--output is required: the .keras file to write.")
    if not args.output.endswith(".keras"):
        raise ValueError(f"-o must name a .keras file, got {args.output}.")
    check_output(args.output, "-o", overwrite=args.resume, inputs=[("--data", args.data)],
                 hint="pass --resume to continue training it, or choose another -o")
    check_input_file(args.data, "--data")


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
    from caloedu.cli.paths import save_atomically
    from caloedu.data import load_showers
    from caloedu.generators import TrainingBudget

    threads = caloedu.runtime.set_threads(args.threads)
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
    incident_energies, showers = load_showers(args.data, geometry=geometry, check_units=not args.trust_units)
    n_train = len(showers) - int(len(showers) * args.validation_split)
    if n_train < 1:
        raise ValueError(f"{args.data} holds {len(showers)} showers; --validation-split {args.validation_split} "
                         "leaves none to train on.")
    print(f"training {family_name} on {n_train:,} showers of {args.data} ({geometry.name}), "
          f"{caloedu.runtime.describe_threads(threads)}", flush=True)
    budget = None
    if args.minutes is not None or args.showers is not None:
        budget = TrainingBudget(minutes=args.minutes, showers=args.showers)
    epochs = args.epochs or (1000 if budget else 20)
    # A progress bar redrawn with carriage returns fills a batch job's log file: one line per epoch there.
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    seen_before = int(generator.showers_seen)
    history = generator.fit(incident_energies, showers, epochs=epochs,
                            batch_size=args.batch_size or generator.default_batch_size,
                            validation_split=args.validation_split, callbacks=[budget] if budget else [],
                            verbose=verbose, check_units=False)  # the file was checked (or trusted) above
    save_atomically(generator.save, args.output)
    final = ", ".join(f"{name} {values[-1]:.4f}" for name, values in history.history.items())
    seen = int(generator.showers_seen) - seen_before
    print(f"trained {family_name} ({generator.count_trainable_params():,} parameters) for {epochs_run(seen, n_train)} "
          f"epochs ({seen:,} showers this run, {int(generator.showers_seen):,} in all; final {final}); "
          f"saved {args.output}")
    return 0


def epochs_run(showers_seen, n_train):
    """Epochs as showers seen over the training showers: a budget that stops inside an epoch says so
    ("11.4"), where Keras would count the partial epoch as a whole one."""
    epochs = showers_seen / max(n_train, 1)
    return f"{epochs:.0f}" if abs(epochs - round(epochs)) < 1e-9 else f"{epochs:.2f}"
