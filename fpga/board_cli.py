"""``rowstat build`` and ``rowstat host``: bitstreams for boards, and layers run on them.

:func:`register` adds both subcommands to the ``rowstat`` command line.
"""

import argparse
import signal
import sys

from ..gen.errors import RowstatError

__all__ = ["register", "cmd_build", "cmd_host"]

_BUILD_EPILOG = """\
examples:
  rowstat build --board icebreaker -o out/icebreaker
  rowstat build --board ulx3s-85f --preset ecp5 --set rows=4 --freq 50 -o out/ulx3s

Writes DIR/BOARD.bin (iCE40) or DIR/BOARD.bit (ECP5) and DIR/report.json (board, device,
preset and parameters, fmax_mhz, target_mhz, resources used and available, status). A design
that does not fit or misses the target frequency exits with status 1 after writing the report.
The tools work in DIR/build/.
"""

_HOST_EPILOG = """\
example:
  rowstat host --port /dev/ttyUSB1 --layer L.json --ifmap X.npy --weights W.npy --out Y.npy

Without --preset/--config/--set, the board's architecture is the preset whose key the board
reports. The baud rate must be the one of the build (default 115200).
"""


def register(subparsers):
    """Add ``build`` and ``host`` to an argparse ``subparsers`` object."""
    from ..gen.mapping import OBJECTIVES
    from ..gen.cli import arch_options, layer_options
    from .board import BOARDS, DEFAULT_BAUD
    boards = ", ".join(f"{b.name} ({b.device}, preset {b.preset})" for b in BOARDS.values())
    p = subparsers.add_parser(
        "build", help="build a bitstream of the accelerator with a UART host link for a board",
        description="Synthesize, place and route the accelerator behind its UART host link "
                    "for a board (yosys and nextpnr from PyPI) and write the bitstream and "
                    "report.json.",
        epilog=_BUILD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--board", required=True, metavar="BOARD", help=f"one of: {boards}")
    arch_options(p, "architecture (default: the board's preset)")
    p.add_argument("--freq", type=float, default=None, metavar="MHZ",
                   help="core clock: made by a PLL on the ECP5 boards; on the iCEBreaker "
                        "only the constraint nextpnr works to, the design runs at 12 MHz "
                        "(default: 12, 25 and 24 MHz)")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help=f"UART baud rate (default {DEFAULT_BAUD})")
    p.add_argument("--seeds", default="1", metavar="N[,N...]",
                   help="nextpnr placement seeds; several run at once and the first that "
                        "routes is kept (default 1)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="time allowed for each tool (default: no limit)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=cmd_build)

    p = subparsers.add_parser(
        "host", help="run a conv layer on a board over its UART host link",
        description="Compile a conv layer, send it to a board running a `rowstat build` "
                    "bitstream, and write the ofmap and the board's counters.",
        epilog=_HOST_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", required=True, metavar="DEVICE",
                   help="serial device of the board, e.g. /dev/ttyUSB1 (or a pyserial URL)")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help=f"baud rate of the bitstream (default {DEFAULT_BAUD})")
    arch_options(p, "architecture (default: the preset the board reports)")
    layer_options(p)
    p.add_argument("--freq", type=float, default=None, metavar="MHZ",
                   help="core clock of the bitstream (its report.json), for the link rate the "
                        "layer is mapped for (default 12)")
    p.add_argument("--objective", default="cycles", choices=OBJECTIVES,
                   help="what the mapper minimises for the link (default cycles)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="give up when the board is quiet this long (default 30)")
    p.set_defaults(func=cmd_host)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _seeds(text):
    """The --seeds list: distinct integers >= 0, comma-separated."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise RowstatError(f"bad value for --seeds: {text!r}; allowed: distinct integers >= 0, "
                           f"comma-separated (e.g. 1,2,3)")
    return seeds


def cmd_build(args):
    from ..gen.config import load_arch
    from .board import get_board
    from .build import BuildFailed, build_bitstream, check_freq
    board = get_board(args.board)
    check_freq(args.freq)
    preset = args.preset or board.preset
    arch = load_arch(preset, args.config, args.overrides)
    seeds = _seeds(args.seeds)
    # SIGTERM (kill PID) stops the build as Ctrl-C does: the tools are stopped and the report
    # says "interrupted"
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = build_bitstream(board.name, arch, args.output, preset=preset, freq=args.freq,
                                 baud=args.baud, seeds=seeds, timeout=args.timeout)
    except BuildFailed as exc:
        print(f"rowstat: build failed: {exc} (report: {args.output}/report.json)",
              file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    res = report["resources"]
    print(f"wrote {report['bitstream']}: Fmax {report['fmax_mhz']:.1f} MHz (target "
          f"{report['target_mhz']:g}), " + ", ".join(
              f"{k} {res[k]['used']}/{res[k]['available']}" for k in ("lut", "ff", "bram", "dsp"))
          + f", {report['seconds']:.0f} s")
    return 0


def cmd_host(args):
    from ..gen.cli import layer_inputs, write_layer_outputs
    from ..gen.config import load_arch
    from .host import DEFAULT_CLK_HZ, run_on_board
    if not args.timeout > 0:
        raise RowstatError(f"bad value for --timeout: {args.timeout}; allowed: seconds > 0")
    given = args.preset or args.config or args.overrides
    arch = load_arch(args.preset, args.config, args.overrides) if given else None
    layer, ifmap, weights, bias = layer_inputs(args)
    if args.freq is not None and not args.freq > 0:
        raise RowstatError(f"bad value for --freq: {args.freq}; allowed: MHz > 0")
    clk_hz = DEFAULT_CLK_HZ if args.freq is None else args.freq * 1e6
    ofmap, stats = run_on_board(arch, layer, ifmap, weights, bias, port=args.port,
                                baud=args.baud, clk_hz=clk_hz, objective=args.objective,
                                timeout=args.timeout)
    write_layer_outputs(args, ofmap, stats)
    print(f"wrote {args.out} {tuple(ofmap.shape)}: {stats['cycles']} cycles on the board, "
          f"{stats['pe_utilization']:.1%} PE utilisation, {stats['passes']} passes, "
          f"{stats['link_bytes_sent']} bytes sent in {stats['link_seconds']:.1f} s")
    return 0
