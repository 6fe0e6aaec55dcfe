"""Cost of one PE site (the PE with its share of the NoC), as the array slope and the bare PE.

Runs these ``rowstat sweep`` commands into ``OUT/LABEL/`` and writes ``OUT/LABEL/pe_site.json``:

* array slope on ECP5 and generic: ``--preset ecp5 --set cols=4 --vary rows=2,4 --top array``;
  the difference between the two points over 8 (the PEs added) is the cost of one site;
* the bare PE: ``--preset eyeriss --top pe`` on ECP5 and generic, ``--preset ice40 --top pe``
  on iCE40.

``--table`` then writes ``OUT/pe_site.md`` comparing the labels given (e.g. before, after).

    .venv/bin/python benchmarks/pe_site.py -o docs/results/pe_site --label after
    .venv/bin/python benchmarks/pe_site.py -o docs/results/pe_site --table before after

The sweeps cache their points in ``OUT/LABEL/<sweep>/points``: run again, only missing points
are synthesized.
"""

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

SWEEPS = {
    "array_ecp5": ["--preset", "ecp5", "--set", "cols=4", "--vary", "rows=2,4",
                   "--target", "ecp5", "--top", "array"],
    "array_generic": ["--preset", "ecp5", "--set", "cols=4", "--vary", "rows=2,4",
                      "--target", "generic", "--top", "array"],
    "pe_ecp5": ["--preset", "eyeriss", "--vary", "rows=12", "--target", "ecp5", "--top", "pe"],
    "pe_ice40": ["--preset", "ice40", "--vary", "rows=3", "--target", "ice40", "--top", "pe"],
    "pe_generic": ["--preset", "eyeriss", "--vary", "rows=12", "--target", "generic",
                   "--top", "pe"],
}
#: PEs between the two points of an array sweep (rows 2 -> 4 at 4 columns).
SLOPE_PES = 8
METRICS = {"ecp5": ("lut", "ff", "bram", "dsp", "lutram", "carry"),
           "ice40": ("lut", "ff", "bram", "dsp", "carry"),
           "generic": ("cells", "ff", "memory_bits", "transistors")}


def read_points(folder):
    with open(folder / "sweep.csv") as f:
        rows = [r for r in csv.DictReader(f)]
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        raise SystemExit(f"{folder}: {len(bad)} point(s) failed: {bad[0].get('error')}")
    return rows


def measure(out, jobs):
    """Run the sweeps into ``out``; returns their commands and the date."""
    out.mkdir(parents=True, exist_ok=True)
    commands = {}
    for name, args in SWEEPS.items():
        command = ["rowstat", "sweep", *args, "-j", str(jobs), "-o", str(out / name)]
        commands[name] = " ".join(command)
        subprocess.run([sys.executable, "-c", "import sys; from rowstat.cli import main; "
                        "sys.argv[0] = 'rowstat'; sys.exit(main())", *command[1:],
                        "--no-progress"], check=True)
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commands": commands}


def summarize(out, result):
    """Per-site slopes and bare PE figures from the sweeps' ``sweep.csv`` in ``out``, added to
    ``result`` and written to ``out/pe_site.json``."""
    for name in SWEEPS:
        target = name.split("_")[1]
        rows = read_points(out / name)
        keys = METRICS[target]
        if name.startswith("array"):
            small, big = sorted(rows, key=lambda r: int(r["rows"]))
            result[name] = {k: (float(big[k]) - float(small[k])) / SLOPE_PES for k in keys}
        else:
            result[name] = {k: float(rows[0][k]) for k in keys}
    (out / "pe_site.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def table(out, labels):
    data = {label: json.loads((out / label / "pe_site.json").read_text()) for label in labels}
    lines = ["| what | metric | " + " | ".join(labels) + " |",
             "|---|---|" + "---|" * len(labels)]
    for name in SWEEPS:
        target = name.split("_")[1]
        what = ("per site (array slope)" if name.startswith("array") else "bare PE") + \
            f", {target}"
        for k in METRICS[target]:
            cells = [f"{data[label][name][k]:,.1f}".replace(".0", "") for label in labels]
            lines.append(f"| {what} | {k} | " + " | ".join(cells) + " |")
    lines.append("")
    for label in labels:
        lines.append(f"- {label}: {data[label]['date']}")
    (out / "pe_site.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--label", default="after")
    parser.add_argument("--jobs", "-j", type=int, default=1)
    parser.add_argument("--table", nargs="+", metavar="LABEL")
    args = parser.parse_args(argv)
    if args.table:
        table(args.output, args.table)
    else:
        out = args.output / args.label
        print(json.dumps(summarize(out, measure(out, args.jobs)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
