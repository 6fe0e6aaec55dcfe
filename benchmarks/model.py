"""The analytical model (rowstat.sim.model): its run time on whole networks, and AlexNet CONV1-5
beside the published Eyeriss figures and the recorded RTL runs.

    .venv/bin/python benchmarks/model.py [--batch 4] [--io-bits-per-cycle 19.2]
        [--repeat 5] [--presets eyeriss,eyeriss_wide] [--out docs/results/model]

Writes OUT/timing.json (seconds per network: mapping + model, and the model alone with the
mappings given), OUT/alexnet_vs_chip.{json,md} (per layer: model cycles, utilisation, active
PEs, DRAM and GLB MB and mapping against the chip's, JSSC 2017, batch 4) and, for every RTL run
recorded by benchmarks/alexnet.py in docs/results/alexnet/*.json, the model with the
same mapping against it.

It also says what bounds each layer (OUT/alexnet_bounds.md): the cycles if every pass ran its
MACs back to back at the full rate of its active PEs (no filter fill, no waits, no drains in
between), and the cycles the link needs for the layer's DRAM beats. The layer can be no faster
than either, and no layer can beat ``active PEs / 168`` utilisation.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from rowstat.gen.compiler import plan_layer
from rowstat.gen.config import PRESETS, load_arch
from rowstat.gen.program import Op
from rowstat.gen.networks import (EYERISS_ALEXNET_BATCH, EYERISS_ALEXNET_MAPPING,
                                   EYERISS_ALEXNET_RESULTS, NETWORKS, network_layers)
from rowstat.sim.model import (chip_megabytes, choose_mapping, data_megabytes, model_layer,
                               model_network, network_totals)


def mb(words, bits):
    return words * bits / 8 / 1e6


def timing(arch, repeat, batch):
    out = {}
    for name in NETWORKS:
        layers = network_layers(name, batch)
        full, alone = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            models = model_network(arch, layers)
            full.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for m in models:
                model_layer(arch, m.layer, m.mapping)
            alone.append(time.perf_counter() - t0)
        out[name] = {"layers": len(layers), "batch": batch,
                     "seconds_with_mapping": statistics.median(full),
                     "seconds_model_only": statistics.median(alone),
                     "cycles": network_totals(models)["cycles"]}
        t = out[name]
        print(f"{name:>13}: {len(layers)} layers, map + model {t['seconds_with_mapping']:.3f} s, "
              f"model alone {1e3 * t['seconds_model_only']:.2f} ms", file=sys.stderr)
    return out


def versus_chip(arch, batch, io):
    rows = []
    layers = network_layers("alexnet", batch)
    scale = batch / EYERISS_ALEXNET_BATCH
    for name, layer in layers.items():
        m = model_layer(arch, layer, io_bits_per_cycle=io, name=name)
        a, mp = m.accesses, m.mapping
        chip = EYERISS_ALEXNET_RESULTS[name]
        ours, chips = data_megabytes(arch, a), chip_megabytes(name, layer)
        rows.append({
            "layer": name, "macs_M": layer.macs / 1e6,
            "cycles_M": m.cycles / 1e6, "chip_cycles_M": chip["cycles_M"] * scale,
            "pe_utilization": m.pe_utilization,
            "chip_utilization": chip["macs_M"] / (168 * chip["cycles_M"]),
            "active_pes": mp.active_pes, "chip_active_pes": chip["active_pes"],
            "dram_MB": ours["dram"], "chip_dram_MB": chips["dram"],
            "glb_MB": mb(a["glb_reads"] + a["glb_writes"], arch.glb_width),
            "glb_with_filters_MB": ours["glb"],
            "chip_glb_MB": chips["glb"],
            "energy": m.energy, "passes": mp.passes,
            "mapping": {k: getattr(mp, k) for k in (*"nepqrtm", "order")},
            "chip_mapping": dict(EYERISS_ALEXNET_MAPPING[name]),
        })
    return rows


def bounds(arch, batch, io):
    """Per layer: the model's cycles beside the pass-MAC floor and the link floor."""
    rows = []
    for name, layer in network_layers("alexnet", batch).items():
        m = model_layer(arch, layer, io_bits_per_cycle=io)
        mp = m.mapping
        steps = plan_layer(arch, layer, mp).steps
        pe = next(args for op, _, args in steps if op == Op.LAYER)["pe"]
        per_pass = pe["p"] * pe["q"] * pe["S"] * pe["F"] * pe["n_rows"]
        mac_floor = per_pass * sum(1 for op, _, _ in steps if op == Op.PASS)
        beats = m.accesses["dram_read_words"] + m.accesses["dram_write_words"]
        link_floor = beats * arch.dram_width / io
        rows.append({"layer": name, "macs_M": layer.macs / 1e6, "cycles_M": m.cycles / 1e6,
                     "active_pes": mp.active_pes, "mac_floor_M": mac_floor / 1e6,
                     "link_floor_M": link_floor / 1e6,
                     "bound_M": max(mac_floor, link_floor) / 1e6, "mapping": {k: getattr(mp, k)
                                                                   for k in "nepqrtm"}})
    return rows


