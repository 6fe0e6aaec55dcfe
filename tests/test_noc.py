"""Unit tests of the GIN (multicast by tag matching) and the GON (round-robin merge) in the
Amaranth simulator, each compared with a plain Python model."""

import gc
import random
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from rowstat.hw.noc import GON, MulticastGIN, gon_packet_layout, packet_layout

ROW_W, COL_W, PAYLOAD_W = 4, 5, 16
SHAPES = [(3, 4), (12, 14)]


# --- reference model --------------------------------------------------------------------------

def expected_dests(row_ids, col_ids, row_tag, col_tag):
    """PEs a packet must reach: written from the ID definition, independent of the RTL."""
    dests = set()
    for r in range(len(row_ids)):
        for c in range(len(col_ids[r])):
            if row_ids[r] == row_tag and col_ids[r][c] == col_tag:
                dests.add((r, c))
    return dests


def model_gin(row_ids, col_ids, packets):
    """Per-PE received payload sequences and the number of packets that match no PE."""
    rows, cols = len(row_ids), len(col_ids[0])
    received = {(r, c): [] for r in range(rows) for c in range(cols)}
    unmatched = 0
    for row_tag, col_tag, payload in packets:
        dests = expected_dests(row_ids, col_ids, row_tag, col_tag)
        if not dests:
            unmatched += 1
        for pe in dests:
            received[pe].append(payload)
    return received, unmatched


# --- GIN harness ------------------------------------------------------------------------------

def run_gin(rows, cols, row_ids, col_ids, packets, *, fifo_depth=2, ready=None, offer=None,
            max_cycles=2000):
    """Simulate a GIN fed with `packets` [(row_tag, col_tag, payload)] until all are taken and
    the FIFOs are drained.

    `ready(cycle, r, c)` and `offer(cycle)` give the PE ready and input valid patterns (default
    always). Returns a dict with the per-PE received payloads, the cycles they arrived in, the
    cycles the input transfers happened in, and the statistic strobe counts.
    """
    dut = MulticastGIN(rows, cols, ROW_W, COL_W, PAYLOAD_W, fifo_depth=fifo_depth)
    ready = ready or (lambda cycle, r, c: True)
    offer = offer or (lambda cycle: True)
    pes = [(r, c) for r in range(rows) for c in range(cols)]
    res = {
        "received": {pe: [] for pe in pes},
        "arrivals": {pe: [] for pe in pes},
        "accepted": [],
        "delivered": 0, "unmatched": 0, "stall": 0, "stall_cycles": [],
        "cycles": 0,
    }

    async def testbench(ctx):
        for r in range(rows):
            ctx.set(dut.row_ids[r], row_ids[r])
            for c in range(cols):
                ctx.set(dut.col_ids[r][c], col_ids[r][c])
        ready_now = {}
        idx = 0
        idle = 0
        for cycle in range(max_cycles):
            for (r, c) in pes:
                rdy = bool(ready(cycle, r, c))
                if ready_now.get((r, c)) != rdy:
                    ctx.set(dut.o[r][c].ready, rdy)
                    ready_now[(r, c)] = rdy
            valid = idx < len(packets) and bool(offer(cycle))
            ctx.set(dut.i.valid, valid)
            if valid:
                row_tag, col_tag, payload = packets[idx]
                ctx.set(dut.i.payload, {"row": row_tag, "col": col_tag, "data": payload})
            # Sample the transfers that happen at this clock edge.
            if valid and ctx.get(dut.i.ready):
                res["accepted"].append(cycle)
                idx += 1
            for (r, c) in pes:
                if ready_now[(r, c)] and ctx.get(dut.o[r][c].valid):
                    res["received"][(r, c)].append(ctx.get(dut.o[r][c].payload))
                    res["arrivals"][(r, c)].append(cycle)
            for name in ("delivered", "unmatched", "stall"):
                if ctx.get(getattr(dut, name)):
                    res[name] += 1
                    if name == "stall":
                        res["stall_cycles"].append(cycle)
            busy = ctx.get(dut.busy) or any(ctx.get(dut.o[r][c].valid) for (r, c) in pes)
            await ctx.tick()
            # Stop a few cycles after everything is taken and drained (statistics lag by one).
            if idx == len(packets) and not busy:
                idle += 1
                if idle > 2:
                    break
            else:
                idle = 0
        res["cycles"] = cycle
        assert idx == len(packets), f"only {idx} of {len(packets)} packets taken"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return res


def check_against_model(rows, cols, row_ids, col_ids, packets, res):
    received, unmatched = model_gin(row_ids, col_ids, packets)
    for r in range(rows):
        for c in range(cols):
            assert res["received"][(r, c)] == received[(r, c)], f"PE ({r}, {c})"
    assert res["unmatched"] == unmatched
    assert res["delivered"] == len(packets) - unmatched


