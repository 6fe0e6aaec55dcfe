"""Train the small digits CNN in NumPy and write it as ONNX (no PyTorch needed).

    python -m rowstat.net.train_digits [-o net/models/digits_cnn.onnx] [--epochs 40]

The network: Conv 3x3 (8 filters, padding 1) -> ReLU -> Conv 3x3 (16, padding 1) -> ReLU ->
MaxPool 2x2 -> Flatten -> Gemm (256 -> 10), on 1 x 8 x 8 images in [0, 1]. Adam on the
cross-entropy, mini-batches of 32, everything seeded: the same command writes the same file.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .digits import digits_split

__all__ = ["train", "to_onnx", "main"]


def _conv_fwd(x, w, b):
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = sliding_window_view(xp, (3, 3), axis=(2, 3))            # N, C, E, F, 3, 3
    return np.einsum("ncefrs,mcrs->nmef", win, w, optimize=True) + b[None, :, None, None], xp


def _conv_bwd(dy, xp, w):
    win = sliding_window_view(xp, (3, 3), axis=(2, 3))
    dw = np.einsum("nmef,ncefrs->mcrs", dy, win, optimize=True)
    db = dy.sum(axis=(0, 2, 3))
    dxp = np.zeros_like(xp)
    E, F = dy.shape[2:]
    for r in range(3):
        for s in range(3):
            dxp[:, :, r:r + E, s:s + F] += np.einsum("nmef,mc->ncef", dy, w[:, :, r, s])
    return dxp[:, :, 1:-1, 1:-1], dw, db


def _forward(p, x):
    a1, xp1 = _conv_fwd(x, p["w1"], p["b1"])
    h1 = np.maximum(a1, 0)
    a2, xp2 = _conv_fwd(h1, p["w2"], p["b2"])
    h2 = np.maximum(a2, 0)
    N, C, H, W = h2.shape
    blocks = h2.reshape(N, C, H // 2, 2, W // 2, 2)
    pooled = blocks.max(axis=(3, 5))
    flat = pooled.reshape(N, -1)
    logits = flat @ p["w3"].T + p["b3"]
    return logits, (xp1, a1, xp2, a2, blocks, pooled, flat)


def _backward(p, cache, dlogits):
    xp1, a1, xp2, a2, blocks, pooled, flat = cache
    g = {"w3": dlogits.T @ flat, "b3": dlogits.sum(axis=0)}
    dpooled = (dlogits @ p["w3"]).reshape(pooled.shape)
    # ties in a window are zeros after the ReLU, whose gradient the ReLU stops anyway
    mask = blocks == pooled[:, :, :, None, :, None]
    dh2 = (mask * dpooled[:, :, :, None, :, None]).reshape(a2.shape)
    da2 = dh2 * (a2 > 0)
    dh1, g["w2"], g["b2"] = _conv_bwd(da2, xp2, p["w2"])
    da1 = dh1 * (a1 > 0)
    _, g["w1"], g["b1"] = _conv_bwd(da1, xp1, p["w1"])
    return g


def train(epochs=40, seed=0, lr=2e-3, batch=32, log=print):
    """Train on the digits training split; returns the parameters (float32 arrays)."""
    x_tr, y_tr, x_te, y_te = digits_split()
    rng = np.random.default_rng(seed)

    def he(shape, fan_in):
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    p = {"w1": he((8, 1, 3, 3), 9), "b1": np.zeros(8),
         "w2": he((16, 8, 3, 3), 72), "b2": np.zeros(16),
         "w3": he((10, 256), 256) * 0.5, "b3": np.zeros(10)}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    step = 0
    x_tr = x_tr.astype(np.float64)
    for epoch in range(epochs):
        order = rng.permutation(len(x_tr))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            logits, cache = _forward(p, x_tr[idx])
            z = logits - logits.max(axis=1, keepdims=True)
            prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
            prob[np.arange(len(idx)), y_tr[idx]] -= 1.0
            grads = _backward(p, cache, prob / len(idx))
            step += 1
            for k in p:
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
                mh, vh = m[k] / (1 - 0.9 ** step), v[k] / (1 - 0.999 ** step)
                p[k] -= lr * mh / (np.sqrt(vh) + 1e-8)
        if log and (epoch + 1) % 10 == 0:
            acc = float((_forward(p, x_te.astype(np.float64))[0].argmax(1) == y_te).mean())
            log(f"epoch {epoch + 1}: test accuracy {acc:.4f}")
    return {k: val.astype(np.float32) for k, val in p.items()}


def to_onnx(p, name="digits_cnn"):
    """The trained parameters as an ONNX model (opset 17)."""
    from onnx import TensorProto, helper, numpy_helper
    inits = [numpy_helper.from_array(val, k) for k, val in p.items()]
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="rowstat.net.train_digits")
    model.ir_version = 8
    return model


def main(argv=None):
    import onnx
    parser = argparse.ArgumentParser(prog="python -m rowstat.net.train_digits",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", default=str(Path(__file__).parent / "models" /
                                                      "digits_cnn.onnx"))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model = to_onnx(train(args.epochs, args.seed))
    onnx.checker.check_model(model)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
