"""The ``rowstat`` command line."""

import argparse
import sys
import time
from pathlib import Path

from .. import __version__
from .config import PRESET_NOTES, PRESETS, load_arch
from .errors import RowstatError

__all__ = ["main"]


def arch_options(parser, title="architecture"):
    """The --preset, --config and --set options every command that builds an arch takes."""
    group = parser.add_argument_group(title)
    group.add_argument("--preset", default=None,
                       help=f"start from a preset: {', '.join(PRESETS)} (default eyeriss)")
    group.add_argument("--config", metavar="FILE.toml",
                       help="TOML file with architecture keys, applied over the preset")
    group.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="override one parameter (repeatable, applied last)")


def _arch(args):
    return load_arch(args.preset, args.config, args.overrides)


def cmd_presets(args):
    names = list(PRESETS)
    keys = list(PRESETS[names[0]].to_dict())
    width = max(len(k) for k in keys)
    print(f"{'':{width}}  " + "  ".join(f"{n:>10}" for n in names))
    for key in keys:
        print(f"{key:{width}}  " + "  ".join(f"{PRESETS[n].to_dict()[key]:>10}" for n in names))
    print(f"{'glb KiB':{width}}  " + "  ".join(f"{PRESETS[n].glb_bytes / 1024:>10g}" for n in names))
    print()
    for n in names:
        print(f"{n}: {PRESET_NOTES[n]}")
    return 0


def cmd_generate(args):
    arch = _arch(args)
    out = Path(args.output)
    if out.suffix != ".v":
        raise RowstatError(f"bad value for -o: {str(out)!r}; allowed: a file name ending in .v")
    lines, seconds = _generate_to(arch, args.top, out, name=args.name)
    print(f"wrote {out} ({lines} lines) and {out.with_suffix('.json')} in {seconds:.2f} s",
          file=sys.stderr)
    return 0


def _generate_to(arch, top, path, name=None):
    """Write ``top``'s Verilog to ``path`` and its JSON beside it (the .v last, so it appears
    only once both are complete). Returns (lines of Verilog, seconds)."""
    from .verilog import generate, write_atomic, write_json
    t0 = time.monotonic()
    text, description = generate(arch, top, name=name)
    write_json(path.with_suffix(".json"), description)
    write_atomic(path, text)
    return len(text.splitlines()), time.monotonic() - t0


def cmd_demo(args):
    if args.onnx is not None:
        from ..net.cli import demo_onnx
        return demo_onnx(args)
    if args.top == "pe":
        return demo_pe(args)
    return demo_layer(args)


def demo_layer(args):
    """Generate the accelerator, run a conv layer on it in cocotb, compare with the golden model."""
    import numpy as np
    from .layer import LayerSpec
    from ..sim.golden import golden_layer
    from ..sim.run import run_layer
    arch = _arch(args)
    verilog = Path(args.out_dir) / f"{args.preset or 'eyeriss'}_accelerator.v"
    lines, seconds = _generate_to(arch, "accelerator", verilog)
    print(f"[1/3] generated {verilog}: {lines} lines of Verilog in {seconds:.1f} s")
    # An AlexNet-CONV3-like layer (3x3, 13x13, padding 1) at a size that simulates quickly.
    layer = LayerSpec(N=1, C=args.channels, H=13, W=13, M=args.channels, R=min(3, arch.rows),
                      S=3, padding=1, relu=True, shift=8)
    rng = np.random.default_rng(args.seed)
    x = rng.integers(-(1 << (arch.act_width - 1)), 1 << (arch.act_width - 1), layer.ifmap_shape)
    x[rng.random(layer.ifmap_shape) < 0.3] = 0
    w = rng.integers(-(1 << (arch.weight_width - 1)), 1 << (arch.weight_width - 1),
                     layer.weight_shape)
    b = rng.integers(-(1 << 16), 1 << 16, (layer.M,))
    print(f"[2/3] running {layer.M}x{layer.C}x{layer.R}x{layer.S} conv on a "
          f"{layer.H}x{layer.W} ifmap ({layer.macs:,} MACs) on the {arch.rows}x{arch.cols} "
          f"accelerator in cocotb ({args.sim or 'verilator'}); the first build takes minutes",
          flush=True)
    ofmap, stats = run_layer(arch, layer, x, w, b, sim=args.sim, waves=args.waves)
    expected = golden_layer(arch, layer, x, w, b)
    exact = bool(np.array_equal(ofmap, expected))
    mp = stats["mapping"]
    print(f"[3/3] {'PASS' if exact else 'FAIL'}: ofmap {tuple(ofmap.shape)} "
          f"{'bit-exact against' if exact else 'DIFFERS from'} the golden model "
          f"({int(np.count_nonzero(ofmap != expected))} of {ofmap.size} values differ)")
    print(f"      mapping n={mp['n']} e={mp['e']} p={mp['p']} q={mp['q']} r={mp['r']} "
          f"t={mp['t']} m={mp['m']}, {stats['passes']} passes")
    print(f"      {stats['cycles']} cycles, PE utilisation {stats['pe_utilization']:.1%}, "
          f"{stats['macs']} MACs done + {stats['macs_skipped_zero']} skipped by zero gating")
    print(f"      DRAM beats in/out {stats['dram_read_words']}/{stats['dram_write_words']}, "
          f"GLB reads/writes {stats['glb_reads']}/{stats['glb_writes']}")
    print(f"      build {stats['build_seconds']:.0f} s (0 = cached), simulation "
          f"{stats['sim_seconds']:.1f} s")
    return 0 if exact else 1


