"""Whole layers on the accelerator RTL in cocotb, bit-exact against the golden model."""

import random

import numpy as np
import pytest

from conftest import ODD, WIDE, random_layer, signed
from rowstat import run_layer
from rowstat.gen.compiler import compile_layer
from rowstat.gen.config import PRESETS
from rowstat.gen.errors import MappingError, RowstatError
from rowstat.gen.layer import LayerSpec
from rowstat.gen.mapping import map_layer
from rowstat.gen.networks import ALEXNET
from rowstat.gen.program import COUNTERS
from rowstat.sim.golden import golden_layer


def random_data(arch, layer, rng, zeros=0.3):
    return (signed(rng, arch.act_width, layer.ifmap_shape, zeros),
            signed(rng, arch.weight_width, layer.weight_shape, zeros),
            signed(rng, arch.psum_width - 4, (layer.M,), zeros))


def check(arch, layer, seed, **options):
    rng = np.random.default_rng(seed)
    x, w, b = random_data(arch, layer, rng)
    ofmap, stats = run_layer(arch, layer, x, w, b, progress=False, **options)
    expected = golden_layer(arch, layer, x, w, b)
    assert ofmap.shape == expected.shape and ofmap.dtype == np.int64
    assert np.array_equal(ofmap, expected), f"{layer}: {np.argwhere(ofmap != expected)[:5]}"
    program = compile_layer(arch, layer, x, w, b, mapping=options.get("mapping"))
    # Counters against hand-derived expectations.
    assert stats["dram_read_words"] == len(program.data)
    # Every output beat but the counter block (its header and the counters) is ofmap.
    assert stats["dram_write_words"] == program.out_beats - 1 - len(COUNTERS) * program.counter_beats
    assert stats["macs"] + stats["macs_skipped_zero"] >= layer.macs
    assert stats["macs_skipped_zero"] > 0 if (x == 0).any() else True
    assert stats["passes"] == program.mapping.passes
    assert 0 < stats["pe_utilization"] <= 1
    return stats


#: (name, arch, first layer seed, layers) of the random-layer runs.
RANDOM_RUNS = [
    ("tiny", PRESETS["tiny"], 1000, 8),
    # The board presets: 3 x 1 PEs with 4-bit data and one 16-bit GLB word per 32-bit beat;
    # 3 x 4 PEs with 16-bit data and 64-bit GLB words and beats.
    ("ice40", PRESETS["ice40"], 3000, 2),
    ("ecp5", PRESETS["ecp5"], 5000, 2),
    ("odd_array", ODD, 2000, 4),
    ("wide_buses", WIDE, 4000, 3),
]


@pytest.mark.parametrize("arch, layer_seed, seed", [
    pytest.param(arch, base + i, i, id=f"{name}-{i}")
    for name, arch, base, count in RANDOM_RUNS for i in range(count)])
def test_accelerator_random_layers(arch, layer_seed, seed):
    layer = random_layer(random.Random(layer_seed), arch, c=(1, 3), hw=9, rs=5, s=5,
                         groups=(1, 1, 2), shifts=[None, None, 0, 2, 5, 8])
    check(arch, layer, seed)


def test_accelerator_wide_buses_many_words_per_beat():
    # Rows of 17 activations: beats with 8 words, the last of each row partly filled.
    layer = LayerSpec(N=1, C=5, H=11, W=15, M=7, R=3, S=3, padding=1, relu=True, shift=4)
    check(WIDE, layer, 5)


@pytest.mark.parametrize("layer", [
    # Several channel blocks, strips and filter sub-blocks: psums stay in the GLB.
    LayerSpec(N=1, C=7, H=9, W=8, M=9, R=3, S=3, padding=1, relu=True, shift=4),
    # Stride larger than the filter, grouped, raw psums out.
    LayerSpec(N=2, C=4, H=9, W=9, M=4, R=2, S=2, stride=3, groups=2),
    # 1x1 convolution.
    LayerSpec(N=1, C=6, H=5, W=5, M=5, R=1, S=1),
], ids=["blocks", "stride3-groups", "pointwise"])
def test_accelerator_hand_picked_tiny(layer):
    check(PRESETS["tiny"], layer, 7)


def test_accelerator_eyeriss_conv3_like():
    """An AlexNet-CONV3-like layer (3x3, 13x13 out) at small channel counts on 12 x 14."""
    arch = PRESETS["eyeriss"]
    layer = LayerSpec(N=1, C=8, H=13, W=13, M=8, R=3, S=3, padding=1, relu=True, shift=6)
    stats = check(arch, layer, 11, mapping=map_layer(arch, layer, e=13))
    assert stats["mapping"]["e"] == 13


def test_accelerator_throttled_io_is_slower_and_exact():
    arch = PRESETS["tiny"]
    # Several drains: the last one must finish before the counter dump overtakes it.
    layer = LayerSpec(N=1, C=4, H=7, W=7, M=16, R=3, S=3, padding=1, shift=3)
    fast = check(arch, layer, 3)
    slow = check(arch, layer, 3, io_bits_per_cycle=6.0)
    assert slow["cycles"] > fast["cycles"]


def test_accelerator_refuses_unmappable_and_bad_arrays():
    arch = PRESETS["tiny"]
    tall = LayerSpec(N=1, C=1, H=8, W=8, M=1, R=4, S=3)
    x, w, b = random_data(arch, tall, np.random.default_rng(0))
    with pytest.raises(MappingError, match="R=4 exceeds rows=3"):
        run_layer(arch, tall, x, w, b, progress=False)
    layer = LayerSpec(N=1, C=2, H=6, W=6, M=3, R=3, S=3)
    x, w, b = random_data(arch, layer, np.random.default_rng(0))
    with pytest.raises(RowstatError, match="ifmap"):
        run_layer(arch, layer, x[:, :1], w, b, progress=False)
    with pytest.raises(RowstatError, match="weights"):
        run_layer(arch, layer, x, w * 1000, b, progress=False)
    with pytest.raises(RowstatError):
        run_layer(arch, layer, x.astype(float) + 0.5, w, b, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ALEXNET))
def test_accelerator_alexnet_eyeriss(name):
    """AlexNet CONV1-5 at their real shapes (batch 1, grouped as in the paper), bit-exact."""
    layer = LayerSpec(N=1, relu=True, shift=8, **ALEXNET[name])
    check(PRESETS["eyeriss"], layer, 1)
