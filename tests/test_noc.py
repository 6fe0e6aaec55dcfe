"""Unit tests of the GIN (multicast by tag matching) and the GON (round-robin merge) in the
Amaranth simulator, each compared with a plain Python model.

Building a simulator of the 12 x 14 GIN takes most of a second, so each test runs several
scenarios one after another in one simulator (the GIN is drained and the IDs are reloaded between
them, as between layers), and the 168 ready and valid bits are set and read as one `Cat` each.
"""

import gc
import random
import warnings
from dataclasses import dataclass, field
from typing import Callable

import pytest
from amaranth.hdl import Cat, UnusedElaboratable

from conftest import simulate
from rowstat.hw.noc import (GON, GON2D, MulticastBus, MulticastGIN, gon2d_packet_layout,
                            gon_packet_layout, packet_layout)

ROW_W, COL_W, PAYLOAD_W = 4, 5, 16
SHAPES = [(3, 4), (12, 14)]


# --- reference model --------------------------------------------------------------------------

def expected_dests(row_ids, col_ids, row_tag, col_tag, row_en=None, col_en=None):
    """PEs a packet must reach: written from the ID definition, independent of the RTL.
    Enables default to all set."""
    dests = set()
    for r in range(len(row_ids)):
        for c in range(len(col_ids[r])):
            enabled = (row_en is None or row_en[r]) and (col_en is None or col_en[r][c])
            if enabled and row_ids[r] == row_tag and col_ids[r][c] == col_tag:
                dests.add((r, c))
    return dests


def model_gin(row_ids, col_ids, packets, row_en=None, col_en=None):
    """Per-PE received payload sequences and the number of packets that match no PE."""
    rows, cols = len(row_ids), len(col_ids[0])
    received = {(r, c): [] for r in range(rows) for c in range(cols)}
    unmatched = 0
    for row_tag, col_tag, payload in packets:
        dests = expected_dests(row_ids, col_ids, row_tag, col_tag, row_en, col_en)
        if not dests:
            unmatched += 1
        for pe in dests:
            received[pe].append(payload)
    return received, unmatched


# --- GIN harness ------------------------------------------------------------------------------

@dataclass
class Scenario:
    """One layer's worth of traffic: IDs, packets [(row_tag, col_tag, payload)], and the PE
    ready / input valid patterns as functions of the cycle (counted from the scenario's start).
    After the run it holds what was observed."""
    name: str
    row_ids: list
    col_ids: list
    packets: list
    ready: Callable = lambda cycle, r, c: True
    offer: Callable = lambda cycle: True
    row_en: list = None         # None: all enabled (the ports' reset value)
    col_en: list = None
    # Results.
    received: dict = field(default_factory=dict)    # (r, c) -> payloads, in order
    arrivals: dict = field(default_factory=dict)    # (r, c) -> cycles of those transfers
    accepted: list = field(default_factory=list)    # cycle of each input transfer
    delivered: int = 0
    unmatched: int = 0
    stall_cycles: list = field(default_factory=list)

    @property
    def stall(self):
        return len(self.stall_cycles)


