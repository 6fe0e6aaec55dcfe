"""Quantized networks run end to end (rowstat.net): the model engine against a NumPy reference
written apart from it, int8 accuracy against the float model in onnxruntime, ONNX versions of
the built-in networks through ``rowstat model --onnx``, large layers, and the CLI."""

import json

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from rowstat.cli import main
from rowstat.gen.config import PRESETS
from rowstat.gen.errors import RowstatError
from rowstat.gen.networks import NETWORKS
from rowstat.net import QLayer, load, quantize, run_network
from rowstat.net.digits import digits_model_path, digits_split


# --- the reference --------------------------------------------------------------------------

def _ref_conv(a, w, b, stride, padding, groups):
    """Float64 convolution by explicit (r, s) offsets (not the golden model's windows)."""
    N, C, H, W = a.shape
    M, Cg, R, S = w.shape
    ap = np.zeros((N, C, H + 2 * padding, W + 2 * padding))
    ap[:, :, padding:padding + H, padding:padding + W] = a
    E = (H + 2 * padding - R) // stride + 1
    F = (W + 2 * padding - S) // stride + 1
    out = np.zeros((N, M, E, F))
    Mg = M // groups
    for g in range(groups):
        for r in range(R):
            for s in range(S):
                patch = ap[:, g * Cg:(g + 1) * Cg, r:r + stride * (E - 1) + 1:stride,
                           s:s + stride * (F - 1) + 1:stride]
                out[:, g * Mg:(g + 1) * Mg] += np.tensordot(
                    w[g * Mg:(g + 1) * Mg, :, r, s], patch, axes=([1], [1])).transpose(1, 0, 2, 3)
    return out + b[None, :, None, None]


def reference(qnet, x):
    """The quantized network's output by its definition in real numbers: each tensor is
    ``q * 2**-frac``; a layer computes in exact float64 and rounds half up to its output's
    scale, clamped to act_bits; host ops work on the real values (an average rounds half up to
    its input's scale)."""
    lo, hi = -(1 << (qnet.act_bits - 1)), (1 << (qnet.act_bits - 1)) - 1

    def requant(v, frac):
        return np.clip(np.floor(v * 2.0 ** frac + 0.5), lo, hi) * 2.0 ** -frac
    a = requant(np.asarray(x, dtype=np.float64), qnet.frac_in)
    frac = qnet.frac_in
    for op in qnet.ops:
        if isinstance(op, QLayer):
            sp = op.spec
            inp = a.reshape(a.shape[0], sp.C, sp.H, sp.W)
            y = _ref_conv(inp, op.weight * 2.0 ** -op.frac_w,
                          op.bias * 2.0 ** -(op.frac_in + op.frac_w), sp.stride, sp.padding,
                          sp.groups)
            a = y if sp.shift is None else requant(y, op.frac_out)
            if sp.relu:
                a = np.maximum(a, 0)
            if op.kind == "gemm":
                a = a.reshape(a.shape[0], -1)
            frac = op.frac_out
        elif op.kind in ("maxpool", "avgpool"):
            (kh, kw), (sh, sw), (pt, pl, pb, pr) = op.attrs["kernel"], op.attrs["stride"], \
                op.attrs["pads"]
            N, C, H, W = a.shape
            ap = np.full((N, C, H + pt + pb, W + pl + pr), np.nan)
            ap[:, :, pt:pt + H, pl:pl + W] = a
            E, F = (H + pt + pb - kh) // sh + 1, (W + pl + pr - kw) // sw + 1
            win = np.array([ap[:, :, i:i + sh * (E - 1) + 1:sh, j:j + sw * (F - 1) + 1:sw]
                            for i in range(kh) for j in range(kw)])
            if op.kind == "maxpool":
                a = np.nanmax(win, axis=0)
            else:
                count = kh * kw if op.attrs["count_include_pad"] else (~np.isnan(win)).sum(0)
                mean = np.nansum(win, axis=0) / count
                a = np.floor(mean * 2.0 ** frac + 0.5) * 2.0 ** -frac
        elif op.kind == "gap":
            a = np.floor(a.mean(axis=(2, 3), keepdims=True) * 2.0 ** frac + 0.5) * 2.0 ** -frac
        elif op.kind == "reshape":
            a = a.reshape((a.shape[0],) + tuple(op.attrs["shape"]))
        elif op.kind == "relu":
            a = np.maximum(a, 0)
        else:
            raise AssertionError(f"the reference has no {op.kind}")
    return a


