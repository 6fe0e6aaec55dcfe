"""The yosys stage of the ulx3s-85f build of the `ecp5` preset at rows x cols, alone.

Usage: python benchmarks/board_synth.py ROWS COLS new|old [DIR]

``new`` runs the build's own script (memories marked, see fpga/build.py); ``old`` replaces its
marking steps with the plain ``synth_ecp5 -top top`` the build used before. Prints yosys' time
and cell counts; stat.json is in DIR (default ab/<which>_<rows>x<cols>).
"""
import re, sys, json, time
from pathlib import Path
from rowstat.gen.config import PRESETS
from rowstat.fpga.build import build_plan
from rowstat.fpga import yosys
rows, cols, which = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
arch = PRESETS["ecp5"].replace(rows=rows, cols=cols)
plan, board, top = build_plan("ulx3s-85f", arch)
work = Path(sys.argv[4] if len(sys.argv) > 4 else f"ab/{which}_{rows}x{cols}")
plan.extract(work)
ys = (work / "top.ys").read_text()
if which == "old":
    ys = re.sub(r"synth_ecp5 -run :map_ram -top top\n.*?synth_ecp5 -top top -run map_ram:\n",
                "synth_ecp5 -top top\n", ys, flags=re.S)
(work / "top.ys").write_text(ys)
t = time.monotonic()
yosys.run_tool("yosys", ["-q", "-l", "top.rpt", "top.ys"], cwd=work)
d = json.load(open(work / "stat.json"))["design"]["num_cells_by_type"]
print(which, rows, cols, round(time.monotonic() - t), {k: v for k, v in d.items() if not k.startswith("$")})