def run_gin(rows, cols, scenarios, *, fifo_depth=2, max_cycles=3000):
    """Run `scenarios` one after another on one GIN; each ends when all its packets are taken,
    the GIN and the PE FIFOs are empty and the (registered) statistics have settled."""
    dut = MulticastGIN(rows, cols, ROW_W, COL_W, PAYLOAD_W, fifo_depth=fifo_depth)
    pes = [(r, c) for r in range(rows) for c in range(cols)]
    readies = Cat(dut.o[r][c].ready for r, c in pes)        # bit k is PE pes[k]
    valids = Cat(dut.o[r][c].valid for r, c in pes)
    stats = Cat(dut.delivered, dut.unmatched, dut.stall, dut.busy)

    async def testbench(ctx):
        for sc in scenarios:
            for r in range(rows):
                ctx.set(dut.row_ids[r], sc.row_ids[r])
                ctx.set(dut.row_en[r], 1 if sc.row_en is None else sc.row_en[r])
                for c in range(cols):
                    ctx.set(dut.col_ids[r][c], sc.col_ids[r][c])
                    ctx.set(dut.col_en[r][c], 1 if sc.col_en is None else sc.col_en[r][c])
            sc.received = {pe: [] for pe in pes}
            sc.arrivals = {pe: [] for pe in pes}
            idx = idle = 0
            for cycle in range(max_cycles):
                ready_bits = 0
                for k, (r, c) in enumerate(pes):
                    if sc.ready(cycle, r, c):
                        ready_bits |= 1 << k
                ctx.set(readies, ready_bits)
                valid = idx < len(sc.packets) and bool(sc.offer(cycle))
                ctx.set(dut.i.valid, valid)
                if valid:
                    row_tag, col_tag, payload = sc.packets[idx]
                    ctx.set(dut.i.payload, {"row": row_tag, "col": col_tag, "data": payload})
                # The transfers that happen at this clock edge.
                if valid and ctx.get(dut.i.ready):
                    sc.accepted.append(cycle)
                    idx += 1
                valid_bits = ctx.get(valids)
                fire = valid_bits & ready_bits
                for k, pe in enumerate(pes):
                    if fire >> k & 1:
                        sc.received[pe].append(ctx.get(dut.o[pe[0]][pe[1]].payload))
                        sc.arrivals[pe].append(cycle)
                delivered, unmatched, stall, busy = \
                    (ctx.get(stats) >> n & 1 for n in range(4))
                sc.delivered += delivered
                sc.unmatched += unmatched
                if stall:
                    sc.stall_cycles.append(cycle)
                await ctx.tick()
                if idx == len(sc.packets) and not busy and not valid_bits:
                    idle += 1
                    if idle > 2:
                        break
                else:
                    idle = 0
            assert idx == len(sc.packets), \
                f"{sc.name}: only {idx} of {len(sc.packets)} packets taken"
        ctx.set(dut.i.valid, 0)

    simulate(dut, testbench)
    return scenarios


def check_against_model(sc):
    received, unmatched = model_gin(sc.row_ids, sc.col_ids, sc.packets, sc.row_en, sc.col_en)
    for pe, seq in received.items():
        assert sc.received[pe] == seq, f"{sc.name}: PE {pe}"
    assert sc.unmatched == unmatched, sc.name
    assert sc.delivered == len(sc.packets) - unmatched, sc.name


# --- multicast patterns -----------------------------------------------------------------------

def pattern_scenario(pattern, rows, cols):
    """IDs and packets (distinct payloads) for one multicast pattern."""
    if pattern == "unicast":
        row_ids = list(range(rows))
        col_ids = [list(range(cols)) for _ in range(rows)]
        tags = [(r, c) for r in range(rows) for c in range(cols)]
        if len(tags) > 24:                      # keep the big array quick: corners + a sample
            rng = random.Random(1)
            tags = [(0, 0), (rows - 1, cols - 1), (0, cols - 1), (rows - 1, 0)] + \
                rng.sample(tags, 16)
    elif pattern == "row":
        row_ids = list(range(rows))
        col_ids = [[3] * cols for _ in range(rows)]
        tags = [(r, 3) for r in range(rows)]
    elif pattern == "column":
        row_ids = [5] * rows
        col_ids = [list(range(cols)) for _ in range(rows)]
        tags = [(5, c) for c in range(cols)]
    elif pattern == "diagonal":
        # Tag k reaches the PEs with c + r == k (the ifmap diagonal of the row-stationary map).
        row_ids = [2] * rows
        col_ids = [[c + r for c in range(cols)] for r in range(rows)]
        tags = [(2, k) for k in range(rows + cols - 1)]
    elif pattern == "broadcast":
        row_ids = [7] * rows
        col_ids = [[9] * cols for _ in range(rows)]
        tags = [(7, 9)] * 3
    else:
        raise ValueError(pattern)
    packets = [(rt, ct, 0x1000 + n) for n, (rt, ct) in enumerate(tags)]
    return Scenario(pattern, row_ids, col_ids, packets)


PATTERNS = ["unicast", "row", "column", "diagonal", "broadcast"]