# --- ID patterns ------------------------------------------------------------------------------

def ids_for(pattern, rows, cols):
    """(row_ids, col_ids, packets) for one multicast pattern, packets with distinct payloads."""
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
    return row_ids, col_ids, packets


@pytest.mark.parametrize("rows,cols", SHAPES)
@pytest.mark.parametrize("pattern", ["unicast", "row", "column", "diagonal", "broadcast"])
def test_multicast_pattern(rows, cols, pattern):
    row_ids, col_ids, packets = ids_for(pattern, rows, cols)
    res = run_gin(rows, cols, row_ids, col_ids, packets)
    # Each packet reaches exactly the intended PEs, written out independently of the model.
    for row_tag, col_tag, payload in packets:
        dests = expected_dests(row_ids, col_ids, row_tag, col_tag)
        got = {pe for pe, seq in res["received"].items() if payload in seq}
        assert got == dests, f"packet {(row_tag, col_tag)}"
        assert all(res["received"][pe].count(payload) == 1 for pe in dests)
        if pattern == "row":
            assert dests == {(row_tag, c) for c in range(cols)}
        elif pattern == "column":
            assert dests == {(r, col_tag) for r in range(rows)}
        elif pattern == "diagonal":
            assert dests == {(r, col_tag - r) for r in range(rows) if 0 <= col_tag - r < cols}
        elif pattern == "broadcast":
            assert len(dests) == rows * cols
        elif pattern == "unicast":
            assert dests == {(row_tag, col_tag)}
    check_against_model(rows, cols, row_ids, col_ids, packets, res)
    assert res["stall"] == 0


@pytest.mark.parametrize("rows,cols", SHAPES)
def test_multicast_unmatched_flagged_and_dropped(rows, cols):
    row_ids = list(range(rows))
    col_ids = [list(range(cols)) for _ in range(rows)]
    packets = [(0, 0, 11), (15, 0, 12), (0, 31, 13), (rows - 1, cols - 1, 14), (15, 31, 15)]
    res = run_gin(rows, cols, row_ids, col_ids, packets)
    check_against_model(rows, cols, row_ids, col_ids, packets, res)
    assert res["unmatched"] == 3
    assert res["received"][(0, 0)] == [11]
    assert res["received"][(rows - 1, cols - 1)] == [14]
    # Unmatched packets take one cycle each like any other: no input stall.
    assert res["accepted"] == list(range(len(packets)))


def test_noc_gin_latency_and_throughput():
    rows, cols = 3, 4
    row_ids = list(range(rows))
    col_ids = [list(range(cols)) for _ in range(rows)]
    tags = [(r, c) for r in range(rows) for c in range(cols)] * 2
    packets = [(rt, ct, 100 + n) for n, (rt, ct) in enumerate(tags)]
    res = run_gin(rows, cols, row_ids, col_ids, packets)
    check_against_model(rows, cols, row_ids, col_ids, packets, res)
    # One packet per cycle, and valid at the PE two cycles after the input transfer.
    assert res["accepted"] == list(range(len(packets)))
    for n, (rt, ct, _) in enumerate(packets):
        nth = [k for k, p in enumerate(packets[:n]) if p[:2] == (rt, ct)]
        assert res["arrivals"][(rt, ct)][len(nth)] == res["accepted"][n] + 2


def test_noc_gin_full_throughput_broadcast_fifo_depth_2():
    # Every PE is a destination of every packet and reads every cycle: still one per cycle.
    rows, cols = 3, 4
    packets = [(1, 1, n) for n in range(20)]
    res = run_gin(rows, cols, [1] * rows, [[1] * cols] * rows, packets, fifo_depth=2)
    assert res["accepted"] == list(range(20))
    assert all(seq == list(range(20)) for seq in res["received"].values())


