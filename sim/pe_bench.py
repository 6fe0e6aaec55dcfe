"""cocotb bench for the generated PE Verilog: random passes against the golden 1-D primitive.

Runs inside the simulator (rowstat.sim.runner.run_bench starts it). Arguments come as JSON:
``arch`` (the ArchConfig dict), ``seed``, ``cases``, ``idle`` and ``stall`` (probabilities of
holding an input's valid or the output's ready low in a cycle), ``max_F``, ``max_rows``.
"""

import random

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from ..gen.config import ArchConfig
from .bench import bench_args, start, write_report
from .pe_model import random_case

INPUTS = ("filt", "ifmap", "psum_in")


def _sig(dut, name):
    return getattr(dut, name)


async def run_case(dut, arch, case, rng, idle, stall):
    """Drive one pass; return (psum_out words, (macs, skipped), cycles from start to last psum)."""
    words = {"filt": case.filter_words(), "ifmap": case.ifmap_words(),
             "psum_in": case.psum_in_words()}
    widths = {"filt": arch.weight_width, "ifmap": arch.act_width, "psum_in": arch.psum_width}
    index = dict.fromkeys(INPUTS, 0)
    expected_n = case.n_rows * case.F * case.p
    out = []
    dut.cfg.value = case.config(arch)
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    cycles = 0
    valid = {}
    while len(out) < expected_n:
        # Set this cycle's inputs ...
        for name in INPUTS:
            i = index[name]
            valid[name] = i < len(words[name]) and rng.random() >= idle
            _sig(dut, f"{name}__valid").value = int(valid[name])
            if valid[name]:
                _sig(dut, f"{name}__payload").value = words[name][i] & ((1 << widths[name]) - 1)
        ready = rng.random() >= stall
        dut.psum_out__ready.value = int(ready)
        # ... see what transfers at the coming edge ...
        await ReadOnly()
        for name in INPUTS:
            if valid[name] and _sig(dut, f"{name}__ready").value:
                index[name] += 1
        if ready and dut.psum_out__valid.value:
            out.append(dut.psum_out__payload.value.to_signed())
        await RisingEdge(dut.clk)
        cycles += 1
        if cycles > 50 * (case.p * case.q * case.S * case.F * case.n_rows + 100):
            raise AssertionError(f"PE hung: {len(out)} of {expected_n} psums after {cycles} cycles")
    for name in INPUTS:
        _sig(dut, f"{name}__valid").value = 0
    dut.psum_out__ready.value = 0
    while True:
        await ReadOnly()
        if not dut.busy.value:
            break
        await RisingEdge(dut.clk)
    counts = (int(dut.macs.value), int(dut.skipped.value))
    await RisingEdge(dut.clk)
    for name in INPUTS:
        assert index[name] == len(words[name]), f"{name}: {index[name]} of {len(words[name])} taken"
    return out, counts, cycles


@cocotb.test()
async def pe_random(dut):
    """Random passes (p, q, S, F, stride, rows, psum input, zeros) with back-pressure."""
    args = bench_args()
    arch = ArchConfig(**args["arch"])
    seed = args.get("seed", 0)
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    await start(dut, {"start": 0, "psum_out__ready": 0,
                      **{f"{name}__valid": 0 for name in INPUTS}})
    report = {"cases": 0, "psums_checked": 0, "macs": 0, "macs_skipped": 0, "cycles": 0,
              "ideal_cycles": 0, "failures": [], "shapes": []}
    for n in range(args.get("cases", 20)):
        case = random_case(arch, nprng, max_F=args.get("max_F", 12),
                           max_rows=args.get("max_rows", 3))
        out, counts, cycles = await run_case(dut, arch, case, rng, args.get("idle", 0.0),
                                             args.get("stall", 0.0))
        # ``corrupt`` shifts one expected word: the harness's own check that a wrong answer fails.
        expected = case.expected(arch.psum_width)
        if args.get("corrupt") and n == 0:
            expected[0] += 1
        shape = dict(p=case.p, q=case.q, S=case.S, F=case.F, U=case.U, rows=case.n_rows,
                     psum_in=case.psum_in is not None, cycles=cycles)
        report["cases"] += 1
        report["psums_checked"] += len(out)
        report["macs"] += counts[0]
        report["macs_skipped"] += counts[1]
        report["cycles"] += cycles
        report["ideal_cycles"] += case.p * case.q * case.S * case.F * case.n_rows
        report["shapes"].append(shape)
        if out != expected or counts != case.macs():
            bad = next((i for i, (a, b) in enumerate(zip(out, expected)) if a != b), None)
            report["failures"].append({"case": n, "shape": shape, "first_bad_word": bad,
                                       "counts": counts, "expected_counts": case.macs()})
    write_report(report)
    assert not report["failures"], f"{len(report['failures'])} cases differ from the golden " \
                                   f"model, first: {report['failures'][0]}"