def demo_pe(args):
    """Generate the PE, simulate random passes on it in cocotb, compare with the golden model."""
    from ..sim.runner import check_pe
    arch = _arch(args)
    verilog = Path(args.out_dir) / f"{args.preset or 'eyeriss'}_pe.v"
    lines, seconds = _generate_to(arch, "pe", verilog)
    print(f"[1/2] generated {verilog}: {lines} lines of Verilog in {seconds:.2f} s")
    print(f"[2/2] simulating {args.cases} random PE passes in cocotb "
          f"({args.sim or 'verilator'}) against the golden 1-D convolution ...", flush=True)
    report = check_pe(arch, cases=args.cases, seed=args.seed, idle=args.idle, stall=args.stall,
                      sim=args.sim, waves=args.waves)
    shapes = report["shapes"]
    print(f"PASS: {report['cases']} passes, {report['psums_checked']} psums bit-exact "
          f"(p 1-{max(s['p'] for s in shapes)}, q 1-{max(s['q'] for s in shapes)}, "
          f"S 1-{max(s['S'] for s in shapes)}, stride 1-{max(s['U'] for s in shapes)}, "
          f"F 1-{max(s['F'] for s in shapes)}, "
          f"{sum(s['psum_in'] for s in shapes)} with input psums)")
    print(f"      {report['macs']} MACs done, {report['macs_skipped']} skipped by zero gating "
          f"(counters match); {report['cycles']} cycles for {report['ideal_cycles']} "
          f"MAC slots with {args.idle:.0%} input idles and {args.stall:.0%} output stalls")
    print(f"      build {report['build_seconds']:.1f} s (0 = cached), "
          f"simulation {report['sim_seconds']:.1f} s")
    if report.get("waves"):
        print(f"      waveform: {report['waves']}")
    return 0


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
    from .layer import load_layer
    if Path(args.out).suffix != ".npy":
        raise RowstatError(f"bad value for --out: {args.out!r}; allowed: a file name ending "
                           f"in .npy")
    return (load_layer(args.layer), _load_array("--ifmap", args.ifmap),
            _load_array("--weights", args.weights), _load_array("--bias", args.bias))


def write_layer_outputs(args, ofmap, stats):
    """Write the ofmap (--out) and the stats (--stats) of a layer run."""
    import json
    import numpy as np
    from .verilog import write_atomic, write_npy
    write_npy(args.out, ofmap.astype(np.int64))
    if args.stats:
        write_atomic(args.stats, json.dumps(stats, indent=2) + "\n")


