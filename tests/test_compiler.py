"""compile_layer / decode_output (gen/compiler.py) executed on the functional model
(sim/program_model.py), bit for bit against the golden model; the model's contract checks
(hazards, data stream, framing) and the input checks."""

import random

import numpy as np
import pytest

from conftest import (EYERISS, ODD, ODD_WIDTHS, SHIFTS, SMALL_GLB, TINY, WIDE, layer_data,
                      random_layer, signed)
from rowstat.gen.compiler import (DataError, FramingError, Program, compile_layer,
                                  decode_output)
from rowstat.gen.errors import MappingError, RowstatError
from rowstat.gen.layer import LayerSpec
from rowstat.gen.mapping import map_layer
from rowstat.gen.program import (COUNTERS, BlockKind, Op, Target, Wait, commands, decode_args,
                                 encode_command, header_beat)
from rowstat.sim.golden import golden_layer
from rowstat.sim.program_model import HazardError, ModelError, ProgramModel, run_program

def expected_mac_slots(mp, layer):
    """MACs done + skipped over all passes: active PEs x n*F*p*q*S per pass."""
    per_pe = mp.n * layer.F * mp.p * mp.q * layer.S
    per_strip_set = (mp.strips - 1) * mp.placement.active + mp.placement_last.active
    return (layer.groups * mp.m_blocks * mp.image_blocks * mp.channel_blocks * mp.sub_blocks
            * per_strip_set * per_pe)


def run(arch, layer, seed=0, mapping=None, bias=True, **force):
    """Compile, execute on the model, decode; check bit-exactness and the counters."""
    x, w, b = layer_data(arch, layer, seed, bias)
    mp = mapping or map_layer(arch, layer, **force)
    prog = compile_layer(arch, layer, x, w, b, mapping=mp)
    result = run_program(arch, prog.cmd, prog.data)
    assert len(result.beats) == prog.out_beats
    out, counters = decode_output(prog, result.beats)
    gold = golden_layer(arch, layer, x, w, b)
    assert out.dtype == np.int64 and out.shape == layer.ofmap_shape
    np.testing.assert_array_equal(out, gold, err_msg=f"{layer} {mp.summary()}")
    assert counters["passes"] == mp.passes
    assert counters["words_in"] == len(prog.data)
    assert counters["words_out"] == prog.out_beats - 1 - len(COUNTERS) * prog.counter_beats
    assert counters["macs"] + counters["macs_skipped_zero"] == expected_mac_slots(mp, layer)
    assert layer.macs <= counters["macs"] + counters["macs_skipped_zero"]
    # Filters padded up to m_blocks * m per group multiply real (non-zero) ifmaps by zero
    # weights: those MACs count too.
    m_padded = mp.m_blocks * mp.m
    assert counters["macs"] * layer.M_per_group <= layer.macs * m_padded
    assert counters == result.counters[-1]
    return prog, mp, counters


@pytest.mark.parametrize("name, arch, count", [
    ("tiny", TINY, 24), ("odd", ODD, 16), ("eyeriss", EYERISS, 10), ("small_glb", SMALL_GLB, 12),
    ("wide", WIDE, 6), ("odd_widths", ODD_WIDTHS, 6)])
def test_random_layers_bit_exact(name, arch, count):
    rng = random.Random(f"compiler-{name}")
    for i in range(count):
        layer = random_layer(rng, arch, c=(1, 20 if i % 2 == 0 else 7), shifts=SHIFTS)
        force = rng.choice([{}, {}, {"p": 1, "q": 1}, {"e": 1}])
        try:
            mp = map_layer(arch, layer, **force)
        except MappingError:
            mp = map_layer(arch, layer)
        run(arch, layer, seed=i, mapping=mp, bias=rng.random() < 0.7)


