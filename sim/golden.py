"""The golden model: exact integer convolution with the arithmetic the hardware implements.

psum = bias + sum(ifmap * weight), held as a signed psum_width-bit two's-complement number
(it wraps); then, if the layer has a shift, round half up, arithmetic shift and clamp to the
activation width; then ReLU if asked.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["wrap", "conv1d_row", "conv2d", "output_stage", "golden_layer"]


def _ints(a, name):
    """``a`` as an int64 array; refuses floats and other non-integer data, which
    ``astype(int64)`` would silently truncate."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, not {a.dtype}")
    return a.astype(np.int64)


def wrap(x, width):
    """Wrap integers to signed ``width``-bit two's complement (works on int64 arrays).

    numpy's int64 arithmetic wraps modulo 2**64, and 2**width divides 2**64, so sums that
    overflowed int64 still wrap to the right value here.
    """
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or \
            not 1 <= width <= 64:
        raise ValueError(f"width must be an integer from 1 to 64, not {width!r}")
    x = np.asarray(x, dtype=np.int64)
    if width == 64:
        return x.copy()
    mask = np.int64((1 << width) - 1)
    sign = np.int64(1 << (width - 1))
    return ((x & mask) ^ sign) - sign


def conv1d_row(filter_rows, ifmap_rows, F, stride, psum_width, psum_in=None):
    """The 1-D primitive of one PE with p filters and q channels interleaved.

    filter_rows: (p, q, S); ifmap_rows: (q, W) with W >= stride*(F-1) + S;
    psum_in: (p, F) or None. Returns (p, F) psums wrapped to psum_width.
    """
    w = _ints(filter_rows, "filter_rows")
    x = _ints(ifmap_rows, "ifmap_rows")
    if w.ndim != 3 or x.ndim != 2 or x.shape[0] != w.shape[1]:
        raise ValueError(f"filter_rows (p, q, S) {w.shape} and ifmap_rows (q, W) {x.shape} "
                         f"do not match")
    p, q, S = w.shape
    if F < 1 or stride < 1 or x.shape[1] < stride * (F - 1) + S:
        raise ValueError(f"F={F} outputs at stride {stride} need W >= stride*(F-1) + S = "
                         f"{stride * (F - 1) + S}, not {x.shape[1]}")
    windows = sliding_window_view(x, S, axis=1)[:, : stride * (F - 1) + 1 : stride, :]  # q,F,S
    out = np.einsum("qfs,pqs->pf", windows, w)
    if psum_in is not None:
        psum_in = _ints(psum_in, "psum_in")
        if psum_in.shape != (p, F):
            raise ValueError(f"psum_in must have shape ({p}, {F}), not {psum_in.shape}")
        out = out + psum_in
    return wrap(out, psum_width)


def conv2d(ifmap, weights, stride=1, padding=0, groups=1, bias=None, psum_width=32):
    """Grouped, strided, padded 2-D convolution; returns raw psums (N, M, E, F) wrapped."""
    x = _ints(ifmap, "ifmap")
    w = _ints(weights, "weights")
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"ifmap (N, C, H, W) {x.shape} and weights (M, C/groups, R, S) "
                         f"{w.shape} must be 4-D")
    N, C, H, W = x.shape
    M, Cg, R, S = w.shape
    if groups < 1 or M % groups or C != Cg * groups:
        raise ValueError(f"groups={groups} must divide M={M}, and C={C} must equal "
                         f"groups * C/groups = {groups} * {Cg}")
    if stride < 1 or padding < 0 or H + 2 * padding < R or W + 2 * padding < S:
        raise ValueError(f"a {R}x{S} filter at stride {stride} and padding {padding} does not "
                         f"fit a {H}x{W} ifmap")
    if bias is not None:
        bias = _ints(bias, "bias")
        if bias.shape != (M,):
            raise ValueError(f"bias must have shape ({M},), not {bias.shape}")
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = sliding_window_view(x, (R, S), axis=(2, 3))[:, :, ::stride, ::stride]  # N,C,E,F,R,S
    Mg = M // groups
    outs = []
    for g in range(groups):
        xg = windows[:, g * Cg:(g + 1) * Cg]
        wg = w[g * Mg:(g + 1) * Mg]
        outs.append(np.einsum("ncefrs,mcrs->nmef", xg, wg, optimize=True))
    out = np.concatenate(outs, axis=1)
    if bias is not None:
        out = out + bias.reshape(1, M, 1, 1)
    return wrap(out, psum_width)


def output_stage(psum, act_width, shift=None, relu=False):
    """Requantize (if shift is not None) and apply ReLU, exactly as the hardware does."""
    out = np.asarray(psum, dtype=np.int64)
    if shift is not None:
        if not 0 <= shift <= 62 or act_width < 1:
            raise ValueError(f"shift must be from 0 to 62 and act_width >= 1, not "
                             f"shift={shift!r}, act_width={act_width!r}")
        rounding = (1 << (shift - 1)) if shift > 0 else 0
        out = (out + rounding) >> shift
        out = np.clip(out, -(1 << (act_width - 1)), (1 << (act_width - 1)) - 1)
    if relu:
        out = np.maximum(out, 0)
    return out


def golden_layer(arch, layer, ifmap, weights, bias=None):
    """The ofmap (N, M, E, F) int64 that the accelerator must produce for ``layer``.

    The ifmap and weights must have the layer's shapes and fit the signed act_width and
    weight_width words of ``arch`` (the hardware could not hold anything else); bias, shape
    (M,), is added to the psum and wraps with it.
    """
    for name, data, shape, width in (("ifmap", ifmap, layer.ifmap_shape, arch.act_width),
                                     ("weights", weights, layer.weight_shape,
                                      arch.weight_width)):
        data = _ints(data, name)
        if data.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, not {data.shape}")
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        if data.size and (data.min() < lo or data.max() > hi):
            raise ValueError(f"{name} values must fit {width}-bit signed words "
                             f"({lo}..{hi}), not {data.min()}..{data.max()}")
    psum = conv2d(ifmap, weights, layer.stride, layer.padding, layer.groups, bias,
                  arch.psum_width)
    return output_stage(psum, arch.act_width, layer.shift, layer.relu)
