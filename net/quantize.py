"""Per-tensor symmetric power-of-two quantization of a :class:`~rowstat.net.graph.Network`.

Every tensor ``t`` is held as integers ``q`` with ``t ~ q * 2**-frac``: activations in
``act_bits``-bit words, weights in ``weight_bits``-bit words, biases at the accumulator's scale
``2**-(frac_in + frac_w)``. ``frac`` is the largest that keeps the tensor's range (from a
calibration set, or from the scales of a QDQ graph) within the word. Because scales are powers
of two, requantizing a layer's accumulator to its output's scale is an arithmetic shift by
``frac_in + frac_w - frac_out`` with rounding: exactly what the accelerator's output stage
(bias, shift with rounding, clamp, ReLU) does, so every layer runs whole on the accelerator.

A network that ends in a layer without ReLU (the logits) gets that layer's raw psums
(``shift`` None), read as ``psum * 2**-(frac_in + frac_w)``.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from ..gen.errors import RowstatError
from ..gen.layer import LayerSpec
from .graph import AccelOp, HostOp, op_shape
from .host import float_layer, run_host_op

__all__ = ["QLayer", "QNetwork", "quantize", "frac_for", "quantize_tensor", "float_forward",
           "layer_specs"]

#: Fraction bits are kept to this range (a zero tensor would ask for infinitely many).
_FRAC_LIMIT = 40


@dataclass
class QLayer:
    """One accelerator layer of a quantized network.

    ``spec`` has N=1 (the batch is set when the network runs); ``weight`` (M, C/groups, R, S)
    and ``bias`` (M,) are integers; ``frac_in``, ``frac_w`` and ``frac_out`` are the scales'
    exponents (``frac_out`` = ``frac_in + frac_w`` for raw psums).
    """

    name: str
    kind: str
    spec: LayerSpec
    weight: np.ndarray = field(repr=False)
    bias: np.ndarray = field(repr=False)
    frac_in: int
    frac_w: int
    frac_out: int


@dataclass
class QNetwork:
    """A quantized network: :class:`QLayer` and :class:`~rowstat.net.graph.HostOp` in order."""

    name: str
    input_name: str
    input_shape: tuple
    ops: list
    frac_in: int
    frac_out: int
    act_bits: int
    weight_bits: int

    @property
    def layers(self):
        return [op for op in self.ops if isinstance(op, QLayer)]


def frac_for(magnitude, bits):
    """The largest ``frac`` with ``magnitude * 2**frac <= 2**(bits-1) - 1``."""
    qmax = (1 << (bits - 1)) - 1
    if not magnitude > 0:
        return _FRAC_LIMIT
    return max(-_FRAC_LIMIT, min(_FRAC_LIMIT, math.floor(math.log2(qmax / magnitude))))


def quantize_tensor(x, frac, bits):
    """Round ``x * 2**frac`` half up and clamp to signed ``bits``-bit integers (int64)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(np.floor(np.asarray(x, dtype=np.float64) * 2.0 ** frac + 0.5), lo,
                   hi).astype(np.int64)


def float_forward(net, x, collect=None):
    """Run ``net`` in float64 on the batch ``x``; with a dict ``collect``, store each op's
    output's largest magnitude under its index."""
    y = np.asarray(x, dtype=np.float64)
    for i, op in enumerate(net.ops):
        y = float_layer(op, y) if isinstance(op, AccelOp) else run_host_op(op, y)
        if collect is not None:
            collect[i] = float(np.abs(y).max()) if y.size else 0.0
    return y


def raw_output(ops):
    """Whether the last layer gives raw psums: the network ends in it and it has no ReLU."""
    return bool(ops) and isinstance(ops[-1], AccelOp) and not ops[-1].relu


