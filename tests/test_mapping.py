"""map_layer (gen/mapping.py): legality of every chosen mapping, the limits and their messages,
forced parameters, and the AlexNet CONV1-5 mappings on the eyeriss preset against the chip."""

import json
import random

import pytest

from rowstat.gen.config import PRESETS
from rowstat.gen.errors import MappingError
from rowstat.gen.layer import LayerSpec
from rowstat.gen.mapping import Mapping, map_layer, stream_geometry
from rowstat.sim.model import choose_mapping
from rowstat.gen.networks import ALEXNET, EYERISS_ALEXNET_MAPPING
from rowstat.gen.placement import ceil_div

TINY = PRESETS["tiny"]
EYERISS = PRESETS["eyeriss"]
ODD = TINY.replace(rows=5, cols=7)
SMALL_GLB = TINY.replace(glb_banks=3, glb_bank_depth=64)
ARCHS = {"tiny": TINY, "odd": ODD, "eyeriss": EYERISS, "small_glb": SMALL_GLB}


def alexnet(N):
    """AlexNet CONV1-5 (REFERENCE.md), unpadded sizes with the padding as a parameter."""
    return {name: LayerSpec(N=N, **shape) for name, shape in ALEXNET.items()}


#: Active PEs of the chip's own mapping (REFERENCE.md, measured results).


def check_legal(arch, layer, mp):
    """Every limit a mapping must respect, checked from its fields."""
    assert isinstance(mp, Mapping)
    n, e, p, q, r, t, m = mp.n, mp.e, mp.p, mp.q, mp.r, mp.t, mp.m
    S = layer.S
    # spads
    assert 1 <= p <= arch.psum_spad_depth
    assert q * S <= arch.ifmap_spad_depth
    assert p * q * S <= arch.filter_spad_depth
    # loop nest covers the layer
    assert layer.N % n == 0 and mp.image_blocks == layer.N // n
    assert 1 <= e <= layer.E and mp.strips == ceil_div(layer.E, e)
    assert mp.e_last == layer.E - (mp.strips - 1) * e and 1 <= mp.e_last <= e
    assert mp.channel_blocks == ceil_div(layer.C_per_group, q * r)
    assert m % (p * t) == 0 and mp.sub_blocks == m // (p * t)
    assert mp.m_blocks == ceil_div(layer.M_per_group, m)
    assert m <= getattr(arch, "bias_depth", 1024) // mp.bias_buffers
    assert mp.passes == (layer.groups * mp.m_blocks * mp.sub_blocks * mp.image_blocks
                         * mp.strips * mp.channel_blocks)
    # GLB layout
    D = arch.glb_bank_depth
    assert 0 < mp.split < arch.glb_banks
    assert mp.ifmap_buffers * mp.ifmap_region <= mp.split * D
    assert mp.psum_regions >= mp.sub_blocks
    assert mp.psum_regions * mp.psum_region <= (arch.glb_banks - mp.split) * D
    assert mp.filter_buffers * mp.filter_region <= arch.glb_filter_banks * D
    wpb_p = stream_geometry(arch)["psum"][0]
    assert mp.psum_region == t * e * ceil_div(n * layer.F * p, wpb_p)
    # placements: the shapes of a full and of the last strip, fitting the array and its IDs
    for pl, e_s in ((mp.placement, e), (mp.placement_last, mp.e_last)):
        assert (pl.shape.R, pl.shape.e, pl.shape.U, pl.shape.r, pl.shape.t) == \
            (layer.R, e_s, layer.stride, r, t)
        assert pl.active == layer.R * e_s * r * t <= arch.pes
        assert max(max(row) for row in pl.ifmap_col_id) < 1 << arch.ifmap_col_id_width
        assert max(pl.ifmap_row_id) < 1 << arch.row_id_width
        assert max(max(row) for row in pl.filter_col_id) < 1 << arch.col_id_width
    est = mp.estimate
    assert est["cycles"] > 0 and 0 < est["utilization"] <= 1
    assert mp.cycles == est["cycles"] and mp.utilization == est["utilization"]


