"""Shared test support: the architectures the tests vary, one seeded random-layer generator,
random data, and the Amaranth simulator set-up. Test modules import these names with
``from conftest import ...`` (pyproject puts tests/ on the path)."""

import numpy as np
from amaranth.sim import Simulator

from rowstat.gen.config import PRESETS
from rowstat.gen.errors import RowstatError
from rowstat.gen.layer import LayerSpec

TINY = PRESETS["tiny"]
EYERISS = PRESETS["eyeriss"]
#: An array whose sides are neither powers of two nor equal.
ODD = TINY.replace(rows=5, cols=7)
#: A GLB too small for most layers in one piece.
SMALL_GLB = TINY.replace(glb_banks=3, glb_bank_depth=64)
#: The eyeriss_wide preset's bus ratios on the tiny array: GLB words of 128 bits, several ifmap
#: and filter beats per word (8 activations per ifmap beat, 16 weights per filter beat).
WIDE = TINY.replace(glb_width=128, dram_width=128, filter_bus_width=128, ifmap_bus_width=64,
                    psum_bus_width=96)
#: Odd widths: 16-bit activations, 4-bit weights, 20-bit psums, 40-bit GLB and beats.
ODD_WIDTHS = TINY.replace(act_width=16, weight_width=4, psum_width=20, glb_width=40,
                          dram_width=40, filter_bus_width=8, ifmap_bus_width=16,
                          psum_bus_width=40)

#: Requantization shifts of the compiler's and the model's random layers (None: the psums
#: themselves; 40: beyond the psum width).
SHIFTS = [None, 0, 3, 9, 40]


def random_layer(rng, arch, *, n=2, c=(1, 7), hw=16, extra=0, rs=None, s=5, stride=(1, 2, 3),
                 groups=(1, 1, 2, 3), shifts=None, min_macs=0):
    """A random conv layer the arch can hold, from the ``random.Random`` ``rng``.

    ``n``: batch up to n; ``c``: (least, most) input and output channels per group; ``hw``: the
    largest ifmap side, the smallest being what the filter needs (with padding) plus
    ``extra``; ``rs``/``s``: the largest R (default: the array's rows) and S (and the ifmap
    spad); ``shifts``: requantization shifts to choose from (``None`` in the list: none), and a
    random ReLU; without it neither. Layers with fewer than ``min_macs`` MACs are drawn again.
    """
    while True:
        g = rng.choice(groups)
        R = rng.randint(1, min(arch.rows, rs or arch.rows))
        S = rng.randint(1, min(arch.ifmap_spad_depth, s))
        pad = rng.randint(0, min(R, S) - 1)
        out = {} if shifts is None else {"relu": rng.random() < 0.5, "shift": rng.choice(shifts)}
        try:
            layer = LayerSpec(N=rng.randint(1, n), C=g * rng.randint(*c),
                              H=rng.randint(max(1, R - 2 * pad) + extra, hw),
                              W=rng.randint(max(1, S - 2 * pad) + extra, hw),
                              M=g * rng.randint(*c), R=R, S=S, stride=rng.choice(stride),
                              padding=pad, groups=g, **out)
        except RowstatError:
            continue
        if layer.macs >= min_macs:
            return layer


def signed(rng, width, shape, zeros=0.0):
    """Random ``width``-bit signed integers from the NumPy Generator ``rng``, a fraction
    ``zeros`` of them zero."""
    values = rng.integers(-(1 << (width - 1)), 1 << (width - 1), size=shape, dtype=np.int64)
    if zeros:
        values[rng.random(shape) < zeros] = 0
    return values


def layer_data(arch, layer, seed, bias=True, zeros=0.3):
    """(ifmap, weights, bias) for ``layer``: full-range values, ``zeros`` of the ifmap zero."""
    rng = np.random.default_rng(seed)
    x = signed(rng, arch.act_width, layer.ifmap_shape, zeros=zeros)
    w = signed(rng, arch.weight_width, layer.weight_shape)
    b = signed(rng, arch.psum_width, (layer.M,)) if bias else None
    return x, w, b


def simulate(dut, *benches, period=1e-8, until=None):
    """Run the Amaranth testbenches ``benches`` on ``dut`` with a clock of ``period`` seconds,
    to their end (or to ``until`` seconds)."""
    sim = Simulator(dut)
    sim.add_clock(period)
    for bench in benches:
        sim.add_testbench(bench)
    if until is None:
        sim.run()
    else:
        sim.run_until(until)
