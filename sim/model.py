"""Analytical model of one conv layer on the accelerator: cycles, PE utilisation, accesses at
every level and energy, from the mapping (no data is compiled or simulated). Accesses and
energy are closed forms; cycles replay the compiler's command plan on the timing model
(:mod:`rowstat.sim.timing`).

The counts follow what the compiler (:mod:`rowstat.gen.compiler`) emits and what the hardware
does with it, loop by loop (the loop nest of :mod:`rowstat.gen.mapping`, in either order of its
tiles: how often a strip and the placement tables load comes from
:func:`rowstat.gen.mapping.strip_loads` and :func:`~rowstat.gen.mapping.strip_runs`, which
the mapper's estimate uses too).

Accesses (:func:`layer_accesses`), named like the hardware counters where they exist; the
tests check them against :mod:`rowstat.sim.program_model` (and the RTL counters):

* ``dram_read_words`` / ``dram_write_words``: beats of ``dram_width`` bits in and out (the
  ``words_in`` / ``words_out`` counters): ifmap strips (reloaded for every m block unless the
  loop order keeps them in the GLB), filters
  (every pass), biases, placement tables; ofmap blocks with their header beats (the counter
  dump itself is not counted, as in the hardware). Broken down as ``dram_{ifmap,filter,bias,
  config,ofmap}_words``.
* ``glb_reads`` / ``glb_writes``: GLB words of the ifmap and psum spaces (the counters), broken
  down as ``glb_{ifmap,psum}_{reads,writes}``; ``filter_buffer_reads`` / ``_writes`` are the
  filter buffer's words (not in the hardware counters).
* ``passes``; ``mac_steps``: MAC slots the PEs issue (MACs done + skipped by zero gating,
  including zero-padded channels and filters); ``macs``: the hardware's ``macs`` counter, MACs
  done on a non-zero ifmap word. Without data, ``macs`` assumes only the padding is zero (spatial
  padding and padded channels are skipped; padded filters are not: their ifmap is non-zero);
  with ``ifmap`` it is exact and ``macs_skipped_zero`` is given too.
* ``gin_{filter,ifmap,psum}_beats``, ``gon_beats``: bus transfers (one per multicast beat).
* ``noc_*_words``: words received over the NoC, per receiving PE (a multicast word reaching k
  PEs counts k times): ``filter``, ``ifmap``, ``psum_in`` (psum GIN to the chain bottoms),
  ``psum_out`` (chain tops to the GON) and ``psum_local`` (PE to the PE above).
* ``spad_*``: per PE (rowstat.hw.pe): the filter spad is written p*q*S times per pass and read
  once per MAC done (zero gating skips the read); the ifmap spad is written once per stored
  position word (positions no window covers, when stride > S, are dropped) and read once per
  (column, s, channel), that word being reused by the p filters; the psum spad (with its output
  FIFO, the "second psum bank") is read and written once per MAC slot.

Energy (:func:`layer_energy`) = sum over levels of accesses x cost. The default costs are the
Eyeriss relative energies (REFERENCE.md, ISCA 2016 Table IV) per access of a ``word_bits``
(16-bit) word: spad 1, NoC (inter-PE) 2, GLB 6, DRAM 200, MAC 1. An access of b bits costs
``cost * b / word_bits``: a 64-bit DRAM beat 4 x 200, a 64-bit GLB word 4 x 6, a 32-bit psum
on the NoC 2 x 2; a MAC costs ``mac * max(act_width, weight_width) / word_bits``. The filter
buffer is part of the GLB (as on the chip) and costs as the GLB. Bias-table reads and the
command stream are not counted.
"""

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..gen.compiler import DataError, plan_layer
from ..gen.config import PRESETS
from ..gen.errors import ConfigError
from ..gen.mapping import (ORDERS, _rows_in_view, config_beats, map_layer, strip_loads,
                           strip_runs)
from ..gen.networks import ALEXNET, EYERISS_ALEXNET_BATCH, EYERISS_ALEXNET_RESULTS
from ..gen.placement import _segments, ceil_div
from .timing import program_cycles

__all__ = ["LayerModel", "choose_mapping", "data_megabytes", "chip_megabytes", "model_layer",
           "model_network", "network_totals", "layer_accesses",
           "layer_energy", "cycles_of", "DEFAULT_COSTS", "ENERGY_LEVELS", "CostError",
           "load_costs", "check_costs"]