@pytest.fixture(scope="module")
def digits():
    x_tr, y_tr, x_te, y_te = digits_split()
    net = load(str(digits_model_path()))
    return net, quantize(net, x_tr), x_te, y_te


def test_model_engine_equals_the_reference(digits):
    net, qnet, x, _ = digits
    result = run_network(PRESETS["tiny"], qnet, x[:40])
    np.testing.assert_array_equal(result.logits, reference(qnet, x[:40]))
    assert result.ints.dtype == np.int64 and np.abs(result.ints).max() > 1000
    assert [s["name"] for s in result.layers] == ["conv1", "conv2", "fc"]
    # Calibrated on dim images, the layers saturate: on a 16-bit architecture the host clamps
    # each layer's output to int8 (the output stage clamps to 16 bits), giving the same
    # integers as the 8-bit one.
    dim = quantize(net, digits_split()[0] * 0.25)
    tiny = run_network(PRESETS["tiny"], dim, x[:40])
    np.testing.assert_array_equal(tiny.logits, reference(dim, x[:40]))
    wide = run_network(PRESETS["eyeriss"], dim, x[:40])
    np.testing.assert_array_equal(wide.ints, tiny.ints)


def test_a_bias_wider_than_a_psum_is_refused_by_name(digits):
    import copy
    net, qnet, x, _ = digits
    bad = copy.deepcopy(qnet)
    bad.layers[1].bias[3] = 1 << 23            # the tiny preset's psums are 24 bits
    for engine in ("model", "rtl"):            # refused before anything is simulated
        with pytest.raises(RowstatError, match="layer 'conv2': bias: value 8388608 at index "
                                               r"\(3,\) is outside the signed 24-bit range"):
            run_network(PRESETS["tiny"], bad, x[:2], engine)


def test_int8_accuracy_within_a_point_of_float(digits):
    net, qnet, x, y = digits
    sess = ort.InferenceSession(str(digits_model_path()), providers=["CPUExecutionProvider"])
    float_acc = float((sess.run(None, {"image": x})[0].argmax(1) == y).mean())
    int_acc = float((run_network(PRESETS["tiny"], qnet, x).logits.argmax(1) == y).mean())
    assert len(y) == 450 and float_acc > 0.95
    assert abs(int_acc - float_acc) <= 0.01


# --- random networks: host ops, a wide Gemm, the first layer of AlexNet ------------------------

def _model(nodes, inits, in_shape):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def pooled_net(seed):
    """Conv (stride 2, groups) -> AveragePool -> Conv -> GlobalAveragePool -> Flatten -> Gemm."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="c1", pads=[1] * 4,
                         strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
        helper.make_node("AveragePool", ["r1"], ["p1"], name="avg", kernel_shape=[3, 3],
                         pads=[1] * 4),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="c2", pads=[1] * 4, group=2),
        helper.make_node("GlobalAveragePool", ["c2"], ["g"], name="gap"),
        helper.make_node("Relu", ["g"], ["r2"], name="r2"),
        helper.make_node("Flatten", ["r2"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], name="fc", transB=1)]
    inits = {"w1": rng.normal(0, 0.3, (6, 3, 3, 3)), "b1": rng.normal(0, 0.1, 6),
             "w2": rng.normal(0, 0.3, (8, 3, 3, 3)), "b2": rng.normal(0, 0.1, 8),
             "w3": rng.normal(0, 0.3, (5, 8)), "b3": rng.normal(0, 0.1, 5)}
    return _model(nodes, inits, (3, 11, 11)), rng.normal(0, 1, (4, 3, 11, 11))


def wide_gemm_net(seed, K=600, M=24):
    """Flatten -> a Gemm far wider than the array (K channels) -> Relu -> Gemm."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w1", "b1"], ["h"], name="wide", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="out", transB=1)]
    inits = {"w1": rng.normal(0, 0.05, (M, K)), "b1": rng.normal(0, 0.1, M),
             "w2": rng.normal(0, 0.3, (7, M)), "b2": rng.normal(0, 0.1, 7)}
    return _model(nodes, inits, (K // 4, 2, 2)), rng.normal(0, 1, (3, K // 4, 2, 2))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("make", [pooled_net, wide_gemm_net])
def test_random_networks_equal_the_reference(make, seed):
    model, x = make(seed)
    qnet = quantize(load(model), x)
    for preset in ("tiny", "eyeriss"):
        result = run_network(PRESETS[preset], qnet, x)
        np.testing.assert_array_equal(result.logits, reference(qnet, x))
    # the float model in onnxruntime agrees with the int8 one up to quantization error
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x.astype(np.float32)})[0]
    assert np.abs(result.logits - want).max() < 0.15 * np.abs(want).max() + 0.05


