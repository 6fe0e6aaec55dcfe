"""What every ``rowstat`` subcommand shares: the architecture options, the options and files of
a one-layer run, and the one-line handling of bad input."""

import sys
from pathlib import Path

from ..gen.config import PRESETS, load_arch
from ..gen.errors import RowstatError

__all__ = ["arch_options", "arch_from_args", "layer_options", "layer_inputs",
           "write_layer_outputs", "check_at_least", "run_command"]


def arch_options(parser, title="architecture"):
    """The --preset, --config and --set options every command that builds an arch takes."""
    group = parser.add_argument_group(title)
    group.add_argument("--preset", default=None,
                       help=f"start from a preset: {', '.join(PRESETS)} (default eyeriss)")
    group.add_argument("--config", metavar="FILE.toml",
                       help="TOML file with architecture keys, applied over the preset")
    group.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="override one parameter (repeatable, applied last)")


def arch_from_args(args, preset=None):
    """The ArchConfig of the arch_options (``preset``: the default when --preset is absent)."""
    return load_arch(args.preset or preset, args.config, args.overrides)


def check_at_least(option, value, low=1):
    """One-line error unless the integer option ``value`` is at least ``low``."""
    if value is not None and value < low:
        raise RowstatError(f"bad value for {option}: {value}; allowed: an integer >= {low}")


def _load_array(option, path):
    import numpy as np
    if path is None:
        return None
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise RowstatError(f"bad value for {option}: {path!r}; allowed: an existing .npy file") \
            from None
    except (ValueError, OSError) as exc:
        raise RowstatError(f"bad value for {option}: {path!r}; allowed: a NumPy .npy file "
                           f"({exc})") from None


def layer_options(parser):
    """The --layer, --ifmap, --weights, --bias, --out and --stats options of the commands that
    run one layer (``run``, ``host``)."""
    parser.add_argument("--layer", required=True, metavar="L.json", help="layer specification")
    parser.add_argument("--ifmap", required=True, metavar="X.npy", help="(N, C, H, W) integers")
    parser.add_argument("--weights", required=True, metavar="W.npy",
                        help="(M, C/groups, R, S) integers")
    parser.add_argument("--bias", metavar="B.npy", help="(M,) integers")
    parser.add_argument("--out", required=True, metavar="Y.npy",
                        help="ofmap output (N, M, E, F) int64")
    parser.add_argument("--stats", metavar="S.json", help="write the run's statistics")


def layer_inputs(args):
    """(layer, ifmap, weights, bias) from the layer_options, after checking --out."""
    from ..gen.layer import load_layer
    if Path(args.out).suffix != ".npy":
        raise RowstatError(f"bad value for --out: {args.out!r}; allowed: a file name ending "
                           f"in .npy")
    return (load_layer(args.layer), _load_array("--ifmap", args.ifmap),
            _load_array("--weights", args.weights), _load_array("--bias", args.bias))


def write_layer_outputs(args, ofmap, stats):
    """Write the ofmap (--out) and the stats (--stats) of a layer run."""
    import json
    import numpy as np
    from ..gen.verilog import write_atomic, write_npy
    write_npy(args.out, ofmap.astype(np.int64))
    if args.stats:
        write_atomic(args.stats, json.dumps(stats, indent=2) + "\n")


def run_command(args):
    """Run the parsed command: bad input is one line on stderr and exit status 2."""
    try:
        return args.func(args)
    except RowstatError as exc:
        print(f"rowstat: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rowstat: interrupted", file=sys.stderr)
        return 130
