"""Run a quantized network: accelerator layers on the RTL or the model, host ops in NumPy.

``engine="rtl"`` runs every layer on the generated Verilog in cocotb
(:func:`rowstat.sim.run.run_layer`); ``engine="model"`` computes the same integers with the
golden model (:func:`rowstat.sim.golden.golden_layer`) and the cycles, accesses and energy with
the analytical model (:func:`rowstat.sim.model.model_layer`). Both give the same integers.
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..gen.errors import MappingError, RowstatError
from .host import run_host_op
from .quantize import QLayer, check_input, quantize_tensor

__all__ = ["run_network", "NetworkResult", "ENGINES", "model_network_specs"]

ENGINES = ("model", "rtl")


@dataclass
class NetworkResult:
    """What :func:`run_network` returns.

    Attributes
    ----------
    logits : np.ndarray
        The output in float: ``ints * 2**-frac_out``.
    ints : np.ndarray
        The output as the integers the last layer produced.
    frac_out : int
    layers : list
        Per accelerator layer: a dict with ``name``, ``layer`` (the LayerSpec's dict),
        ``mapping``, ``cycles``, ``pe_utilization``, ``macs``, DRAM and GLB accesses, ``energy``
        (by level and total, from the model's access counts) and, for ``rtl``, the measured
        counters (``cycles`` is then the RTL's, ``model_cycles`` the model's).
    """

    logits: np.ndarray
    ints: np.ndarray
    frac_out: int
    layers: list = field(default_factory=list)
    #: The model's LayerModel of each layer (for ``rtl``, with the measured cycles), for the
    #: report's figures.
    models: list = field(default_factory=list, repr=False)

    def totals(self):
        keys = ("cycles", "macs", "dram_read_words", "dram_write_words", "glb_reads",
                "glb_writes")
        out = {k: sum(s[k] for s in self.layers) for k in keys}
        out["energy"] = sum(s["energy"]["total"] for s in self.layers)
        return out


def _check_arch(arch, qnet):
    if arch.act_width < qnet.act_bits or arch.weight_width < qnet.weight_bits:
        raise RowstatError(
            f"the network is quantized to {qnet.act_bits}-bit activations and "
            f"{qnet.weight_bits}-bit weights; the architecture has act_width={arch.act_width} "
            f"and weight_width={arch.weight_width}; allowed: an architecture at least as wide")


def _map(arch, name, spec, objective, io_bits_per_cycle):
    """The mapping every other path chooses (:func:`rowstat.sim.model.choose_mapping`); a
    MappingError names the layer."""
    from ..sim.model import choose_mapping
    try:
        return choose_mapping(arch, spec, objective, io_bits_per_cycle=io_bits_per_cycle)
    except MappingError as exc:
        raise MappingError(f"layer {name!r} ({spec.M}x{spec.C_per_group}x{spec.R}x"
                           f"{spec.S} on a {spec.H}x{spec.W} ifmap) does not map onto "
                           f"{arch.rows} x {arch.cols} PEs: {exc}") from None


def _check_data(arch, op, spec, ifmap):
    """What the compiler refuses (a bias wider than a psum, ...), refused by both engines and
    named with the layer."""
    from ..gen.compiler import DataError, check_inputs
    try:
        check_inputs(arch, spec, ifmap, op.weight, op.bias)
    except DataError as exc:
        raise DataError(f"layer {op.name!r}: {exc}") from None


def run_network(arch, qnet, x, engine="model", *, progress=True, sim=None, costs=None,
                io_bits_per_cycle=None, objective="cycles"):
    """Run the :class:`~rowstat.net.quantize.QNetwork` ``qnet`` on the batch ``x`` (float,
    (N, *input_shape)) and return a :class:`NetworkResult`.

    The input is quantized at the network's input scale; each accelerator layer runs on
    ``engine`` (``"rtl"``: cocotb on the generated Verilog, with a progress bar over layers;
    ``"model"``: golden model and analytical model); host ops run in NumPy on the integers.
    Where the architecture's act_width is wider than the network's act_bits, the host clamps
    each requantized layer output to act_bits (the output stage clamps to act_width).
    """
    from ..sim.golden import golden_layer
    from ..sim.model import model_layer
    if engine not in ENGINES:
        raise RowstatError(f"bad value for --engine: {engine!r}; allowed: {', '.join(ENGINES)}")
    _check_arch(arch, qnet)
    x = check_input(qnet, x)
    q = quantize_tensor(x, qnet.frac_in, qnet.act_bits)
    lo, hi = -(1 << (qnet.act_bits - 1)), (1 << (qnet.act_bits - 1)) - 1
    layers = qnet.layers
    bar = None
    if engine == "rtl" and progress:
        from tqdm import tqdm
        bar = tqdm(total=len(layers), desc=f"{qnet.name} on the RTL", unit="layer")
    stats, models = [], []
    try:
        for op in qnet.ops:
            if not isinstance(op, QLayer):
                q = run_host_op(op, q)
                continue
            spec = dataclasses.replace(op.spec, N=q.shape[0])
            ifmap = q.reshape(spec.ifmap_shape)
            mapping = _map(arch, op.name, spec, objective, io_bits_per_cycle)
            _check_data(arch, op, spec, ifmap)
            lm = model_layer(arch, spec, mapping, io_bits_per_cycle=io_bits_per_cycle,
                             ifmap=ifmap, costs=costs, name=op.name)
            s = _stats_of(op, spec, lm)
            if engine == "rtl":
                from ..sim.run import run_layer
                if bar is not None:
                    bar.set_postfix_str(op.name)
                y, rs = run_layer(arch, spec, ifmap, op.weight, op.bias, sim=sim,
                                  io_bits_per_cycle=io_bits_per_cycle, mapping=mapping,
                                  progress=False)
                s["model_cycles"] = s["cycles"]
                for key in ("cycles", "pe_utilization", "macs", "macs_skipped_zero",
                            "dram_read_words", "dram_write_words", "glb_reads", "glb_writes",
                            "passes", "sim_seconds"):
                    s[key] = rs[key]
                lm = dataclasses.replace(lm, cycles=rs["cycles"],
                                         pe_utilization=rs["pe_utilization"])
                if bar is not None:
                    bar.update(1)
            else:
                y = golden_layer(arch, spec, ifmap, op.weight, op.bias)
            if spec.shift is not None:
                y = np.clip(y, lo, hi)
            if op.kind == "gemm":
                y = y.reshape(y.shape[0], -1)
            q = y
            stats.append(s)
            models.append(lm)
    finally:
        if bar is not None:
            bar.close()
    q = np.asarray(q, dtype=np.int64)
    return NetworkResult(logits=q * 2.0 ** -qnet.frac_out, ints=q, frac_out=qnet.frac_out,
                         layers=stats, models=models)


def _stats_of(op, spec, lm):
    acc = lm.accesses
    mp = lm.mapping
    return {"name": op.name, "layer": spec.to_dict(),
            "mapping": {k: getattr(mp, k) for k in "nepqrtm"},
            "cycles": lm.cycles, "pe_utilization": lm.pe_utilization, "macs": acc["macs"],
            "layer_macs": spec.macs, "macs_skipped_zero": acc.get("macs_skipped_zero", 0),
            "passes": acc["passes"],
            "dram_read_words": acc["dram_read_words"],
            "dram_write_words": acc["dram_write_words"],
            "glb_reads": acc["glb_reads"], "glb_writes": acc["glb_writes"],
            "energy": dict(lm.energy)}


def model_network_specs(arch, specs, **kw):
    """Model ``specs`` ({name: LayerSpec}); a MappingError names the layer that does not map."""
    from ..sim.model import model_layer
    out = []
    for name, spec in specs.items():
        mapping = _map(arch, name, spec, kw.get("objective", "cycles"),
                       kw.get("io_bits_per_cycle"))
        out.append(model_layer(arch, spec, mapping, name=name, **kw))
    return out
