"""The analytical model (sim/model.py): its access counts equal what the functional model of
the accelerator (sim/program_model.py) counts when it executes the compiled program, on seeded
random layers and architectures and on hand-picked structures; NoC and spad counts against
hand-derived numbers; energy arithmetic; the cost table and its checks; the networks."""

import json
import random

import numpy as np
import pytest

from conftest import ODD, ODD_WIDTHS, SHIFTS, SMALL_GLB, TINY, WIDE, random_layer
from rowstat.gen.compiler import compile_layer, plan_layer
from rowstat.gen.config import PRESETS
from rowstat.gen.errors import MappingError, RowstatError
from rowstat.gen.layer import LayerSpec
from rowstat.gen.mapping import map_layer
from rowstat.gen.networks import ALEXNET, MOBILENET_PW, NETWORKS, VGG16, network_layers
from rowstat.sim.model import (DEFAULT_COSTS, ENERGY_LEVELS, CostError, LayerModel, check_costs,
                               layer_accesses, layer_energy, load_costs, model_layer,
                               model_network, network_totals)
from rowstat.sim.program_model import run_program
from rowstat.sim.timing import program_cycles


EYERISS = PRESETS["eyeriss"]

#: model access name -> (where the program model counts it, its name there)
COUNTED = {
    "dram_read_words": ("counters", "words_in"),
    "dram_write_words": ("counters", "words_out"),
    "glb_reads": ("counters", "glb_reads"),
    "glb_writes": ("counters", "glb_writes"),
    "passes": ("counters", "passes"),
    "macs": ("counters", "macs"),
    "macs_skipped_zero": ("counters", "macs_skipped_zero"),
    "filter_buffer_reads": ("stats", "filter_buffer_reads"),
    "filter_buffer_writes": ("stats", "filter_buffer_writes"),
    "gin_filter_beats": ("stats", "filt_beats"),
    "gin_ifmap_beats": ("stats", "ifmap_beats"),
    "gin_psum_beats": ("stats", "psum_beats"),
    "gon_beats": ("stats", "gon_beats"),
    "noc_filter_words": ("stats", "filt_words_received"),
    "noc_ifmap_words": ("stats", "ifmap_words_received"),
    "noc_psum_in_words": ("stats", "psum_words_received"),
    "noc_psum_out_words": ("stats", "gon_words"),
    "noc_psum_local_words": ("stats", "local_psum_words"),
}


def layer_data(arch, layer, seed, zeros=0.3):
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (arch.act_width - 1)), 1 << (arch.act_width - 1)
    x = rng.integers(lo, hi, layer.ifmap_shape)
    x[x == 0] = 1
    if zeros:
        x[rng.random(layer.ifmap_shape) < zeros] = 0
    w = rng.integers(-(1 << (arch.weight_width - 1)), 1 << (arch.weight_width - 1),
                     layer.weight_shape)
    return x, w


def executed(arch, layer, mp, x, w):
    """What the program model counts running the compiled program: {name: value}."""
    prog = compile_layer(arch, layer, x, w, None, mapping=mp)
    res = run_program(arch, prog.cmd, prog.data)
    src = {"counters": res.counters[-1], "stats": res.stats}
    return {name: src[where].get(key, 0) for name, (where, key) in COUNTED.items()}


def check_against_program(arch, layer, mp, seed=0):
    x, w = layer_data(arch, layer, seed)
    acc = layer_accesses(arch, layer, mp, ifmap=x, weights=w)
    got = {k: acc[k] for k in COUNTED}
    want = executed(arch, layer, mp, x, w)
    assert got == want, (layer, mp.summary(),
                         {k: (got[k], want[k]) for k in got if got[k] != want[k]})
    # the sums the model states
    assert acc["mac_steps"] == acc["macs"] + acc["macs_skipped_zero"]
    assert acc["dram_read_words"] == sum(acc[f"dram_{k}_words"]
                                         for k in ("ifmap", "filter", "bias", "config"))
    assert acc["glb_reads"] == acc["glb_ifmap_reads"] + acc["glb_psum_reads"]
    return acc


