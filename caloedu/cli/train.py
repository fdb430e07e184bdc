"""``caloedu train``: train a generator on a CaloChallenge .h5 file and save it as a .keras file.

    caloedu train --model flow-matching --data showers.h5 --geometry teaching -o model.keras --minutes 10
    caloedu train --model flow-matching --data showers.h5 -o model.keras --epochs 5 --resume
"""

import json
import os
import sys

MODELS = ("flow-matching",)
# Kept here (not imported) so `caloedu --help` does not import keras.
PREPROCESSINGS = ("voxel-ratios", "energy-ratios", "log-ratios", "energy-log-ratios", "energy-sqrt", "energy-gap")


def register(subparsers):
    parser = subparsers.add_parser("train", help="train a generator on showers from a .h5 file")
    parser.add_argument("--model", choices=MODELS, default="flow-matching", help="generator family")
    parser.add_argument("--data", required=True, help="CaloChallenge .h5 file with incident_energies and showers")
    parser.add_argument("--geometry", default=None,
                        help="preset name or binning .xml (default: the geometry recorded in the data file)")
    parser.add_argument("-o", "--output", required=True, help="the .keras file to write")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: 1000 with --minutes, else 20)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="time budget: stop after this many minutes, learning rate decaying as a cosine over it")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--architecture", choices=("auto", "mlp", "transformer", "mean-field"), default="auto",
                        help="velocity network (default auto: mean-field when every layer has the same binning, "
                             "else mlp)")
    parser.add_argument("--preprocessing", choices=PREPROCESSINGS, default="energy-gap",
                        help="how showers are mapped to the network's space (caloedu.generators.preprocessing)")
    parser.add_argument("--prediction", choices=("velocity", "data"), default="data",
                        help="the network predicts the velocity or the clean shower (default: data)")
    parser.add_argument("--energy-loss-weight", type=float, default=30.0,
                        help="weight of the energy features (u-variables) in the CFM loss (default: 30)")
    parser.add_argument("--validation-split", type=float, default=0.0)
    parser.add_argument("--resume", action="store_true", help="continue training the model already in --output")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def geometry_of_file(path, name_or_path=None):
    """The geometry named on the command line, else the one ``caloedu simulate`` recorded in the file."""
    import h5py

    from caloedu.data import CalorimeterGeometry

    if name_or_path is not None:
        return CalorimeterGeometry.from_name_or_path(name_or_path)
    with h5py.File(path, "r") as file:
        recorded = file.attrs.get("geometry")
    if recorded is None:
        raise ValueError(f"{path} does not record its geometry; give it with --geometry (a preset or a binning .xml).")
    return CalorimeterGeometry.from_config(json.loads(recorded))


def run(args):
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}.")
    if args.minutes is not None and args.minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {args.minutes}.")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if not args.output.endswith(".keras"):
        raise ValueError(f"-o must name a .keras file, got {args.output}.")
    if os.path.exists(args.output) and not args.resume:
        raise ValueError(f"{args.output} exists; pass --resume to continue training it, or choose another -o.")

    import caloedu
    from caloedu.data import load_showers
    from caloedu.generators import GENERATORS, TimeBudget

    if not os.path.exists(args.data):
        raise FileNotFoundError(f"No shower file at {args.data}.")
    if args.seed is not None:
        caloedu.runtime.set_seed(args.seed)
    if args.resume and os.path.exists(args.output):
        generator = caloedu.load_model(args.output)
        geometry = generator.geometry
        print(f"resuming {args.output} after {int(generator.optimizer.iterations)} training steps")
    else:
        geometry = geometry_of_file(args.data, args.geometry)
        architecture = args.architecture
        if architecture == "auto":
            architecture = "mean-field" if geometry.is_regular else "mlp"
        generator = GENERATORS[args.model](
            geometry, architecture=architecture, preprocessing=args.preprocessing, prediction=args.prediction,
            learning_rate=args.learning_rate, energy_loss_weight=args.energy_loss_weight, seed=args.seed,
        )
    incident_energies, showers = load_showers(args.data, geometry=geometry)
    callbacks = [] if args.minutes is None else [TimeBudget(args.minutes)]
    epochs = args.epochs or (1000 if args.minutes else 20)
    # A progress bar redrawn with carriage returns fills a batch job's log file: one line per epoch there.
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    history = generator.fit(incident_energies, showers, epochs=epochs, batch_size=args.batch_size,
                            validation_split=args.validation_split, callbacks=callbacks, verbose=verbose)
    generator.save(args.output)
    losses = history.history.get("loss", [float("nan")])
    architecture = getattr(generator, "architecture", "")
    print(f"trained {args.model} ({architecture}, {generator.count_params():,} parameters) on "
          f"{len(showers)} showers for {len(losses)} epochs (final loss {losses[-1]:.4f}); saved {args.output}")
    return 0
