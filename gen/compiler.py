"""The layer compiler: a conv layer and its data -> the accelerator's input streams (commands and
data beats), and the output beats back into an ofmap.

The program follows the loop nest of :mod:`rowstat.gen.mapping`, its tiles in the mapping's
order (:meth:`Mapping.tiles <rowstat.gen.mapping.Mapping.tiles>`): LAYER; per tile, a LOAD
BIAS when the tile needs biases the table does not hold (``Mapping.bias_span`` entries at once),
then per channel block and sub-block LOAD FILTER, [LOAD IDS + tag tables + chains], [LOAD
IFMAP: a piece of the next strip], PASS, the tile's DRAINs each issued after the next PASS;
COUNTERS. In order "strip" a strip's channel blocks stay in their buffers while the tiles
cycle through the m blocks. A strip loads in pieces during the passes between the last use of
its buffer's previous strip and its own first use.

Data go into the GLB exactly in the order the streamers send them (rowstat.gen.program): the
host pads (spatial padding, channels beyond C, filters beyond M: zeros) and interleaves the
per-destination word streams beat by beat, so the hardware only counts.

One placement (ID chain, tag tables, chain table) serves all channel blocks of a strip: when
the layer has several, the chain bottoms take psums from the psum GIN, and the first channel
block's passes start from zero by giving the psum streamer ``chunks = 0`` (the hardware must
then start those PEs from zero). The tables are reloaded only when the placement changes (the
last, narrower strip and back).

Wait masks are derived, not hand-placed: the compiler knows what every command reads and writes
(GLB words, filter buffer words, bias entries, tag tables, the ID chain), and a command waits
for a unit only if the command that unit may still be running touches the same thing (a
command can only overlap the latest command of each other unit, since commands start in
order). Buffers are used in turn (mapping.py: two ifmap strip buffers, two filter halves, a
ring of psum regions, two bias halves when they fit), so loads overlap passes and drains overlap
the next tile's passes, and nothing is overwritten while in use.

Output: one OFMAP block per drained region (``Program.blocks``, in stream order), then the
COUNTERS block. :func:`decode_output` checks the framing and puts every value in its place.
"""

from dataclasses import dataclass, field

import numpy as np

from ..hw.array import id_chain_words
from .errors import MappingError, RowstatError
from .mapping import map_layer
from .placement import ceil_div
from .program import (ARG_LAYOUTS, COUNT, COUNTERS, TAGS, BlockKind, Op, Target, Wait,
                      header_beats_max, encode_command, parse_header)
from .program import counter_beats as program_counter_beats

__all__ = ["Program", "DrainBlock", "DataError", "FramingError", "compile_layer", "plan_layer",
           "decode_output", "check_inputs"]

_COUNT_MAX = (1 << COUNT) - 1
_TAGS_MAX = (1 << TAGS) - 1


class DataError(RowstatError, ValueError):
    """A bad ifmap, weights or bias array: names the array, what is wrong and what is allowed."""


class FramingError(RowstatError, ValueError):
    """Output beats that do not frame as the program says they should."""


@dataclass(frozen=True)
class DrainBlock:
    """One OFMAP block of the output stream: the psums of one sub-block of one tile."""

    group: int
    m_block: int
    image_block: int
    strip: int
    sub_block: int
    row0: int           # first ofmap row of the strip
    rows: int           # ofmap rows of the strip (chains per filter copy)
    chunks: int         # psum beats per chain
    nchains: int
    last: int           # valid psums in the final chunk's words - 1
    beats: int          # output beats after the header


@dataclass
class Program:
    """A compiled layer: the command words and data beats to send, and what decoding needs."""

    arch: object
    layer: object
    mapping: object
    cmd: list                       # 32-bit command words
    data: list                      # dram_width-bit data beats
    blocks: list                    # DrainBlock per OFMAP block, in output order
    out_beats: int                  # output beats the program produces (headers included)
    out_bits: int                   # bits per output value (act_width or psum_width)
    counter_beats: int              # beats per counter in the COUNTERS block
    stats: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)   # (op, wait, args) per command, in order

    def estimated_cycles(self):
        return self.mapping.cycles


