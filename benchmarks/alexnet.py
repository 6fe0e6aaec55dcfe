"""AlexNet CONV1-5 on the eyeriss preset, on the generated RTL, beside the chip's figures.

    .venv/bin/python benchmarks/alexnet.py [--batch 4] [--io-bits-per-cycle 19.2]
        [--layers 1,2,3,4,5] [--preset eyeriss] [--set key=value ...]
        [--out docs/results/alexnet]

The array must keep the chip's 12 x 14 PEs (utilisation is counted over 168 PEs, as the
chip's); other parameters may change (``--preset eyeriss_wide``, ``--set``).

Each layer runs at its real shape (grouped as in the paper) with random data (seeded, 30%
zeros in the ifmaps), checked bit for bit against the golden model. Writes a markdown table,
a CSV and a JSON with cycles, PE utilisation, DRAM and GLB accesses per layer, the analytical
model's prediction for the same mapping (rowstat.sim.model) and the chip's published numbers
(JSSC 2017, batch 4) beside them. The files are rewritten after every layer, so a long run
that is stopped keeps the layers it finished.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from rowstat.gen.config import load_arch
from rowstat.gen.errors import RowstatError
from rowstat.gen.layer import LayerSpec
from rowstat.gen.mapping import map_layer
from rowstat.gen.networks import ALEXNET, EYERISS_ALEXNET_BATCH, EYERISS_ALEXNET_RESULTS
from rowstat.gen.verilog import write_atomic
from rowstat.sim.golden import golden_layer
from rowstat.sim.model import chip_megabytes, choose_mapping, data_megabytes, model_layer
from rowstat.sim.run import run_layer



def _layer_numbers(text):
    numbers = []
    for item in text.split(","):
        item = item.strip().upper().removeprefix("CONV")
        if item not in {"1", "2", "3", "4", "5"}:
            raise argparse.ArgumentTypeError(
                f"bad layer {item!r} in {text!r}; allowed: 1-5 (or CONV1-CONV5), comma-separated")
        numbers.append(int(item))
    return numbers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--io-bits-per-cycle", type=float, default=19.2)
    parser.add_argument("--layers", default="1,2,3,4,5", type=_layer_numbers,
                        help="comma-separated layer numbers (1-5; CONV3 also works)")
    parser.add_argument("--preset", default="eyeriss")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override one parameter (repeatable)")
    parser.add_argument("--out", default="docs/results/alexnet")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other layers of an earlier run in OUT")
    parser.add_argument("--remodel", action="store_true",
                        help="only recompute the model's columns of the run in OUT (same "
                             "mappings, no simulation), after a change to the model")
    args = parser.parse_args(argv)
    try:
        arch = load_arch(args.preset, overrides=args.overrides)
    except RowstatError as exc:
        parser.exit(2, f"alexnet.py: {exc}\n")
    if (arch.rows, arch.cols) != (12, 14):
        parser.exit(2, f"alexnet.py: bad array {arch.rows} x {arch.cols}; allowed: the chip's "
                       "12 x 14 (rows=12, cols=14)\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.remodel:
        rows = json.loads((out / "alexnet.json").read_text())["layers"]
        for r in rows:
            layer = LayerSpec(N=args.batch, relu=True, shift=8, **ALEXNET[r["layer"]])
            # runs recorded before the loop order was a choice ran in order "m"
            mapping = map_layer(arch, layer, **({"order": "m"} | r["mapping"]))
            model = model_layer(arch, layer, mapping, io_bits_per_cycle=args.io_bits_per_cycle)
            r["model_cycles_M"] = model.cycles / 1e6
            r["model_error"] = (r["model_cycles_M"] - r["cycles_M"]) / r["cycles_M"]
        write_results(out, rows, args)
        print((out / "alexnet.md").read_text())
        return 0
    rows = []
    if args.merge and (out / "alexnet.json").exists():
        # keep the layers of an earlier run that this run does not redo
        redo = {f"CONV{i}" for i in args.layers}
        rows = [r for r in json.loads((out / "alexnet.json").read_text())["layers"]
                if r["layer"] not in redo]
    for index in args.layers:
        name = f"CONV{index}"
        layer = LayerSpec(N=args.batch, relu=True, shift=8, **ALEXNET[name])
        rng = np.random.default_rng(int(index))
        x = rng.integers(-2**15, 2**15, layer.ifmap_shape)
        x[rng.random(layer.ifmap_shape) < 0.3] = 0
        w = rng.integers(-2**7, 2**7, layer.weight_shape)
        b = rng.integers(-2**20, 2**20, (layer.M,))
        t0 = time.monotonic()
        print(f"{name}: {layer.macs / 1e6:.0f} M MACs ...", file=sys.stderr, flush=True)
        mapping = choose_mapping(arch, layer, io_bits_per_cycle=args.io_bits_per_cycle)
        model = model_layer(arch, layer, mapping, io_bits_per_cycle=args.io_bits_per_cycle,
                            ifmap=x)
        # the run maps the layer itself, for its link: the model's mapping
        ofmap, stats = run_layer(arch, layer, x, w, b, io_bits_per_cycle=args.io_bits_per_cycle)
        keys = ("order", *"nepqrtm")
        if {k: stats["mapping"][k] for k in keys} != {k: getattr(mapping, k) for k in keys}:
            raise SystemExit(f"alexnet.py: {name}: the run's mapping {stats['mapping']} is not "
                             f"the model's {mapping.summary()}")
        # what a mapping chosen without the link would cost on it (by the model)
        unlinked = model_layer(arch, layer, map_layer(arch, layer),
                               io_bits_per_cycle=args.io_bits_per_cycle)
        exact = bool(np.array_equal(ofmap, golden_layer(arch, layer, x, w, b)))
        wall = time.monotonic() - t0
        chip = EYERISS_ALEXNET_RESULTS[name]
        scale = args.batch / EYERISS_ALEXNET_BATCH
        # bytes from the model's counts, which equal the counters (model_counts_equal)
        ours, chips = data_megabytes(arch, model.accesses), chip_megabytes(name, layer)
        row = {
            "layer": name, "bit_exact": exact, "macs_M": layer.macs / 1e6,
            "cycles_M": stats["cycles"] / 1e6, "chip_cycles_M": chip["cycles_M"] * scale,
            "model_cycles_M": model.cycles / 1e6,
            "unlinked_model_cycles_M": unlinked.cycles / 1e6,
            "unlinked_dram_MB": data_megabytes(arch, unlinked.accesses)["dram"],
            "model_error": (model.cycles - stats["cycles"]) / stats["cycles"],
            "model_counts_equal": all(model.accesses[k] == stats[k] for k in (
                "dram_read_words", "dram_write_words", "glb_reads", "glb_writes", "passes",
                "macs", "macs_skipped_zero")),
            "pe_utilization": stats["pe_utilization"],
            "chip_utilization": chip["macs_M"] / (168 * chip["cycles_M"]),
            "active_pes": stats["mapping"].get("active_pes"),
            "chip_active_pes": chip["active_pes"],
            "dram_MB": ours["dram"], "chip_dram_MB": chips["dram"],
            "glb_MB": ours["glb"], "chip_glb_MB": chips["glb"],
            "passes": stats["passes"], "wall_s": wall,
            "mapping": {k: stats["mapping"][k] for k in keys},
        }
        rows.append(row)
        rows.sort(key=lambda r: r["layer"])
        print(f"  {stats['cycles']} cycles (model {model.cycles}), "
              f"{stats['pe_utilization']:.1%} utilisation, exact={exact}, {wall:.0f} s",
              file=sys.stderr, flush=True)
        write_results(out, rows, args)
    print((out / "alexnet.md").read_text())
    return 0 if all(r["bit_exact"] for r in rows) else 1


def write_results(out, rows, args):
    wall = sum(r["wall_s"] for r in rows)       # simulation wall clock, layer by layer
    total_cycles = sum(r["cycles_M"] for r in rows)
    total_macs = sum(r["macs_M"] for r in rows)
    summary = {"command": " ".join(["benchmarks/alexnet.py"] + sys.argv[1:]),
               "date": time.strftime("%Y-%m-%d"), "preset": args.preset,
               "overrides": args.overrides,
               "batch": args.batch, "io_bits_per_cycle": args.io_bits_per_cycle,
               "total_cycles_M": total_cycles,
               "overall_utilization": total_macs / (168 * total_cycles),
               "worst_model_error": max(abs(r["model_error"]) for r in rows), "wall_s": wall}
    write_atomic(out / "alexnet.json", json.dumps({"layers": rows, "summary": summary},
                                                  indent=2) + "\n")
    fields = [k for k in rows[0] if k != "mapping"]
    csv_lines = [",".join(fields)] + [",".join(str(r[k]) for k in fields) for r in rows]
    write_atomic(out / "alexnet.csv", "\n".join(csv_lines) + "\n")
    lines = [f"`.venv/bin/python {summary['command']}`, {summary['date']}", "",
             "| layer | exact | cycles (M) | model (M) | model error | chip (M) | util. | "
             "chip util. | active PEs (chip) | DRAM MB (chip) | GLB MB (chip) | "
             "n e p q r t m order |"
             " mapped without the link: model (M), DRAM MB |",
             "|" + "---|" * 13]
    for r in rows:
        mp = r["mapping"]
        lines.append(
            f"| {r['layer']} | {r['bit_exact']} | {r['cycles_M']:.3f} | {r['model_cycles_M']:.3f} "
            f"| {r['model_error']:+.2%} | {r['chip_cycles_M']:.2f} | "
            f"{r['pe_utilization']:.1%} | {r['chip_utilization']:.1%} | {r['active_pes']} "
            f"({r['chip_active_pes']}) | {r['dram_MB']:.1f} ({r['chip_dram_MB']:.1f}) | "
            f"{r['glb_MB']:.1f} ({r['chip_glb_MB']:.1f}) | "
            f"{' '.join(str(mp.get(k, 'm')) for k in (*'nepqrtm', 'order'))} | "
            + (f"{r['unlinked_model_cycles_M']:.3f}, {r['unlinked_dram_MB']:.1f} |"
               if "unlinked_model_cycles_M" in r else "- |"))
    arch_text = " ".join([args.preset] + [f"--set {o}" for o in args.overrides])
    lines.append(f"\n{arch_text}, batch {args.batch}, link {args.io_bits_per_cycle} bits/cycle: "
                 f"{total_cycles:.2f} M cycles, overall utilisation "
                 f"{summary['overall_utilization']:.1%}, worst model error "
                 f"{summary['worst_model_error']:.2%}, model access counts equal to the "
                 f"hardware counters: {all(r['model_counts_equal'] for r in rows)}; "
                 f"wall clock {wall:.0f} s (the layers' runs added up)")
    write_atomic(out / "alexnet.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