def test_wide_gemm_is_folded_over_many_passes():
    model, x = wide_gemm_net(2)
    qnet = quantize(load(model), x)
    wide = run_network(PRESETS["tiny"], qnet, x).layers[0]
    assert wide["layer"]["C"] == 600 and wide["passes"] > 50
    assert wide["macs"] <= 3 * 600 * 24


def test_alexnet_first_layer_on_eyeriss():
    """AlexNet CONV1 (11 x 11, stride 4, 227 x 227): R and E exceed the array's 12 x 14."""
    rng = np.random.default_rng(3)
    model = _model([helper.make_node("Conv", ["x", "w", "b"], ["c"], name="CONV1",
                                     strides=[4, 4]),
                    helper.make_node("Relu", ["c"], ["y"], name="relu")],
                   {"w": rng.normal(0, 0.1, (96, 3, 11, 11)), "b": rng.normal(0, 0.1, 96)},
                   (3, 227, 227))
    x = rng.normal(0, 1, (1, 3, 227, 227))
    qnet = quantize(load(model), x)
    result = run_network(PRESETS["eyeriss"], qnet, x)
    np.testing.assert_array_equal(result.logits, reference(qnet, x))
    (s,) = result.layers
    assert s["mapping"]["e"] < 55 and s["passes"] > 1 and s["cycles"] > 0


# --- rowstat model --onnx against the built-in networks -------------------------------------

