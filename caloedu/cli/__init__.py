"""The ``caloedu`` command. Each subcommand lives in its own module of this package and defines
``register(subparsers)``, which adds its parser and sets ``func`` to the function that runs it."""

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
    args = parser.parse_args(argv)
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
