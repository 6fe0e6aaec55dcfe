"""ONNX graphs as rowstat networks: a chain of accelerator layers and host operations.

:func:`load` reads an ONNX file (or a ``ModelProto``) into a :class:`Network` of float
operations in graph order:

* :class:`AccelOp`: a convolution the accelerator runs. ``Conv`` (stride, symmetric padding,
  groups, bias) and ``Gemm``/``MatMul`` (a 1 x 1 convolution of a (N, K, 1, 1) ifmap), with a
  following ``BatchNormalization`` folded into the weights and bias, a following ``Add`` of a
  constant taken as the bias, and a following ``Relu`` fused into the output stage.
* :class:`HostOp`: what runs in NumPy between accelerator layers: ``MaxPool``,
  ``AveragePool``, ``GlobalAveragePool``, ``Flatten``/``Reshape``, and a ``Relu`` that does not
  follow a layer.

Quantized graphs in QDQ form (``QuantizeLinear``/``DequantizeLinear``, as
``onnxruntime.quantization`` writes them) are read too: a ``DequantizeLinear`` of a constant
gives the float weights, and a ``QuantizeLinear`` of an activation records its scale in
:attr:`Network.act_ranges` (the range ``scale * qmax`` stands in for calibration).

The graph must be a chain: every operation reads the previous one's output. Anything else
raises :class:`OnnxError` naming the operator and the node.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..gen.errors import RowstatError

__all__ = ["OnnxError", "AccelOp", "HostOp", "Network", "load", "SUPPORTED_OPS"]

#: Operators :func:`load` reads.
SUPPORTED_OPS = ("Conv", "Gemm", "MatMul", "Add", "BatchNormalization", "Relu", "MaxPool",
                 "AveragePool", "GlobalAveragePool", "Flatten", "Reshape", "QuantizeLinear",
                 "DequantizeLinear", "Constant", "Identity", "Dropout")


class OnnxError(RowstatError, ValueError):
    """An ONNX model rowstat cannot run: names the file, node or operator and why."""


@dataclass
class AccelOp:
    """A convolution on the accelerator, float weights (M, C/groups, R, S) and bias (M,).

    ``kind`` is ``"conv"`` or ``"gemm"`` (a Gemm/MatMul: the ifmap is (N, K) and runs as
    (N, K, 1, 1)). ``out_tensor`` is the ONNX tensor the layer's output (after ReLU) is.
    """

    name: str
    kind: str
    weight: np.ndarray = field(repr=False)
    bias: np.ndarray = field(repr=False)
    stride: int = 1
    padding: int = 0
    groups: int = 1
    relu: bool = False
    out_tensor: str = ""

    @property
    def M(self):
        return self.weight.shape[0]


@dataclass
class HostOp:
    """A NumPy operation between accelerator layers.

    ``kind`` is ``maxpool`` / ``avgpool`` (attrs ``kernel`` (kh, kw), ``stride`` (sh, sw),
    ``pads`` (top, left, bottom, right), ``count_include_pad``), ``gap`` (global average
    pool), ``reshape`` (attr ``shape``: per-image shape) or ``relu``.
    """

    name: str
    kind: str
    attrs: dict = field(default_factory=dict)
    out_tensor: str = ""


@dataclass
class Network:
    """A chain of :class:`AccelOp` and :class:`HostOp` from an ONNX graph.

    Attributes
    ----------
    name : str
    input_name : str
    input_shape : tuple
        Per image (no batch dimension), e.g. (1, 8, 8).
    ops : list
    output_name : str
    act_ranges : dict
        Tensor name -> largest magnitude, from the QDQ nodes of a quantized graph (empty for
        a float graph).
    """

    name: str
    input_name: str
    input_shape: tuple
    ops: list
    output_name: str
    act_ranges: dict = field(default_factory=dict)

    @property
    def layers(self):
        return [op for op in self.ops if isinstance(op, AccelOp)]

    def shapes(self):
        """Per-image output shape of every op, in order (checks that the chain fits)."""
        shape, out = tuple(self.input_shape), []
        for op in self.ops:
            shape = op_shape(op, shape)
            out.append(shape)
        return out


# --- shapes -------------------------------------------------------------------------------------

def _pool_out(size, k, s, p0, p1):
    return (size + p0 + p1 - k) // s + 1


def op_shape(op, shape):
    """Per-image output shape of ``op`` for a per-image input ``shape``; raises OnnxError."""
    if isinstance(op, AccelOp):
        M, Cg, R, S = op.weight.shape
        if op.kind == "gemm":
            if len(shape) != 1 or shape[0] != Cg:
                raise OnnxError(f"node {op.name!r} (Gemm): input of shape {shape} per image; "
                                f"allowed: ({Cg},), the weights' K")
            return (M,)
        if len(shape) != 3 or shape[0] != Cg * op.groups:
            raise OnnxError(f"node {op.name!r} (Conv): input of shape {shape} per image; "
                            f"allowed: ({Cg * op.groups}, H, W)")
        C, H, W = shape
        E = (H + 2 * op.padding - R) // op.stride + 1
        F = (W + 2 * op.padding - S) // op.stride + 1
        if E < 1 or F < 1:
            raise OnnxError(f"node {op.name!r} (Conv): a {R}x{S} filter does not fit a "
                            f"{H}x{W} input with padding {op.padding}")
        return (M, E, F)
    if op.kind in ("maxpool", "avgpool"):
        if len(shape) != 3:
            raise OnnxError(f"node {op.name!r}: pooling needs a (C, H, W) input, not {shape}")
        (kh, kw), (sh, sw), (pt, pl, pb, pr) = op.attrs["kernel"], op.attrs["stride"], \
            op.attrs["pads"]
        E, F = _pool_out(shape[1], kh, sh, pt, pb), _pool_out(shape[2], kw, sw, pl, pr)
        if E < 1 or F < 1:
            raise OnnxError(f"node {op.name!r}: a {kh}x{kw} window does not fit a "
                            f"{shape[1]}x{shape[2]} input")
        return (shape[0], E, F)
    if op.kind == "gap":
        if len(shape) != 3:
            raise OnnxError(f"node {op.name!r}: GlobalAveragePool needs (C, H, W), not {shape}")
        return (shape[0], 1, 1)
    if op.kind == "reshape":
        new = tuple(op.attrs["shape"])
        if int(np.prod(new)) != int(np.prod(shape)):
            raise OnnxError(f"node {op.name!r}: cannot reshape {shape} to {new}")
        return new
    return shape                                     # relu


# --- loading ------------------------------------------------------------------------------------

def _onnx():
    import onnx
    return onnx


def _load_proto(source):
    onnx = _onnx()
    if isinstance(source, onnx.ModelProto):
        return source, source.graph.name or "network"
    path = Path(source)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise OnnxError(f"bad value for --onnx: {str(path)!r}; allowed: an existing .onnx "
                        f"file") from None
    except OSError as exc:
        raise OnnxError(f"bad value for --onnx: {str(path)!r}; allowed: a readable ONNX file "
                        f"({exc.strerror or exc})") from None
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise OnnxError(f"bad value for --onnx: {str(path)!r}; allowed: an ONNX model file "
                        f"(it does not parse: {type(exc).__name__})") from None
    if not model.graph.node:
        raise OnnxError(f"bad value for --onnx: {str(path)!r}; allowed: an ONNX model file "
                        f"(it has no graph nodes)")
    return model, model.graph.name or path.stem


def _attrs(node):
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _node_name(node, index):
    return node.name or f"{node.op_type}_{index}"


class _Reader:
    """Walks the graph's nodes in order, keeping the one activation tensor of the chain."""

    def __init__(self, model, name):
        onnx = _onnx()
        from onnx import numpy_helper
        graph = model.graph
        self.consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise OnnxError(f"graph {name!r} has {len(inputs)} data inputs "
                            f"({', '.join(i.name for i in inputs)}); allowed: exactly one")
        if len(graph.output) != 1:
            raise OnnxError(f"graph {name!r} has {len(graph.output)} outputs; allowed: exactly one")
        inp = inputs[0]
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in inp.type.tensor_type.shape.dim]
        if len(dims) < 2 or any(d is None or d < 1 for d in dims[1:]):
            raise OnnxError(f"graph input {inp.name!r} has shape {dims}; allowed: a batch "
                            f"dimension then fixed sizes, e.g. [N, C, H, W]")
        if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise OnnxError(f"graph input {inp.name!r} is not float32; allowed: a float input "
                            f"(rowstat quantizes it)")
        self.net = Network(name=name, input_name=inp.name, input_shape=tuple(dims[1:]),
                           ops=[], output_name=graph.output[0].name)
        self.current = inp.name
        self.shape = tuple(dims[1:])

    def const(self, node, i, what):
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            return None
        if name not in self.consts:
            raise OnnxError(f"node {node.name or node.op_type!r} ({node.op_type}): {what} "
                            f"{name!r} is not a constant; allowed: weights stored in the graph")
        return self.consts[name]

    def data_input(self, node, name):
        """Check ``node`` reads the chain's current tensor as its first input."""
        if not node.input or node.input[0] != self.current:
            got = node.input[0] if node.input else "nothing"
            raise OnnxError(f"node {name!r} ({node.op_type}) reads {got!r}, not the previous "
                            f"operation's output {self.current!r}; allowed: a chain of "
                            f"operations (no branches or skip connections)")

    def last_accel(self):
        """The last op, if it is an AccelOp whose output is the current tensor, else None."""
        ops = self.net.ops
        if ops and isinstance(ops[-1], AccelOp) and ops[-1].out_tensor == self.current:
            return ops[-1]
        return None

    def push(self, op, out):
        self.shape = op_shape(op, self.shape)
        op.out_tensor = out
        self.net.ops.append(op)
        self.current = out

    def rename(self, out, keep_range=True):
        """The current tensor goes on under the name ``out`` (a pass-through op, or one fused
        into the last layer): the last op's output and a recorded range follow it."""
        ops = self.net.ops
        if ops and ops[-1].out_tensor == self.current:
            ops[-1].out_tensor = out
        if keep_range and self.current in self.net.act_ranges:
            self.net.act_ranges[out] = self.net.act_ranges[self.current]
        self.current = out


