"""Controller: decodes the command stream, dispatches commands to the units, runs passes and
keeps the performance counters.

Commands (rowstat.gen.program) arrive as 32-bit words: a header, then the arguments, which
are shifted into one register and viewed through the command's layout. A command is issued
when its unit is idle and every unit in its wait mask is idle; LAYER and COUNTERS wait for
every unit. A PASS starts the array and the three streamers in the same cycle and ends when
the array has finished (its last psum has left) and every streamer is idle.

The performance counters live in a block RAM, not in flip-flops: a counter in logic costs an
adder per counter plus a wide mux for the dump, which on an iCE40 took most of the
controller. Each counter has a small pre-counter that takes its increments every cycle; a
scanner visits one counter per cycle, adds its pre-counter to the RAM word and restarts the
pre-counter. A dumped value is what the scanner writes back (the RAM word plus the
pre-counter), so it is the live total, as if the counter were a register: a COUNTERS dump
sends a counter's beat in a cycle in which the scanner visits it. The scanner jumps to the
first counter as the dump's header leaves, so with the output always ready the counters follow
it one per cycle; a beat held back waits for the scanner to come round again (at most N
cycles). One read port, so the RAM is as narrow as a counter (two iCE40 block RAMs of 32-bit
counters, not four). Clearing marks every RAM word as zero (``cleared``) until the scanner next
writes it.
"""

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..gen.program import (ARG_LAYOUTS, COUNT, COUNTERS, HEADER_LAYOUT, TAGS, BlockKind, Op,
                           Wait, counter_beats, drain_layout, header_beat, layer_layout,
                           load_layout, nargs, streamer_layout)
from .array import tick_layout

__all__ = ["Controller"]


class _State(enum.Enum, shape=3):
    HEADER = 0
    ARGS = 1
    ISSUE = 2
    DUMP = 3


