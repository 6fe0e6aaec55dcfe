"""cocotb bench for the generated PE array Verilog: the testbench plays the global buffer.

Runs inside the simulator (rowstat.sim.runner.run_bench / check_array start it). Arguments come
as JSON: ``arch`` (the ArchConfig dict), ``cases`` (spec dicts for
rowstat.sim.array_model.make_slice), ``seed``, ``idle`` and ``stall`` (probabilities of holding
an input's valid low or the GON output's ready low in a cycle), ``corrupt`` (shift one expected
word of the first case: the harness's check that a wrong answer fails) and ``gon_hold`` (keep
the GON output stalled for that many cycles at the start of every pass).

For each pass: shift the ID chain words in, set ``cfg`` and pulse ``start``, then drive the
three GIN inputs and collect the GON until every expected beat is out, wait for ``busy`` to
fall and read the counters. Outputs are compared per chain top with the model (golden), and
the end result of a multi-pass case with the golden convolution over all its channels.
"""

import random

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from ..gen.config import ArchConfig
from ..hw.array import decode_gon
from .array_model import make_slice
from .bench import bench_args, start, write_report

INPUTS = ("filt", "ifmap", "psum_in")
COUNTERS = ("cycles", "macs", "skipped", "idle", "stalls")


async def _load_ids(dut, words, rng, idle):
    i = 0
    while i < len(words):
        valid = rng.random() >= idle
        dut.ids__valid.value = int(valid)
        if valid:
            dut.ids__payload.value = words[i]
        await ReadOnly()
        if valid and dut.ids__ready.value:
            i += 1
        await RisingEdge(dut.clk)
    dut.ids__valid.value = 0


_loaded_ids = []


async def run_pass(dut, arch, ap, rng, idle, stall, gon_hold=0):
    """Run one ArrayPass; returns (outputs {(row, col): [psums]}, counters, cycles, sent,
    the cycle each input stream's last packet was taken). The ID chain is loaded only when
    its words differ from the last ones loaded (it keeps them across passes)."""
    words = ap.chain_words()
    if words != _loaded_ids:
        await _load_ids(dut, words, rng, idle)
        _loaded_ids[:] = words
    dut.cfg.value = ap.pe_config()
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    queues = ap.packet_values()
    idx = dict.fromkeys(INPUTS, 0)
    valid_h = {n: getattr(dut, f"{n}__valid") for n in INPUTS}
    payload_h = {n: getattr(dut, f"{n}__payload") for n in INPUTS}
    ready_h = {n: getattr(dut, f"{n}__ready") for n in INPUTS}
    out_valid, out_payload, out_ready = dut.psum_out__valid, dut.psum_out__payload, \
        dut.psum_out__ready
    driven = dict.fromkeys(INPUTS, None)     # payload index currently on the port
    outputs = {}
    expected_beats = ap.output_beats()
    beats = 0
    cycles = 0
    limit = 40 * (ap.mac_slots() + sum(len(q) for q in queues.values()) + expected_beats) + 2000
    valid = {}
    inputs_done = {n: (0 if not queues[n] else None) for n in INPUTS}
    while beats < expected_beats:
        for name in INPUTS:
            i = idx[name]
            valid[name] = i < len(queues[name]) and rng.random() >= idle
            valid_h[name].value = int(valid[name])
            if valid[name] and driven[name] != i:
                payload_h[name].value = queues[name][i]
                driven[name] = i
        ready = cycles >= gon_hold and rng.random() >= stall
        out_ready.value = int(ready)
        await ReadOnly()
        for name in INPUTS:
            if valid[name] and ready_h[name].value:
                idx[name] += 1
                if idx[name] == len(queues[name]):
                    inputs_done[name] = cycles
        if ready and out_valid.value:
            row, col, words = decode_gon(arch, int(out_payload.value))
            outputs.setdefault((row, col), []).extend(words)
            beats += 1
        await RisingEdge(dut.clk)
        cycles += 1
        if cycles > limit:
            raise AssertionError(f"array hung: inputs taken {idx} of "
                                 f"{ {n: len(q) for n, q in queues.items()} }, {beats} of "
                                 f"{expected_beats} output beats after {cycles} cycles")
    for name in INPUTS:
        valid_h[name].value = 0
    out_ready.value = 1
    extra = 0
    while True:
        await ReadOnly()
        if out_valid.value:
            extra += 1
        if not dut.busy.value:
            break
        await RisingEdge(dut.clk)
    counters = {name: int(getattr(dut, name).value) for name in COUNTERS}
    await RisingEdge(dut.clk)
    out_ready.value = 0
    if extra:
        raise AssertionError(f"{extra} unexpected output beats")
    sent = {n: (idx[n], len(q)) for n, q in queues.items()}
    return outputs, counters, cycles, sent, inputs_done