def builtin_as_onnx(name, path):
    """The built-in network ``name`` as an ONNX chain (random weights): each layer a Conv with
    ReLU, and a 2 x 2 max pool wherever the next layer's ifmap is smaller."""
    rng = np.random.default_rng(0)
    layers = NETWORKS[name]
    first = next(iter(layers.values()))
    nodes, inits, cur, size = [], {}, "x", first["H"]
    for i, (lname, s) in enumerate(layers.items()):
        if s["H"] != size:
            assert (size - 2) // 2 + 1 == s["H"]
            nodes.append(helper.make_node("MaxPool", [cur], [f"pool{i}"], name=f"pool{i}",
                                          kernel_shape=[2, 2], strides=[2, 2]))
            cur = f"pool{i}"
        inits[f"w{i}"] = rng.standard_normal((s["M"], s["C"] // s["groups"], s["R"], s["S"]),
                                             dtype=np.float32)
        nodes.append(helper.make_node("Conv", [cur, f"w{i}"], [f"c{i}"], name=lname,
                                      strides=[s["stride"]] * 2, pads=[s["padding"]] * 4,
                                      group=s["groups"]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        cur = f"r{i}"
        size = (s["H"] + 2 * s["padding"] - s["R"]) // s["stride"] + 1
    model = _model(nodes, inits, (first["C"], first["H"], first["W"]))
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "mobilenet_pw"])
def test_model_onnx_equals_the_builtin_network(name, tmp_path, capsys):
    path = builtin_as_onnx(name, tmp_path / f"{name}.onnx")
    assert main(["model", "--onnx", str(path), "--batch", "2", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert main(["model", "--network", name, "--batch", "2", "--json"]) == 0
    want = json.loads(capsys.readouterr().out)
    assert got.pop("what") == str(path) and want.pop("what") == name
    assert [lay["name"] for lay in got["layers"]] == list(NETWORKS[name])
    assert got == want


# --- the command line -----------------------------------------------------------------------

def test_infer_cli_writes_logits_stats_and_report(digits, tmp_path, capsys):
    net, qnet, x, y = digits
    x_tr = digits_split()[0]
    np.save(tmp_path / "x.npy", x[:20])
    np.save(tmp_path / "cal.npy", x_tr)
    out, stats, report = tmp_path / "l.npy", tmp_path / "s.json", tmp_path / "rep"
    assert main(["infer", "--preset", "tiny", "--onnx", str(digits_model_path()),
                 "--input", str(tmp_path / "x.npy"), "--calibration", str(tmp_path / "cal.npy"),
                 "--out", str(out), "--stats", str(stats), "--report", str(report)]) == 0
    text = capsys.readouterr().out
    assert "conv2" in text and "total" in text
    np.testing.assert_array_equal(np.load(out), reference(qnet, x[:20]))
    s = json.loads(stats.read_text())
    assert [lay["name"] for lay in s["layers"]] == ["conv1", "conv2", "fc"]
    assert s["totals"]["cycles"] == sum(lay["cycles"] for lay in s["layers"]) > 0
    assert {"report.md", "report.json", "cycles.png"} <= {p.name for p in report.iterdir()}


def _cli_error(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("rowstat: error: ")
    return err


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    model = str(digits_model_path())
    np.save(tmp_path / "flat.npy", np.zeros((3, 8, 8)))
    err = _cli_error(["infer", "--onnx", model, "--input", str(tmp_path / "flat.npy"),
                      "--out", str(tmp_path / "l.npy")], capsys)
    assert "--input" in err and "(N, 1, 8, 8)" in err
    (tmp_path / "x.onnx").write_text("not onnx")
    err = _cli_error(["model", "--onnx", str(tmp_path / "x.onnx")], capsys)
    assert "an ONNX model file" in err
    # an unsupported operator, named with its node
    bad = _model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                  helper.make_node("Softmax", ["c"], ["y"], name="probs")],
                 {"w": np.ones((2, 1, 1, 1))}, (1, 4, 4))
    (tmp_path / "soft.onnx").write_bytes(bad.SerializeToString())
    err = _cli_error(["model", "--onnx", str(tmp_path / "soft.onnx")], capsys)
    assert "unsupported operator Softmax (node 'probs')" in err
    # a layer that does not map: a 5 x 5 filter on 3 PE rows
    big = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv5x5")],
                 {"w": np.ones((2, 1, 5, 5))}, (1, 9, 9))
    (tmp_path / "big.onnx").write_bytes(big.SerializeToString())
    err = _cli_error(["model", "--preset", "tiny", "--onnx", str(tmp_path / "big.onnx")], capsys)
    assert "layer 'conv5x5'" in err and "R=5 exceeds rows=3" in err
    np.save(tmp_path / "x9.npy", np.ones((1, 1, 9, 9)))
    err = _cli_error(["infer", "--preset", "tiny", "--onnx", str(tmp_path / "big.onnx"),
                      "--input", str(tmp_path / "x9.npy"), "--out", str(tmp_path / "o.npy")],
                     capsys)
    assert "layer 'conv5x5'" in err


# --- the RTL --------------------------------------------------------------------------------

def test_rtl_engine_equals_the_model_engine(digits):
    """Every layer in cocotb on the tiny preset: the digits network on three test images and a
    Gemm 25 times wider than the array has PEs."""
    net, qnet, x, y = digits
    arch = PRESETS["tiny"]
    rtl = run_network(arch, qnet, x[:3], "rtl", progress=False)
    model = run_network(arch, qnet, x[:3], "model")
    np.testing.assert_array_equal(rtl.ints, model.ints)
    np.testing.assert_array_equal(rtl.logits, reference(qnet, x[:3]))
    for r, m in zip(rtl.layers, model.layers):
        assert r["dram_read_words"] == m["dram_read_words"]
        assert r["glb_reads"] == m["glb_reads"] and r["macs"] == m["macs"]
        assert r["cycles"] > 0 and r["model_cycles"] == m["cycles"]
    gemm, gx = wide_gemm_net(4, K=300, M=12)
    gq = quantize(load(gemm), gx)
    rtl = run_network(arch, gq, gx[:2], "rtl", progress=False)
    np.testing.assert_array_equal(rtl.logits, reference(gq, gx[:2]))


def test_demo_onnx_classifies_on_the_rtl(capsys):
    assert main(["demo", "--onnx", "--images", "2"]) == 0
    out = capsys.readouterr().out
    assert "PASS: RTL logits equal the model engine's" in out
    assert "accuracy" in out and "conv2" in out and "total" in out


@pytest.mark.slow
def test_rtl_engine_on_the_eyeriss_array(digits):
    """The 12 x 14, 16-bit array: the output stage clamps to 16 bits and the host to int8."""
    net, qnet, x, y = digits
    arch = PRESETS["eyeriss"]
    rtl = run_network(arch, qnet, x[:4], "rtl", progress=False)
    np.testing.assert_array_equal(rtl.ints, run_network(arch, qnet, x[:4], "model").ints)
    np.testing.assert_array_equal(rtl.logits, reference(qnet, x[:4]))
