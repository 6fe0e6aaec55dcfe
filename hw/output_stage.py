"""The output stage: bias, requantization (round, shift, clamp) and ReLU of finished psums.

Exactly the arithmetic of ``rowstat.sim.golden.output_stage`` after the bias add:

* ``psum = wrap(psum + bias)`` to psum_width bits (the psum's own two's-complement width);
* if ``shift_en``: ``out = clamp((psum + round) >> shift, act_min, act_max)`` with
  ``round = 2**(shift-1)`` for shift > 0, else 0, and ``>>`` the arithmetic (floor) shift;
* if ``relu``: ``out = max(out, 0)``.

Two pipeline stages (bias and rounding adds, then shift/clamp/ReLU), one psum per cycle,
valid/ready on both sides with a registered output.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..gen.program import output_config_layout

__all__ = ["OutputStage"]


class OutputStage(wiring.Component):
    """Bias, requantization and ReLU.

    Attributes
    ----------
    cfg : In(output_config_layout(arch))
        Per layer; change it only while the stage is empty.
    i : In(stream of {psum, bias})
        A finished psum and the bias of its filter.
    o : Out(stream of signed(psum_width))
        The output value (an activation when ``shift_en``, else the biased psum).
    """

    def __init__(self, arch):
        self._arch = arch
        P = arch.psum_width
        super().__init__({
            "cfg": In(output_config_layout(arch)),
            "i": In(stream.Signature(data.StructLayout({"psum": signed(P), "bias": signed(P)}))),
            "o": Out(stream.Signature(signed(P))),
        })

    def elaborate(self, platform):
        arch = self._arch
        P, A = arch.psum_width, arch.act_width
        m = Module()

        # Stage 1: bias add, wrapped to the psum width, and the rounding add beside it.
        v1 = Signal()
        s1 = Signal(signed(P))
        r1 = Signal(signed(P + 1))      # s1 + 2**(shift-1): one more bit, so it cannot wrap
        # Stage 2 (output register).
        v2 = Signal()
        s2 = Signal(signed(P))

        advance2 = ~v2 | self.o.ready
        advance1 = ~v1 | advance2
        m.d.comb += self.i.ready.eq(advance1)
        # The rounding add is done in stage 1, not before the shift in stage 2: stage 2 (shift,
        # clamp, ReLU) was the design's longest path on an iCE40.
        shift = self.cfg.shift
        rnd = ((Const(1, P + 2) << shift) >> 1)[:P + 1]   # 2**(shift-1), and 0 for shift 0
        biased = Signal(signed(P))
        m.d.comb += biased.eq(self.i.payload.psum + self.i.payload.bias)
        with m.If(advance1):
            m.d.sync += v1.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += [s1.eq(biased), r1.eq(biased + rnd)]

        # Shift, clamp, ReLU.
        shifted = Signal(signed(P + 1))
        m.d.comb += shifted.eq(r1 >> shift)
        lo, hi = -(1 << (A - 1)), (1 << (A - 1)) - 1
        clamped = Mux(shifted < lo, lo, Mux(shifted > hi, hi, shifted))
        value = Mux(self.cfg.shift_en, clamped, s1)
        result = Mux(self.cfg.relu & (value < 0), 0, value)
        with m.If(advance2):
            m.d.sync += v2.eq(v1)
            with m.If(v1):
                m.d.sync += s2.eq(result)
        m.d.comb += [self.o.valid.eq(v2), self.o.payload.eq(s2)]
        return m