def _pass_report(arch, ap, name, k, outputs, counters, cycles, expected, sent):
    pes = arch.rows * arch.cols
    macs_expected = ap.macs()
    issued = counters["macs"] + counters["skipped"]
    rep = {
        "name": name, "pass": k,
        "shape": dict(R=ap.shape.R, e=ap.shape.e, U=ap.shape.U, r=ap.shape.r, t=ap.shape.t,
                      p=ap.p, q=ap.q, S=ap.S, F=ap.F, n=ap.n),
        "active_pes": ap.active, "pes": pes,
        "cycles": counters["cycles"], "bench_cycles": cycles,
        "mac_slots": ap.mac_slots(),
        **{k2: counters[k2] for k2 in ("macs", "skipped", "idle", "stalls")},
        "expected_macs": list(macs_expected),
        "util_active": issued / (ap.active * counters["cycles"]) if counters["cycles"] else 0,
        "util_array": issued / (pes * counters["cycles"]) if counters["cycles"] else 0,
        "psums_checked": sum(len(v) for v in expected.values()),
        "errors": [],
    }
    errors = rep["errors"]
    for pos, words in expected.items():
        got = outputs.get(pos, [])
        if got != words:
            bad = next((i for i, (a, b) in enumerate(zip(got, words)) if a != b),
                       min(len(got), len(words)))
            errors.append(f"chain top {pos}: {len(got)} of {len(words)} psums, first "
                          f"difference at {bad}")
    stray = set(outputs) - set(expected)
    if stray:
        errors.append(f"output from PEs that are no chain top: {sorted(stray)}")
    if (counters["macs"], counters["skipped"]) != tuple(macs_expected):
        errors.append(f"MAC counters {counters['macs']}, {counters['skipped']} != expected "
                      f"{macs_expected}")
    for n, (taken, total) in sent.items():
        if taken != total:
            errors.append(f"{n}: {taken} of {total} packets taken")
    c = counters["cycles"]
    # The counter runs from the cycle after start until the last psum has left; the bench
    # counts from start to the last beat collected.
    if not cycles - 4 <= c <= cycles + 8:
        errors.append(f"cycle counter {c} far from the bench's {cycles}")
    if counters["idle"] < (pes - ap.active) * c or counters["idle"] > pes * c - \
            ap.active * ap.mac_slots():
        errors.append(f"idle counter {counters['idle']} out of range")
    if pes * c - counters["idle"] < issued + counters["stalls"]:
        errors.append("busy PE cycles fewer than MACs + skipped + stalls")
    return rep


@cocotb.test()
async def array_cases(dut):
    """Passes from the given specs against the golden model, with idles and stalls."""
    args = bench_args()
    arch = ArchConfig(**args["arch"])
    rng = random.Random(args.get("seed", 0))
    idle, stall = args.get("idle", 0.0), args.get("stall", 0.0)
    await start(dut, {"start": 0, "ids__valid": 0, "psum_out__ready": 0,
                      **{f"{name}__valid": 0 for name in INPUTS}})
    report = {"passes": [], "cases": 0, "failures": [], "cycles": 0, "psums_checked": 0}
    for n_case, spec in enumerate(args["cases"]):
        slice_ = make_slice(arch, spec)
        name = spec.get("name") or f"case {n_case}"
        psum = None
        case_errors = []
        for k in range(slice_.passes):
            ap = slice_.pass_(k, psum)
            outputs, counters, cycles, sent, inputs_done = await run_pass(
                dut, arch, ap, rng, idle, stall, args.get("gon_hold", 0))
            expected = ap.expected()
            if args.get("corrupt") and n_case == 0 and k == 0:
                first = sorted(expected)[0]
                expected[first] = [expected[first][0] + 1] + expected[first][1:]
            rep = _pass_report(arch, ap, name, k, outputs, counters, cycles, expected, sent)
            rep["inputs_done"] = inputs_done
            report["passes"].append(rep)
            report["cycles"] += counters["cycles"]
            report["psums_checked"] += rep["psums_checked"]
            case_errors += [f"pass {k}: {e}" for e in rep["errors"]]
            psum = ap.decode(outputs)
        if not np.array_equal(psum, slice_.expected_final()):
            case_errors.append("end result differs from the golden convolution")
        report["cases"] += 1
        if case_errors:
            report["failures"].append({"case": name, "spec": spec, "errors": case_errors})
    write_report(report)
    assert not report["failures"], f"{len(report['failures'])} cases differ from the golden " \
                                   f"model, first: {report['failures'][0]}"