def unmatched_scenario(rows, cols):
    row_ids = list(range(rows))
    col_ids = [list(range(cols)) for _ in range(rows)]
    packets = [(0, 0, 11), (15, 0, 12), (0, 31, 13), (rows - 1, cols - 1, 14), (15, 31, 15)]
    return Scenario("unmatched", row_ids, col_ids, packets)


@pytest.mark.parametrize("rows,cols", SHAPES)
def test_multicast_patterns_reach_exactly_intended_pes(rows, cols):
    scenarios = [pattern_scenario(p, rows, cols) for p in PATTERNS]
    scenarios.append(unmatched_scenario(rows, cols))
    run_gin(rows, cols, scenarios)
    for sc in scenarios:
        for row_tag, col_tag, payload in sc.packets:
            dests = expected_dests(sc.row_ids, sc.col_ids, row_tag, col_tag)
            got = {pe for pe, seq in sc.received.items() if payload in seq}
            assert got == dests, f"{sc.name}: packet {(row_tag, col_tag)}"
            assert all(sc.received[pe].count(payload) == 1 for pe in dests)
            # The pattern's intent, spelled out in array coordinates.
            if sc.name == "unicast":
                assert dests == {(row_tag, col_tag)}
            elif sc.name == "row":
                assert dests == {(row_tag, c) for c in range(cols)}
            elif sc.name == "column":
                assert dests == {(r, col_tag) for r in range(rows)}
            elif sc.name == "diagonal":
                assert dests == {(r, col_tag - r) for r in range(rows)
                                 if 0 <= col_tag - r < cols}
            elif sc.name == "broadcast":
                assert len(dests) == rows * cols
        check_against_model(sc)
        assert sc.stall == 0, sc.name
        # No back-pressure: one packet per cycle, unmatched packets included.
        assert sc.accepted == list(range(len(sc.packets))), sc.name
    # Packets matching no PE are consumed and flagged.
    unmatched = scenarios[-1]
    assert unmatched.unmatched == 3 and unmatched.delivered == 2
    assert unmatched.received[(0, 0)] == [11]
    assert unmatched.received[(rows - 1, cols - 1)] == [14]
    assert sum(len(seq) for seq in unmatched.received.values()) == 2


def test_noc_gin_latency_and_throughput():
    rows, cols = 3, 4
    row_ids = list(range(rows))
    col_ids = [list(range(cols)) for _ in range(rows)]
    tags = [(r, c) for r in range(rows) for c in range(cols)] * 2
    packets = [(rt, ct, 100 + n) for n, (rt, ct) in enumerate(tags)]
    broadcast = [(1, 1, n) for n in range(20)]
    unicast, bcast = run_gin(rows, cols, [
        Scenario("unicast", row_ids, col_ids, packets),
        # Every PE is a destination of every packet and reads every cycle: still one per cycle
        # with 2-entry FIFOs.
        Scenario("broadcast", [1] * rows, [[1] * cols] * rows, broadcast),
    ], fifo_depth=2)
    check_against_model(unicast)
    # One packet per cycle, and valid at the PE two cycles after the input transfer.
    assert unicast.accepted == list(range(len(packets)))
    for n, (rt, ct, _) in enumerate(packets):
        earlier = sum(1 for p in packets[:n] if p[:2] == (rt, ct))
        assert unicast.arrivals[(rt, ct)][earlier] == unicast.accepted[n] + 2
    check_against_model(bcast)
    assert bcast.accepted == list(range(20))
    assert all(a == list(range(2, 22)) for a in bcast.arrivals.values())


