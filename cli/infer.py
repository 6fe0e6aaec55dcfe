"""``rowstat infer`` and ``rowstat demo --onnx``: ONNX networks from the
command line.

:func:`add_parser` registers ``infer``; :func:`add_demo_options` adds ``--onnx`` and
``--images`` to ``demo`` and :func:`demo_onnx` runs it (``model --onnx`` and ``report --onnx``
are in :mod:`rowstat.cli.model`).
"""

import argparse
import json
from pathlib import Path

from ..gen.errors import RowstatError

__all__ = ["add_parser", "main", "add_demo_options", "demo_onnx", "layer_table"]

_EPILOG = """\
examples:
  rowstat infer --onnx model.onnx --input images.npy --out logits.npy
  rowstat infer --preset tiny --onnx model.onnx --input x.npy --calibration calib.npy \\
                --engine rtl --out logits.npy --stats stats.json --report out/infer
  rowstat model --onnx model.onnx --batch 4

The input is float (N, ...) in the ONNX graph's input shape. A float graph is quantized to
8-bit activations and weights with power-of-two scales from the calibration set (default: the
input itself); a QDQ graph's scales are used where it has them.
"""


def add_parser(subparsers):
    """Add ``infer`` to an argparse ``subparsers`` object."""
    from .common import arch_options
    p = subparsers.add_parser(
        "infer", help="run an ONNX network on the accelerator (RTL or model), int8",
        description="Import an ONNX network, quantize it to int8 with power-of-two scales, run "
                    "every Conv and Gemm on the accelerator (engine rtl: the generated Verilog "
                    "in cocotb; engine model: the golden and analytical models) and pooling "
                    "and reshapes in NumPy; write the logits and per-layer statistics.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    arch_options(p)
    p.add_argument("--onnx", required=True, metavar="MODEL.onnx", help="the network")
    p.add_argument("--input", required=True, metavar="X.npy",
                   help="float images (N, ...) in the graph input's shape")
    p.add_argument("--calibration", metavar="C.npy", default=None,
                   help="calibration images for the quantizer (default: the input)")
    p.add_argument("--engine", choices=["model", "rtl"], default="model",
                   help="model (golden + analytical, fast) or rtl (cocotb); default model")
    p.add_argument("--out", required=True, metavar="LOGITS.npy",
                   help="the network's output, float64 (the integers times their scale)")
    p.add_argument("--stats", metavar="S.json", help="write per-layer statistics as JSON")
    p.add_argument("--report", metavar="DIR", help="write report.md, report.json and figures")
    p.add_argument("--sim", choices=["verilator", "icarus"], default=None,
                   help="simulator of the rtl engine (default verilator, or $SIM)")
    p.add_argument("--costs", metavar="FILE", default=None,
                   help="energy cost table, JSON or TOML (default: the Eyeriss relative costs)")
    p.add_argument("--io-bits-per-cycle", type=float, default=None, metavar="B",
                   help="external link bits per core cycle (default unlimited)")
    p.set_defaults(func=main)
    return p


def add_demo_options(parser):
    """``demo --onnx [MODEL]`` and ``--images N``."""
    parser.add_argument("--onnx", nargs="?", const="", default=None, metavar="MODEL.onnx",
                        help="classify digits with an ONNX network on the accelerator RTL "
                             "(default network: the shipped digits CNN; default preset: tiny)")
    parser.add_argument("--images", type=int, default=8,
                        help="--onnx: test images to classify (default 8)")


# --- helpers ------------------------------------------------------------------------------------

def _load_npy(option, path):
    from .common import _load_array
    return _load_array(option, path)


def _arch_and_bits(args):
    from ..gen.config import load_arch
    arch = load_arch(args.preset, args.config, args.overrides)
    return arch, min(8, arch.act_width), min(8, arch.weight_width)


def _costs(args):
    from ..sim.model import DEFAULT_COSTS, load_costs
    return load_costs(args.costs) if getattr(args, "costs", None) else dict(DEFAULT_COSTS)


def layer_table(result):
    """Text lines: one row per accelerator layer of a NetworkResult, and the totals."""
    head = (f"{'layer':<12} {'M x C x R x S':<16} {'ifmap':>7} {'n e p q r t m':<18} "
            f"{'cycles':>10} {'util':>6} {'DRAM words':>11} {'GLB acc.':>10} {'energy':>10}")
    lines = [head, "-" * len(head)]
    for s in result.layers:
        ly, mp = s["layer"], s["mapping"]
        shape = f"{ly['M']}x{ly['C'] // ly['groups']}x{ly['R']}x{ly['S']}"
        lines.append(
            f"{s['name']:<12} {shape:<16} {ly['H']:>3}x{ly['W']:<3} "
            f"{' '.join(str(mp[k]) for k in 'nepqrtm'):<18} {s['cycles']:>10,} "
            f"{s['pe_utilization']:>6.1%} {s['dram_read_words'] + s['dram_write_words']:>11,} "
            f"{s['glb_reads'] + s['glb_writes']:>10,} {s['energy']['total']:>10.3g}")
    t = result.totals()
    lines.append("-" * len(head))
    lines.append(f"{'total':<12} {'':<16} {'':>7} {'':<18} {t['cycles']:>10,} {'':>6} "
                 f"{t['dram_read_words'] + t['dram_write_words']:>11,} "
                 f"{t['glb_reads'] + t['glb_writes']:>10,} {t['energy']:>10.3g}")
    return lines


def _stats_json(arch, qnet, result, engine, what):
    return {"what": what, "engine": engine, "arch": arch.to_dict(),
            "act_bits": qnet.act_bits, "weight_bits": qnet.weight_bits,
            "frac_in": qnet.frac_in, "frac_out": qnet.frac_out,
            "images": int(result.ints.shape[0]), "totals": result.totals(),
            "layers": result.layers}


def _write_report(out, arch, result, title, costs, io_bits):
    """report.md, report.json and the model's figures (cycles, energy, occupancy)."""
    from ..gen.verilog import write_atomic, write_json
    from ..sim.model import network_totals
    from .model import _figures, _markdown
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RowstatError(f"bad value for --report: {str(out)!r}; allowed: a folder")
    out.mkdir(parents=True, exist_ok=True)
    models = result.models
    totals = network_totals(models)
    summary = {"objective": "cycles", "io_bits_per_cycle": io_bits, "costs": costs,
               "cycles": totals["cycles"], "pe_utilization": totals["pe_utilization"],
               "accesses": totals["accesses"], "energy": totals["energy"],
               "layers": result.layers}
    figures = _figures(arch, models, out, title)
    write_json(out / "report.json", summary)
    write_atomic(out / "report.md", _markdown(arch, models, summary, title, figures))
    return out


def _run(args, x, calibration, engine, progress=True):
    """Load, quantize (on ``calibration``, default the input) and run ``--onnx`` on ``x``."""
    from ..net import load, quantize, run_network
    from ..net.quantize import check_input
    arch, act_bits, weight_bits = _arch_and_bits(args)
    net = load(args.onnx)
    x = check_input(net, x, "--input")
    calibration = x if calibration is None else calibration
    qnet = quantize(net, calibration, act_bits=act_bits, weight_bits=weight_bits)
    costs = _costs(args)
    result = run_network(arch, qnet, x, engine, progress=progress, sim=args.sim, costs=costs,
                         io_bits_per_cycle=getattr(args, "io_bits_per_cycle", None))
    return arch, net, qnet, result, costs


# --- commands -----------------------------------------------------------------------------------

def main(args):
    """``rowstat infer``."""
    import numpy as np
    from ..gen.verilog import write_atomic, write_npy
    if Path(args.out).suffix != ".npy":
        raise RowstatError(f"bad value for --out: {args.out!r}; allowed: a file name ending "
                           f"in .npy")
    x = _load_npy("--input", args.input)
    calibration = _load_npy("--calibration", args.calibration) if args.calibration else None
    arch, net, qnet, result, costs = _run(args, x, calibration, args.engine)
    write_npy(args.out, np.asarray(result.logits, dtype=np.float64))
    what = str(args.onnx)
    if args.stats:
        write_atomic(args.stats, json.dumps(_stats_json(arch, qnet, result, args.engine, what),
                                            indent=2) + "\n")
    print(f"{net.name} on {arch.rows} x {arch.cols} PEs ({args.engine}), {x.shape[0]} images, "
          f"int{qnet.act_bits} activations, int{qnet.weight_bits} weights")
    for line in layer_table(result):
        print(line)
    print(f"wrote {args.out} {tuple(result.logits.shape)}")
    if args.report:
        out = _write_report(args.report, arch, result, net.name, costs, args.io_bits_per_cycle)
        print(f"wrote {out}/report.md, report.json and figures")
    return 0


def demo_onnx(args):
    """``rowstat demo --onnx``: classify digits test images on the RTL, print the accuracy and
    the per-layer table, and check the RTL's logits against the model engine's."""
    import numpy as np
    from ..net.digits import digits_model_path, digits_split
    if args.images < 1:
        raise RowstatError(f"bad value for --images: {args.images}; allowed: an integer >= 1")
    if args.preset is None:
        args.preset = "tiny"
    if not args.onnx:
        args.onnx = str(digits_model_path())
    x_tr, _, x_te, y_te = digits_split()
    x, y = x_te[:args.images], y_te[:args.images]
    print(f"[1/3] {Path(args.onnx).name}: quantizing on {len(x_tr)} training images, "
          f"{args.images} test images on the {args.preset} preset (RTL in cocotb; the first "
          f"build takes minutes)", flush=True)
    args.costs, args.io_bits_per_cycle = None, None
    arch, net, qnet, result, _ = _run(args, x, x_tr, "rtl")
    from ..net.run import run_network
    ref = run_network(arch, qnet, x, "model", progress=False)
    from ..net.quantize import float_forward
    float_pred = float_forward(net, x).argmax(axis=1)
    pred = result.logits.argmax(axis=1)
    same = bool(np.array_equal(result.ints, ref.ints))
    print(f"[2/3] {'PASS' if same else 'FAIL'}: RTL logits {'equal' if same else 'DIFFER from'} "
          f"the model engine's ({int(np.count_nonzero(result.ints != ref.ints))} of "
          f"{result.ints.size} differ)")
    print(f"[3/3] accuracy {float((pred == y).mean()):.1%} on {len(y)} images (float model "
          f"{float((float_pred == y).mean()):.1%}); predicted {pred.tolist()}, labels "
          f"{y.tolist()}")
    for line in layer_table(result):
        print(line)
    return 0 if same else 1
