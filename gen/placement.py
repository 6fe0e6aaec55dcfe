"""Placement of one processing pass's logical PE sets on the physical array, and the
multicast IDs that make the NoC deliver each datum to exactly the PEs that need it.

A logical PE set is R rows x e columns: PE (i, j) convolves filter row i with ifmap row
U*j + i and contributes to ofmap row j of the strip. On the array:

* **Folding.** A set wider than the array is cut into ``segments`` of at most ``cols``
  columns (AlexNet CONV2: 5 x 27 becomes 5 x 14 + 5 x 13), placed in different row bands.
* **Replication.** ``r`` copies work on different channel blocks (their psums add up: the r
  copies of one column are stacked so the psums continue up the column through all of them)
  and ``t`` copies on different filter blocks (they share ifmaps, so they may sit side by
  side in one band).

The array is divided into bands of R PE rows. Each band holds blocks of one ifmap group
(one channel copy of one segment) side by side, each block being one filter copy. Bands of
the r channel copies of one (segment, filter-copy slice) are stacked in that order, so psums
run up through all of them and leave from the top band's top row.

IDs per data type (REFERENCE.md, "IDs say what a PE wants, not where it sits"):

* filters: X-bus row ID = filter row i; PE col ID = filter copy ``fid = rc * t + tc``.
  A packet tagged (i, fid) reaches every PE that holds filter row i of copy fid, in every
  segment: one packet per filter row, whatever the folding.
* ifmaps: X-bus row ID = ifmap group ``gid = rc * segments + seg``; PE col ID = the ifmap row
  the PE needs relative to its segment, ``U*j' + i``. A packet (gid, k) reaches the diagonal
  of every filter copy of that group.
* psums (input psums from the GLB, to the bottom PE of each chain): X-bus row ID = physical
  row; PE col ID = physical col: plain unicast.

Unused X-buses and PEs get their enable bit cleared, so they match nothing.
"""

from dataclasses import dataclass, field

from .errors import MappingError

__all__ = ["PassShape", "PEPlace", "Placement", "place_pass", "ceil_div"]


