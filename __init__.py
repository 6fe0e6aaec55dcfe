"""rowstat: a generator of row-stationary DNN accelerators."""

__version__ = "0.1.0"

__all__ = ["__version__", "run_layer"]


def run_layer(arch, layer, ifmap, weights, bias=None, **options):
    """Run one conv layer on the generated accelerator RTL in cocotb.

    ``arch`` is an ArchConfig or a preset name, ``layer`` a LayerSpec or a dict of its keys.
    Returns ``(ofmap, stats)``: the (N, M, E, F) int64 ofmap and the stats dict. Options:
    ``sim``, ``waves``, ``io_bits_per_cycle``, ``mapping``, ``objective``, ``progress``.
    """
    from .gen.config import PRESETS, load_arch
    from .gen.layer import LayerSpec
    from .sim.run import run_layer as _run_layer
    if isinstance(arch, str):
        arch = load_arch(arch)
    if isinstance(layer, dict):
        layer = LayerSpec.from_dict(layer)
    return _run_layer(arch, layer, ifmap, weights, bias, **options)
