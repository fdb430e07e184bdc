"""Benchmarks behind ``caloedu bench``: one module per benchmark, each with ``register(subparsers)``."""