def random_mapping(rng, arch, layer):
    force = rng.choice([{}, {}, {"p": 1, "q": 1}, {"e": 1}, {"e": 2, "p": 2}, {"n": 1}])
    try:
        return map_layer(arch, layer, **force)
    except MappingError:
        return map_layer(arch, layer)


@pytest.mark.parametrize("name, arch, count", [
    ("tiny", TINY, 14), ("odd", ODD, 10), ("eyeriss", EYERISS, 6), ("small_glb", SMALL_GLB, 8),
    ("wide", WIDE, 4), ("odd_widths", ODD_WIDTHS, 4)])
def test_random_layers_match_program_model(name, arch, count):
    rng = random.Random(f"model-{name}")
    seen = set()
    for i in range(count):
        layer = random_layer(rng, arch, c=(1, 20 if i % 2 == 0 else 7), shifts=SHIFTS)
        mp = random_mapping(rng, arch, layer)
        check_against_program(arch, layer, mp, seed=i)
        seen |= {f for f, on in (("cbs", mp.channel_blocks > 1), ("sub", mp.sub_blocks > 1),
                                 ("partial", mp.e_last != mp.e), ("groups", mp.groups > 1))
                 if on}
    assert "cbs" in seen and len(seen) >= 2, seen     # they reach the interesting cases


@pytest.mark.parametrize("arch, layer, force", [
    # several channel blocks (psums continue through the psum GIN) and filter sub-blocks
    (TINY, LayerSpec(N=2, C=7, H=9, W=8, M=10, R=3, S=2, padding=1), dict(p=2, q=1, e=2)),
    # several m blocks (bias loaded twice), strips, a small GLB
    (SMALL_GLB, LayerSpec(N=2, C=17, H=16, W=8, M=23, R=3, S=2, stride=3), {}),
    # one ifmap buffer, one psum region
    (TINY.replace(glb_banks=2, glb_bank_depth=64), LayerSpec(N=1, C=3, H=6, W=90, M=4, R=3, S=2),
     dict(e=1)),
    # folded set (segments) and a narrower last strip
    (TINY, LayerSpec(N=1, C=2, H=9, W=7, M=3, R=1, S=3, relu=True), dict(e=7)),
    # channel copies (r) and filter copies (t)
    (ODD, LayerSpec(N=1, C=6, H=5, W=6, M=6, R=2, S=2, shift=2), dict(r=2, t=2, e=2)),
    # stride larger than the filter: dropped ifmap positions and unread ifmap rows
    (ODD, LayerSpec(N=2, C=3, H=17, W=17, M=4, R=2, S=1, stride=4, padding=1), dict(e=2)),
    # groups, several images per pass
    (EYERISS, LayerSpec(N=2, C=12, H=10, W=10, M=8, R=3, S=3, padding=1, groups=4, shift=8),
     dict(n=2)),
    # an AlexNet-CONV2-like slice and a pointwise layer on the eyeriss preset
    (EYERISS, LayerSpec(N=1, C=16, H=27, W=27, M=32, R=5, S=5, padding=2), {}),
    (EYERISS, LayerSpec(N=1, C=40, H=14, W=14, M=24, R=1, S=1), {}),
])
def test_structures_match_program_model(arch, layer, force):
    check_against_program(arch, layer, map_layer(arch, layer, **force), seed=5)


def test_macs_without_data_assume_dense_data():
    """Without an ifmap, ``macs`` counts every slot except the padding's; it equals the
    hardware count for data with no zeros, and there is no skipped count."""
    for arch, layer, force in (
            (TINY, LayerSpec(N=2, C=5, H=7, W=6, M=5, R=3, S=2, padding=1), dict(q=2, r=1)),
            (ODD, LayerSpec(N=1, C=4, H=9, W=9, M=7, R=2, S=3, stride=3, padding=2), {})):
        mp = map_layer(arch, layer, **force)
        x, w = layer_data(arch, layer, 1, zeros=0)
        acc = layer_accesses(arch, layer, mp)
        assert "macs_skipped_zero" not in acc
        assert acc["macs"] == executed(arch, layer, mp, x, w)["macs"]
        assert acc == {k: v for k, v in layer_accesses(arch, layer, mp, ifmap=x).items()
                       if k != "macs_skipped_zero"}


