"""ONNX import (rowstat.net.graph): every operator against onnxruntime, BatchNorm folding, QDQ
graphs, and the one-line errors."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from rowstat.net import AccelOp, HostOp, OnnxError, load, quantize
from rowstat.net.quantize import float_forward


def make_model(nodes, inits, in_shape, out_name="y", out_dims=None, opset=17):
    """A model of ``nodes`` with float input 'x' (batch 'N' + in_shape) and output ``out_name``."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_dims)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def ort_run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x.astype(np.float32)})[0]


def rnd(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def check_against_ort(model, in_shape, seed=0, batch=3):
    rng = np.random.default_rng(seed)
    x = rnd(rng, batch, *in_shape)
    net = load(model)
    got = float_forward(net, x)
    want = ort_run(model, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    return net


@pytest.mark.parametrize("stride,pad,groups,bias", [(1, 1, 1, True), (2, 0, 1, False),
                                                    (2, 2, 2, True), (1, 0, 4, True)])
def test_conv_relu_matches_onnxruntime(stride, pad, groups, bias):
    rng = np.random.default_rng(stride * 10 + pad + groups)
    inits = {"w": rnd(rng, 8, 4 // groups, 3, 3)}
    ins = ["x", "w"]
    if bias:
        inits["b"] = rnd(rng, 8)
        ins.append("b")
    nodes = [helper.make_node("Conv", ins, ["c"], name="conv", strides=[stride, stride],
                              pads=[pad] * 4, group=groups),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    net = check_against_ort(make_model(nodes, inits, (4, 9, 9)), (4, 9, 9))
    (op,) = net.ops
    assert isinstance(op, AccelOp) and op.relu and op.stride == stride and op.padding == pad
    assert op.groups == groups


def test_conv_auto_pad_same_upper():
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="c", auto_pad="SAME_UPPER")]
    net = check_against_ort(make_model(nodes, {"w": rnd(rng, 2, 3, 3, 3)}, (3, 6, 6)), (3, 6, 6))
    assert net.ops[0].padding == 1


@pytest.mark.parametrize("trans_b,alpha,beta", [(1, 1.0, 1.0), (0, 0.5, 2.0)])
def test_gemm_matches_onnxruntime(trans_b, alpha, beta):
    rng = np.random.default_rng(trans_b)
    w = rnd(rng, 6, 20) if trans_b else rnd(rng, 20, 6)
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "w", "b"], ["y"], name="fc", transB=trans_b,
                              alpha=alpha, beta=beta)]
    net = check_against_ort(make_model(nodes, {"w": w, "b": rnd(rng, 6)}, (5, 2, 2)), (5, 2, 2))
    assert [type(op) for op in net.ops] == [HostOp, AccelOp] and net.ops[1].kind == "gemm"
    assert net.ops[1].weight.shape == (6, 20, 1, 1)


def test_matmul_add_bias_and_reshape():
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["f"], name="reshape"),
             helper.make_node("MatMul", ["f", "w"], ["m"], name="mm"),
             helper.make_node("Add", ["m", "b"], ["y"], name="bias")]
    inits = {"shape": np.array([-1, 12], np.int64), "w": rnd(rng, 12, 7), "b": rnd(rng, 7)}
    net = check_against_ort(make_model(nodes, inits, (3, 2, 2)), (3, 2, 2))
    assert len(net.layers) == 1 and net.layers[0].M == 7


@pytest.mark.parametrize("kind,attrs", [
    ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2])),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                         count_include_pad=1)),
    ("GlobalAveragePool", {}),
])
def test_pooling_on_the_host(kind, attrs):
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node(kind, ["c"], ["p"], name="pool", **attrs),
             helper.make_node("Relu", ["p"], ["y"], name="relu")]
    net = check_against_ort(make_model(nodes, {"w": rnd(rng, 4, 2, 3, 3)}, (2, 7, 7)), (2, 7, 7))
    # the Relu follows a pool, not a layer: it runs on the host
    assert [op.kind for op in net.ops[1:]] == [
        {"MaxPool": "maxpool", "AveragePool": "avgpool", "GlobalAveragePool": "gap"}[kind],
        "relu"]


def test_batchnorm_folds_into_the_conv():
    rng = np.random.default_rng(4)
    inits = {"w": rnd(rng, 5, 3, 3, 3), "b": rnd(rng, 5), "g": rnd(rng, 5) + 2,
             "beta": rnd(rng, 5), "mean": rnd(rng, 5), "var": np.abs(rnd(rng, 5)) + 0.5}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["n"],
                              name="bn", epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["d"], name="relu"),
             helper.make_node("Identity", ["d"], ["y"], name="id")]
    net = check_against_ort(make_model(nodes, inits, (3, 6, 6)), (3, 6, 6))
    (op,) = net.ops
    k = inits["g"] / np.sqrt(inits["var"] + 1e-3)
    np.testing.assert_allclose(op.weight, inits["w"] * k[:, None, None, None], rtol=1e-6)
    np.testing.assert_allclose(op.bias, (inits["b"] - inits["mean"]) * k + inits["beta"],
                               rtol=1e-5)
    assert op.relu


def _qdq(name, x, scale, zp_dtype=np.int8):
    return [helper.make_node("QuantizeLinear", [x, f"{name}_s", f"{name}_z"], [f"{name}_q"],
                             name=f"{name}_Q"),
            helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"],
                             [f"{name}_dq"], name=f"{name}_DQ")], \
        {f"{name}_s": np.float32(scale), f"{name}_z": zp_dtype(0)}


