"""``rowstat model`` and ``rowstat report``: the analytical model (:mod:`rowstat.sim.model`)
from the command line.

:func:`add_parser` adds both subcommands to the ``rowstat`` command line. ``model`` prints a
table (or, with ``--json``, one JSON object) of cycles, PE utilisation, accesses and energy per
layer; ``report`` writes the same as report.json and report.md with PNG figures: cycles per
layer, energy per layer stacked by level, and the PE occupancy of one pass of each layer.
"""

import argparse
import dataclasses
import io
import json
from pathlib import Path

from ..gen.errors import RowstatError
from .common import arch_from_args, arch_options

__all__ = ["add_parser", "cmd_model", "cmd_report", "model_from_args", "occupancy_grid"]

_EPILOG = """\
examples:
  rowstat model --network alexnet --batch 4
  rowstat model --preset tiny --layer L.json --json
  rowstat model --network vgg16 --costs costs.toml --objective energy
  rowstat report --network mobilenet_pw -o out/report-mobilenet

The cost table (--costs, JSON or TOML) gives the relative energy of one access of a
word_bits-bit word at each level; missing keys keep the defaults, the Eyeriss figures:
  dram = 200   glb = 6   noc = 2   spad = 1   mac = 1   word_bits = 16
"""


def _options(p):
    from ..gen.mapping import OBJECTIVES
    arch_options(p)
    src = p.add_argument_group("what to model").add_mutually_exclusive_group(required=True)
    src.add_argument("--layer", metavar="L.json", help="one layer (as for rowstat run)")
    src.add_argument("--network", metavar="NAME",
                     help="a built-in network: alexnet, vgg16, mobilenet_pw")
    src.add_argument("--onnx", metavar="MODEL.onnx",
                     help="the Conv and Gemm layers of an ONNX graph")
    g = p.add_argument_group("model")
    g.add_argument("--batch", type=int, default=None, metavar="N",
                   help="images per batch (default 1 for a network, the layer's N for --layer)")
    g.add_argument("--costs", metavar="FILE", default=None,
                   help="energy cost table, JSON or TOML (default: the Eyeriss relative costs)")
    g.add_argument("--objective", default="cycles", choices=OBJECTIVES,
                   help="what the mapper minimises (default cycles)")
    g.add_argument("--io-bits-per-cycle", type=float, default=None, metavar="B",
                   help="external link bits per core cycle (Eyeriss: 19.2; default unlimited)")


