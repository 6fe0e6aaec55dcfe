"""The PE array: ``rows x cols`` row-stationary PEs, three multicast GINs, local psum links, a GON,
the per-layer ID chain, pass control and counters.

Data paths (REFERENCE.md, "Network-on-chip")::

    filt    --> MulticastBus --> per PE site: FIFO -> BeatToWords -> PE.filt
    ifmap   --> MulticastBus --> per PE site: FIFO -> BeatToWords -> PE.ifmap
    psum_in --> MulticastBus --> per PE site: FIFO -> BeatToWords -+
                           PE (r-1, c).psum_out (below) -----------+-> PE.psum_in  (psum_from)
    PE.psum_out -+-> PE (r+1, c).psum_in (above)                                   (psum_to)
                 +-> WordsToBeat -> GON2D (per-row arbiter, then across rows) -> psum_out

A :class:`MulticastBus` plus the FIFOs in the sites is a :class:`~rowstat.hw.noc.MulticastGIN`
(same logic); everything per PE is one :class:`PESite`, one Verilog module for all PEs. The
BeatToWords read their words out of the FIFO's head (no register of their own); a WordsToBeat
holds all but the last word of a beat (none where a beat holds one word).

**Packets.** Every GIN packet is ``packet_layout(row tag, col tag, beat)`` with tags as in
:mod:`rowstat.gen.placement`; a beat (:func:`rowstat.hw.noc.beat_layout`) carries as many words
as fit in the data type's bus width (``filter_bus_width // weight_width`` weights, and so on)
plus ``last``, the index of the last valid word, so the last beat of a PE's stream may be
partial. Each PE's adapter turns its beats back into the PE's word stream, in the orders of the
PE's module docstring (:mod:`rowstat.hw.pe`). Psums leave as ``(row, col, beat)`` packets
(:func:`gon_packet_layout`): the source PE and up to ``psum_bus_width // psum_width`` psums; a
PE's last beat of a pass is flushed partial when the PE goes idle.

**ID chain.** The multicast IDs and enables, each PE's psum source and destination and whether
it takes part in the pass at all are loaded through ``ids``, one :func:`id_chain_layout` word per
transfer, like Eyeriss's scan chain: every transfer shifts all stages of the chain by one. The
stages, from the ``ids`` port onwards, are: X-bus 0, PE (0, 0) ... PE (0, cols-1), X-bus 1,
PE (1, 0), ... (:func:`id_chain_stages`). :func:`id_chain_words` turns a Placement into the
``rows * (cols + 1)`` words in the order to send them (the far end's word first). ``ids`` is
ready only while the array is not busy.

**Pass control.** ``cfg`` (p, q, S, F, U, n_rows; ``psum_in_en`` says whether the psum GIN
feeds this pass: PEs whose source is the GIN start from zero without it; the rest is per PE
from its psum source) and ``start`` are registered once, with the PEs' pass-shape products
(:func:`rowstat.hw.pe.pe_products`, one set for all PEs), and then broadcast; only PEs marked
active in the chain are started. ``busy`` is high from the cycle after ``start`` until every
PE has finished, every psum has left through ``psum_out`` and the counters are final.

**Counters** (cleared at ``start``): ``cycles`` the array was running, ``macs`` and
``skipped`` (MACs done and skipped by zero gating, over all PEs), ``idle`` (sum over all PEs,
unplaced ones included, of the running cycles in which the PE was not busy) and ``stalls``
(sum over PEs of cycles in which a busy PE could issue nothing). The per-PE strobes are summed
by registered adder trees (per row, then across rows), two cycles behind.

**Registered boundaries** (ARCHITECTURE-SKETCH, "NoC timing on an FPGA"): the GINs' Y-bus
registers, destination masks and "has room" flags (see :class:`~rowstat.hw.noc.MulticastGIN`);
the GON's row and output FIFOs; start and cfg; the busy OR tree (per row, then across rows)
and the counter adder trees. No ready signal crosses the array combinationally: the readies
that are combinational stay within one PE's site (GIN FIFO -> adapter -> PE) or between
neighbouring PEs (the psum link).
"""

