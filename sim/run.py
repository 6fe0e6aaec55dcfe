"""Run one conv layer on the generated accelerator RTL: compile, simulate, decode, report."""

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from ..gen.compiler import compile_layer, decode_output
from ..gen.errors import RowstatError
from .model import choose_mapping, model_layer
from .runner import build, run_bench

__all__ = ["run_layer", "stats_from", "model_check", "CHECKED"]

#: The measured quantities every run sets beside the model's prediction: the cycles and the
#: hardware counters the model counts exactly.
CHECKED = ("cycles", "dram_read_words", "dram_write_words", "glb_reads", "glb_writes", "passes",
           "macs")


def stats_from(arch, layer, program, counters, cycles):
    """The stats dict of a run: measured cycles, the hardware counters, the mapping."""
    macs = int(counters["macs"])
    pes = arch.rows * arch.cols
    mapping = program.mapping
    stats = {
        "cycles": int(cycles),
        "macs": macs,
        "macs_skipped_zero": int(counters["macs_skipped_zero"]),
        "layer_macs": layer.macs,
        # Eyeriss's measure: the layer's MACs over all PE cycles (padding and idle PEs count
        # against it, zero gating does not count for it).
        "pe_utilization": layer.macs / (pes * cycles) if cycles else 0.0,
        "passes": int(counters["passes"]),
        "mapping": mapping.to_dict() if hasattr(mapping, "to_dict")
        else dataclasses.asdict(mapping),
        "dram_read_words": int(counters["words_in"]),
        "dram_write_words": int(counters["words_out"]),
        "glb_reads": int(counters["glb_reads"]),
        "glb_writes": int(counters["glb_writes"]),
        "pe_busy_cycles": int(counters["pe_busy_cycles"]),
        "stall_cycles": int(counters["stall_cycles"]),
        "hw_cycles": int(counters["cycles"]),
    }
    return stats


def model_check(arch, layer, mapping, stats, *, io_bits_per_cycle=None, ifmap=None):
    """The model's prediction for the run in ``stats`` (same mapping, same link), set beside
    what was measured: {"predicted": {...}, "measured": {...}, "error": {...}}, the error
    relative to the measured value ((predicted - measured) / measured; 0 where both are 0)."""
    model = model_layer(arch, layer, mapping, io_bits_per_cycle=io_bits_per_cycle, ifmap=ifmap)
    predicted = {"cycles": model.cycles} | {k: model.accesses[k] for k in CHECKED[1:]}
    measured = {k: stats[k] for k in CHECKED}
    error = {k: ((predicted[k] - measured[k]) / measured[k] if measured[k]
                 else float(predicted[k] != 0)) for k in CHECKED}
    return {"io_bits_per_cycle": io_bits_per_cycle, "predicted": predicted,
            "measured": measured, "error": {k: round(v, 6) for k, v in error.items()}}


def run_layer(arch, layer, ifmap, weights, bias=None, *, sim=None, waves=None,
              io_bits_per_cycle=None, mapping=None, objective="cycles", progress=True,
              trace=False):
    """Run ``layer`` on the accelerator RTL in cocotb. Returns (ofmap (N, M, E, F) int64, stats).

    The testbench plays DRAM: it feeds the input stream and drains the output stream as fast
    as the hardware takes them, or throttled to ``io_bits_per_cycle`` bits per core cycle.
    The mapping (unless ``mapping`` is given) is :func:`rowstat.sim.model.choose_mapping`'s for
    ``objective`` and this link, the one ``rowstat model`` predicts for; stats["model"]
    holds the model's prediction for it beside the measured cycles and counters
    (:func:`model_check`).
    With ``trace``, stats["trace"] has the cycle (from the first command word) at which each
    command word was taken and each output beat left, for checking the timing model.
    """
    if io_bits_per_cycle is not None and not io_bits_per_cycle > 0:
        raise RowstatError(f"bad value for --io-bits-per-cycle: {io_bits_per_cycle}; "
                           f"allowed: a number > 0")
    if mapping is None:
        mapping = choose_mapping(arch, layer, objective, io_bits_per_cycle=io_bits_per_cycle)
    program = compile_layer(arch, layer, ifmap, weights, bias, mapping=mapping)
    built = build(arch, "accelerator", sim, waves=bool(waves), progress=progress)
    with tempfile.TemporaryDirectory(prefix="rowstat-layer-") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "data.npy", np.array(program.data, dtype=object), allow_pickle=True)
        args = {"cmd": list(program.cmd), "data_file": str(tmp / "data.npy"),
                "out_beats": program.out_beats, "dram_width": arch.dram_width,
                "trace": bool(trace),
                "io_bits": io_bits_per_cycle, "out_file": str(tmp / "out.npy"),
                "max_cycles": max(2_000_000, 40 * program.estimated_cycles())
                if hasattr(program, "estimated_cycles") else 50_000_000}
        if progress:
            print(f"simulating {len(program.cmd)} command words, {len(program.data)} data "
                  f"beats ...", flush=True)
        report = run_bench(built, "rowstat.sim.accel_bench", args, waves=waves,
                           progress=progress)
        beats = np.load(tmp / "out.npy", allow_pickle=True).tolist()
    ofmap, counters = decode_output(program, beats)
    stats = stats_from(arch, layer, program, counters, report["cycles"])
    stats["objective"] = objective
    stats["model"] = model_check(arch, layer, program.mapping, stats,
                                 io_bits_per_cycle=io_bits_per_cycle, ifmap=ifmap)
    stats["sim_seconds"] = report["sim_seconds"]
    stats["build_seconds"] = built.build_seconds
    if trace:
        stats["trace"] = {"cmd_cycles": report["cmd_cycles"], "out_cycles": report["out_cycles"]}
    if report.get("waves"):
        stats["waves"] = report["waves"]
    return ofmap, stats