def test_hand_counted_small_layer():
    """A layer small enough to count by hand: tiny preset (3 x 4 PEs, 8-bit data, 24-bit
    psums, 16-bit ifmap GIN = 2 words a beat, 48-bit psum GIN = 2 psums, 32-bit filter GIN =
    4 weights, 48-bit GLB words and DRAM beats), 1 image, C=2, 4x4 ifmap, M=2, 2x2 filters,
    stride 1, no padding: E = F = 3. Forced p=1, q=1, r=1, t=1, e=3: one strip, 2 channel blocks,
    2 sub-blocks = 4 passes on the 2 x 3 set."""
    layer = LayerSpec(N=1, C=2, H=4, W=4, M=2, R=2, S=2, shift=0)
    mp = map_layer(TINY, layer, p=1, q=1, r=1, t=1, e=3)
    assert (mp.strips, mp.channel_blocks, mp.sub_blocks, mp.m_blocks, mp.passes) == (1, 2, 2, 1, 4)
    acc = layer_accesses(TINY, layer, mp)
    # per pass: 6 PEs; each gets S=2 weights and a 4-word ifmap row (Wp = 4), does 3*2 = 6
    # MAC slots and sends 3 psums (up, or out at the top row)
    assert acc["passes"] == 4
    assert acc["noc_filter_words"] == 4 * 6 * 2
    assert acc["noc_ifmap_words"] == 4 * 6 * 4
    assert acc["noc_psum_local_words"] == 4 * 3 * 3          # bottom row -> top row
    assert acc["noc_psum_out_words"] == 4 * 3 * 3            # top row -> GON
    assert acc["noc_psum_in_words"] == 2 * 3 * 3             # second channel block only
    assert acc["mac_steps"] == acc["macs"] == 4 * 6 * 6      # no padding anywhere
    assert acc["spad_filter_writes"] == 4 * 6 * 2
    assert acc["spad_filter_reads"] == acc["macs"]
    assert acc["spad_ifmap_writes"] == 4 * 6 * 4
    assert acc["spad_ifmap_reads"] == 4 * 6 * 6              # p=1: one read per slot
    assert acc["spad_psum_reads"] == acc["spad_psum_writes"] == 4 * 6 * 6
    # the 4 ifmap rows (one tag each), 2 beats each (4 words at 2 a beat), 3 beats a GLB
    # word: 3 GLB words per strip and channel block, loaded once, streamed by both sub-blocks
    assert acc["dram_ifmap_words"] == acc["glb_ifmap_writes"] == 2 * 3
    assert acc["glb_ifmap_reads"] == 4 * 3
    assert acc["gin_ifmap_beats"] == 4 * 8
    # filters: 2 tags (filter rows) x 1 beat (2 weights) per pass, 1 beat a GLB word
    assert acc["dram_filter_words"] == acc["filter_buffer_reads"] == 4 * 2
    # psums: 3 chains x 2 beats (3 psums at 2 a beat) per pass written; read back by the
    # second channel block and by the drain
    assert acc["glb_psum_writes"] == acc["gon_beats"] == 4 * 6
    assert acc["gin_psum_beats"] == 2 * 6
    assert acc["glb_psum_reads"] == 2 * 6 + 2 * 6
    # 2 drain blocks of 9 8-bit outputs, 6 a beat: 2 beats + a header each
    assert acc["dram_write_words"] == 2 * (1 + 2)
    # bias 2 entries; tables once: 3 x 5 ID chain + 4 + 2 + 3 tags + 12 chain entries
    assert acc["dram_bias_words"] == 2
    assert acc["dram_config_words"] == 15 + 4 + 2 + 3 + 12
    x, w = layer_data(TINY, layer, 0, zeros=0)
    assert {k: acc[k] for k in COUNTED if k in acc} == \
        {k: v for k, v in executed(TINY, layer, mp, x, w).items() if k in acc}