@pytest.mark.parametrize("arch, layer, force, features", [
    # several channel blocks (psums continue through the psum GIN) and filter sub-blocks
    (TINY, LayerSpec(N=2, C=7, H=9, W=8, M=10, R=3, S=2, padding=1), dict(p=2, q=1, e=2),
     ("cbs", "sub", "partial")),
    # several m blocks (the bias table twice) and strips on a small GLB
    (SMALL_GLB, LayerSpec(N=2, C=17, H=16, W=8, M=23, R=3, S=2, stride=3), {},
     ("cbs", "mblocks")),
    # one psum region only: drains not overlapped, still correct
    (SMALL_GLB, LayerSpec(N=2, C=17, H=16, W=8, M=23, R=3, S=2, stride=3),
     dict(n=2, e=2, p=6, q=1, t=2, m=12), ("single",)),
    # one ifmap buffer
    (TINY.replace(glb_banks=2, glb_bank_depth=64),
     LayerSpec(N=1, C=3, H=6, W=90, M=4, R=3, S=2), dict(e=1), ("ifmap1", "single", "cbs")),
    # one filter half: the filters of a pass fill more than half the filter buffer
    (TINY.replace(glb_banks=32, glb_bank_depth=8), LayerSpec(N=1, C=3, H=6, W=6, M=7, R=2, S=3),
     dict(p=3, t=1, r=1), ("filter1", "sub")),
    # folded set: more ofmap rows than columns (segments)
    (TINY, LayerSpec(N=1, C=2, H=9, W=7, M=3, R=1, S=3, relu=True), dict(e=7), ("segments",)),
    # channel copies (r) and filter copies (t)
    (ODD, LayerSpec(N=1, C=6, H=5, W=6, M=6, R=2, S=2, shift=2), dict(r=2, t=2, e=2),
     ("r", "t")),
    # stride larger than the filter: ifmap rows and columns no window covers
    (ODD, LayerSpec(N=2, C=3, H=17, W=17, M=4, R=2, S=1, stride=4, padding=1), dict(e=2),
     ("partial",)),
    # groups, each its own sub-layer
    (EYERISS, LayerSpec(N=1, C=12, H=10, W=10, M=8, R=3, S=3, padding=1, groups=4, shift=8,
                        relu=True), {}, ()),
    # an AlexNet-like CONV2 slice on the eyeriss preset
    (EYERISS, LayerSpec(N=1, C=16, H=27, W=27, M=32, R=5, S=5, padding=2), {},
     ("cbs", "partial", "r")),
])
def test_structures(arch, layer, force, features):
    prog, mp, _ = run(arch, layer, seed=3, **force)
    have = {
        "cbs": mp.channel_blocks > 1, "sub": mp.sub_blocks > 1, "mblocks": mp.m_blocks > 1,
        "partial": mp.e_last != mp.e, "single": mp.psum_regions == mp.sub_blocks,
        "ifmap1": mp.ifmap_buffers == 1, "segments": mp.placement.segments > 1,
        "r": mp.r > 1, "t": mp.t > 1, "filter1": mp.filter_buffers == 1,
    }
    for f in features:
        assert have[f], (f, mp.summary(), mp.to_dict())
    ops = prog.stats["commands"]
    assert ops["PASS"] == mp.passes and ops["COUNTERS"] == 1
    assert ops["DRAIN"] == len(prog.blocks)


def command_positions(cmd):
    return [pos for pos, *_ in commands(cmd)]


def test_every_wait_is_needed():
    """Clearing the wait mask of any waiting command makes the model report a hazard, so the
    derived masks are both sufficient (the program runs) and minimal."""
    layer = LayerSpec(N=2, C=5, H=7, W=6, M=6, R=2, S=2)
    x, w, b = layer_data(TINY, layer, 1)
    mp = map_layer(TINY, layer, p=2, q=1, e=3)
    prog = compile_layer(TINY, layer, x, w, b, mapping=mp)
    waiting = [pos for pos, op, wait, _ in commands(prog.cmd)
               if wait and op in (Op.LOAD, Op.PASS, Op.DRAIN)]
    assert len(waiting) > 10
    for pos in waiting:
        cmd = list(prog.cmd)
        cmd[pos] &= ~0xF0
        with pytest.raises(HazardError, match="wait mask needs"):
            run_program(TINY, cmd, prog.data)


