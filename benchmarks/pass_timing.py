"""One pass on the RTL against the timing model's pass, over a grid of pass shapes.

    .venv/bin/python benchmarks/pass_timing.py [--preset tiny] [--set key=value ...]
        [--grid small|full] [--out docs/results/pass_timing]

Each point is a one-strip layer with a forced mapping (n, e, p, q, r, t) that makes one pass
followed by its drain; the pass's length is taken from the RTL trace as the cycles from the PASS
command's issue to the issue of the next command that waits for it, and from the timing model
(:mod:`rowstat.sim.timing`) the same way. Writes a CSV and a markdown table with the difference,
the data the pass latencies of the timing model are fitted to.
"""

import argparse
import csv
import itertools
import sys
import time
from pathlib import Path

import numpy as np

from rowstat.gen.compiler import compile_layer
from rowstat.gen.config import load_arch
from rowstat.gen.errors import RowstatError
from rowstat.gen.layer import LayerSpec
from rowstat.gen.mapping import map_layer
from rowstat.gen.program import Op, Wait, commands
from rowstat.gen.verilog import write_atomic
from rowstat.sim.run import run_layer
from rowstat.sim.timing import program_cycles

GRIDS = {
    # (F, S, p, q, R, r, t, e, n)
    "small": [(8, 2, p, 2, R, 1, t, 1, 1) for p in (1, 2, 4, 8) for R in (1, 3) for t in (1, 2)],
    "medium": [(8, 2, p, q, R, 1, t, 1, 1) for p in (1, 2, 4, 8) for q in (1, 2)
               for R in (1, 2, 3) for t in (1, 2)],
    "full": [(F, S, p, q, R, r, t, e, n)
             for F, S, p, q, R, r, t, e, n in itertools.product(
                 (4, 8, 16), (1, 3), (1, 2, 4, 8), (1, 2), (1, 2, 3), (1, 2), (1, 2), (1, 2),
                 (1, 2))],
}


def pass_lengths(arch, F, S, p, q, R, r, t, e, n):
    """(model, RTL) cycles of the first pass of a one-strip layer of this shape."""
    layer = LayerSpec(N=n, C=q * r, H=R + e - 1, W=F + S - 1, M=p * t, R=R, S=S)
    mapping = map_layer(arch, layer, n=n, e=e, p=p, q=q, r=r, t=t)
    rng = np.random.default_rng(1)
    x = rng.integers(-30, 30, layer.ifmap_shape)
    w = rng.integers(-30, 30, layer.weight_shape)
    _, stats = run_layer(arch, layer, x, w, mapping=mapping, trace=True, progress=False)
    program = compile_layer(arch, layer, x, w, mapping=mapping)
    model = program_cycles(arch, program.steps).issue
    heads = [pos for pos, *_ in commands(program.cmd)]
    taken = stats["trace"]["cmd_cycles"]
    rtl = [taken[h] - 1 for h in heads[1:]]      # a command issues the cycle before the next
    steps = program.steps
    i = next(i for i, (op, _, _) in enumerate(steps) if op == Op.PASS)
    j = next(j for j in range(i + 1, len(steps)) if steps[j][1] & int(Wait.PASS))
    return model[j] - model[i], rtl[j] - rtl[i]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="small")
    parser.add_argument("--out", default="docs/results/pass_timing")
    args = parser.parse_args(argv)
    try:
        arch = load_arch(args.preset, overrides=args.overrides)
    except RowstatError as exc:
        parser.exit(2, f"pass_timing.py: {exc}\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "_".join([args.preset] + [o.replace("=", "") for o in args.overrides])
    rows = []
    fields = ("F", "S", "p", "q", "R", "r", "t", "e", "n")
    from tqdm import tqdm
    for point in tqdm(GRIDS[args.grid], desc="passes", unit="pass"):
        try:
            model, rtl = pass_lengths(arch, *point)
        except RowstatError:
            continue                                # a shape this array cannot map
        rows.append(dict(zip(fields, point)) | {"model": model, "rtl": rtl,
                                                "diff": rtl - model})
    with open(out / f"{name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cmd = " ".join(["benchmarks/pass_timing.py"] + (argv or sys.argv[1:]))
    diffs = [r["diff"] for r in rows]
    lines = [f"`.venv/bin/python {cmd}`, {time.strftime('%Y-%m-%d')}", "",
             f"{len(rows)} passes; RTL minus model: min {min(diffs)}, max {max(diffs)}, "
             f"mean {np.mean(diffs):.2f} cycles", "",
             "| " + " | ".join(fields) + " | model | RTL | diff |",
             "|" + "---|" * (len(fields) + 3)]
    lines += ["| " + " | ".join(str(r[k]) for k in r) + " |" for r in rows]
    write_atomic(out / f"{name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines[:3]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