# --- input checks -------------------------------------------------------------------------------

def _check_array(name, value, shape, width, what):
    if value is None:
        raise DataError(f"{name}: missing; allowed: an integer array of shape {shape} ({what})")
    try:
        a = np.asarray(value)
    except Exception as exc:                       # ragged lists and the like
        raise DataError(f"{name}: not an array ({exc}); allowed: an integer array of shape "
                        f"{shape} ({what})") from None
    if a.dtype.kind not in "iu":
        raise DataError(f"{name}: values of type {a.dtype} are not integers; allowed: an "
                        f"integer array (any integer dtype) of shape {shape} ({what})")
    if a.shape != tuple(shape):
        raise DataError(f"{name}: shape {a.shape} does not match the layer; allowed: "
                        f"{tuple(shape)} ({what})")
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if a.size:
        mn, mx = int(a.min()), int(a.max())
        if mn < lo or mx > hi:
            bad = mn if mn < lo else mx
            idx = np.unravel_index(int(np.argmin(a) if mn < lo else np.argmax(a)), a.shape)
            raise DataError(f"{name}: value {bad} at index {tuple(int(i) for i in idx)} is "
                            f"outside the signed {width}-bit range; allowed: {lo}..{hi}")
    return a.astype(np.int64)


def check_inputs(arch, layer, ifmap, weights, bias=None):
    """The arrays as int64, or a DataError naming what is wrong."""
    x = _check_array("ifmap", ifmap, layer.ifmap_shape, arch.act_width, "N, C, H, W")
    w = _check_array("weights", weights, layer.weight_shape, arch.weight_width,
                     "M, C/groups, R, S")
    b = None if bias is None else _check_array("bias", bias, (layer.M,), arch.psum_width, "M")
    return x, w, b


# --- packing ------------------------------------------------------------------------------------

