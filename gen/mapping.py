"""Choosing a row-stationary mapping for one conv layer: n, e, p, q, r, t, m and everything that
follows from them (strips, channel blocks, filter sub-blocks, GLB layout, pass shapes).

Mapping parameters (REFERENCE.md, "Mapping parameters of one processing pass"):

* ``n`` images per pass (a divisor of N, so every pass has the same PE configuration);
* ``e`` ofmap rows per strip (logical PE set width; the last strip may be narrower);
* ``p`` filters and ``q`` channels per PE (``p <= psum_spad_depth``, ``q*S <= ifmap_spad_depth``,
  ``p*q*S <= filter_spad_depth``);
* ``r`` set copies on different channels, ``t`` on different filters;
* ``m`` filters whose psums the GLB holds (a multiple of ``p*t``; ``m/(p*t)`` filter sub-blocks).

The loop nest the compiler (:mod:`rowstat.gen.compiler`) follows, outermost first, in one of
two orders of its tiles (``order``, :data:`ORDERS`; :meth:`Mapping.tiles` is the one home of it)::

    for group g:                          (order "strip": the group's biases loaded)
      order "m":      for m block:        (its biases loaded)
                        for image block (n images):
                          for strip (e ofmap rows):          -> a tile
      order "strip":  for image block:
                        for strip:
                          for m block:                       -> a tile
        tile (one psum "tile": m/(p*t) regions):
            for channel block (q*r channels):   (order "m": its ifmap strip loaded)
              for sub-block (p*t filters):      (filters loaded, one pass)
            drain the tile's regions (bias, output stage)

Ifmaps load a channel block's strip at a time. Order "m" loads every strip once per m block.
Order "strip" loads each of a strip's channel blocks once and keeps them in the GLB while the
tiles cycle through the m blocks: the ifmap traffic drops by the number of m blocks (AlexNet
CONV1: 3 to 6), for more strip buffers. :func:`strip_loads` and :func:`strip_runs` count the
loads for the estimate and the model (rowstat.sim.model).

GLB layout: the ifmap space (banks ``[0, split)``) holds a ring of ``ifmap_buffers`` strip
buffers of ``ifmap_region`` words (one channel block's strip each), which the strip loads take
in turn (load ``i`` in buffer ``i mod ifmap_buffers``); a load goes in pieces over the passes
between the last use of its buffer's previous strip and its own first use; the psum space a
ring of ``psum_regions`` regions of ``psum_region`` words, one per sub-block of a tile, taken in
turn (tile T's sub-block b uses region ``(T * sub_blocks + b) mod psum_regions``); the filter
buffer ``filter_buffers`` halves of ``filter_region`` words, one per pass in turn. Two ifmap
buffers (order "strip": twice the channel blocks), two filter halves and at least
``sub_blocks + 1`` psum regions let the next strip and filters load and the last tile drain
while passes run; a layer that does not fit so falls back to fewer buffers (order "m": one;
order "strip": one more than the channel blocks, or as many).

The search is exhaustive over the legal parameter space (vectorized with NumPy) and ranks the
candidates by an estimate of cycles (:meth:`Mapping.estimate`), DRAM beats breaking ties.
"""

import contextlib
from dataclasses import dataclass, field

import numpy as np

from ..hw.drain import DRAIN_LATENCY
from . import schedule
from .errors import MappingError
from .schedule import COMMAND_START
from .program import COUNT, PE_U_WIDTH, TAGS, Op, nargs
from .placement import PassShape, _segments, ceil_div, place_pass

__all__ = ["Mapping", "map_layer", "needs_ranking", "config_beats", "strip_loads", "strip_runs",
           "OBJECTIVES", "ORDERS", "PE_U_MAX"]

OBJECTIVES = ("cycles", "dram", "energy")
PE_U_MAX = (1 << PE_U_WIDTH) - 1    # PE config U field
COUNT_MAX = (1 << COUNT) - 1    # command count/address fields
TAGS_MAX = (1 << TAGS) - 1      # tag table sizes


#: Orders of the tiles (see the module docstring): "m", m blocks outside the strips; "strip",
#: strips outside the m blocks.
ORDERS = ("m", "strip")


def strip_loads(order, groups, m_blocks, image_blocks, channel_blocks):
    """How often each strip position's ifmap is loaded over the layer, a channel block at a
    time: once per (group, image block, channel block), and again for every m block in order
    "m". ``order``: an index into :data:`ORDERS`. Works on NumPy arrays too."""
    per = np.where(np.asarray(order) == ORDERS.index("strip"), 1, m_blocks)
    out = groups * image_blocks * channel_blocks * per
    return int(out) if np.ndim(out) == 0 else out


