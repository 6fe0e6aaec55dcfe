"""The accelerator top: controller, global buffer, streamers, PE array, collector and drain
behind a command stream and two data streams.

::

    cmd ──► Controller ──► Loader ◄── data_in
                │            │ ifmap/filter words, bias, IDs, tag and chain tables
                ▼            ▼
             Streamers ◄── GLB ◄── Collector ◄── PE array ◄── Streamers
                │(filter, ifmap, psum GINs)      (GON)
                ▼
             PE array           GLB psum space ──► Drain (bias, output stage) ──► data_out

The command set and the data orders are in rowstat.gen.program and the README.
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..gen.config import bits_for
from .array import (PEArray, filter_beat_layout, filter_packet_layout, gon_packet_layout,
                    id_chain_layout, ifmap_beat_layout, ifmap_packet_layout, psum_beat_layout,
                    psum_packet_layout)
from .collector import Collector
from .controller import Controller
from .drain import Drain
from .glb import GLB
from .loader import Loader
from .streamer import Streamer

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """Attributes
    ----------
    cmd : In(stream of 32-bit command words)
    data_in : In(stream of dram_width-bit beats)
    data_out : Out(stream of dram_width-bit beats)
    busy : Out(1)
        A command is in progress or any unit is working.
    """

    def __init__(self, arch, *, shared_sites=True):
        self._arch = arch
        self._array = PEArray(arch, shared_sites=shared_sites)
        super().__init__({
            "cmd": In(stream.Signature(32)),
            "data_in": In(stream.Signature(arch.dram_width)),
            "data_out": Out(stream.Signature(arch.dram_width)),
            "busy": Out(1),
        })

    def verilog_submodules(self):
        return self._array.verilog_submodules()

    def elaborate(self, platform):
        arch = self._arch
        m = Module()
        space = bits_for(arch.glb_banks * arch.glb_bank_depth - 1)
        fspace = bits_for(arch.glb_filter_banks * arch.glb_bank_depth - 1)
        tag_addr = bits_for(arch.tag_depth - 1)
        chain_bits = bits_for(arch.rows * arch.cols - 1)
        W = arch.glb_width

        m.submodules.array = array = self._array
        m.submodules.ctrl = ctrl = Controller(arch)
        m.submodules.glb = glb = GLB(arch)
        m.submodules.loader = loader = Loader(arch, widths={
            "ifmap": (space, W), "filt": (fspace, W),
            "bias": (bits_for(arch.bias_depth - 1), arch.psum_width),
            "ids": id_chain_layout(arch).size,
            "ifmap_tags": (tag_addr, arch.row_id_width + arch.ifmap_col_id_width),
            "filt_tags": (tag_addr, arch.row_id_width + arch.col_id_width),
            "psum_tags": (tag_addr, arch.row_id_width + arch.col_id_width),
            "chains": (chain_bits, chain_bits),
        })
        m.submodules.filt_stream = fs = Streamer(filter_packet_layout(arch),
                                                 filter_beat_layout(arch), fspace, W,
                                                 arch.tag_depth)
        m.submodules.ifmap_stream = ist = Streamer(ifmap_packet_layout(arch),
                                                   ifmap_beat_layout(arch), space, W,
                                                   arch.tag_depth)
        m.submodules.psum_stream = ps = Streamer(psum_packet_layout(arch),
                                                 psum_beat_layout(arch), space, W,
                                                 arch.tag_depth)
        psum_beat_bits = arch.psums_per_beat * arch.psum_width
        m.submodules.collector = col = Collector(arch, gon_packet_layout(arch), psum_beat_bits,
                                                 space)
        m.submodules.drain = drain = Drain(arch, space)
        # The units, for simulation probes and debugging.
        self.units = dict(ctrl=ctrl, glb=glb, loader=loader, filt_stream=fs, ifmap_stream=ist,
                          psum_stream=ps, collector=col, drain=drain, array=array)

        # Commands and configuration.
        wiring.connect(m, wiring.flipped(self.cmd), ctrl.cmd)
        wiring.connect(m, ctrl.load_cmd, loader.cmd)
        wiring.connect(m, ctrl.drain_cmd, drain.cmd)
        wiring.connect(m, ctrl.filt_cmd, fs.cmd)
        wiring.connect(m, ctrl.ifmap_cmd, ist.cmd)
        wiring.connect(m, ctrl.psum_cmd, ps.cmd)
        m.d.comb += [
            ctrl.load_busy.eq(loader.busy),
            ctrl.drain_busy.eq(drain.busy),
            ctrl.streamers_busy.eq(fs.busy | ist.busy | ps.busy),
            array.cfg.eq(ctrl.layer.pe),
            array.cfg.psum_in_en.eq(ctrl.array_psum_in),
            array.start.eq(ctrl.array_start),
            ctrl.array_busy.eq(array.busy),
            ctrl.array_tick.eq(array.tick),
            glb.split.eq(ctrl.layer.split),
            drain.out_cfg.eq(ctrl.layer.out),
            col.start.eq(ctrl.collector_start),
            col.base.eq(ctrl.collector_base),
            col.nchains.eq(ctrl.collector_nchains),
            ctrl.glb_reads.eq(glb.reads), ctrl.glb_writes.eq(glb.writes),
            ctrl.words_in.eq(self.data_in.valid & self.data_in.ready),
            # Ofmap beats (headers included), not the counter dump that reports them.
            ctrl.words_out.eq(drain.o.valid & drain.o.ready),
            self.busy.eq(ctrl.busy),
        ]

        # Data in -> loader -> storage.
        wiring.connect(m, wiring.flipped(self.data_in), loader.data)
        m.d.comb += [array.ids.valid.eq(loader.ids.valid),
                     array.ids.payload.eq(loader.ids.payload),
                     loader.ids.ready.eq(array.ids.ready)]
        wiring.connect(m, loader.ifmap, glb.ifmap_wr)
        wiring.connect(m, loader.filt, glb.filt_wr)
        wiring.connect(m, loader.bias, drain.bias)
        wiring.connect(m, loader.filt_tags, fs.tags)
        wiring.connect(m, loader.ifmap_tags, ist.tags)
        wiring.connect(m, loader.psum_tags, ps.tags)
        wiring.connect(m, loader.chains, col.chains)

        # GLB -> streamers -> array -> collector -> GLB.
        wiring.connect(m, fs.glb, glb.filt_rd)
        wiring.connect(m, ist.glb, glb.ifmap_rd)
        wiring.connect(m, ps.glb, glb.psum_rd)
        wiring.connect(m, drain.glb, glb.drain_rd)
        wiring.connect(m, fs.o, array.filt)
        wiring.connect(m, ist.o, array.ifmap)
        wiring.connect(m, ps.o, array.psum_in)
        wiring.connect(m, array.psum_out, col.i)
        wiring.connect(m, col.glb, glb.psum_wr)

        # Data out: counter dumps (only while the drain is idle) or drained ofmaps.
        dump = ctrl.dump
        m.d.comb += [
            self.data_out.valid.eq(Mux(dump.valid, 1, drain.o.valid)),
            self.data_out.payload.eq(Mux(dump.valid, dump.payload, drain.o.payload)),
            dump.ready.eq(dump.valid & self.data_out.ready),
            drain.o.ready.eq(~dump.valid & self.data_out.ready),
        ]
        return m
