"""Reference model of processing passes on the PE array (rowstat.hw.array).

Given an ArchConfig, a pass shape and the data of one pass (ifmap strip, filters, optional input
psums), :class:`ArrayPass` produces everything a global buffer would send and expect:

* the shared PE ``cfg`` and the ID chain words (from :func:`rowstat.hw.array.id_chain_words`,
  the encoder that lives next to the hardware);
* the tagged GIN packets for filters, ifmaps and input psums, as ``(row tag, col tag, beat)``;
* the expected GON output of every chain top, computed from the golden model
  (:func:`rowstat.sim.golden.conv2d`), never from the hardware's data path;
* the MACs done and skipped, counted from the data.

Data of one pass (channel block ``q*r`` channels, filter block ``p*t`` filters, ``e`` ofmap
rows): ``ifmap`` (n, q*r, U*(e-1)+R, U*(F-1)+S), already padded; ``filters`` (p*t, q*r, R, S);
``psum_in`` (n, p*t, e, F) or None. Channel copy rc takes channels ``rc*q .. rc*q+q-1``, filter
copy tc filters ``tc*p .. tc*p+p-1``.

Packet orders. Each PE's words follow the PE's port orders (rowstat.hw.pe); a tag's words are
cut into beats (the last one partial if needed). The PE ifmap spad holds only a few words and
the GIN delivers in order, so the beats of all tags are interleaved: beat 0 of every tag, then
beat 1 of every tag, ... For ifmaps that is (image, position, channel, row) order at beat
granularity, so no PE runs far ahead of another (the psum chains couple PEs vertically; sending
one row after the other would deadlock). Filters and input psums are interleaved the same way.

:class:`LayerSlice` holds the data of several passes over consecutive channel blocks (the
second and later continue the psums of the one before through the psum GIN); the bench feeds
each pass the previous pass's hardware output and compares the end result with the golden
convolution over all channels.
"""

from dataclasses import dataclass

import numpy as np

from ..gen.errors import MappingError
from ..gen.placement import PassShape, place_pass
from ..hw.array import (encode_beats, encode_packet, filter_beat_layout, filter_packet_layout,
                        id_chain_words, ifmap_beat_layout, ifmap_packet_layout,
                        psum_beat_layout, psum_packet_layout)
from .golden import conv2d, wrap
from .pe_model import pack_config

__all__ = ["ArrayPass", "LayerSlice", "make_slice", "random_spec", "check_spec"]


def _interleave(streams, layout):
    """``streams``: {tag: [words]} -> [(row tag, col tag, beat value)], beat by beat."""
    beats = {tag: encode_beats(layout, words) for tag, words in streams.items()}
    out = []
    for b in range(max((len(v) for v in beats.values()), default=0)):
        for tag in sorted(beats):
            if b < len(beats[tag]):
                out.append((tag[0], tag[1], beats[tag][b]))
    return out


def _same(streams, tag, words, what):
    """Record ``words`` for ``tag``; PEs sharing a tag must want the same words."""
    if tag in streams:
        if streams[tag] != words:
            raise AssertionError(f"placement gives two PEs the {what} tag {tag} but they need "
                                 f"different data")
    else:
        streams[tag] = words


