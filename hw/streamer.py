"""GIN streamer: reads a region of the global buffer in order and sends it as tagged packets.

The compiler lays the region out in exactly the order the network wants it: ``chunks``
chunks, each holding one beat for each of ``ntags`` destinations, beats packed
``glb_width // beat_bits`` to a GLB word. The streamer reads the words one after another,
unpacks the beats, tags beat ``b`` with entry ``b mod ntags`` of its tag table and marks
the beats of the last chunk as holding ``(words - 1) mod beat_words + 1`` words (every
destination's stream has that many words; the compiler says how many in ``last``). So the hardware keeps no addressing state beyond
a few counters, and the same region can be streamed again for every pass that reuses it.
"""

from amaranth import *
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..gen.program import streamer_layout
from .glb import ReadPort, WritePort

__all__ = ["Streamer", "STREAMER_LATENCY"]

#: Cycles from a command to its first beat (GLB read, word FIFO), checked by the unit tests.
STREAMER_LATENCY = 3


class Streamer(wiring.Component):
    """Parameters
    ----------
    packet : data.StructLayout
        The GIN packet layout (``row``, ``col``, ``data``).
    beat : data.StructLayout
        The layout of ``data``: ``words`` (an array) and ``last``
        (:func:`rowstat.hw.noc.beat_layout`).
    addr_width, glb_width : int
        GLB read port shape.
    tag_depth : int
        Entries of the tag table.

    Attributes
    ----------
    cmd : In(stream of rowstat.gen.program.streamer_layout)
        Start streaming a region; taken when the streamer is idle.
    busy : Out(1)
    glb : Out(ReadPort)
    tags : In(WritePort)
        Loads the tag table: each entry is (row, col) packed as in the packet.
    o : Out(stream of packet)
    beats : Out(1)
        Strobe per beat sent.
    """

    def __init__(self, packet, beat, addr_width, glb_width, tag_depth):
        self._packet = packet
        self._glb_width = glb_width
        self._tag_depth = tag_depth
        self._beat = beat
        self._beat_words = beat["words"].shape.length
        self._word_bits = beat["words"].shape.elem_shape.width
        self._beat_bits = self._beat_words * self._word_bits
        if self._beat_bits > glb_width:
            raise ValueError(f"a {self._beat_bits}-bit beat does not fit a {glb_width}-bit "
                             f"GLB word")
        self._per_word = glb_width // self._beat_bits
        # A region is at most the whole GLB space, so beat counts need no more bits than this.
        self._count_bits = ((1 << addr_width) * self._per_word).bit_length()
        tag_bits = packet["row"].shape.width + packet["col"].shape.width
        super().__init__({
            "cmd": In(stream.Signature(streamer_layout(None))),
            "busy": Out(1),
            "glb": Out(ReadPort(addr_width, glb_width)),
            "tags": In(WritePort((tag_depth - 1).bit_length(), tag_bits)),
            "o": Out(stream.Signature(packet)),
            "beats": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        packet, beat = self._packet, self._beat
        n_words, per_word = self._beat_words, self._per_word
        row_w = packet["row"].shape.width

        # A block RAM, read a cycle ahead (at the next beat's tag) with the write visible,
        # which gives what a combinational read of the current tag would: in flip-flops the
        # table took a logic cell per bit on an iCE40 and a wide read mux.
        m.submodules.tag_table = table = Memory(shape=len(self.tags.data),
                                                depth=self._tag_depth, init=[],
                                                attrs={"ram_style": "block"})
        twr = table.write_port()
        trd = table.read_port(transparent_for=(twr,))
        m.d.comb += [twr.en.eq(self.tags.en), twr.addr.eq(self.tags.addr),
                     twr.data.eq(self.tags.data)]

        cmd = Signal(streamer_layout(None))
        active = Signal()
        m.d.comb += self.cmd.ready.eq(~active)
        read_ptr = Signal(len(self.glb.addr))
        nb = self._count_bits
        reads_left = Signal(nb)               # beats not yet read from the GLB

        # --- GLB reads into a small word FIFO ------------------------------------------------
        # Deep enough to cover the read latency and the buffered FIFO's own: a region of one
        # beat per word streams at one beat per cycle.
        m.submodules.words = words = fifo.SyncFIFOBuffered(width=self._glb_width, depth=6)
        inflight = Signal()
        can_read = active & (reads_left != 0) & ((words.level + inflight) < 5)
        m.d.comb += [self.glb.en.eq(can_read), self.glb.addr.eq(read_ptr)]
        m.d.sync += inflight.eq(can_read)
        with m.If(can_read):
            m.d.sync += [read_ptr.eq(read_ptr + 1),
                         reads_left.eq(Mux(reads_left > per_word, reads_left - per_word, 0))]
        m.d.comb += [words.w_en.eq(inflight), words.w_data.eq(self.glb.data)]

        # --- unpack beats, tag them ------------------------------------------------------------
        slot = Signal(range(max(per_word, 2)))
        tag = Signal(range(self._tag_depth + 1))
        tag_next = Signal.like(tag)           # tag in the next cycle
        chunk = Signal(nb)
        beats_left = Signal(nb)
        m.d.comb += [trd.addr.eq(tag_next), tag_next.eq(tag)]
        m.d.sync += tag.eq(tag_next)
        out = Signal(packet)
        out_beat = Signal(beat)
        beat_value = words.r_data.word_select(slot, self._beat_bits) if per_word > 1 \
            else words.r_data[:self._beat_bits]
        m.d.comb += [
            out.row.eq(trd.data[:row_w]),
            out.col.eq(trd.data[row_w:]),
            out_beat.as_value()[:self._beat_bits].eq(beat_value),
            out_beat.last.eq(Mux(chunk == cmd.chunks[:nb] - 1, cmd.last, n_words - 1)),
            out.data.eq(out_beat.as_value()),
            self.o.payload.eq(out),
            self.o.valid.eq(active & words.r_rdy & (beats_left != 0)),
        ]
        fire = self.o.valid & self.o.ready
        m.d.comb += self.beats.eq(fire)
        last_slot = (slot == per_word - 1) | (beats_left == 1)
        m.d.comb += words.r_en.eq(fire & last_slot)
        with m.If(fire):
            m.d.sync += beats_left.eq(beats_left - 1)
            m.d.sync += slot.eq(Mux(last_slot, 0, slot + 1))
            with m.If(tag == cmd.ntags[:len(tag)] - 1):
                m.d.comb += tag_next.eq(0)
                m.d.sync += chunk.eq(chunk + 1)
            with m.Else():
                m.d.comb += tag_next.eq(tag + 1)

        # --- command ----------------------------------------------------------------------------
        beats_total = Signal(nb)
        m.d.comb += beats_total.eq(self.cmd.payload.chunks[:nb]
                                   * self.cmd.payload.ntags[:len(tag)])
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                cmd.eq(self.cmd.payload), active.eq(beats_total != 0),
                read_ptr.eq(self.cmd.payload.base),
                reads_left.eq(beats_total),
                beats_left.eq(beats_total),
                slot.eq(0), chunk.eq(0),
            ]
            m.d.comb += tag_next.eq(0)
        with m.If(fire & (beats_left == 1)):
            m.d.sync += active.eq(0)
        m.d.comb += self.busy.eq(active)
        return m
