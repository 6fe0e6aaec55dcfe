"""Loader: moves data beats from the input stream into on-chip storage (LOAD commands).

One entry per beat, in the beat's low bits: GLB words to the ifmap space or the filter buffer,
bias values to the bias table, words to the array's ID chain, entries to the tag tables and
the chain table (rowstat.gen.program.Target).
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..gen.program import Target, load_layout
from .glb import WritePort

__all__ = ["Loader"]


class Loader(wiring.Component):
    """Attributes
    ----------
    cmd : In(stream of load_layout)
    busy : Out(1)
    data : In(stream of dram_width)
    ifmap, filt, bias, ifmap_tags, filt_tags, psum_tags, chains : Out(WritePort)
    ids : Out(stream of id_width)
        Words for the array's ID chain (held while the array runs a pass).
    beat : Out(1)
        Strobe per data beat taken.
    """

    def __init__(self, arch, *, widths):
        """``widths``: dict target name -> (addr_width, data_width) of each write port, and
        ``ids`` -> word width."""
        self._arch = arch
        members = {
            "cmd": In(stream.Signature(load_layout(arch))),
            "busy": Out(1),
            "data": In(stream.Signature(arch.dram_width)),
            "ids": Out(stream.Signature(widths["ids"])),
            "beat": Out(1),
        }
        for name in ("ifmap", "filt", "bias", "ifmap_tags", "filt_tags", "psum_tags", "chains"):
            members[name] = Out(WritePort(*widths[name]))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        target = Signal(4)
        addr = Signal(24)
        left = Signal(len(self.cmd.payload.count))
        active = left != 0
        m.d.comb += [self.cmd.ready.eq(~active), self.busy.eq(active)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [target.eq(self.cmd.payload.target), addr.eq(self.cmd.payload.addr),
                         left.eq(self.cmd.payload.count)]

        to_ids = target == Target.IDS
        m.d.comb += [
            self.ids.payload.eq(self.data.payload),
            self.ids.valid.eq(active & to_ids & self.data.valid),
            self.data.ready.eq(active & (~to_ids | self.ids.ready)),
        ]
        take = self.data.valid & self.data.ready
        m.d.comb += self.beat.eq(take)
        ports = {Target.IFMAP: self.ifmap, Target.FILTER: self.filt, Target.BIAS: self.bias,
                 Target.IFMAP_TAGS: self.ifmap_tags, Target.FILTER_TAGS: self.filt_tags,
                 Target.PSUM_TAGS: self.psum_tags, Target.CHAINS: self.chains}
        for code, port in ports.items():
            m.d.comb += [port.addr.eq(addr), port.data.eq(self.data.payload),
                         port.en.eq(take & (target == code))]
        with m.If(take):
            m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
        return m