def bounds_markdown(by_preset, batch, io):
    lines = [f"AlexNet CONV1-5, batch {batch}, link {io} bits/cycle: the model's cycles beside "
             "two floors. *Pass MACs*: every pass's MACs back to back at the full rate of its "
             "active PEs (no filter fill, no waits between passes). *Link*: the layer's DRAM "
             "beats at the link's rate. *Bound*: the larger of the two, per layer. Utilisation is "
             "MACs / (168 x cycles) at each.", "",
             "| preset | layer | cycles M (util.) | pass-MAC floor M (util.) | link floor M "
             "(util.) | bound M (util.) | active PEs (ceiling) | n e p q r t m |",
             "|" + "---|" * 8]
    for preset, rows in by_preset.items():
        for r in rows + [_total(rows)]:
            cells = [f"{r[k]:.2f} ({r['macs_M'] / (168 * r[k]):.1%})"
                     for k in ("cycles_M", "mac_floor_M", "link_floor_M", "bound_M")]
            mp = r.get("mapping")
            lines.append(
                f"| {preset} | {r['layer']} | {' | '.join(cells)} | "
                + (f"{r['active_pes']} ({r['active_pes'] / 168:.1%}) | "
                   f"{' '.join(str(mp[k]) for k in 'nepqrtm')} |" if mp else "| |"))
    return "\n".join(lines) + "\n"


def _total(rows):
    return {"layer": "total", **{k: sum(r[k] for r in rows)
                                 for k in ("macs_M", "cycles_M", "mac_floor_M", "link_floor_M",
                                           "bound_M")}}


def versus_rtl(results_dirs):
    """The model with the mapping of each recorded RTL run, against that run."""
    rows = []
    paths = [p for d in results_dirs for p in sorted(Path(d).glob("*.json"))]
    for path in paths:
        data = json.loads(path.read_text())
        batch, io = data["summary"]["batch"], data["summary"]["io_bits_per_cycle"]
        # runs from before --preset was recorded are of the eyeriss preset
        preset = data["summary"].get("preset", "eyeriss")
        arch = load_arch(preset, overrides=data["summary"].get("overrides", []))
        layers = network_layers("alexnet", batch)
        for run in data["layers"]:
            layer = layers[run["layer"]]
            # runs recorded before the loop order was a choice ran in order "m"
            mp = choose_mapping(arch, layer, io_bits_per_cycle=io,
                                **({"order": "m"} | run["mapping"]))
            m = model_layer(arch, layer, mp, io_bits_per_cycle=io)
            a = m.accesses
            rows.append({
                "run": f"{path.parent.name}/{path.name}", "preset": preset, "layer": run["layer"],
                "batch": batch,
                "rtl_cycles_M": run["cycles_M"], "model_cycles_M": m.cycles / 1e6,
                "cycle_error": m.cycles / 1e6 / run["cycles_M"] - 1,
                "rtl_dram_MB": run["dram_MB"],
                "model_dram_MB": mb(a["dram_read_words"] + a["dram_write_words"],
                                    arch.dram_width),
                "rtl_glb_MB": run["glb_MB"],
                "model_glb_MB": mb(a["glb_reads"] + a["glb_writes"], arch.glb_width),
                "passes": (run["passes"], a["passes"]),
            })
    return rows


