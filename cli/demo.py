"""``rowstat demo`` and ``rowstat run``: a layer (or PE passes) simulated on the generated RTL."""

from pathlib import Path

from ..gen.errors import RowstatError
from .common import (arch_from_args, arch_options, check_at_least, layer_inputs,
                     layer_options, write_layer_outputs)
from .generate import generate_to

__all__ = ["add_parser", "cmd_demo", "cmd_run"]


def add_parser(sub):
    from ..gen.mapping import OBJECTIVES
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
    from .infer import add_demo_options
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


def cmd_demo(args):
    check_at_least("--cases", args.cases)
    check_at_least("--channels", args.channels)
    for name in ("idle", "stall"):
        value = getattr(args, name)
        if not 0.0 <= value < 1.0:
            raise RowstatError(f"bad value for --{name}: {value}; allowed: 0 <= p < 1")
    if args.onnx is not None:
        from .infer import demo_onnx
        return demo_onnx(args)
    if args.top == "pe":
        return demo_pe(args)
    return demo_layer(args)


def demo_layer(args):
    """Generate the accelerator, run a conv layer on it in cocotb, compare with the golden model."""
    import numpy as np
    from ..gen.layer import LayerSpec
    from ..sim.golden import golden_layer
    from ..sim.run import run_layer
    arch = arch_from_args(args)
    verilog = Path(args.out_dir) / f"{args.preset or 'eyeriss'}_accelerator.v"
    lines, seconds = generate_to(arch, "accelerator", verilog)
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
    arch = arch_from_args(args)
    verilog = Path(args.out_dir) / f"{args.preset or 'eyeriss'}_pe.v"
    lines, seconds = generate_to(arch, "pe", verilog)
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


def cmd_run(args):
    """Run one conv layer on the accelerator RTL; write the ofmap and the stats."""
    from ..sim.run import run_layer
    arch = arch_from_args(args)
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
