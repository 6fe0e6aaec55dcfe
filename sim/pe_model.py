"""Reference model of one PE: the word orders on its ports and the psums it must produce.

Used by the Amaranth unit tests and the cocotb bench alike; the arithmetic comes from the
golden model, the orders from the PE's documented port contract (rowstat.hw.pe).
"""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Const

from ..gen.program import pe_config_layout
from ..hw.pe import pe_port_layout, pe_products
from .golden import conv1d_row, wrap

__all__ = ["PECase", "pack_config", "random_case"]


def pack_config(arch, *, p, q, S, F, U, n_rows, psum_in_en, products=True):
    """The PE's ``cfg`` port value as an integer; without ``products``, the array's ``cfg``
    port (the array works the products out itself)."""
    cfg = {"p": p, "q": q, "S": S, "F": F, "U": U, "n_rows": n_rows,
           "psum_in_en": int(psum_in_en)}
    if not products:
        return Const.cast(pe_config_layout(arch).const(cfg)).value
    value = pe_port_layout(arch).const(cfg | pe_products(cfg))
    return Const.cast(value).value


@dataclass
class PECase:
    """One pass of one PE: p filters x q channels x S taps over n_rows ifmap rows."""

    filters: np.ndarray          # (p, q, S)
    ifmaps: np.ndarray           # (n_rows, q, U*(F-1)+S)
    F: int
    U: int
    psum_in: np.ndarray | None   # (n_rows, p, F) or None

    @property
    def p(self):
        return self.filters.shape[0]

    @property
    def q(self):
        return self.filters.shape[1]

    @property
    def S(self):
        return self.filters.shape[2]

    @property
    def n_rows(self):
        return self.ifmaps.shape[0]

    def config(self, arch):
        return pack_config(arch, p=self.p, q=self.q, S=self.S, F=self.F, U=self.U,
                           n_rows=self.n_rows, psum_in_en=self.psum_in is not None)

    def filter_words(self):
        """w[k][c][s] at (s*q + c)*p + k."""
        return [int(v) for v in self.filters.transpose(2, 1, 0).reshape(-1)]

    def ifmap_words(self):
        """Per row, position-major: word x*q + c is channel c at position x."""
        return [int(v) for v in self.ifmaps.transpose(0, 2, 1).reshape(-1)]

    def psum_in_words(self):
        if self.psum_in is None:
            return []
        return [int(v) for v in self.psum_in.transpose(0, 2, 1).reshape(-1)]

    def expected(self, psum_width):
        """psum_out words: for each row, column f, filter k."""
        rows = [conv1d_row(self.filters, self.ifmaps[r], self.F, self.U, psum_width,
                           None if self.psum_in is None else self.psum_in[r])
                for r in range(self.n_rows)]
        return [int(v) for v in np.stack(rows).transpose(0, 2, 1).reshape(-1)]

    def macs(self):
        """(MACs done, MACs skipped by zero gating) for this case."""
        done = skipped = 0
        for r in range(self.n_rows):
            for f in range(self.F):
                window = self.ifmaps[r][:, self.U * f:self.U * f + self.S]
                zeros = int(np.count_nonzero(window == 0))
                skipped += zeros * self.p
                done += (window.size - zeros) * self.p
        return done, skipped


def _signed(rng, width, shape, zero_fraction=0.0):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1))
    values = rng.integers(lo, hi, size=shape, dtype=np.int64)
    if zero_fraction:
        values[rng.random(shape) < zero_fraction] = 0
    return values


def random_case(arch, rng, *, max_F=12, max_rows=3, max_p=None, psum_in=None):
    """A random legal PE pass for ``arch``: p, q, S, U, F, n_rows within the spad limits."""
    while True:
        S = int(rng.integers(1, min(arch.ifmap_spad_depth, 6) + 1))
        q = int(rng.integers(1, arch.ifmap_spad_depth // S + 1))
        p_hi = min(arch.psum_spad_depth, arch.filter_spad_depth // (q * S), max_p or 64)
        if p_hi >= 1:
            break
    p = int(rng.integers(1, p_hi + 1))
    U = int(rng.integers(1, 5))
    F = int(rng.integers(1, max_F + 1))
    n_rows = int(rng.integers(1, max_rows + 1))
    width = U * (F - 1) + S
    zero_fraction = float(rng.choice([0.0, 0.3, 0.8]))
    filters = _signed(rng, arch.weight_width, (p, q, S))
    ifmaps = _signed(rng, arch.act_width, (n_rows, q, width), zero_fraction)
    if psum_in is None:
        psum_in = bool(rng.integers(0, 2))
    pin = wrap(_signed(rng, arch.psum_width, (n_rows, p, F)), arch.psum_width) if psum_in else None
    return PECase(filters, ifmaps, F, U, pin)
