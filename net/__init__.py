"""Whole networks from ONNX on the generated accelerator: import, int8 quantization, runs.

    from rowstat.net import load, quantize, run_network
    net = load("model.onnx")                    # a chain of accelerator layers and host ops
    qnet = quantize(net, calibration_images)    # power-of-two int8 scales
    result = run_network(arch, qnet, images, engine="model")   # or "rtl"
"""

from .graph import AccelOp, HostOp, Network, OnnxError, load
from .quantize import QLayer, QNetwork, layer_specs, quantize
from .run import NetworkResult, run_network

__all__ = ["load", "quantize", "run_network", "layer_specs", "Network", "QNetwork", "QLayer",
           "AccelOp", "HostOp", "NetworkResult", "OnnxError"]