@pytest.mark.parametrize("rows,cols", SHAPES)
def test_multicast_enables_gate_buses_and_pes(rows, cols):
    """A disabled X-bus or PE matches nothing, whatever its IDs; enabling it again restores it.
    Expectations spelled out in array coordinates."""
    rng = random.Random(rows * cols)
    off_rows = {1}
    off_pes = {(0, 1), (rows - 1, cols - 1), (2, 0)}
    row_en = [r not in off_rows for r in range(rows)]
    col_en = [[(r, c) not in off_pes for c in range(cols)] for r in range(rows)]
    # Broadcast IDs: every packet is meant for every enabled PE.
    packets = [(3, 5, rng.randrange(1 << PAYLOAD_W)) for _ in range(6)]
    diag_ids = [[c + r for c in range(cols)] for r in range(rows)]
    diag = [(0, k, 100 + k) for k in range(rows + cols - 1)]
    gated, diagonal, again = run_gin(rows, cols, [
        Scenario("gated broadcast", [3] * rows, [[5] * cols for _ in range(rows)], packets,
                 row_en=row_en, col_en=col_en),
        Scenario("gated diagonal", [0] * rows, diag_ids, diag, row_en=row_en, col_en=col_en),
        Scenario("enabled again", [3] * rows, [[5] * cols for _ in range(rows)], packets),
    ])
    for sc in (gated, diagonal, again):
        check_against_model(sc)
    enabled = {(r, c) for r in range(rows) for c in range(cols)
               if r not in off_rows and (r, c) not in off_pes}
    for pe, seq in gated.received.items():
        assert seq == ([p for _, _, p in packets] if pe in enabled else []), pe
    for pe, seq in diagonal.received.items():
        assert seq == ([100 + pe[0] + pe[1]] if pe in enabled else []), pe
    assert all(seq == [p for _, _, p in packets] for seq in again.received.values())


# --- back-pressure ----------------------------------------------------------------------------

def stalled_pe_scenario(rows, cols, fifo_depth, stalled, release):
    """One PE does not read until `release`. Fill its FIFO interleaved with traffic to other
    PEs, then send it one more packet (which must wait) followed by one to another PE."""
    row_ids = list(range(rows))
    col_ids = [list(range(cols)) for _ in range(rows)]
    others = [(0, 0), (rows - 1, cols - 1), (0, 1), (2, 3), (1, 1), (1, 3)]
    packets = []
    for k in range(fifo_depth):
        packets.append((*stalled, 0x100 + k))
        packets += [(*pe, 0x200 + 16 * k + n) for n, pe in enumerate(others)]
    packets.append((*stalled, 0x1FF))
    packets.append((0, 0, 0x3FF))
    return Scenario("stalled PE", row_ids, col_ids, packets,
                    ready=lambda cycle, r, c: (r, c) != stalled or cycle >= release)


def broadcast_wait_scenario(rows, cols, fifo_depth, stalled, release):
    """Broadcasts while one PE does not read: fifo_depth of them fit, the next must wait for it."""
    return Scenario("broadcast waits", [1] * rows, [[2] * cols for _ in range(rows)],
                    [(1, 2, 10 + n) for n in range(fifo_depth + 1)],
                    ready=lambda cycle, r, c: (r, c) != stalled or cycle >= release)


@pytest.mark.parametrize("rows,cols,fifo_depth", [(3, 4, 2), (3, 4, 3), (12, 14, 2)])
def test_multicast_backpressure(rows, cols, fifo_depth):
    stalled, release = (1, 2), 60
    bc_stalled, bc_release = (rows - 1, 0), 40
    one, bcast = run_gin(rows, cols, [
        stalled_pe_scenario(rows, cols, fifo_depth, stalled, release),
        broadcast_wait_scenario(rows, cols, fifo_depth, bc_stalled, bc_release),
    ], fifo_depth=fifo_depth)

    # A stalled PE holds up nothing while its FIFO has room.
    check_against_model(one)
    head = one.packets.index((*stalled, 0x1FF))
    for row_tag, col_tag, payload in one.packets[:head]:
        if (row_tag, col_tag) != stalled:
            seq = one.received[(row_tag, col_tag)]
            assert one.arrivals[(row_tag, col_tag)][seq.index(payload)] < release
    # Its own packet beyond the FIFO's room waits at the head (the stall strobe, registered,
    # shows it from the cycle after it got there) and arrives intact, in order, after release.
    assert one.stall_cycles and min(one.stall_cycles) > head
    assert one.stall >= release - head - 10
    assert one.received[stalled] == [0x100 + k for k in range(fifo_depth)] + [0x1FF]
    assert min(one.arrivals[stalled]) >= release
    # The GIN is in order: the packet behind the blocked head waited too.
    i = one.received[(0, 0)].index(0x3FF)
    assert one.arrivals[(0, 0)][i] > release

    # A multicast goes out in one transfer, only once every destination has room.
    check_against_model(bcast)
    for pe, arrivals in bcast.arrivals.items():
        if pe != bc_stalled:
            assert all(a < bc_release for a in arrivals[:fifo_depth]), pe
        assert arrivals[fifo_depth] > bc_release, pe
    last = {a[fifo_depth] for pe, a in bcast.arrivals.items() if pe != bc_stalled}
    assert len(last) == 1     # written to all FIFOs together: PEs that read see it together
    assert bcast.stall > 0


