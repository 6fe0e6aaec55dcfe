"""Global networks-on-chip: the multicast Global Input Network (GIN) and the Global Output
Network (GON).

One :class:`MulticastGIN` carries one data type (filter, ifmap or psum) from the global buffer to
the PE array. Every packet carries a (row tag, col tag); each X-bus (PE row) has a multicast
controller holding a row ID and each PE one holding a col ID, all set per layer. A packet reaches
exactly the PEs ``(r, c)`` with ``row_en[r]``, ``col_en[r][c]``, ``row_ids[r] == row tag`` and
``col_ids[r][c] == col tag``, all of them in the same cycle, and it is sent only when every one of
them can take it.

:class:`GON` goes the other way: one stream per column merged by a round-robin arbiter into one
stream of ``(col, data)`` packets towards the global buffer. :class:`GON2D` takes one stream from
every PE (any PE can be the top of a psum chain): a :class:`GON` per PE row, then one across the
rows, giving ``(row, col, data)`` packets.

Several words travel in one bus beat where the bus is wide enough: :func:`beat_layout` is such a
beat (``words`` plus ``last``, the index of the last valid word, so that the last beat of a stream
may be partial); :class:`BeatToWords` unpacks beats into a word stream (one per PE and data type,
after the GIN) and :class:`WordsToBeat` packs words into beats (one per PE, before the GON).

All are built from plain integers so they can be tested on their own; the array top derives the
integers from its configuration.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .fifo import small_fifo

__all__ = ["packet_layout", "gon_packet_layout", "gon2d_packet_layout", "beat_layout",
           "MulticastGIN", "MulticastBus", "GON", "GON2D", "BeatToWords", "WordsToBeat"]


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


def gon2d_packet_layout(rows, cols, payload_width):
    """Layout of a :class:`GON2D` packet: source ``row`` and ``col``, ``data`` payload."""
    _check_positive("Row count", rows)
    _check_positive("Column count", cols)
    _check_positive("Payload width", payload_width)
    return data.StructLayout({
        "row":  unsigned(_index_width(rows)),
        "col":  unsigned(_index_width(cols)),
        "data": unsigned(payload_width),
    })


def beat_layout(word_shape, words):
    """Layout of one bus beat carrying up to ``words`` words of ``word_shape``.

    ``words[k]`` is word k (word 0 in the least significant bits); ``last`` is the index of the
    last valid word (``words - 1`` for a full beat), so a stream whose length is not a multiple
    of ``words`` ends with a partial beat. ``last`` is at least one bit wide.
    """
    _check_positive("Words per beat", words)
    word_shape = Shape.cast(word_shape)
    return data.StructLayout({
        "words": data.ArrayLayout(word_shape, words),
        "last":  unsigned(_index_width(words)),
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
    on ``unmatched``. IDs and enables are sampled when a packet enters the main register: change
    them only when the GIN is idle (``busy`` low), i.e. between layers.

    Enables: an X-bus whose ``row_en`` is low and a PE whose ``col_en`` is low match nothing,
    whatever their IDs (unused buses and PEs are gated off). Both default to 1.

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
    row_en : In(1, init=1).array(rows)
        Enable of each X-bus multicast controller.
    col_en : In(1, init=1).array(rows, cols)
        Enable of each PE's multicast controller.
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
            "row_en":    In(1, init=1).array(rows),
            "col_en":    In(1, init=1).array(rows, cols),
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
        m.submodules.bus = bus = MulticastBus(rows, cols, self._row_id_width, self._col_id_width,
                                              self._payload_width)
        wiring.connect(m, wiring.flipped(self.i), bus.i)
        for r in range(rows):
            m.d.comb += [bus.row_ids[r].eq(self.row_ids[r]), bus.row_en[r].eq(self.row_en[r])]
            for c in range(cols):
                m.d.comb += [bus.col_ids[r][c].eq(self.col_ids[r][c]),
                             bus.col_en[r][c].eq(self.col_en[r][c])]
        # PE FIFOs; "has room" is the FIFO's w_rdy, a function of its level register.
        for r in range(rows):
            for c in range(cols):
                fifo = small_fifo(self._payload_width, self._fifo_depth)
                m.submodules[f"pe_fifo_{r}_{c}"] = fifo
                out = self.o[r][c]
                m.d.comb += [
                    bus.room[r][c].eq(fifo.w_rdy),
                    fifo.w_en.eq(bus.write[r][c]),
                    fifo.w_data.eq(bus.data),
                    out.payload.eq(fifo.r_data),
                    out.valid.eq(fifo.r_rdy),
                    fifo.r_en.eq(out.ready),
                ]
        m.d.comb += [
            self.delivered.eq(bus.delivered),
            self.unmatched.eq(bus.unmatched),
            self.stall.eq(bus.stall),
            self.busy.eq(bus.busy),
        ]
        return m


class MulticastBus(wiring.Component):
    """The Y-bus and X-buses of a :class:`MulticastGIN` without the PE FIFOs.

    Everything of :class:`MulticastGIN` except where the FIFOs sit: the array keeps each PE's
    FIFO in the PE's site, so the bus writes into it through ``write[r][c]`` (one strobe per PE,
    all in the same cycle for a multicast) and the shared ``data``, and learns whether it has
    room from ``room[r][c]``, which must be a function of registers (the FIFO's level) so that
    the all-destinations-ready check starts from flops.

    Attributes
    ----------
    i, row_ids, col_ids, row_en, col_en, delivered, unmatched, stall, busy
        As in :class:`MulticastGIN`.
    room : In(1).array(rows, cols)
        The PE's FIFO can take a packet this cycle.
    write : Out(1).array(rows, cols)
        Write ``data`` into the PE's FIFO this cycle.
    data : Out(unsigned(payload_width))
        Payload of the packet being sent (from the Y-bus register).
    """

    def __init__(self, rows, cols, row_id_width, col_id_width, payload_width):
        _check_positive("Row count", rows)
        _check_positive("Column count", cols)
        self._layout = packet_layout(row_id_width, col_id_width, payload_width)
        self._rows = rows
        self._cols = cols
        self._payload_width = payload_width
        super().__init__({
            "i":         In(stream.Signature(self._layout)),
            "row_ids":   In(unsigned(row_id_width)).array(rows),
            "col_ids":   In(unsigned(col_id_width)).array(rows, cols),
            "row_en":    In(1, init=1).array(rows),
            "col_en":    In(1, init=1).array(rows, cols),
            "room":      In(1).array(rows, cols),
            "write":     Out(1).array(rows, cols),
            "data":      Out(unsigned(payload_width)),
            "delivered": Out(1),
            "unmatched": Out(1),
            "stall":     Out(1),
            "busy":      Out(1),
        })

    @property
    def layout(self):
        return self._layout

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
            self.data.eq(main_data),
        ]

        # The packet that enters the main register next: the skid one if any, else the input.
        src = Signal(self._layout)
        m.d.comb += src.eq(Mux(skid_valid, skid_pkt.as_value(), self.i.payload.as_value()))

        # Multicast controllers: X-bus row ID match, then per-PE col ID match.
        src_mask = Signal(rows * cols)
        for r in range(rows):
            row_hit = self.row_en[r] & (self.row_ids[r] == src.row)
            for c in range(cols):
                m.d.comb += src_mask[r * cols + c].eq(
                    row_hit & self.col_en[r][c] & (self.col_ids[r][c] == src.col))

        room = Signal(rows * cols)
        m.d.comb += room.eq(Cat(self.room[r][c] for r in range(rows) for c in range(cols)))

        # Send decision: per X-bus first (cols pairs), then across the Y-bus (rows bits).
        row_ok = Signal(rows)
        for r in range(rows):
            sl = slice(r * cols, (r + 1) * cols)
            m.d.comb += row_ok[r].eq((~main_mask[sl] | room[sl]).all())
        all_ok = row_ok.all()
        send = Signal()
        m.d.comb += send.eq(main_valid & all_ok)
        for r in range(rows):
            for c in range(cols):
                m.d.comb += self.write[r][c].eq(send & main_mask[r * cols + c])

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
    busy : Out(1)
        The output FIFO holds a beat (a function of its level register).

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
            "busy":  Out(1),
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

        fifo = m.submodules.fifo = small_fifo(self._layout.size, self._fifo_depth)

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
            self.busy.eq(fifo.r_rdy),
        ]
        with m.If(push):
            m.d.sync += last.eq(sel)
        return m


class GON2D(wiring.Component):
    """Global Output Network from every PE: a :class:`GON` per PE row, then one across the rows.

    Any PE may be the top of a psum chain (a placement stacks several bands of PE rows), so
    every PE has an input. Each row's round-robin arbiter writes into its own FIFO; a second
    round-robin arbiter over the rows writes into the output FIFO. Every stage starts from flops
    (the row FIFOs' outputs and levels), so no ready or valid path crosses the array
    combinationally; ``i[r][c].ready`` depends only on the valids of row r and on the row FIFO's
    level. Latency: a beat taken from ``i[r][c]`` in cycle ``t`` is valid on ``o`` in cycle
    ``t + 2``; throughput one beat per cycle in total, and per row. With one column there is
    no row stage (nothing to arbitrate within a row): ``i[r][0]`` goes straight to the
    arbiter over the rows, and its ready depends on the valids of all rows; latency ``t + 1``.

    Fairness is per stage: the rows with beats waiting take turns, and within a row the columns
    do. Each PE's own beats stay in order.

    Parameters
    ----------
    rows, cols : int
        PE array shape.
    payload_width : int
        Width of a beat.
    fifo_depth : int
        Entries of each row FIFO and of the output FIFO (default 2).

    Attributes
    ----------
    i : In(stream.Signature(unsigned(payload_width))).array(rows, cols)
        One stream per PE, indexed ``[r][c]``.
    o : Out(stream.Signature(gon2d_packet_layout(rows, cols, payload_width)))
        Beats tagged with their source PE.
    busy : Out(1)
        A beat is held in some FIFO of the network (a function of the FIFOs' level registers).
    stall : Out(1)
        High for each cycle some beat could not advance because the next FIFO was full.
    """

    def __init__(self, rows, cols, payload_width, fifo_depth=2):
        _check_positive("FIFO depth", fifo_depth)
        self._layout = gon2d_packet_layout(rows, cols, payload_width)
        self._rows = rows
        self._cols = cols
        self._payload_width = payload_width
        self._fifo_depth = fifo_depth
        super().__init__({
            "i":     In(stream.Signature(unsigned(payload_width))).array(rows, cols),
            "o":     Out(stream.Signature(self._layout)),
            "stall": Out(1),
            "busy":  Out(1),
        })

    @property
    def layout(self):
        """Layout of the packets on ``o``."""
        return self._layout

    def elaborate(self, platform):
        m = Module()
        rows, cols = self._rows, self._cols
        inner = gon_packet_layout(cols, self._payload_width)
        top = m.submodules.rows = GON(rows, inner.size, self._fifo_depth)
        busy = [top.busy]
        stall = [top.stall]
        for r in range(rows):
            if cols == 1:
                # A row of one PE has nothing to arbitrate: its beats go straight to the
                # arbiter over the rows (one FIFO stage less; the PE's beat register is the
                # flop its ready and valid start from).
                m.d.comb += [
                    top.i[r].valid.eq(self.i[r][0].valid),
                    top.i[r].payload.eq(Cat(Const(0, inner["col"].shape.width),
                                           self.i[r][0].payload)),
                    self.i[r][0].ready.eq(top.i[r].ready),
                ]
                continue
            row = m.submodules[f"row_{r}"] = GON(cols, self._payload_width, self._fifo_depth)
            for c in range(cols):
                wiring.connect(m, wiring.flipped(self.i[r][c]), row.i[c])
            m.d.comb += [
                top.i[r].valid.eq(row.o.valid),
                top.i[r].payload.eq(row.o.payload),
                row.o.ready.eq(top.i[r].ready),
            ]
            busy.append(row.busy)
            stall.append(row.stall)
        beat = data.View(inner, top.o.payload.data)
        m.d.comb += [
            self.o.valid.eq(top.o.valid),
            self.o.payload.row.eq(top.o.payload.col),
            self.o.payload.col.eq(beat.col),
            self.o.payload.data.eq(beat.data),
            top.o.ready.eq(self.o.ready),
            self.busy.eq(Cat(busy).any()),
            self.stall.eq(Cat(stall).any()),
        ]
        return m


class BeatToWords(wiring.Component):
    """Unpacks bus beats (:func:`beat_layout`) into a stream of words, word 0 first.

    The words are read straight out of the beat on ``i`` (a FIFO's head, which holds still while
    valid), picked by a word index: no copy of the beat is kept. ``i.ready`` is high when the
    beat's last word leaves, so a stream of full beats and a reader that is always ready give
    one word per cycle without bubbles (one-word beats included). ``o.valid`` follows
    ``i.valid`` and ``i.ready`` follows ``o.ready`` combinationally: the adapter sits between a
    PE's GIN FIFO, whose outputs are registers, and the PE, so the paths stay inside one PE's
    site.

    Parameters
    ----------
    word_shape : shape-like
        Shape of a word (signed for PE data).
    words : int
        Words per beat.
    """

    def __init__(self, word_shape, words):
        self._layout = beat_layout(word_shape, words)
        self._word_shape = Shape.cast(word_shape)
        self._words = words
        super().__init__({
            "i": In(stream.Signature(self._layout)),
            "o": Out(stream.Signature(self._word_shape)),
        })

    @property
    def layout(self):
        return self._layout

    def elaborate(self, platform):
        m = Module()
        n = self._words
        index = Signal(range(n))                # no bits for one-word beats: wires only
        # A ``last`` beyond the beat (not sent by the streamers) ends it at its last word.
        end = (index == self.i.payload.last) | (index == n - 1)
        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.o.payload.eq(self.i.payload.words[index]),
            self.i.ready.eq(self.o.ready & end),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += index.eq(Mux(end, 0, index + 1))
        return m


class WordsToBeat(wiring.Component):
    """Packs a stream of words into bus beats (:func:`beat_layout`), word 0 first.

    The first ``words - 1`` words of a beat wait in registers; the last one is not stored: the
    full beat goes out in the cycle its last word is offered, that word straight from ``i``
    (``i.ready`` is then ``o.ready``). So a word stream at one word per cycle passes without
    bubbles, and the packer holds a beat's worth of registers less one word. A partial beat
    goes out when ``flush`` is high, no word is offered and it holds at least one word (the
    array raises ``flush`` when the PE feeding it has finished its pass, so the last beat of a
    pass may be partial).

    Parameters
    ----------
    word_shape : shape-like
        Shape of a word.
    words : int
        Words per beat.

    Attributes
    ----------
    flush : In(1)
        Send the partial beat, if any.
    busy : Out(1)
        Words of an unsent beat are held.
    """

    def __init__(self, word_shape, words):
        self._layout = beat_layout(word_shape, words)
        self._word_shape = Shape.cast(word_shape)
        self._words = words
        super().__init__({
            "i":     In(stream.Signature(self._word_shape)),
            "o":     Out(stream.Signature(self._layout)),
            "flush": In(1),
            "busy":  Out(1),
        })

    @property
    def layout(self):
        return self._layout

    def elaborate(self, platform):
        m = Module()
        n = self._words
        held = [Signal(self._word_shape, name=f"word_{k}") for k in range(n - 1)]
        count = Signal(range(n))            # words held
        closing = Signal()                  # the offered word completes the beat
        partial = Signal()
        m.d.comb += [
            closing.eq(self.i.valid & (count == n - 1)),
            partial.eq(self.flush & ~self.i.valid & (count != 0)),
            self.o.valid.eq(closing | partial),
            self.o.payload.last.eq(Mux(closing, n - 1, count - 1)),
            self.i.ready.eq((count != n - 1) | self.o.ready),
            self.busy.eq(count != 0),
        ]
        for k, word in enumerate(held):
            m.d.comb += self.o.payload.words[k].eq(word)
        m.d.comb += self.o.payload.words[n - 1].eq(self.i.payload)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += count.eq(0)
        with m.Elif(self.i.valid & self.i.ready):
            for k, word in enumerate(held):
                with m.If(count == k):
                    m.d.sync += word.eq(self.i.payload)
            m.d.sync += count.eq(count + 1)
        return m
