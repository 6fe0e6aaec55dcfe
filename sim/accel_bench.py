"""cocotb bench for the accelerator top: it plays DRAM and the host.

It feeds the program's command words and data beats, drains the output stream, and writes
the output beats and the cycle count to the report. With ``io_bits`` set, the data link is
throttled to that many bits per core cycle, shared by both directions (Eyeriss: a 64-bit
link at 60 MHz beside a 200 MHz core, 19.2 bits per cycle); otherwise both data streams move
a beat every cycle the hardware takes one.

Arguments (JSON): ``cmd`` (32-bit words), ``data_file`` (a .npy of data beats, object or
uint64), ``out_beats`` (how many output beats the program produces), ``io_bits``,
``max_cycles``, ``dram_width``, ``out_file`` (where to save the output beats, .npy).
"""

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from .bench import bench_args, start, write_progress, write_report


@cocotb.test()
async def accelerator_program(dut):
    args = bench_args()
    cmd = args["cmd"]
    data = np.load(args["data_file"], allow_pickle=True).tolist()
    n_out = args["out_beats"]
    width = args["dram_width"]
    rate = args.get("io_bits")
    max_cycles = args.get("max_cycles", 50_000_000)

    await start(dut, {"cmd__valid": 0, "data_in__valid": 0, "data_out__ready": 0})

    ci = di = 0
    out = []
    cycles = 0
    budget = 0.0
    out_pending = False
    first = last = None
    trace = [] if args.get("trace") else None      # cycle each command word was taken
    out_trace = []                                  # ... and each output beat left
    while len(out) < n_out:
        dut.cmd__valid.value = int(ci < len(cmd))
        if ci < len(cmd):
            dut.cmd__payload.value = cmd[ci]
        if rate is None:
            offer_out, offer_in = True, di < len(data)
        else:
            # One transfer per cycle on the shared link; output first when it is waiting.
            can = budget >= width
            offer_out = can and out_pending
            offer_in = can and not offer_out and di < len(data)
        dut.data_in__valid.value = int(offer_in)
        if offer_in:
            dut.data_in__payload.value = data[di]
        dut.data_out__ready.value = int(offer_out)
        await ReadOnly()
        if ci < len(cmd) and dut.cmd__ready.value:
            if first is None:
                first = cycles
            if trace is not None:
                trace.append(cycles)
            ci += 1
        if offer_in and dut.data_in__ready.value:
            di += 1
            budget -= width
        out_valid = bool(dut.data_out__valid.value)
        if offer_out and out_valid:
            out.append(int(dut.data_out__payload.value))
            budget -= width
            last = cycles
            if trace is not None:
                out_trace.append(cycles)
        out_pending = out_valid and not (offer_out and out_valid)
        if rate is None:
            out_pending = False
        await RisingEdge(dut.clk)
        cycles += 1
        if cycles % 20000 == 0:
            write_progress(di, len(data), "beats in",
                           f"{cycles} cycles, {len(out)}/{n_out} beats out")
        if rate is not None:
            budget = min(budget + rate, 4 * width)
        if cycles > max_cycles:
            raise AssertionError(f"timeout after {cycles} cycles: {ci}/{len(cmd)} command words, "
                                 f"{di}/{len(data)} data beats, {len(out)}/{n_out} output beats")
    np.save(args["out_file"], np.array(out, dtype=object), allow_pickle=True)
    report = {"cycles": (last - first + 1) if out else 0, "bench_cycles": cycles,
              "cmd_words": ci, "data_beats": di, "out_beats": len(out)}
    if trace is not None:
        report["cmd_cycles"] = [c - first for c in trace]
        report["out_cycles"] = [c - first for c in out_trace]
    write_report(report)
    assert di == len(data), f"the program left {len(data) - di} data beats unread"
