"""The golden model against a plain-Python reference and hand-computed cases.

The reference below uses Python integers (unbounded) and explicit modulo wrapping, one loop per
index, so it shares no numpy tricks (sliding windows, einsum, int64 overflow) with the model.
"""

import numpy as np
import pytest

from rowstat.gen.config import PRESETS
from rowstat.gen.layer import LayerSpec
from rowstat.sim.golden import conv1d_row, conv2d, golden_layer, output_stage, wrap


# --- plain-Python reference ----------------------------------------------------------------

def ref_wrap(value, width):
    value %= 1 << width
    return value - (1 << width) if value >= 1 << (width - 1) else value


def ref_conv2d(ifmap, weights, stride, padding, groups, bias, psum_width):
    """ifmap [N][C][H][W], weights [M][C/groups][R][S], bias [M] or None (nested lists)."""
    N, C, H, W = len(ifmap), len(ifmap[0]), len(ifmap[0][0]), len(ifmap[0][0][0])
    M, Cg, R, S = len(weights), len(weights[0]), len(weights[0][0]), len(weights[0][0][0])
    assert C == Cg * groups
    Mg = M // groups
    E = (H + 2 * padding - R) // stride + 1
    F = (W + 2 * padding - S) // stride + 1
    out = []
    for n in range(N):
        planes = []
        for m in range(M):
            g = m // Mg
            plane = []
            for e in range(E):
                row = []
                for f in range(F):
                    acc = bias[m] if bias is not None else 0
                    for c in range(Cg):
                        for r in range(R):
                            for s in range(S):
                                y = e * stride + r - padding
                                x = f * stride + s - padding
                                if 0 <= y < H and 0 <= x < W:
                                    acc += ifmap[n][g * Cg + c][y][x] * weights[m][c][r][s]
                    row.append(ref_wrap(acc, psum_width))
                plane.append(row)
            planes.append(plane)
        out.append(planes)
    return out


def ref_conv1d_row(filter_rows, ifmap_rows, F, stride, psum_width, psum_in=None):
    """filter_rows [p][q][S], ifmap_rows [q][W], psum_in [p][F] or None -> [p][F]."""
    out = []
    for k, filt in enumerate(filter_rows):
        row = []
        for f in range(F):
            acc = psum_in[k][f] if psum_in is not None else 0
            for c, taps in enumerate(filt):
                for s, weight in enumerate(taps):
                    acc += ifmap_rows[c][f * stride + s] * weight
            row.append(ref_wrap(acc, psum_width))
        out.append(row)
    return out


def ref_output(psum, act_width, shift, relu):
    """One value through the output stage."""
    out = psum
    if shift is not None:
        out = (out + (2 ** (shift - 1) if shift > 0 else 0)) >> shift   # Python >> floors
        out = min(max(out, -2 ** (act_width - 1)), 2 ** (act_width - 1) - 1)
    if relu:
        out = max(out, 0)
    return out


def ref_output_nested(psums, act_width, shift, relu):
    if isinstance(psums, list):
        return [ref_output_nested(p, act_width, shift, relu) for p in psums]
    return ref_output(psums, act_width, shift, relu)


