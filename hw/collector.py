"""GON collector: writes the psum beats leaving the array into the GLB's psum space.

Each beat comes from a chain's top PE, ``(row, col)``; the chain table (loaded per layer)
gives the chain's index c. Beat number i of chain c in a pass goes to psum-space word
``base + i * nchains + c``: the chains' psum streams interleaved beat by beat, the layout the
psum streamer reads back for the next channel block and the drain reads at the end. Instead
of a multiplier, each chain keeps the address of its next beat, starting at ``base + c``.
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..gen.program import COUNT, TAGS
from .glb import WritePort

__all__ = ["Collector"]


class Collector(wiring.Component):
    """Attributes
    ----------
    i : In(stream of the GON packet layout)
        Always ready.
    start : In(1)
        A pass begins: take ``base`` and ``nchains``, forget every chain's position.
    base : In(COUNT)
    nchains : In(TAGS)
    chains : In(WritePort)
        Loads the chain table: entry ``row * cols + col``.
    glb : Out(WritePort)
    """

    def __init__(self, arch, gon_layout, beat_bits, addr_width):
        self._arch = arch
        self._gon = gon_layout
        self._beat_bits = beat_bits
        n = arch.rows * arch.cols
        self._chain_bits = max(1, (n - 1).bit_length())
        super().__init__({
            "i": In(stream.Signature(gon_layout)),
            "start": In(1),
            "base": In(COUNT),
            "nchains": In(TAGS),
            "chains": In(WritePort(max(1, (n - 1).bit_length()), self._chain_bits)),
            "glb": Out(WritePort(addr_width, arch.glb_width)),
        })

    def elaborate(self, platform):
        m = Module()
        arch = self._arch
        n = arch.rows * arch.cols
        m.submodules.table = table = Memory(shape=self._chain_bits, depth=n, init=[])
        twr = table.write_port()
        trd = table.read_port(domain="comb")
        m.d.comb += [twr.en.eq(self.chains.en), twr.addr.eq(self.chains.addr),
                     twr.data.eq(self.chains.data)]

        base = Signal(COUNT)
        nchains = Signal(TAGS)
        next_addr = Array(Signal(COUNT, name=f"next_{c}") for c in range(n))
        seen = Signal(n)
        with m.If(self.start):
            m.d.sync += [base.eq(self.base), nchains.eq(self.nchains), seen.eq(0)]

        m.d.comb += self.i.ready.eq(1)
        pkt = self.i.payload
        chain = Signal(self._chain_bits)
        m.d.comb += [trd.addr.eq(pkt.row * arch.cols + pkt.col), chain.eq(trd.data)]
        addr = Signal(COUNT)
        m.d.comb += addr.eq(Mux(seen.bit_select(chain, 1), next_addr[chain], base + chain))
        wr_en = Signal()
        wr_addr = Signal(COUNT)
        wr_data = Signal(arch.glb_width)
        m.d.sync += wr_en.eq(self.i.valid)
        with m.If(self.i.valid):
            m.d.sync += [
                next_addr[chain].eq(addr + nchains),
                seen.bit_select(chain, 1).eq(1),
                wr_addr.eq(addr),
                wr_data.eq(pkt.data[:self._beat_bits]),
            ]
        m.d.comb += [self.glb.en.eq(wr_en), self.glb.addr.eq(wr_addr),
                     self.glb.data.eq(wr_data)]
        return m