#: Relative energy per access of a ``word_bits``-bit word (REFERENCE.md: Eyeriss, 65 nm).
DEFAULT_COSTS = {"dram": 200.0, "glb": 6.0, "noc": 2.0, "spad": 1.0, "mac": 1.0,
                 "word_bits": 16}
ENERGY_LEVELS = ("dram", "glb", "noc", "spad", "mac")


class CostError(ConfigError):
    """A bad energy cost table: names the key, the value and what is allowed."""


# --- cycles -------------------------------------------------------------------------------------

def cycles_of(arch, layer, mapping, io_bits_per_cycle=None):
    """Cycles of ``layer`` run with ``mapping`` (the one place the model gets its timing): the
    compiler's command plan (no data) replayed by the timing model, :mod:`rowstat.sim.timing`."""
    plan = plan_layer(arch, layer, mapping)
    return program_cycles(arch, plan.steps, io_bits_per_cycle=io_bits_per_cycle).cycles


# --- the mapping decision ----------------------------------------------------------------------

def choose_mapping(arch, layer, objective="cycles", *, io_bits_per_cycle=None, **forced):
    """The mapping of ``layer`` on ``arch`` for ``objective`` and a link of
    ``io_bits_per_cycle`` bits per core cycle (None: unlimited): the one decision that
    ``rowstat run``, ``model``, ``report``, the board runs and whole networks all use.

    The mapper's estimate ranks all candidates (:func:`rowstat.gen.mapping.map_layer`); where
    it cannot decide alone, this model ranks its shortlist: by the timing model's cycles over a
    throttled link, by the energy of the exact access counts for ``objective="energy"``.
    """
    def rank(mp):
        if objective == "energy":
            return (layer_energy(layer_accesses(arch, layer, mp), arch=arch)["total"],
                    mp.cycles)
        return (cycles_of(arch, layer, mp, io_bits_per_cycle), mp.estimate["dram_beats"])
    return map_layer(arch, layer, objective, io_bits_per_cycle=io_bits_per_cycle, rank=rank,
                     **forced)


# --- accesses -----------------------------------------------------------------------------------

def _strip_shapes(mp):
    """[(ofmap rows, number of such strips)] of the layer's strips."""
    if mp.e_last == mp.e:
        return [(mp.e, mp.strips)]
    return [(mp.e, mp.strips - 1), (mp.e_last, 1)]


def _zero_windows(arch, layer, mp, ifmap):
    """Per group: MAC-window positions whose ifmap word is zero, summed over images and the
    group's (unpadded) channels (each is skipped once per filter of the padded group)."""
    x = np.asarray(ifmap)
    if x.shape != layer.ifmap_shape:
        raise DataError(f"ifmap: shape {x.shape} does not match the layer; allowed: "
                        f"{layer.ifmap_shape} (N, C, H, W)")
    U, E, F, R, S, pad = layer.stride, layer.E, layer.F, layer.R, layer.S, layer.padding
    z = np.pad(x == 0, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=True)
    count = np.zeros(layer.C, dtype=np.int64)
    for r in range(R):
        rows = z[:, :, r:r + U * (E - 1) + 1:U, :]
        for s in range(S):
            count += rows[:, :, :, s:s + U * (F - 1) + 1:U].sum(axis=(0, 2, 3))
    Cg = layer.C_per_group
    return [int(count[g * Cg:(g + 1) * Cg].sum()) for g in range(layer.groups)]


def _padding_windows(layer):
    """(rows, cols): (e, r) and (f, s) pairs that fall inside the unpadded ifmap."""
    def inside(n_out, k, size):
        pos = layer.stride * np.arange(n_out)[:, None] + np.arange(k)[None, :]
        return int(np.count_nonzero((pos >= layer.padding) & (pos < layer.padding + size)))
    return inside(layer.E, layer.R, layer.H), inside(layer.F, layer.S, layer.W)