def check_input(net, x, option="--input"):
    """``x`` as float64 (N, *input_shape) of ``net`` (a Network or QNetwork), or RowstatError
    naming the shape expected."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise RowstatError(f"bad value for {option}: an array of {x.dtype}; allowed: numbers")
    if x.ndim != len(net.input_shape) + 1 or tuple(x.shape[1:]) != tuple(net.input_shape) \
            or x.shape[0] < 1:
        raise RowstatError(f"bad value for {option}: an array of shape {x.shape}; allowed: "
                           f"(N, {', '.join(map(str, net.input_shape))}) for the graph input "
                           f"{net.input_name!r}")
    return x.astype(np.float64)


def quantize(net, calibration=None, *, act_bits=8, weight_bits=8):
    """A :class:`QNetwork` of ``net``.

    Ranges come from the QDQ scales of a quantized graph where it has them, else from running
    ``net`` in float on ``calibration`` (N, *input_shape). Non-power-of-two QDQ scales are
    widened to the next power of two (the accelerator requantizes by shifting).
    """
    for name, bits in (("act_bits", act_bits), ("weight_bits", weight_bits)):
        if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16:
            raise RowstatError(f"bad value for {name}: {bits!r}; allowed: an integer from 2 "
                               f"to 16")
    ranges = {}
    in_range = net.act_ranges.get(net.input_name)
    need = [i for i, op in enumerate(net.ops) if isinstance(op, AccelOp)
            and op.out_tensor not in net.act_ranges]
    if calibration is not None:
        x = check_input(net, calibration, "--calibration")
        float_forward(net, x, ranges)
        if in_range is None:
            in_range = float(np.abs(x).max())
    elif in_range is None or (need and not (raw_output(net.ops) and need == [len(net.ops) - 1])):
        raise RowstatError(f"network {net.name!r} needs a calibration set (--calibration): "
                           f"it is a float graph without QDQ scales")
    frac = frac_for(in_range, act_bits)
    q = QNetwork(name=net.name, input_name=net.input_name, input_shape=tuple(net.input_shape),
                 ops=[], frac_in=frac, frac_out=frac, act_bits=act_bits,
                 weight_bits=weight_bits)
    shape = tuple(net.input_shape)
    last = len(net.ops) - 1
    for i, op in enumerate(net.ops):
        out_shape = op_shape(op, shape)
        if isinstance(op, HostOp):
            q.ops.append(op)
            shape = out_shape
            continue
        frac_w = frac_for(float(np.abs(op.weight).max()), weight_bits)
        w = quantize_tensor(op.weight, frac_w, weight_bits)
        acc = frac + frac_w
        b = np.floor(op.bias * 2.0 ** acc + 0.5).astype(np.int64)
        if i == last and raw_output(net.ops):
            shift, frac_out = None, acc
        else:
            rng = net.act_ranges.get(op.out_tensor, ranges.get(i))
            frac_out = frac_for(rng, act_bits)
            shift = acc - frac_out
            if shift < 0:                       # finer than the accumulator: nothing to gain
                shift, frac_out = 0, acc
        spec = _spec(op, shape, shift)
        q.ops.append(QLayer(name=op.name, kind=op.kind, spec=spec, weight=w, bias=b,
                            frac_in=frac, frac_w=frac_w, frac_out=frac_out))
        frac = frac_out
        shape = out_shape
    q.frac_out = frac
    return q


def _spec(op, shape, shift):
    if op.kind == "gemm":
        C, H, W = shape[0], 1, 1
    else:
        C, H, W = shape
    M, _, R, S = op.weight.shape
    return LayerSpec(N=1, C=C, H=H, W=W, M=M, R=R, S=S, stride=op.stride, padding=op.padding,
                     groups=op.groups, relu=op.relu, shift=shift)


def layer_specs(net, batch=1, shift=8):
    """{layer name: LayerSpec} of ``net``'s accelerator layers at ``batch``, without data: each
    layer requantized with ``shift`` (its value does not change the cost), and a final layer
    without ReLU giving raw psums, as :func:`quantize` makes them."""
    import dataclasses
    out, shape = {}, tuple(net.input_shape)
    last = len(net.ops) - 1
    for i, op in enumerate(net.ops):
        if isinstance(op, AccelOp):
            s = None if i == last and raw_output(net.ops) else shift
            name = op.name
            while name in out:
                name += "_"
            out[name] = dataclasses.replace(_spec(op, shape, s), N=batch)
        shape = op_shape(op, shape)
    return out