class Controller(wiring.Component):
    """Attributes
    ----------
    cmd : In(stream of 32-bit words)
    layer : Out(layer_layout)
        The current LAYER configuration (PE pass shape, output stage, GLB split).
    load_cmd, drain_cmd : Out(stream)
        Commands for the loader and the drain.
    load_busy, drain_busy : In(1)
    filt_cmd, ifmap_cmd, psum_cmd : Out(stream of streamer_layout)
    streamers_busy : In(1)
    array_start : Out(1)
    array_psum_in : Out(1)
        With ``array_start``: the pass takes input psums from the psum GIN.
    array_busy : In(1)
    array_tick : In(tick_layout(arch))
        The array's per-cycle counts (:attr:`rowstat.hw.array.PEArray.tick`).
    collector_start : Out(1); collector_base, collector_nchains : Out(...)
    glb_reads, glb_writes : In(2)
    words_in, words_out : In(1)
        Strobes for the counters.
    dump : Out(stream of dram_width)
        Counter dumps (header, then the counters), to the data output.
    busy : Out(1)
        A command is being decoded or any unit is busy.
    """

    def __init__(self, arch):
        self._arch = arch
        self._max_args = max(nargs(arch, op) for op in Op)
        super().__init__({
            "cmd": In(stream.Signature(32)),
            "layer": Out(layer_layout(arch)),
            "load_cmd": Out(stream.Signature(load_layout(arch))),
            "load_busy": In(1),
            "drain_cmd": Out(stream.Signature(drain_layout(arch))),
            "drain_busy": In(1),
            "filt_cmd": Out(stream.Signature(streamer_layout(arch))),
            "ifmap_cmd": Out(stream.Signature(streamer_layout(arch))),
            "psum_cmd": Out(stream.Signature(streamer_layout(arch))),
            "streamers_busy": In(1),
            "array_start": Out(1),
            "array_psum_in": Out(1),
            "array_busy": In(1),
            "array_tick": In(tick_layout(arch)),
            "collector_start": Out(1),
            "collector_base": Out(COUNT),
            "collector_nchains": Out(TAGS),
            "glb_reads": In(2), "glb_writes": In(2),
            "words_in": In(1), "words_out": In(1),
            "dump": Out(stream.Signature(arch.dram_width)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        arch = self._arch
        m = Module()
        state = Signal(_State)
        head = data.View(HEADER_LAYOUT, self.cmd.payload[:HEADER_LAYOUT.size])
        op = Signal(HEADER_LAYOUT["op"].width)
        wait = Signal(HEADER_LAYOUT["wait"].width)
        n_args = Signal(HEADER_LAYOUT["nargs"].width)
        args = Signal(32 * max(self._max_args, 1))
        got = Signal(8)

        # --- pass engine --------------------------------------------------------------------
        pass_active = Signal()
        pass_seen_busy = Signal()       # the array has raised busy for this pass
        pass_done = pass_active & pass_seen_busy & ~self.array_busy & ~self.streamers_busy
        load_busy, drain_busy = self.load_busy, self.drain_busy
        unit_busy = {Wait.LOAD: load_busy, Wait.PASS: pass_active, Wait.DRAIN: drain_busy}
        waits_ok = Cat(*((~wait[k]) | ~unit_busy[Wait(1 << k)] for k in range(3))).all()
        all_idle = ~load_busy & ~pass_active & ~drain_busy

        # --- counters (module docstring) ------------------------------------------------------
        CW = arch.counter_width
        N = len(COUNTERS)
        dump_valid = Signal()                   # the dump's output register holds a beat
        dump_data = Signal(arch.dram_width)
        dump_free = Signal()                    # the output register takes a beat this cycle
        m.d.comb += self.busy.eq((state != _State.HEADER) | ~all_idle | dump_valid)
        tick = self.array_tick
        pes = arch.pes
        incs = {
            "cycles": self.busy,
            "macs": tick.macs,
            "macs_skipped_zero": tick.skipped,
            "pe_busy_cycles": Mux(tick.active, pes, 0) - tick.idle,   # idle <= pes when active
            "pe_idle_cycles": tick.idle,
            "stall_cycles": tick.stalls,
            "glb_reads": self.glb_reads, "glb_writes": self.glb_writes,
            "words_in": self.words_in, "words_out": self.words_out,
            "passes": pass_done,
        }
        # A pre-counter takes at most 2 N cycles of increments between two visits (N, or up
        # to 2 N around the jump at a dump's header).
        max_inc = {name: pes for name in ("macs", "macs_skipped_zero", "pe_busy_cycles",
                                          "pe_idle_cycles", "stall_cycles")}
        max_inc |= {"glb_reads": 3, "glb_writes": 3}
        pre = [Signal(range(2 * N * max_inc.get(name, 1) + 1), name=f"pre_{name}")
               for name in COUNTERS]
        # All set at reset too: a reset (the board's RESET) does not clear the RAM itself.
        cleared = Signal(N, init=(1 << N) - 1)
        m.submodules.counter_ram = ram = Memory(
            shape=CW, depth=N, init=[], attrs={"ram_style": "block"})
        wr = ram.write_port()
        scan_rd = ram.read_port(transparent_for=(wr,))
        scan = Signal(range(N))           # read this cycle, unless the scanner jumps
        scan_rd_addr = Signal(range(N))   # read this cycle
        scan_wr = Signal(range(N))        # written this cycle (read in the last one)
        scan_on = Signal()                # scan_wr is valid (not the first cycle after reset)
        scan_jump = Signal()              # read counter 0 now (a dump's header leaves)
        m.d.comb += scan_rd_addr.eq(Mux(scan_jump, 0, scan))
        m.d.sync += [scan.eq(Mux(scan_rd_addr == N - 1, 0, scan_rd_addr + 1)),
                     scan_wr.eq(scan_rd_addr), scan_on.eq(1)]
        pre_w = Array(pre)[scan_wr]
        total = Signal(CW)                # the live total of counter scan_wr
        m.d.comb += [
            scan_rd.addr.eq(scan_rd_addr),
            wr.addr.eq(scan_wr),
            total.eq(Mux(cleared.bit_select(scan_wr, 1), 0, scan_rd.data) + pre_w),
            wr.data.eq(total),
            wr.en.eq(scan_on),
        ]
        clear_all = Signal()
        for i, name in enumerate(COUNTERS):
            visit = scan_on & (scan_wr == i)
            with m.If(clear_all):
                m.d.sync += [pre[i].eq(0), cleared[i].eq(1)]
            with m.Else():
                m.d.sync += pre[i].eq(Mux(visit, 0, pre[i]) + incs[name])
                with m.If(visit):
                    m.d.sync += cleared[i].eq(0)
        with m.If(pass_done):
            m.d.sync += pass_active.eq(0)
        with m.If(pass_active & self.array_busy):
            m.d.sync += pass_seen_busy.eq(1)

        # --- decoder --------------------------------------------------------------------------
        view = {o: data.View(fn(arch), args[:fn(arch).size]) for o, fn in ARG_LAYOUTS.items()}
        pass_view = view[Op.PASS]
        m.d.comb += [
            self.load_cmd.payload.eq(view[Op.LOAD]),
            self.drain_cmd.payload.eq(view[Op.DRAIN]),
            # The streamers take these the cycle after ISSUE, when args still holds the PASS
            # (it is cleared at the end of that HEADER cycle).
            self.filt_cmd.payload.eq(pass_view.filt),
            self.ifmap_cmd.payload.eq(pass_view.ifmap),
            self.psum_cmd.payload.eq(pass_view.psum),
            # Sampled by the collector with array_start, while the PASS is being issued.
            self.collector_base.eq(pass_view.out_base),
            self.collector_nchains.eq(pass_view.nchains),
            self.array_psum_in.eq(pass_view.psum.chunks != 0),
        ]
        dump_index = Signal(range(len(COUNTERS) * 4 + 2))
        beats_per = counter_beats(arch)
        dump_ctr = Signal(range(N + 1))         # counter of the current beat
        dump_part = Signal(range(beats_per))    # its beat
        m.d.comb += self.cmd.ready.eq((state == _State.HEADER) | (state == _State.ARGS))
        m.d.comb += [self.dump.valid.eq(dump_valid), self.dump.payload.eq(dump_data),
                     dump_free.eq(~dump_valid | self.dump.ready)]
        with m.If(self.dump.ready):
            m.d.sync += dump_valid.eq(0)

        with m.Switch(state):
            with m.Case(_State.HEADER):
                with m.If(self.cmd.valid):
                    m.d.sync += [op.eq(head.op), wait.eq(head.wait), n_args.eq(head.nargs),
                                 got.eq(0), args.eq(0)]
                    with m.If(head.nargs == 0):
                        m.d.sync += state.eq(_State.ISSUE)
                    with m.Else():
                        m.d.sync += state.eq(_State.ARGS)
            with m.Case(_State.ARGS):
                with m.If(self.cmd.valid):
                    # Arguments arrive least significant word first.
                    for k in range(max(self._max_args, 1)):
                        with m.If(got == k):
                            m.d.sync += args[32 * k:32 * (k + 1)].eq(self.cmd.payload)
                    m.d.sync += got.eq(got + 1)
                    with m.If(got == n_args - 1):
                        m.d.sync += state.eq(_State.ISSUE)
            with m.Case(_State.ISSUE):
                with m.Switch(op):
                    with m.Case(Op.LAYER):
                        with m.If(all_idle):
                            m.d.sync += [self.layer.eq(view[Op.LAYER]), state.eq(_State.HEADER)]
                    with m.Case(Op.LOAD):
                        m.d.comb += self.load_cmd.valid.eq(waits_ok & ~load_busy)
                        with m.If(self.load_cmd.valid & self.load_cmd.ready):
                            m.d.sync += state.eq(_State.HEADER)
                    with m.Case(Op.DRAIN):
                        m.d.comb += self.drain_cmd.valid.eq(waits_ok & ~drain_busy)
                        with m.If(self.drain_cmd.valid & self.drain_cmd.ready):
                            m.d.sync += state.eq(_State.HEADER)
                    with m.Case(Op.PASS):
                        with m.If(waits_ok & ~pass_active & ~self.streamers_busy
                                  & ~self.array_busy):
                            m.d.sync += [pass_active.eq(1),
                                         pass_seen_busy.eq(0), state.eq(_State.HEADER)]
                            m.d.comb += [self.array_start.eq(1), self.collector_start.eq(1)]
                    with m.Case(Op.FENCE):
                        with m.If(waits_ok):
                            m.d.sync += state.eq(_State.HEADER)
                    with m.Case(Op.COUNTERS):
                        with m.If(all_idle):
                            m.d.sync += [state.eq(_State.DUMP), dump_index.eq(0),
                                         dump_part.eq(0), dump_ctr.eq(0)]
                    with m.Default():
                        m.d.sync += state.eq(_State.HEADER)      # unknown opcodes are skipped
            with m.Case(_State.DUMP):
                # Header, then each counter in beats_per beats, least significant first, each
                # beat in a cycle in which the scanner visits its counter. A beat goes through
                # an output register (the counter adder is a long path on an iCE40).
                slot_bits = beats_per * arch.dram_width
                word = Cat(total, C(0, slot_bits - CW)).word_select(dump_part, arch.dram_width)
                n_beats = len(COUNTERS) * beats_per
                header = dump_index == 0
                beat_valid = header | (scan_on & (scan_wr == dump_ctr))
                m.d.comb += scan_jump.eq(header & dump_free)
                with m.If(beat_valid & dump_free):
                    m.d.sync += [dump_valid.eq(1), dump_data.eq(
                        Mux(header, header_beat(BlockKind.COUNTERS, n_beats), word))]
                    m.d.sync += dump_index.eq(dump_index + 1)
                    with m.If(~header):
                        with m.If(dump_part == beats_per - 1):
                            m.d.sync += [dump_part.eq(0), dump_ctr.eq(dump_ctr + 1)]
                        with m.Else():
                            m.d.sync += dump_part.eq(dump_part + 1)
                    with m.If(dump_index == n_beats):
                        m.d.sync += state.eq(_State.HEADER)
                        with m.If(view[Op.COUNTERS].clear):
                            m.d.comb += clear_all.eq(1)

        # Streamer commands go out the cycle after the pass starts (the streamers are idle
        # then: a PASS issues only when they are).
        start_streams = Signal()
        m.d.sync += start_streams.eq(self.array_start)
        m.d.comb += [
            self.filt_cmd.valid.eq(start_streams & (pass_view.filt.chunks != 0)),
            self.ifmap_cmd.valid.eq(start_streams & (pass_view.ifmap.chunks != 0)),
            self.psum_cmd.valid.eq(start_streams & (pass_view.psum.chunks != 0)),
        ]
        return m
