"""cocotb bench for the board top (``generate(arch, "board")``): it plays the host on the UART
pins, bit by bit, with the same :class:`rowstat.fpga.protocol.HostSession` as ``rowstat host``.

Arguments (JSON): ``arch`` (the parameters), ``cmd`` (command words), ``data_file`` (a .npy of
data beats), ``out_beats``, ``divisor`` (clocks per UART bit), ``max_cycles`` and ``out_file``
(where the output beats go, .npy). The report has the cycles and the bytes each way.
"""

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, Timer

from rowstat.fpga.protocol import HostSession
from rowstat.gen.config import ArchConfig
from rowstat.sim.bench import CLOCK_NS, bench_args, start, write_report


async def send_byte(pin, byte, bit_ns):
    for level in [0] + [(byte >> k) & 1 for k in range(8)] + [1]:
        pin.value = level
        await Timer(bit_ns, unit="ns")


async def receive_byte(pin, bit_ns):
    """Wait for a start bit and sample the byte at its bit centres."""
    await FallingEdge(pin)
    await Timer(bit_ns * 3 // 2, unit="ns")
    value = 0
    for k in range(8):
        value |= int(pin.value) << k
        await Timer(bit_ns, unit="ns")
    assert int(pin.value) == 1, "no stop bit from the board"
    return value


@cocotb.test()
async def board_program(dut):
    args = bench_args()
    arch = ArchConfig(**args["arch"])
    data = np.load(args["data_file"], allow_pickle=True).tolist()
    session = HostSession(arch, args["cmd"], data, args["out_beats"])
    bit_ns = args["divisor"] * CLOCK_NS

    await start(dut, {"rx": 1}, settle=3)        # the UART line idles high

    async def host_rx():
        while True:
            session.received(bytes([await receive_byte(dut.tx, bit_ns)]))

    cocotb.start_soon(host_rx())
    budget_ns = args["max_cycles"] * CLOCK_NS
    elapsed = 0
    while not session.done:
        chunk = session.to_send()
        for byte in chunk:
            await send_byte(dut.rx, byte, bit_ns)
        elapsed += len(chunk) * 10 * bit_ns
        if not chunk:
            await Timer(4 * bit_ns, unit="ns")
            elapsed += 4 * bit_ns
        if elapsed > budget_ns:
            raise AssertionError(
                f"timeout after {elapsed // CLOCK_NS} cycles: {session.sent} of "
                f"{session.bytes_total} bytes sent, {len(session.beats)} of "
                f"{session.out_beats} output beats back, INFO {session.info}")
    np.save(args["out_file"], np.array(session.beats, dtype=object), allow_pickle=True)
    write_report({"cycles": elapsed // CLOCK_NS, "bytes_sent": session.sent,
                  "bytes_received": session.bytes_received, "errors": session.info["errors"]})