def test_stride_over_filter_drops_ifmap_positions():
    """U > S: the PE stores only the F*S positions some window covers (per row, channel)."""
    layer = LayerSpec(N=1, C=1, H=9, W=9, M=1, R=1, S=2, stride=3)     # F = 3, Wp = 8
    mp = map_layer(TINY, layer, p=1, q=1, e=1)
    acc = layer_accesses(TINY, layer, mp)
    pe_passes = acc["passes"] * 1
    assert acc["noc_ifmap_words"] == pe_passes * 8
    assert acc["spad_ifmap_writes"] == pe_passes * 3 * 2


def test_zero_gating_counts():
    """Zero ifmap words skip their MACs and filter spad reads, not the slots."""
    layer = LayerSpec(N=1, C=3, H=6, W=6, M=4, R=3, S=3, padding=1)
    mp = map_layer(TINY, layer)
    x, _ = layer_data(TINY, layer, 2, zeros=0)
    dense = layer_accesses(TINY, layer, mp, ifmap=x)
    x[:, 1] = 0
    sparse = layer_accesses(TINY, layer, mp, ifmap=x)
    assert sparse["mac_steps"] == dense["mac_steps"]
    # channel 1's windows: 16 (e, r) x 16 (f, s) pairs inside the 6x6 ifmap (padding 1),
    # each skipped for every filter of the padded filter range
    assert dense["macs"] - sparse["macs"] == mp.m_blocks * mp.m * 16 * 16
    assert sparse["macs_skipped_zero"] - dense["macs_skipped_zero"] == mp.m_blocks * mp.m * 256
    assert sparse["spad_filter_reads"] == sparse["macs"] < dense["macs"]
    assert sparse["spad_psum_reads"] == dense["spad_psum_reads"]
    with pytest.raises(RowstatError, match=r"^ifmap: shape \(3, 6, 6\) does not match"):
        layer_accesses(TINY, layer, mp, ifmap=x[0])


def test_energy_by_hand():
    """A few accesses on tiny (8-bit data, 24-bit psums, 48-bit GLB words and beats) with the
    default costs, in 16-bit MACs: each access costs its level's cost x its bits / 16."""
    layer = LayerSpec(N=1, C=4, H=8, W=8, M=4, R=3, S=3, padding=1, shift=4)
    a = dict.fromkeys(model_layer(TINY, layer).accesses, 0)
    a.update(dram_ifmap_words=10,                          # 200 x 10 x 3 = 6000
             glb_psum_reads=5, filter_buffer_writes=2,     # 6 x 7 x 3 = 126
             noc_filter_words=7, noc_psum_local_words=4,   # 2 x (7 x 0.5 + 4 x 1.5) = 19
             spad_ifmap_reads=8, spad_psum_writes=2,       # 1 x (8 x 0.5 + 2 x 1.5) = 7
             macs=32)                                      # 1 x 32 x 0.5 = 16
    e = layer_energy(a, arch=TINY)
    assert {k: e[k] for k in ("dram", "glb", "noc", "spad", "mac", "total")} == \
        {"dram": 6000, "glb": 126, "noc": 19, "spad": 7, "mac": 16, "total": 6168}


