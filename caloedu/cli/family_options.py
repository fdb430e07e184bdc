"""Command-line options built from a generator family's option dataclasses, so the CLI's defaults are the
library's and a new family needs no CLI code: ``caloedu train --model NAME --help`` lists that family's options.

Commands that take family options (train, sample, bench generator) parse in two steps: their own options
first (which name the family), then the family's, from what is left of the command line.
"""

import argparse
import dataclasses
import json
import os
import zipfile

from caloedu.generators.options import base_type

# Options the commands set themselves (or that make no sense on a command line).
NOT_ON_COMMAND_LINE = {"seed"}


def _none_or(kind):
    def parse(text):
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__
    return parse


def _bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_option_arguments(parser, options_class, title):
    """Add one ``--name`` per field of ``options_class`` to a new argument group of ``parser``; values
    that are not given stay unset (argparse.SUPPRESS) so the dataclass's default applies."""
    group = parser.add_argument_group(title)
    for field in dataclasses.fields(options_class):
        if field.name in NOT_ON_COMMAND_LINE:
            continue
        kind, nullable = base_type(field.type)
        help_text = field.metadata.get("help", "")
        default = field.default
        arguments = {"default": argparse.SUPPRESS, "help": f"{help_text} (default: {default})"}
        if kind is tuple:
            arguments.update(type=float, nargs=len(default), metavar=tuple(["MIN", "MAX"][:len(default)]))
        elif kind is bool:
            arguments.update(type=_bool, metavar="BOOL")
        else:
            arguments.update(type=_none_or(kind) if nullable else kind)
            if field.metadata.get("choices"):
                arguments["choices"] = list(field.metadata["choices"]) + ([None] if nullable else [])
                arguments["metavar"] = "{" + ",".join(field.metadata["choices"]) + "}"
        group.add_argument("--" + field.name.replace("_", "-"), dest=field.name, **arguments)
    return group


def given_options(namespace, options_class):
    """The options of ``options_class`` that were given on the command line, as a dict."""
    names = {f.name for f in dataclasses.fields(options_class)}
    return {name: value for name, value in vars(namespace).items() if name in names}


def family_arguments(args, options_class, title, prog):
    """Parse ``args.extra`` as the options of ``options_class`` (a dict of those given; ``prog`` names the
    command in error messages); with ``args.help``, print the command's help with these options added and
    return None."""
    if args.help:
        full = argparse.ArgumentParser(prog=args.parser.prog, parents=[args.parser], add_help=False)
        add_option_arguments(full, options_class, title)
        full.print_help()
        return None
    own = argparse.ArgumentParser(prog=prog, add_help=False)
    add_option_arguments(own, options_class, title)
    return given_options(own.parse_args(args.extra), options_class)


def family_of_model_file(path):
    """The registered family of the generator in a .keras file, read from its config (no keras import)."""
    from caloedu.generators.registry import family_of_class_name

    if not os.path.exists(path):
        raise FileNotFoundError(f"No model at {path}.")
    try:
        with zipfile.ZipFile(path) as archive:
            class_name = json.loads(archive.read("config.json"))["class_name"]
    except (zipfile.BadZipFile, KeyError, ValueError) as err:
        raise ValueError(f"{path} is not a caloedu generator .keras file ({err}).") from err
    family = family_of_class_name(class_name)
    if family is None:
        raise ValueError(f"{path} holds a {class_name}, not a caloedu generator.")
    return family