def ceil_div(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class PassShape:
    """The slice of a layer that one processing pass puts on the array."""

    R: int          # filter rows (set height)
    e: int          # ofmap rows in the strip (logical set width)
    U: int = 1      # vertical and horizontal stride
    r: int = 1      # set copies on different channel blocks
    t: int = 1      # set copies on different filter blocks

    def __post_init__(self):
        for name in ("R", "e", "U", "r", "t"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MappingError(f"bad pass shape: {name}={value!r}; allowed: an integer >= 1")


@dataclass(frozen=True)
class PEPlace:
    """What one physical PE does in a pass."""

    row: int            # physical position
    col: int
    i: int              # filter row in the set
    j: int              # ofmap row of the strip (logical set column, segments included)
    seg: int            # segment of the folded set
    rc: int             # channel copy
    tc: int             # filter copy
    psum_from: str      # "none" | "below" | "gin": where its input psums come from
    psum_to: str        # "above" | "gon": where its output psums go


@dataclass
class Placement:
    """The result of :func:`place_pass`."""

    rows: int
    cols: int
    shape: PassShape
    segments: int
    seg_width: list                    # columns of each segment
    seg_start: list                    # first logical column of each segment
    bands: list                        # per band: (rc, seg, [tc of each slot])
    pes: dict = field(default_factory=dict)          # (row, col) -> PEPlace
    # multicast IDs and enables, per data type
    filter_row_id: list = field(default_factory=list)
    filter_row_en: list = field(default_factory=list)
    filter_col_id: list = field(default_factory=list)    # [row][col]
    filter_col_en: list = field(default_factory=list)
    ifmap_row_id: list = field(default_factory=list)
    ifmap_row_en: list = field(default_factory=list)
    ifmap_col_id: list = field(default_factory=list)
    ifmap_col_en: list = field(default_factory=list)
    psum_row_id: list = field(default_factory=list)
    psum_row_en: list = field(default_factory=list)
    psum_col_id: list = field(default_factory=list)
    psum_col_en: list = field(default_factory=list)

    @property
    def active(self):
        return len(self.pes)

    @property
    def utilization(self):
        return len(self.pes) / (self.rows * self.cols)

    def fid(self, rc, tc):
        return rc * self.shape.t + tc

    def gid(self, rc, seg):
        return rc * self.segments + seg

    def filter_tag(self, i, rc, tc):
        """(row tag, col tag) of a filter packet for filter row i of copy (rc, tc)."""
        return i, self.fid(rc, tc)

    def ifmap_tag(self, k, rc, seg):
        """(row tag, col tag) of an ifmap packet: strip-relative ifmap row k of channel copy
        rc, as seen by segment seg. None if no PE of that segment reads row k."""
        U, R = self.shape.U, self.shape.R
        rel = k - U * self.seg_start[seg]
        # some PE (i, j') of the segment reads it: rel = U*j' + i, 0 <= i < R, 0 <= j' < width
        # (with U > R there are rows in the range that no PE reads)
        if not any(0 <= rel - i <= U * (self.seg_width[seg] - 1) and (rel - i) % U == 0
                   for i in range(R)):
            return None
        return self.gid(rc, seg), rel

    def psum_tag(self, row, col):
        return row, col

    def chain_bottoms(self):
        """PEs that take input psums from the psum GIN (when the pass continues psums)."""
        return sorted((p.row, p.col) for p in self.pes.values() if p.i == 0 and p.rc == 0)

    def chain_tops(self):
        """PEs whose psums leave through the GON: (row, col) -> (seg, tc, j)."""
        return {(p.row, p.col): (p.seg, p.tc, p.j)
                for p in self.pes.values() if p.psum_to == "gon"}


def _segments(e, cols):
    """Fewest segments of at most ``cols`` columns, widths as equal as possible."""
    n = ceil_div(e, cols)
    base, extra = divmod(e, n)
    widths = [base + (1 if s < extra else 0) for s in range(n)]
    starts = [sum(widths[:s]) for s in range(n)]
    return widths, starts


def place_pass(rows, cols, shape, *, continue_psums=False, row_id_width=None,
               col_id_width=None, ifmap_col_id_width=None):
    """Place one pass on a ``rows`` x ``cols`` array. Raises MappingError if it does not fit.

    ``continue_psums``: the bottom PEs of each chain take input psums from the psum GIN
    (later channel blocks of a layer); otherwise they start from zero.
    The ``*_id_width`` arguments, when given, check that every ID fits its field.
    """
    R, e, U, r, t = shape.R, shape.e, shape.U, shape.r, shape.t
    if R > rows:
        raise MappingError(f"R={R} exceeds rows={rows}")
    widths, starts = _segments(e, cols)
    nseg = len(widths)
    w = max(widths)
    slots = cols // w                        # blocks side by side in one band
    bands_per_group = ceil_div(t, slots)     # bands one (rc, seg) group needs for its t copies
    bands_needed = r * nseg * bands_per_group
    bands_avail = rows // R
    if bands_needed > bands_avail:
        raise MappingError(
            f"pass does not fit: R={R} x e={e} with r={r}, t={t} needs {bands_needed} bands of "
            f"{R} rows ({nseg} segment(s) of up to {w} columns, {slots} per band), "
            f"the array has {bands_avail} (rows={rows})")

    # Band order: for each segment, for each slice of t copies, the r channel copies stacked
    # bottom to top, so a column's psums run up through all r copies.
    bands = []
    for seg in range(nseg):
        for b in range(bands_per_group):
            tcs = list(range(b * slots, min(t, (b + 1) * slots)))
            for rc in range(r):
                bands.append((rc, seg, tcs))

    pl = Placement(rows, cols, shape, nseg, widths, starts, bands)
    for band, (rc, seg, tcs) in enumerate(bands):
        for slot, tc in enumerate(tcs):
            for i in range(R):
                row = band * R + i
                for jj in range(widths[seg]):
                    col = slot * w + jj
                    bottom = i == 0 and rc == 0
                    top = i == R - 1 and rc == r - 1
                    pl.pes[(row, col)] = PEPlace(
                        row=row, col=col, i=i, j=starts[seg] + jj, seg=seg, rc=rc, tc=tc,
                        psum_from=("gin" if continue_psums else "none") if bottom else "below",
                        psum_to="gon" if top else "above")

    band_of_row = {band * R + i: band for band in range(len(bands)) for i in range(R)}
    pl.filter_row_id = [row % R if row in band_of_row else 0 for row in range(rows)]
    pl.filter_row_en = [row in band_of_row for row in range(rows)]
    pl.ifmap_row_id = [pl.gid(bands[band_of_row[row]][0], bands[band_of_row[row]][1])
                       if row in band_of_row else 0 for row in range(rows)]
    pl.ifmap_row_en = list(pl.filter_row_en)
    pl.psum_row_id = list(range(rows))
    pl.psum_row_en = [any((row, c) in pl.pes and pl.pes[(row, c)].psum_from == "gin"
                          for c in range(cols)) for row in range(rows)]
    grid = lambda value: [[value(row, col) for col in range(cols)] for row in range(rows)]
    place = pl.pes.get
    pl.filter_col_id = grid(lambda row, col: pl.fid(place((row, col)).rc, place((row, col)).tc)
                            if place((row, col)) else 0)
    pl.filter_col_en = grid(lambda row, col: place((row, col)) is not None)
    pl.ifmap_col_id = grid(lambda row, col: U * (place((row, col)).j - starts[place((row, col)).seg])
                           + place((row, col)).i if place((row, col)) else 0)
    pl.ifmap_col_en = [list(x) for x in pl.filter_col_en]
    pl.psum_col_id = grid(lambda row, col: col)
    pl.psum_col_en = grid(lambda row, col: place((row, col)) is not None
                          and place((row, col)).psum_from == "gin")

    for name, ids, width in (
            ("filter row ID", pl.filter_row_id, row_id_width),
            ("ifmap row ID", pl.ifmap_row_id, row_id_width),
            ("psum row ID", pl.psum_row_id, row_id_width),
            ("filter col ID", [v for row in pl.filter_col_id for v in row], col_id_width),
            ("ifmap col ID", [v for row in pl.ifmap_col_id for v in row], ifmap_col_id_width),
            ("psum col ID", [v for row in pl.psum_col_id for v in row], col_id_width)):
        if width is not None and ids and max(ids) >= 1 << width:
            raise MappingError(f"{name} {max(ids)} does not fit in its {width}-bit field "
                               f"(R={R}, e={e}, U={U}, r={r}, t={t})")
    return pl