def test_energy_arithmetic():
    layer = LayerSpec(N=1, C=4, H=8, W=8, M=4, R=3, S=3, padding=1, shift=4)
    m = model_layer(TINY, layer)
    a, e = m.accesses, m.energy
    assert e == layer_energy(a, arch=TINY)
    assert e["total"] == pytest.approx(sum(e[k] for k in ENERGY_LEVELS))
    for level, parts in m.energy_by_type.items():
        assert sum(parts.values()) == pytest.approx(e[level])
    # costs scale linearly, word_bits inversely; a zero cost removes its level
    doubled = layer_energy(a, {k: 2 * v for k, v in DEFAULT_COSTS.items() if k != "word_bits"},
                           arch=TINY)
    assert doubled["total"] == pytest.approx(2 * e["total"])
    assert layer_energy(a, {"word_bits": 32}, arch=TINY)["total"] == pytest.approx(e["total"] / 2)
    assert layer_energy(a, {"dram": 0}, arch=TINY)["dram"] == 0
    # the default arch widths are the eyeriss preset's
    assert layer_energy(a) == layer_energy(a, arch=EYERISS)


@pytest.mark.parametrize("costs, message", [
    ({"dram": -1}, "bad value for costs: dram: -1; allowed: a finite number >= 0"),
    ({"glb": "six"}, "bad value for costs: glb: 'six'"),
    ({"spad": True}, "bad value for costs: spad: True"),
    ({"noc": float("inf")}, "allowed: a finite number >= 0"),
    ({"sram": 3}, "unknown key for costs: sram: 3; allowed: a known key (dram, glb, noc, spad, "
                  "mac, word_bits)"),
    ({"word_bits": 0}, "bad value for costs: word_bits: 0; allowed: an integer from 1 to 1024"),
    ({"word_bits": 16.5}, "word_bits: 16.5"),
    ([1, 2], "bad value for costs: [1, 2]"),
])
def test_bad_costs(costs, message):
    with pytest.raises(CostError) as info:
        check_costs(costs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_cost_files(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"dram": 100, "mac": 0.5}))
    (tmp_path / "c.toml").write_text("dram = 100\nmac = 0.5\nword_bits = 8\n")
    assert load_costs(tmp_path / "c.json") == dict(DEFAULT_COSTS, dram=100, mac=0.5)
    assert load_costs(tmp_path / "c.toml") == dict(DEFAULT_COSTS, dram=100, mac=0.5, word_bits=8)
    (tmp_path / "bad.toml").write_text("dram = \n")
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "key.toml").write_text("[spad]\nread = 1\n")
    for name, message in (("bad.toml", "allowed: valid TOML (Invalid value (at line 1"),
                          ("bad.json", "allowed: valid JSON (Expecting"),
                          ("missing.json", "missing file for --costs"),
                          ("key.toml", "bad value for key.toml: spad: {'read': 1}")):
        with pytest.raises(RowstatError) as info:
            load_costs(tmp_path / name)
        assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_layer_model_and_network():
    layers = network_layers("alexnet", batch=2)
    models = model_network(EYERISS, layers)
    assert [m.name for m in models] == list(ALEXNET)
    for m in models:
        assert isinstance(m, LayerModel)
        # the timing model's replay of the plan; the mapper's estimate is its vectorized form
        plan = plan_layer(EYERISS, m.layer, m.mapping)
        assert m.cycles == program_cycles(EYERISS, plan.steps).cycles
        assert abs(m.mapping.cycles - m.cycles) <= 0.05 * m.cycles
        assert m.pe_utilization == pytest.approx(m.layer.macs / (168 * m.cycles))
        assert m.mapping.n in (1, 2)
        d = m.to_dict()
        assert json.loads(json.dumps(d)) == d
        assert {"cycles", "pe_utilization", "energy", "accesses", "mapping"} <= set(d)
    tot = network_totals(models)
    assert tot["cycles"] == sum(m.cycles for m in models)
    assert tot["energy"]["total"] == pytest.approx(sum(m.energy["total"] for m in models))
    assert tot["accesses"]["macs"] == sum(m.accesses["macs"] for m in models)
    # a given mapping is used as is
    mp = map_layer(EYERISS, layers["CONV3"], p=4)
    assert model_layer(EYERISS, layers["CONV3"], mp).mapping is mp


