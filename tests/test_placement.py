"""Pass placement and multicast IDs (gen/placement.py), checked by brute force.

The expectations here are written from what each PE needs (REFERENCE.md, "2-D convolution on a
PE set"), not from the placement's ID formulas: PE (i, j) of copy (rc, tc) needs filter row i of
that copy and ifmap row U*j + i of channel copy rc, and the R*r PEs of one ofmap row j of one
filter copy form one psum chain. Packets are delivered by simulating the GIN match rule (X-bus
enabled and its row ID equal to the row tag, PE enabled and its col ID equal to the col tag) over
every physical PE, and the receivers are compared with the PEs that need the datum, found from the
PEPlace fields alone.
"""

import itertools
import random

import pytest

from rowstat.gen.errors import MappingError
from rowstat.gen.placement import PassShape, PEPlace, Placement, place_pass

ROWS, COLS = 12, 14                  # Eyeriss v1 array
EYERISS_WIDTHS = dict(row_id_width=4, col_id_width=4, ifmap_col_id_width=5)


# --- reference model --------------------------------------------------------------------------

def deliver(rows, cols, row_id, row_en, col_id, col_en):
    """Simulate the GIN match rule over every PE once: (row tag, col tag) -> set of receivers.
    A tag missing from the result reaches no PE."""
    assert len(row_id) == len(row_en) == len(col_id) == len(col_en) == rows
    reach = {}
    for row in range(rows):
        assert len(col_id[row]) == len(col_en[row]) == cols
        if not row_en[row]:
            continue
        for col in range(cols):
            if col_en[row][col]:
                reach.setdefault((row_id[row], col_id[row][col]), set()).add((row, col))
    return reach


def reachable(reach):
    return set().union(*reach.values()) if reach else set()


def pes_where(pl, **want):
    """Positions of the PEs whose PEPlace fields have the given values."""
    return {pos for pos, p in pl.pes.items()
            if all(getattr(p, name) == value for name, value in want.items())}