# --- random traffic ---------------------------------------------------------------------------

@pytest.mark.parametrize("rows,cols,n_packets,seed", [(3, 4, 300, 1), (3, 4, 300, 2),
                                                      (12, 14, 40, 3)])
def test_multicast_random_traffic(rows, cols, n_packets, seed):
    rng = random.Random(seed)
    # Few distinct IDs so that packets reach several PEs; some tags match nothing.
    row_ids = [rng.randrange(2) for _ in range(rows)]
    col_ids = [[rng.randrange(3) for _ in range(cols)] for _ in range(rows)]
    packets = [(rng.randrange(3), rng.randrange(4), rng.randrange(1 << PAYLOAD_W))
               for _ in range(n_packets)]
    # Bursty ready: each PE's ready is a two-state Markov chain (long runs of not reading).
    flip_p = {(r, c): rng.choice([0.05, 0.2, 0.5]) for r in range(rows) for c in range(cols)}
    ready_rng = random.Random(seed + 100)
    ready_table = {}

    def ready(cycle, r, c):
        if (cycle, r, c) not in ready_table:
            prev = ready_table.get((cycle - 1, r, c), True)
            ready_table[(cycle, r, c)] = prev ^ (ready_rng.random() < flip_p[(r, c)])
        return ready_table[(cycle, r, c)]

    offer_rng = random.Random(seed + 200)
    [sc] = run_gin(rows, cols, [
        Scenario("random", row_ids, col_ids, packets, ready=ready,
                 offer=lambda cycle: offer_rng.random() < 0.8),
    ], fifo_depth=rng.choice([2, 3, 4]))
    check_against_model(sc)
    assert sc.stall > 0 and sc.unmatched > 0


# --- interface --------------------------------------------------------------------------------

def test_noc_interface_and_layouts():
    lay = packet_layout(4, 5, 16)
    assert lay.size == 25 and lay["row"].offset == 0 and lay["col"].offset == 4
    assert lay["data"].offset == 9
    assert gon_packet_layout(14, 64)["col"].shape.width == 4
    # Components that are built but never elaborated, and constructors that raise (they still
    # leave a half-made elaboratable), would make Amaranth warn about unused elaboratables.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        gin = MulticastGIN(12, 14, 4, 5, 64)
        assert len(gin.o) == 12 and len(gin.o[0]) == 14
        assert len(gin.col_ids) == 12 and len(gin.col_ids[11]) == 14
        assert len(gin.row_ids) == 12
        assert len(gin.row_en) == 12 and len(gin.col_en[11]) == 14
        bus = MulticastBus(12, 14, 4, 5, 64)
        assert len(bus.write) == 12 and len(bus.room[11]) == 14
        assert bus.data.shape().width == 64 and bus.i.payload.shape() == packet_layout(4, 5, 64)
        assert gin.o[11][13].payload.shape().width == 64
        assert gin.i.payload.shape() == packet_layout(4, 5, 64)
        gon = GON(14, 64)
        assert len(gon.i) == 14 and gon.o.payload.shape() == gon_packet_layout(14, 64)
        for bad in (0, -1, 2.0, None, True):
            with pytest.raises(TypeError, match="Row count must be a positive integer"):
                MulticastGIN(bad, 4, 4, 5, 16)
        with pytest.raises(TypeError, match="FIFO depth"):
            MulticastGIN(3, 4, 4, 5, 16, fifo_depth=0)
        with pytest.raises(TypeError, match="Col ID width"):
            MulticastGIN(3, 4, 4, 0, 16)
        with pytest.raises(TypeError, match="Column count"):
            GON(0, 16)
        del gin, gon, bus
        gc.collect()