import hashlib

from amaranth import *
from amaranth.hdl import Const, Value
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..gen.program import pack

from .fifo import small_fifo

from .noc import (GON2D, BeatToWords, MulticastBus, WordsToBeat, beat_layout,
                  gon2d_packet_layout, packet_layout)
from .pe import PE, pe_config_layout, pe_port_layout, pe_products

__all__ = [
    "PEArray", "PESite", "IDChain", "PsumFrom", "PsumTo", "pe_site_signature", "tick_layout",
    "filter_beat_layout", "ifmap_beat_layout", "psum_beat_layout",
    "filter_packet_layout", "ifmap_packet_layout", "psum_packet_layout", "gon_packet_layout",
    "xbus_config_layout", "pe_site_config_layout", "id_chain_layout", "id_chain_stages",
    "id_chain_words", "encode_beats", "encode_packet", "decode_gon",
]


class PsumFrom(enum.Enum, shape=2):
    """Where a PE's input psums come from."""
    NONE = 0    # none: the PE's own sums go out as they are
    BELOW = 1   # the PE in the row below (row r - 1), over the local psum link
    GIN = 2     # the psum GIN (psums of an earlier pass, from the global buffer)


class PsumTo(enum.Enum, shape=1):
    """Where a PE's output psums go."""
    ABOVE = 0   # the PE in the row above (row r + 1)
    GON = 1     # out of the array through the GON


# --- packet layouts ----------------------------------------------------------------------------

