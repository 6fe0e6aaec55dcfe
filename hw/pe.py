"""The row-stationary processing element (PE).

One PE runs the 1-D convolution primitive of the RS dataflow: it holds p filter rows of q
channels (p*q*S weights) in its filter spad, slides a window of q ifmap rows through its ifmap
spad, and accumulates p psums per output column in its psum spad.

Step order within one output column f (s outermost, k innermost)::

    for s in range(S):            # filter column
        for c in range(q):        # channel
            x = ifmap[c][U*f + s] # one ifmap spad read ...
            for k in range(p):    # ... reused by p weights: psum[k] += x * w[k][c][s]

so the filter spad address is simply the step index within the column, and each ifmap word
is read once per column and reused p times. One step issues per cycle; the MAC is a
three-stage pipeline (spad read, multiply, accumulate).

Data orders on the ports:

* ``filt``: the p*q*S weights of the pass, in step order: ``w[k][c][s]`` at
  ``(s*q + c)*p + k``. Steps may start as soon as their weight has arrived.
* ``ifmap``: ``n_rows`` ifmap rows of ``U*(F-1) + S`` positions each, position-major:
  word ``x*q + c`` of a row is channel c at position x.
* ``psum_in`` / ``psum_out``: for each row, for each column f, the p psums k = 0..p-1.

Timing is independent of the data: a zero ifmap word skips the filter spad read and the p
multiplies (the power saving of zero gating) but keeps its cycles, so the cycle count of a
pass is a function of its shape alone, which is what lets the analytical model match the RTL
exactly. Skipped MACs are counted.

The window is a circular buffer with a low-water mark: a position is freed as soon as the
last column that needs it has finished with it, so the next positions stream in while the
MACs run and the MAC stays busy every cycle in steady state (given q*S <= spad depth and an
ifmap supply of U*q words per p*q*S cycles). When the stride exceeds the filter width
(U > S) the positions no window covers are taken from the stream and dropped, never stored,
so the spad only ever holds words some column will read.

Finished psums leave through a FIFO as deep as the psum spad (the "second psum bank"): the
next column's MACs start while the last column's psums wait for the input psums from below,
are added to them and sent up.
"""

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .fifo import BlockFIFO


__all__ = ["PE", "pe_config_layout", "pe_port_layout", "pe_products", "pe_stream_limit",
           "pe_f_width", "pe_rows_width", "PE_U_WIDTH"]

#: Width of the horizontal stride U in the PE configuration (up to 15).
PE_U_WIDTH = 4


def _bits(n):
    return max(1, int(n).bit_length())