def test_noc_converts_to_verilog():
    from amaranth.back import verilog
    text = verilog.convert(MulticastGIN(3, 4, 4, 5, 16), name="gin", emit_src=False)
    assert "module gin" in text
    text = verilog.convert(GON(4, 16), name="gon", emit_src=False)
    assert "module gon" in text


@pytest.mark.slow
def test_noc_gin_12x14_converts_to_verilog():
    from amaranth.back import verilog
    text = verilog.convert(MulticastGIN(12, 14, 4, 5, 16), name="gin", emit_src=False)
    assert "module gin" in text


# --- GON --------------------------------------------------------------------------------------

def run_gon(cols, beats, *, offer=None, ready=None, max_cycles=3000):
    """Feed `beats[c]` (payload lists) into column c; collect the (col, data, cycle) packets
    out and the cycles each column's beats were taken in."""
    dut = GON(cols, PAYLOAD_W)
    offer = offer or (lambda cycle, c: True)
    ready = ready or (lambda cycle: True)
    out = []
    taken = {c: [] for c in range(cols)}
    total = sum(len(b) for b in beats)

    async def testbench(ctx):
        idx = [0] * cols
        for cycle in range(max_cycles):
            for c in range(cols):
                valid = idx[c] < len(beats[c]) and bool(offer(cycle, c))
                ctx.set(dut.i[c].valid, valid)
                if valid:
                    ctx.set(dut.i[c].payload, beats[c][idx[c]])
            rdy = bool(ready(cycle))
            ctx.set(dut.o.ready, rdy)
            for c in range(cols):
                if ctx.get(dut.i[c].valid) and ctx.get(dut.i[c].ready):
                    taken[c].append(cycle)
                    idx[c] += 1
            if rdy and ctx.get(dut.o.valid):
                p = ctx.get(dut.o.payload)
                out.append((p.col, p.data, cycle))
            await ctx.tick()
            if len(out) == total:
                break
        assert len(out) == total, f"only {len(out)} of {total} beats out"

    simulate(dut, testbench)
    return out, taken


@pytest.mark.parametrize("cols,seed", [(4, 1), (4, 2), (14, 3)])
def test_noc_gon_all_beats_once_in_column_order(cols, seed):
    rng = random.Random(seed)
    beats = [[(c << 8) | n for n in range(rng.randrange(0, 25))] for c in range(cols)]
    offer_rng, ready_rng = random.Random(seed + 1), random.Random(seed + 2)
    out, _ = run_gon(cols, beats, offer=lambda cycle, c: offer_rng.random() < 0.5,
                     ready=lambda cycle: ready_rng.random() < 0.7)
    for c in range(cols):
        assert [d for col, d, _ in out if col == c] == beats[c]
    assert sorted((col, d) for col, d, _ in out) == \
        sorted((c, d) for c in range(cols) for d in beats[c])


def test_noc_gon_round_robin_order_and_latency():
    cols = 4
    beats = [[(c << 8) | n for n in range(5)] for c in range(cols)]
    out, taken = run_gon(cols, beats)
    # All columns always valid, output always ready: columns take turns, one beat per cycle.
    assert [col for col, _, _ in out] == [0, 1, 2, 3] * 5
    assert [cycle for _, _, cycle in out] == list(range(1, 21))
    # A beat taken in cycle t is valid at the output in cycle t + 1.
    assert taken[0][0] == 0 and out[0][2] == 1

    # Round robin skips idle columns and resumes above the last grant.
    beats = [[1, 2, 3], [], [4], [5, 6]]
    out, _ = run_gon(cols, beats)
    assert [col for col, _, _ in out] == [0, 2, 3, 0, 3, 0]


# --- 2-D GON -----------------------------------------------------------------------------------