def strip_runs(order, groups, m_blocks, image_blocks):
    """How often the tiles go through all strips in turn: the placement tables load twice per
    run when a narrower last strip follows full ones. Works on NumPy arrays too."""
    per = np.where(np.asarray(order) == ORDERS.index("strip"), 1, m_blocks)
    out = groups * image_blocks * per
    return int(out) if np.ndim(out) == 0 else out


def _rows_in_view(widths, R, U):
    """Ifmap rows some PE of the segments reads (rows between the windows are not sent)."""
    return sum(w * R if U >= R else U * (w - 1) + R for w in widths)


def config_beats(arch, R, r, t, e_s, rows_in_view):
    """DRAM beats of one placement's tables (rowstat.gen.compiler loads them when the placement
    changes): the ID chain (a beat per PE and one per row), the ifmap, filter and psum tag tables
    (a beat per tag: ``r * rows_in_view`` ifmap rows, ``R * r * t`` filter rows, ``t * e_s``
    chains) and the chain table (a beat per PE). Works on NumPy arrays too."""
    return (arch.rows * (arch.cols + 1) + r * rows_in_view + R * r * t + t * e_s
            + arch.rows * arch.cols)


def _divisors(N):
    return [d for d in range(1, N + 1) if N % d == 0]


@dataclass(frozen=True)
class Mapping:
    """A row-stationary mapping of one layer on one architecture (see the module docstring).

    Counts are per group (groups are independent sub-layers run one after the other).
    """

    n: int
    e: int
    p: int
    q: int
    r: int
    t: int
    m: int
    # --- derived counts ---
    groups: int
    strips: int             # strips of e ofmap rows (the last one e_last rows)
    e_last: int
    channel_blocks: int     # ceil(C/groups / (q*r)); channels beyond C are zeros
    sub_blocks: int         # filter sub-blocks of p*t filters per m block = m / (p*t)
    m_blocks: int           # ceil(M/groups / m); filters beyond M are zeros
    image_blocks: int       # N / n
    passes: int             # all groups
    # --- GLB layout ---
    split: int              # GLB banks given to ifmaps
    ifmap_region: int       # GLB words of one ifmap strip buffer (a full strip)
    psum_region: int        # GLB words of one sub-block's psums (a full strip)
    filter_region: int      # filter buffer words of one pass's filters
    ifmap_buffers: int      # strip buffers in the ifmap space's ring (see the module docstring)
    psum_regions: int       # regions in the psum space's ring (> sub_blocks: drains are hidden)
    filter_buffers: int
    bias_buffers: int       # bias sets in the table (a set: bias_span entries)
    # --- the loop order ---
    order: str              # one of ORDERS
    # --- the estimate (cycles, dram_beats, ...) ---
    estimate: dict = field(compare=False)
    # --- what it was made for, and the pass placements ---
    arch: object = field(repr=False, compare=False)
    layer: object = field(repr=False, compare=False)
    placement: object = field(repr=False, compare=False)       # a full strip
    placement_last: object = field(repr=False, compare=False)  # the last strip (may be the same)

    # --- shapes -----------------------------------------------------------------------------
    @property
    def shape(self):
        return self.placement.shape

    @property
    def shape_last(self):
        return self.placement_last.shape

    @property
    def continues(self):
        """Passes after the first channel block continue psums through the psum GIN."""
        return self.channel_blocks > 1

    @property
    def cycles(self):
        """Estimated cycles of the whole layer."""
        return self.estimate["cycles"]

    @property
    def active_pes(self):
        return self.placement.active

    @property
    def utilization(self):
        """Estimated MAC utilisation: layer MACs / (PEs * estimated cycles)."""
        return self.estimate["utilization"]

    @property
    def bias_span(self):
        """Bias entries loaded at once: an m block's (order "m"), or all of a group's (order
        "strip", whose tiles cycle through the m blocks)."""
        return self.m * (self.m_blocks if self.order == "strip" else 1)

    def tiles(self):
        """(group, m block, image block, strip) of every tile, in the order they run."""
        for g in range(self.groups):
            if self.order == "strip":
                for ib in range(self.image_blocks):
                    for s in range(self.strips):
                        for mb in range(self.m_blocks):
                            yield g, mb, ib, s
            else:
                for mb in range(self.m_blocks):
                    for ib in range(self.image_blocks):
                        for s in range(self.strips):
                            yield g, mb, ib, s

    def strip(self, s):
        """(first ofmap row, ofmap rows, placement) of strip ``s``."""
        e_s = self.e if s < self.strips - 1 else self.e_last
        return s * self.e, e_s, self.placement if e_s == self.e else self.placement_last

    def psum_chunks(self):
        """Psum beats per chain per pass (n*F*p psums per chain)."""
        wpb = self.arch.stream_geometry["psum"][0]
        return ceil_div(self.n * self.layer.F * self.p, wpb)

    def to_params(self):
        return {k: getattr(self, k) for k in "nepqrt"} | {"order": self.order}

    def to_dict(self):
        out = {k: getattr(self, k) for k in (
            "n", "e", "p", "q", "r", "t", "m", "groups", "strips", "e_last", "channel_blocks",
            "sub_blocks", "m_blocks", "image_blocks", "passes", "split", "ifmap_region",
            "psum_region", "filter_region", "ifmap_buffers", "psum_regions", "filter_buffers",
            "bias_buffers", "order")}
        out["active_pes"] = self.active_pes
        out["estimate"] = dict(self.estimate)
        return out

    def summary(self):
        est = self.estimate
        return (f"n={self.n} e={self.e} p={self.p} q={self.q} r={self.r} t={self.t} "
                f"m={self.m} order={self.order}: {self.passes} passes, {self.active_pes} "
                f"active PEs, "
                f"~{est['cycles']} cycles ({100 * est['utilization']:.1f}% MAC utilisation), "
                f"~{est['dram_beats']} DRAM beats")