def layer_accesses(arch, layer, mapping, *, ifmap=None, weights=None):
    """Access counts of ``layer`` run with ``mapping`` (see the module docstring for the names).

    Only the mapping's counts are used (n, e, p, q, r, t, m, strips, e_last, channel_blocks,
    sub_blocks, m_blocks, image_blocks, groups, order), not its placement, so the mapper can call
    this for each candidate. ``ifmap`` (N, C, H, W), if given, makes ``macs`` exact and adds
    ``macs_skipped_zero`` (zero gating looks at the ifmap only; ``weights`` is accepted for
    symmetry and not needed).
    """
    mp = mapping
    geo = arch.stream_geometry
    wpb_f, _, pw_f = geo["filter"]
    wpb_i, _, pw_i = geo["ifmap"]
    wpb_p, _, _ = geo["psum"]
    n, p, q, r, t, m = mp.n, mp.p, mp.q, mp.r, mp.t, mp.m
    k, cbs, nmb, nimg, G = mp.sub_blocks, mp.channel_blocks, mp.m_blocks, mp.image_blocks, \
        mp.groups
    R, S, U, F = layer.R, layer.S, layer.stride, layer.F
    Wp = U * (F - 1) + S
    out_per_beat = arch.out_words_per_beat(layer.shift is not None)

    blocks = G * nmb * nimg            # (group, m block, image block): each runs all strips
    tiles_pass = cbs * k               # passes per strip
    chunks_i = ceil_div(n * Wp * q, wpb_i)
    chunks_f = ceil_div(p * q * S, wpb_f)
    chunks_p = ceil_div(n * F * p, wpb_p)
    ntags_f = R * r * t
    fw = ceil_div(ntags_f * chunks_f, pw_f)          # filter words of one pass
    per_pe_steps = n * F * p * q * S                   # MAC slots of one PE in one pass
    row_psums = n * F * p                              # psums one PE sends per pass

    acc = dict.fromkeys((
        "dram_ifmap_words", "dram_filter_words", "dram_bias_words", "dram_config_words",
        "dram_ofmap_words", "glb_ifmap_reads", "glb_ifmap_writes", "glb_psum_reads",
        "glb_psum_writes", "gin_ifmap_beats", "gin_psum_beats", "gon_beats",
        "noc_filter_words", "noc_ifmap_words", "noc_psum_in_words", "noc_psum_out_words",
        "noc_psum_local_words"), 0)

    def ifmap_tags(e_s):
        """Ifmap rows a strip of e_s ofmap rows streams (one tag each), all channel copies."""
        return r * _rows_in_view(_segments(e_s, arch.cols)[0], R, U)

    def config_words(e_s):
        return config_beats(arch, R, r, t, e_s, _rows_in_view(_segments(e_s, arch.cols)[0], R, U))

    order = ORDERS.index(mp.order)
    loads = strip_loads(order, G, nmb, nimg, cbs)     # per strip position
    active_all = 0
    for e_s, count in _strip_shapes(mp):
        ntags_i = ifmap_tags(e_s)
        iw = ceil_div(ntags_i * chunks_i, pw_i)        # GLB words of one ifmap strip
        nchains = t * e_s
        active = R * e_s * r * t
        active_all += count * active
        inst = blocks * count                          # tiles of this strip shape
        acc["dram_ifmap_words"] += count * loads * iw
        acc["glb_ifmap_writes"] += count * loads * iw
        acc["glb_ifmap_reads"] += inst * tiles_pass * iw
        acc["gin_ifmap_beats"] += inst * tiles_pass * ntags_i * chunks_i
        # psums: every pass writes its chains; the passes of later channel blocks read them
        # back, and the last channel block's are drained (a header beat per block): so each
        # sub-block's region is read cbs times
        out_words = nchains * chunks_p
        acc["glb_psum_writes"] += inst * tiles_pass * out_words
        acc["gon_beats"] += inst * tiles_pass * out_words
        acc["glb_psum_reads"] += inst * k * cbs * out_words
        acc["gin_psum_beats"] += inst * k * (cbs - 1) * out_words
        acc["dram_ofmap_words"] += inst * k * (1 + ceil_div(nchains * row_psums, out_per_beat))
        acc["noc_filter_words"] += inst * tiles_pass * active * p * q * S
        acc["noc_ifmap_words"] += inst * tiles_pass * active * n * Wp * q
        acc["noc_psum_in_words"] += inst * k * (cbs - 1) * nchains * row_psums
        acc["noc_psum_out_words"] += inst * tiles_pass * nchains * row_psums
        acc["noc_psum_local_words"] += inst * tiles_pass * (active - nchains) * row_psums

    # Placement tables (ID chain, tag tables, chain table) load when the placement changes:
    # once, or twice per run through the strips when a narrower last strip follows full ones.
    if mp.e_last == mp.e or mp.strips == 1:
        acc["dram_config_words"] = config_words(mp.e_last)
    else:
        acc["dram_config_words"] = (strip_runs(order, G, nmb, nimg)
                                    * (config_words(mp.e) + config_words(mp.e_last)))
    passes = G * nmb * nimg * mp.strips * cbs * k
    acc["dram_filter_words"] = passes * fw
    acc["dram_bias_words"] = G * nmb * m
    acc["filter_buffer_writes"] = passes * fw
    acc["filter_buffer_reads"] = passes * fw
    acc["gin_filter_beats"] = passes * ntags_f * chunks_f
    acc["dram_read_words"] = (acc["dram_ifmap_words"] + acc["dram_filter_words"]
                              + acc["dram_bias_words"] + acc["dram_config_words"])
    acc["dram_write_words"] = acc["dram_ofmap_words"]
    acc["glb_reads"] = acc["glb_ifmap_reads"] + acc["glb_psum_reads"]
    acc["glb_writes"] = acc["glb_ifmap_writes"] + acc["glb_psum_writes"]
    acc["passes"] = passes

    # MACs: every (image, padded channel, padded filter, ofmap position, r, s) is one slot
    Mpad, Cpad, Cg = nmb * m, cbs * q * r, layer.C_per_group
    windows = layer.E * F * R * S
    steps = layer.N * G * Mpad * Cpad * windows
    acc["mac_steps"] = steps
    if ifmap is None:
        vr, vc = _padding_windows(layer)
        acc["macs"] = layer.N * G * Mpad * Cg * vr * vc
    else:
        zeros = sum(_zero_windows(arch, layer, mp, ifmap))
        skipped = Mpad * (zeros + layer.N * G * (Cpad - Cg) * windows)
        acc["macs"] = steps - skipped
        acc["macs_skipped_zero"] = skipped

    # spads (per PE, summed): see the module docstring
    pe_passes = blocks * cbs * k * active_all       # (active PE, pass) pairs
    stored = Wp if U <= S else F * S                # ifmap positions a PE keeps per row
    acc["spad_filter_writes"] = pe_passes * p * q * S
    acc["spad_filter_reads"] = acc["macs"]
    acc["spad_ifmap_writes"] = pe_passes * n * stored * q
    acc["spad_ifmap_reads"] = steps // p
    acc["spad_psum_reads"] = steps
    acc["spad_psum_writes"] = steps
    assert pe_passes * per_pe_steps == steps
    return {key: int(acc[key]) for key in _ACCESS_ORDER if key in acc}


