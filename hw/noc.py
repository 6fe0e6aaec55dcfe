"""Global networks-on-chip: the multicast Global Input Network (GIN) and the Global Output
Network (GON).

One :class:`MulticastGIN` carries one data type (filter, ifmap or psum) from the global buffer to
the PE array. Every packet carries a (row tag, col tag); each X-bus (PE row) has a multicast
controller holding a row ID and each PE one holding a col ID, all set per layer. A packet reaches
exactly the PEs ``(r, c)`` with ``row_ids[r] == row tag`` and ``col_ids[r][c] == col tag``, all of
them in the same cycle, and it is sent only when every one of them can take it.

:class:`GON` goes the other way: one stream per column (from the top PE of the column) merged by a
round-robin arbiter into one stream of ``(col, data)`` packets towards the global buffer.

Both are built from plain integers so they can be tested on their own; the array top derives the
integers from its configuration.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

__all__ = ["packet_layout", "gon_packet_layout", "MulticastGIN", "GON"]


def _check_positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TypeError(f"{name} must be a positive integer, not {value!r}")


def packet_layout(row_id_width, col_id_width, payload_width):
    """Layout of a GIN packet: ``row`` tag, ``col`` tag, ``data`` payload (fields from the LSB up).

    Parameters
    ----------
    row_id_width, col_id_width : int
        Widths of the row and col tags; equal to the widths of the row and col IDs they are
        compared with.
    payload_width : int
        Width of the payload (one bus beat).

    Raises
    ------
    TypeError
        If a width is not a positive integer.
    """
    _check_positive("Row ID width", row_id_width)
    _check_positive("Col ID width", col_id_width)
    _check_positive("Payload width", payload_width)
    return data.StructLayout({
        "row":  unsigned(row_id_width),
        "col":  unsigned(col_id_width),
        "data": unsigned(payload_width),
    })


def _index_width(count):
    """Bits of an index 0..count-1 (at least 1, so a 1-column array still has a field)."""
    return max(1, (count - 1).bit_length())


def gon_packet_layout(cols, payload_width):
    """Layout of a GON packet: source ``col`` (the column index), ``data`` payload."""
    _check_positive("Column count", cols)
    _check_positive("Payload width", payload_width)
    return data.StructLayout({
        "col":  unsigned(_index_width(cols)),
        "data": unsigned(payload_width),
    })


class MulticastGIN(wiring.Component):
    """Global Input Network for one data type: Y-bus, ``rows`` X-buses, tag-matching multicast.

    Pipeline (all numbers are clock cycles):

    * **Y-bus register.** The input packet is registered once, in a two-entry skid buffer (a main
      register and a skid register). ``i.ready`` is the skid register being empty: a flop, so no
      path runs from the PEs to the global buffer. When a packet enters the main register its
      destination mask (one bit per PE, ``row_ids[r] == row`` and ``col_ids[r][c] == col``) is
      computed and registered with it, so the send decision starts from flops.
    * **Send decision.** The packet in the main register goes out when, for every PE, the PE is
      not a destination or its FIFO has room: an AND over ``rows * cols`` pairs of flops (per row,
      then across rows). It is written to all destination FIFOs in the same cycle (one transfer).
    * **PE FIFOs.** Each PE has a ``fifo_depth``-entry :class:`~amaranth.lib.fifo.SyncFIFO`; its
      read side is the PE's output stream ``o[r][c]``. "Has room" is the FIFO's ``w_rdy``, which
      Amaranth derives from the FIFO's level register alone (``level != depth``): a full FIFO does
      not take a write in the same cycle as a read. So the ready of a PE (``o[r][c].ready``)
      only changes a level register; it never reaches the send decision combinationally, and the
      all-destinations-ready check is a function of registers. The price is that a full FIFO
      being read this cycle is seen to have room one cycle later; with ``fifo_depth >= 2`` a PE
      that reads every cycle still gets a packet every cycle. (A credit counter at the sender
      would be needed only if a pipeline register were put between the bus and the FIFOs; there
      is none here, so the FIFO level is the exact occupancy and no credits are kept.)

    Latency: a packet taken on ``i`` in cycle ``t`` is written to its FIFOs at the end of cycle
    ``t + 1`` and is valid on ``o[r][c]`` in cycle ``t + 2``, when its destinations have room and
    nothing is ahead of it. Throughput: one packet per cycle.

    Ordering and blocking: the GIN is in order. A packet at the head waiting for a full FIFO
    holds up the packets behind it (as in Eyeriss), but a PE that has stopped reading holds up
    nothing else while its FIFO has room, and never holds up a head packet not addressed to it.

    A packet that matches no PE is consumed in one cycle without writing anywhere, and flagged
    on ``unmatched``. IDs are sampled when a packet enters the main register: change them only
    when the GIN is idle (``busy`` low), i.e. between layers.

    Parameters
    ----------
    rows, cols : int
        PE array shape: ``rows`` X-buses of ``cols`` PEs each.
    row_id_width, col_id_width : int
        Widths of the row IDs / row tags and of the col IDs / col tags.
    payload_width : int
        Width of a packet's payload.
    fifo_depth : int
        Entries of each PE's input FIFO (default 2: the least for one packet per cycle).

    Attributes
    ----------
    i : In(stream.Signature(packet_layout(row_id_width, col_id_width, payload_width)))
        Packets from the global buffer.
    row_ids : In(unsigned(row_id_width)).array(rows)
        Row ID of each X-bus multicast controller; static during a layer.
    col_ids : In(unsigned(col_id_width)).array(rows, cols)
        Col ID of each PE, indexed ``[r][c]``; static during a layer.
    o : Out(stream.Signature(unsigned(payload_width))).array(rows, cols)
        Payload stream into each PE, indexed ``[r][c]`` (the PE FIFO's read side).
    delivered : Out(1)
        Strobe: a packet was sent to one or more PEs (registered: high the cycle after).
    unmatched : Out(1)
        Strobe: a packet matching no PE was dropped (registered: high the cycle after).
    stall : Out(1)
        High for each cycle a packet waited because some destination FIFO was full (registered:
        high the cycle after).
    busy : Out(1)
        A packet is held in the Y-bus register (the GIN is not drained up to the PE FIFOs).

    Raises
    ------
    TypeError
        If a parameter is not a positive integer.
    """

    def __init__(self, rows, cols, row_id_width, col_id_width, payload_width, fifo_depth=2):
        _check_positive("Row count", rows)
        _check_positive("Column count", cols)
        _check_positive("FIFO depth", fifo_depth)
        self._layout = packet_layout(row_id_width, col_id_width, payload_width)
        self._rows = rows
        self._cols = cols
        self._row_id_width = row_id_width
        self._col_id_width = col_id_width
        self._payload_width = payload_width
        self._fifo_depth = fifo_depth
        super().__init__({
            "i":         In(stream.Signature(self._layout)),
            "row_ids":   In(unsigned(row_id_width)).array(rows),
            "col_ids":   In(unsigned(col_id_width)).array(rows, cols),
            "o":         Out(stream.Signature(unsigned(payload_width))).array(rows, cols),
            "delivered": Out(1),
            "unmatched": Out(1),
            "stall":     Out(1),
            "busy":      Out(1),
        })

    @property
    def rows(self):
        return self._rows

    @property
    def cols(self):
        return self._cols

    @property
    def layout(self):
        """Layout of the packets on ``i``."""
        return self._layout

    @property
    def fifo_depth(self):
        return self._fifo_depth

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._rows, self._cols

        # Y-bus register: a skid buffer. `main_*` is the packet on the buses; `skid_*` catches
        # the one packet that may arrive in the cycle the main register turns out to be stuck,
        # which lets `i.ready` be a flop.
        main_valid = Signal()
        main_data = Signal(self._payload_width)
        main_mask = Signal(rows * cols)             # destination PEs, bit r * cols + c
        skid_valid = Signal()
        skid_pkt = Signal(self._layout)

        m.d.comb += [
            self.i.ready.eq(~skid_valid),
            self.busy.eq(main_valid | skid_valid),
        ]

        # The packet that enters the main register next: the skid one if any, else the input.
        src = Signal(self._layout)
        m.d.comb += src.eq(Mux(skid_valid, skid_pkt.as_value(), self.i.payload.as_value()))

        # Multicast controllers: X-bus row ID match, then per-PE col ID match.
        src_mask = Signal(rows * cols)
        for r in range(rows):
            row_hit = self.row_ids[r] == src.row
            for c in range(cols):
                m.d.comb += src_mask[r * cols + c].eq(row_hit & (self.col_ids[r][c] == src.col))

        # PE FIFOs and their registered "has room" flags.
        room = Signal(rows * cols)
        fifos = []
        for r in range(rows):
            for c in range(cols):
                fifo = SyncFIFO(width=self._payload_width, depth=self._fifo_depth)
                m.submodules[f"pe_fifo_{r}_{c}"] = fifo
                fifos.append(fifo)
                out = self.o[r][c]
                m.d.comb += [
                    room[r * cols + c].eq(fifo.w_rdy),
                    fifo.w_data.eq(main_data),
                    out.payload.eq(fifo.r_data),
                    out.valid.eq(fifo.r_rdy),
                    fifo.r_en.eq(out.ready),
                ]

        # Send decision: per X-bus first (cols pairs), then across the Y-bus (rows bits).
        row_ok = Signal(rows)
        for r in range(rows):
            sl = slice(r * cols, (r + 1) * cols)
            m.d.comb += row_ok[r].eq((~main_mask[sl] | room[sl]).all())
        all_ok = row_ok.all()
        send = Signal()
        m.d.comb += send.eq(main_valid & all_ok)
        for k, fifo in enumerate(fifos):
            m.d.comb += fifo.w_en.eq(send & main_mask[k])

        # Main register advances when empty or when its packet leaves this cycle.
        with m.If(~main_valid | send):
            m.d.sync += [
                # With the skid full `i.ready` is low, so the input is not taken this cycle.
                main_valid.eq(skid_valid | self.i.valid),
                main_data.eq(src.data),
                main_mask.eq(src_mask),
                skid_valid.eq(0),
            ]
        with m.Elif(self.i.valid & self.i.ready):
            m.d.sync += [
                skid_valid.eq(1),
                skid_pkt.eq(self.i.payload),
            ]

        # Statistics, registered so that the counters summing them stay off the send path.
        m.d.sync += [
            self.delivered.eq(send & main_mask.any()),
            self.unmatched.eq(send & ~main_mask.any()),
            self.stall.eq(main_valid & ~all_ok),
        ]
        return m


class GON(wiring.Component):
    """Global Output Network: merges one stream per column into ``(col, data)`` packets.

    Order: round robin over the columns with a beat ready. After granting column ``k``, the next
    grant goes to the lowest-numbered column above ``k`` with a valid beat, wrapping around to
    column 0 (the first grant after reset goes to the lowest valid column). Each column's own
    beats stay in order; a column with a beat waiting is served within ``cols`` transfers.

    The arbiter writes into a ``fifo_depth``-entry :class:`~amaranth.lib.fifo.SyncFIFO` whose read
    side is ``o``: ``o.valid`` and ``o.payload`` come from the FIFO's registers, and ``o.ready``
    only changes the FIFO's level register, so the global buffer's ready does not reach the
    columns' ready combinationally. ``i[c].ready`` does depend combinationally on the columns'
    ``valid`` (through the arbiter's choice), so, as usual for streams, a column must not make its
    ``valid`` wait for its ``ready``. Latency: a beat taken from ``i[c]`` in cycle ``t`` is valid
    on ``o`` in cycle ``t + 1``; with ``fifo_depth >= 2`` one beat per cycle.

    Parameters
    ----------
    cols : int
        Number of columns (input streams).
    payload_width : int
        Width of a beat.
    fifo_depth : int
        Entries of the output FIFO (default 2).

    Attributes
    ----------
    i : In(stream.Signature(unsigned(payload_width))).array(cols)
        One stream per column, from the column's top PE.
    o : Out(stream.Signature(gon_packet_layout(cols, payload_width)))
        Beats tagged with their source column, towards the global buffer.
    stall : Out(1)
        High for each cycle some column had a beat but the output FIFO was full.

    Raises
    ------
    TypeError
        If a parameter is not a positive integer.
    """

    def __init__(self, cols, payload_width, fifo_depth=2):
        _check_positive("FIFO depth", fifo_depth)
        self._layout = gon_packet_layout(cols, payload_width)
        self._cols = cols
        self._payload_width = payload_width
        self._fifo_depth = fifo_depth
        super().__init__({
            "i":     In(stream.Signature(unsigned(payload_width))).array(cols),
            "o":     Out(stream.Signature(self._layout)),
            "stall": Out(1),
        })

    @property
    def cols(self):
        return self._cols

    @property
    def layout(self):
        """Layout of the packets on ``o``."""
        return self._layout

    def elaborate(self, platform):
        m = Module()
        cols = self._cols

        fifo = m.submodules.fifo = SyncFIFO(width=self._layout.size, depth=self._fifo_depth)

        req = Signal(cols)
        m.d.comb += req.eq(Cat(port.valid for port in self.i))

        # Rotating priority: columns above the last grant first, then from column 0.
        last = Signal(range(cols), init=cols - 1)
        above = Signal(cols)
        for c in range(cols):
            m.d.comb += above[c].eq(req[c] & (last < c))
        sel = Signal(range(cols))
        for c in reversed(range(cols)):     # later assignments win: lowest index has priority
            with m.If(req[c]):
                m.d.comb += sel.eq(c)
        for c in reversed(range(cols)):
            with m.If(above[c]):
                m.d.comb += sel.eq(c)

        push = Signal()
        m.d.comb += push.eq(req.any() & fifo.w_rdy)

        packet = Signal(self._layout)
        m.d.comb += packet.col.eq(sel)
        for c in range(cols):
            with m.If(sel == c):
                m.d.comb += packet.data.eq(self.i[c].payload)
            m.d.comb += self.i[c].ready.eq(fifo.w_rdy & (sel == c))

        m.d.comb += [
            fifo.w_data.eq(packet),
            fifo.w_en.eq(push),
            self.o.payload.eq(fifo.r_data),
            self.o.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.o.ready),
            self.stall.eq(req.any() & ~fifo.w_rdy),
        ]
        with m.If(push):
            m.d.sync += last.eq(sel)
        return m