# --- the search ---------------------------------------------------------------------------------

class _Ctx:
    """Constants of one (arch, layer) search."""

    def __init__(self, arch, layer, io_bits_per_cycle):
        self.arch, self.layer = arch, layer
        self.N, self.G = layer.N, layer.groups
        self.Cg, self.Mg = layer.C_per_group, layer.M_per_group
        self.E, self.F, self.R, self.S, self.U = layer.E, layer.F, layer.R, layer.S, layer.stride
        self.Wp = self.U * (self.F - 1) + self.S
        geo = arch.stream_geometry
        self.wpb_f, _, self.pw_f = geo["filter"]
        self.wpb_i, _, self.pw_i = geo["ifmap"]
        self.wpb_p, _, self.pw_p = geo["psum"]
        self.depth = arch.glb_bank_depth
        self.fbuf = arch.glb_filter_banks * arch.glb_bank_depth
        self.bias_depth = arch.bias_depth
        self.out_per_beat = arch.out_words_per_beat(layer.shift is not None)
        self.io = io_bits_per_cycle
        # the command words around one pass (its filter and ifmap loads, the PASS, a drain),
        # taken one per cycle while the previous pass runs, and the issue cycle
        self.pass_command_words = COMMAND_START + sum(
            nargs(arch, op) + 1 for op in (Op.LOAD, Op.LOAD, Op.PASS, Op.DRAIN))