def cmd_run(args):
    """Run one conv layer on the accelerator RTL; write the ofmap and the stats."""
    from ..sim.run import run_layer
    arch = _arch(args)
    layer, ifmap, weights, bias = layer_inputs(args)
    ofmap, stats = run_layer(arch, layer, ifmap, weights, bias, sim=args.sim, waves=args.waves,
                             io_bits_per_cycle=args.io_bits_per_cycle, objective=args.objective)
    write_layer_outputs(args, ofmap, stats)
    model = stats["model"]
    print(f"wrote {args.out} {tuple(ofmap.shape)}: {stats['cycles']} cycles (model "
          f"{model['predicted']['cycles']}, {100 * model['error']['cycles']:+.2f}%), "
          f"{stats['pe_utilization']:.1%} PE utilisation, {stats['passes']} passes, "
          f"{stats['dram_read_words']} beats in, {stats['dram_write_words']} beats out")
    return 0


def build_parser():
    from .mapping import OBJECTIVES
    parser = argparse.ArgumentParser(
        prog="rowstat",
        description="Generate, simulate and measure row-stationary DNN accelerators.")
    parser.add_argument("--version", action="version", version=f"rowstat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("presets", help="list the presets and their parameters")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("generate", help="write Verilog and a JSON description of a top")
    arch_options(p)
    p.add_argument("--top", default="pe", choices=["pe", "array", "accelerator"],
                   help="what to generate (default pe)")
    p.add_argument("--name", default=None, help="Verilog module name (default rowstat_TOP)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.v",
                   help="Verilog output; FILE.json is written beside it")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("demo", help="generate the accelerator, run a conv layer on it in cocotb "
                                    "and compare with the golden model (the README's main job)")
    arch_options(p)
    p.add_argument("--top", choices=["accelerator", "pe"], default="accelerator",
                   help="a whole layer on the accelerator (default), or random passes on one PE")
    p.add_argument("--channels", type=int, default=16,
                   help="input and output channels of the demo layer (default 16)")
    p.add_argument("--cases", type=int, default=100, help="PE demo: random passes (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--idle", type=float, default=0.2,
                   help="probability an input is idle in a cycle (default 0.2)")
    p.add_argument("--stall", type=float, default=0.2,
                   help="probability the output is not ready in a cycle (default 0.2)")
    p.add_argument("--sim", choices=["verilator", "icarus"], default=None,
                   help="simulator (default verilator, or $SIM)")
    p.add_argument("--waves", metavar="FILE.vcd", default=None, help="write a waveform")
    p.add_argument("--out-dir", default="out", help="where the Verilog goes (default out/)")
    from ..net.cli import add_demo_options
    add_demo_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="run one conv layer on the accelerator RTL in cocotb")
    arch_options(p)
    layer_options(p)
    p.add_argument("--sim", choices=["verilator", "icarus"], default=None)
    p.add_argument("--waves", metavar="FILE.vcd", default=None, help="write a waveform")
    p.add_argument("--io-bits-per-cycle", type=float, default=None, metavar="B",
                   help="throttle the data link to B bits per core cycle (Eyeriss: 19.2)")
    p.add_argument("--objective", default="cycles", choices=OBJECTIVES,
                   help="what the mapper minimises for this link, as for `rowstat model` "
                        "(default cycles)")
    p.set_defaults(func=cmd_run)

    from ..fpga.sweep_cli import register as register_sweep
    register_sweep(sub)
    from ..fpga.board_cli import register as register_board
    register_board(sub)
    from ..sim.model_cli import register as register_model
    register_model(sub)
    from ..net.cli import add_parser as register_infer
    register_infer(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        for name in ("cases", "channels"):
            if getattr(args, name, 1) < 1:
                raise RowstatError(f"bad value for --{name}: {getattr(args, name)}; "
                                   f"allowed: an integer >= 1")
        for name in ("idle", "stall"):
            value = getattr(args, name, 0.0)
            if not 0.0 <= value < 1.0:
                raise RowstatError(f"bad value for --{name}: {value}; allowed: 0 <= p < 1")
        return args.func(args)
    except RowstatError as exc:
        print(f"rowstat: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rowstat: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
