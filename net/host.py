"""The host operations between accelerator layers, in NumPy, on float or integer tensors.

On integers (quantized activations) pooling keeps the input's scale: a max is exact, and an
average rounds half up, as the accelerator's output stage does.
"""

import numpy as np

__all__ = ["run_host_op", "float_layer"]


def _pool(x, kind, kernel, stride, pads, count_include_pad):
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = kernel, stride, pads
    ints = x.dtype.kind in "iu"
    if kind == "maxpool":
        fill = np.iinfo(np.int64).min if ints else -np.inf
    else:
        fill = 0
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    if kind == "maxpool":
        return win.max(axis=(4, 5))
    total = win.sum(axis=(4, 5))
    if count_include_pad:
        count = np.full(total.shape[2:], kh * kw, dtype=np.int64)
    else:
        ones = np.pad(np.ones(x.shape[2:], dtype=np.int64), ((pt, pb), (pl, pr)))
        count = np.lib.stride_tricks.sliding_window_view(ones, (kh, kw))[::sh, ::sw].sum(
            axis=(2, 3))
    return _mean(total, count, ints)


def _mean(total, count, ints):
    if not ints:
        return total / count
    # round half up: floor((2 * total + count) / (2 * count))
    return (2 * total + count) // (2 * count)


def run_host_op(op, x):
    """Apply the :class:`~rowstat.net.graph.HostOp` ``op`` to a batch ``x``."""
    if op.kind in ("maxpool", "avgpool"):
        return _pool(x, op.kind, **op.attrs)
    if op.kind == "gap":
        total = x.sum(axis=(2, 3), keepdims=True)
        return _mean(total, x.shape[2] * x.shape[3], x.dtype.kind in "iu")
    if op.kind == "reshape":
        return x.reshape((x.shape[0],) + tuple(op.attrs["shape"]))
    if op.kind == "relu":
        return np.maximum(x, 0)
    raise ValueError(f"unknown host op kind {op.kind!r}")


def float_layer(op, x):
    """The float result of the :class:`~rowstat.net.graph.AccelOp` ``op`` on a batch ``x``
    (ReLU included): the reference the quantizer calibrates on."""
    from numpy.lib.stride_tricks import sliding_window_view
    w = op.weight
    if op.kind == "gemm":
        x = x.reshape(x.shape[0], -1, 1, 1)
    p = op.padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
    M, Cg, R, S = w.shape
    win = sliding_window_view(xp, (R, S), axis=(2, 3))[:, :, ::op.stride, ::op.stride]
    Mg = M // op.groups
    outs = [np.einsum("ncefrs,mcrs->nmef", win[:, g * Cg:(g + 1) * Cg],
                      w[g * Mg:(g + 1) * Mg], optimize=True) for g in range(op.groups)]
    y = np.concatenate(outs, axis=1) + op.bias.reshape(1, -1, 1, 1)
    if op.relu:
        y = np.maximum(y, 0)
    if op.kind == "gemm":
        y = y.reshape(y.shape[0], -1)
    return y
