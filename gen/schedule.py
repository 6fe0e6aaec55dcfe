"""The pass schedule: how many cycles one processing pass takes, the one formula the mapper's
estimate (:mod:`rowstat.gen.mapping`, vectorized over candidates) and the timing model
(:mod:`rowstat.sim.timing`, per command) both use.

A pass (``PASS`` command) streams the filters, the ifmap rows and the input psums through the
three GINs and collects the output psums through the GON. The three GIN streamers send one
beat per cycle, round robin over their tags. Every PE runs the same MAC schedule
(:mod:`rowstat.hw.pe`: one step per cycle, ``p*q*S`` steps per ofmap column), so the pass is
paced by the slowest of:

* the first column, which waits for the filter stream (each PE's weights arrive every
  ``ntags`` cycles) and for its first ifmap window;
* the later columns, ``p*q*S`` MAC cycles each, or the ifmap and input psum streams if they
  take longer;
* the GON, one beat per cycle, which starts only when the first column's psums have climbed
  the chain, and paces the whole pass when the array makes psums faster than it carries them.

The last column's ``p`` psums are finished one per cycle during its last ``p`` steps and
leave as they are finished, so after its last step only a fixed latency remains (the last
psum climbing its chain and crossing the GON), plus the GON beats of that column beyond the
``p`` cycles it had for them when many chains share the GON, unless the array makes beats
faster than the GON carries them (then the GON's own bound holds). The fixed latencies are fitted to RTL traces (``benchmarks/pass_timing.py``); the
tests check whole layers against the RTL (``tests/test_timing.py``,
``tests/test_model_vs_rtl.py``).

Every function here works on Python integers and on NumPy integer arrays alike.
"""

import numpy as np

__all__ = ["pass_cycles", "COMMAND_START", "TAIL_LATENCY", "GON_LATENCY"]

#: Cycles between a command's issue and its unit raising busy (the controller registers it).
COMMAND_START = 1
#: Cycles from the last column's last step until the array and the collector are idle, when
#: the GON keeps up with that column's psums (fitted to RTL traces).
TAIL_LATENCY = 19
#: Cycles from the first column's psums reaching the top of the chain to the GON's last beat
#: when the GON paces the pass, beyond its beats (fitted to RTL traces).
GON_LATENCY = 3


def _cdiv(a, b):
    return -(-a // b)


def pass_cycles(*, p, q, S, F, rows, wpb_ifmap, wpb_psum, filter_chunks, filter_ntags,
                filter_last, ifmap_chunks, ifmap_ntags, psum_chunks, psum_ntags, nchains):
    """Cycles from a PASS's unit going busy until the array and the streamers are idle.

    ``p, q, S, F, rows``: the PE configuration (``rows`` = ifmap rows a PE convolves, n_rows);
    ``wpb_*``: words per beat of the ifmap and psum GINs; ``*_chunks``, ``*_ntags``: beats
    per tag and tags of the filter, ifmap and input-psum streams (``filter_last``: words in
    the last filter beat, minus one); ``nchains``: the psum chains the GON collects.
    """
    pqs = p * q * S
    # the first column: until the last PE's last filter beat has come and its words are used,
    # and until its first ifmap window has come (then the p steps of that window's last word)
    fill = np.where(filter_chunks > 0, filter_chunks * filter_ntags + filter_last + 1, 0)
    window = np.where(ifmap_chunks > 0, _cdiv(q * S, wpb_ifmap) * ifmap_ntags + p, 0)
    first = np.maximum(np.maximum(pqs, fill), window)
    mac_end = first + (F * rows - 1) * pqs
    # the last ifmap beat (then the p steps that use its last word); the last input psum beat
    stream_end = np.maximum(ifmap_chunks * ifmap_ntags + p, psum_chunks * psum_ntags)
    # after the last column's last step: its psums have been leaving one per cycle during its
    # last p steps, so a fixed latency remains, plus the GON beats of that column beyond those
    # p cycles (many chains at once). When the array makes beats faster than the GON carries
    # them, its queue never empties, the PEs drift apart behind it and there is no last burst:
    # the GON's bound (by_gon) holds.
    gon_beats = nchains * _cdiv(rows * F * p, wpb_psum)
    burst = np.where(gon_beats > F * rows * pqs, 0,
                     np.maximum(nchains * _cdiv(p, wpb_psum) - p, 0))
    by_macs = np.maximum(mac_end, stream_end) + burst + TAIL_LATENCY
    by_gon = first + gon_beats + GON_LATENCY
    out = np.maximum(by_macs, by_gon)
    return int(out) if np.ndim(out) == 0 else out