def pe_stream_limit(arch):
    """Most ifmap words a PE takes in one pass: its stream is one destination's share of a
    region of the GLB's ifmap space, so n_rows, F and a row's words are at most this. The
    ifmap space is at most ``glb_banks - 1`` banks, as the psums take one bank or more."""
    return (max(1, arch.glb_banks - 1) * arch.glb_bank_depth
            * (arch.glb_width // arch.act_width))


def pe_f_width(arch):
    """Width of the ofmap row width F: up to 4095, or the stream limit if smaller."""
    return min(12, _bits(pe_stream_limit(arch)))


def pe_rows_width(arch):
    """Width of n_rows, the 1-D convolutions (ifmap rows) of a pass: up to 65535, or the
    stream limit if smaller."""
    return min(16, _bits(pe_stream_limit(arch)))


def pe_config_layout(arch):
    """The per-pass configuration of one PE (all counts are actual values, not minus one)."""
    return data.StructLayout({
        "p": _bits(arch.psum_spad_depth),      # filters per PE, 1..psum_spad_depth
        "q": _bits(arch.ifmap_spad_depth),     # channels per PE, q*S <= ifmap_spad_depth
        "S": _bits(arch.ifmap_spad_depth),     # filter width
        "F": pe_f_width(arch),                 # output columns per row
        "U": PE_U_WIDTH,                       # horizontal stride
        "n_rows": pe_rows_width(arch),         # rows (1-D convolutions) in this pass
        "psum_in_en": 1,                       # add the psum_in stream to the outputs
    })


#: Configuration fields whose value minus one the PE compares its counters with.
_LAST = {"p_last": "p", "q_last": "q", "S_last": "S", "U_last": "U", "F_last": "F"}


def _minus_one(v):
    # n_rows may be 0 (a pass with nothing to do): its "last" is then never looked at.
    return max(v - 1, 0) if isinstance(v, int) else v - 1


def pe_products(cfg, row_words=None):
    """The per-pass products a PE needs from its configuration (ints or Amaranth values):
    ``pqS`` weights, ``row_words`` words per ifmap row, and the last values of its counters
    (``p_last`` = p - 1, ..., ``row_words_last``), so that no PE has subtractors of its own.
    ``row_words``: that product if already computed (a signal, so that it is built once)."""
    if row_words is None:
        row_words = (cfg["U"] * (cfg["F"] - 1) + cfg["S"]) * cfg["q"]
    return {"pqS": cfg["p"] * cfg["q"] * cfg["S"],
            "row_words": row_words,
            "row_words_last": _minus_one(row_words),
            **{name: _minus_one(cfg[field]) for name, field in _LAST.items()}}


def pe_port_layout(arch):
    """The PE's ``cfg`` port: the pass configuration and its :func:`pe_products`, computed
    once for the whole array rather than in every PE."""
    fields = {name: fld.shape for name, fld in pe_config_layout(arch)}
    q = fields["q"]
    row_words = min(PE_U_WIDTH + fields["F"] + 2 * q, _bits(pe_stream_limit(arch)))
    return data.StructLayout(fields | {
        "pqS": fields["p"] + q + fields["S"],
        "row_words": row_words,
        "row_words_last": row_words,
    } | {name: fields[field] for name, field in _LAST.items()})


class _State(enum.Enum, shape=2):
    IDLE = 0
    SETUP = 1
    RUN = 2
    DRAIN = 3


class PE(wiring.Component):
    """Row-stationary PE.

    Parameters
    ----------
    arch : ArchConfig
        Widths and spad depths come from here.
    count_width : int
        Width of the MAC and skipped-MAC counters.
    latch_cfg : bool
        Latch ``cfg`` on ``start``. Without it ``cfg`` must hold still while ``busy`` (the
        array's registered configuration does), which saves a register per PE.

    Attributes
    ----------
    cfg : In(pe_port_layout(arch))
        Pass configuration and its products, latched on ``start`` (see ``latch_cfg``).
    start : In(1)
        Begin a pass with ``cfg``. Only accepted while ``busy`` is low.
    busy : Out(1)
        A pass is running (high from the cycle after ``start`` until its last psum has left).
    filt, ifmap, psum_in : In(stream)
        Weights, ifmap words and input psums (orders in the module docstring).
    psum_out : Out(stream)
        Output psums: the PE's own sums plus, if ``psum_in_en``, the input psums.
    mac, skip, stall : Out(1)
        Per-cycle strobes: a MAC issued, a MAC skipped by zero gating, a running PE that
        could not issue (waiting for data or for room to put its psums).
    macs, skipped : Out(count_width)
        MACs done and skipped since the last ``start``.
    """

    def __init__(self, arch, *, count_width=32, latch_cfg=True):
        self._arch = arch
        self._count_width = count_width
        self._latch_cfg = latch_cfg
        super().__init__({
            "cfg": In(pe_port_layout(arch)),
            "start": In(1),
            "busy": Out(1),
            "filt": In(stream.Signature(signed(arch.weight_width))),
            "ifmap": In(stream.Signature(signed(arch.act_width))),
            "psum_in": In(stream.Signature(signed(arch.psum_width))),
            "psum_out": Out(stream.Signature(signed(arch.psum_width))),
            "mac": Out(1),
            "skip": Out(1),
            "stall": Out(1),
            "macs": Out(count_width),
            "skipped": Out(count_width),
        })

    @property
    def arch(self):
        return self._arch

    def elaborate(self, platform):
        arch = self._arch
        m = Module()
        ID = arch.ifmap_spad_depth
        PD = arch.psum_spad_depth
        # The window holds at most ID words, but its slots are a power of two, so that slot
        # arithmetic wraps by truncation (no compare and mux per addition); LUT RAM comes 16
        # words deep anyway.
        slot_w = _bits(ID - 1)
        slots = 1 << slot_w

        # --- spads ---------------------------------------------------------------------------
        # Memories by size: the filter spad (p*q*S words) is the one that earns a block RAM, and
        # is read synchronously so that it can be one even when small (in flip-flops each word
        # bit would take an iCE40 logic cell and the read a mux). The ifmap and psum spads and
        # the psum FIFOs are a few words each: read combinationally, they are LUT RAM on an
        # ECP5 (DPR16X4) where a block RAM would be mostly empty, and the synthesis tool is left
        # to pick their cells. An iCE40 has no LUT RAM: there (``psum_block_ram``) the psum
        # spad and FIFOs are block RAMs, the spad read a stage early.
        block = bool(arch.psum_block_ram)
        m.submodules.filter_spad = filter_spad = Memory(
            shape=signed(arch.weight_width), depth=arch.filter_spad_depth, init=[],
            attrs={"ram_style": "block"})
        m.submodules.ifmap_spad = ifmap_spad = Memory(
            shape=signed(arch.act_width), depth=slots, init=[])
        m.submodules.psum_spad = psum_spad = Memory(
            shape=signed(arch.psum_width), depth=PD, init=[],
            attrs={"ram_style": "block"} if block else {})
        f_wr = filter_spad.write_port()
        f_rd = filter_spad.read_port(domain="sync")
        i_wr = ifmap_spad.write_port()
        i_rd = ifmap_spad.read_port(domain="comb")   # read in the issue cycle
        p_wr = psum_spad.write_port()
        # Read-modify-write in the accumulate stage: a combinational read sees every earlier
        # write and needs no bypass; a block RAM is read in the multiply stage with the
        # accumulate stage's write visible, which is what a read in the accumulate stage sees.
        p_rd = (psum_spad.read_port(transparent_for=(p_wr,)) if block
                else psum_spad.read_port(domain="comb"))
        small_fifo_cls = BlockFIFO if block else SyncFIFO
        m.submodules.done = done = small_fifo_cls(width=arch.psum_width, depth=PD)
        # Depth 3: a buffered FIFO of depth 2 passes only one word every other cycle, which
        # would halve the psum rate up a chain (and 1x1 layers, where a column is p steps).
        m.submodules.out = outq = small_fifo_cls(width=arch.psum_width, depth=3)

        # --- latched pass configuration and derived per-pass constants -----------------------
        cfg = Signal(pe_port_layout(arch)) if self._latch_cfg else self.cfg
        state = Signal(_State)
        pqS, row_words = cfg.pqS, cfg.row_words
        step_pos = Signal.like(cfg.S)       # window advance per column in stored positions:
                                            # min(U, S), as uncovered positions are not stored

        # --- ifmap window bookkeeping ---------------------------------------------------------
        occ = Signal(range(ID + 1))                          # words stored - words released
        wr_slot = Signal(slot_w)
        lwm_slot = Signal(slot_w)                            # slot of the oldest unreleased word
        rd_off = Signal(range(ID + 1))                       # read word, relative to lwm
        wr_pos = Signal.like(row_words)                      # words written in the current row
        wr_rows = Signal.like(cfg.n_rows)                    # rows completely written
        wr_c = Signal.like(cfg.q)                            # channel of the incoming word
        wr_phase = Signal(PE_U_WIDTH)                        # its position modulo U
        filt_cnt = Signal(range(arch.filter_spad_depth + 1))

        # --- issue counters -------------------------------------------------------------------
        k = Signal(range(PD + 1))
        c = Signal(range(ID + 1))
        s = Signal(range(ID + 1))
        f = Signal.like(cfg.F)
        step = Signal(range(arch.filter_spad_depth + 1))     # = filter spad address
        # All rows written and every stored word released: the last column of the last row
        # has issued (each row's columns release exactly the positions it stored), so no
        # counter of issued rows is needed.
        issue_done = Signal()

        def wrap_add(a, b):
            """(a + b) mod slots."""
            return (a + b)[:slot_w]

        m.d.comb += self.busy.eq(state != _State.IDLE)

        # --- configuration and setup ----------------------------------------------------------
        with m.Switch(state):
            with m.Case(_State.IDLE):
                with m.If(self.start):
                    if self._latch_cfg:
                        m.d.sync += cfg.eq(self.cfg)
                    m.d.sync += [
                        state.eq(_State.SETUP),
                        occ.eq(0), wr_slot.eq(0), lwm_slot.eq(0), rd_off.eq(0),
                        wr_pos.eq(0), wr_rows.eq(0), wr_c.eq(0), wr_phase.eq(0), filt_cnt.eq(0),
                        k.eq(0), c.eq(0), s.eq(0), f.eq(0), step.eq(0),
                        self.macs.eq(0), self.skipped.eq(0),
                    ]
            with m.Case(_State.SETUP):
                m.d.sync += [
                    step_pos.eq(Mux(cfg.U < cfg.S, cfg.U, cfg.S)),
                    state.eq(_State.RUN),
                ]

        running = state == _State.RUN

        # --- filter load ----------------------------------------------------------------------
        m.d.comb += [
            self.filt.ready.eq(running & (filt_cnt < pqS)),
            f_wr.addr.eq(filt_cnt),
            f_wr.data.eq(self.filt.payload),
            f_wr.en.eq(self.filt.valid & self.filt.ready),
        ]
        with m.If(f_wr.en):
            m.d.sync += filt_cnt.eq(filt_cnt + 1)

        # --- ifmap write side -----------------------------------------------------------------
        wr_fire = Signal()
        wr_all = wr_rows == cfg.n_rows
        keep = wr_phase < cfg.S          # covered by some window (always, unless U > S)
        m.d.comb += [
            issue_done.eq(wr_all & (occ == 0)),
            self.ifmap.ready.eq(running & ((occ < ID) | ~keep) & ~wr_all),
            wr_fire.eq(self.ifmap.valid & self.ifmap.ready),
            i_wr.addr.eq(wr_slot),
            i_wr.data.eq(self.ifmap.payload),
            i_wr.en.eq(wr_fire & keep),
        ]
        with m.If(wr_fire):
            with m.If(keep):
                m.d.sync += wr_slot.eq(wrap_add(wr_slot, 1))
            with m.If(wr_pos == cfg.row_words_last):
                m.d.sync += [wr_pos.eq(0), wr_rows.eq(wr_rows + 1), wr_c.eq(0), wr_phase.eq(0)]
            with m.Else():
                m.d.sync += wr_pos.eq(wr_pos + 1)
                with m.If(wr_c == cfg.q_last):
                    m.d.sync += [wr_c.eq(0),
                                 wr_phase.eq(Mux(wr_phase == cfg.U_last, 0, wr_phase + 1))]
                with m.Else():
                    m.d.sync += wr_c.eq(wr_c + 1)

        # --- issue stage (stage 0) ------------------------------------------------------------
        last_k = k == cfg.p_last
        last_c = c == cfg.q_last
        last_s = s == cfg.S_last
        last_f = f == cfg.F_last
        first = (s == 0) & (c == 0)
        last = last_s & last_c

        # pipeline registers
        v1 = Signal(); k1 = Signal.like(k); first1 = Signal(); last1 = Signal(); zero1 = Signal()
        x1 = Signal(signed(arch.act_width))
        v2 = Signal(); k2 = Signal.like(k); first2 = Signal(); last2 = Signal()
        prod2 = Signal(signed(arch.product_width))

        inflight_last = (v1 & last1) + (v2 & last2)
        room = (done.level + inflight_last) < PD
        have_filter = step < filt_cnt
        have_ifmap = rd_off < occ
        issue = Signal()
        m.d.comb += issue.eq(running & ~issue_done & have_filter & have_ifmap & (~last | room))

        m.d.comb += i_rd.addr.eq(wrap_add(lwm_slot, rd_off))
        x = i_rd.data
        zero = x == 0
        m.d.comb += [
            f_rd.addr.eq(step),
            f_rd.en.eq(issue & ~zero),
            self.mac.eq(issue & ~zero),
            self.skip.eq(issue & zero),
            self.stall.eq(running & ~issue_done & ~issue),
        ]
        with m.If(self.mac):
            m.d.sync += self.macs.eq(self.macs + 1)
        with m.If(self.skip):
            m.d.sync += self.skipped.eq(self.skipped + 1)

        # Window release: a position is freed when the last column that needs it is done with
        # it (columns < F-1 free their first min(U, S) stored positions, the last column all S).
        group_done = issue & last_k                      # one (s, c) word finished
        pos_release = group_done & last_c & ((s < step_pos) | last_f)
        col_done = group_done & last
        with m.If(running):
            m.d.sync += occ.eq(occ + (wr_fire & keep) - Mux(pos_release, cfg.q, 0))
            with m.If(pos_release):
                m.d.sync += lwm_slot.eq(wrap_add(lwm_slot, cfg.q))

        with m.If(issue):
            m.d.sync += [v1.eq(1), k1.eq(k), first1.eq(first), last1.eq(last), zero1.eq(zero),
                         x1.eq(x)]
            with m.If(last_k):
                m.d.sync += k.eq(0)
                with m.If(col_done):
                    m.d.sync += [rd_off.eq(0), step.eq(0), c.eq(0), s.eq(0)]
                    with m.If(last_f):
                        m.d.sync += f.eq(0)
                    with m.Else():
                        m.d.sync += f.eq(f + 1)
                with m.Else():
                    m.d.sync += [
                        rd_off.eq(rd_off + 1 - Mux(pos_release, cfg.q, 0)),
                        step.eq(step + 1),
                    ]
                    with m.If(last_c):
                        m.d.sync += [c.eq(0), s.eq(s + 1)]
                    with m.Else():
                        m.d.sync += c.eq(c + 1)
            with m.Else():
                m.d.sync += [k.eq(k + 1), step.eq(step + 1)]
        with m.Else():
            m.d.sync += v1.eq(0)

        # --- multiply stage (stage 1): the filter spad word arrives now ----------------------
        m.d.sync += [v2.eq(v1), k2.eq(k1), first2.eq(first1), last2.eq(last1),
                     # zero1: x1 is zero anyway, but the clear maps onto the DSP's output
                     # register reset (about 50 ECP5 LUT4 fewer than no mux)
                     prod2.eq(Mux(zero1, 0, x1 * f_rd.data))]

        # --- accumulate stage (stage 2) --------------------------------------------------------
        acc = Signal(signed(arch.psum_width))
        m.d.comb += [
            p_rd.addr.eq(k1 if block else k2),
            acc.eq(Mux(first2, 0, p_rd.data) + prod2),
            p_wr.addr.eq(k2),
            p_wr.data.eq(acc),
            p_wr.en.eq(v2 & ~last2),
            done.w_data.eq(acc),
            done.w_en.eq(v2 & last2),
        ]

        # --- output: own psums + input psums -> psum_out -----------------------------------
        add_fire = Signal()
        m.d.comb += [
            add_fire.eq(done.r_rdy & (self.psum_in.valid | ~cfg.psum_in_en) & outq.w_rdy),
            done.r_en.eq(add_fire),
            self.psum_in.ready.eq(add_fire & cfg.psum_in_en),
            outq.w_en.eq(add_fire),
            outq.w_data.eq(done.r_data.as_signed() +
                           Mux(cfg.psum_in_en, self.psum_in.payload, 0)),
            self.psum_out.valid.eq(outq.r_rdy),
            self.psum_out.payload.eq(outq.r_data),
            outq.r_en.eq(self.psum_out.ready),
        ]

        # --- end of pass ------------------------------------------------------------------------
        with m.If(running & issue_done):
            m.d.sync += state.eq(_State.DRAIN)
        with m.If((state == _State.DRAIN) & ~v1 & ~v2 & (done.level == 0) & (outq.level == 0)):
            m.d.sync += state.eq(_State.IDLE)

        return m
