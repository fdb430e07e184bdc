"""``caloedu bench NAME``: benchmarks that print measured figures (never asserted in tests).

Each benchmark is a module of ``caloedu.bench`` that defines ``register(subparsers)``; this command
collects the ones present."""

import importlib
import pkgutil


def register(subparsers):
    parser = subparsers.add_parser("bench", help="run a benchmark and print its figures")
    inner = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    import caloedu.bench

    for info in sorted(pkgutil.iter_modules(caloedu.bench.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"caloedu.bench.{info.name}")
        module.register(inner)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
