"""The ``caloedu`` command. Each subcommand lives in its own module of this package and defines
``register(subparsers)``, which adds its parser and sets ``func`` to the function that runs it.

Commands that take a generator family's options (train, sample, bench generator) set ``family_options``:
their own options are parsed here, and what is left (the family's ``--units``, ``--solver``...) reaches them
as ``args.extra`` to parse once the family is known (`caloedu.cli.family_options`)."""

import argparse
import importlib
import sys

# Subcommand modules, in the order `caloedu --help` lists them. A module that is missing (a part of
# the course not built yet) is skipped rather than breaking the others.
SUBCOMMANDS = ("simulate", "train", "sample", "evaluate", "bench", "course", "device")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="caloedu",
        description="Transformers and generative models for calorimeter showers (Keras 3, torch backend).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"caloedu.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"caloedu.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "family_options", False):
        parser.parse_args(argv)  # exits with argparse's "unrecognized arguments" message
    args.extra = extra
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        # User errors (bad file, wrong geometry...) get one clear line, not a traceback.
        print(f"caloedu {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
