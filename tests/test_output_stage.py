"""The output stage in Amaranth simulation against the golden model's arithmetic."""

import numpy as np
import pytest
from amaranth.hdl import Const

from conftest import simulate
from rowstat.gen.config import PRESETS
from rowstat.gen.program import output_config_layout
from rowstat.hw.output_stage import OutputStage
from rowstat.sim.golden import output_stage, wrap


def run(arch, psums, biases, shift, relu, stall_seed=None):
    dut = OutputStage(arch)
    out = []
    cfg = Const.cast(output_config_layout(arch).const(
        {"shift_en": shift is not None, "shift": shift or 0, "relu": relu})).value
    rng = np.random.default_rng(stall_seed) if stall_seed is not None else None

    async def bench(ctx):
        ctx.set(dut.cfg.as_value(), cfg)
        i = 0
        while len(out) < len(psums):
            if i < len(psums):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload.psum, int(psums[i]))
                ctx.set(dut.i.payload.bias, int(biases[i]))
            else:
                ctx.set(dut.i.valid, 0)
            ready = rng is None or rng.random() < 0.6
            ctx.set(dut.o.ready, ready)
            _, _, iv, ir, ov, op = await ctx.tick().sample(dut.i.valid, dut.i.ready,
                                                         dut.o.valid, dut.o.payload)
            i += bool(iv and ir)
            if ready and ov:
                out.append(op)

    simulate(dut, bench)
    return out


def expected(arch, psums, biases, shift, relu):
    return [int(v) for v in output_stage(wrap(np.array(psums) + np.array(biases),
                                              arch.psum_width), arch.act_width, shift, relu)]


@pytest.mark.parametrize("shift", [None, 0, 1, 2, 7, 15, 31, 32])
@pytest.mark.parametrize("relu", [False, True])
def test_output_stage_matches_golden(shift, relu):
    arch = PRESETS["eyeriss"]
    rng = np.random.default_rng(100 + (shift or 0) + 50 * relu)
    P = arch.psum_width
    edges = [0, 1, -1, 2**(P - 1) - 1, -2**(P - 1), 2**15, -2**15 - 1, 2**(P - 2)]
    psums = edges + list(rng.integers(-2**(P - 1), 2**(P - 1), 40))
    biases = [0] * len(edges) + list(rng.integers(-2**(P - 1), 2**(P - 1), 40))
    biases[3] = 5       # max psum + bias wraps
    assert run(arch, psums, biases, shift, relu, stall_seed=shift) == \
        expected(arch, psums, biases, shift, relu)


def test_output_stage_rounds_half_up_and_clamps():
    arch = PRESETS["tiny"]      # 8-bit activations, 24-bit psums
    psums = [5, 6, 7, -5, -6, -7, 1000, -1000, 255, 256]
    out = run(arch, psums, [0] * len(psums), 2, False)
    # (x + 2) >> 2: 5 -> 1, 6 -> 2, 7 -> 2, -5 -> -1, -6 -> -1, -7 -> -2; clamp to [-128, 127]
    assert out == [1, 2, 2, -1, -1, -2, 127, -128, 64, 64]