def _scale_and_zero(reader, node, name):
    scale = reader.const(node, 1, "scale")
    zero = reader.const(node, 2, "zero point")
    if scale is None or np.size(scale) != 1:
        raise OnnxError(f"node {name!r} ({node.op_type}): per-channel scales; allowed: one "
                        f"scale per tensor")
    return float(np.asarray(scale).reshape(())), zero


def _pads(node, name, attrs, k, stride, shape_hw):
    """(top, left, bottom, right) of a Conv/pool node, resolving auto_pad."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", ""):
        p = list(attrs.get("pads", [0, 0, 0, 0]))
        if len(p) != 4:
            raise OnnxError(f"node {name!r} ({node.op_type}): pads {p}; allowed: 2-D pads")
        return p[0], p[1], p[2], p[3]
    if auto == "VALID":
        return 0, 0, 0, 0
    out = []
    for size, kk, s in zip(shape_hw, k, stride):
        total = max(0, (-(-size // s) - 1) * s + kk - size)
        out.append((total // 2, total - total // 2) if auto == "SAME_UPPER"
                   else (total - total // 2, total // 2))
    (t, b), (l, r) = out
    return t, l, b, r


def _conv(reader, node, name):
    a = _attrs(node)
    w = reader.const(node, 1, "weight")
    if w is None or w.ndim != 4:
        raise OnnxError(f"node {name!r} (Conv): weights of shape "
                        f"{None if w is None else w.shape}; allowed: 2-D convolution (M, C, R, S)")
    b = reader.const(node, 2, "bias")
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise OnnxError(f"node {name!r} (Conv): dilations {a['dilations']}; allowed: 1")
    stride = list(a.get("strides", [1, 1]))
    if stride[0] != stride[1]:
        raise OnnxError(f"node {name!r} (Conv): strides {stride}; allowed: equal in H and W "
                        f"(a LayerSpec has one stride)")
    if len(reader.shape) != 3:
        raise OnnxError(f"node {name!r} (Conv): input of shape {reader.shape} per image; "
                        f"allowed: (C, H, W)")
    t, l, bo, r = _pads(node, name, a, w.shape[2:], stride, reader.shape[1:])
    if not t == l == bo == r:
        raise OnnxError(f"node {name!r} (Conv): pads {[t, l, bo, r]}; allowed: the same "
                        f"padding on all four sides (a LayerSpec has one padding)")
    M = w.shape[0]
    op = AccelOp(name=name, kind="conv", weight=w.astype(np.float64),
                 bias=np.zeros(M) if b is None else b.astype(np.float64).reshape(M),
                 stride=int(stride[0]), padding=int(t), groups=int(a.get("group", 1)))
    reader.push(op, node.output[0])


def _gemm(reader, node, name):
    a = _attrs(node)
    if node.op_type == "MatMul":
        wmat, bias, alpha, beta, trans_a = reader.const(node, 1, "weight"), None, 1.0, 1.0, 0
        if wmat is None or wmat.ndim != 2:
            raise OnnxError(f"node {name!r} (MatMul): a constant 2-D right operand is needed")
    else:
        wmat = reader.const(node, 1, "weight")
        if wmat is None or wmat.ndim != 2:
            raise OnnxError(f"node {name!r} (Gemm): a constant 2-D B is needed")
        if a.get("transB", 0):
            wmat = wmat.T
        bias = reader.const(node, 2, "bias")
        alpha, beta, trans_a = a.get("alpha", 1.0), a.get("beta", 1.0), a.get("transA", 0)
    if trans_a:
        raise OnnxError(f"node {name!r} ({node.op_type}): transA=1; allowed: 0")
    K, M = wmat.shape
    b = np.zeros(M) if bias is None else np.broadcast_to(
        np.asarray(bias, dtype=np.float64).reshape(-1), (M,)) * beta
    op = AccelOp(name=name, kind="gemm",
                 weight=(alpha * wmat.T.astype(np.float64)).reshape(M, K, 1, 1),
                 bias=np.array(b, dtype=np.float64))
    reader.push(op, node.output[0])


def _pool(reader, node, name):
    a = _attrs(node)
    if node.op_type == "GlobalAveragePool":
        reader.push(HostOp(name, "gap"), node.output[0])
        return
    k = tuple(a.get("kernel_shape", ()))
    if len(k) != 2:
        raise OnnxError(f"node {name!r} ({node.op_type}): kernel_shape {list(k)}; allowed: 2-D")
    if a.get("ceil_mode", 0):
        raise OnnxError(f"node {name!r} ({node.op_type}): ceil_mode=1; allowed: 0")
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise OnnxError(f"node {name!r} ({node.op_type}): dilations; allowed: 1")
    stride = tuple(a.get("strides", (1, 1)))
    if len(reader.shape) != 3:
        raise OnnxError(f"node {name!r} ({node.op_type}): input of shape {reader.shape}; "
                        f"allowed: (C, H, W)")
    pads = _pads(node, name, a, k, stride, reader.shape[1:])
    kind = "maxpool" if node.op_type == "MaxPool" else "avgpool"
    attrs = {"kernel": k, "stride": stride, "pads": tuple(int(p) for p in pads),
             "count_include_pad": bool(a.get("count_include_pad", 0))}
    reader.push(HostOp(name, kind, attrs), node.output[0])


def _reshape(reader, node, name):
    if node.op_type == "Flatten":
        axis = _attrs(node).get("axis", 1)
        if axis != 1:
            raise OnnxError(f"node {name!r} (Flatten): axis={axis}; allowed: 1 (keep the batch)")
        shape = (int(np.prod(reader.shape)),)
    else:
        target = reader.const(node, 1, "shape")
        target = [] if target is None else [int(v) for v in np.asarray(target).reshape(-1)]
        rest = [reader.shape[i] if v == 0 and i < len(reader.shape) else v
                for i, v in enumerate(target[1:])]
        if not target or target[0] not in (0, -1) or rest.count(-1) > (target[0] == 0) \
                or any(v < -1 or v == 0 for v in rest):
            raise OnnxError(f"node {name!r} (Reshape): shape {target}; allowed: the batch "
                            f"dimension (0 or -1) first, then sizes with at most one -1")
        size = int(np.prod(reader.shape))
        if -1 in rest:
            known = int(np.prod([v for v in rest if v != -1]))
            rest[rest.index(-1)] = size // known
        shape = tuple(rest)
    op = HostOp(name, "reshape", {"shape": shape})
    reader.push(op, node.output[0])


def _fold_batchnorm(reader, node, name):
    prev = reader.last_accel()
    if prev is None or prev.relu:
        raise OnnxError(f"node {name!r} (BatchNormalization) does not follow a Conv or Gemm; "
                        f"allowed: a BatchNormalization right after one (it is folded in)")
    gamma, beta, mean, var = (reader.const(node, i, what) for i, what in
                              enumerate(("scale", "B", "mean", "var"), 1))
    eps = _attrs(node).get("epsilon", 1e-5)
    k = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    prev.weight = prev.weight * k.reshape(-1, 1, 1, 1)
    prev.bias = (prev.bias - mean) * k + beta
    reader.rename(node.output[0], keep_range=False)


def _add(reader, node, name):
    prev = reader.last_accel()
    other = [i for i in node.input if i != reader.current]
    if prev is None or prev.relu or len(other) != 1 or other[0] not in reader.consts:
        raise OnnxError(f"node {name!r} (Add): only the Add of a constant bias right after a "
                        f"Conv, Gemm or MatMul is supported (no residual adds)")
    c = np.asarray(reader.consts[other[0]], dtype=np.float64)
    M = prev.M
    if c.size == M:
        prev.bias = prev.bias + c.reshape(M)
    elif c.size == 1:
        prev.bias = prev.bias + float(c.reshape(()))
    else:
        raise OnnxError(f"node {name!r} (Add): a constant of shape {c.shape}; allowed: one "
                        f"value per output channel ({M})")
    reader.rename(node.output[0], keep_range=False)


def _relu(reader, node, name):
    prev = reader.last_accel()
    if prev is not None and not prev.relu:
        prev.relu = True
        reader.rename(node.output[0])
    else:
        reader.push(HostOp(name, "relu"), node.output[0])


def _quantize_linear(reader, node, name):
    scale, zero = _scale_and_zero(reader, node, name)
    zero = np.zeros((), np.uint8) if zero is None else np.asarray(zero)
    if zero.dtype.kind not in "iu":
        raise OnnxError(f"node {name!r} (QuantizeLinear): a {zero.dtype} zero point; allowed: "
                        f"an integer type")
    # the magnitude the quantized tensor can hold; rowstat requantizes it symmetrically
    info, zp = np.iinfo(zero.dtype), int(zero.reshape(()))
    qmax = max(info.max - zp, zp - info.min) if zp else info.max   # int8: 127, as rowstat's
    reader.net.act_ranges[reader.current] = scale * qmax
    reader.rename(node.output[0])


def _dequantize_linear(reader, node, name):
    x = node.input[0]
    if x in reader.consts:                              # a weight or bias
        scale, zero = _scale_and_zero(reader, node, name)
        q = reader.consts[x].astype(np.float64)
        zp = 0.0 if zero is None else float(np.asarray(zero).reshape(()))
        reader.consts[node.output[0]] = (q - zp) * scale
        return
    reader.data_input(node, name)
    reader.rename(node.output[0])           # an activation QDQ pair: the float tensor goes on


_HANDLERS = {"Conv": _conv, "Gemm": _gemm, "MatMul": _gemm, "MaxPool": _pool,
             "AveragePool": _pool, "GlobalAveragePool": _pool, "Flatten": _reshape,
             "Reshape": _reshape, "BatchNormalization": _fold_batchnorm, "Add": _add,
             "Relu": _relu, "QuantizeLinear": _quantize_linear}


def load(source):
    """Read an ONNX model (a path or an ``onnx.ModelProto``) into a :class:`Network`.

    Raises :class:`OnnxError` for a file that is not ONNX, an operator rowstat cannot run (it
    names the operator and the node) or a graph that is not a chain.
    """
    model, name = _load_proto(source)
    reader = _Reader(model, name)
    for index, node in enumerate(model.graph.node):
        nname = _node_name(node, index)
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise OnnxError(f"unsupported operator {node.domain}.{op} (node {nname!r}); "
                            f"allowed: {', '.join(SUPPORTED_OPS)}")
        if op == "Constant":
            from onnx import numpy_helper
            a = {x.name: x for x in node.attribute}
            if "value" not in a:
                raise OnnxError(f"node {nname!r} (Constant): only a tensor 'value' is supported")
            reader.consts[node.output[0]] = numpy_helper.to_array(a["value"].t)
            continue
        if op == "DequantizeLinear":
            _dequantize_linear(reader, node, nname)
            continue
        if op in ("Identity", "Dropout"):
            if node.input[0] in reader.consts:
                reader.consts[node.output[0]] = reader.consts[node.input[0]]
                continue
            reader.data_input(node, nname)
            reader.rename(node.output[0])
            continue
        if op not in _HANDLERS:
            raise OnnxError(f"unsupported operator {op} (node {nname!r}); allowed: "
                            f"{', '.join(SUPPORTED_OPS)}")
        reader.data_input(node, nname)
        _HANDLERS[op](reader, node, nname)
    net = reader.net
    if reader.current != net.output_name:
        raise OnnxError(f"graph output {net.output_name!r} is not the end of the chain of "
                        f"operations ({reader.current!r}); allowed: a chain ending in the output")
    if not net.layers:
        raise OnnxError(f"graph {name!r} has no Conv, Gemm or MatMul; allowed: at least one "
                        f"layer for the accelerator")
    for op in net.layers:
        op.weight = np.ascontiguousarray(op.weight)
    return net

