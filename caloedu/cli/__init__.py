"""The ``caloedu`` command. Each subcommand lives in its own module of this package and defines
``register(subparsers)``, which adds its parser and sets ``func`` to the function that runs it.

Commands that take a generator family's options (train, sample, bench generator) set ``family_options``:
their own options are parsed here, and what is left (the family's ``--units``, ``--solver``...) reaches them
as ``args.extra`` to parse once the family is known (`caloedu.cli.family_options`)."""

import argparse
import importlib
import sys
import warnings

# Subcommand modules, in the order `caloedu --help` lists them. A module that is missing (a part of
# the course not built yet) is skipped rather than breaking the others.
SUBCOMMANDS = ("simulate", "train", "sample", "evaluate", "bench", "course", "device")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="caloedu",
        description="Transformers and generative models for calorimeter showers (Keras 3, torch backend).",
        epilog="Add --debug anywhere to see the full traceback of a failure.",
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
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug may stand anywhere: it is taken out before the subcommand's own parser sees the arguments.
    debug = "--debug" in argv
    argv = [arg for arg in argv if arg != "--debug"]
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "family_options", False):
        parser.parse_args(argv)  # exits with argparse's "unrecognized arguments" message
    args.extra = extra
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    shown = warnings.showwarning
    # A warning is one line under the command's name, not Python's "file:line: UserWarning" form.
    warnings.showwarning = lambda message, *_, **__: print(f"caloedu {args.command}: warning: {message}",
                                                          file=sys.stderr, flush=True)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"caloedu {args.command}: interrupted; an output not yet complete was not written.", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001  (every failure is one sentence; --debug shows the traceback)
        if debug:
            raise
        print(f"caloedu {args.command}: error: {describe_error(err)}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = shown


def describe_error(err):
    """One line for the user: the message of a user error (a bad file, a wrong option); for anything else
    (a bug, or a failure the checks did not foresee) its type too, and where to find the traceback."""
    if isinstance(err, (ValueError, FileNotFoundError, FileExistsError, PermissionError)):
        return str(err)
    first_line = (str(err).splitlines() or [""])[0][:300]
    return f"{type(err).__name__}: {first_line} (run again with --debug for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
