"""Cycle model of the accelerator: when each command of a program issues and when the layer ends.

It replays the controller (rowstat.hw.controller) at the level of commands, not cycles: a
command's words are taken one per cycle; it issues when its unit and the units of its wait
mask are idle (LAYER and COUNTERS wait for all); each unit then stays busy for a duration
that depends only on the command's arguments and the layer's PE shape, as the units'
docstrings define them:

* **LOAD**: one data beat per cycle (the loader), or the link's rate when it is throttled.
* **PASS**: :func:`rowstat.gen.schedule.pass_cycles` (the PEs' ``p*q*S*F*rows`` MAC
  schedule, stretched where the psum, ifmap or GON traffic cannot keep up, plus the filter
  fill of the first column and the last psums' trip up the chain and out through the GON).
* **DRAIN**: one psum per cycle through bias and the output stage (``DRAIN_LATENCY`` more),
  but only a psum per free read cycle while a pass streams input psums (the psum streamer
  has the shared GLB read port first), or the link's rate.

A throttled link (``io_bits_per_cycle``) is one resource that loads and drained beats take
in turn. The tests check the schedule against hand-derived cases, the issue cycle of each
command against the RTL, and whole layers against the RTL (tests/test_timing.py).
* **COUNTERS**: a header and the counter beats.

The model works on the command *plan* (``Program.steps``: op, wait mask, arguments), which
the compiler records as it emits, so there is one home for the loop nest and the wait masks.
:func:`program_cycles` gives cycles from the first command word to the last output beat, the
figure ``rowstat run`` reports.
"""

import math
from dataclasses import dataclass

from ..gen import schedule
from ..gen.schedule import COMMAND_START as _START
from ..gen.program import COUNTERS, Op, Wait, counter_beats, nargs
from ..hw.drain import DRAIN_LATENCY

__all__ = ["program_cycles", "pass_cycles", "Timeline"]


@dataclass
class Timeline:
    cycles: int                 # first command word to last output beat
    issue: list                 # issue cycle of each step
    end: list                   # cycle each step's unit went idle (None: no unit)
    busy: dict                  # unit -> cycles busy


def pass_cycles(arch, pe, args):
    """Cycles from a PASS's unit going busy until the array and the streamers are idle
    (:func:`rowstat.gen.schedule.pass_cycles`). ``pe``: the LAYER's PE configuration (p, q, S,
    F, U, n_rows); ``args``: the PASS arguments."""
    geo = arch.stream_geometry
    f, i, ps = args["filt"], args["ifmap"], args["psum"]
    return schedule.pass_cycles(
        p=pe["p"], q=pe["q"], S=pe["S"], F=pe["F"], rows=pe["n_rows"],
        wpb_ifmap=geo["ifmap"][0], wpb_psum=geo["psum"][0],
        filter_chunks=f["chunks"], filter_ntags=f["ntags"], filter_last=f["last"],
        ifmap_chunks=i["chunks"], ifmap_ntags=i["ntags"],
        psum_chunks=ps["chunks"], psum_ntags=ps["ntags"], nchains=args["nchains"])


