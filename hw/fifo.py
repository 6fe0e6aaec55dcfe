"""FIFOs shaped for the iCE40's logic cells and block RAMs."""

from amaranth import *
from amaranth.lib import fifo

__all__ = ["BlockFIFO", "TwoEntryFIFO", "small_fifo", "RAM_FIFO_WIDTH"]


class BlockFIFO(fifo.SyncFIFOBuffered):
    """:class:`amaranth.lib.fifo.SyncFIFOBuffered` (same ports, same timing) with its storage
    marked for block RAM.

    Left to themselves, synthesis tools put a FIFO of a few entries in flip-flops; each of
    them is loaded from the shared write bus, so on an iCE40 it takes a logic cell of its
    own (it cannot pair with a LUT), and the read side needs a mux.
    """

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.submodules.storage.attrs["ram_style"] = "block"
        return m


class TwoEntryFIFO(Elaboratable, fifo.FIFOInterface):
    """A two-entry :class:`amaranth.lib.fifo.SyncFIFO`: the same ports and the same timing
    cycle for cycle (``w_rdy`` from the level alone, a word written is readable the next
    cycle), built as a head register (``r_data``) and a tail register behind it.

    A SyncFIFO of depth 2 is two words loaded from the write bus and a read mux: on an iCE40
    three logic cells per bit, as a flip-flop loaded straight from a bus with only an enable
    cannot pair with a LUT. Here the head is loaded through a mux (bus or tail), which pairs
    with it, and the read needs no mux: two cells per bit.
    """

    def __init__(self, *, width):
        super().__init__(width=width, depth=2)
        self.level = Signal(range(3))

    def elaborate(self, platform):
        m = Module()
        tail = Signal(self.width)
        do_w = Signal()
        do_r = Signal()
        m.d.comb += [
            self.w_rdy.eq(self.level != 2),
            self.r_rdy.eq(self.level != 0),
            self.w_level.eq(self.level),
            self.r_level.eq(self.level),
            do_w.eq(self.w_en & self.w_rdy),
            do_r.eq(self.r_en & self.r_rdy),
        ]
        m.d.sync += self.level.eq(self.level + do_w - do_r)
        # The tail matters only while two words are held; loading it on every write is harmless.
        with m.If(do_w):
            m.d.sync += tail.eq(self.w_data)
        with m.If(do_r & (self.level == 2)):
            m.d.sync += self.r_data.eq(tail)
        with m.Elif(do_w & ((self.level == 0) | do_r)):
            m.d.sync += self.r_data.eq(self.w_data)
        return m


#: Narrowest two-entry FIFO kept in a memory rather than in head and tail registers.
RAM_FIFO_WIDTH = 32


def small_fifo(width, depth):
    """A :class:`amaranth.lib.fifo.SyncFIFO` of ``width`` x ``depth``, as a
    :class:`TwoEntryFIFO` when ``depth`` is 2 and the words are narrower than
    :data:`RAM_FIFO_WIDTH` (same behaviour, fewer iCE40 cells).

    A wide two-entry FIFO stays a SyncFIFO: its storage is a memory with a combinational read,
    which an ECP5 build puts in LUT RAM (a 66-bit one: 17 DPR16X4 and 9 LUT4 instead of 138
    LUT4 and 134 flip-flops). The ``ice40`` preset's FIFOs are all narrower."""
    if depth == 2 and width < RAM_FIFO_WIDTH:
        return TwoEntryFIFO(width=width)
    return fifo.SyncFIFO(width=width, depth=depth)