_ACCESS_ORDER = (
    "dram_read_words", "dram_write_words", "dram_ifmap_words", "dram_filter_words",
    "dram_bias_words", "dram_config_words", "dram_ofmap_words",
    "glb_reads", "glb_writes", "glb_ifmap_reads", "glb_ifmap_writes", "glb_psum_reads",
    "glb_psum_writes", "filter_buffer_reads", "filter_buffer_writes",
    "passes", "mac_steps", "macs", "macs_skipped_zero",
    "gin_filter_beats", "gin_ifmap_beats", "gin_psum_beats", "gon_beats",
    "noc_filter_words", "noc_ifmap_words", "noc_psum_in_words", "noc_psum_out_words",
    "noc_psum_local_words",
    "spad_filter_reads", "spad_filter_writes", "spad_ifmap_reads", "spad_ifmap_writes",
    "spad_psum_reads", "spad_psum_writes",
)


# --- bytes, beside the chip's -------------------------------------------------------------------

def data_megabytes(arch, accesses):
    """{"dram": MB, "glb": MB} (10^6 bytes) that ``accesses`` (:func:`layer_accesses`) move:
    DRAM beats of ``dram_width`` bits in and out; GLB words of ``glb_width`` bits read and
    written, the filter buffer's included (it is part of the GLB, as on the chip)."""
    dram = accesses["dram_read_words"] + accesses["dram_write_words"]
    glb = (accesses["glb_reads"] + accesses["glb_writes"] + accesses["filter_buffer_reads"]
           + accesses["filter_buffer_writes"])
    return {"dram": dram * arch.dram_width / 8e6, "glb": glb * arch.glb_width / 8e6}


def chip_megabytes(name, layer):
    """{"dram": MB, "glb": MB} the Eyeriss chip moves for AlexNet layer ``name``
    (:data:`rowstat.gen.networks.EYERISS_ALEXNET_RESULTS`, measured at batch 4), scaled to
    ``layer``'s batch; None if ``layer`` is not that AlexNet layer."""
    shape = ALEXNET.get(name)
    if shape is None or any(getattr(layer, k) != v for k, v in shape.items()):
        return None
    chip, scale = EYERISS_ALEXNET_RESULTS[name], layer.N / EYERISS_ALEXNET_BATCH
    return {"dram": chip["dram_MB"] * scale, "glb": chip["glb_MB"] * scale}