def test_networks():
    assert set(NETWORKS) == {"alexnet", "vgg16", "mobilenet_pw"}
    assert len(VGG16) == 13 and len(MOBILENET_PW) == 13
    vgg = network_layers("vgg16")
    # VGG-16: 15.35 G MACs in its conv layers (Simonyan & Zisserman; ~15.3 GFLOP x 0.5)
    assert sum(layer.macs for layer in vgg.values()) == 15_346_630_656
    assert all(layer.E == layer.H and layer.R == 3 for layer in vgg.values())
    mob = network_layers("mobilenet_pw", batch=3)
    # MobileNet v1 (Howard et al., Table 2): 1x1 convs are 94.86% of its 569 M mult-adds
    assert sum(layer.macs for layer in mob.values()) == 3 * 539_492_352
    assert all(layer.R == layer.S == 1 and layer.N == 3 for layer in mob.values())
    assert network_layers("alexnet")["CONV2"].groups == 2
    with pytest.raises(RowstatError, match="bad value for --network: 'resnet'; allowed: "
                                           "alexnet, vgg16, mobilenet_pw"):
        network_layers("resnet")
    with pytest.raises(RowstatError, match="bad value for --batch: 0"):
        network_layers("vgg16", batch=0)


def test_energy_objective_never_costs_more_energy():
    """choose_mapping(objective="energy") picks the least modelled energy of its shortlist, which
    includes the fastest mapping: never more energy than the cycles objective's choice."""
    for name, layer in network_layers("alexnet").items():
        fast = model_layer(EYERISS, layer, objective="cycles")
        lean = model_layer(EYERISS, layer, objective="energy")
        assert lean.energy["total"] <= fast.energy["total"], name


def test_rtl_counters_equal_the_model():
    """The accelerator RTL's counters (tiny preset, in cocotb) equal the model's accesses:
    two layers, several channel blocks, sub-blocks, strips and stride 2; 30% zero ifmaps."""
    from rowstat.sim.run import run_layer
    for layer, force in (
            (LayerSpec(N=2, C=7, H=9, W=8, M=10, R=3, S=2, padding=1), dict(p=2, q=1, e=2)),
            (LayerSpec(N=1, C=5, H=11, W=9, M=6, R=2, S=3, stride=2, padding=1, relu=True,
                       shift=4), {})):
        mp = map_layer(TINY, layer, **force)
        x, w = layer_data(TINY, layer, 4)
        _, stats = run_layer(TINY, layer, x, w, None, mapping=mp, progress=False)
        acc = layer_accesses(TINY, layer, mp, ifmap=x)
        names = ("dram_read_words", "dram_write_words", "glb_reads", "glb_writes", "passes",
                 "macs", "macs_skipped_zero")
        assert {k: acc[k] for k in names} == {k: stats[k] for k in names}


def test_megabytes_and_the_chips():
    """Bytes from the access counts (hand numbers) and the chip's figures for AlexNet layers
    only, scaled from its batch of 4."""
    from rowstat.sim.model import chip_megabytes, data_megabytes
    acc = {"dram_read_words": 1000, "dram_write_words": 500, "glb_reads": 300,
           "glb_writes": 100, "filter_buffer_reads": 50, "filter_buffer_writes": 50}
    mb = data_megabytes(EYERISS, acc)                  # 128-bit beats and GLB words
    assert mb == {"dram": 1500 * 16 / 1e6, "glb": 500 * 16 / 1e6}
    layers = network_layers("alexnet", 4)
    assert chip_megabytes("CONV1", layers["CONV1"]) == {"dram": 5.0, "glb": 18.5}
    assert chip_megabytes("CONV5", network_layers("alexnet", 1)["CONV5"]) == {
        "dram": 1.3 / 4, "glb": 24.9 / 4}
    assert chip_megabytes("CONV2", layers["CONV1"]) is None       # the name's shape differs
    assert chip_megabytes("CONV1_1", network_layers("vgg16", 4)["CONV1_1"]) is None