@dataclass
class ArrayPass:
    """One processing pass on the array."""

    arch: object
    placement: object
    ifmap: np.ndarray
    filters: np.ndarray
    psum_in: np.ndarray | None = None

    def __post_init__(self):
        arch, sh = self.arch, self.placement.shape
        self.ifmap = np.asarray(self.ifmap, dtype=np.int64)
        self.filters = np.asarray(self.filters, dtype=np.int64)
        M, C, R, S = self.filters.shape
        n, C2, H, W = self.ifmap.shape
        if R != sh.R or M % sh.t or C % sh.r or C != C2:
            raise ValueError(f"filters {self.filters.shape} / ifmap {self.ifmap.shape} do not "
                             f"fit the pass shape {sh}")
        self.p, self.q, self.S, self.n = M // sh.t, C // sh.r, S, n
        if H != sh.U * (sh.e - 1) + R or (W - S) % sh.U:
            raise ValueError(f"ifmap strip {H} x {W} must be U*(e-1)+R rows and U*(F-1)+S "
                             f"columns")
        self.F = (W - S) // sh.U + 1
        if not (self.p <= arch.psum_spad_depth and self.q * S <= arch.ifmap_spad_depth
                and self.p * self.q * S <= arch.filter_spad_depth):
            raise MappingError(f"p={self.p}, q={self.q}, S={S} do not fit the PE spads")
        gin_bottoms = [p for p in self.placement.pes.values() if p.psum_from == "gin"]
        if self.psum_in is not None and not gin_bottoms:
            # (The converse is allowed: PEs whose source is the psum GIN start from zero in a
            # pass without input psums, so one ID chain can serve all passes of a layer.)
            raise ValueError("input psums need a placement that continues psums")
        if self.psum_in is not None:
            self.psum_in = wrap(self.psum_in, arch.psum_width)
            if self.psum_in.shape != (n, M, sh.e, self.F):
                raise ValueError(f"psum_in must have shape {(n, M, sh.e, self.F)}")

    # --- shape ------------------------------------------------------------------------------
    @property
    def shape(self):
        return self.placement.shape

    @property
    def M(self):
        return self.filters.shape[0]

    @property
    def active(self):
        return self.placement.active

    # --- configuration ----------------------------------------------------------------------
    def pe_config(self):
        """The array's ``cfg`` value; ``psum_in_en``: this pass sends input psums through the
        psum GIN (which PEs take them is set per PE by the ID chain)."""
        return pack_config(self.arch, p=self.p, q=self.q, S=self.S, F=self.F, U=self.shape.U,
                           n_rows=self.n, psum_in_en=self.psum_in is not None, products=False)

    def chain_words(self):
        return id_chain_words(self.arch, self.placement)

    # --- per-PE word streams, keyed by GIN tag -----------------------------------------------
    def filter_streams(self):
        pl, p, q = self.placement, self.p, self.q
        streams = {}
        for (row, col), pe in pl.pes.items():
            block = self.filters[pe.tc * p:(pe.tc + 1) * p, pe.rc * q:(pe.rc + 1) * q, pe.i, :]
            words = [int(v) for v in block.transpose(2, 1, 0).reshape(-1)]   # (s*q + c)*p + k
            _same(streams, (pl.filter_row_id[row], pl.filter_col_id[row][col]), words, "filter")
        return streams

    def ifmap_streams(self):
        pl, q, U = self.placement, self.q, self.shape.U
        streams = {}
        for (row, col), pe in pl.pes.items():
            rows = self.ifmap[:, pe.rc * q:(pe.rc + 1) * q, U * pe.j + pe.i, :]   # (n, q, W)
            words = [int(v) for v in rows.transpose(0, 2, 1).reshape(-1)]        # n, x, c
            _same(streams, (pl.ifmap_row_id[row], pl.ifmap_col_id[row][col]), words, "ifmap")
        return streams

    def psum_streams(self):
        pl, p = self.placement, self.p
        streams = {}
        if self.psum_in is None:
            return streams
        for (row, col), pe in pl.pes.items():
            if pe.psum_from == "gin":
                block = self.psum_in[:, pe.tc * p:(pe.tc + 1) * p, pe.j, :]     # (n, p, F)
                words = [int(v) for v in block.transpose(0, 2, 1).reshape(-1)]  # n, f, k
                _same(streams, (pl.psum_row_id[row], pl.psum_col_id[row][col]), words, "psum")
        return streams

    # --- packets ------------------------------------------------------------------------------
    def filter_packets(self):
        return _interleave(self.filter_streams(), filter_beat_layout(self.arch))

    def ifmap_packets(self):
        return _interleave(self.ifmap_streams(), ifmap_beat_layout(self.arch))

    def psum_packets(self):
        return _interleave(self.psum_streams(), psum_beat_layout(self.arch))

    def packet_values(self):
        """{"filt"|"ifmap"|"psum_in": [packet integers]} for the array's input ports."""
        out = {}
        for name, packets, layout in (
                ("filt", self.filter_packets(), filter_packet_layout(self.arch)),
                ("ifmap", self.ifmap_packets(), ifmap_packet_layout(self.arch)),
                ("psum_in", self.psum_packets(), psum_packet_layout(self.arch))):
            out[name] = [encode_packet(layout, row, col, beat) for row, col, beat in packets]
        return out

    # --- expected results ---------------------------------------------------------------------
    def expected_ofmap(self):
        """(n, p*t, e, F) psums of the pass, from the golden model."""
        out = conv2d(self.ifmap, self.filters, stride=self.shape.U,
                     psum_width=self.arch.psum_width)
        if self.psum_in is not None:
            out = wrap(out + self.psum_in, self.arch.psum_width)
        return out

    def expected(self):
        """{(row, col) of each chain top: [psums in GON order (image, column f, filter k)]}."""
        ofmap = self.expected_ofmap()
        return {pos: self.top_words(ofmap, pos) for pos in self.placement.chain_tops()}

    def top_words(self, ofmap, pos):
        seg, tc, j = self.placement.chain_tops()[pos]
        block = ofmap[:, tc * self.p:(tc + 1) * self.p, j, :]
        return [int(v) for v in block.transpose(0, 2, 1).reshape(-1)]

    def output_beats(self):
        """Number of GON beats of the pass."""
        per_beat = psum_beat_layout(self.arch)["words"].shape.length
        words = self.n * self.F * self.p
        return len(self.placement.chain_tops()) * -(-words // per_beat)

    def decode(self, outputs):
        """{(row, col): [psums]} from the GON -> (n, p*t, e, F) array (missing entries stay 0)."""
        sh, p = self.shape, self.p
        ofmap = np.zeros((self.n, self.M, sh.e, self.F), dtype=np.int64)
        for pos, (seg, tc, j) in self.placement.chain_tops().items():
            words = list(outputs.get(pos, []))[: self.n * self.F * p]
            words += [0] * (self.n * self.F * p - len(words))
            ofmap[:, tc * p:(tc + 1) * p, j, :] = \
                np.array(words, dtype=np.int64).reshape(self.n, self.F, p).transpose(0, 2, 1)
        return ofmap

    def macs(self):
        """(MACs done, MACs skipped by zero gating), counted PE by PE from the data."""
        U, S, q, p = self.shape.U, self.S, self.q, self.p
        zeros = total = 0
        for pe in self.placement.pes.values():
            rows = self.ifmap[:, pe.rc * q:(pe.rc + 1) * q, U * pe.j + pe.i, :]   # (n, q, W)
            for f in range(self.F):
                window = rows[:, :, U * f:U * f + S]
                zeros += int(np.count_nonzero(window == 0))
                total += window.size
        return p * (total - zeros), p * zeros

    def mac_slots(self):
        """MAC slots of one PE (p*q*S*F*n): the least number of cycles a pass can take."""
        return self.p * self.q * self.S * self.F * self.n


def _signed(rng, width, shape, zero_fraction=0.0):
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    values = rng.integers(lo, hi, size=shape, dtype=np.int64)
    if zero_fraction:
        values[rng.random(shape) < zero_fraction] = 0
    return values


@dataclass
class LayerSlice:
    """Data for ``passes`` passes over consecutive channel blocks of one strip and filter
    block: ifmap (n, passes*q*r, H, W), filters (p*t, passes*q*r, R, S), psum0 (the input
    psums of the first pass, or None)."""

    arch: object
    shape: PassShape
    ifmap: np.ndarray
    filters: np.ndarray
    psum0: np.ndarray | None
    passes: int
    name: str = ""
    same_ids: bool = False

    @property
    def block(self):
        return self.ifmap.shape[1] // self.passes

    def placement(self, k):
        """Placement of pass k: with chain bottoms fed by the psum GIN when the pass has input
        psums, or always if ``same_ids`` (one ID chain for all passes)."""
        a = self.arch
        return place_pass(a.rows, a.cols, self.shape,
                          continue_psums=self.same_ids or k > 0 or self.psum0 is not None,
                          row_id_width=a.row_id_width, col_id_width=a.col_id_width,
                          ifmap_col_id_width=a.ifmap_col_id_width)

    def pass_(self, k, psum_in=None):
        """Pass k; ``psum_in`` is the previous pass's output (for k > 0)."""
        if k == 0:
            psum_in = self.psum0
        cb = slice(k * self.block, (k + 1) * self.block)
        return ArrayPass(self.arch, self.placement(k), self.ifmap[:, cb], self.filters[:, cb],
                         psum_in)

    def expected_final(self):
        """Golden result over all channels (plus psum0)."""
        out = conv2d(self.ifmap, self.filters, stride=self.shape.U,
                     psum_width=self.arch.psum_width)
        if self.psum0 is not None:
            out = wrap(out + self.psum0, self.arch.psum_width)
        return out


SPEC_KEYS = ("R", "S", "e", "U", "r", "t", "p", "q", "F", "n")


def check_spec(arch, spec):
    """Raise MappingError if ``spec`` does not fit ``arch``."""
    p, q, S = spec["p"], spec["q"], spec["S"]
    if not (p <= arch.psum_spad_depth and q * S <= arch.ifmap_spad_depth
            and p * q * S <= arch.filter_spad_depth):
        raise MappingError(f"p={p}, q={q}, S={S} do not fit the spads")
    shape = PassShape(spec["R"], spec["e"], spec["U"], spec.get("r", 1), spec.get("t", 1))
    place_pass(arch.rows, arch.cols, shape, row_id_width=arch.row_id_width,
               col_id_width=arch.col_id_width, ifmap_col_id_width=arch.ifmap_col_id_width)
    return shape


def make_slice(arch, spec):
    """A LayerSlice from a spec dict: R, S, e, U, r, t, p, q, F, n; optional ``passes``
    (channel blocks, default 1), ``psum0`` (the first pass continues psums from the global
    buffer), ``same_ids`` (one placement, with psum-GIN chain bottoms, for every pass: the
    first pass then runs with ``psum_in_en`` low), ``zeros`` (fraction of zero activations),
    ``seed``, ``name``."""
    shape = check_spec(arch, spec)
    rng = np.random.default_rng(spec.get("seed", 0))
    passes = spec.get("passes", 1)
    R, S, U, e, F, n = spec["R"], spec["S"], spec["U"], spec["e"], spec["F"], spec["n"]
    C = passes * spec["q"] * shape.r
    M = spec["p"] * shape.t
    ifmap = _signed(rng, arch.act_width, (n, C, U * (e - 1) + R, U * (F - 1) + S),
                    spec.get("zeros", 0.0))
    filters = _signed(rng, arch.weight_width, (M, C, R, S))
    psum0 = _signed(rng, arch.psum_width, (n, M, e, F)) if spec.get("psum0") else None
    return LayerSlice(arch, shape, ifmap, filters, psum0, passes, spec.get("name", ""),
                      bool(spec.get("same_ids")))


def random_spec(arch, rng, *, max_p=4, max_F=6, max_n=2, max_e=None, max_U=3):
    """A random spec (dict) that fits ``arch``; ``rng`` is a random.Random."""
    max_e = max_e or 2 * arch.cols
    for _ in range(1000):
        S = rng.randint(1, min(arch.ifmap_spad_depth, 5))
        q = rng.randint(1, max(1, min(3, arch.ifmap_spad_depth // S)))
        p = rng.randint(1, max(1, min(max_p, arch.psum_spad_depth,
                                      arch.filter_spad_depth // (q * S))))
        spec = {
            "R": rng.randint(1, arch.rows), "S": S, "e": rng.randint(1, max_e),
            "U": rng.randint(1, max_U), "r": rng.choice([1, 1, 2, 3]),
            "t": rng.choice([1, 1, 2, 3]), "p": p, "q": q,
            "F": rng.randint(1, max_F), "n": rng.randint(1, max_n),
            "passes": rng.choice([1, 1, 2]), "psum0": rng.random() < 0.3,
            "same_ids": rng.random() < 0.3,
            "zeros": rng.choice([0.0, 0.3, 0.7]), "seed": rng.randrange(1 << 30),
        }
        try:
            check_spec(arch, spec)
        except MappingError:
            continue
        spec["name"] = "random " + " ".join(f"{k}={spec[k]}" for k in SPEC_KEYS)
        return spec
    raise MappingError("no random spec fits this architecture")