# --- energy -------------------------------------------------------------------------------------

def check_costs(costs, source="costs"):
    """A complete cost table: ``costs`` (a dict, keys a subset of DEFAULT_COSTS) over the
    defaults. Raises CostError naming the bad key or value."""
    if not isinstance(costs, dict):
        raise CostError(source, costs, f"a table of {', '.join(DEFAULT_COSTS)}")
    out = dict(DEFAULT_COSTS)
    for key, value in costs.items():
        if key not in DEFAULT_COSTS:
            raise CostError(f"{source}: {key}", value, f"a known key ({', '.join(DEFAULT_COSTS)})",
                            what="unknown key")
        if key == "word_bits":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
                raise CostError(f"{source}: {key}", value, "an integer from 1 to 1024")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or value < 0:
            raise CostError(f"{source}: {key}", value, "a finite number >= 0")
        out[key] = value
    return out


def load_costs(path):
    """A cost table from a JSON (``.json``) or TOML file (anything else): top-level keys
    ``dram``, ``glb``, ``noc``, ``spad``, ``mac`` (relative energy per access of a
    ``word_bits``-bit word) and ``word_bits``; missing keys keep their defaults."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CostError("--costs", str(path), "an existing JSON or TOML file",
                        what="missing file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CostError("--costs", str(path), f"a readable UTF-8 file ({exc})",
                        what="unreadable file") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise CostError("--costs", str(path), f"valid JSON ({exc.msg} at line {exc.lineno})") \
            from None
    except tomllib.TOMLDecodeError as exc:
        raise CostError("--costs", str(path), f"valid TOML ({exc})") from None
    return check_costs(data, path.name)


def _energy_terms(arch, accesses, costs):
    """{(level, data type): energy} for ``accesses``."""
    c = check_costs(costs or {})
    wb = c["word_bits"]
    a = accesses
    act, wgt, psum = arch.act_width / wb, arch.weight_width / wb, arch.psum_width / wb
    beat, glb = arch.dram_width / wb, arch.glb_width / wb
    terms = {
        ("dram", "ifmap"): a["dram_ifmap_words"] * beat,
        ("dram", "filter"): a["dram_filter_words"] * beat,
        ("dram", "bias"): a["dram_bias_words"] * beat,
        ("dram", "config"): a["dram_config_words"] * beat,
        ("dram", "ofmap"): a["dram_ofmap_words"] * beat,
        ("glb", "ifmap"): (a["glb_ifmap_reads"] + a["glb_ifmap_writes"]) * glb,
        ("glb", "psum"): (a["glb_psum_reads"] + a["glb_psum_writes"]) * glb,
        ("glb", "filter"): (a["filter_buffer_reads"] + a["filter_buffer_writes"]) * glb,
        ("noc", "filter"): a["noc_filter_words"] * wgt,
        ("noc", "ifmap"): a["noc_ifmap_words"] * act,
        ("noc", "psum"): (a["noc_psum_in_words"] + a["noc_psum_out_words"]
                          + a["noc_psum_local_words"]) * psum,
        ("spad", "filter"): (a["spad_filter_reads"] + a["spad_filter_writes"]) * wgt,
        ("spad", "ifmap"): (a["spad_ifmap_reads"] + a["spad_ifmap_writes"]) * act,
        ("spad", "psum"): (a["spad_psum_reads"] + a["spad_psum_writes"]) * psum,
        ("mac", "mac"): a["macs"] * max(arch.act_width, arch.weight_width) / wb,
    }
    return {key: value * c[key[0]] for key, value in terms.items()}


def layer_energy(accesses, costs=None, *, arch=None, by_type=False):
    """Energy of ``accesses`` (from :func:`layer_accesses`) with the cost table ``costs``
    (default :data:`DEFAULT_COSTS`), in units of one ``word_bits``-bit MAC.

    Returns {level: energy} for the levels of :data:`ENERGY_LEVELS` and ``"total"``; with
    ``by_type``, {level: {data type: energy}} instead. ``arch`` gives the widths of the words
    accessed (default: the eyeriss preset's: 16-bit data, 32-bit psums, 64-bit GLB words and
    DRAM beats); pass the arch the accesses were counted on.
    """
    arch = arch if arch is not None else PRESETS["eyeriss"]
    terms = _energy_terms(arch, accesses, costs)
    if by_type:
        out = {level: {} for level in ENERGY_LEVELS}
        for (level, kind), value in terms.items():
            out[level][kind] = value
        return out
    out = {level: 0.0 for level in ENERGY_LEVELS}
    for (level, _), value in terms.items():
        out[level] += value
    out["total"] = sum(out[level] for level in ENERGY_LEVELS)
    return out



# --- the layer model ----------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerModel:
    """The model's prediction for one layer with one mapping.

    Attributes
    ----------
    layer : LayerSpec
    mapping : rowstat.gen.mapping.Mapping
    cycles : int
    pe_utilization : float
        The layer's MACs over rows x cols x cycles (as ``rowstat run`` reports it).
    accesses : dict
        Name -> count (:func:`layer_accesses`).
    energy : dict
        Level -> energy, and ``"total"`` (:func:`layer_energy`).
    energy_by_type : dict
        Level -> {data type -> energy}.
    name : str
        The layer's name in its network ("" for a lone layer).
    """

    layer: object
    mapping: object
    cycles: int
    pe_utilization: float
    accesses: dict
    energy: dict
    energy_by_type: dict = field(default_factory=dict)
    name: str = ""

    def megabytes(self):
        """{"dram": MB, "glb": MB} the layer moves (:func:`data_megabytes`), and the chip's
        for an AlexNet layer ({"chip_dram": MB, "chip_glb": MB}, :func:`chip_megabytes`)."""
        out = data_megabytes(self.mapping.arch, self.accesses)
        chip = chip_megabytes(self.name, self.layer)
        if chip:
            out.update(chip_dram=chip["dram"], chip_glb=chip["glb"])
        return out

    def to_dict(self):
        mp = self.mapping
        return {
            "name": self.name,
            "layer": self.layer.to_dict(),
            "mapping": {k: getattr(mp, k) for k in "nepqrtm"} | {
                "order": mp.order, "passes": mp.passes, "active_pes": mp.active_pes},
            "megabytes": self.megabytes(),
            "cycles": self.cycles,
            "pe_utilization": self.pe_utilization,
            "macs": self.layer.macs,
            "accesses": dict(self.accesses),
            "energy": dict(self.energy),
            "energy_by_type": {k: dict(v) for k, v in self.energy_by_type.items()},
        }


def model_layer(arch, layer, mapping=None, *, io_bits_per_cycle=None, ifmap=None, weights=None,
                costs=None, objective="cycles", name=""):
    """Model ``layer`` on ``arch``: a :class:`LayerModel`.

    ``mapping`` defaults to :func:`choose_mapping` for ``objective`` and the link.
    ``ifmap`` (and ``weights``) make the MAC counts exact (zero gating). ``costs``: a cost table
    (dict, see :func:`check_costs`), default :data:`DEFAULT_COSTS`.
    """
    if mapping is None:
        mapping = choose_mapping(arch, layer, objective, io_bits_per_cycle=io_bits_per_cycle)
    costs = check_costs(costs or {})
    accesses = layer_accesses(arch, layer, mapping, ifmap=ifmap, weights=weights)
    cycles = cycles_of(arch, layer, mapping, io_bits_per_cycle)
    return LayerModel(
        layer=layer, mapping=mapping, cycles=cycles,
        pe_utilization=layer.macs / (arch.rows * arch.cols * cycles) if cycles else 0.0,
        accesses=accesses, energy=layer_energy(accesses, costs, arch=arch),
        energy_by_type=layer_energy(accesses, costs, arch=arch, by_type=True), name=name)


def model_network(arch, layers, **kw):
    """Model every layer of ``layers`` ({name: LayerSpec}, in order): a list of LayerModel.
    Keyword arguments go to :func:`model_layer`."""
    return [model_layer(arch, layer, name=name, **kw) for name, layer in layers.items()]


def network_totals(models):
    """Sums over a list of LayerModel: cycles, MACs, utilisation, accesses, energy."""
    if not models:
        return {"cycles": 0, "macs": 0, "pe_utilization": 0.0, "accesses": {}, "energy": {}}
    pes = models[0].mapping.arch.rows * models[0].mapping.arch.cols
    cycles = sum(m.cycles for m in models)
    macs = sum(m.layer.macs for m in models)
    keys = [k for k in models[0].accesses if all(k in m.accesses for m in models)]
    return {
        "cycles": cycles, "macs": macs,
        "pe_utilization": macs / (pes * cycles) if cycles else 0.0,
        "accesses": {k: sum(m.accesses[k] for m in models) for k in keys},
        "energy": {k: sum(m.energy[k] for m in models) for k in models[0].energy},
    }
