"""The timing model (rowstat.sim.timing) against hand-derived schedules and against the RTL."""

import random

import numpy as np
import pytest

from rowstat import run_layer
from rowstat.gen.compiler import compile_layer
from rowstat.gen.config import PRESETS
from rowstat.gen.errors import RowstatError
from rowstat.gen.layer import LayerSpec
from rowstat.gen.program import COUNTERS, Op, Wait, counter_beats, nargs
from rowstat.hw.drain import DRAIN_LATENCY
from rowstat.sim.model import choose_mapping, model_layer
from rowstat.sim.timing import program_cycles

TINY = PRESETS["tiny"]
ODD = TINY.replace(rows=5, cols=7)
EYERISS = PRESETS["eyeriss"]


def words(arch, op):
    return nargs(arch, op) + 1


def test_loads_run_one_after_another_and_counters_wait_for_all():
    a = TINY
    steps = [(Op.LAYER, 0, {"pe": {}}),
             (Op.LOAD, 0, {"count": 10}),
             (Op.LOAD, 0, {"count": 5}),
             (Op.COUNTERS, 0, {"clear": 1})]
    tl = program_cycles(a, steps)
    # Each command: its words one per cycle, then it issues; the next header the cycle after.
    layer = words(a, Op.LAYER)
    load1 = layer + 1 + words(a, Op.LOAD)
    end1 = load1 + 1 + 10                       # a beat per cycle, busy from the next cycle
    load2 = end1                                # the loader is busy until then
    end2 = load2 + 1 + 5
    assert tl.issue == [layer, load1, load2, end2]
    assert tl.end[1:3] == [end1, end2]
    beats = 1 + len(COUNTERS) * counter_beats(a)     # header + counters
    assert tl.cycles == end2 + 1 + beats


def test_a_load_overlaps_a_pass_unless_it_waits_for_it():
    a = TINY
    pe = {"p": 2, "q": 1, "S": 3, "F": 4, "U": 1, "n_rows": 1}
    stream = {"chunks": 0, "ntags": 0, "last": 0}
    pas = {"filt": dict(stream), "ifmap": dict(stream), "psum": dict(stream), "nchains": 1}
    free = [(Op.LAYER, 0, {"pe": pe}), (Op.PASS, 0, pas), (Op.LOAD, 0, {"count": 3})]
    waits = free[:2] + [(Op.LOAD, int(Wait.PASS), {"count": 3})]
    t_free, t_wait = program_cycles(a, free), program_cycles(a, waits)
    assert t_free.issue[2] == t_free.issue[1] + 1 + words(a, Op.LOAD)
    assert t_wait.issue[2] == t_wait.end[1] > t_free.issue[2]


def test_drain_runs_a_psum_per_cycle():
    a = TINY
    ppw = a.psum_bus_width // a.psum_width
    drain = {"base": 0, "chunks": 5, "nchains": 3, "last": 0, "p": 2, "chains_per_tc": 3,
             "bias_base": 0, "beats": 7}
    tl = program_cycles(a, [(Op.LAYER, 0, {"pe": {}}), (Op.DRAIN, 0, drain)])
    psums = 3 * ((5 - 1) * ppw + 1)
    assert tl.end[1] == tl.issue[1] + 1 + psums + DRAIN_LATENCY


# --- against the RTL ------------------------------------------------------------------------------

def moderate_layer(rng, arch):
    """A random layer with enough work that its passes are more than their fixed latencies
    (on layers of a few hundred cycles the model can be a few percent off: see the README)."""
    while True:
        R = rng.randint(1, min(arch.rows, 5))
        S = rng.randint(1, 5)
        g = rng.choice([1, 1, 2])
        try:
            layer = LayerSpec(N=rng.choice([1, 2]), C=g * rng.randint(3, 10),
                              H=rng.randint(R + 6, 18), W=rng.randint(S + 6, 18),
                              M=g * rng.randint(3, 10), R=R, S=S,
                              stride=rng.choice([1, 1, 2, 3]),
                              padding=rng.randint(0, min(R, S) - 1), groups=g)
        except RowstatError:
            continue
        if layer.macs >= 2000 * arch.pes:           # 2,000 MAC cycles for every PE or more
            return layer


def rtl_vs_model(arch, layer, seed, io=None):
    rng = np.random.default_rng(seed)
    x = rng.integers(-60, 60, layer.ifmap_shape)
    w = rng.integers(-60, 60, layer.weight_shape)
    mp = choose_mapping(arch, layer, io_bits_per_cycle=io)
    _, stats = run_layer(arch, layer, x, w, mapping=mp, progress=False, io_bits_per_cycle=io,
                         trace=True)
    model = model_layer(arch, layer, mp, io_bits_per_cycle=io)
    return stats, model, mp, x, w


@pytest.mark.parametrize("name, arch, count, io", [
    ("tiny", TINY, 6, None), ("odd", ODD, 4, None), ("tiny-io", TINY, 3, 4.8)])
def test_model_cycles_within_2_percent_of_the_rtl(name, arch, count, io):
    rng = random.Random(f"timing-{name}")
    for i in range(count):
        layer = moderate_layer(rng, arch)
        stats, model, mp, _, _ = rtl_vs_model(arch, layer, i, io)
        error = (model.cycles - stats["cycles"]) / stats["cycles"]
        assert abs(error) <= 0.02, (layer, mp.summary(), stats["cycles"], model.cycles)
        # the counters the hardware has, exactly
        for key in ("dram_read_words", "dram_write_words", "glb_reads", "glb_writes", "passes"):
            assert model.accesses[key] == stats[key], (key, layer)


def test_command_issue_times_match_the_rtl_until_the_first_pass_ends():
    """Command by command: the loads before the first pass ends and the first pass's issue
    cycle are exact (they depend only on command words and beats)."""
    layer = LayerSpec(N=1, C=4, H=8, W=8, M=8, R=3, S=3, padding=1)
    stats, _, mp, x, w = rtl_vs_model(TINY, layer, 1)
    program = compile_layer(TINY, layer, x, w, mapping=mp)
    tl = program_cycles(TINY, program.steps)
    taken = stats["trace"]["cmd_cycles"]
    heads, k = [], 0
    while k < len(program.cmd):
        heads.append(k)
        k += 1 + ((program.cmd[k] >> 8) & 0xFF)
    # a command issues the cycle before the controller takes the next header word
    rtl_issue = [taken[h] - 1 for h in heads[1:]]
    first_pass = next(k for k, (op, _, _) in enumerate(program.steps) if op == Op.PASS)
    assert rtl_issue[:first_pass + 2] == tl.issue[:first_pass + 2]
