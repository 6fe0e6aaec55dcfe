"""The UART and the host link in Amaranth simulation, against plain-Python bit-level models."""

import random

import pytest
from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from conftest import simulate
from rowstat.fpga import protocol as P
from rowstat.fpga.hostlink import HostLink
from rowstat.fpga.uart import UARTRx, UARTTx, uart_divisor

# --- bit-level models of the wire ---------------------------------------------------------------


def uart_bits(byte, stop=1):
    """The line levels of one 8N1 frame: start, 8 data bits LSB first, stop."""
    return [0] + [(byte >> k) & 1 for k in range(8)] + [stop]


async def drive_byte(ctx, pin, byte, divisor, stop=1, skew=1.0):
    for level in uart_bits(byte, stop):
        ctx.set(pin, level)
        await ctx.tick().repeat(max(1, round(divisor * skew)))
    ctx.set(pin, 1)


async def read_byte(ctx, pin, divisor, timeout=100000):
    """Wait for a start bit on ``pin`` and sample the frame at bit centres."""
    for _ in range(timeout):
        if not ctx.get(pin):
            break
        await ctx.tick()
    else:
        raise AssertionError("no start bit")
    await ctx.tick().repeat(divisor // 2)
    assert ctx.get(pin) == 0, "start bit too short"
    value = 0
    for k in range(8):
        await ctx.tick().repeat(divisor)
        value |= ctx.get(pin) << k
    await ctx.tick().repeat(divisor)
    assert ctx.get(pin) == 1, "missing stop bit"
    return value


def run(dut, *benches, deadline=2_000_000):
    simulate(dut, *benches, period=1e-6, until=deadline * 1e-6)


# --- UART -------------------------------------------------------------------------------------


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_uart_rx_random_bytes(divisor):
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(40)]
    dut = UARTRx(divisor)
    got, errors = [], []

    async def sender(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        for b in data:
            # Up to 2% fast or slow, and random idle time between bytes.
            await drive_byte(ctx, dut.rx, b, divisor, skew=rng.uniform(0.98, 1.02))
            await ctx.tick().repeat(rng.randrange(1, 2 * divisor))

    async def receiver(ctx):
        ctx.set(dut.o.ready, 1)
        while len(got) < len(data):
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            if ctx.get(dut.framing_error) or ctx.get(dut.overrun):
                errors.append(len(got))

    run(dut, sender, receiver, deadline=40 * 12 * 3 * divisor + 1000)
    assert got == data and not errors


def test_uart_rx_framing_error_drops_the_byte():
    dut = UARTRx(8)
    got, framing = [], []

    async def sender(ctx):
        await ctx.tick().repeat(5)
        await drive_byte(ctx, dut.rx, 0x5A, 8, stop=0)
        await ctx.tick().repeat(40)         # line back to idle, then a good byte
        await drive_byte(ctx, dut.rx, 0xC3, 8)
        await ctx.tick().repeat(40)

    async def receiver(ctx):
        ctx.set(dut.o.ready, 1)
        for _ in range(400):
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            if ctx.get(dut.framing_error):
                framing.append(1)

    run(dut, sender, receiver, deadline=1000)
    assert got == [0xC3] and framing == [1]


def test_uart_rx_overrun_keeps_the_first_byte():
    dut = UARTRx(5)
    overruns = []

    async def sender(ctx):
        await ctx.tick().repeat(3)
        await drive_byte(ctx, dut.rx, 0x11, 5)
        await drive_byte(ctx, dut.rx, 0x22, 5)
        await ctx.tick().repeat(20)

    async def watcher(ctx):
        for _ in range(200):
            await ctx.tick()
            if ctx.get(dut.overrun):
                overruns.append(1)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 0x11

    run(dut, sender, watcher, deadline=400)
    assert overruns == [1]


@pytest.mark.parametrize("divisor", [4, 9])
def test_uart_tx_random_bytes_with_gaps(divisor):
    rng = random.Random(10 + divisor)
    data = [rng.randrange(256) for _ in range(30)]
    dut = UARTTx(divisor)
    got = []

    async def sender(ctx):
        for b in data:
            ctx.set(dut.i.payload, b)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            if rng.random() < 0.3:
                await ctx.tick().repeat(rng.randrange(1, 30))

    async def receiver(ctx):
        assert ctx.get(dut.tx) == 1
        while len(got) < len(data):
            got.append(await read_byte(ctx, dut.tx, divisor))

    run(dut, sender, receiver, deadline=30 * 11 * divisor + 30 * 30 + 1000)
    assert got == data


@pytest.mark.parametrize("clk, baud, divisor", [(12e6, 115200, 104), (12e6, 3e6, 4),
                                                (25e6, 115200, 217), (48e6, 1e6, 48)])
def test_uart_divisor(clk, baud, divisor):
    assert uart_divisor(clk, baud) == divisor


@pytest.mark.parametrize("clk, baud, words", [(12e6, 4e6, "too fast"), (12e6, 2.6e6, "off"),
                                              (12e6, 0, "positive"), (12e6, -5, "positive")])
def test_uart_divisor_refuses_bad_rates(clk, baud, words):
    with pytest.raises(ValueError, match=words):
        uart_divisor(clk, baud)


def test_uart_refuses_bad_divisors():
    for bad in (3, 0, 4.0, True, None):
        with pytest.raises(ValueError, match="divisor"):
            UARTRx(bad)
        with pytest.raises(ValueError, match="divisor"):
            UARTTx(bad)


# --- the host link ------------------------------------------------------------------------------


class _Loopback(wiring.Component):
    """A HostLink whose accelerator side is two FIFOs the testbench reads and writes."""

    def __init__(self, width, **kwargs):
        self.link = HostLink(4, width, bytes(range(1, 9)), **kwargs)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1),
                          "cmd": Out(stream.Signature(32)),
                          "data": Out(stream.Signature(width)),
                          "out": In(stream.Signature(width)), "reset": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = self.link
        wiring.connect(m, wiring.flipped(self.cmd), self.link.cmd)
        wiring.connect(m, wiring.flipped(self.data), self.link.data)
        wiring.connect(m, wiring.flipped(self.out), self.link.out)
        m.d.comb += [self.link.rx.eq(self.rx), self.tx.eq(self.link.tx),
                     self.reset.eq(self.link.reset)]
        return m


