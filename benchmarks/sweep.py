"""The closing-note sweep of issue 5: rows x cols x data width, synthesized for ice40 and for
generic (gates + transistor estimate), with the wall-clock time of each.

"Width" moves the activation and weight widths together, with psum_width = 2 * width + 8 (the
product plus 8 bits of accumulation headroom), so it is one sweep per width (each a normal
``rowstat sweep`` folder, DIR/TARGET/width<W>/) and one combined table per target
(DIR/TARGET/sweep.csv).

    .venv/bin/python benchmarks/sweep.py                     # the PE, eyeriss base, fresh
    .venv/bin/python benchmarks/sweep.py --top array --preset tiny --rows 2,3 --cols 2,4

By default the output goes to a new temporary folder so every point is really synthesized;
with -o DIR an existing sweep there is resumed (and its reused points take no time).
"""

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

from rowstat.fpga.sweep import csv_columns, run_sweep
from rowstat.gen.config import load_arch
from rowstat.gen.errors import RowstatError


def ints(text):
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"integers separated by commas, not {text!r}") from None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="eyeriss")
    parser.add_argument("--top", default="pe", choices=["pe", "array", "accelerator"])
    parser.add_argument("--rows", type=ints, default=[3, 12])
    parser.add_argument("--cols", type=ints, default=[4, 14])
    parser.add_argument("--widths", type=ints, default=[4, 8, 16])
    parser.add_argument("--targets", default="ice40,generic")
    parser.add_argument("--jobs", "-j", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--pnr", action="store_true", help="also place and route (FPGA only)")
    parser.add_argument("-o", "--output", default=None, help="output folder (default: a new "
                                                             "temporary one)")
    args = parser.parse_args(argv)
    out = Path(args.output or tempfile.mkdtemp(prefix="rowstat-sweep-bench-"))
    vary = {"rows": args.rows, "cols": args.cols}
    n = len(args.rows) * len(args.cols) * len(args.widths)
    print(f"{args.top} sweep, base {args.preset}: rows {args.rows} x cols {args.cols} x "
          f"width {args.widths} = {n} points per target, into {out}")
    totals = {}
    try:
        for target in args.targets.split(","):
            t0 = time.monotonic()
            rows = []
            for width in args.widths:
                base = load_arch(args.preset, None, [
                    f"act_width={width}", f"weight_width={width}",
                    f"psum_width={2 * width + 8}"])
                points = run_sweep(base, vary, target=target, top=args.top,
                                   out_dir=out / target / f"width{width}", jobs=args.jobs,
                                   pnr=args.pnr and target != "generic", progress=None,
                                   timeout=args.timeout, command=" ".join(sys.argv))
                columns = csv_columns(vary, target, args.pnr and target != "generic")
                for p in points:
                    row = {"width": width, **p["point"], **p.get("metrics", {}),
                           "seconds": p.get("seconds", {}).get("total"),
                           "status": p["status"], "error": p.get("error", "")}
                    rows.append(row)
            wall = time.monotonic() - t0
            totals[target] = wall
            header = ["width"] + columns
            with open(out / target / "sweep.csv", "w", newline="") as fh:
                writer = csv.DictWriter(fh, header, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
            print(f"\n== {target}: {len(rows)} points in {wall:.1f} s wall-clock "
                  f"({sum(r['status'] == 'ok' for r in rows)} ok)")
            shown = [c for c in header if c not in ("error",)]
            print("  ".join(f"{c:>11}" for c in shown))
            for r in rows:
                print("  ".join(f"{'' if r.get(c) is None else r.get(c, ''):>11}"
                                for c in shown))
                if r["error"]:
                    print(f"    {r['error']}")
    except RowstatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\nwall-clock: " + ", ".join(f"{t} {s:.1f} s" for t, s in totals.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
