"""Amaranth-simulation unit tests of the accelerator's units: streamer, collector, drain,
each against a plain Python statement of its contract (rowstat.gen.program)."""

import random

import pytest

from conftest import simulate
from rowstat.gen.config import PRESETS
from rowstat.gen.program import BlockKind, drain_layout, pack, parse_header, streamer_layout
from rowstat.hw.array import (filter_beat_layout, filter_packet_layout, gon_packet_layout,
                              ifmap_beat_layout, ifmap_packet_layout, psum_beat_layout)
from rowstat.hw.collector import Collector
from rowstat.hw.drain import Drain
from rowstat.hw.streamer import Streamer
from rowstat.sim.golden import output_stage, wrap


@pytest.mark.parametrize("kind, seed", [("filter", 0), ("ifmap", 1), ("filter", 2)])
def test_streamer_sends_region_in_order(kind, seed):
    arch = PRESETS["eyeriss"] if seed != 2 else PRESETS["tiny"]
    if kind == "filter":
        packet, beat = filter_packet_layout(arch), filter_beat_layout(arch)
        word_w = arch.weight_width
    else:
        packet, beat = ifmap_packet_layout(arch), ifmap_beat_layout(arch)
        word_w = arch.act_width
    words_per_beat = beat["words"].shape.length
    beat_bits = words_per_beat * word_w
    per_word = arch.glb_width // beat_bits
    rng = random.Random(seed)
    ntags, chunks, last = rng.randint(1, 9), rng.randint(1, 6), rng.randrange(words_per_beat)
    tags = [(rng.randrange(1 << packet["row"].shape.width),
             rng.randrange(1 << packet["col"].shape.width)) for _ in range(ntags)]
    base = rng.randrange(50)
    n_beats = chunks * ntags
    memory = {base + k: rng.getrandbits(arch.glb_width) for k in range(-(-n_beats // per_word))}
    dut = Streamer(packet, beat, 14, arch.glb_width, 64)
    row_w = packet["row"].shape.width

    expected = []
    for b in range(n_beats):
        value = (memory[base + b // per_word] >> ((b % per_word) * beat_bits)) & ((1 << beat_bits) - 1)
        lst = last if b // ntags == chunks - 1 else words_per_beat - 1
        beat_value = value | (lst << beat["last"].offset)
        row, col = tags[b % ntags]
        expected.append((row, col, beat_value))

    got = []

    async def bench(ctx):
        for k, (row, col) in enumerate(tags):
            ctx.set(dut.tags.en, 1)
            ctx.set(dut.tags.addr, k)
            ctx.set(dut.tags.data, row | col << row_w)
            await ctx.tick()
        ctx.set(dut.tags.en, 0)
        ctx.set(dut.cmd.valid, 1)
        ctx.set(dut.cmd.payload.as_value(), pack(streamer_layout(arch), {
            "base": base, "chunks": chunks, "ntags": ntags, "last": last}))
        await ctx.tick()
        ctx.set(dut.cmd.valid, 0)
        read = None
        cycles = 0
        while len(got) < n_beats:
            ready = rng.random() < 0.7
            ctx.set(dut.o.ready, ready)
            # One cycle of read latency: answer last cycle's request.
            if read is not None:
                ctx.set(dut.glb.data, memory.get(read, 0))
            _, _, en, addr, valid, payload = await ctx.tick().sample(
                dut.glb.en, dut.glb.addr, dut.o.valid, dut.o.payload)
            read = addr if en else None
            if ready and valid:
                got.append((payload.row, payload.col, payload.data))
            cycles += 1
            assert cycles < 5000
        for _ in range(5):
            await ctx.tick()
        assert not ctx.get(dut.busy)

    simulate(dut, bench)
    assert got == expected


def test_collector_interleaves_chains():
    arch = PRESETS["tiny"]
    gon = gon_packet_layout(arch)
    beat = psum_beat_layout(arch)
    beat_bits = beat["words"].shape.length * arch.psum_width
    dut = Collector(arch, gon, beat_bits, 14)
    rng = random.Random(3)
    sources = rng.sample([(r, c) for r in range(arch.rows) for c in range(arch.cols)], 5)
    base, nchains = 17, len(sources)
    streams = {c: [rng.getrandbits(beat_bits) for _ in range(rng.randint(1, 6))]
               for c in range(nchains)}
    # Random interleaving that keeps each chain's order, as the GON does.
    order = [c for c in streams for _ in streams[c]]
    rng.shuffle(order)
    writes = {}

    async def bench(ctx):
        for chain, (row, col) in enumerate(sources):
            ctx.set(dut.chains.en, 1)
            ctx.set(dut.chains.addr, row * arch.cols + col)
            ctx.set(dut.chains.data, chain)
            await ctx.tick()
        ctx.set(dut.chains.en, 0)
        ctx.set(dut.base, base)
        ctx.set(dut.nchains, nchains)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        sent = {c: 0 for c in streams}
        for chain in order + [None] * 3:
            if chain is None:
                ctx.set(dut.i.valid, 0)
            else:
                row, col = sources[chain]
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload.as_value(), row | (col << gon["col"].offset)
                        | (streams[chain][sent[chain]] << gon["data"].offset))
                sent[chain] += 1
            _, _, en, addr, value = await ctx.tick().sample(dut.glb.en, dut.glb.addr,
                                                            dut.glb.data)
            if en:
                assert addr not in writes
                writes[addr] = value

    simulate(dut, bench)
    expected = {base + i * nchains + c: v for c, s in streams.items() for i, v in enumerate(s)}
    assert writes == expected


def drain_model(arch, memory, cmd, bias, shift, relu):
    """The drain contract in plain Python: output beats after the header."""
    bw = arch.psum_bus_width // arch.psum_width
    values = []
    for w in range(cmd["chunks"] * cmd["nchains"]):
        chunk, chain = divmod(w, cmd["nchains"])
        valid = cmd["last"] + 1 if chunk == cmd["chunks"] - 1 else bw
        for slot in range(valid):
            raw = (memory[cmd["base"] + w] >> (slot * arch.psum_width)) & ((1 << arch.psum_width) - 1)
            psum = int(wrap(raw, arch.psum_width))
            s = chunk * bw + slot
            k, tc = s % cmd["p"], chain // cmd["chains_per_tc"]
            b = bias[cmd["bias_base"] + tc * cmd["p"] + k]
            values.append(int(output_stage(wrap(psum + b, arch.psum_width), arch.act_width,
                                           shift, relu)))
    out_w = arch.act_width if shift is not None else arch.psum_width
    per = arch.dram_width // out_w
    beats = []
    for start in range(0, len(values), per):
        beat = 0
        for k, v in enumerate(values[start:start + per]):
            beat |= (v & ((1 << out_w) - 1)) << (k * out_w)
        beats.append(beat)
    return beats


@pytest.mark.parametrize("preset, shift, relu, seed", [
    ("tiny", 3, True, 0), ("tiny", None, False, 1), ("eyeriss", 8, False, 2),
    ("eyeriss", None, True, 3), ("ice40", 2, False, 4), ("ice40", None, True, 5)])
def test_drain_matches_its_contract(preset, shift, relu, seed):
    arch = PRESETS[preset]
    rng = random.Random(seed)
    bw = arch.psum_bus_width // arch.psum_width
    p = rng.randint(1, 5)
    cpt = rng.randint(1, min(3, arch.pes))          # a chain per PE at most
    cmd = {"base": rng.randrange(20), "chunks": rng.randint(1, 4),
           "nchains": cpt * rng.randint(1, min(3, arch.pes // cpt)),
           "last": rng.randrange(bw), "p": p, "chains_per_tc": cpt, "bias_base": rng.randrange(8)}
    memory = {cmd["base"] + w: rng.getrandbits(arch.glb_width)
              for w in range(cmd["chunks"] * cmd["nchains"])}
    bias = [rng.randrange(-2**20, 2**20) for _ in range(64)]
    expected = drain_model(arch, memory, cmd, bias, shift, relu)
    cmd["beats"] = len(expected)
    dut = Drain(arch, 14)
    from rowstat.gen.program import output_config_layout
    got = []

    async def bench(ctx):
        ctx.set(dut.out_cfg.as_value(), pack(output_config_layout(arch), {
            "shift_en": shift is not None, "shift": shift or 0, "relu": relu}))
        for k, b in enumerate(bias):
            ctx.set(dut.bias.en, 1)
            ctx.set(dut.bias.addr, k)
            ctx.set(dut.bias.data, b)
            await ctx.tick()
        ctx.set(dut.bias.en, 0)
        ctx.set(dut.cmd.valid, 1)
        ctx.set(dut.cmd.payload.as_value(), pack(drain_layout(arch), cmd))
        await ctx.tick()
        ctx.set(dut.cmd.valid, 0)
        read = None
        cycles = 0
        held = 0
        while len(got) < len(expected) + 1:
            ready = rng.random() < 0.6
            if len(got) == len(expected) and held < 8:
                ready, held = False, held + 1       # keep the last beat waiting a while
            ctx.set(dut.o.ready, ready)
            ctx.set(dut.glb.grant, rng.random() < 0.8)
            if read is not None:
                ctx.set(dut.glb.data, memory.get(read, 0))
            _, _, en, grant, addr, valid, payload, busy = await ctx.tick().sample(
                dut.glb.en, dut.glb.grant, dut.glb.addr, dut.o.valid, dut.o.payload, dut.busy)
            read = addr if en and grant else None
            if ready and valid:
                got.append(payload)
            # Idle means every beat has gone out: a COUNTERS dump may follow at once.
            assert busy or len(got) == len(expected) + 1, (cycles, len(got))
            cycles += 1
            assert cycles < 5000
        for _ in range(6):
            await ctx.tick()
        assert not ctx.get(dut.busy)

    simulate(dut, bench)
    assert parse_header(got[0]) == (BlockKind.OFMAP, len(expected))
    assert got[1:] == expected


@pytest.mark.parametrize("preset, shift", [("eyeriss", None), ("eyeriss", 8), ("tiny", None),
                                           ("ice40", 2)])
def test_drain_streams_one_psum_per_cycle(preset, shift):
    """With the GLB and the output always ready, the drain takes one psum per cycle: a block
    of V psums takes V cycles plus a fixed latency (the model in rowstat.sim.timing)."""
    from rowstat.hw.drain import DRAIN_LATENCY
    arch = PRESETS[preset]
    bw = arch.psum_bus_width // arch.psum_width
    nchains, cpt = (6, 3) if arch.pes >= 6 else (arch.pes, 1)     # a chain per PE at most
    cmd = {"base": 3, "chunks": 12, "nchains": nchains, "last": bw - 1, "p": 4,
           "chains_per_tc": cpt, "bias_base": 0}
    memory = {cmd["base"] + w: (w * 0x9E3779B97F4A7C15) % (1 << arch.glb_width)
              for w in range(cmd["chunks"] * cmd["nchains"])}
    expected = drain_model(arch, memory, cmd, [0] * 64, shift, False)
    cmd["beats"] = len(expected)
    values = cmd["chunks"] * cmd["nchains"] * bw
    dut = Drain(arch, 14)
    from rowstat.gen.program import output_config_layout
    took = {}

    async def bench(ctx):
        ctx.set(dut.out_cfg.as_value(), pack(output_config_layout(arch), {
            "shift_en": shift is not None, "shift": shift or 0, "relu": False}))
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.glb.grant, 1)
        ctx.set(dut.cmd.valid, 1)
        ctx.set(dut.cmd.payload.as_value(), pack(drain_layout(arch), cmd))
        await ctx.tick()
        ctx.set(dut.cmd.valid, 0)
        got, read, cycles = [], None, 0
        while ctx.get(dut.busy) or cycles == 0:
            if read is not None:
                ctx.set(dut.glb.data, memory.get(read, 0))
            _, _, en, addr, valid, payload = await ctx.tick().sample(
                dut.glb.en, dut.glb.addr, dut.o.valid, dut.o.payload)
            read = addr if en else None
            if valid:
                got.append(payload)
            cycles += 1
            assert cycles < 5000
        took["cycles"], took["got"] = cycles, got

    simulate(dut, bench)
    assert took["got"][1:] == expected
    assert took["cycles"] == values + DRAIN_LATENCY, (took["cycles"], values)


@pytest.mark.parametrize("preset, kind", [("eyeriss", "psum"), ("eyeriss", "filter"),
                                          ("tiny", "psum")])
def test_streamer_sends_a_beat_per_cycle(preset, kind):
    """With the network always ready, a region of B beats streams in B cycles plus a fixed
    latency (STREAMER_LATENCY, used by the timing model)."""
    from rowstat.hw.array import psum_packet_layout
    from rowstat.hw.streamer import STREAMER_LATENCY
    arch = PRESETS[preset]
    packet, beat = ((psum_packet_layout(arch), psum_beat_layout(arch)) if kind == "psum"
                    else (filter_packet_layout(arch), filter_beat_layout(arch)))
    ntags, chunks = 5, 7
    dut = Streamer(packet, beat, 14, arch.glb_width, 64)
    took = {}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.cmd.valid, 1)
        ctx.set(dut.cmd.payload.as_value(), pack(streamer_layout(arch), {
            "base": 0, "chunks": chunks, "ntags": ntags, "last": 0}))
        await ctx.tick()
        ctx.set(dut.cmd.valid, 0)
        beats = cycles = 0
        while ctx.get(dut.busy):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            beats += valid
            cycles += 1
            assert cycles < 5000
        took["beats"], took["cycles"] = beats, cycles

    simulate(dut, bench)
    assert took["beats"] == ntags * chunks
    assert took["cycles"] == ntags * chunks + STREAMER_LATENCY, took


def test_controller_counters_sum_their_strobes_and_read_zero_after_reset():
    """The counters (kept in a block RAM, hw.controller) dump the sums of their per-cycle
    increments; after a reset they read zero although the RAM keeps its words."""
    from amaranth.hdl import ResetInserter, Signal
    from rowstat.gen.program import COUNTERS, Op, counter_beats, encode_command
    from rowstat.hw.controller import Controller
    arch = PRESETS["tiny"]
    ctrl = Controller(arch)
    rst = Signal()
    rng = random.Random(5)
    got = []

    async def dump(ctx):
        for word in encode_command(arch, Op.COUNTERS, {"clear": 0}):
            ctx.set(ctrl.cmd.valid, 1)
            ctx.set(ctrl.cmd.payload, word)
            await ctx.tick().until(ctrl.cmd.ready)
        ctx.set(ctrl.cmd.valid, 0)
        ctx.set(ctrl.dump.ready, 1)
        beats = []
        while len(beats) < 1 + len(COUNTERS) * counter_beats(arch):
            _, _, valid, payload = await ctx.tick().sample(ctrl.dump.valid, ctrl.dump.payload)
            if valid:
                beats.append(payload)
        ctx.set(ctrl.dump.ready, 0)
        cb, w = counter_beats(arch), arch.dram_width
        got.append({name: sum(beats[1 + i * cb + j] << (w * j) for j in range(cb))
                    for i, name in enumerate(COUNTERS)})

    async def bench(ctx):
        sums = dict.fromkeys(COUNTERS, 0)
        tick = ctrl.array_tick
        for _ in range(200):
            inc = {"glb_reads": rng.randrange(4), "glb_writes": rng.randrange(4),
                   "words_in": rng.randrange(2), "words_out": rng.randrange(2)}
            active = rng.randrange(2)
            counts = {k: rng.randrange(arch.pes + 1) * active
                      for k in ("macs", "skipped", "idle", "stalls")}
            for k, v in inc.items():
                ctx.set(getattr(ctrl, k), v)
            ctx.set(tick.active, active)
            for k, v in counts.items():
                ctx.set(tick[k], v)
            await ctx.tick()
            for k, v in inc.items():
                sums[k] += v
            sums["macs"] += counts["macs"]
            sums["macs_skipped_zero"] += counts["skipped"]
            sums["pe_idle_cycles"] += counts["idle"]
            sums["stall_cycles"] += counts["stalls"]
            sums["pe_busy_cycles"] += arch.pes * active - counts["idle"]
        for k in ("glb_reads", "glb_writes", "words_in", "words_out"):
            ctx.set(getattr(ctrl, k), 0)
        for k in ("active", "macs", "skipped", "idle", "stalls"):
            ctx.set(tick[k], 0)
        await dump(ctx)
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        await dump(ctx)
        got.append(sums)

    simulate(ResetInserter(rst)(ctrl), bench)
    before, after, sums = got
    assert {k: before[k] for k in sums if k != "cycles"} == \
        {k: v for k, v in sums.items() if k != "cycles"}
    # Only the COUNTERS command's own cycles count as busy, before its dump starts.
    assert 0 < before["cycles"] < 10 and 0 < after["cycles"] < 10
    assert {k: v for k, v in after.items() if k != "cycles"} == \
        {k: 0 for k in sums if k != "cycles"}
