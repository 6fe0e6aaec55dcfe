"""The global buffer (GLB): banks of SRAM for ifmaps and psums, and a filter buffer.

``glb_banks`` banks of ``glb_bank_depth`` x ``glb_width`` bits hold ifmaps and psums. Each bank
is given wholly to one or the other per layer (REFERENCE.md): banks ``[0, split)`` form the
ifmap space, banks ``[split, glb_banks)`` the psum space, each addressed linearly from 0. Every
bank is a simple dual-port memory (one write port, one synchronous read port); which client
drives a bank's ports follows from its role, so there is no arbitration between the spaces.

* ifmap space: written by the loader, read by the ifmap streamer.
* psum space: written by the GON collector, read by the psum streamer and the drain. The two
  readers share the read ports: the psum streamer (it feeds a running pass) has priority and
  the drain waits.
* filter buffer: ``glb_filter_banks`` banks as one memory, written by the loader, read by the
  filter streamer; the loader can fill one half while a pass streams from the other.

All read ports have one cycle of latency: ``data`` is valid the cycle after ``en``.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["GLB", "ReadPort", "WritePort"]


def ReadPort(addr_width, data_width):
    """Signature of a GLB read port (driven by the client): ``en`` and ``addr`` in, ``data``
    back a cycle later; ``grant`` says the request was taken (always, except for the drain)."""
    return wiring.Signature({
        "en": Out(1), "addr": Out(addr_width), "data": In(data_width), "grant": In(1),
    })


def WritePort(addr_width, data_width):
    return wiring.Signature({"en": Out(1), "addr": Out(addr_width), "data": Out(data_width)})


class GLB(wiring.Component):
    """Global buffer.

    Attributes
    ----------
    split : In(range(glb_banks + 1))
        Banks given to ifmaps; the rest hold psums. Change only while the GLB is idle.
    ifmap_wr, psum_wr, filt_wr : In(WritePort)
    ifmap_rd, psum_rd, drain_rd, filt_rd : In(ReadPort)
    reads, writes : Out(2)
        Per-cycle counts of GLB accesses (ifmap/psum space, filter buffer excluded), for the
        counters.
    """

    def __init__(self, arch):
        self._arch = arch
        B, D, W = arch.glb_banks, arch.glb_bank_depth, arch.glb_width
        self._bank_bits = (D - 1).bit_length()
        space = (B * D - 1).bit_length()
        fspace = (arch.glb_filter_banks * D - 1).bit_length()
        super().__init__({
            "split": In(range(B + 1)),
            "ifmap_wr": In(WritePort(space, W)),
            "psum_wr": In(WritePort(space, W)),
            "filt_wr": In(WritePort(fspace, W)),
            "ifmap_rd": In(ReadPort(space, W)),
            "psum_rd": In(ReadPort(space, W)),
            "drain_rd": In(ReadPort(space, W)),
            "filt_rd": In(ReadPort(fspace, W)),
            "reads": Out(2),
            "writes": Out(2),
        })

    def elaborate(self, platform):
        arch = self._arch
        B, D, W = arch.glb_banks, arch.glb_bank_depth, arch.glb_width
        bb = self._bank_bits
        m = Module()

        def bank_of(addr):
            return addr[bb:]

        def offset_of(addr):
            return addr[:bb]

        # Psum readers: the psum streamer first, the drain when the streamer is not reading.
        p_en = self.psum_rd.en
        d_en = self.drain_rd.en & ~self.psum_rd.en
        p_addr = Mux(p_en, self.psum_rd.addr, self.drain_rd.addr)
        m.d.comb += [self.psum_rd.grant.eq(1), self.drain_rd.grant.eq(d_en),
                     self.ifmap_rd.grant.eq(1), self.filt_rd.grant.eq(1)]

        # Which bank each read came from, for the data mux a cycle later.
        i_bank = Signal(range(B + 1))
        p_bank = Signal(range(B + 1))
        p_to_drain = Signal()
        m.d.sync += [i_bank.eq(bank_of(self.ifmap_rd.addr)),
                     p_bank.eq(bank_of(p_addr) + self.split), p_to_drain.eq(d_en)]

        i_data = Signal(W)
        p_data = Signal(W)
        for b in range(B):
            mem = Memory(shape=W, depth=D, init=[])
            m.submodules[f"bank{b}"] = mem
            rd = mem.read_port()
            wr = mem.write_port()
            is_psum = b >= self.split
            psum_b = b - self.split          # this bank's index within the psum space
            m.d.comb += [
                rd.addr.eq(Mux(is_psum, offset_of(p_addr), offset_of(self.ifmap_rd.addr))),
                rd.en.eq(Mux(is_psum, (p_en | d_en) & (bank_of(p_addr) == psum_b),
                             self.ifmap_rd.en & (bank_of(self.ifmap_rd.addr) == b))),
                wr.addr.eq(Mux(is_psum, offset_of(self.psum_wr.addr),
                               offset_of(self.ifmap_wr.addr))),
                wr.data.eq(Mux(is_psum, self.psum_wr.data, self.ifmap_wr.data)),
                wr.en.eq(Mux(is_psum, self.psum_wr.en & (bank_of(self.psum_wr.addr) == psum_b),
                             self.ifmap_wr.en & (bank_of(self.ifmap_wr.addr) == b))),
            ]
            with m.If(i_bank == b):
                m.d.comb += i_data.eq(rd.data)
            with m.If(p_bank == b):
                m.d.comb += p_data.eq(rd.data)
        m.d.comb += [self.ifmap_rd.data.eq(i_data), self.psum_rd.data.eq(p_data),
                     self.drain_rd.data.eq(p_data)]

        fmem = Memory(shape=W, depth=arch.glb_filter_banks * D, init=[])
        m.submodules.filter_buffer = fmem
        frd = fmem.read_port()
        fwr = fmem.write_port()
        m.d.comb += [
            frd.addr.eq(self.filt_rd.addr), frd.en.eq(self.filt_rd.en),
            self.filt_rd.data.eq(frd.data),
            fwr.addr.eq(self.filt_wr.addr), fwr.data.eq(self.filt_wr.data),
            fwr.en.eq(self.filt_wr.en),
        ]
        m.d.comb += [
            self.reads.eq(self.ifmap_rd.en + (p_en | d_en)),
            self.writes.eq(self.ifmap_wr.en + self.psum_wr.en),
        ]
        return m