def check_layout(pl, rows, cols, shape):
    """Every logical PE placed once, inside the array, at most one per physical PE; segments
    cut the set into the fewest contiguous runs of at most ``cols`` ofmap rows."""
    assert (pl.rows, pl.cols, pl.shape) == (rows, cols, shape)
    logical = []
    for pos, p in pl.pes.items():
        assert isinstance(p, PEPlace)
        assert pos == (p.row, p.col)
        assert 0 <= p.row < rows and 0 <= p.col < cols, p
        logical.append((p.i, p.j, p.rc, p.tc))
    expected = set(itertools.product(range(shape.R), range(shape.e), range(shape.r),
                                     range(shape.t)))
    assert len(logical) == len(set(logical)), "a logical PE placed twice"
    assert set(logical) == expected
    # pes is keyed by position, so no two logical PEs share one physical PE; the count confirms
    assert pl.active == len(expected) == shape.R * shape.e * shape.r * shape.t
    assert pl.utilization == pytest.approx(pl.active / (rows * cols))

    # Segments: each ofmap row j belongs to one segment in every copy; the segments are
    # contiguous, in order, at most `cols` wide, and as few as possible.
    seg_of_j = {}
    for p in pl.pes.values():
        assert seg_of_j.setdefault(p.j, p.seg) == p.seg, f"ofmap row {p.j} in two segments"
    runs = {}
    for j, seg in seg_of_j.items():
        runs.setdefault(seg, []).append(j)
    assert sorted(runs) == list(range(pl.segments))
    assert pl.segments == -(-shape.e // cols)
    first = 0
    for seg in range(pl.segments):
        js = sorted(runs[seg])
        assert js == list(range(first, first + len(js))), f"segment {seg} not contiguous"
        assert 1 <= len(js) <= cols
        assert pl.seg_start[seg] == first and pl.seg_width[seg] == len(js)
        first += len(js)
    assert first == shape.e


def check_filters(pl):
    shape = pl.shape
    reach = deliver(pl.rows, pl.cols, pl.filter_row_id, pl.filter_row_en,
                    pl.filter_col_id, pl.filter_col_en)
    assert reachable(reach) <= set(pl.pes), "an unused PE can receive filters"
    sent = set()
    for i, rc, tc in itertools.product(range(shape.R), range(shape.r), range(shape.t)):
        tag = pl.filter_tag(i, rc, tc)
        got = reach.get(tag, set())
        want = pes_where(pl, i=i, rc=rc, tc=tc)
        assert len(want) == shape.e
        assert got == want, f"filter row {i} of copy ({rc}, {tc}), tag {tag}"
        sent.add(tag)
    # every tag that reaches anyone is one the code sends
    assert set(reach) <= sent


def check_ifmaps(pl):
    shape = pl.shape
    U = shape.U
    reach = deliver(pl.rows, pl.cols, pl.ifmap_row_id, pl.ifmap_row_en,
                    pl.ifmap_col_id, pl.ifmap_col_en)
    assert reachable(reach) <= set(pl.pes), "an unused PE can receive ifmaps"
    needed_rows = U * (shape.e - 1) + shape.R          # strip-relative rows 0 .. needed_rows-1
    sent = set()
    for rc in range(shape.r):
        for k in range(-1, needed_rows + 1):
            union = set()
            for seg in range(pl.segments):
                tag = pl.ifmap_tag(k, rc, seg)
                want = {pos for pos, p in pl.pes.items()
                        if p.rc == rc and p.seg == seg and U * p.j + p.i == k}
                if tag is None:
                    assert not want, f"ifmap row {k} of copy {rc}, segment {seg}: no tag"
                    continue
                assert want, f"ifmap row {k} of copy {rc}, segment {seg}: tag {tag} for no PE"
                got = reach.get(tag, set())
                assert got == want, f"ifmap row {k} of copy {rc}, segment {seg}, tag {tag}"
                union |= got
                sent.add(tag)
            # every PE that needs row k of channel copy rc gets it from some segment's packet
            assert union == {pos for pos, p in pl.pes.items()
                             if p.rc == rc and U * p.j + p.i == k}
    assert set(reach) <= sent


def check_psums(pl, continue_psums):
    shape = pl.shape
    chains = {}
    for pos, p in pl.pes.items():
        chains.setdefault((p.seg, p.tc, p.j), []).append(p)
    assert len(chains) == shape.e * shape.t
    bottoms, tops = set(), {}
    for key, chain in chains.items():
        seg, tc, j = key
        assert len(chain) == shape.R * shape.r
        assert {p.rc for p in chain} == set(range(shape.r))
        assert len({p.col for p in chain}) == 1, f"chain {key} spans columns"
        chain.sort(key=lambda p: p.row)
        rows = [p.row for p in chain]
        assert rows == list(range(rows[0], rows[0] + len(rows))), f"chain {key} has a gap"
        assert chain[0].psum_from == ("gin" if continue_psums else "none"), key
        assert all(p.psum_from == "below" for p in chain[1:]), key
        assert chain[-1].psum_to == "gon", key
        for p in chain[:-1]:
            assert p.psum_to == "above"
            above = pl.pes.get((p.row + 1, p.col))
            assert above is not None and (above.seg, above.tc, above.j) == key
        bottoms.add((chain[0].row, chain[0].col))
        tops[(chain[-1].row, chain[-1].col)] = key
    assert set(pl.chain_bottoms()) == bottoms
    assert pl.chain_tops() == tops

    reach = deliver(pl.rows, pl.cols, pl.psum_row_id, pl.psum_row_en,
                    pl.psum_col_id, pl.psum_col_en)
    if not continue_psums:
        assert not reach, "psum GIN enabled though no chain takes input psums"
        return
    assert reachable(reach) == bottoms, "psum GIN reaches a PE that is not a chain bottom"
    for row, col in bottoms:
        assert reach.get(pl.psum_tag(row, col)) == {(row, col)}


def check_all(pl, rows, cols, shape, continue_psums):
    check_layout(pl, rows, cols, shape)
    check_filters(pl)
    check_ifmaps(pl)
    check_psums(pl, continue_psums)


def assert_one_line(exc, *parts):
    text = str(exc)
    assert "\n" not in text, text
    for part in parts:
        assert part in text, text


# --- Eyeriss AlexNet mappings -----------------------------------------------------------------

# (name, shape, active PEs, segments) from REFERENCE.md's mapping and measured-results tables
ALEXNET = [
    ("CONV1", PassShape(R=11, e=7, U=4, t=2), 154, 1),
    ("CONV2", PassShape(R=5, e=27), 135, 2),
    ("CONV3", PassShape(R=3, e=13, t=4), 156, 1),
    ("CONV4", PassShape(R=3, e=13, r=2, t=2), 156, 1),
    ("CONV5", PassShape(R=3, e=13, r=2, t=2), 156, 1),
]


@pytest.mark.parametrize("continue_psums", [False, True])
@pytest.mark.parametrize("name,shape,active,segments", ALEXNET, ids=[a[0] for a in ALEXNET])
def test_placement_alexnet_eyeriss(name, shape, active, segments, continue_psums):
    pl = place_pass(ROWS, COLS, shape, continue_psums=continue_psums)
    assert isinstance(pl, Placement)
    assert pl.active == active
    assert pl.segments == segments
    check_all(pl, ROWS, COLS, shape, continue_psums)


def test_placement_conv2_segments():
    pl = place_pass(ROWS, COLS, PassShape(R=5, e=27))
    assert sorted(pl.seg_width) == [13, 14]
    # each ofmap row is in one segment and the two segments use different PE rows
    rows_of = {seg: {p.row for p in pl.pes.values() if p.seg == seg} for seg in (0, 1)}
    assert not rows_of[0] & rows_of[1]


def test_placement_eyeriss_id_widths():
    """CONV2-5 fit the chip's 4-bit row / 4-bit col / 5-bit ifmap col IDs. CONV1's strip of
    7 ofmap rows at stride 4 has 4*6 + 11 = 35 ifmap rows in view, more than a 5-bit ifmap
    col ID can name, so with one ID per needed row it does not fit."""
    for name, shape, _, _ in ALEXNET[1:]:
        place_pass(ROWS, COLS, shape, continue_psums=True, **EYERISS_WIDTHS)
    with pytest.raises(MappingError) as exc:
        place_pass(ROWS, COLS, ALEXNET[0][1], **EYERISS_WIDTHS)
    assert_one_line(exc.value, "ifmap col ID", "5-bit", "R=11", "U=4")
    place_pass(ROWS, COLS, ALEXNET[0][1], row_id_width=4, col_id_width=4, ifmap_col_id_width=6)


# --- small hand-picked shapes -----------------------------------------------------------------

HAND = [
    (1, 1, PassShape(R=1, e=1)),
    (3, 4, PassShape(R=3, e=4)),
    (3, 4, PassShape(R=1, e=2, U=2, r=3, t=2)),     # U > R: ifmap rows no PE reads
    (4, 3, PassShape(R=2, e=7, U=1)),                # 3 segments, room for 2: refused
    (6, 3, PassShape(R=2, e=7, U=2)),                # 3 segments 3 + 2 + 2
    (8, 5, PassShape(R=2, e=2, r=2, t=4)),           # t copies split over 2 band slices
    (12, 14, PassShape(R=1, e=5, U=3, r=3, t=3)),
]


@pytest.mark.parametrize("rows,cols,shape", HAND)
def test_placement_hand_shapes(rows, cols, shape):
    try:
        pl = place_pass(rows, cols, shape, continue_psums=True)
    except MappingError as exc:
        assert shape.R * shape.e * shape.r * shape.t > rows * cols
        assert_one_line(exc, "rows=")
        return
    check_all(pl, rows, cols, shape, True)


# --- seeded random shapes ---------------------------------------------------------------------

def random_case(rng):
    rows, cols = rng.randint(1, 16), rng.randint(1, 16)
    # mostly shapes that may fit; now and then a set taller than the array or wider than it
    R = rng.randint(1, rows + 2) if rng.random() < 0.2 else rng.randint(1, max(1, rows // 2))
    e = rng.randint(1, 2 * cols + 3) if rng.random() < 0.3 else rng.randint(1, cols)
    shape = PassShape(R=R, e=e, U=rng.choice([1, 1, 2, 3, 4]), r=rng.choice([1, 1, 2, 3]),
                      t=rng.choice([1, 1, 2, 3, 4]))
    return rows, cols, shape


def test_placement_random_shapes():
    rng = random.Random(20240611)
    fitted = refused = 0
    for _ in range(500):
        rows, cols, shape = random_case(rng)
        continue_psums = rng.random() < 0.5
        logical = shape.R * shape.e * shape.r * shape.t
        try:
            pl = place_pass(rows, cols, shape, continue_psums=continue_psums)
        except MappingError as exc:
            refused += 1
            # refusals the geometry itself forces, and a trivially placeable set never refused
            assert not (shape.R <= rows and shape.e <= cols and shape.r == shape.t == 1), exc
            if shape.R > rows:
                assert_one_line(exc, f"R={shape.R} exceeds rows={rows}")
            else:
                assert_one_line(exc, f"R={shape.R}", f"rows={rows}", "bands")
            continue
        fitted += 1
        assert shape.R <= rows and logical <= rows * cols
        check_all(pl, rows, cols, shape, continue_psums)
    assert fitted > 150 and refused > 100, (fitted, refused)


# --- refusals ---------------------------------------------------------------------------------

def test_placement_refuses_tall_set():
    with pytest.raises(MappingError) as exc:
        place_pass(ROWS, COLS, PassShape(R=13, e=5))
    assert_one_line(exc.value, "R=13 exceeds rows=12")


@pytest.mark.parametrize("shape,needs,has", [
    (PassShape(R=3, e=13, t=5), 5, 4),               # one filter copy too many
    (PassShape(R=3, e=13, r=3, t=2), 6, 4),          # too many channel x filter copies
    (PassShape(R=5, e=27, t=2), 4, 2),               # CONV2 with a second filter copy
    (PassShape(R=7, e=27), 2, 1),                    # two segments, room for one band
    (PassShape(R=11, e=7, U=4, t=3), 2, 1),          # CONV1 with a third filter copy
])
def test_placement_refuses_too_many_copies(shape, needs, has):
    with pytest.raises(MappingError) as exc:
        place_pass(ROWS, COLS, shape)
    assert_one_line(exc.value, "does not fit", f"needs {needs} bands", f"has {has}",
                    f"rows={ROWS}", f"r={shape.r}", f"t={shape.t}")


@pytest.mark.parametrize("bad", [dict(R=0), dict(e=-1), dict(U=True), dict(t=1.0)])
def test_placement_bad_pass_shape(bad):
    with pytest.raises(MappingError) as exc:
        PassShape(**(dict(R=3, e=3) | bad))
    name = next(iter(bad))
    assert_one_line(exc.value, f"{name}=")


# --- ID widths --------------------------------------------------------------------------------

def needed_ids(pl):
    """The largest ID each width has to hold, taken from the placement's own ID tables."""
    flat = lambda grid: [v for row in grid for v in row]
    return {
        "row_id_width": max(pl.filter_row_id + pl.ifmap_row_id + pl.psum_row_id),
        "col_id_width": max(flat(pl.filter_col_id) + flat(pl.psum_col_id)),
        "ifmap_col_id_width": max(flat(pl.ifmap_col_id)),
    }


def test_placement_ifmap_col_id_width_boundary():
    # R=4, e=15, U=2 in one segment: ifmap rows 0 .. 2*14 + 3 = 31 are in view, exactly 5 bits
    pl = place_pass(12, 16, PassShape(R=4, e=15, U=2), ifmap_col_id_width=5)
    assert max(v for row in pl.ifmap_col_id for v in row) == 31
    with pytest.raises(MappingError) as exc:
        place_pass(12, 16, PassShape(R=5, e=15, U=2), ifmap_col_id_width=5)
    assert_one_line(exc.value, "ifmap col ID 32", "5-bit")


def test_placement_row_and_col_id_widths():
    shape = PassShape(R=3, e=13, r=2, t=2)
    with pytest.raises(MappingError) as exc:        # psum row IDs name the 12 physical rows
        place_pass(ROWS, COLS, shape, row_id_width=3)
    assert_one_line(exc.value, "row ID", "3-bit")
    with pytest.raises(MappingError) as exc:        # 4 filter copies need 2 bits
        place_pass(ROWS, COLS, shape, col_id_width=1)
    assert_one_line(exc.value, "col ID", "1-bit")
    place_pass(ROWS, COLS, shape, row_id_width=4, col_id_width=4)


def test_placement_random_id_widths():
    """With widths given, a placement is refused exactly when some ID needs more bits; an
    accepted one has the same IDs as without widths (the check changes nothing)."""
    rng = random.Random(7)
    checked = refused = 0
    while checked < 150:
        rows, cols, shape = random_case(rng)
        try:
            pl = place_pass(rows, cols, shape)
        except MappingError:
            continue
        checked += 1
        need = needed_ids(pl)
        # widths around what is needed: one bit short, just enough, or one to spare
        widths = {name: max(1, max(1, top.bit_length()) + rng.choice([-1, 0, 0, 0, 1]))
                  for name, top in need.items()}
        fits = all(need[name] < 1 << widths[name] for name in need)
        try:
            narrow = place_pass(rows, cols, shape, **widths)
        except MappingError as exc:
            refused += 1
            assert not fits, (rows, cols, shape, widths, need)
            assert_one_line(exc, "does not fit in its", "-bit field")
            continue
        assert fits, (rows, cols, shape, widths, need)
        assert narrow.ifmap_col_id == pl.ifmap_col_id and narrow.filter_col_id == pl.filter_col_id
        # and every ID of the tables that matter really fits
        for name, top in needed_ids(narrow).items():
            assert top < 1 << widths[name]
    assert 20 < refused < 120, refused