class _Arch:
    """Enough of an ArchConfig for the protocol helpers."""

    def __init__(self, width):
        self.dram_width = width

    def key(self):
        return bytes(range(1, 9)).hex()


@pytest.mark.parametrize("width", [16, 20, 48])
def test_hostlink_frames_credits_and_messages(width):
    """INFO, RESET, CMD and DATA frames with back-pressure on the accelerator side: every word
    and beat arrives once and in order, the host never overruns the FIFO (credits), and the
    output beats come back as O messages."""
    rng = random.Random(width)
    dut = _Loopback(width, fifo_depth=64, idle_timeout=2000)
    arch = _Arch(width)
    words = [rng.randrange(1 << 32) for _ in range(20)]
    beats = [rng.randrange(1 << width) for _ in range(25)]
    outs = [rng.randrange(1 << width) for _ in range(6)]
    nb = P.beat_bytes(width)
    stream_in = (P.frame(P.RESET) + P.frame(P.INFO) + P.frame(P.CMD, words[:7]) +
                 P.frame(P.DATA, beats[:20], nb) + P.frame(P.CMD, words[7:]) +
                 P.frame(P.DATA, beats[20:], nb))
    got_cmd, got_data, events, resets = [], [], [], []
    state = {"sent": 0, "acked": 0}

    async def host(ctx):
        decoder = P.Decoder(width)
        pos = 0
        while pos < len(stream_in):
            if state["sent"] - state["acked"] < 64:
                await drive_byte(ctx, dut.rx, stream_in[pos], 4)
                pos += 1
                state["sent"] += 1
            else:
                await ctx.tick()

    async def host_rx(ctx):
        decoder = P.Decoder(width)
        while True:
            byte = await read_byte(ctx, dut.tx, 4, timeout=10**6)
            for ev in decoder.feed(bytes([byte])):
                events.append(ev)
                if ev[0] == "ack":
                    state["acked"] += P.ACK_CHUNK

    async def accel(ctx):
        # Slow, bursty consumer: the FIFO fills and credits hold the host back.
        out_left = list(outs)
        for _ in range(60000):
            ready_c = rng.random() < 0.02
            ready_d = rng.random() < 0.02
            ctx.set(dut.cmd.ready, ready_c)
            ctx.set(dut.data.ready, ready_d)
            if out_left and len(got_data) > 10:
                ctx.set(dut.out.valid, 1)
                ctx.set(dut.out.payload, out_left[0])
            else:
                ctx.set(dut.out.valid, 0)
            _, _, cv, cp, dv, dp, ov, orr, rs = await ctx.tick().sample(
                dut.cmd.valid, dut.cmd.payload, dut.data.valid, dut.data.payload,
                dut.out.valid, dut.out.ready, dut.reset)
            if ready_c and cv:
                got_cmd.append(cp)
            if ready_d and dv:
                got_data.append(dp)
            if ov and orr:
                out_left.pop(0)
            if rs:
                resets.append(1)

    run(dut, host, host_rx, accel, deadline=60010)
    assert resets == [1]
    assert got_cmd == words
    assert got_data == beats
    infos = [v for k, v in events if k == "info"]
    assert infos == [P.parse_info(P.info_payload(arch, 64))]
    assert [v for k, v in events if k == "out"] == outs
    # The ACK count restarts after the RESET frame.
    assert sum(k == "ack" for k, _ in events) == (len(stream_in) - 3) // P.ACK_CHUNK
    # The O messages came after the INFO answer.
    assert events.index(("info", infos[0])) < events.index(("out", outs[0]))


def test_hostlink_counts_bad_opcodes_and_resyncs_after_a_timeout():
    dut = _Loopback(16, fifo_depth=64, idle_timeout=300)
    got = []

    async def host(ctx):
        await ctx.tick().repeat(3)
        for b in b"\x7f" + P.frame(P.CMD, [0x12345678])[:4]:   # bad op, then a cut frame
            await drive_byte(ctx, dut.rx, b, 4)
        await ctx.tick().repeat(1000)                         # parser times out
        for b in P.frame(P.CMD, [0xCAFEF00D]):
            await drive_byte(ctx, dut.rx, b, 4)
        await ctx.tick().repeat(200)
        assert ctx.get(dut.link.errors) == 1

    async def accel(ctx):
        ctx.set(dut.cmd.ready, 1)
        for _ in range(2400):
            _, _, v, p = await ctx.tick().sample(dut.cmd.valid, dut.cmd.payload)
            if v:
                got.append(p)

    run(dut, host, accel, deadline=2500)
    assert got == [0xCAFEF00D]


def test_hostlink_refuses_bad_parameters():
    with pytest.raises(ValueError, match="fifo_depth"):
        HostLink(8, 16, fifo_depth=100)
    with pytest.raises(ValueError, match="arch_key"):
        HostLink(8, 16, b"short")
    with pytest.raises(ValueError, match="divisor"):
        HostLink(3, 16)
