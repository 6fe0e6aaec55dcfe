"""The generated PE array Verilog in cocotb: complete PE-set 2-D convolutions, bit-exact against
the golden model, with the testbench playing the global buffer (rowstat.sim.array_bench).

Each configuration is built once (the runner's cache) and runs many cases in one simulator
start: the hand-picked cases below cover strides 1 to 3, R from 1 up to the rows, folded
(e > cols) and replicated (r > 1 and t > 1) placements, two-pass cases that continue psums
through the psum GIN, and input psums from the global buffer; seeded random cases run beside
them. Inputs idle and the GON output stalls at random.
"""

import random
import zlib

import pytest

from rowstat.gen.config import PRESETS
from rowstat.gen.errors import RowstatError
from rowstat.sim.array_model import random_spec
from rowstat.sim.runner import check_array

TINY = PRESETS["tiny"]                                 # 3 x 4, 8-bit, 2 ifmap words per beat
ODD = PRESETS["eyeriss"].replace(rows=5, cols=7)       # 5 x 7, 16-bit
EYERISS = PRESETS["eyeriss"]                           # 12 x 14


def case(name, **kw):
    kw.setdefault("seed", zlib.crc32(name.encode()) % 1000)
    kw.setdefault("zeros", 0.3)
    return dict(name=name, **kw)


TINY_CASES = [
    case("full set R=3 e=4 stride 1", R=3, S=3, e=4, U=1, p=2, q=2, F=4, n=1),
    case("R=2 stride 2, two images", R=2, S=2, e=3, U=2, p=3, q=2, F=3, n=2),
    case("stride 3 wider than the filter", R=1, S=2, e=4, U=3, p=2, q=3, F=3, n=1),
    case("folded e=7 > 4 cols", R=1, S=3, e=7, U=1, p=2, q=2, F=4, n=1),
    case("folded e=10 stride 2 in 3 segments", R=1, S=2, e=10, U=2, p=1, q=2, F=3, n=1),
    case("replicated r=2 t=2", R=1, S=3, e=2, U=1, r=2, t=2, p=2, q=1, F=3, n=2),
    case("replicated r=3 (psums through 3 bands)", R=1, S=1, e=4, U=1, r=3, p=4, q=2, F=5,
         n=1, zeros=0.0),
    case("two passes, psums continued by the psum GIN", R=2, S=3, e=4, U=1, p=2, q=2, F=4,
         n=1, passes=2),
    case("two passes replicated, input psums from the GLB", R=1, S=2, e=2, U=2, r=2, t=2, p=3,
         q=2, F=3, n=1, passes=2, psum0=True),
    case("one ID chain for three passes", R=3, S=2, e=4, U=1, p=2, q=1, F=3, n=1, passes=3,
         same_ids=True),
    case("1x1 filter, p=8 fills the psum spad", R=1, S=1, e=4, U=1, p=8, q=4, F=2, n=1),
    case("all zeros: every MAC skipped", R=3, S=2, e=2, U=1, p=2, q=2, F=3, n=1, zeros=1.0),
]

ODD_CASES = [
    case("5x7: R=5 e=7 full array", R=5, S=5, e=7, U=1, p=2, q=2, F=3, n=1),
    case("5x7: R=2 r=2 t=3 side by side", R=2, S=3, e=2, U=1, r=2, t=3, p=2, q=2, F=3, n=1),
    case("5x7: R=2 folded e=12 stride 2", R=2, S=3, e=12, U=2, p=2, q=3, F=3, n=1),
    case("5x7: R=4 stride 3, two passes", R=4, S=3, e=3, U=3, p=3, q=2, F=3, n=2, passes=2),
]

EYERISS_CASES = [
    case("eyeriss: CONV3-like 3x13 set, t=4 copies", R=3, S=3, e=13, U=1, t=4, p=2, q=2, F=5,
         n=1),
    case("eyeriss: CONV4-like 3x13, r=2 t=2, two passes", R=3, S=3, e=13, U=1, r=2, t=2, p=2,
         q=2, F=4, n=1, passes=2),
    case("eyeriss: CONV1-like 11x7 stride 4, t=2", R=11, S=11, e=7, U=4, t=2, p=2, q=1, F=3,
         n=1),
    case("eyeriss: CONV2-like 5x27 folded 14+13", R=5, S=5, e=27, U=1, p=2, q=2, F=3, n=1),
    case("eyeriss: R=12 uses every row", R=12, S=3, e=14, U=1, p=1, q=2, F=3, n=1),
]


def random_cases(arch, seed, count, **kw):
    rng = random.Random(seed)
    return [random_spec(arch, rng, **kw) for _ in range(count)]


def check(arch, cases, **kw):
    report = check_array(arch, cases, progress=False, **kw)
    assert not report["failures"], report["failures"][0]
    assert report["cases"] == len(cases)
    passes = sum(c.get("passes", 1) for c in cases)
    assert len(report["passes"]) == passes
    return report


def test_array_cocotb_tiny_hand_picked():
    report = check(TINY, TINY_CASES, seed=1, idle=0.2, stall=0.2)
    by_name = {p["name"]: p for p in report["passes"]}
    zero = by_name["all zeros: every MAC skipped"]
    assert zero["macs"] == 0 and zero["skipped"] > 0


def test_array_cocotb_tiny_random():
    check(TINY, random_cases(TINY, 11, 12), seed=2, idle=0.3, stall=0.3)


def test_array_cocotb_tiny_full_rate_and_gon_hold():
    """No idles or stalls: the numbers are deterministic. Then the GON output held for a long
    time: the filter GIN must still deliver everything (a stalled output network holds up only
    the packets whose PEs are waiting for it), and the results stay exact."""
    spec = case("full set R=3 e=4", R=3, S=3, e=4, U=1, p=2, q=2, F=4, n=1)
    a = check(TINY, [spec], idle=0.0, stall=0.0)["passes"][0]
    b = check(TINY, [spec], idle=0.0, stall=0.0)["passes"][0]
    assert a["cycles"] == b["cycles"] and a["stalls"] == b["stalls"]
    held = check(TINY, [spec], idle=0.0, stall=0.0, gon_hold=600)["passes"][0]
    assert held["inputs_done"]["filt"] < 600
    assert held["bench_cycles"] > 600


def test_array_cocotb_detects_a_wrong_answer():
    with pytest.raises(RowstatError, match="differ from the golden"):
        check_array(TINY, TINY_CASES[:1], corrupt=True, progress=False)


def test_array_cocotb_odd_5x7():
    check(ODD, ODD_CASES + random_cases(ODD, 21, 4), seed=3, idle=0.2, stall=0.2)


def test_array_cocotb_eyeriss_12x14():
    report = check(EYERISS, EYERISS_CASES + random_cases(EYERISS, 31, 3, max_p=3, max_F=4),
                   seed=4, idle=0.1, stall=0.1)
    conv3 = report["passes"][0]
    assert conv3["active_pes"] == 156             # 4 copies of 3 x 13 on 12 x 14
