"""Benchmark of the PE array on the eyeriss preset (12 x 14): Verilog generation time, Verilator
build time, simulated cycles per second in cocotb, and the PE utilisation of a few passes.

    .venv/bin/python benchmarks/pe_array.py [--preset eyeriss] [--set rows=5 ...] [--fresh]

``--fresh`` removes the cached build first so that the build time is measured (otherwise a
cached build reports 0 s). Utilisation = (MACs done + skipped) / (active PEs x cycles) and
/ (all PEs x cycles); the inputs never idle and the output never stalls here.
"""

import argparse
import os
import shutil
import sys
import time

from rowstat.gen.config import load_arch
from rowstat.gen.verilog import generate
from rowstat.sim.runner import build, check_array


def cases():
    return [
        dict(name="CONV3-like 3x13 t=4, p=4 q=4 F=13", R=3, S=3, e=13, U=1, t=4, p=4, q=4,
             F=13, n=1, zeros=0.3, seed=1),
        dict(name="CONV3-like 3x13 t=4, p=16 q=4 F=13", R=3, S=3, e=13, U=1, t=4, p=16, q=4,
             F=13, n=1, zeros=0.3, seed=2),
        dict(name="CONV1-like 11x7 U=4 t=2, p=8 F=7", R=11, S=11, e=7, U=4, t=2, p=8, q=1, F=7,
             n=1, zeros=0.3, seed=3),
        dict(name="CONV2-like 5x27 folded, p=8 q=2 F=9", R=5, S=5, e=27, U=1, p=8, q=2, F=9,
             n=1, zeros=0.3, seed=4),
        dict(name="CONV4-like 3x13 r=2 t=2, p=8 q=3 F=13", R=3, S=3, e=13, U=1, r=2, t=2, p=8,
             q=3, F=13, n=1, zeros=0.3, seed=5),
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="eyeriss")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--fresh", action="store_true", help="rebuild from scratch")
    args = ap.parse_args(argv)
    arch = load_arch(args.preset, None, args.overrides)

    t0 = time.monotonic()
    text, _ = generate(arch, "array")
    gen_s = time.monotonic() - t0
    print(f"Verilog generation ({arch.rows} x {arch.cols}): {gen_s:.1f} s, "
          f"{len(text.splitlines())} lines")

    if args.fresh:
        probe = build(arch, "array", progress=False)
        shutil.rmtree(probe.build_dir)
    built = build(arch, "array", progress=True)
    print(f"Verilator build: {built.build_seconds:.1f} s"
          + (" (cached; use --fresh to measure)" if built.build_seconds == 0 else ""))

    report = check_array(arch, cases(), idle=0.0, stall=0.0, progress=False)
    cycles = sum(p["bench_cycles"] for p in report["passes"])
    print(f"cocotb: {cycles} cycles in {report['sim_seconds']:.1f} s = "
          f"{cycles / report['sim_seconds']:.0f} cycles/s (simulator start included)")
    print(f"{'pass':44} {'active':>6} {'cycles':>7} {'slots':>6} {'util/active':>11} "
          f"{'util/array':>10}")
    for p in report["passes"]:
        print(f"{p['name']:44} {p['active_pes']:6} {p['cycles']:7} {p['mac_slots']:6} "
              f"{p['util_active']:11.1%} {p['util_array']:10.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
