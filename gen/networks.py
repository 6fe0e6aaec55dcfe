"""Layer shapes of well-known networks (per image; batch and output stage are the caller's).

Each network is a dict {layer name: shape}, the shape a dict of :class:`LayerSpec` keys without
``N``, ``relu`` and ``shift``; :func:`network_layers` makes LayerSpecs of them.
"""

from .errors import RowstatError
from .layer import LayerSpec

__all__ = ["ALEXNET", "VGG16", "MOBILENET_PW", "NETWORKS", "network_layers",
           "EYERISS_ALEXNET_MAPPING", "EYERISS_ALEXNET_RESULTS", "EYERISS_ALEXNET_BATCH"]

#: AlexNet CONV1-5 (REFERENCE.md): H and W unpadded with the paper's padding, grouped as in
#: the paper (CONV2, CONV4 and CONV5 in two groups).
ALEXNET = {
    "CONV1": dict(C=3, H=227, W=227, M=96, R=11, S=11, stride=4, padding=0, groups=1),
    "CONV2": dict(C=96, H=27, W=27, M=256, R=5, S=5, stride=1, padding=2, groups=2),
    "CONV3": dict(C=256, H=13, W=13, M=384, R=3, S=3, stride=1, padding=1, groups=1),
    "CONV4": dict(C=384, H=13, W=13, M=384, R=3, S=3, stride=1, padding=1, groups=2),
    "CONV5": dict(C=384, H=13, W=13, M=256, R=3, S=3, stride=1, padding=1, groups=2),
}


def _vgg16():
    # Simonyan & Zisserman 2015, configuration D: 3x3 convolutions, stride 1, padding 1, on a
    # 224x224 input; each block ends in a 2x2 max pool that halves H and W.
    blocks = [(224, 3, 64, 2), (112, 64, 128, 2), (56, 128, 256, 3), (28, 256, 512, 3),
              (14, 512, 512, 3)]          # (ifmap size, input channels, filters, conv layers)
    layers = {}
    for b, (size, c_in, m, count) in enumerate(blocks, 1):
        for i in range(1, count + 1):
            layers[f"CONV{b}_{i}"] = dict(C=c_in if i == 1 else m, H=size, W=size, M=m, R=3,
                                          S=3, stride=1, padding=1, groups=1)
    return layers


#: VGG-16's 13 conv layers (224x224 input, 3x3, padding 1).
VGG16 = _vgg16()


def _mobilenet_pw():
    # Howard et al. 2017, MobileNet v1 (width 1.0, 224x224), Table 1: the 1x1 pointwise conv
    # after each depthwise conv, as (input channels, output channels, ifmap size).
    shapes = [(32, 64, 112), (64, 128, 56), (128, 128, 56), (128, 256, 28), (256, 256, 28),
              (256, 512, 14)] + [(512, 512, 14)] * 5 + [(512, 1024, 7), (1024, 1024, 7)]
    return {f"PW{i}": dict(C=c, H=s, W=s, M=m, R=1, S=1, stride=1, padding=0, groups=1)
            for i, (c, m, s) in enumerate(shapes, 1)}


#: MobileNet v1's 13 pointwise (1x1) conv layers.
MOBILENET_PW = _mobilenet_pw()

#: Built-in networks by name (``--network``).
NETWORKS = {"alexnet": ALEXNET, "vgg16": VGG16, "mobilenet_pw": MOBILENET_PW}


def network_layers(name, batch=1, *, relu=True, shift=8):
    """{layer name: LayerSpec} of the built-in network ``name`` at batch ``batch``, with the
    output stage ``relu`` and ``shift`` (requantize to act_width; None for raw psums)."""
    if name not in NETWORKS:
        raise RowstatError(f"bad value for --network: {name!r}; allowed: "
                           f"{', '.join(NETWORKS)}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise RowstatError(f"bad value for --batch: {batch!r}; allowed: an integer >= 1")
    return {layer: LayerSpec(N=batch, relu=relu, shift=shift, **shape)
            for layer, shape in NETWORKS[name].items()}


#: The Eyeriss chip's mapping of AlexNet at batch 4 (REFERENCE.md, JSSC 2017), per layer.
EYERISS_ALEXNET_MAPPING = {
    "CONV1": dict(n=1, e=7, p=16, q=1, r=1, t=2, m=64),
    "CONV2": dict(n=1, e=27, p=16, q=2, r=1, t=1, m=64),
    "CONV3": dict(n=4, e=13, p=16, q=4, r=1, t=4, m=64),
    "CONV4": dict(n=4, e=13, p=16, q=3, r=2, t=2, m=64),
    "CONV5": dict(n=4, e=13, p=16, q=3, r=2, t=2, m=64),
}

#: The batch of the chip's measured AlexNet results.
EYERISS_ALEXNET_BATCH = 4

#: The Eyeriss chip's measured AlexNet results at batch 4 (REFERENCE.md, "Measured results":
#: JSSC 2017, 200 MHz core, 60 MHz link), per layer: MACs (M), cycles at 200 MHz (M), active
#: PEs, GLB accesses (MB) and DRAM accesses (MB). The one copy of these figures in the code.
EYERISS_ALEXNET_RESULTS = {
    "CONV1": dict(macs_M=422, cycles_M=4.18, active_pes=154, glb_MB=18.5, dram_MB=5.0),
    "CONV2": dict(macs_M=896, cycles_M=8.38, active_pes=135, glb_MB=77.6, dram_MB=4.0),
    "CONV3": dict(macs_M=598, cycles_M=4.72, active_pes=156, glb_MB=50.2, dram_MB=3.0),
    "CONV4": dict(macs_M=449, cycles_M=3.68, active_pes=156, glb_MB=37.4, dram_MB=2.1),
    "CONV5": dict(macs_M=299, cycles_M=2.10, active_pes=156, glb_MB=24.9, dram_MB=1.3),
}