def add_parser(subparsers):
    """Add ``model`` and ``report`` to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "model", help="predict cycles, accesses and energy of a layer or network (analytical)",
        description="Predict, for the mapping the compiler chooses, the cycles, PE "
                    "utilisation, accesses at every level and energy of a layer or a "
                    "built-in network, without simulating.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_model)

    p = subparsers.add_parser(
        "report", help="write figures and tables of the model of a network",
        description="Model a layer or network and write DIR/report.md, DIR/report.json and "
                    "PNG figures: cycles per layer, energy per layer by level, PE occupancy.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _options(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=cmd_report)
    return p


# --- the model from the arguments ---------------------------------------------------------------

def model_from_args(args):
    """(arch, {name: LayerModel} in order, cost table, description) for parsed arguments."""
    from ..gen.layer import load_layer
    from ..gen.networks import network_layers
    from ..sim.model import DEFAULT_COSTS, load_costs, model_network
    arch = arch_from_args(args)
    if args.batch is not None and args.batch < 1:
        raise RowstatError(f"bad value for --batch: {args.batch}; allowed: an integer >= 1")
    io = args.io_bits_per_cycle
    if io is not None and not io > 0:
        raise RowstatError(f"bad value for --io-bits-per-cycle: {io}; allowed: a number > 0")
    costs = load_costs(args.costs) if args.costs else dict(DEFAULT_COSTS)
    if args.onnx is not None:
        layers, what = onnx_layers(args)
    elif args.network is not None:
        layers = network_layers(args.network, args.batch or 1)
        what = args.network
    else:
        layer = load_layer(args.layer)
        if args.batch is not None:
            layer = dataclasses.replace(layer, N=args.batch)
        layers = {Path(args.layer).stem: layer}
        what = str(args.layer)
    if args.onnx is not None:       # a layer that does not map is named
        from ..net.run import model_network_specs
        model_all = model_network_specs
    else:
        model_all = model_network
    models = model_all(arch, layers, io_bits_per_cycle=io, costs=costs,
                       objective=args.objective)
    return arch, models, costs, what


def _result(arch, models, costs, what, args):
    """The JSON object of ``model --json`` and report.json."""
    from ..sim.model import network_totals
    totals = network_totals(models)
    out = {"what": what, "arch": arch.to_dict(), "objective": args.objective,
           "io_bits_per_cycle": args.io_bits_per_cycle, "costs": costs}
    if args.layer is not None:
        out.update(models[0].to_dict())
    else:
        out.update({"batch": models[0].layer.N, "cycles": totals["cycles"],
                    "macs": totals["macs"], "pe_utilization": totals["pe_utilization"],
                    "accesses": totals["accesses"], "energy": totals["energy"],
                    "layers": [m.to_dict() for m in models]})
    return out


def _mapping_text(mp):
    return " ".join(str(getattr(mp, k)) for k in (*"nepqrtm", "order"))


def _megabytes(models):
    """{"dram", "glb"[, "chip_dram", "chip_glb"]} summed over ``models``; the chip's only if
    every layer has them (an AlexNet layer)."""
    per = [m.megabytes() for m in models]
    keys = [k for k in per[0] if all(k in p for p in per)]
    return {k: sum(p[k] for p in per) for k in keys}


def _mb_text(mb, kind):
    """'9.35 (5.0)': the layer's MB of ``kind`` (dram, glb) and the chip's, if known."""
    chip = mb.get(f"chip_{kind}")
    return f"{mb[kind]:.2f}" + ("" if chip is None else f" ({chip:.1f})")


def _table(arch, models):
    """Text lines of the human table."""
    from ..sim.model import ENERGY_LEVELS, network_totals
    head = (f"{'layer':<10} {'n e p q r t m order':<24} {'passes':>7} {'PEs':>4} {'cycles':>12} "
            f"{'util':>6} {'DRAM beats':>11} {'GLB acc.':>11} {'DRAM MB':>13} {'GLB MB':>13} "
            f"{'energy':>10}  " + " ".join(f"{lv:>5}" for lv in ENERGY_LEVELS))
    lines = [head, "-" * len(head)]

    def row(name, mapping, passes, pes, cycles, util, acc, mb, energy):
        tot = energy["total"] or 1.0
        return (f"{name:<10} {mapping:<24} {passes:>7} {pes:>4} {cycles:>12,} {util:>6.1%} "
                f"{acc['dram_read_words'] + acc['dram_write_words']:>11,} "
                f"{acc['glb_reads'] + acc['glb_writes']:>11,} {_mb_text(mb, 'dram'):>13} "
                f"{_mb_text(mb, 'glb'):>13} {energy['total']:>10.3g}  "
                + " ".join(f"{energy[lv] / tot:>5.0%}" for lv in ENERGY_LEVELS))
    for m in models:
        mp = m.mapping
        lines.append(row(m.name, _mapping_text(mp), mp.passes, mp.active_pes, m.cycles,
                         m.pe_utilization, m.accesses, m.megabytes(), m.energy))
    if len(models) > 1:
        t = network_totals(models)
        lines.append("-" * len(head))
        lines.append(row("total", "", sum(m.mapping.passes for m in models), "", t["cycles"],
                         t["pe_utilization"], t["accesses"], _megabytes(models), t["energy"]))
    lines.append("energy in relative units (one word_bits-bit MAC = 1); the level columns are "
                 "shares of the row's energy")
    lines.append(_MB_NOTE)
    return lines


_MB_NOTE = ("MB: 10^6 bytes moved (DRAM: beats in and out; GLB: words read and written, the "
            "filter buffer's included); in brackets the Eyeriss chip's for AlexNet (JSSC 2017, "
            "measured at batch 4, scaled to this batch)")


def cmd_model(args):
    arch, models, costs, what = model_from_args(args)
    if args.json:
        print(json.dumps(_result(arch, models, costs, what, args)))
        return 0
    print(f"{what} on {arch.rows} x {arch.cols} PEs, batch {models[0].layer.N}, objective "
          f"{args.objective}")
    for line in _table(arch, models):
        print(line)
    return 0


# --- the report ---------------------------------------------------------------------------------

def occupancy_grid(mapping):
    """The PE array in one (full-strip) pass of ``mapping``: a rows x cols list of -1 (idle)
    or the PE set copy ``rc * t + tc`` the PE works for."""
    pl = mapping.placement
    grid = [[-1] * pl.cols for _ in range(pl.rows)]
    for (row, col), pe in pl.pes.items():
        grid[row][col] = pe.rc * pl.shape.t + pe.tc
    return grid


def _save(fig, path):
    from ..gen.verilog import write_bytes_atomic
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    write_bytes_atomic(path, buf.getvalue())


def onnx_layers(args):
    """({name: LayerSpec}, description) of ``--onnx`` for ``rowstat model``/``report``."""
    from ..net import layer_specs, load
    net = load(args.onnx)
    return layer_specs(net, args.batch or 1), str(args.onnx)


def _figures(arch, models, out, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from ..sim.model import ENERGY_LEVELS
    names = [m.name for m in models]
    x = range(len(models))
    written = []

    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(models) + 2), 3.6))
    ax.bar(x, [m.cycles for m in models], color="tab:blue")
    for i, m in enumerate(models):
        ax.annotate(f"{m.pe_utilization:.0%}", (i, m.cycles), ha="center", va="bottom",
                    fontsize=7)
    ax.set_xticks(list(x), names, rotation=45, ha="right")
    ax.set_ylabel("cycles")
    ax.set_title(f"{title}: cycles per layer (labels: PE utilisation)")
    _save(fig, out / "cycles.png")
    plt.close(fig)
    written.append("cycles.png")

    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(models) + 2), 3.6))
    bottom = [0.0] * len(models)
    for level in ENERGY_LEVELS:
        values = [m.energy[level] for m in models]
        ax.bar(x, values, bottom=bottom, label=level)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(list(x), names, rotation=45, ha="right")
    ax.set_ylabel("energy (one MAC = 1)")
    ax.set_title(f"{title}: energy per layer by level")
    ax.legend(fontsize=8)
    _save(fig, out / "energy.png")
    plt.close(fig)
    written.append("energy.png")

    cols = min(4, len(models))
    nrows = -(-len(models) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.9 * nrows), squeeze=False)
    base = plt.get_cmap("tab20").colors
    for ax, m in zip([a for row in axes for a in row], models):
        grid = occupancy_grid(m.mapping)
        ncopy = max(1, m.mapping.r * m.mapping.t)
        cmap = ListedColormap([(0.92, 0.92, 0.92)] + [base[i % len(base)] for i in range(ncopy)])
        ax.imshow([[v + 1 for v in row] for row in grid], cmap=cmap, vmin=0, vmax=ncopy,
                  origin="lower", interpolation="nearest")
        # one cell per PE: white lines between them
        ax.set_xticks([c - 0.5 for c in range(1, arch.cols)], minor=True)
        ax.set_yticks([r - 0.5 for r in range(1, arch.rows)], minor=True)
        ax.grid(which="minor", color="white", linewidth=0.6)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        mp = m.mapping
        ax.set_title(f"{m.name}: R={m.layer.R} e={mp.e} r={mp.r} t={mp.t}\n"
                     f"{mp.active_pes}/{arch.rows * arch.cols} PEs active", fontsize=8)
    for ax in [a for row in axes for a in row][len(models):]:
        ax.axis("off")
    fig.suptitle(f"{title}: PE occupancy in one pass (colour: set copy rc*t+tc; grey: idle; "
                 f"row 0 at the bottom)", fontsize=9)
    _save(fig, out / "occupancy.png")
    plt.close(fig)
    written.append("occupancy.png")
    return written


def _markdown(arch, models, result, title, figures):
    from ..sim.model import ENERGY_LEVELS
    lines = [f"# {title} on {arch.rows} x {arch.cols} PEs", "",
             f"Batch {models[0].layer.N}, mapper objective {result['objective']}, external link "
             f"{result['io_bits_per_cycle'] or 'unlimited'} bits/cycle. Energy in relative units "
             f"(one {result['costs']['word_bits']}-bit MAC = 1; costs: "
             + ", ".join(f"{k} {result['costs'][k]:g}" for k in ENERGY_LEVELS) + ").", "",
             "| layer | n e p q r t m order | passes | cycles | PE util. | DRAM words | "
             "GLB accesses "
             "| DRAM MB | GLB MB | energy | " + " | ".join(ENERGY_LEVELS) + " |",
             "|---" * (10 + len(ENERGY_LEVELS)) + "|"]

    def row(name, mapping, passes, cycles, util, acc, mb, energy):
        return (f"| {name} | {mapping} | {passes} | {cycles:,} | {util:.1%} | "
                f"{acc['dram_read_words'] + acc['dram_write_words']:,} | "
                f"{acc['glb_reads'] + acc['glb_writes']:,} | {_mb_text(mb, 'dram')} | "
                f"{_mb_text(mb, 'glb')} | {energy['total']:.4g} | "
                + " | ".join(f"{energy[lv]:.3g}" for lv in ENERGY_LEVELS) + " |")
    for m in models:
        lines.append(row(m.name, _mapping_text(m.mapping), m.mapping.passes, m.cycles,
                         m.pe_utilization, m.accesses, m.megabytes(), m.energy))
    if len(models) > 1:
        lines.append(row("**total**", "", sum(m.mapping.passes for m in models),
                         result["cycles"], result["pe_utilization"], result["accesses"],
                         _megabytes(models), result["energy"]))
    lines += ["", "DRAM words are beats of dram_width bits in and out; GLB accesses are words "
              "of the ifmap and psum spaces (the hardware counters). " + _MB_NOTE + ".", ""]
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def cmd_report(args):
    from ..gen.verilog import write_atomic, write_json
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise RowstatError(f"bad value for -o: {str(out)!r}; allowed: a folder (this is a file)")
    arch, models, costs, what = model_from_args(args)
    out.mkdir(parents=True, exist_ok=True)
    result = _result(arch, models, costs, what, args)
    title = args.network or Path(args.onnx or args.layer).stem
    figures = _figures(arch, models, out, title)
    write_json(out / "report.json", result)
    write_atomic(out / "report.md", _markdown(arch, models, result, title, figures))
    print(f"wrote {out}/report.md, report.json and {', '.join(figures)}")
    return 0