def random_layer(rng, arch):
    g = rng.choice([1, 1, 2, 3])
    R = rng.randint(1, arch.rows)
    S = rng.randint(1, min(arch.ifmap_spad_depth, 7))
    pad = rng.randint(0, min(R, S) - 1)
    return LayerSpec(N=rng.randint(1, 4), C=g * rng.randint(1, 40), H=rng.randint(R, 40),
                     W=rng.randint(S, 40), M=g * rng.randint(1, 40), R=R, S=S,
                     stride=rng.randint(1, 4), padding=pad, groups=g)


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_random_layers_map_legally(name):
    arch = ARCHS[name]
    rng = random.Random(f"mapping-{name}")
    for _ in range(40):
        layer = random_layer(rng, arch)
        check_legal(arch, layer, map_layer(arch, layer))


@pytest.mark.parametrize("N", [1, 4])
def test_alexnet_on_eyeriss(N):
    """CONV1-5 map legally, with an estimate that agrees with the timing model, at least as
    fast (by that model) as the chip's own mapping where the chip's mapping fits here."""
    from rowstat.gen.compiler import plan_layer
    from rowstat.sim.timing import program_cycles

    def modelled(mp):
        return program_cycles(EYERISS, plan_layer(EYERISS, mp.layer, mp).steps).cycles

    for name, layer in alexnet(N).items():
        mp = map_layer(EYERISS, layer)
        check_legal(EYERISS, layer, mp)
        cycles = modelled(mp)
        assert abs(mp.cycles - cycles) <= 0.05 * cycles, (name, mp.summary(), cycles)
        assert layer.macs / (EYERISS.pes * cycles) > 0.55, (name, mp.summary())
        chip = dict(EYERISS_ALEXNET_MAPPING[name])
        chip["n"] = min(chip["n"], N)
        try:
            theirs = map_layer(EYERISS, layer, **{k: v for k, v in chip.items() if k != "m"})
        except MappingError:
            theirs = None
        if theirs is not None:
            assert cycles <= modelled(theirs) * 1.01, (name, mp.summary(), theirs.summary())
        assert mp.groups == layer.groups


def test_alexnet_scales_to_large_layers():
    """H, W up to 256 and C, M up to 512 tile through the GLB."""
    for layer in (LayerSpec(N=1, C=512, H=256, W=256, M=512, R=3, S=3, padding=1),
                  LayerSpec(N=2, C=3, H=300, W=300, M=64, R=7, S=7, stride=2, padding=3),
                  LayerSpec(N=1, C=640, H=14, W=14, M=640, R=3, S=3, padding=1)):
        check_legal(EYERISS, layer, map_layer(EYERISS, layer))
    layer = LayerSpec(N=1, C=512, H=256, W=256, M=512, R=3, S=3, padding=1)
    check_legal(TINY, layer, map_layer(TINY, layer))


@pytest.mark.parametrize("arch, layer, message", [
    (EYERISS, LayerSpec(N=1, C=1, H=20, W=20, M=1, R=13, S=3), "R=13 exceeds rows=12"),
    (EYERISS, LayerSpec(N=1, C=1, H=20, W=20, M=1, R=3, S=13),
     "S=13: q*S=13 exceeds ifmap_spad_depth=12"),
    (TINY, LayerSpec(N=1, C=1, H=3, W=5000, M=1, R=1, S=1), "F=5000 exceeds"),
    (TINY, LayerSpec(N=1, C=1, H=40, W=40, M=1, R=1, S=1, stride=16), "stride=16 exceeds"),
    (TINY.replace(glb_banks=2, glb_bank_depth=16), LayerSpec(N=1, C=1, H=8, W=300, M=1, R=1, S=1),
     "glb_banks=2"),
    (TINY.replace(glb_bank_depth=2), LayerSpec(N=1, C=1, H=8, W=8, M=1, R=3, S=3),
     "filter buffer holds 2"),
    (TINY.replace(glb_width=96, dram_width=96), LayerSpec(N=1, C=1, H=8, W=8, M=1, R=3, S=3),
     "collector writes one beat per GLB word"),
])
def test_unmappable_layers_name_the_limit(arch, layer, message):
    with pytest.raises(MappingError, match=message.replace("*", r"\*")) as info:
        map_layer(arch, layer)
    assert "\n" not in str(info.value)