def test_model_contract_errors():
    layer = LayerSpec(N=1, C=2, H=5, W=5, M=2, R=2, S=2)
    x, w, b = layer_data(TINY, layer, 2)
    prog = compile_layer(TINY, layer, x, w, b)
    with pytest.raises(ModelError, match="left over"):
        run_program(TINY, prog.cmd, prog.data + [0])
    with pytest.raises(ModelError, match="data beats"):
        run_program(TINY, prog.cmd, prog.data[:-1])
    with pytest.raises(ModelError, match="unknown opcode"):
        run_program(TINY, prog.cmd + [0xF], prog.data)
    with pytest.raises(ModelError, match="nargs"):
        run_program(TINY, [int(Op.LAYER)], [])
    # FENCE: waits, does nothing else
    fence = encode_command(TINY, Op.FENCE, wait=Wait.ALL)
    pos = command_positions(prog.cmd)[3]
    beats = run_program(TINY, prog.cmd[:pos] + fence + prog.cmd[pos:], prog.data).beats
    np.testing.assert_array_equal(decode_output(prog, beats)[0], golden_layer(TINY, layer, x, w, b))
    # a PASS that reads GLB words nobody wrote
    passes = [pos for pos, op, *_ in commands(prog.cmd) if op == Op.PASS]
    cmd = list(prog.cmd)
    cmd[passes[0] + 1] += 100                   # filter streamer base
    with pytest.raises(ModelError, match="never written|reads filter"):
        run_program(TINY, cmd, prog.data)
    # strict reads off: the model still runs such a program, with garbage results
    model = ProgramModel(TINY, strict_reads=False)
    assert len(model.run(cmd, prog.data).beats) == prog.out_beats


def test_decode_framing_errors():
    layer = LayerSpec(N=1, C=2, H=6, W=6, M=3, R=3, S=3, shift=4)
    x, w, b = layer_data(TINY, layer, 4)
    prog = compile_layer(TINY, layer, x, w, b)
    beats = run_program(TINY, prog.cmd, prog.data).beats
    out, counters = decode_output(prog, beats)
    np.testing.assert_array_equal(out, golden_layer(TINY, layer, x, w, b))
    assert set(counters) == set(COUNTERS)
    with pytest.raises(FramingError, match="output ends"):
        decode_output(prog, beats[:-1])
    with pytest.raises(FramingError, match="extra output beat"):
        decode_output(prog, beats + [0])
    bad = list(beats)
    bad[0] ^= 0xFF
    with pytest.raises(FramingError, match="bad magic"):
        decode_output(prog, bad)
    bad = list(beats)
    bad[0] = header_beat(BlockKind.COUNTERS, prog.blocks[0].beats)
    with pytest.raises(FramingError, match="kind 2"):
        decode_output(prog, bad)
    bad = list(beats)
    bad[0] = header_beat(BlockKind.OFMAP, prog.blocks[0].beats + 1)
    with pytest.raises(FramingError, match="beats"):
        decode_output(prog, bad)
    with pytest.raises(FramingError, match=f"not a {TINY.dram_width}-bit value"):
        decode_output(prog, [1 << TINY.dram_width] + beats[1:])
    assert issubclass(FramingError, RowstatError)


ACT_HI = (1 << (TINY.act_width - 1)) - 1
PSUM_HI = (1 << (TINY.psum_width - 1)) - 1


@pytest.mark.parametrize("which, value, message", [
    ("ifmap", lambda x: x[:, :1], r"ifmap: shape \(1, 1, 6, 6\) does not match the layer; "
                                  r"allowed: \(1, 2, 6, 6\)"),
    ("ifmap", lambda x: x.astype(float), "ifmap: values of type float64 are not integers"),
    ("ifmap", lambda x: x.astype(bool), "values of type bool are not integers"),
    ("ifmap", lambda x: np.where(x == x.flat[5], ACT_HI + 1, x),
     rf"ifmap: value {ACT_HI + 1} at index .* outside the signed {TINY.act_width}-bit range; "
     rf"allowed: {-ACT_HI - 1}..{ACT_HI}"),
    ("weights", lambda w: w - (1 << TINY.weight_width),
     rf"weights: value .* outside the signed {TINY.weight_width}-bit range"),
    ("weights", lambda w: w.astype(np.uint64) * 0 + np.uint64(1 << 63),
     "weights: value 9223372036854775808"),
    ("weights", lambda w: w.reshape(-1), "weights: shape"),
    ("bias", lambda b: b[:2], r"bias: shape \(2,\) does not match the layer; allowed: \(3,\)"),
    ("bias", lambda b: b * 0 + PSUM_HI + 1,
     rf"bias: value {PSUM_HI + 1} .* signed {TINY.psum_width}-bit range"),
    ("ifmap", lambda x: None, "ifmap: missing"),
    ("ifmap", lambda x: [[1, 2], [3]], "ifmap: not an array"),
])
def test_bad_inputs(which, value, message):
    layer = LayerSpec(N=1, C=2, H=6, W=6, M=3, R=3, S=3)
    x, w, b = layer_data(TINY, layer, 5)
    args = {"ifmap": x, "weights": w, "bias": b}
    args[which] = value(args[which])
    with pytest.raises(DataError, match=message) as info:
        compile_layer(TINY, layer, args["ifmap"], args["weights"], args["bias"])
    assert "\n" not in str(info.value)
    assert isinstance(info.value, RowstatError)