def _evaluate(c, e, r, n, p, q, t, strips, e_last, rows_full, rows_last, m_forced=None,
              order_forced=None):
    """Estimate for arrays of candidates sharing e. Returns a dict of arrays; ``ok`` marks
    the candidates that fit (other entries are meaningless where ``ok`` is False).
    ``m_forced``: use this m (it must be a multiple of p*t and fit) instead of choosing one;
    ``order_forced``: use this loop order (an index into ORDERS) instead of the better one."""
    R, S, F = c.R, c.S, c.F
    n, p, q, t, r = np.broadcast_arrays(*(np.asarray(v, dtype=np.int64)
                                          for v in (n, p, q, t, r)))
    cdiv = lambda a, b: -(-a // b)
    # ifmap strip region (full and last strip)
    chunks_i = cdiv(n * c.Wp * q, c.wpb_i)
    iw = cdiv(r * rows_full * chunks_i, c.pw_i)
    iw_last = cdiv(r * rows_last * chunks_i, c.pw_i)
    # psums of one sub-block (one beat per GLB word)
    chunks_p = cdiv(n * F * p, c.wpb_p)
    pw = t * e * chunks_p
    out_psums = t * e * n * F * p                           # per drain block (full strip)
    drain = out_psums + DRAIN_LATENCY                       # a psum per cycle (hw/drain.py)
    # filters of one pass
    chunks_f = cdiv(p * q * S, c.wpb_f)
    ntags_f = R * r * t
    fw = cdiv(ntags_f * chunks_f, c.pw_f)
    fb = np.where(2 * fw <= c.fbuf, 2, np.where(fw <= c.fbuf, 1, 0))
    kcap = c.bias_depth // (p * t)
    Kt = cdiv(c.Mg, p * t)
    cbs = cdiv(c.Cg, q * r)
    nimg = c.N // n
    # one pass (full strips), as the timing model replays it
    pqs = p * q * S
    mac = n * F * pqs
    nch = t * e
    ibeats = chunks_i * r * rows_full
    cbs_ = cbs + 0 * p
    pass_cycles = COMMAND_START + schedule.pass_cycles(
        p=p, q=q, S=S, F=F, rows=n, wpb_ifmap=c.wpb_i, wpb_psum=c.wpb_p,
        filter_chunks=chunks_f, filter_ntags=ntags_f, filter_last=(pqs - 1) % c.wpb_f,
        ifmap_chunks=chunks_i, ifmap_ntags=r * rows_full,
        psum_chunks=np.where(cbs_ > 1, chunks_p, 0), psum_ntags=nch, nchains=nch)
    gon = (nch * chunks_p) / np.maximum(mac, 1)
    ifr = ibeats / np.maximum(mac, 1)
    slow = pass_cycles / np.maximum(mac, 1)
    ovh = pass_cycles - mac
    # the loads between two passes (this pass's filters, a piece of the next strip, command
    # words) run while the previous pass does; the next pass waits for both
    beat = 1.0 if not c.io else max(1.0, c.arch.dram_width / c.io)
    feed = (np.ceil((fw + iw / np.maximum(cdiv(c.Mg, p * t), 1)) * beat).astype(np.int64)
            + c.pass_command_words)
    pass_cycles = np.maximum(pass_cycles, feed)
    # a single filter buffer: the next pass's filters load only after this pass
    pass_cycles = pass_cycles + np.where(fb == 1, np.ceil(fw * beat).astype(np.int64), 0)

    # GLB: ifmap strip buffers (2, or 1 if that is all that fits), the rest of the banks a
    # ring of psum regions: m/(p*t) = k sub-blocks need k + 1 regions so that a tile's regions
    # drain while the next tile's passes run (k alone: the drains are not hidden).
    best = None
    orders = range(len(ORDERS)) if order_forced is None else (order_forced,)
    for order, spare in ((o, b) for o in orders for b in (2, 1, 0)):
        # strip buffers: one per channel block held (order "m": one; "strip": all), and spare
        # ones that the next strip loads into while passes run: as many again, one, or none
        held = np.where(order == ORDERS.index("strip"), cbs, 1) + 0 * p
        ib = held + np.where(spare == 2, held, spare)
        ibanks = cdiv(ib * iw, c.depth)
        free = np.maximum(c.arch.glb_banks - ibanks, 0) * c.depth
        regions = free // pw
        kmax = np.minimum(np.where(regions >= 2, regions - 1, regions), kcap)
        ok = (fb > 0) & (ibanks <= c.arch.glb_banks) & (kmax >= 1)
        if m_forced is None:
            nmb = cdiv(Kt, np.maximum(kmax, 1))
            k = cdiv(Kt, nmb)
            m = p * t * k
        else:
            m = np.full_like(p, m_forced)
            k = np.maximum(m // (p * t), 1)
            ok = ok & (m % (p * t) == 0) & (k <= kmax)
            nmb = np.full_like(p, cdiv(c.Mg, m_forced))
        if order == ORDERS.index("strip"):
            # the group's biases stay in the table while the tiles cycle through the m blocks
            ok = ok & (nmb * m <= c.bias_depth)
        pools = np.minimum(regions, 2 * k)
        passes = c.G * nmb * k * nimg * strips * cbs
        tiles = c.G * nmb * nimg * strips
        loads = strip_loads(order, c.G, nmb, nimg, cbs)        # per strip position
        cycles = (passes * pass_cycles
                  # ifmap loads not hidden (at the link's rate)
                  + np.where(ib == 1, np.ceil(loads * strips * iw * beat).astype(np.int64), 0)
                  + np.where(pools <= k, tiles * k * drain, 0)    # drains not hidden
                  + iw + fw + k * drain)                         # start-up and final drain
        # DRAM beats
        ifmap_beats = loads * ((strips - 1) * iw + iw_last)
        # the placement tables: once, or twice per run through the strips when a narrower
        # last strip alternates with full ones
        cfg_last = config_beats(c.arch, R, r, t, e_last, rows_last)
        cfg = (cfg_last if e_last == e or strips == 1 else
               strip_runs(order, c.G, nmb, nimg)
               * (config_beats(c.arch, R, r, t, e, rows_full) + cfg_last))
        dram_in = ifmap_beats + passes * fw + c.G * nmb * m + cfg
        out_vals_last = t * e_last * n * F * p
        dram_out = c.G * nmb * nimg * k * (
            (strips - 1) * (1 + cdiv(out_psums, c.out_per_beat))
            + 1 + cdiv(out_vals_last, c.out_per_beat))
        if c.io:
            io = np.ceil((dram_in + dram_out) * c.arch.dram_width / c.io).astype(np.int64)
            cycles = np.maximum(cycles, io)
        ev = dict(ok=ok, order=np.full_like(p, order), ib=ib, pools=pools,
                  fb=fb, split=ibanks + 0 * p,
                  m=m, nmb=nmb, k=k, kmax=kmax, cbs=cbs + 0 * p, passes=passes,
                  pass_cycles=pass_cycles, mac=mac, slow=slow, ovh=ovh, cycles=cycles,
                  dram_in=dram_in, dram_out=dram_out, iw=iw, pw=pw, fw=fw, gon=gon, ifr=ifr)
        if best is None:
            best = ev
        else:
            dram, best_dram = ev["dram_in"] + ev["dram_out"], best["dram_in"] + best["dram_out"]
            better = ev["ok"] & (~best["ok"] | (ev["cycles"] < best["cycles"])
                                 | ((ev["cycles"] == best["cycles"]) & (dram < best_dram)))
            best = {name: np.where(better, ev[name], best[name]) for name in best}
    return best


def _check_layer(arch, layer):
    """Limits that no choice of parameters can meet."""
    R, S, U = layer.R, layer.S, layer.stride
    if R > arch.rows:
        raise MappingError(f"R={R} exceeds rows={arch.rows}")
    if S > arch.ifmap_spad_depth:
        raise MappingError(f"S={S}: q*S={S} exceeds ifmap_spad_depth={arch.ifmap_spad_depth}")
    if S > arch.filter_spad_depth:
        raise MappingError(f"S={S}: p*q*S={S} exceeds filter_spad_depth="
                           f"{arch.filter_spad_depth}")
    if U > PE_U_MAX:
        raise MappingError(f"stride={U} exceeds the PE's stride field (at most {PE_U_MAX})")
    f_max = (1 << arch.pe_f_width) - 1
    if layer.F > f_max:
        # The field is narrower than 12 bits when the GLB could not hold a longer row anyway.
        why = "" if f_max >= (1 << 12) - 1 else (
            f": a row must fit the GLB's ifmap space, at most {max(1, arch.glb_banks - 1)} of "
            f"glb_banks={arch.glb_banks} banks (the psums take one) of "
            f"glb_bank_depth={arch.glb_bank_depth} words, {arch.pe_stream_limit} ifmaps")
        raise MappingError(f"F={layer.F} exceeds the PE's ofmap row width field "
                           f"(at most {f_max}{why})")
    if R - 1 >= 1 << arch.ifmap_col_id_width:
        raise MappingError(f"R={R}: ifmap col ID {R - 1} does not fit in its "
                           f"{arch.ifmap_col_id_width}-bit field")
    wpb, bits, per_word = arch.stream_geometry["psum"]
    if per_word != 1:
        raise MappingError(
            f"psum beats of {wpb * bits} bits pack {per_word} to a {arch.glb_width}-bit GLB "
            f"word, but the GON collector writes one beat per GLB word (psum_bus_width="
            f"{arch.psum_bus_width}, glb_width={arch.glb_width})")


def _check_forced(arch, layer, forced):
    S = layer.S
    if "order" in forced and forced["order"] not in ORDERS:
        raise MappingError(f"bad loop order {forced['order']!r}; allowed: {', '.join(ORDERS)}")
    for name, value in forced.items():
        if name == "order":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise MappingError(f"bad mapping parameter {name}={value!r}; allowed: an integer >= 1")
    p, q = forced.get("p"), forced.get("q")
    if p is not None and p > arch.psum_spad_depth:
        raise MappingError(f"p={p} exceeds psum_spad_depth={arch.psum_spad_depth}")
    if q is not None and q * S > arch.ifmap_spad_depth:
        raise MappingError(f"q={q}, S={S}: q*S={q * S} exceeds ifmap_spad_depth="
                           f"{arch.ifmap_spad_depth}")
    if p is not None and q is not None and p * q * S > arch.filter_spad_depth:
        raise MappingError(f"p={p}, q={q}, S={S}: p*q*S={p * q * S} exceeds "
                           f"filter_spad_depth={arch.filter_spad_depth}")
    if "n" in forced and layer.N % forced["n"]:
        raise MappingError(f"n={forced['n']} does not divide N={layer.N}")
    if "e" in forced and forced["e"] > layer.E:
        raise MappingError(f"e={forced['e']} exceeds E={layer.E}")
    if "m" in forced:
        m = forced["m"]
        if m > arch.bias_depth:
            raise MappingError(f"m={m} exceeds the bias table ({arch.bias_depth} entries)")
        pt = forced.get("p", 1) * forced.get("t", 1)
        if m % pt:
            raise MappingError(f"m={m} is not a multiple of p*t={pt}")


def _search(c, forced, objective):
    """All candidates, best first: a list of (key, params dict)."""
    arch = c.arch
    E, R, U = c.E, c.R, c.U
    rows_max = (1 << arch.pe_rows_width) - 1
    ns = [d for d in _divisors(c.N) if forced.get("n", d) == d and d <= rows_max]
    ps = [p for p in range(1, min(arch.psum_spad_depth, c.Mg) + 1) if forced.get("p", p) == p]
    qmax = min(arch.ifmap_spad_depth // c.S, c.Cg)
    qs = [q for q in range(1, qmax + 1) if forced.get("q", q) == q]
    if "p" in forced and forced["p"] > c.Mg:
        ps = [forced["p"]]
    if "q" in forced and forced["q"] > c.Cg and forced["q"] * c.S <= arch.ifmap_spad_depth:
        qs = [forced["q"]]
    if "e" in forced:
        es = [forced["e"]]
    else:
        es = sorted({ceil_div(E, k) for k in range(1, E + 1)})
    found = []
    bands_avail = arch.rows // R
    for e in es:
        widths, _ = _segments(e, arch.cols)
        nseg, w = len(widths), max(widths)
        slots = arch.cols // w
        if nseg > bands_avail or U * (w - 1) + R - 1 >= 1 << arch.ifmap_col_id_width:
            continue
        strips = ceil_div(E, e)
        e_last = E - (strips - 1) * e
        rows_full = _rows_in_view(widths, R, U)
        rows_last = _rows_in_view(_segments(e_last, arch.cols)[0], R, U)
        rmax = min(bands_avail // nseg, c.Cg if "r" not in forced else forced["r"])
        grids = []                      # the candidates of every r, evaluated together
        for r in range(1, rmax + 1):
            if forced.get("r", r) != r or r * nseg - 1 >= 1 << arch.row_id_width \
                    or r * rows_full > TAGS_MAX:
                continue
            tmax = min(slots * (bands_avail // (r * nseg)), (1 << arch.col_id_width) // r)
            if "t" in forced:
                ts = [forced["t"]] if forced["t"] <= tmax else []
            else:
                ts = list(range(1, min(tmax, c.Mg) + 1))
            if not ts or not ps or not qs or not ns:
                continue
            grid = [a.reshape(-1) for a in np.meshgrid(ns, ps, qs, ts, [r], indexing="ij")]
            grids.append(grid)
        if not grids:
            continue
        n_, p_, q_, t_, r_ = (np.concatenate(parts) for parts in zip(*grids))
        legal = p_ * q_ * c.S <= arch.filter_spad_depth
        if "t" not in forced:           # no filter copy that only holds padding
            legal &= (t_ - 1) * p_ < c.Mg
        if "r" not in forced:           # no channel copy that only holds padding
            legal &= (r_ - 1) * q_ < c.Cg
        if not legal.any():
            continue
        n_, p_, q_, t_, r_ = n_[legal], p_[legal], q_[legal], t_[legal], r_[legal]
        ev = _evaluate(c, e, r_, n_, p_, q_, t_, strips, e_last, rows_full, rows_last,
                       forced.get("m"), _order_index(forced))
        ok = ev["ok"] & (n_ * c.F * p_ <= COUNT_MAX * c.wpb_p)
        ok &= -(-n_ * c.Wp * q_ // c.wpb_i) <= COUNT_MAX
        ok &= n_ * c.Wp * q_ <= arch.pe_stream_limit      # the PE's row counters
        sel = np.flatnonzero(ok)
        if not sel.size:
            continue
        cyc = ev["cycles"][sel]
        dram = (ev["dram_in"] + ev["dram_out"])[sel]
        first, second = (cyc, dram) if objective == "cycles" else (dram, cyc)
        # ties: fewer passes, then more filters per PE (Eyeriss's choice), then fewer copies
        ranked = np.lexsort((r_[sel], -p_[sel], ev["passes"][sel], second, first))[:8 * rmax]
        for i in ranked:
            idx = sel[i]
            params = dict(n=int(n_[idx]), e=e, p=int(p_[idx]), q=int(q_[idx]), r=int(r_[idx]),
                          t=int(t_[idx]), order=ORDERS[int(ev["order"][idx])])
            key = (int(first[i]), int(second[i]), int(ev["passes"][idx]), -params["p"],
                   params["r"])
            found.append((key, params))
    found.sort(key=lambda kv: kv[0])
    return found


def _order_index(params):
    """The index into ORDERS of ``params``'s loop order, or None if it is not given."""
    return ORDERS.index(params["order"]) if "order" in params else None


def _build(c, params, forced):
    """The Mapping for ``params`` (n, e, p, q, r, t and, if given, the loop order), or raise
    MappingError."""
    arch, layer = c.arch, c.layer
    n, e, p, q, r, t = (params[k] for k in "nepqrt")
    R, U, E = c.R, c.U, c.E
    strips = ceil_div(E, e)
    e_last = E - (strips - 1) * e
    continues = ceil_div(c.Cg, q * r) > 1
    kw = dict(continue_psums=continues, row_id_width=arch.row_id_width,
              col_id_width=arch.col_id_width, ifmap_col_id_width=arch.ifmap_col_id_width)
    pl = place_pass(arch.rows, arch.cols, PassShape(R, e, U, r, t), **kw)
    pl_last = pl if e_last == e else place_pass(arch.rows, arch.cols,
                                                PassShape(R, e_last, U, r, t), **kw)
    rows_full = _rows_in_view(pl.seg_width, R, U)
    rows_last = _rows_in_view(pl_last.seg_width, R, U)
    ev = _evaluate(c, e, r, n, p, q, t, strips, e_last, rows_full, rows_last, forced.get("m"),
                   _order_index(params if "order" in params else forced))
    ev = {k: (v.item() if hasattr(v, "item") else v) for k, v in ev.items()}
    if not ev["ok"]:
        raise MappingError(f"n={n} e={e} p={p} q={q} r={r} t={t}"
                           + (f" m={forced['m']}" if "m" in forced else "")
                           + (f" order={params['order']}" if "order" in params else "")
                           + ": the buffers do not fit the GLB")
    nmb, k, m, passes, cycles = ev["nmb"], ev["k"], ev["m"], ev["passes"], ev["cycles"]
    order = ORDERS[ev["order"]]
    span = m * (nmb if order == "strip" else 1)        # Mapping.bias_span
    bias_buffers = 2 if 2 * span <= c.bias_depth else 1
    cycles = int(cycles)
    est = {
        "cycles": cycles,
        "pass_cycles": int(ev["pass_cycles"]),
        "pass_mac_cycles": int(ev["mac"]),
        "pass_slowdown": round(float(ev["slow"]), 4),
        "pass_overhead": int(ev["ovh"]),
        "gon_load": round(float(ev["gon"]), 4),
        "ifmap_gin_load": round(float(ev["ifr"]), 4),
        "active_pes": pl.active,
        "active_fraction": pl.active / arch.pes,
        "macs": layer.macs,
        "utilization": layer.macs / (arch.pes * cycles) if cycles else 0.0,
        "dram_in_beats": int(ev["dram_in"]),
        "dram_out_beats": int(ev["dram_out"]),
        "dram_beats": int(ev["dram_in"] + ev["dram_out"]),
    }
    return Mapping(
        n=n, e=e, p=p, q=q, r=r, t=t, m=m, groups=c.G, strips=strips, e_last=e_last,
        channel_blocks=ev["cbs"], sub_blocks=k, m_blocks=nmb, image_blocks=c.N // n,
        passes=passes, split=int(ev["split"]), ifmap_region=int(ev["iw"]),
        psum_region=int(ev["pw"]), filter_region=int(ev["fw"]), ifmap_buffers=int(ev["ib"]),
        psum_regions=int(ev["pools"]), filter_buffers=int(ev["fb"]), bias_buffers=bias_buffers,
        order=order, estimate=est, arch=arch, layer=layer, placement=pl, placement_last=pl_last)


def _diagnose(c, forced):
    """Why nothing fits: a MappingError naming the smallest requirement that breaks a limit."""
    arch = c.arch
    n = forced.get("n", 1)
    p, q, r, t = (forced.get(k, 1) for k in "pqrt")
    e = forced.get("e", 1)
    desc = ", ".join(f"{k}={v}" for k, v in forced.items())
    if forced.get("order") == "strip" and c.Mg > c.bias_depth:
        raise MappingError(f"{desc}: order strip holds a group's {c.Mg} biases at once, the "
                           f"bias table has {c.bias_depth} entries; allowed: order=m")
    widths, _ = _segments(e, arch.cols)
    nseg, w = len(widths), max(widths)
    bands = arch.rows // c.R
    if forced:
        try:
            place_pass(arch.rows, arch.cols, PassShape(c.R, e, c.U, r, t),
                       row_id_width=arch.row_id_width, col_id_width=arch.col_id_width,
                       ifmap_col_id_width=arch.ifmap_col_id_width)
        except MappingError as exc:
            raise MappingError(f"{desc}: {exc}") from None
    if c.U * (w - 1) + c.R - 1 >= 1 << arch.ifmap_col_id_width:
        raise MappingError(f"R={c.R}, stride={c.U}: ifmap col ID {c.U * (w - 1) + c.R - 1} "
                           f"does not fit in its {arch.ifmap_col_id_width}-bit field")
    if nseg > bands:
        raise MappingError(f"e={e} needs {nseg} bands of R={c.R} rows, the array has {bands}")
    strips = ceil_div(c.E, e)
    rows = _rows_in_view(widths, c.R, c.U)
    ev = _evaluate(c, e, r, n, p, q, t, strips, c.E - (strips - 1) * e, rows, rows)
    ev = {k: (v.item() if hasattr(v, "item") else v) for k, v in ev.items()}
    if ev["fw"] > c.fbuf:
        raise MappingError(f"{desc + ': ' if desc else ''}the filters of one pass need "
                           f"{ev['fw']} words, the filter buffer holds {c.fbuf} "
                           f"(glb_filter_banks={arch.glb_filter_banks} x glb_bank_depth="
                           f"{arch.glb_bank_depth})")
    total = arch.glb_banks * arch.glb_bank_depth
    raise MappingError(
        f"{desc + ': ' if desc else 'no mapping fits the GLB: '}the smallest ifmap strip "
        f"(e={e}, n={n}, q={q}, r={r}: {ev['iw']} words) and the psums of one filter sub-block "
        f"(p={p}, t={t}: {ev['pw']} words) need {ceil_div(ev['iw'], c.depth)} + "
        f"{ceil_div(ev['pw'], c.depth)} banks of {c.depth} words, the GLB has "
        f"glb_banks={arch.glb_banks} ({total} words)")


def needs_ranking(objective, io_bits_per_cycle=None):
    """Whether the estimate alone cannot choose: energy, and cycles over a throttled link (where
    loads and drains share the link, and the timing model replaying the command plan ranks
    better than the estimate). The ranking is passed in (:func:`map_layer`'s ``rank``), by the
    models above (:func:`rowstat.sim.model.choose_mapping`)."""
    return objective == "energy" or (objective == "cycles" and io_bits_per_cycle is not None)


def map_layer(arch, layer, objective="cycles", *, io_bits_per_cycle=None, rank=None, **forced):
    """Choose a row-stationary mapping of ``layer`` on ``arch``.

    Everything that runs or predicts a layer chooses through
    :func:`rowstat.sim.model.choose_mapping`, which passes the model's ``rank``; without a
    ranking this chooses only where the estimate decides (:func:`needs_ranking`).

    Parameters
    ----------
    objective : "cycles" | "dram" | "energy"
        "cycles": the fewest estimated cycles (the timing model's pass and schedule terms,
        vectorized over all candidates), DRAM beats breaking ties; with ``io_bits_per_cycle``
        ``rank`` orders a :data:`SHORTLIST` of the fastest and the leanest candidates; "dram":
        the fewest DRAM beats, cycles breaking ties; "energy": as with a throttled link.
    io_bits_per_cycle : float, optional
        If given, the cycle estimate also respects the external link (DRAM beats *
        dram_width / this).
    rank : callable, optional
        Mapping -> sort key, smallest first, for the objectives the estimate cannot decide.
    n, e, p, q, r, t, m : int, optional
        Fix a parameter (for tests and experiments); the others are searched.
    order : "m" | "strip", optional
        Fix the loop order of the tiles (:data:`ORDERS`; the module docstring).

    Raises
    ------
    MappingError
        If no legal mapping exists; the message names the limit that breaks.
    """
    if objective not in OBJECTIVES:
        raise MappingError(f"bad objective {objective!r}; allowed: {', '.join(OBJECTIVES)}")
    unknown = set(forced) - set("nepqrtm") - {"order"}
    if unknown:
        raise MappingError(f"unknown mapping parameter(s) {', '.join(sorted(unknown))}; "
                           f"allowed: n, e, p, q, r, t, m, order")
    ranked = needs_ranking(objective, io_bits_per_cycle)
    if ranked and rank is None:
        raise TypeError(f"objective {objective!r} with io_bits_per_cycle="
                        f"{io_bits_per_cycle} needs a rank: use rowstat.sim.model.choose_mapping")
    _check_layer(arch, layer)
    _check_forced(arch, layer, forced)
    c = _Ctx(arch, layer, io_bits_per_cycle)
    candidates = _search(c, forced, "dram" if objective == "dram" else "cycles")
    if ranked:
        # the ranking sees the leanest candidates as well as the fastest: DRAM dominates the
        # energy, and over a throttled link the traffic decides as much as the passes do
        lean = _search(c, forced, "dram")
        candidates = [kv for pair in zip(candidates, lean) for kv in pair]
    built, last_error = [], None
    want, found = (SHORTLIST if ranked else 1), 0
    for key, params in candidates[:64]:
        if any(params == b.to_params() for b in built):
            continue
        try:
            built.append(_build(c, params, forced))
        except MappingError as exc:     # the placement disagrees with the arithmetic
            last_error = exc
            continue
        found += 1
        if ranked and "order" not in forced and built[-1].m_blocks > 1:
            # the ranking sees both loop orders (the estimate's io term alone picked this one)
            other = ORDERS[1 - ORDERS.index(params["order"])]
            # skipped where the group's biases do not fit the table at once
            with contextlib.suppress(MappingError):
                built.append(_build(c, params | {"order": other}, forced))
        if found == want:
            break
    if not built:
        if last_error is not None:
            raise last_error
        _diagnose(c, forced)
    return min(built, key=rank) if ranked else built[0]


#: Candidates (the fastest and the leanest by the estimate, in turn) that the ranking orders
#: for energy and over a throttled link, each also in the other loop order where it has several
#: m blocks. 16: with 8 (the fastest only) the estimate's order left
#: AlexNet CONV1's best mapping on eyeriss_wide out (4.38 M cycles at batch 4 instead of 3.97).
SHORTLIST = 16