def program_cycles(arch, steps, *, io_bits_per_cycle=None):
    """Replay ``steps`` (op, wait, args) on the controller model; returns a :class:`Timeline`.

    The cycle count is from the first command word taken to the last output beat sent, as the
    cocotb bench measures it.
    """
    width = arch.dram_width
    beat_cycles = 1.0 if io_bits_per_cycle is None else max(1.0, width / io_bits_per_cycle)
    words = {op: nargs(arch, op) + 1 for op in Op}     # header + arguments, then ISSUE
    ppw = arch.psums_per_beat
    dump_beats = counter_beats(arch) * len(COUNTERS)
    LOAD, PASS, DRAIN, ALL = int(Wait.LOAD), int(Wait.PASS), int(Wait.DRAIN), int(Wait.ALL)
    free = {LOAD: 0, PASS: 0, DRAIN: 0}                 # cycle each unit is idle from
    busy = {LOAD: 0, PASS: 0, DRAIN: 0}
    t = 0                       # cycle the controller takes the next header word
    pe = None
    out_end = 0
    link_beats = 0
    # A throttled link is one resource. Output goes first: a drain sends its beats as it makes
    # them, and loads get what capacity is left (one load after another).
    throttled = beat_cycles > 1.0
    link_free = 0.0
    outflow = []                # (start, end, beats per cycle) of each drain's output
    last_load = None            # step index of the latest load

    def load_end(at, beats):
        """When a load of ``beats`` starting at ``at`` is done, sharing the link."""
        cap = 1.0 / beat_cycles
        edges = sorted({e for s_, e_, _ in outflow for e in (s_, e_) if e > at})
        for edge in edges + [math.inf]:
            spare = cap - sum(r for s_, e_, r in outflow if s_ <= at < e_)
            if spare > 1e-9:
                if at + beats / spare <= edge:
                    return at + beats / spare
                beats -= (edge - at) * spare
            at = edge
        return at

    issue, end = [], []
    pass_memo = {}
    # The drain shares the psum space's read port with the psum streamer, which goes first:
    # while a pass streams input psums the drain gets only the cycles it leaves. So a drain's
    # end is worked out when something needs it, once every pass it can overlap is known.
    windows = []                # (start, end, share of read cycles the pass leaves free)
    drain = None                # [step index, start, psums, link cycles]

    def settle():
        nonlocal drain, out_end
        k, at, work, link = drain
        at += _START
        work += DRAIN_LATENCY
        for ws, we, share in windows:
            if we <= at:
                continue
            if ws > at:                             # full speed until the window
                step = min(work, ws - at)
                at, work = at + step, work - step
                if not work:
                    break
            rate = share                            # a psum per free read cycle
            span = we - max(at, ws)
            if rate * span >= work:
                at += work / rate if rate else span
                work = 0
                break
            at, work = we, work - rate * span
        finish = int(math.ceil(max(at + work, drain[1] + _START + link)))
        free[DRAIN] = end[k] = finish
        busy[DRAIN] += finish - drain[1]
        out_end = max(out_end, finish)
        drain = None

    for op, wait, args in steps:
        start = t + words[op]
        if op == Op.LOAD:
            unit = LOAD
        elif op == Op.PASS:
            unit = PASS
        elif op == Op.DRAIN:
            unit = DRAIN
        else:
            unit = 0
            if op in (Op.LAYER, Op.COUNTERS):
                wait = ALL
        if drain is not None and (wait & DRAIN or unit == DRAIN):
            settle()
        for u in (LOAD, PASS, DRAIN):
            if (wait & u or u == unit) and free[u] > start:
                start = free[u]
        issue.append(start)
        finish = None
        if op == Op.LOAD:
            if throttled:
                # the link's rate is a budget that accrues while the loader starts (up to a
                # few beats, as the bench's link): a load that follows another loses no cycle
                link_free = load_end(max(start, link_free), args["count"])
                finish = int(math.ceil(link_free))
                last_load = len(end)
            else:
                finish = start + _START + args["count"]
            link_beats += args["count"]
        elif op == Op.PASS:
            key = _pass_key(args)
            d = pass_memo.get(key)
            if d is None:
                d = pass_memo[key] = pass_cycles(arch, pe, args)
            finish = start + _START + d
            reads = args["psum"]["chunks"] * args["psum"]["ntags"]
            if reads:
                windows.append((start + _START, finish, 1.0 - reads / d))
        elif op == Op.DRAIN:
            values = args["nchains"] * ((args["chunks"] - 1) * ppw + args["last"] + 1)
            link = (args["beats"] + 1) * beat_cycles
            if throttled:
                # its output spread over how long it takes (without input-psum contention)
                span = max(values + DRAIN_LATENCY, link)
                outflow = [o for o in outflow if o[1] > start]
                at = start + _START
                left = (link_free - at) / beat_cycles     # beats of the load in flight
                outflow.append((at, at + span, (args["beats"] + 1) / span))
                if left > 0:
                    # the drain's output overtakes the load still on the link
                    link_free = load_end(at, left)
                    busy[LOAD] += int(math.ceil(link_free)) - end[last_load]
                    free[LOAD] = end[last_load] = int(math.ceil(link_free))
            drain = [len(end), start, values, link]
            windows = [w for w in windows if w[1] > start]
            link_beats += args["beats"] + 1
        elif op == Op.COUNTERS:
            finish = start + 1 + int(round((dump_beats + 1) * beat_cycles))
            out_end = max(out_end, finish)
            link_beats += dump_beats + 1
        elif op == Op.LAYER:
            pe = args["pe"]
        if unit and finish is not None:
            free[unit] = finish
            busy[unit] += finish - start
        end.append(finish)
        t = start + 1
    if drain is not None:
        settle()
    # The link carries every beat in and out: it bounds the layer when throttled.
    cycles = max(out_end, int(math.ceil(link_beats * beat_cycles)))
    return Timeline(cycles=cycles, issue=issue, end=end, busy=busy)


def _pass_key(args):
    f, i, p = args["filt"], args["ifmap"], args["psum"]
    return (f["chunks"], f["ntags"], f["last"], i["chunks"], i["ntags"], i["last"],
            p["chunks"], p["ntags"], p["last"], args["nchains"])
