"""``rowstat sweep``: synthesize a grid of architectures and tabulate their area.

:func:`register` adds the subcommand to the ``rowstat`` command line; :func:`main` runs it on
its own (``python -m rowstat.fpga.sweep_cli ...``), with the same one-line errors and exit
status 2 as ``rowstat``.
"""

import argparse
import sys

from ..gen.errors import RowstatError
from .common import arch_from_args, arch_options, run_command

__all__ = ["add_parser", "cmd_sweep", "main"]

_EPILOG = """\
examples:
  rowstat sweep --preset tiny --vary act_width=4,8,16 --set psum_width=40 \\
      --target generic -o out/sweep-width
  rowstat sweep --preset tiny --vary rows=2,4 --vary cols=2,4 --target ice40 --pnr -o out/s2

Each point is cached in DIR/points/<hash>/result.json: running the same command again only
does the points that are missing or had failed. Points whose parameters are not allowed
(e.g. a psum narrower than a product) are listed as "invalid" and skipped.
"""


def add_parser(subparsers):
    """Add the ``sweep`` subcommand to an argparse ``subparsers`` object; returns its parser."""
    from ..fpga.yosys import TARGETS
    p = subparsers.add_parser(
        "sweep", help="synthesize a grid of configurations with yosys and tabulate the area",
        description="Synthesize every point of a parameter grid (yosys from PyPI) and write "
                    "DIR/sweep.csv, DIR/sweep.json and plots of area against each parameter.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    arch_options(p, "architecture (the base every point starts from)")
    group = p.add_argument_group("sweep")
    group.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2,...",
                       help="a parameter and its values (repeatable: the grid is the product)")
    group.add_argument("--target", default="ice40", choices=list(TARGETS),
                       help="ice40 / ecp5: LUT, FF, BRAM, DSP counts; generic: gates, memory "
                            "bits and a transistor estimate (default ice40)")
    group.add_argument("--top", default="pe", choices=["pe", "array", "accelerator"],
                       help="what to synthesize (default pe)")
    group.add_argument("--pnr", action="store_true",
                       help="also place and route with nextpnr and report Fmax (FPGA targets)")
    group.add_argument("--device", default=None, metavar="DEVICE:PACKAGE",
                       help="nextpnr device for --pnr (default up5k:sg48 for ice40, "
                            "85k:CABGA381 for ecp5)")
    group.add_argument("--freq", type=float, default=None, metavar="MHZ",
                       help="target frequency given to nextpnr (default 12 ice40, 100 ecp5)")
    group.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                       help="local worker processes (default: one per core)")
    group.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the points on a Dask distributed cluster, e.g. "
                            "tcp://host:8786 (the output folder must be shared with it)")
    group.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                       help="time allowed for each point; a point past it is recorded as "
                            "failed (default: no limit)")
    group.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar (default: only on a terminal)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=cmd_sweep)
    return p


def cmd_sweep(args):
    """Run a sweep from parsed arguments. Returns 0 when no point failed, 1 otherwise."""
    from ..fpga.sweep import command_line, format_summary, parse_vary, require_dask, run_sweep
    if args.scheduler is not None:
        require_dask()
    arch = arch_from_args(args)
    vary = parse_vary(args.vary)
    if not vary:
        raise RowstatError("nothing to sweep: give at least one --vary key=v1,v2,... "
                           "(e.g. --vary rows=2,4,8)")
    points = run_sweep(arch, vary, target=args.target, top=args.top, out_dir=args.output,
                       jobs=args.jobs, scheduler=args.scheduler, pnr=args.pnr,
                       progress=args.progress, timeout=args.timeout, device=args.device,
                       freq=args.freq, command=command_line())
    for line in format_summary(points, args.output):
        print(line)
    print(f"wrote {args.output}/sweep.csv, sweep.json and plots")
    return 1 if any(p["status"] == "failed" for p in points) else 0


def main(argv=None):
    """``rowstat sweep`` on its own: the arguments after ``sweep``."""
    parser = argparse.ArgumentParser(prog="rowstat")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run_command(parser.parse_args(["sweep", *(sys.argv[1:] if argv is None else argv)]))
