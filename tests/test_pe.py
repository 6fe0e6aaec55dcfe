"""PE unit tests in Amaranth simulation, against the golden 1-D primitive."""

import random

import numpy as np
import pytest

from conftest import simulate
from rowstat.gen.config import PRESETS
from rowstat.hw.pe import PE
from rowstat.sim.pe_model import PECase, random_case



def run_pe(arch, cases, seed=0, idle=0.0, stall=0.0):
    """Run ``cases`` back to back on one PE; return (outputs per case, counters per case, cycles)."""
    dut = PE(arch)
    results = []

    async def bench(ctx):
        rng = random.Random(seed)
        for case in cases:
            ctx.set(dut.cfg.as_value(), case.config(arch))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            # Drive the three inputs and collect the output concurrently.
            expected_n = case.n_rows * case.F * case.p
            filt, ifm, pin = case.filter_words(), case.ifmap_words(), case.psum_in_words()
            it = {"filt": 0, "ifmap": 0, "psum_in": 0}
            words = {"filt": filt, "ifmap": ifm, "psum_in": pin}
            out = []
            cycles = 0
            feed_rng = random.Random(rng.random())
            while len(out) < expected_n:
                for name in words:
                    port = getattr(dut, name)
                    i = it[name]
                    if i < len(words[name]) and not (idle and feed_rng.random() < idle):
                        ctx.set(port.valid, 1)
                        ctx.set(port.payload, words[name][i])
                    else:
                        ctx.set(port.valid, 0)
                ready = not (stall and feed_rng.random() < stall)
                ctx.set(dut.psum_out.ready, ready)
                _, _, *sampled = await ctx.tick().sample(
                    dut.filt.valid, dut.filt.ready, dut.ifmap.valid, dut.ifmap.ready,
                    dut.psum_in.valid, dut.psum_in.ready, dut.psum_out.valid,
                    dut.psum_out.payload)
                cycles += 1
                assert cycles < 200_000, "PE hung"
                fv, fr, iv, ir, pv, pr, ov, op = sampled
                it["filt"] += fv and fr
                it["ifmap"] += iv and ir
                it["psum_in"] += pv and pr
                if ready and ov:
                    out.append(op)
            for name in words:
                ctx.set(getattr(dut, name).valid, 0)
            ctx.set(dut.psum_out.ready, 0)
            while ctx.get(dut.busy):
                await ctx.tick()
            assert it == {k: len(v) for k, v in words.items()}
            results.append((out, (ctx.get(dut.macs), ctx.get(dut.skipped)), cycles))

    simulate(dut, bench)
    return results


def check(arch, cases, **kw):
    for case, (out, counts, _) in zip(cases, run_pe(arch, cases, **kw)):
        assert out == case.expected(arch.psum_width)
        assert counts == case.macs()


def handmade(p, q, S, F, U, rows=1, psum=False, arch=PRESETS["tiny"]):
    rng = np.random.default_rng(p * 1000 + q * 100 + S * 10 + U)
    filters = rng.integers(-5, 6, (p, q, S))
    ifmaps = rng.integers(-5, 6, (rows, q, U * (F - 1) + S))
    pin = rng.integers(-100, 100, (rows, p, F)) if psum else None
    return PECase(filters, ifmaps, F, U, pin)


@pytest.mark.parametrize("shape", [
    (1, 1, 1, 1, 1), (1, 1, 3, 5, 1), (2, 1, 3, 5, 2), (3, 2, 2, 4, 1), (1, 1, 2, 3, 4),
    (4, 2, 1, 6, 3), (1, 8, 1, 3, 1), (1, 1, 8, 2, 1), (2, 2, 4, 4, 4),
])
def test_pe_handmade(shape):
    check(PRESETS["tiny"], [handmade(*shape, rows=2, psum=shape[0] % 2 == 0)])


@pytest.mark.parametrize("seed", range(6))
def test_pe_random_backpressure(seed):
    arch = PRESETS["tiny"]
    rng = np.random.default_rng(seed)
    cases = [random_case(arch, rng, max_F=6, max_rows=2) for _ in range(3)]
    check(arch, cases, seed=seed, idle=0.3, stall=0.3)


def test_pe_wraps_psums():
    arch = PRESETS["tiny"].replace(psum_width=16)
    filters = np.full((2, 2, 3), 127)
    ifmaps = np.full((1, 2, 3 + 4), 127)
    case = PECase(filters, ifmaps, 5, 1, None)
    assert max(abs(v) for v in case.expected(16)) < 2**15   # it really wrapped
    check(arch, [case])


def test_pe_full_rate():
    """In steady state the MAC issues every cycle: p*q*S*F*rows cycles plus a small fill."""
    arch = PRESETS["eyeriss"]
    case = handmade(4, 2, 3, 20, 1, rows=2, arch=arch)
    (_, _, cycles), = run_pe(arch, [case])
    ideal = 4 * 2 * 3 * 20 * 2
    assert cycles <= ideal + 20, (cycles, ideal)
