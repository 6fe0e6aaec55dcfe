"""The ``rowstat`` command line: one module per group of subcommands, each with an
``add_parser(subparsers)`` that adds its subcommands (with ``func`` set to the function that runs
them). Nothing in rowstat imports this package: it sits on top of every layer."""

import argparse

from ..version import __version__
from . import board, demo, generate, infer, model, sweep
from .common import run_command

__all__ = ["COMMANDS", "build_parser", "main"]

#: The subcommand modules, in the order ``rowstat --help`` lists them.
COMMANDS = (generate, demo, sweep, board, model, infer)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="rowstat",
        description="Generate, simulate and measure row-stationary DNN accelerators.")
    parser.add_argument("--version", action="version", version=f"rowstat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv=None):
    return run_command(build_parser().parse_args(argv))