def test_program_and_mapping_checks():
    layer = LayerSpec(N=1, C=2, H=6, W=6, M=3, R=3, S=3)
    other = LayerSpec(N=1, C=2, H=7, W=6, M=3, R=3, S=3)
    x, w, b = layer_data(TINY, layer, 6)
    with pytest.raises(MappingError, match="another"):
        compile_layer(TINY, layer, x, w, b, mapping=map_layer(TINY, other))
    prog = compile_layer(TINY, layer, x.astype(np.int8), w.astype(np.int16), b)
    assert isinstance(prog, Program)
    assert all(0 <= v < 1 << 32 for v in prog.cmd)
    assert all(0 <= v < 1 << TINY.dram_width for v in prog.data)
    assert prog.estimated_cycles() == prog.mapping.cycles
    assert prog.out_bits == TINY.psum_width


@pytest.mark.slow
def test_alexnet_on_model():
    """AlexNet CONV1-5 at their real shapes (batch 1) on the eyeriss preset, on the model."""
    for layer in (
            LayerSpec(N=1, C=3, H=227, W=227, M=96, R=11, S=11, stride=4),
            LayerSpec(N=1, C=96, H=27, W=27, M=256, R=5, S=5, padding=2, groups=2),
            LayerSpec(N=1, C=256, H=13, W=13, M=384, R=3, S=3, padding=1),
            LayerSpec(N=1, C=384, H=13, W=13, M=384, R=3, S=3, padding=1, groups=2),
            LayerSpec(N=1, C=384, H=13, W=13, M=256, R=3, S=3, padding=1, groups=2, relu=True,
                      shift=10)):
        run(EYERISS, layer, seed=7)


@pytest.mark.parametrize("name, arch", [("tiny", TINY), ("odd", ODD), ("small_glb", SMALL_GLB),
                                        ("eyeriss", EYERISS), ("wide", WIDE)])
def test_plan_is_the_compiled_program_without_data(name, arch):
    """plan_layer (no data, no command words) gives exactly compile_layer's steps."""
    from rowstat.gen.compiler import plan_layer
    rng = random.Random(f"plan-{name}")
    for i in range(8):
        layer = random_layer(rng, arch, c=(1, 20 if i % 2 == 0 else 7), shifts=SHIFTS)
        mp = map_layer(arch, layer)
        x, w, b = layer_data(arch, layer, i)
        program = compile_layer(arch, layer, x, w, b, mapping=mp)
        plan = plan_layer(arch, layer, mp)
        assert plan.steps == program.steps
        assert plan.cmd == [] and plan.data == []
        assert plan.out_beats == program.out_beats
        assert sum(a["count"] for op, _, a in plan.steps if op == Op.LOAD) == len(program.data)


def test_model_tag_tables_are_as_deep_as_the_rtls():
    """The RTL's tag tables hold tag_depth entries: 64 on tiny (4 * 3 * 4 = 48 destinations,
    rounded up to a power of two). The model's do too, so it rejects a program that would
    overflow them, by a LOAD past the end or a PASS streaming to more tags."""
    assert TINY.tag_depth == 64

    def load(addr, count):
        return encode_command(TINY, Op.LOAD, {"target": Target.IFMAP_TAGS, "addr": addr,
                                              "count": count})
    run_program(TINY, load(62, 2), [0, 0])       # the last two entries
    with pytest.raises(ModelError, match="entries 63..64 exceed the table's 64"):
        run_program(TINY, load(63, 2), [0, 0])

    layer = LayerSpec(N=1, C=2, H=5, W=5, M=2, R=2, S=2)
    x, w, b = layer_data(TINY, layer, 2)
    prog = compile_layer(TINY, layer, x, w, b)
    pos, op, wait, words = next(c for c in commands(prog.cmd) if c[1] == Op.PASS)
    args = decode_args(TINY, Op.PASS, words)
    args["ifmap"]["ntags"] = TINY.tag_depth + 1
    cmd = list(prog.cmd)
    cmd[pos:pos + 1 + len(words)] = encode_command(TINY, Op.PASS, args, wait=wait)
    with pytest.raises(ModelError, match="ntags=65 exceeds the tag table's 64 entries"):
        run_program(TINY, cmd, prog.data)