def run_gon2d(rows, cols, beats, *, offer=None, ready=None, max_cycles=4000):
    """Feed `beats[(r, c)]` into PE (r, c); collect (row, col, data, cycle) packets out and the
    cycles each PE's beats were taken in."""
    dut = GON2D(rows, cols, PAYLOAD_W)
    offer = offer or (lambda cycle, r, c: True)
    ready = ready or (lambda cycle: True)
    pes = [(r, c) for r in range(rows) for c in range(cols)]
    out, taken = [], {pe: [] for pe in pes}
    total = sum(len(b) for b in beats.values())
    busy_seen = []

    async def testbench(ctx):
        idx = dict.fromkeys(pes, 0)
        for cycle in range(max_cycles):
            for r, c in pes:
                valid = idx[(r, c)] < len(beats[(r, c)]) and bool(offer(cycle, r, c))
                ctx.set(dut.i[r][c].valid, valid)
                if valid:
                    ctx.set(dut.i[r][c].payload, beats[(r, c)][idx[(r, c)]])
            rdy = bool(ready(cycle))
            ctx.set(dut.o.ready, rdy)
            for r, c in pes:
                if ctx.get(dut.i[r][c].valid) and ctx.get(dut.i[r][c].ready):
                    taken[(r, c)].append(cycle)
                    idx[(r, c)] += 1
            if rdy and ctx.get(dut.o.valid):
                p = ctx.get(dut.o.payload)
                out.append((p.row, p.col, p.data, cycle))
            busy_seen.append(ctx.get(dut.busy))
            await ctx.tick()
            if len(out) == total:
                break
        assert len(out) == total, f"only {len(out)} of {total} beats out"
        await ctx.tick()
        assert not ctx.get(dut.busy)

    simulate(dut, testbench)
    return out, taken, busy_seen


@pytest.mark.parametrize("rows,cols,seed", [(3, 4, 1), (2, 1, 2), (1, 3, 3), (5, 7, 4)])
def test_noc_gon2d_every_beat_once_in_order_with_its_source(rows, cols, seed):
    rng = random.Random(seed)
    beats = {(r, c): [(r << 12) | (c << 8) | n for n in range(rng.randrange(0, 12))]
             for r in range(rows) for c in range(cols)}
    offer_rng, ready_rng = random.Random(seed + 1), random.Random(seed + 2)
    out, _, _ = run_gon2d(rows, cols, beats,
                          offer=lambda cycle, r, c: offer_rng.random() < 0.5,
                          ready=lambda cycle: ready_rng.random() < 0.7)
    for (r, c), seq in beats.items():
        assert [d for row, col, d, _ in out if (row, col) == (r, c)] == seq
    assert len(out) == sum(len(b) for b in beats.values())
    assert gon2d_packet_layout(rows, cols, PAYLOAD_W)["data"].shape.width == PAYLOAD_W


def test_noc_gon2d_latency_and_round_robin():
    rows, cols = 3, 2
    beats = {(r, c): [(r << 8) | (c << 4) | n for n in range(4)]
             for r in range(rows) for c in range(cols)}
    out, taken, busy = run_gon2d(rows, cols, beats)
    # Everyone always valid, output always ready: one beat per cycle from cycle 2 on; the rows
    # take turns, and within a row the columns.
    assert [cycle for *_, cycle in out] == list(range(2, 2 + len(out)))
    assert [row for row, *_ in out[:6]] == [0, 1, 2, 0, 1, 2]
    row0 = [col for row, col, *_ in out if row == 0]
    assert row0 == [0, 1] * 4
    # A beat taken in cycle t is valid at the output in cycle t + 2.
    assert taken[(0, 0)][0] == 0 and out[0][3] == 2
    assert not busy[0] and busy[1]


def test_noc_gon2d_one_column_has_no_row_stage():
    """With one PE per row a beat goes straight to the arbiter over the rows: valid on ``o``
    the cycle after it was taken, the rows taking turns, one beat per cycle."""
    rows = 3
    beats = {(r, 0): [(r << 8) | n for n in range(4)] for r in range(rows)}
    out, taken, busy = run_gon2d(rows, 1, beats)
    assert [cycle for *_, cycle in out] == list(range(1, 1 + len(out)))
    assert [row for row, *_ in out[:6]] == [0, 1, 2, 0, 1, 2]
    assert all(col == 0 for _, col, *_ in out)
    assert taken[(0, 0)][0] == 0 and out[0][3] == 1
    assert not busy[0] and busy[1]
