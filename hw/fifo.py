"""FIFOs whose storage asks for block RAM."""

from amaranth.lib import fifo

__all__ = ["BlockFIFO"]


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