def test_forced_parameters():
    layer = LayerSpec(N=2, C=6, H=9, W=9, M=8, R=3, S=3, padding=1)
    mp = map_layer(TINY, layer, p=2, q=1, e=2, n=1)
    assert (mp.p, mp.q, mp.e, mp.n) == (2, 1, 2, 1)
    check_legal(TINY, layer, mp)
    mp = map_layer(TINY, layer, p=2, t=1, m=4)
    assert (mp.m, mp.sub_blocks, mp.m_blocks) == (4, 2, 2)
    check_legal(TINY, layer, mp)
    for force, message in ((dict(p=30), "p=30 exceeds psum_spad_depth=8"),
                           (dict(q=3), r"q\*S=9 exceeds ifmap_spad_depth=8"),
                           (dict(n=3), "n=3 does not divide N=2"),
                           (dict(e=20), "e=20 exceeds E=9"),
                           (dict(p=3, t=1, m=4), "m=4 is not a multiple of p\\*t=3"),
                           (dict(m=5000), "m=5000 exceeds the bias table"),
                           (dict(x=1), "unknown mapping parameter"),
                           (dict(p=0), "bad mapping parameter p=0")):
        with pytest.raises(MappingError, match=message):
            map_layer(TINY, layer, **force)
    with pytest.raises(MappingError, match="bad objective"):
        map_layer(TINY, layer, objective="speed")


def test_objectives_and_estimate():
    layer = alexnet(1)["CONV3"]
    fast = map_layer(EYERISS, layer)
    lean = map_layer(EYERISS, layer, objective="dram")
    assert lean.estimate["dram_beats"] <= fast.estimate["dram_beats"]
    assert fast.cycles <= lean.cycles
    slow_io = choose_mapping(EYERISS, layer, io_bits_per_cycle=2)
    assert slow_io.cycles >= slow_io.estimate["dram_beats"] * EYERISS.dram_width / 2
    # the estimate alone does not choose for a throttled link or for energy
    for objective, io in (("cycles", 2), ("energy", None)):
        with pytest.raises(TypeError, match="choose_mapping"):
            map_layer(EYERISS, layer, objective, io_bits_per_cycle=io)
    d = fast.to_dict()
    json.dumps(d)
    for key in ("n", "e", "p", "q", "r", "t", "m", "passes", "active_pes"):
        assert key in d
    assert "cycles" in d["estimate"] and "utilization" in d["estimate"]
    assert "passes" in fast.summary()


def test_strips_and_placements():
    layer = LayerSpec(N=1, C=2, H=9, W=6, M=2, R=2, S=2)      # E = 8
    mp = map_layer(TINY, layer, e=3)
    assert (mp.strips, mp.e_last) == (3, 2)
    assert mp.strip(0)[:2] == (0, 3) and mp.strip(2)[:2] == (6, 2)
    assert mp.strip(2)[2] is mp.placement_last and mp.strip(1)[2] is mp.placement
    assert mp.shape_last.e == 2
    # psums continue through the GIN only when there are several channel blocks
    assert mp.continues == (mp.channel_blocks > 1)
    bottoms = [pe for pe in mp.placement.pes.values() if pe.psum_from == "gin"]
    assert bool(bottoms) == mp.continues