def signed(rng, width, shape):
    """Random signed width-bit values, with the extremes forced in now and then."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    data = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    flat = data.reshape(-1)
    if flat.size >= 2:
        flat[rng.integers(flat.size)] = lo
        flat[rng.integers(flat.size)] = hi
    return data


# --- wrap ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, width, expected", [
    (0, 12, 0), (2047, 12, 2047), (2048, 12, -2048), (4095, 12, -1), (4096, 12, 0),
    (-2048, 12, -2048), (-2049, 12, 2047), (16129, 12, -255), (200, 8, -56),
    (1, 1, -1), (2, 1, 0), (-1, 1, -1), (2 ** 47, 48, -2 ** 47), (2 ** 47 - 1, 48, 2 ** 47 - 1),
    (-(2 ** 63), 63, 0), (2 ** 62, 63, -(2 ** 62)),
    (2 ** 63 - 1, 64, 2 ** 63 - 1), (-(2 ** 63), 64, -(2 ** 63)), (-5, 64, -5),
])
def test_wrap_values(value, width, expected):
    assert wrap(value, width) == expected == ref_wrap(value, width)


@pytest.mark.parametrize("seed", range(4))
def test_wrap_matches_reference(seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(-(2 ** 62), 2 ** 62, size=200, dtype=np.int64)
    for width in (1, 2, 7, 8, 12, 16, 24, 31, 32, 33, 48, 63, 64):
        got = wrap(values, width)
        assert got.dtype == np.int64 and got.shape == values.shape
        assert got.tolist() == [ref_wrap(int(v), width) for v in values]


def test_wrap_keeps_shape_and_does_not_touch_input():
    x = np.arange(-10, 10, dtype=np.int64).reshape(4, 5)
    before = x.copy()
    assert wrap(x, 3).shape == (4, 5)
    assert wrap(x, 64) is not x
    assert (x == before).all()


@pytest.mark.parametrize("width", [0, -1, 65, True, 8.0])
def test_wrap_bad_width(width):
    with pytest.raises(ValueError):
        wrap(5, width)


# --- output_stage --------------------------------------------------------------------------

@pytest.mark.parametrize("psum, shift, relu, expected", [
    # No shift: the raw psum, no clamp.
    (1000, None, False, 1000), (-1000, None, False, -1000), (-5, None, True, 0),
    (7, None, True, 7),
    # shift 0: clamp only.
    (1000, 0, False, 127), (-1000, 0, False, -128), (5, 0, False, 5), (127, 0, False, 127),
    (128, 0, False, 127), (-128, 0, False, -128), (-129, 0, False, -128),
    # shift 1: round half up (toward +inf), arithmetic (floor) shift.
    (3, 1, False, 2), (-3, 1, False, -1), (1, 1, False, 1), (-1, 1, False, 0),
    (2, 1, False, 1), (-2, 1, False, -1), (0, 1, False, 0),
    # shift 2.
    (6, 2, False, 2), (5, 2, False, 1), (-6, 2, False, -1), (-7, 2, False, -2),
    (-2, 2, False, 0), (2, 2, False, 1), (-10, 2, False, -2), (-11, 2, False, -3),
    # shift 4 at the clamp edges.
    (2039, 4, False, 127), (2040, 4, False, 127), (2047, 4, False, 127), (5000, 4, False, 127),
    (-2040, 4, False, -127), (-2048, 4, False, -128), (-2056, 4, False, -128),
    (-2057, 4, False, -128), (-2072, 4, False, -128),
    # ReLU after the clamp.
    (-1000, 0, True, 0), (1000, 0, True, 127), (-3, 1, True, 0), (3, 1, True, 2),
    (-1, 1, True, 0),
])
def test_output_stage_hand_cases(psum, shift, relu, expected):
    assert output_stage(psum, 8, shift, relu) == expected
    assert ref_output(psum, 8, shift, relu) == expected


@pytest.mark.parametrize("seed", range(6))
def test_output_stage_matches_reference(seed):
    rng = np.random.default_rng(seed)
    for psum_width, act_width in ((12, 8), (24, 8), (32, 16), (48, 16), (8, 4)):
        psums = signed(rng, psum_width, 300)
        for shift in (None, 0, 1, 2, 3, 5, 8, psum_width - 1, psum_width, psum_width + 3):
            for relu in (False, True):
                got = output_stage(psums, act_width, shift, relu)
                assert got.dtype == np.int64
                assert got.tolist() == [ref_output(int(p), act_width, shift, relu)
                                        for p in psums]
                if shift is not None:
                    assert got.min() >= -(1 << (act_width - 1))
                    assert got.max() <= (1 << (act_width - 1)) - 1


def test_output_stage_rounding_is_half_up_not_to_even_or_away():
    # x.5 always goes up: 0.5 -> 1, 1.5 -> 2, -0.5 -> 0, -1.5 -> -1, -2.5 -> -2.
    psums = np.array([1, 3, -1, -3, -5]) * 2  # halves at shift 2
    assert output_stage(psums, 8, 2).tolist() == [1, 2, 0, -1, -2]


@pytest.mark.parametrize("shift", [-1, 63])
def test_output_stage_bad_shift(shift):
    with pytest.raises(ValueError):
        output_stage(5, 8, shift)


# --- conv2d: hand-computed -----------------------------------------------------------------

X3 = [[[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]]   # N=1, C=1, 3x3


def test_conv2d_hand_2x2():
    w = [[[[1, 2], [3, 4]]]]
    assert conv2d(X3, w).tolist() == [[[[37, 47], [67, 77]]]]
    assert conv2d(X3, w, bias=[3]).tolist() == [[[[40, 50], [70, 80]]]]
    assert conv2d(X3, w, bias=[-100]).tolist() == [[[[-63, -53], [-33, -23]]]]


def test_conv2d_hand_stride_and_padding():
    # 1x1 filter of 2 on the zero-padded 5x5 input at stride 2: only x[1][1] is on the grid
    # away from the border.
    assert conv2d(X3, [[[[2]]]], stride=2, padding=1).tolist() == \
        [[[[0, 0, 0], [0, 10, 0], [0, 0, 0]]]]
    # 3x3 all-ones, padding 1: sums of 3x3 neighbourhoods inside the 3x3 input.
    ones = [[[[1] * 3] * 3]]
    assert conv2d(X3, ones, padding=1).tolist() == \
        [[[[12, 21, 16], [27, 45, 33], [24, 39, 28]]]]
    assert conv2d(X3, ones, stride=2, padding=1).tolist() == [[[[12, 16], [24, 28]]]]
    # stride larger than the input: one output.
    assert conv2d(X3, [[[[1, -1]]]], stride=4).tolist() == [[[[-1]]]]


def test_conv2d_hand_groups():
    x = [[[[1]], [[10]]]]                       # N=1, C=2, 1x1
    w = [[[[2]]], [[[3]]]]                     # M=2, C/groups=1
    assert conv2d(x, w, groups=2).tolist() == [[[[2]], [[30]]]]
    # The same numbers ungrouped: every filter sees both channels.
    w_full = [[[[2]], [[0]]], [[[0]], [[3]]]]  # M=2, C=2
    assert conv2d(x, w_full).tolist() == [[[[2]], [[30]]]]
    w_mix = [[[[1]], [[1]]], [[[1]], [[-1]]]]
    assert conv2d(x, w_mix).tolist() == [[[[11]], [[-9]]]]


def test_conv2d_hand_batch():
    x = [[[[1, 2]]], [[[3, 4]]]]                # N=2, C=1, 1x2
    assert conv2d(x, [[[[5, 6]]]]).tolist() == [[[[17]]], [[[39]]]]


def test_conv2d_hand_wrap_12_bits():
    one = lambda v: [[[[v]]]]  # noqa: E731
    assert conv2d(one(127), one(127), psum_width=12).tolist() == one(-255)     # 16129
    assert conv2d(one(-128), one(-128), psum_width=12).tolist() == one(0)      # 16384
    assert conv2d(one(-128), one(127), psum_width=12).tolist() == one(128)     # -16256
    assert conv2d(one(100), one(2), psum_width=8).tolist() == one(-56)         # 200
    # The bias wraps with the sum, not on its own.
    assert conv2d(one(100), one(20), bias=[2048], psum_width=12).tolist() == one(-48)


def test_conv2d_int64_overflow_still_wraps_right():
    # Four products of 2**62 overflow int64; modulo 2**32 the answer is still exact.
    x = np.full((1, 4, 1, 1), 2 ** 31, dtype=np.int64)
    w = np.full((1, 4, 1, 1), 2 ** 31, dtype=np.int64)
    w[0, 0, 0, 0] = 2 ** 31 + 3
    expected = ref_wrap(4 * 2 ** 62 + 3 * 2 ** 31, 32)
    assert conv2d(x, w, psum_width=32).tolist() == [[[[expected]]]]


def test_conv2d_dtype_and_shape():
    out = conv2d(np.zeros((2, 4, 7, 5), dtype=np.int8), np.ones((6, 2, 3, 2), dtype=np.int16),
                 stride=2, padding=1, groups=2)
    assert out.dtype == np.int64
    assert out.shape == (2, 6, 4, 3)


@pytest.mark.parametrize("kwargs", [
    dict(x=(1, 4, 5, 5), w=(6, 3, 3, 3), groups=1),         # C/groups mismatch
    dict(x=(1, 4, 5, 5), w=(6, 2, 3, 3), groups=1),         # C != groups * C/groups
    dict(x=(1, 4, 5, 5), w=(5, 2, 3, 3), groups=2),         # groups does not divide M
    dict(x=(1, 4, 2, 5), w=(6, 4, 3, 3), groups=1),         # filter taller than input
    dict(x=(1, 4, 5, 5), w=(6, 4, 3, 3), groups=1, stride=0),
    dict(x=(4, 5, 5), w=(6, 4, 3, 3), groups=1),            # not 4-D
    dict(x=(1, 4, 5, 5), w=(6, 4, 3, 3), groups=1, bias=(5,)),
])
def test_conv2d_rejects_mismatched_shapes(kwargs):
    x = np.zeros(kwargs.pop("x"), dtype=np.int64)
    w = np.zeros(kwargs.pop("w"), dtype=np.int64)
    if "bias" in kwargs:
        kwargs["bias"] = np.zeros(kwargs["bias"], dtype=np.int64)
    with pytest.raises(ValueError):
        conv2d(x, w, **kwargs)


def test_conv2d_rejects_floats():
    with pytest.raises(ValueError, match="integers"):
        conv2d(np.full((1, 1, 2, 2), 1.5), np.ones((1, 1, 1, 1), dtype=np.int64))
    with pytest.raises(ValueError, match="integers"):
        conv2d(np.ones((1, 1, 2, 2), dtype=np.int64), np.ones((1, 1, 1, 1), dtype=np.int64),
               bias=[0.5])


# --- conv2d: random against the reference --------------------------------------------------

def random_conv(rng, narrow=False):
    groups = int(rng.integers(1, 4))
    Cg, Mg = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    R, S = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    stride, padding = int(rng.integers(1, 5)), int(rng.integers(0, 3))
    H = int(rng.integers(max(1, R - 2 * padding), R + 6))
    W = int(rng.integers(max(1, S - 2 * padding), S + 6))
    N = int(rng.integers(1, 4))
    act_width, weight_width = [int(v) for v in rng.choice([4, 8, 16], size=2)]
    if narrow:   # narrower than one product: wraps all the time (psum_width=12 at 8-bit)
        psum_width = int(rng.integers(max(2, act_width + weight_width - 6),
                                      act_width + weight_width + 1))
    else:
        psum_width = int(rng.integers(act_width + weight_width, 49))
    ifmap = signed(rng, act_width, (N, groups * Cg, H, W))
    weights = signed(rng, weight_width, (groups * Mg, Cg, R, S))
    bias = signed(rng, psum_width + 2, groups * Mg) if rng.integers(2) else None
    return dict(ifmap=ifmap, weights=weights, stride=stride, padding=padding, groups=groups,
                bias=bias, psum_width=psum_width)


@pytest.mark.parametrize("narrow", [False, True], ids=["wide", "narrow"])
@pytest.mark.parametrize("seed", range(30))
def test_conv2d_random(seed, narrow):
    case = random_conv(np.random.default_rng([seed, int(narrow)]), narrow)
    got = conv2d(**case)
    bias = case["bias"].tolist() if case["bias"] is not None else None
    expected = ref_conv2d(case["ifmap"].tolist(), case["weights"].tolist(), case["stride"],
                          case["padding"], case["groups"], bias, case["psum_width"])
    assert got.dtype == np.int64
    assert got.tolist() == expected


def test_conv2d_narrow_psums_really_wrap():
    # 8-bit data with 12-bit psums: many psums differ from the exact sum.
    rng = np.random.default_rng(1234)
    x, w = signed(rng, 8, (2, 4, 6, 6)), signed(rng, 8, (4, 4, 3, 3))
    exact = conv2d(x, w, psum_width=64)
    wrapped = conv2d(x, w, psum_width=12)
    assert (exact != wrapped).mean() > 0.5
    assert ((exact - wrapped) % 4096 == 0).all()
    assert wrapped.min() >= -2048 and wrapped.max() <= 2047
    expected = ref_conv2d(x.tolist(), w.tolist(), 1, 0, 1, None, 12)
    assert wrapped.tolist() == expected


@pytest.mark.parametrize("seed", range(4))
def test_conv2d_groups_are_independent_layers(seed):
    rng = np.random.default_rng(seed)
    groups, Cg, Mg = 3, 2, 2
    x = signed(rng, 8, (2, groups * Cg, 6, 5))
    w = signed(rng, 8, (groups * Mg, Cg, 3, 2))
    bias = signed(rng, 16, groups * Mg)
    out = conv2d(x, w, stride=2, padding=1, groups=groups, bias=bias, psum_width=20)
    for g in range(groups):
        part = conv2d(x[:, g * Cg:(g + 1) * Cg], w[g * Mg:(g + 1) * Mg], stride=2, padding=1,
                      bias=bias[g * Mg:(g + 1) * Mg], psum_width=20)
        assert (out[:, g * Mg:(g + 1) * Mg] == part).all()


# --- conv1d_row ----------------------------------------------------------------------------

def test_conv1d_row_hand():
    filt = [[[1, 2]], [[-1, 1]]]            # p=2, q=1, S=2
    x = [[1, 2, 3, 4, 5]]                   # q=1, W=5
    assert conv1d_row(filt, x, 2, 2, 16).tolist() == [[5, 11], [1, 1]]
    assert conv1d_row(filt, x, 4, 1, 16).tolist() == [[5, 8, 11, 14], [1, 1, 1, 1]]
    assert conv1d_row(filt, x, 2, 2, 16, psum_in=[[10, 20], [0, -1]]).tolist() == \
        [[15, 31], [1, 0]]
    # Two channels accumulate into the same psum.
    filt2 = [[[1, 0], [0, 1]]]              # p=1, q=2, S=2
    x2 = [[1, 2, 3], [10, 20, 30]]
    assert conv1d_row(filt2, x2, 2, 1, 16).tolist() == [[21, 32]]
    # Wrapping: 100*2 + 100*2 = 400 -> 400 - 512 in 9 bits; psum_in wraps with the sum.
    assert conv1d_row([[[2, 2]]], [[100, 100]], 1, 1, 9).tolist() == [[-112]]
    assert conv1d_row([[[2, 2]]], [[100, 100]], 1, 1, 9, psum_in=[[112]]).tolist() == [[0]]


@pytest.mark.parametrize("seed", range(25))
def test_conv1d_row_random(seed):
    rng = np.random.default_rng(seed)
    p, q, S = (int(v) for v in rng.integers(1, 5, size=3))
    F, stride = int(rng.integers(1, 9)), int(rng.integers(1, 5))
    W = stride * (F - 1) + S + int(rng.integers(0, 3))   # sometimes longer than needed
    act_width, weight_width = [int(v) for v in rng.choice([4, 8, 16], size=2)]
    psum_width = int(rng.integers(act_width + weight_width - 4, 49))
    filt = signed(rng, weight_width, (p, q, S))
    x = signed(rng, act_width, (q, W))
    psum_in = signed(rng, psum_width, (p, F)) if rng.integers(2) else None
    got = conv1d_row(filt, x, F, stride, psum_width, psum_in)
    expected = ref_conv1d_row(filt.tolist(), x.tolist(), F, stride, psum_width,
                              None if psum_in is None else psum_in.tolist())
    assert got.shape == (p, F) and got.dtype == np.int64
    assert got.tolist() == expected


@pytest.mark.parametrize("seed", range(6))
def test_conv1d_rows_up_a_column_make_conv2d(seed):
    """The row-stationary decomposition: PE (r, e) convolves filter row r with ifmap row
    stride*e + r; the R psum rows of column e, passed up through psum_in, are ofmap row e."""
    rng = np.random.default_rng(seed)
    C, M, R, S = 3, 2, int(rng.integers(1, 4)), int(rng.integers(1, 4))
    stride = int(rng.integers(1, 4))
    H, W = R + int(rng.integers(0, 6)), S + int(rng.integers(0, 6))
    psum_width = 14
    x = signed(rng, 8, (1, C, H, W))
    w = signed(rng, 8, (M, C, R, S))
    bias = signed(rng, 12, M)
    expected = conv2d(x, w, stride=stride, bias=bias, psum_width=psum_width)[0]
    E, F = expected.shape[1:]
    for e in range(E):
        psum = np.repeat(bias[:, None], F, axis=1)
        for r in range(R):
            psum = conv1d_row(w[:, :, r, :], x[0, :, stride * e + r, :], F, stride,
                              psum_width, psum)
        assert (psum == expected[:, e, :]).all()


@pytest.mark.parametrize("args", [
    (np.ones((1, 1, 3)), np.ones((1, 5)), 4, 1),   # needs W >= 6
    (np.ones((1, 1, 2)), np.ones((1, 5)), 3, 2),   # needs W >= 6
    (np.ones((1, 1, 2)), np.ones((1, 1)), 1, 1),   # window wider than the row
    (np.ones((1, 2, 2)), np.ones((1, 5)), 2, 1),   # q mismatch
    (np.ones((1, 1, 2)), np.ones((1, 5)), 0, 1),   # no outputs
])
def test_conv1d_row_rejects_bad_shapes(args):
    filt, x, F, stride = args
    with pytest.raises(ValueError):
        conv1d_row(filt.astype(np.int64), x.astype(np.int64), F, stride, 16)


def test_conv1d_row_rejects_bad_psum_in():
    with pytest.raises(ValueError):
        conv1d_row([[[1]]], [[1, 2, 3]], 3, 1, 16, psum_in=[0, 0, 0])


# --- golden_layer --------------------------------------------------------------------------

def arch_for(act_width, weight_width, psum_width):
    glb = -(-psum_width // 8) * 8          # one psum per GLB word
    return PRESETS["tiny"].replace(
        act_width=act_width, weight_width=weight_width, psum_width=psum_width,
        glb_width=glb, dram_width=max(glb, 32),     # 32: an output header's beat count
        filter_bus_width=weight_width, ifmap_bus_width=act_width, psum_bus_width=psum_width)


def test_golden_layer_hand():
    arch = arch_for(8, 8, 16)
    layer = LayerSpec(N=1, C=1, H=3, W=3, M=2, R=2, S=2, shift=2, relu=True)
    w = [[[[1, 2], [3, 4]]], [[[-1, -2], [-3, -4]]]]
    # psums [[37, 47], [67, 77]] + 1 and their negatives; (p + 2) >> 2, then ReLU.
    out = golden_layer(arch, layer, np.array(X3), np.array(w), bias=np.array([1, -1]))
    assert out.tolist() == [[[[10, 12], [17, 20]], [[0, 0], [0, 0]]]]
    layer = LayerSpec(N=1, C=1, H=3, W=3, M=2, R=2, S=2, shift=0)
    out = golden_layer(arch, layer, np.array(X3) * 10, np.array(w), bias=np.array([1, -1]))
    assert out.tolist() == [[[[127, 127], [127, 127]], [[-128, -128], [-128, -128]]]]
    layer = LayerSpec(N=1, C=1, H=3, W=3, M=2, R=2, S=2)   # no shift: raw psums
    out = golden_layer(arch, layer, np.array(X3) * 10, np.array(w))
    assert out.tolist() == [[[[370, 470], [670, 770]], [[-370, -470], [-670, -770]]]]


@pytest.mark.parametrize("seed", range(25))
def test_golden_layer_random(seed):
    rng = np.random.default_rng(seed)
    act_width, weight_width = [int(v) for v in rng.choice([4, 8, 16], size=2)]
    # Mostly the narrowest legal psum (act + weight), so sums of several products wrap.
    psum_width = act_width + weight_width + int(rng.choice([0, 0, 1, 4, 16]))
    psum_width = min(psum_width, 48)
    arch = arch_for(act_width, weight_width, psum_width)
    groups = int(rng.integers(1, 4))
    R, S = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    padding = int(rng.integers(0, 3))
    layer = LayerSpec(
        N=int(rng.integers(1, 3)), C=groups * int(rng.integers(1, 4)),
        H=int(rng.integers(max(1, R - 2 * padding), R + 5)),
        W=int(rng.integers(max(1, S - 2 * padding), S + 5)),
        M=groups * int(rng.integers(1, 4)), R=R, S=S, stride=int(rng.integers(1, 5)),
        padding=padding, groups=groups, relu=bool(rng.integers(2)),
        shift=[None, 0, 1, 2, 3, 7, psum_width - act_width][int(rng.integers(7))])
    ifmap = signed(rng, act_width, layer.ifmap_shape)
    weights = signed(rng, weight_width, layer.weight_shape)
    bias = signed(rng, psum_width, layer.M) if rng.integers(2) else None
    got = golden_layer(arch, layer, ifmap, weights, bias)
    psums = ref_conv2d(ifmap.tolist(), weights.tolist(), layer.stride, layer.padding,
                       layer.groups, None if bias is None else bias.tolist(), psum_width)
    expected = ref_output_nested(psums, act_width, layer.shift, layer.relu)
    assert got.shape == layer.ofmap_shape and got.dtype == np.int64
    assert got.tolist() == expected


def test_golden_layer_rejects_wrong_shapes_and_ranges():
    arch = arch_for(8, 8, 24)
    layer = LayerSpec(N=1, C=2, H=4, W=4, M=2, R=3, S=3, groups=2)
    x = np.zeros(layer.ifmap_shape, dtype=np.int64)
    w = np.zeros(layer.weight_shape, dtype=np.int64)
    golden_layer(arch, layer, x, w)
    golden_layer(arch, layer, x - 128, w + 127)          # the extremes are fine
    with pytest.raises(ValueError, match="ifmap"):
        golden_layer(arch, layer, np.zeros((1, 2, 4, 5), dtype=np.int64), w)
    with pytest.raises(ValueError, match="weights"):
        golden_layer(arch, layer, x, np.zeros((2, 2, 3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="ifmap"):
        golden_layer(arch, layer, x + 128, w)
    with pytest.raises(ValueError, match="weights"):
        golden_layer(arch, layer, x, w - 129)
    with pytest.raises(ValueError, match="integers"):
        golden_layer(arch, layer, x + 0.5, w)
    with pytest.raises(ValueError, match="bias"):
        golden_layer(arch, layer, x, w, bias=np.zeros(3, dtype=np.int64))
