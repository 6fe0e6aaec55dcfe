"""Drain: finished psums from the GLB through bias and the output stage to the data output.

A DRAIN command names a region of the psum space laid out as the collector wrote it (chunk by
chunk, one GLB word per chain per chunk). The drain reads it in order, takes the valid psums of
each word, adds the bias of each psum's filter (psum s of chain c belongs to filter
``bias_base + (c // chains_per_tc) * p + s mod p``), runs the output stage and packs the
results little-endian into output beats, after a header beat that announces how many follow.
"""

from amaranth import *
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..gen.program import BlockKind, drain_layout, header_beat, output_config_layout
from .fifo import BlockFIFO
from .glb import ReadPort, WritePort
from .output_stage import OutputStage

__all__ = ["Drain", "DRAIN_LATENCY"]

#: Cycles a DRAIN command takes beyond one per psum (measured, checked by the unit tests).
DRAIN_LATENCY = 11


class Drain(wiring.Component):
    """Attributes
    ----------
    cmd : In(stream of drain_layout)
    busy : Out(1)
    out_cfg : In(output_config_layout)
    glb : Out(ReadPort)
        The psum-space read port it shares with the psum streamer (``grant`` low: retry).
    bias : In(WritePort)
        Loads the bias table.
    o : Out(stream of dram_width)
    """

    def __init__(self, arch, addr_width):
        self._arch = arch
        self._bw = arch.psums_per_beat     # psums per GLB word
        super().__init__({
            "cmd": In(stream.Signature(drain_layout(arch))),
            "busy": Out(1),
            "out_cfg": In(output_config_layout(arch)),
            "glb": Out(ReadPort(addr_width, arch.glb_width)),
            "bias": In(WritePort((arch.bias_depth - 1).bit_length(), arch.psum_width)),
            "o": Out(stream.Signature(arch.dram_width)),
        })

    def elaborate(self, platform):
        arch = self._arch
        P, A, D = arch.psum_width, arch.act_width, arch.dram_width
        bw = self._bw
        m = Module()

        # A region is at most the psum space and a block at most its psums, so the counts
        # need no more bits than these.
        aw = len(self.glb.addr)
        nw = (1 << aw).bit_length()                       # GLB words
        npsum = ((1 << aw) * bw).bit_length()             # psums (and output beats)
        chain_w = arch.pes.bit_length()
        cmd = Signal(drain_layout(arch))
        active = Signal()
        m.d.comb += [self.cmd.ready.eq(~active), self.busy.eq(active)]

        # --- GLB reads -> word FIFO --------------------------------------------------------------
        m.submodules.words = words = fifo.SyncFIFOBuffered(width=arch.glb_width, depth=6)
        read_ptr = Signal(aw)
        reads_left = Signal(nw)
        inflight = Signal()
        want = active & (reads_left != 0) & ((words.level + inflight) < 5)
        m.d.comb += [self.glb.en.eq(want), self.glb.addr.eq(read_ptr)]
        got = want & self.glb.grant
        m.d.sync += inflight.eq(got)
        with m.If(got):
            m.d.sync += [read_ptr.eq(read_ptr + 1), reads_left.eq(reads_left - 1)]
        m.d.comb += [words.w_en.eq(inflight), words.w_data.eq(self.glb.data)]

        # --- unpack psums, find their bias ----------------------------------------------------
        m.submodules.bias_table = btab = Memory(shape=signed(P), depth=arch.bias_depth, init=[])
        bwr = btab.write_port()
        brd = btab.read_port()
        m.d.comb += [bwr.en.eq(self.bias.en), bwr.addr.eq(self.bias.addr),
                     bwr.data.eq(self.bias.data)]

        slot = Signal(range(max(bw, 2)))
        chain = Signal(chain_w)
        chunk = Signal(nw)
        k_chunk = Signal(8)      # k of the chunk's first psum
        k = Signal(8)            # k of the current psum
        tc_p = Signal(range(arch.bias_depth))     # (chain // chains_per_tc) * p
        tc_left = Signal(chain_w)                 # chains left in the current filter copy
        words_left = Signal(npsum)
        # The last chunk, chain and k of the command, from its accept: a subtractor in front
        # of each comparison made the drain's longest path (about 40 ns on an iCE40).
        chunk_last = Signal(nw)
        chain_last = Signal(chain_w)
        p_last = Signal(8)
        last_chunk = chunk == chunk_last
        slot_last = Mux(last_chunk, cmd.last, bw - 1)

        m.submodules.stage = stage = OutputStage(arch)
        m.d.comb += stage.cfg.eq(self.out_cfg)
        # Psum + bias pairs wait here for the output stage; the bias read takes a cycle.
        m.submodules.pairs = pairs = BlockFIFO(width=2 * P, depth=6)
        p_valid = Signal()
        p_psum = Signal(signed(P))
        room = (pairs.level + p_valid) < 5
        take = active & words.r_rdy & room & (words_left != 0)
        psum = words.r_data.word_select(slot, P) if bw > 1 else words.r_data[:P]
        m.d.comb += [brd.addr.eq(cmd.bias_base + tc_p + k), brd.en.eq(take)]
        m.d.sync += [p_valid.eq(take), p_psum.eq(psum)]
        m.d.comb += [pairs.w_en.eq(p_valid), pairs.w_data.eq(Cat(p_psum, brd.data))]
        m.d.comb += [stage.i.valid.eq(pairs.r_rdy),
                     stage.i.payload.psum.eq(pairs.r_data[:P]),
                     stage.i.payload.bias.eq(pairs.r_data[P:]),
                     pairs.r_en.eq(stage.i.ready)]

        end_word = slot == slot_last
        m.d.comb += words.r_en.eq(take & end_word)
        k_next = Mux(k == p_last, 0, k + 1)
        with m.If(take):
            m.d.sync += words_left.eq(words_left - 1)
            with m.If(~end_word):
                m.d.sync += [slot.eq(slot + 1), k.eq(k_next)]
            with m.Else():
                m.d.sync += slot.eq(0)
                with m.If(chain == chain_last):
                    # Next chunk: k continues from where this chunk's psums ended.
                    m.d.sync += [chain.eq(0), chunk.eq(chunk + 1), k.eq(k_next),
                                 k_chunk.eq(k_next), tc_p.eq(0),
                                 tc_left.eq(cmd.chains_per_tc)]
                with m.Else():
                    m.d.sync += [chain.eq(chain + 1), k.eq(k_chunk)]
                    with m.If(tc_left == 1):
                        m.d.sync += [tc_p.eq(tc_p + cmd.p), tc_left.eq(cmd.chains_per_tc)]
                    with m.Else():
                        m.d.sync += tc_left.eq(tc_left - 1)

        # --- pack into beats, header first ------------------------------------------------------
        # Values never straddle beats, so a value's place in its beat is a slot index: a
        # decoder per slot rather than a barrel shifter by a bit count (far fewer LUTs).
        per_beat = {True: D // A, False: D // P}      # values per beat, by shift_en
        beat = Signal(D)
        slot_in = Signal(range(max(per_beat.values())))   # slot of the next value
        beats_left = Signal(npsum + 1)
        header_due = Signal()
        m.submodules.beats = beats = BlockFIFO(width=D, depth=4)
        packed_left = Signal(npsum)                   # output words not yet packed
        # A value that fills the beat (the next would not fit) goes out with it in the same
        # cycle, so packing never stalls the output stage: one psum per cycle.
        completes = slot_in == Mux(self.out_cfg.shift_en, per_beat[True] - 1,
                                   per_beat[False] - 1)
        emit = Signal()
        m.d.comb += stage.o.ready.eq(beats.w_rdy & ~header_due)
        value = stage.o.payload.as_unsigned()

        def placed(width, n):
            return Cat(*(Mux(slot_in == i, value[:width], 0) for i in range(n)))

        shifted = Signal(D)
        m.d.comb += shifted.eq(Mux(self.out_cfg.shift_en, placed(A, per_beat[True]),
                                   placed(P, per_beat[False])))
        with m.If(header_due):
            m.d.comb += [beats.w_en.eq(1), beats.w_data.eq(header_beat(BlockKind.OFMAP, 0)
                                                            | (cmd.beats << 12))]
            with m.If(beats.w_rdy):
                m.d.sync += header_due.eq(0)
        with m.Elif(stage.o.valid & stage.o.ready):
            with m.If(completes | (packed_left == 1)):
                # The beat is full, or this is the block's last word (a partial beat).
                m.d.comb += [beats.w_en.eq(1), beats.w_data.eq(beat | shifted), emit.eq(1)]
                m.d.sync += [beat.eq(0), slot_in.eq(0)]
            with m.Else():
                m.d.sync += [beat.eq(beat | shifted), slot_in.eq(slot_in + 1)]
            m.d.sync += packed_left.eq(packed_left - 1)
        m.d.comb += [self.o.valid.eq(beats.r_rdy), self.o.payload.eq(beats.r_data),
                     beats.r_en.eq(self.o.ready)]
        with m.If(emit):
            m.d.sync += beats_left.eq(beats_left - 1)

        # --- command --------------------------------------------------------------------------
        per_chain = Signal(npsum)
        setup = Signal()
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                cmd.eq(self.cmd.payload), active.eq(1), setup.eq(1), header_due.eq(1),
                chunk_last.eq(self.cmd.payload.chunks[:nw] - 1),
                chain_last.eq(self.cmd.payload.nchains[:chain_w] - 1),
                p_last.eq(self.cmd.payload.p - 1),
                read_ptr.eq(self.cmd.payload.base),
                reads_left.eq(self.cmd.payload.chunks[:nw] * self.cmd.payload.nchains[:chain_w]),
                per_chain.eq((self.cmd.payload.chunks[:nw] - 1) * bw + self.cmd.payload.last + 1),
                slot.eq(0), chain.eq(0), chunk.eq(0), k.eq(0), k_chunk.eq(0), tc_p.eq(0),
                tc_left.eq(self.cmd.payload.chains_per_tc), beats_left.eq(self.cmd.payload.beats),
                beat.eq(0), slot_in.eq(0),
            ]
        with m.If(setup):
            # Second cycle of a command: the psum counts, from the registered fields.
            psums = Signal(npsum)
            m.d.comb += psums.eq(per_chain * cmd.nchains[:chain_w])
            m.d.sync += [setup.eq(0), words_left.eq(psums), packed_left.eq(psums)]
        with m.If(active & ~setup & ~header_due & (beats_left == 0) & (words_left == 0)
                  & (packed_left == 0) & (beats.level == 0)):
            # level, not r_rdy: a beat just written is not yet readable but must still go out
            # before the drain counts as idle (a COUNTERS dump would overtake it).
            m.d.sync += active.eq(0)
        return m
