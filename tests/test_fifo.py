"""The FIFOs of rowstat.hw.fifo against Amaranth's own, cycle for cycle."""

import random

import pytest
from amaranth import Module
from amaranth.lib.fifo import SyncFIFO

from conftest import simulate
from rowstat.hw.fifo import RAM_FIFO_WIDTH, TwoEntryFIFO, small_fifo

PORTS = ("w_rdy", "r_rdy", "level", "w_level", "r_level")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_entry_fifo_matches_syncfifo_cycle_for_cycle(seed):
    """Random writes and reads into both FIFOs: every output, every cycle, and r_data
    whenever a word is readable."""
    rng = random.Random(seed)
    m = Module()
    m.submodules.ours = ours = TwoEntryFIFO(width=8)
    m.submodules.ref = ref = SyncFIFO(width=8, depth=2)
    checked = {"reads": 0, "full": 0}

    async def bench(ctx):
        for cycle in range(3000):
            w_en, r_en, data = rng.random() < 0.6, rng.random() < 0.5, rng.randrange(256)
            for f in (ours, ref):
                ctx.set(f.w_en, w_en)
                ctx.set(f.r_en, r_en)
                ctx.set(f.w_data, data)
            for port in PORTS:
                assert ctx.get(getattr(ours, port)) == ctx.get(getattr(ref, port)), (cycle, port)
            if ctx.get(ref.r_rdy):
                assert ctx.get(ours.r_data) == ctx.get(ref.r_data), cycle
                checked["reads"] += r_en
            checked["full"] += ctx.get(ref.level) == 2
            await ctx.tick()

    simulate(m, bench, period=1e-6)
    assert checked["reads"] > 500 and checked["full"] > 100     # both regimes were exercised


def test_small_fifo_is_a_syncfifo_for_other_depths_and_wide_words():
    two, f = small_fifo(8, 2), small_fifo(8, 3)
    narrow, wide = small_fifo(RAM_FIFO_WIDTH - 1, 2), small_fifo(RAM_FIFO_WIDTH, 2)
    for x in (two, f, narrow, wide):
        x._MustUse__silence = True                          # built only to be looked at
    assert isinstance(two, TwoEntryFIFO) and isinstance(narrow, TwoEntryFIFO)
    assert isinstance(f, SyncFIFO) and f.depth == 3 and f.width == 8
    assert isinstance(wide, SyncFIFO) and wide.depth == 2 and wide.width == RAM_FIFO_WIDTH