@pytest.mark.parametrize("rows,cols", SHAPES)
@pytest.mark.parametrize("fifo_depth", [2, 3])
def test_multicast_backpressure_one_pe(rows, cols, fifo_depth):
    """One PE stops reading: traffic to the others flows while its FIFO has room; its own
    packet then waits (and, the GIN being in order, so does what follows) and arrives intact."""
    row_ids = list(range(rows))
    col_ids = [list(range(cols)) for _ in range(rows)]
    stalled = (1, 2)
    release = 60
    ready = lambda cycle, r, c: (r, c) != stalled or cycle >= release  # noqa: E731
    others = [(0, 0), (rows - 1, cols - 1), (0, 1), (2, 3), (1, 1), (1, 3)]
    packets = []
    n = 0
    # Phase 1: fill the stalled PE's FIFO, interleaved with traffic to other PEs.
    for k in range(fifo_depth):
        packets.append((*stalled, 0x100 + k))
        for o in others:
            packets.append((*o, 0x200 + n))
            n += 1
    phase1 = len(packets)
    # Phase 2: one more to the stalled PE (it must wait), then a packet to someone else
    # (blocked behind it: in order), then a broadcast-like row packet.
    packets.append((*stalled, 0x1FF))
    packets.append((0, 0, 0x3FF))
    res = run_gin(rows, cols, row_ids, col_ids, packets, fifo_depth=fifo_depth, ready=ready)
    check_against_model(rows, cols, row_ids, col_ids, packets, res)

    # Phase 1 traffic to the other PEs all arrived while the stalled PE was not reading.
    for row_tag, col_tag, payload in packets[:phase1]:
        if (row_tag, col_tag) != stalled:
            seq = res["received"][(row_tag, col_tag)]
            assert res["arrivals"][(row_tag, col_tag)][seq.index(payload)] < release
    # No stall until the stalled PE's FIFO was full.
    assert res["stall_cycles"] and min(res["stall_cycles"]) > phase1
    # The stalled PE got its packets only after release, intact and in order.
    assert res["received"][stalled] == [0x100 + k for k in range(fifo_depth)] + [0x1FF]
    assert min(res["arrivals"][stalled]) >= release
    # The packet behind the blocked head waited for it (head-of-line, in order).
    i = res["received"][(0, 0)].index(0x3FF)
    assert res["arrivals"][(0, 0)][i] > release
    # The stall strobe was held while waiting.
    assert res["stall"] >= release - phase1 - 10


@pytest.mark.parametrize("rows,cols", SHAPES)
def test_multicast_waits_for_all_destinations(rows, cols):
    """A broadcast goes out in one transfer, only when every PE has room."""
    stalled = (rows - 1, 0)
    release = 40
    ready = lambda cycle, r, c: (r, c) != stalled or cycle >= release  # noqa: E731
    row_ids = [1] * rows
    col_ids = [[2] * cols for _ in range(rows)]
    packets = [(1, 2, 10 + n) for n in range(3)]     # FIFO depth 2: the third one waits
    res = run_gin(rows, cols, row_ids, col_ids, packets, fifo_depth=2, ready=ready)
    check_against_model(rows, cols, row_ids, col_ids, packets, res)
    for pe, arrivals in res["arrivals"].items():
        if pe != stalled:
            assert arrivals[0] < release and arrivals[1] < release
        # The third packet reached no PE before the stalled one had room again.
        assert arrivals[2] > release
    # Written to all FIFOs in the same cycle: PEs that read every cycle see it together.
    assert len({a[2] for pe, a in res["arrivals"].items() if pe != stalled}) == 1


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
    res = run_gin(rows, cols, row_ids, col_ids, packets, fifo_depth=rng.choice([2, 3, 4]),
                  ready=ready, offer=lambda cycle: offer_rng.random() < 0.8, max_cycles=5000)
    check_against_model(rows, cols, row_ids, col_ids, packets, res)
    assert res["stall"] > 0


def test_noc_interface_and_layouts():
    lay = packet_layout(4, 5, 16)
    assert lay.size == 25 and lay["row"].offset == 0 and lay["col"].offset == 4
    assert lay["data"].offset == 9
    gin = MulticastGIN(12, 14, 4, 5, 64)
    assert len(gin.o) == 12 and len(gin.o[0]) == 14
    assert len(gin.col_ids) == 12 and len(gin.col_ids[11]) == 14
    assert len(gin.row_ids) == 12
    assert gin.o[11][13].payload.shape().width == 64
    assert gon_packet_layout(14, 64)["col"].shape.width == 4
    # A constructor that raises still leaves a half-made elaboratable for the garbage collector,
    # which Amaranth would warn about as unused: collect them here with that warning off.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        for bad in (0, -1, 2.0, None, True):
            with pytest.raises(TypeError, match="Row count must be a positive integer"):
                MulticastGIN(bad, 4, 4, 5, 16)
        with pytest.raises(TypeError, match="FIFO depth"):
            MulticastGIN(3, 4, 4, 5, 16, fifo_depth=0)
        with pytest.raises(TypeError, match="Col ID width"):
            MulticastGIN(3, 4, 4, 0, 16)
        with pytest.raises(TypeError, match="Column count"):
            GON(0, 16)
        gc.collect()


def test_noc_gin_converts_to_verilog():
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
    """Feed `beats[c]` (payload lists) into column c; collect the (col, data) packets out."""
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

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
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