def markdown(chip_rows, rtl_rows, batch, io, timings):
    """``chip_rows``: preset -> rows of :func:`versus_chip`."""
    lines = [f"AlexNet CONV1-5, batch {batch}, link {io} bits/cycle: the model "
             f"(rowstat.sim.model) against the chip (JSSC 2017, batch 4 figures scaled by "
             f"batch/4).", "",
             "| preset | layer | cycles M (chip) | util. (chip) | active PEs (chip) | "
             "DRAM MB (chip) | GLB MB, +filters (chip) | n e p q r t m (chip) |",
             "|" + "---|" * 8]
    for preset, rows in chip_rows.items():
        for r in rows:
            mp, cm = r["mapping"], r["chip_mapping"]
            lines.append(
                f"| {preset} | {r['layer']} | {r['cycles_M']:.2f} ({r['chip_cycles_M']:.2f}) | "
                f"{r['pe_utilization']:.1%} ({r['chip_utilization']:.1%}) | {r['active_pes']} "
                f"({r['chip_active_pes']}) | {r['dram_MB']:.2f} ({r['chip_dram_MB']:.2f}) | "
                f"{r['glb_MB']:.1f}, {r['glb_with_filters_MB']:.1f} ({r['chip_glb_MB']:.1f}) | "
                f"{' '.join(str(mp[k]) for k in 'nepqrtm')} "
                f"({' '.join(str(cm[k]) for k in 'nepqrtm')}) |")
        tot = {k: sum(r[k] for r in rows) for k in ("cycles_M", "chip_cycles_M", "dram_MB",
                                                    "chip_dram_MB", "glb_MB", "chip_glb_MB",
                                                    "macs_M")}
        lines.append(f"| {preset} | total | {tot['cycles_M']:.2f} ({tot['chip_cycles_M']:.2f}) | "
                     f"{tot['macs_M'] / (168 * tot['cycles_M']):.1%} (69%) | | "
                     f"{tot['dram_MB']:.2f} ({tot['chip_dram_MB']:.2f}) | {tot['glb_MB']:.1f} "
                     f"({tot['chip_glb_MB']:.1f}) | |")
    if rtl_rows:
        lines += ["", "The model with the mapping of a recorded RTL run (benchmarks/alexnet.py), "
                  "against that run:", "",
                  "| run (preset) | layer | cycles M RTL / model (error) | DRAM MB RTL / model | "
                  "GLB MB RTL / model | passes RTL / model |", "|" + "---|" * 6]
        for r in rtl_rows:
            lines.append(f"| {r['run']} ({r['preset']}) | {r['layer']} | {r['rtl_cycles_M']:.3f} / "
                         f"{r['model_cycles_M']:.3f} ({r['cycle_error']:+.1%}) | "
                         f"{r['rtl_dram_MB']:.6f} / {r['model_dram_MB']:.6f} | "
                         f"{r['rtl_glb_MB']:.6f} / {r['model_glb_MB']:.6f} | "
                         f"{r['passes'][0]} / {r['passes'][1]} |")
    lines += ["", "Model run time (eyeriss preset, batch 1; median):", "",
              "| network | layers | map + model (s) | model alone (ms) |", "|---|---|---|---|"]
    for name, t in timings.items():
        lines.append(f"| {name} | {t['layers']} | {t['seconds_with_mapping']:.3f} | "
                     f"{1e3 * t['seconds_model_only']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--io-bits-per-cycle", type=float, default=19.2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--presets", default="eyeriss,eyeriss_wide",
                        help="comma-separated presets (12 x 14) to set beside the chip")
    parser.add_argument("--rtl-results", default="docs/results/alexnet,"
                        "docs/results/alexnet_wide",
                        help="comma-separated folders of benchmarks/alexnet.py runs")
    parser.add_argument("--out", default="docs/results/model")
    args = parser.parse_args(argv)
    arch = PRESETS["eyeriss"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings = timing(arch, args.repeat, 1)
    presets = args.presets.split(",")
    chip_rows = {name: versus_chip(PRESETS[name], args.batch, args.io_bits_per_cycle)
                 for name in presets}
    rtl_rows = versus_rtl([d for d in args.rtl_results.split(",") if Path(d).is_dir()])
    (out / "timing.json").write_text(json.dumps(timings, indent=2) + "\n")
    (out / "alexnet_vs_chip.json").write_text(json.dumps(
        {"batch": args.batch, "io_bits_per_cycle": args.io_bits_per_cycle,
         "presets": chip_rows, "rtl": rtl_rows}, indent=2) + "\n")
    text = markdown(chip_rows, rtl_rows, args.batch, args.io_bits_per_cycle, timings)
    (out / "alexnet_vs_chip.md").write_text(text)
    print(text)
    by_preset = {name: bounds(PRESETS[name], args.batch, args.io_bits_per_cycle)
                 for name in presets}
    (out / "alexnet_bounds.json").write_text(json.dumps(
        {"batch": args.batch, "io_bits_per_cycle": args.io_bits_per_cycle,
         "presets": by_preset}, indent=2) + "\n")
    text = bounds_markdown(by_preset, args.batch, args.io_bits_per_cycle)
    (out / "alexnet_bounds.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