def test_hand_built_qdq_graph_keeps_its_integers():
    """Power-of-two scales in a QDQ graph are the scales rowstat uses: the quantized layer holds
    the graph's int8 weights and int32 bias unchanged, and its activation scales."""
    rng = np.random.default_rng(5)
    wq = rng.integers(-127, 128, (4, 2, 3, 3)).astype(np.int8)
    bq = rng.integers(-500, 500, (4,)).astype(np.int32)
    nodes, inits = [], {"wq": wq, "ws": np.float32(2.0 ** -7), "wz": np.int8(0),
                        "bq": bq, "bs": np.float32(2.0 ** -12), "bz": np.int32(0)}
    n, i = _qdq("in", "x", 2.0 ** -5)
    nodes += n
    inits.update(i)
    nodes += [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="w_DQ"),
              helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["b"], name="b_DQ"),
              helper.make_node("Conv", ["in_dq", "w", "b"], ["c"], name="conv",
                               pads=[1, 1, 1, 1]),
              helper.make_node("Relu", ["c"], ["r"], name="relu")]
    n, i = _qdq("out", "r", 2.0 ** -3)
    nodes += n
    inits.update(i)
    nodes += [helper.make_node("Flatten", ["out_dq"], ["f"], name="flat"),
              helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)]
    inits.update({"fw": rnd(rng, 3, 4 * 5 * 5), "fb": rnd(rng, 3)})
    net = load(make_model(nodes, inits, (2, 5, 5)))
    assert net.act_ranges[net.input_name] == pytest.approx(127 * 2.0 ** -5)
    # the QDQ scales suffice: no calibration set is needed (the raw logits need none)
    q = quantize(net)
    conv = q.layers[0]
    assert (conv.frac_in, conv.frac_w, conv.frac_out) == (5, 7, 3)
    np.testing.assert_array_equal(conv.weight, wq)
    np.testing.assert_array_equal(conv.bias, bq)
    assert conv.spec.shift == 5 + 7 - 3 and conv.spec.relu


def test_onnxruntime_quantize_static_graph_is_read():
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    rng = np.random.default_rng(6)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)]
    inits = {"w": rnd(rng, 6, 1, 3, 3), "b": rnd(rng, 6), "fw": rnd(rng, 4, 6 * 3 * 3),
             "fb": rnd(rng, 4)}
    model = make_model(nodes, inits, (1, 6, 6), out_dims=["N", 4])
    calib = [rnd(rng, 1, 1, 6, 6) for _ in range(8)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": c} for c in calib])

        def get_next(self):
            return next(self.it, None)

    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
        src.write_bytes(model.SerializeToString())
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        per_channel=False)
        import onnx
        qmodel = onnx.load(str(dst))
    ops = {n.op_type for n in qmodel.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    net = load(qmodel)
    assert [op.kind for op in net.ops] == ["conv", "maxpool", "reshape", "gemm"]
    assert net.act_ranges                      # scales read from the QDQ nodes
    # the weights are the graph's int8 values dequantized: the float ones to half a step
    for op, w in zip(net.layers, (inits["w"], inits["fw"].reshape(4, -1, 1, 1))):
        step = np.abs(w).max() / 127
        assert np.abs(op.weight - w).max() <= step / 2 + 1e-6
        assert not np.array_equal(op.weight, w)
    q = quantize(net)                          # no calibration needed
    assert len(q.layers) == 2


def test_errors_name_the_operator_and_node(tmp_path):
    rng = np.random.default_rng(7)
    cases = [
        ([helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
          helper.make_node("Sigmoid", ["c"], ["y"], name="squash")], {"w": rnd(rng, 2, 2, 1, 1)},
         "unsupported operator Sigmoid (node 'squash')"),
        ([helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
          helper.make_node("Add", ["c", "x"], ["y"], name="residual")],
         {"w": rnd(rng, 2, 2, 1, 1)}, "node 'residual' (Add)"),
        ([helper.make_node("Conv", ["x", "w"], ["y"], name="skew", pads=[1, 0, 1, 0])],
         {"w": rnd(rng, 2, 2, 3, 3)}, "node 'skew' (Conv): pads [1, 0, 1, 0]"),
        ([helper.make_node("Conv", ["x", "w"], ["y"], name="dil", dilations=[2, 2])],
         {"w": rnd(rng, 2, 2, 3, 3)}, "node 'dil' (Conv): dilations"),
        ([helper.make_node("Relu", ["x"], ["y"], name="r")], {}, "has no Conv, Gemm or MatMul"),
        ([helper.make_node("BatchNormalization", ["x", "g", "g", "g", "g"], ["y"], name="bn")],
         {"g": np.ones(2, np.float32)}, "node 'bn' (BatchNormalization) does not follow"),
    ]
    for nodes, inits, message in cases:
        with pytest.raises(OnnxError, match=message.replace("(", r"\(").replace(")", r"\)")
                           .replace("[", r"\[").replace("]", r"\]")):
            load(make_model(nodes, inits, (2, 4, 4)))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf \xff\xff")
    with pytest.raises(OnnxError, match="allowed: an ONNX model file"):
        load(bad)
    with pytest.raises(OnnxError, match="allowed: an existing .onnx file"):
        load(tmp_path / "missing.onnx")


def test_weights_must_be_constants():
    nodes = [helper.make_node("Conv", ["x", "x"], ["y"], name="selfconv")]
    with pytest.raises(OnnxError, match="node 'selfconv' \\(Conv\\): weight 'x' is not a "
                                        "constant"):
        load(make_model(nodes, {}, (1, 3, 3)))