def filter_beat_layout(arch):
    return beat_layout(signed(arch.weight_width), arch.filter_bus_width // arch.weight_width)


def ifmap_beat_layout(arch):
    return beat_layout(signed(arch.act_width), arch.ifmap_bus_width // arch.act_width)


def psum_beat_layout(arch):
    return beat_layout(signed(arch.psum_width), arch.psum_bus_width // arch.psum_width)


def filter_packet_layout(arch):
    return packet_layout(arch.row_id_width, arch.col_id_width, filter_beat_layout(arch).size)


def ifmap_packet_layout(arch):
    return packet_layout(arch.row_id_width, arch.ifmap_col_id_width, ifmap_beat_layout(arch).size)


def psum_packet_layout(arch):
    return packet_layout(arch.row_id_width, arch.col_id_width, psum_beat_layout(arch).size)


def gon_packet_layout(arch):
    return gon2d_packet_layout(arch.rows, arch.cols, psum_beat_layout(arch).size)


# --- ID chain ----------------------------------------------------------------------------------

def xbus_config_layout(arch):
    """What one X-bus holds: row ID and enable of its multicast controller, per GIN."""
    w = arch.row_id_width
    return data.StructLayout({
        "filt_id": w, "filt_en": 1,
        "ifmap_id": w, "ifmap_en": 1,
        "psum_id": w, "psum_en": 1,
    })


def pe_site_config_layout(arch):
    """What one PE site holds: whether the PE takes part in the pass, its col IDs and enables
    per GIN, and its psum source and destination."""
    return data.StructLayout({
        "active": 1,
        "filt_id": arch.col_id_width, "filt_en": 1,
        "ifmap_id": arch.ifmap_col_id_width, "ifmap_en": 1,
        "psum_id": arch.col_id_width, "psum_en": 1,
        "psum_from": PsumFrom,
        "psum_to": PsumTo,
    })


def id_chain_layout(arch):
    """One word of the ID chain: an X-bus record or a PE site record (a union, as wide as the
    wider of the two)."""
    return data.UnionLayout({"xbus": xbus_config_layout(arch), "pe": pe_site_config_layout(arch)})


def id_chain_stages(rows, cols):
    """The chain's stages from the ``ids`` port onwards: ``("xbus", r)`` and ``("pe", r, c)``."""
    stages = []
    for r in range(rows):
        stages.append(("xbus", r))
        stages.extend(("pe", r, c) for c in range(cols))
    return stages


_PSUM_FROM = {"none": PsumFrom.NONE, "below": PsumFrom.BELOW, "gin": PsumFrom.GIN}
_PSUM_TO = {"above": PsumTo.ABOVE, "gon": PsumTo.GON}


def id_chain_words(arch, placement):
    """The ID chain words for ``placement`` (a :class:`rowstat.gen.placement.Placement`), as
    integers, in the order to send them through ``ids``.

    Raises
    ------
    ValueError
        If the placement is for another array shape, or an ID does not fit its field.
    """
    if (placement.rows, placement.cols) != (arch.rows, arch.cols):
        raise ValueError(f"placement is for a {placement.rows} x {placement.cols} array, "
                         f"not {arch.rows} x {arch.cols}")
    layout = id_chain_layout(arch)
    pl = placement

    def check(name, value, width):
        if not 0 <= value < 1 << width:
            raise ValueError(f"{name} {value} does not fit in its {width}-bit field")
        return value

    words = []
    for stage in id_chain_stages(arch.rows, arch.cols):
        if stage[0] == "xbus":
            r = stage[1]
            w = arch.row_id_width
            rec = {"xbus": {
                "filt_id": check("filter row ID", pl.filter_row_id[r], w),
                "filt_en": int(pl.filter_row_en[r]),
                "ifmap_id": check("ifmap row ID", pl.ifmap_row_id[r], w),
                "ifmap_en": int(pl.ifmap_row_en[r]),
                "psum_id": check("psum row ID", pl.psum_row_id[r], w),
                "psum_en": int(pl.psum_row_en[r]),
            }}
        else:
            _, r, c = stage
            place = pl.pes.get((r, c))
            rec = {"pe": {
                "active": int(place is not None),
                "filt_id": check("filter col ID", pl.filter_col_id[r][c], arch.col_id_width),
                "filt_en": int(pl.filter_col_en[r][c]),
                "ifmap_id": check("ifmap col ID", pl.ifmap_col_id[r][c],
                                  arch.ifmap_col_id_width),
                "ifmap_en": int(pl.ifmap_col_en[r][c]),
                "psum_id": check("psum col ID", pl.psum_col_id[r][c], arch.col_id_width),
                "psum_en": int(pl.psum_col_en[r][c]),
                "psum_from": _PSUM_FROM[place.psum_from] if place else PsumFrom.NONE,
                "psum_to": _PSUM_TO[place.psum_to] if place else PsumTo.ABOVE,
            }}
        words.append(pack(layout, rec))
    return words[::-1]       # the far end's word goes in first


# --- packing helpers for test benches and the future controller --------------------------------

def encode_beats(layout, words):
    """Split a list of integer words into beat values of ``layout`` (a :func:`beat_layout`):
    full beats, then a partial one if needed."""
    arr = layout["words"].shape
    n, w = arr.length, arr.elem_shape.width
    mask = (1 << w) - 1
    last_off = layout["last"].offset
    beats = []
    for start in range(0, len(words), n):
        chunk = words[start:start + n]
        value = 0
        for k, word in enumerate(chunk):
            value |= (int(word) & mask) << (k * w)
        beats.append(value | (len(chunk) - 1) << last_off)
    return beats


def encode_packet(layout, row, col, payload):
    """The integer value of a GIN packet of ``layout`` (a :func:`~rowstat.hw.noc.packet_layout`)."""
    return (row << layout["row"].offset) | (col << layout["col"].offset) | \
        (payload << layout["data"].offset)


def decode_gon(arch, value):
    """``(row, col, [psums])`` of a ``psum_out`` packet value (psums as signed integers)."""
    lay = gon_packet_layout(arch)
    beat = psum_beat_layout(arch)
    field = lambda v, f: (v >> f.offset) & ((1 << f.shape.size) - 1) \
        if isinstance(f.shape, data.Layout) else (v >> f.offset) & ((1 << f.shape.width) - 1)
    row, col, payload = (field(value, lay[k]) for k in ("row", "col", "data"))
    last = field(payload, beat["last"])
    w = arch.psum_width
    words = []
    for k in range(last + 1):
        v = (payload >> (k * w)) & ((1 << w) - 1)
        words.append(v - (1 << w) if v >> (w - 1) else v)
    return row, col, words


# --- hardware ----------------------------------------------------------------------------------

class IDChain(wiring.Component):
    """The per-layer configuration shift chain (see the module docstring for the stage order).

    Each transfer on ``ids`` shifts every stage by one: stage 0 takes the new word, stage k the
    old word of stage k - 1. After reset all stages are zero: every bus and PE disabled.

    Attributes
    ----------
    ids : In(stream.Signature(id_chain_layout(arch)))
        Chain words; ready while ``hold`` is low.
    hold : In(1)
        Refuse words (the array is running a pass).
    xbus : Out(xbus_config_layout(arch)).array(rows)
    pe : Out(pe_site_config_layout(arch)).array(rows, cols)
    """

    def __init__(self, arch):
        self._arch = arch
        super().__init__({
            "ids":  In(stream.Signature(id_chain_layout(arch))),
            "hold": In(1),
            "xbus": Out(xbus_config_layout(arch)).array(arch.rows),
            "pe":   Out(pe_site_config_layout(arch)).array(arch.rows, arch.cols),
        })

    def elaborate(self, platform):
        m = Module()
        arch = self._arch
        layout = id_chain_layout(arch)
        stages = id_chain_stages(arch.rows, arch.cols)
        regs = [Signal(layout, name=f"stage_{k}") for k in range(len(stages))]
        m.d.comb += self.ids.ready.eq(~self.hold)
        with m.If(self.ids.valid & self.ids.ready):
            m.d.sync += regs[0].eq(self.ids.payload)
            for k in range(1, len(regs)):
                m.d.sync += regs[k].eq(regs[k - 1])
        for reg, stage in zip(regs, stages):
            if stage[0] == "xbus":
                m.d.comb += self.xbus[stage[1]].eq(reg.xbus)
            else:
                m.d.comb += self.pe[stage[1]][stage[2]].eq(reg.pe)
        return m


def _tree_sum(m, values, name):
    """Balanced adder tree over ``values`` (combinational); returns the sum."""
    values = list(values)
    if not values:
        return C(0, 1)
    level = 0
    while len(values) > 1:
        nxt = []
        for k in range(0, len(values) - 1, 2):
            s = Signal(range(2 ** (max(len(values[k]), len(values[k + 1])) + 1)),
                       name=f"{name}_l{level}_{k // 2}")
            m.d.comb += s.eq(values[k] + values[k + 1])
            nxt.append(s)
        if len(values) % 2:
            nxt.append(values[-1])
        values = nxt
        level += 1
    return values[0]


def pe_site_signature(arch):
    """Ports of a :class:`PESite` (from the site's side)."""
    beats = {"filt": filter_beat_layout(arch), "ifmap": ifmap_beat_layout(arch),
             "psum": psum_beat_layout(arch)}
    members = {
        "cfg":   In(pe_port_layout(arch)),
        "start": In(1),
        "site":  In(pe_site_config_layout(arch)),
    }
    for kind, layout in beats.items():
        members[f"{kind}_write"] = In(1)
        members[f"{kind}_data"] = In(unsigned(layout.size))
        members[f"{kind}_room"] = Out(1)
    members.update({
        "down":    In(stream.Signature(signed(arch.psum_width))),
        "up":      Out(stream.Signature(signed(arch.psum_width))),
        "gon":     Out(stream.Signature(unsigned(beats["psum"].size))),
        "busy":    Out(1),
        "pe_busy": Out(1),
        "mac":     Out(1),
        "skip":    Out(1),
        "stall":   Out(1),
    })
    return wiring.Signature(members)


class PESite(wiring.Component):
    """One PE with everything that is per PE: its GIN FIFOs and beat adapters, the psum source
    and destination muxes and the GON beat packer.

    The array instantiates ``rows * cols`` identical sites; in Verilog they are one module (see
    :class:`PEArray`). Data types: ``filt``, ``ifmap``, ``psum`` (input psums from the psum GIN).

    Attributes
    ----------
    cfg : In(pe_config_layout(arch))
        The pass configuration. The PE's ``psum_in_en`` is set if ``site.psum_from`` is
        BELOW, or if it is GIN and ``cfg.psum_in_en`` is set (the pass sends input psums).
    start : In(1)
        Start the PE if ``site.active``.
    site : In(pe_site_config_layout(arch))
        This site's part of the ID chain.
    filt_write, filt_data, filt_room, ... : GIN FIFO write side (see
        :class:`~rowstat.hw.noc.MulticastBus`); ``*_room`` is the FIFO's ``w_rdy`` (a function
        of its level register).
    down : In(stream)
        Psums from the site below (its ``up``).
    up : Out(stream)
        Psums to the site above, when ``site.psum_to`` is ABOVE.
    gon : Out(stream)
        Psum beats to the GON, when ``site.psum_to`` is GON.
    busy : Out(1)
        The PE is busy or the packer holds psums.
    pe_busy, mac, skip, stall : Out(1)
        The PE's strobes, for the array's counters.
    """

    def __init__(self, arch, *, fifo_depth=2):
        self._arch = arch
        self._fifo_depth = fifo_depth
        super().__init__(pe_site_signature(arch))

    def elaborate(self, platform):
        m = Module()
        arch = self._arch
        site = self.site
        # The array's cfg register holds still through a pass: no copy in every PE.
        m.submodules.pe = pe = PE(arch, count_width=1, latch_cfg=False)
        m.d.comb += [
            pe.cfg.eq(self.cfg),
            # GIN-sourced PEs take input psums only in passes that send them (cfg.psum_in_en):
            # the first channel block of a layer starts from zero with the same IDs.
            pe.cfg.psum_in_en.eq((site.psum_from == PsumFrom.BELOW)
                                 | ((site.psum_from == PsumFrom.GIN) & self.cfg.psum_in_en)),
            pe.start.eq(self.start & site.active),
        ]
        words = {}
        for kind, layout, word in (("filt", filter_beat_layout(arch), signed(arch.weight_width)),
                                   ("ifmap", ifmap_beat_layout(arch), signed(arch.act_width)),
                                   ("psum", psum_beat_layout(arch), signed(arch.psum_width))):
            fifo = small_fifo(layout.size, self._fifo_depth)
            m.submodules[f"{kind}_fifo"] = fifo
            m.d.comb += [
                fifo.w_en.eq(getattr(self, f"{kind}_write")),
                fifo.w_data.eq(getattr(self, f"{kind}_data")),
                getattr(self, f"{kind}_room").eq(fifo.w_rdy),
            ]
            # Words are read out of the FIFO's head: no beat register beside the FIFO.
            adapter = BeatToWords(word, layout["words"].shape.length)
            m.submodules[f"{kind}_words"] = adapter
            m.d.comb += [
                adapter.i.valid.eq(fifo.r_rdy),
                adapter.i.payload.eq(fifo.r_data),
                fifo.r_en.eq(adapter.i.ready),
            ]
            words[kind] = adapter.o
        wiring.connect(m, words["filt"], pe.filt)
        wiring.connect(m, words["ifmap"], pe.ifmap)

        # Input psums: none, the site below, or the psum GIN.
        from_below = Signal()
        from_gin = Signal()
        gin_psums = words["psum"]
        m.d.comb += [
            from_below.eq(site.psum_from == PsumFrom.BELOW),
            from_gin.eq(site.psum_from == PsumFrom.GIN),
            pe.psum_in.valid.eq((from_below & self.down.valid) | (from_gin & gin_psums.valid)),
            pe.psum_in.payload.eq(Mux(from_below, self.down.payload, gin_psums.payload)),
            self.down.ready.eq(from_below & pe.psum_in.ready),
            gin_psums.ready.eq(from_gin & pe.psum_in.ready),
        ]

        # Output psums: up to the site above, or packed into beats for the GON.
        to_gon = Signal()
        gon_beat = psum_beat_layout(arch)
        m.submodules.psum_beats = packer = WordsToBeat(
            signed(arch.psum_width), gon_beat["words"].shape.length)
        m.d.comb += [packer.i.valid.eq(to_gon & pe.psum_out.valid),
                     packer.i.payload.eq(pe.psum_out.payload),
                     packer.flush.eq(~pe.busy),
                     self.busy.eq(pe.busy | packer.busy)]
        packer_i_ready = packer.i.ready
        packer_o = packer.o
        m.d.comb += [
            to_gon.eq(site.psum_to == PsumTo.GON),
            self.up.valid.eq(~to_gon & pe.psum_out.valid),
            self.up.payload.eq(pe.psum_out.payload),
            pe.psum_out.ready.eq(Mux(to_gon, packer_i_ready, self.up.ready)),
            self.gon.valid.eq(packer_o.valid),
            self.gon.payload.eq(packer_o.payload),
            packer_o.ready.eq(self.gon.ready),
            self.pe_busy.eq(pe.busy),
            self.mac.eq(pe.mac),
            self.skip.eq(pe.skip),
            self.stall.eq(pe.stall),
        ]
        return m


def tick_layout(arch):
    """Per-cycle counts of the array (:attr:`PEArray.tick`)."""
    n = range(arch.pes + 1)
    return data.StructLayout({"run": 1, "active": 1, "macs": n, "skipped": n, "idle": n,
                              "stalls": n})


class PEArray(wiring.Component):
    """The PE array with its NoC (see the module docstring).

    Parameters
    ----------
    arch : ArchConfig
    count_width : int
        Width of the counters.
    fifo_depth : int
        Entries of each PE's GIN FIFOs and of the GON FIFOs.
    shared_sites : bool
        True (the default, for Verilog): the ``rows * cols`` :class:`PESite` are Verilog
        instances of one module, named :attr:`site_module`, whose text
        :meth:`verilog_submodules` gives (``rowstat generate`` appends it). Amaranth gives every
        submodule instance its own Verilog module, which for 168 PEs makes half a million lines
        and a Verilator build of half an hour; one shared module keeps both small. The Amaranth
        simulator cannot run such instances: use False there (the sites are then ordinary
        submodules; the same PESite code either way).

    Attributes
    ----------
    ids : In(stream.Signature(id_chain_layout(arch)))
        ID chain words (:func:`id_chain_words`); taken only while ``busy`` is low.
    cfg : In(pe_config_layout(arch))
        Pass configuration shared by all PEs, sampled on ``start``; ``psum_in_en``: the psum
        GIN feeds this pass (the PEs whose psum source is the GIN take input psums).
    start : In(1)
        Start a pass (ignored while ``busy``).
    busy : Out(1)
    filt, ifmap, psum_in : In(stream.Signature(...))
        GIN packets (:func:`filter_packet_layout`, :func:`ifmap_packet_layout`,
        :func:`psum_packet_layout`).
    psum_out : Out(stream.Signature(gon_packet_layout(arch)))
        Output psums tagged with their source PE.
    cycles, macs, skipped, idle, stalls : Out(count_width)
        Counters of the last pass.
    tick : Out(tick_layout(arch))
        The same counts per cycle (what the counters add each cycle), for totals kept
        elsewhere: ``run`` (``cycles`` counts it), ``active`` (the cycles in which the other
        fields count: two cycles behind, for the adder trees), and the ``macs``,
        ``skipped``, ``idle``, ``stalls`` added in this cycle (zero when not ``active``).
    """

    #: Cycles after start during which the pass counts as running whatever the (delayed) busy
    #: tree says: start and cfg register (1) + PE start (1) + busy tree (2) - 1.
    START_HOLD = 3

    def __init__(self, arch, *, count_width=32, fifo_depth=2, shared_sites=True):
        self._arch = arch
        self._count_width = count_width
        self._fifo_depth = fifo_depth
        self._shared = shared_sites
        super().__init__({
            "ids":      In(stream.Signature(id_chain_layout(arch))),
            "cfg":      In(pe_config_layout(arch)),
            "start":    In(1),
            "busy":     Out(1),
            "filt":     In(stream.Signature(filter_packet_layout(arch))),
            "ifmap":    In(stream.Signature(ifmap_packet_layout(arch))),
            "psum_in":  In(stream.Signature(psum_packet_layout(arch))),
            "psum_out": Out(stream.Signature(gon_packet_layout(arch))),
            "cycles":   Out(count_width),
            "macs":     Out(count_width),
            "skipped":  Out(count_width),
            "idle":     Out(count_width),
            "stalls":   Out(count_width),
            "tick":     Out(tick_layout(arch)),
        })

    @property
    def arch(self):
        return self._arch

    @property
    def site_module(self):
        """Verilog name of the shared PE site module (unique per configuration)."""
        key = hashlib.sha256(f"{self._arch.key()} {self._fifo_depth}".encode()).hexdigest()
        return f"rowstat_pe_site_{key[:12]}"

    def verilog_submodules(self):
        """Verilog text of the modules the array instantiates by name (empty if
        ``shared_sites`` is False)."""
        if not self._shared:
            return ""
        import re

        from amaranth.back import verilog
        text = verilog.convert(PESite(self._arch, fifo_depth=self._fifo_depth),
                               name=self.site_module, emit_src=False)
        # Verilator would otherwise inline all rows * cols instances into one huge C++ model
        # (1.5 M lines for 12 x 14); kept as a module, its C++ is compiled once.
        header = re.compile(rf"^module {re.escape(self.site_module)}\(.*?\);\n",
                            re.MULTILINE | re.DOTALL)
        match = header.search(text)
        if match is None:
            raise AssertionError(f"module {self.site_module} not found in its Verilog")
        return text[:match.end()] + "  /* verilator no_inline_module */\n" + text[match.end():]

    def elaborate(self, platform):
        m = Module()
        arch = self._arch
        rows, cols = arch.rows, arch.cols
        fd = self._fifo_depth

        # --- PE sites ---------------------------------------------------------------------------
        sig = pe_site_signature(arch)
        sites = [[None] * cols for _ in range(rows)]
        for r in range(rows):
            for c in range(cols):
                if self._shared:
                    site = sig.create(path=(f"site_{r}_{c}",))
                    ports = {}
                    for path, member, value in sig.flatten(site):
                        prefix = "i_" if member.flow == In else "o_"
                        ports[prefix + "__".join(str(p) for p in path)] = Value.cast(value)
                    m.submodules[f"site_{r}_{c}"] = Instance(
                        self.site_module, i_clk=ClockSignal(), i_rst=ResetSignal(), **ports)
                else:
                    site = PESite(arch, fifo_depth=fd)
                    m.submodules[f"site_{r}_{c}"] = site
                sites[r][c] = site

        # --- ID chain ----------------------------------------------------------------------
        m.submodules.ids = chain = IDChain(arch)
        wiring.connect(m, wiring.flipped(self.ids), chain.ids)
        m.d.comb += chain.hold.eq(self.busy)
        for r in range(rows):
            for c in range(cols):
                m.d.comb += sites[r][c].site.eq(chain.pe[r][c])

        # --- GINs: Y-bus and X-buses here, the PE FIFOs in the sites ---------------------------
        col_w = {"filt": arch.col_id_width, "ifmap": arch.ifmap_col_id_width,
                 "psum": arch.col_id_width}
        sizes = {"filt": filter_beat_layout(arch).size, "ifmap": ifmap_beat_layout(arch).size,
                 "psum": psum_beat_layout(arch).size}
        ports = {"filt": self.filt, "ifmap": self.ifmap, "psum": self.psum_in}
        for kind in ("filt", "ifmap", "psum"):
            bus = MulticastBus(rows, cols, arch.row_id_width, col_w[kind], sizes[kind])
            m.submodules[f"{kind}_gin"] = bus
            wiring.connect(m, wiring.flipped(ports[kind]), bus.i)
            for r in range(rows):
                x = chain.xbus[r]
                m.d.comb += [bus.row_ids[r].eq(getattr(x, f"{kind}_id")),
                             bus.row_en[r].eq(getattr(x, f"{kind}_en"))]
                for c in range(cols):
                    s = chain.pe[r][c]
                    site = sites[r][c]
                    m.d.comb += [
                        bus.col_ids[r][c].eq(getattr(s, f"{kind}_id")),
                        bus.col_en[r][c].eq(getattr(s, f"{kind}_en")),
                        bus.room[r][c].eq(getattr(site, f"{kind}_room")),
                        getattr(site, f"{kind}_write").eq(bus.write[r][c]),
                        getattr(site, f"{kind}_data").eq(bus.data),
                    ]

        # --- GON and local psum links --------------------------------------------------------------
        m.submodules.gon = gon = GON2D(rows, cols, sizes["psum"], fifo_depth=fd)
        wiring.connect(m, gon.o, wiring.flipped(self.psum_out))
        for r in range(rows):
            for c in range(cols):
                site = sites[r][c]
                wiring.connect(m, site.gon, gon.i[r][c])
                if r > 0:
                    wiring.connect(m, sites[r - 1][c].up, site.down)
                else:
                    m.d.comb += [site.down.valid.eq(0), site.down.payload.eq(0)]
                if r + 1 == rows:
                    m.d.comb += site.up.ready.eq(0)

        # --- pass control --------------------------------------------------------------------
        accept = Signal()
        start_r = Signal()
        cfg_r = Signal(pe_port_layout(arch))
        m.d.comb += accept.eq(self.start & ~self.busy)
        m.d.sync += start_r.eq(accept)
        row_words = Signal.like(cfg_r.row_words)     # one multiplier for it and its last
        m.d.comb += row_words.eq(pe_products(self.cfg)["row_words"])
        with m.If(accept):
            m.d.sync += cfg_r.as_value()[:len(self.cfg.as_value())].eq(self.cfg)
            m.d.sync += [cfg_r[name].eq(v)
                         for name, v in pe_products(self.cfg, row_words).items()]
        for r in range(rows):
            for c in range(cols):
                m.d.comb += [sites[r][c].cfg.eq(cfg_r), sites[r][c].start.eq(start_r)]

        # --- busy: registered OR tree (per row, then across rows) ----------------------------------
        run = Signal()
        hold = Signal(range(self.START_HOLD + 1))
        row_busy = Signal(rows)
        gon_busy = Signal()
        any_busy = Signal()
        run_d = Signal(2)
        m.d.sync += [
            row_busy.eq(Cat(Cat(sites[r][c].busy for c in range(cols)).any()
                            for r in range(rows))),
            gon_busy.eq(gon.busy),
            any_busy.eq(row_busy.any() | gon_busy),
            run_d.eq(Cat(run, run_d[0])),
        ]
        with m.If(accept):
            m.d.sync += [run.eq(1), hold.eq(self.START_HOLD)]
        with m.Elif(run):
            with m.If(hold != 0):
                m.d.sync += hold.eq(hold - 1)
            with m.Elif(~any_busy):
                m.d.sync += run.eq(0)
        m.d.comb += self.busy.eq(run | run_d.any())

        # --- counters: registered adder trees (per row, then across rows) ------------------------
        strobes = {
            "macs":    lambda site: site.mac,
            "skipped": lambda site: site.skip,
            "stalls":  lambda site: site.stall,
            "idle":    lambda site: ~site.pe_busy,
        }
        m.d.comb += [self.tick.run.eq(run), self.tick.active.eq(run_d[1])]
        with m.If(accept):
            m.d.sync += self.cycles.eq(0)
        with m.Elif(run):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        for name, strobe in strobes.items():
            row_sums = []
            for r in range(rows):
                s = Signal(range(cols + 1), name=f"{name}_row_{r}")
                m.d.sync += s.eq(_tree_sum(m, [strobe(sites[r][c]) for c in range(cols)],
                                           f"{name}_row{r}"))
                row_sums.append(s)
            total = Signal(range(rows * cols + 1), name=f"{name}_total")
            m.d.sync += total.eq(_tree_sum(m, row_sums, f"{name}_all"))
            m.d.comb += self.tick[name].eq(Mux(run_d[1], total, 0))
            counter = getattr(self, name)
            with m.If(accept):
                m.d.sync += counter.eq(0)
            with m.Elif(run_d[1]):
                m.d.sync += counter.eq(counter + total)
        return m
