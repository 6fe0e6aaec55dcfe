"""What the cocotb benches share. They run inside the simulator (rowstat.sim.runner.run_bench
starts them), take their arguments as JSON from ``ROWSTAT_BENCH_ARGS``, write their report as
JSON to ``ROWSTAT_BENCH_REPORT`` and, for long runs, their progress to
``ROWSTAT_BENCH_PROGRESS``."""

import json
import os

from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

__all__ = ["CLOCK_NS", "bench_args", "start", "write_progress", "write_report"]

#: Clock period of every bench, in ns.
CLOCK_NS = 10


def bench_args():
    """The arguments run_bench handed to the bench (a dict)."""
    with open(os.environ["ROWSTAT_BENCH_ARGS"]) as fh:
        return json.load(fh)


async def start(dut, inputs, settle=1):
    """Start the clock, hold ``rst`` for 3 cycles with the ``inputs`` ({port name: value}: the
    valids low, the UART line idle ...) set, release it and wait ``settle`` cycles."""
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    for name, value in inputs.items():
        getattr(dut, name).value = value
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    for _ in range(settle):
        await RisingEdge(dut.clk)


def write_report(report):
    with open(os.environ["ROWSTAT_BENCH_REPORT"], "w") as fh:
        json.dump(report, fh)


def write_progress(done, total, unit, note):
    """Progress for the runner's bar (atomically: it reads the file while the bench runs)."""
    path = os.environ.get("ROWSTAT_BENCH_PROGRESS")
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"done": done, "total": total, "unit": unit, "note": note}, fh)
    os.replace(tmp, path)