def _pack(values, width):
    """Rows of ``values`` (int array (words, fields)) -> one integer per row, field j at bit
    j*width, each field taken as ``width``-bit two's complement."""
    values = np.asarray(values, dtype=np.int64)
    words, fields = values.shape
    mask = np.uint64((1 << width) - 1) if width < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
    u = values.astype(np.uint64) & mask
    per = max(1, 64 // width)                      # fields per 64-bit group
    if fields <= per:
        acc = np.zeros(words, dtype=np.uint64)
        for j in range(fields):
            acc |= u[:, j] << np.uint64(j * width)
        return acc.tolist()
    acc = np.zeros(words, dtype=object)
    for g0 in range(0, fields, per):
        part = np.zeros(words, dtype=np.uint64)
        for j in range(g0, min(fields, g0 + per)):
            part |= u[:, j] << np.uint64((j - g0) * width)
        acc = acc + (part.astype(object) << (g0 * width))
    return [int(v) for v in acc]


def _stream_words(streams, wpb, per_word, width):
    """Per-destination word streams (array (ntags, L)) -> (GLB words in stream order, chunks,
    last): beat b carries words of destination b mod ntags, beats packed per_word to a word."""
    streams = np.asarray(streams, dtype=np.int64)
    ntags, L = streams.shape
    chunks = ceil_div(L, wpb)
    padded = np.zeros((ntags, chunks * wpb), dtype=np.int64)
    padded[:, :L] = streams
    beats = padded.reshape(ntags, chunks, wpb).transpose(1, 0, 2).reshape(-1)
    nwords = ceil_div(chunks * ntags, per_word)
    flat = np.zeros(nwords * per_word * wpb, dtype=np.int64)
    flat[:beats.size] = beats
    return _pack(flat.reshape(nwords, per_word * wpb), width), chunks, (L - 1) % wpb


def _tag_entry(arch, tag):
    row, col = tag
    return row | col << arch.row_id_width


def _unsigned(values, width):
    return [int(v) & ((1 << width) - 1) for v in values]


# --- the command emitter ------------------------------------------------------------------------

# Plain ints, not Wait flags: the emitter runs once per command and flag arithmetic is slow.
_UNIT = {Op.LOAD: int(Wait.LOAD), Op.PASS: int(Wait.PASS), Op.DRAIN: int(Wait.DRAIN)}
_RESOURCE = {Target.IFMAP: "ifmap", Target.FILTER: "filter", Target.BIAS: "bias",
             Target.IDS: "ids", Target.IFMAP_TAGS: "ifmap_tags",
             Target.FILTER_TAGS: "filter_tags", Target.PSUM_TAGS: "psum_tags",
             Target.CHAINS: "chains"}


def _check_fields(layout, args, path=""):
    """Every value of ``args`` fits its field (Amaranth would silently truncate it)."""
    from amaranth.lib import data
    for name, value in args.items():
        fld = layout[name]
        if isinstance(fld.shape, data.StructLayout):
            _check_fields(fld.shape, value, f"{path}{name}.")
        elif not 0 <= int(value) < 1 << fld.width or (
                isinstance(fld.shape, range) and int(value) not in fld.shape):
            raise MappingError(f"command field {path}{name}={value} does not fit in its "
                               f"{fld.width} bits")


def _conflict(a, b):
    """Footprints ``a`` and ``b`` (lists or :func:`_by_resource` dicts) touch the same storage,
    one writing."""
    a, b = _by_resource(a), _by_resource(b)
    if len(a) > len(b):
        a, b = b, a
    for name, spans in a.items():
        others = b.get(name)
        if others:
            for lo_a, hi_a, wa in spans:
                for lo_b, hi_b, wb in others:
                    if (wa or wb) and lo_a < hi_b and lo_b < hi_a:
                        return True
    return False


def _by_resource(footprint):
    """{resource: [(lo, hi, writes)]} of a footprint list (a dict is returned as it is)."""
    if isinstance(footprint, dict):
        return footprint
    out = {}
    for name, lo, hi, writes in footprint:
        out.setdefault(name, []).append((lo, hi, writes))
    return out


class _Emitter:
    """Appends commands with derived wait masks and keeps the data stream."""

    def __init__(self, arch, dry=False):
        self.arch = arch
        self.dry = dry              # plan only: no command words, no data (sizes are kept)
        self.cmd, self.data = [], []
        self.steps = []             # (op, wait, args) per command, for rowstat.sim.timing
        self.running = {}           # unit -> footprint of the latest command it may still run
        self.counts = {op.name: 0 for op in Op}
        self.waits = 0

    def emit(self, op, args, footprint=(), wait=0):
        unit = _UNIT.get(op)
        wait = int(wait)
        footprint = _by_resource(footprint)
        for u, fp in self.running.items():
            if u != unit and _conflict(fp, footprint):
                wait |= u
        if op == Op.COUNTERS:
            wait = int(Wait.ALL)
        self.running = {u: fp for u, fp in self.running.items()
                        if not (u & wait) and u != unit}
        if unit is not None:
            self.running[unit] = footprint
        self.waits += bool(wait)
        self.counts[op.name] += 1
        if not self.dry:
            if op in ARG_LAYOUTS:
                _check_fields(ARG_LAYOUTS[op](self.arch), args)
            self.cmd += encode_command(self.arch, op, args, wait)
        self.steps.append((op, wait, args))

    def load(self, target, addr, entries, width):
        """LOAD ``entries`` (a list of beats; when planning, anything with a length)."""
        count = len(entries)
        if not count:
            return
        if not self.dry:
            entries = list(entries)
            mask = (1 << width) - 1
            assert all(0 <= v <= mask for v in entries), (target, width)
            self.data += entries
        res = _RESOURCE[target]
        lo, hi = (0, 1) if target == Target.IDS else (addr, addr + count)
        self.emit(Op.LOAD, {"target": int(target), "addr": 0 if target == Target.IDS else addr,
                            "count": count},
                  [(res, lo, hi, True), ("config", 0, 1, False)])


def _check_count(name, value, limit):
    if value > limit:
        raise MappingError(f"{name}={value} exceeds the command field's limit {limit}")


# --- per-placement tables -----------------------------------------------------------------------

class _PlacementTables:
    """Tag tables, chain table and ID chain of one pass placement, and the ifmap rows the
    ifmap tags stand for."""

    def __init__(self, arch, mp, pl, e_s):
        R, U, r, t = mp.shape.R, mp.shape.U, mp.r, mp.t
        self.pl = pl
        self.e_s = e_s
        self.filter_tags = [pl.filter_tag(i, rc, tc)
                            for i in range(R) for rc in range(r) for tc in range(t)]
        self.ifmap_rows = []            # (channel copy, strip-relative ifmap row) per tag
        self.ifmap_tags = []
        for rc in range(r):
            for seg in range(pl.segments):
                start = U * pl.seg_start[seg]
                for rel in range(U * (pl.seg_width[seg] - 1) + R):
                    tag = pl.ifmap_tag(start + rel, rc, seg)
                    if tag is not None:
                        self.ifmap_tags.append(tag)
                        self.ifmap_rows.append((rc, start + rel))
        self.nchains = t * e_s
        bottoms = {}
        chains = [0] * (arch.rows * arch.cols)
        for (row, col), pe in pl.pes.items():
            c = pe.tc * e_s + pe.j
            if pe.i == 0 and pe.rc == 0:
                bottoms[c] = pl.psum_tag(row, col)
            if pe.psum_to == "gon":
                chains[row * arch.cols + col] = c
        assert sorted(bottoms) == list(range(self.nchains))
        self.psum_tags = [bottoms[c] for c in range(self.nchains)]
        self.chains = chains
        self.ids = id_chain_words(arch, pl)
        for name, tags in (("ifmap", self.ifmap_tags), ("filter", self.filter_tags),
                           ("psum", self.psum_tags)):
            _check_count(f"{name} tags", len(tags), _TAGS_MAX)

    def load(self, em, arch):
        em.load(Target.IDS, 0, self.ids, arch.dram_width)
        for target, tags in ((Target.IFMAP_TAGS, self.ifmap_tags),
                             (Target.FILTER_TAGS, self.filter_tags),
                             (Target.PSUM_TAGS, self.psum_tags)):
            em.load(target, 0, [_tag_entry(arch, tg) for tg in tags], arch.dram_width)
        em.load(Target.CHAINS, 0, self.chains, arch.dram_width)


# --- compile ------------------------------------------------------------------------------------

def compile_layer(arch, layer, ifmap, weights, bias=None, mapping=None):
    """Compile ``layer`` with its data into a :class:`Program`.

    ``ifmap`` (N, C, H, W), ``weights`` (M, C/groups, R, S) and ``bias`` (M,) are integer arrays
    within the signed act_width, weight_width and psum_width ranges (DataError otherwise).
    ``mapping`` defaults to ``map_layer(arch, layer)``, the choice for the fewest cycles over an
    unlimited link (what :func:`rowstat.sim.model.choose_mapping` gives for them); a run over
    a throttled link or for another objective passes that decision's mapping.
    """
    x, w, b = check_inputs(arch, layer, ifmap, weights, bias)
    return _compile(arch, layer, x, w, b, mapping, dry=False)


def plan_layer(arch, layer, mapping=None):
    """The command plan of ``layer`` without data: a :class:`Program` whose ``steps`` (op, wait,
    args) are exactly those :func:`compile_layer` emits, with no command words or data beats.
    It is what the timing model (rowstat.sim.timing) replays; cheap enough for a mapper."""
    return _compile(arch, layer, None, None, None, mapping, dry=True)


class _Sized:
    """A stand-in for a list of data beats when planning: only its length matters."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, sl):
        return _Sized(len(range(*sl.indices(self.n))))


def _stream_size(ntags, L, wpb, per_word):
    """(GLB words, chunks, last) of _stream_words for ``ntags`` streams of ``L`` words."""
    chunks = ceil_div(L, wpb)
    return _Sized(ceil_div(chunks * ntags, per_word)), chunks, (L - 1) % wpb


def _compile(arch, layer, x, w, b, mapping, dry):
    mp = mapping if mapping is not None else map_layer(arch, layer)
    if mp.arch != arch or mp.layer != layer:
        raise MappingError("the mapping was made for another architecture or layer")
    geo = arch.stream_geometry
    wpb_f, _, pw_f = geo["filter"]
    wpb_i, _, pw_i = geo["ifmap"]
    wpb_p, _, _ = geo["psum"]
    N, G, Cg, Mg = layer.N, layer.groups, layer.C_per_group, layer.M_per_group
    R, S, U, F, pad = layer.R, layer.S, layer.stride, layer.F, layer.padding
    n, p, q, r, t, m = mp.n, mp.p, mp.q, mp.r, mp.t, mp.m
    k, cbs = mp.sub_blocks, mp.channel_blocks
    Wp = U * (F - 1) + S
    Cpad, Mpad = cbs * q * r, mp.m_blocks * m
    shift_en = layer.shift is not None
    out_bits = arch.act_width if shift_en else arch.psum_width
    out_per_beat = arch.out_words_per_beat(shift_en)

    if not dry:
        xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))[:, :, :, :Wp]
        b = np.zeros(layer.M, dtype=np.int64) if b is None else b

    em = _Emitter(arch, dry)
    em.emit(Op.LAYER, {
        "pe": {"p": p, "q": q, "S": S, "F": F, "U": U, "n_rows": n,
               "psum_in_en": int(mp.continues)},
        "out": {"shift_en": int(shift_en), "shift": min(layer.shift or 0, arch.psum_width),
                "relu": int(layer.relu)},
        "split": mp.split}, [("config", 0, 1, True)], wait=Wait.ALL)

    psum_chunks = ceil_div(n * F * p, wpb_p)
    psum_last = (n * F * p - 1) % wpb_p
    _check_count("psum chunks", psum_chunks, _COUNT_MAX)
    ifmap_base = [i * mp.ifmap_region for i in range(mp.ifmap_buffers)]
    filter_base = [i * mp.filter_region for i in range(mp.filter_buffers)]
    tables = {}
    loaded = None
    blocks, pending = [], []
    counters = {"ifmap": 0, "pass": 0, "bias": 0, "region": 0}

    def region_base():
        base = (counters["region"] % mp.psum_regions) * mp.psum_region
        counters["region"] += 1
        return base

    # The loop nest as a list of channel-block instances, each k passes on one ifmap strip
    # (a "unit": one channel block's strip). Order "m" loads a unit for every instance; order
    # "strip" once, when the first m block needs it. Unit u goes in buffer u mod B, in pieces
    # before the passes between the last use of that buffer's previous unit and its own first
    # use (each after its pass's filters), so the loads spread over the passes and, with a
    # buffer to spare, no pass waits for them.
    instances = []
    for g, mb, ib, s in mp.tiles():
        regions = [region_base() for _ in range(k)]
        for cb in range(cbs):
            instances.append((g, mb, ib, s, cb, regions))
    unit_of, units, uses = [], {}, []    # per instance its unit; unit key -> index; (first, last)
    for j, (g, mb, ib, s, cb, _) in enumerate(instances):
        key = (g, ib, s, cb) if mp.order == "strip" else j
        if key not in units:
            units[key] = len(uses)
            uses.append([j, j])
        unit_of.append(units[key])
        uses[units[key]][1] = j
    B = mp.ifmap_buffers
    pieces = {}                         # pass index -> [(unit, passes left in its window)]
    for u, (first, _) in enumerate(uses):
        lo = (uses[u - B][1] + 1) * k if u >= B else 0
        for P in range(lo, first * k):
            pieces.setdefault(P, []).append((u, first * k - P))

    group_data = {}

    def data_of(g):
        if dry:
            return None, None, None
        if g not in group_data:
            group_data.clear()
            xg = np.zeros((N, Cpad) + xp.shape[2:], dtype=np.int64)
            xg[:, :Cg] = xp[:, g * Cg:(g + 1) * Cg]
            wg = np.zeros((Mpad, Cpad, R, S), dtype=np.int64)
            wg[:Mg, :Cg] = w[g * Mg:(g + 1) * Mg]
            bg = np.zeros(Mpad, dtype=np.int64)
            bg[:Mg] = b[g * Mg:(g + 1) * Mg]
            group_data[g] = (xg, wg, bg)
        return group_data[g]

    def table_of(s):
        e0, e_s, pl = mp.strip(s)
        if e_s not in tables:
            tables[e_s] = _PlacementTables(arch, mp, pl, e_s)
        return e0, e_s, tables[e_s]

    ifmaps = {}         # unit -> [base, words, chunks, last, word list, words loaded]

    def prepare_ifmap(u):
        g, mb, ib, s, cb, _ = instances[uses[u][0]]
        e0, e_s, tb = table_of(s)
        if dry:
            words, chunks_i, last_i = _stream_size(len(tb.ifmap_rows), n * Wp * q, wpb_i, pw_i)
        else:
            words, chunks_i, last_i = _strip_words(data_of(g)[0], tb, ib, cb, e0)
        assert len(words) <= mp.ifmap_region
        ifmaps[u] = [ifmap_base[u % B], len(words), chunks_i, last_i, words, 0]

    def _strip_words(xg, tb, ib, cb, e0):
        rc_t = np.array([rc for rc, _ in tb.ifmap_rows], dtype=np.int64)
        row_t = np.array([U * e0 + kk for _, kk in tb.ifmap_rows], dtype=np.int64)
        # the strip's ifmap rows for this channel block, in stream order
        ch = cb * q * r + rc_t[:, None] * q + np.arange(q)[None, :]
        rows = xg[ib * n:(ib + 1) * n][:, ch, row_t[:, None], :]      # (n, ntags, q, Wp)
        streams = rows.transpose(1, 0, 3, 2).reshape(len(row_t), -1)
        return _stream_words(streams, wpb_i, pw_i, arch.act_width)

    def load_ifmap(u, pieces_left):
        """Load the next 1/pieces_left of unit u's ifmap words (all if 1)."""
        if u not in ifmaps:
            prepare_ifmap(u)
        item = ifmaps[u]
        base, words, done = item[0], item[4], item[5]
        todo = len(words) - done
        count = todo if pieces_left <= 1 else ceil_div(todo, pieces_left)
        if count:
            em.load(Target.IFMAP, base + done, words[done:done + count], arch.dram_width)
            item[5] = done + count

    bias_base, bias_set = 0, None
    span = mp.bias_span
    per_set = span // m                 # m blocks whose biases load together
    for j, (g, mb, ib, s, cb, regions) in enumerate(instances):
        xg, wg, bg = data_of(g)
        e0, e_s, tb = table_of(s)
        u = unit_of[j]
        load_ifmap(u, 1)                    # whatever the passes before did not load
        ibase, iwords, chunks_i, last_i = ifmaps[u][:4]
        if (g, mb // per_set) != bias_set:
            bias_set = (g, mb // per_set)
            bias_base = (counters["bias"] % mp.bias_buffers) * span
            counters["bias"] += 1
            lo = (mb // per_set) * span
            em.load(Target.BIAS, bias_base,
                    _Sized(span) if dry else _unsigned(bg[lo:lo + span], arch.psum_width),
                    arch.dram_width)
        bias_addr = bias_base + (mb % per_set) * m
        for sb in range(k):
            if dry:
                fwords, chunks_f, last_f = _stream_size(R * r * t, S * q * p, wpb_f, pw_f)
            else:
                f0, c0 = mb * m + sb * p * t, cb * q * r
                blk = wg[f0:f0 + p * t, c0:c0 + q * r].reshape(t, p, r, q, R, S)
                fstreams = blk.transpose(4, 2, 0, 5, 3, 1).reshape(R * r * t, -1)
                fwords, chunks_f, last_f = _stream_words(fstreams, wpb_f, pw_f,
                                                         arch.weight_width)
            assert len(fwords) <= mp.filter_region
            fbase = filter_base[counters["pass"] % mp.filter_buffers]
            counters["pass"] += 1
            em.load(Target.FILTER, fbase, fwords, arch.dram_width)
            if loaded is not tb:
                tb.load(em, arch)
                loaded = tb
            for v, left in pieces.get(j * k + sb, ()):
                # a piece of a later strip: after this pass's filters, so the pass need not
                # wait for it (it writes another ifmap buffer)
                load_ifmap(v, left)
            rbase = regions[sb]
            cont = cb > 0
            nwords = psum_chunks * tb.nchains
            fp = [("filter", fbase, fbase + len(fwords), False),
                  ("ifmap", ibase, ibase + iwords, False),
                  ("psum", rbase, rbase + nwords, True),
                  ("ids", 0, 1, False), ("config", 0, 1, False),
                  ("ifmap_tags", 0, len(tb.ifmap_tags), False),
                  ("filter_tags", 0, len(tb.filter_tags), False),
                  ("chains", 0, len(tb.chains), False)]
            if cont:
                fp += [("psum", rbase, rbase + nwords, False),
                       ("psum_tags", 0, tb.nchains, False)]
            if any(_conflict(dfp, fp) for _, dfp in pending):
                # a single psum region: drain it before it is reused
                for args, dfp in pending:
                    em.emit(Op.DRAIN, args, dfp)
                pending = []
            em.emit(Op.PASS, {
                "filt": {"base": fbase, "chunks": chunks_f,
                         "ntags": len(tb.filter_tags), "last": last_f},
                "ifmap": {"base": ibase, "chunks": chunks_i,
                          "ntags": len(tb.ifmap_tags), "last": last_i},
                "psum": {"base": rbase, "chunks": psum_chunks if cont else 0,
                         "ntags": tb.nchains, "last": psum_last},
                "out_base": rbase, "nchains": tb.nchains}, fp)
            for args, dfp in pending:
                em.emit(Op.DRAIN, args, dfp)
            pending = []
            if cb == cbs - 1:
                values = tb.nchains * n * F * p
                beats = ceil_div(values, out_per_beat)
                _check_count("output block beats", beats, header_beats_max(arch))
                bbase = bias_addr + sb * p * t
                pending.append(({
                    "base": rbase, "chunks": psum_chunks,
                    "nchains": tb.nchains, "last": psum_last, "p": p,
                    "chains_per_tc": e_s, "bias_base": bbase, "beats": beats},
                    [("psum", rbase, rbase + nwords, False),
                     ("bias", bbase, bbase + p * t, False),
                     ("config", 0, 1, False)]))
                blocks.append(DrainBlock(g, mb, ib, s, sb, e0, e_s, psum_chunks, tb.nchains,
                                         psum_last, beats))
        if j == uses[u][1]:
            del ifmaps[u]
    for args, dfp in pending:
        em.emit(Op.DRAIN, args, dfp)
    em.emit(Op.COUNTERS, {"clear": 1}, wait=Wait.ALL)

    counter_beats = program_counter_beats(arch)
    out_beats = sum(1 + blk.beats for blk in blocks) + 1 + len(COUNTERS) * counter_beats
    stats = {"commands": dict(em.counts), "command_words": len(em.cmd),
             "data_beats": len(em.data), "commands_waiting": em.waits,
             "out_beats": out_beats}
    return Program(arch, layer, mp, em.cmd, em.data, blocks, out_beats, out_bits,
                   counter_beats, stats, em.steps)


# --- decode -------------------------------------------------------------------------------------

def _block_index(mp, layer, wpb, blk):
    """Per value of a block, in output order: (image in block, filter in group block, ofmap row
    in strip, column f); filters are relative to the sub-block."""
    p, F = mp.p, layer.F
    chunk, chain, slot = np.meshgrid(np.arange(blk.chunks), np.arange(blk.nchains),
                                     np.arange(wpb), indexing="ij")
    valid = (chunk < blk.chunks - 1) | (slot <= blk.last)
    chunk, chain, slot = chunk[valid], chain[valid], slot[valid]
    s = chunk * wpb + slot
    img, f, kk = s // (F * p), (s // p) % F, s % p
    tc, j = chain // blk.rows, chain % blk.rows
    return img, tc * p + kk, j, f


def decode_output(program, beats):
    """Output beats -> (ofmap int64 (N, M, E, F), counters {name: value}).

    Raises FramingError if a header is missing or wrong or the beat count does not match.
    """
    arch, layer, mp = program.arch, program.layer, program.mapping
    width = arch.dram_width
    try:
        beats = [int(v) for v in beats]
    except (TypeError, ValueError) as exc:
        raise FramingError(f"output beats must be integers ({exc})") from None
    for i, v in enumerate(beats):
        if not 0 <= v < 1 << width:
            raise FramingError(f"output beat {i} = {v:#x} is not a {width}-bit value")
    pos = 0

    def header(kind, count, what):
        nonlocal pos
        if pos >= len(beats):
            raise FramingError(f"output ends after {len(beats)} beats; expected the {what} "
                               f"header at beat {pos} ({program.out_beats} beats in all)")
        got = parse_header(beats[pos])
        if got != (int(kind), count):
            desc = "not a header (bad magic)" if got is None else \
                f"a header of kind {got[0]} with {got[1]} beats"
            raise FramingError(f"output beat {pos} = {beats[pos]:#x} should be the {what} "
                               f"header (kind {int(kind)}, {count} beats), but is {desc}")
        if pos + 1 + count > len(beats):
            raise FramingError(f"output ends after {len(beats)} beats inside the {what} "
                               f"(it needs beats {pos + 1}..{pos + count})")
        body = beats[pos + 1:pos + 1 + count]
        pos += 1 + count
        return body

    bits = program.out_bits
    per_beat = width // bits
    wpb = arch.psums_per_beat
    out = np.zeros(layer.ofmap_shape, dtype=np.int64)
    filled = np.zeros(layer.ofmap_shape, dtype=bool)
    cache = {}
    Mg = layer.M_per_group
    for bi, blk in enumerate(program.blocks):
        body = header(BlockKind.OFMAP, blk.beats, f"ofmap block {bi}")
        key = (blk.rows, blk.nchains, blk.chunks, blk.last)
        if key not in cache:
            cache[key] = _block_index(mp, layer, wpb, blk)
        img, filt, j, f = cache[key]
        arr = np.array(body, dtype=object)
        vals = np.zeros(len(body) * per_beat, dtype=np.int64)
        mask = (1 << bits) - 1
        for slot in range(per_beat):
            vals[slot::per_beat] = [(int(v) >> (slot * bits)) & mask for v in arr]
        vals = vals[:len(img)]
        vals = np.where(vals >= 1 << (bits - 1), vals - (1 << bits), vals)
        fg = blk.m_block * mp.m + blk.sub_block * mp.p * mp.t + filt
        keep = fg < Mg
        idx = (blk.image_block * mp.n + img[keep], blk.group * Mg + fg[keep],
               blk.row0 + j[keep], f[keep])
        out[idx] = vals[keep]
        filled[idx] = True
    cb = program.counter_beats
    body = header(BlockKind.COUNTERS, len(COUNTERS) * cb, "counters block")
    counters = {}
    for i, name in enumerate(COUNTERS):
        counters[name] = sum(body[i * cb + j] << (j * width) for j in range(cb))
    if pos != len(beats):
        raise FramingError(f"{len(beats) - pos} extra output beat(s) after the counters block "
                           f"(expected {program.out_beats} beats in all)")
    if not filled.all():
        raise RuntimeError(f"the program's blocks leave {int((~filled).sum())} ofmap values "
                           f"undelivered (compiler bug)")
    return out, counters
