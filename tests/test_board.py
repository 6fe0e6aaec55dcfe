"""Board tops: the build plans of every board, the `build` and `host` command lines, a layer
run through the UART pins of the board top in cocotb, and (slow) a real iCEBreaker build."""

import json
import subprocess
import sys

import numpy as np
import pytest

from rowstat.fpga.board import BOARDS, SIM_DIVISOR
from rowstat.fpga.build import build_plan, plan_commands
from rowstat.fpga.host import run_on_simulated_board
from rowstat.cli import main
from rowstat.gen.config import PRESETS
from rowstat.gen.layer import LayerSpec
from rowstat.sim.golden import golden_layer


def rowstat(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "rowstat.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


# --- build plans (no tools run) -------------------------------------------------------------------

PINS = {"icebreaker": ("top.pcf", ["set_io uart_0__rx__io 6", "set_io uart_0__tx__io 9",
                                   "set_io clk12_0__io 35"]),
        "ulx3s-85f": ("top.lpf", ['LOCATE COMP "uart_0__rx__io" SITE "M1"',
                                  'LOCATE COMP "uart_0__tx__io" SITE "L4"']),
        "orangecrab-85f": ("top.lpf", ['LOCATE COMP "uart_0__rx__io" SITE "N17"',
                                       'LOCATE COMP "uart_0__tx__io" SITE "M18"'])}


@pytest.mark.parametrize("name", list(BOARDS))
def test_build_plan_of_every_board(name):
    board = BOARDS[name]
    arch = PRESETS[board.preset]
    plan, board, top = build_plan(name, arch, freq=31.5)
    files = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in plan.files.items()}
    constraints, pins = PINS[name]
    for pin in pins:
        assert pin in files[constraints], pin
    if board.family == "ice40":
        # No PLL: the oscillator's constraint is the target nextpnr works to.
        assert "set_frequency clk12_0__io 31.5" in files[constraints] and top.pll is None
        assert "EHXPLLL" not in files["top.il"] and "SB_PLL" not in files["top.il"]
    else:
        # An ECP5 PLL makes the clock; the constraint is on the oscillator (nextpnr derives
        # the PLL output's).
        assert f"{board.clock_mhz * 1e6:.1f} HZ" in files[constraints]
        assert "EHXPLLL" in files["top.il"] and abs(top.pll["fout"] - 31.5) < 0.05 * 31.5
        assert f"{top.pll['clkfb_div']}" in files["top.il"]
    # The shared PE site module is part of the design, and yosys writes its cell counts.
    assert "module rowstat_pe_site_" in files["rowstat_pe_sites.v"]
    assert "read_verilog  rowstat_pe_sites.v" in files["top.ys"] or \
        "read_verilog rowstat_pe_sites.v" in files["top.ys"]
    assert "stat -json" in files["top.ys"] and f"synth_{board.family}" in files["top.ys"]
    tools = [tool for tool, _ in plan_commands(plan)]
    if board.family == "ice40":
        assert tools == ["yosys", "nextpnr-ice40", "icepack"]
        assert "-dsp" in files["top.ys"]
    else:
        # ECP5: synthesis stops before the memories are mapped, they are marked (clocked
        # reads of more than 16 words to block RAM, two-word ones to flip-flops), and it goes
        # on; the stat comes after the second half.
        ys = files["top.ys"]
        first, mark, rest = ys.index("-run :map_ram"), ys.index("ram_style"), \
            ys.index("-run map_ram:")
        assert first < mark < rest < ys.index("stat -json")
        assert 'ram_style "block"' in ys and 'ram_style "logic"' in ys
        assert tools == ["yosys", "nextpnr-ecp5", "ecppack"]   # no dfu-suffix
    pnr = dict(plan_commands(plan))[tools[1]]
    assert ("--up5k" in pnr) if board.family == "ice40" else ("--85k" in pnr and
                                                              "router2" in pnr)
    clock = top.pll["fout"] if top.pll else board.clock_mhz
    assert top.divisor == round(clock * 1e6 / 115200)
    # The RTLIL names the link and the accelerator.
    assert "HostLink" in files["top.il"] or "link" in files["top.il"]


@pytest.mark.parametrize("fin, fout", [(25, 50), (25, 24), (48, 24), (12, 100), (25, 31.5)])
def test_ecp5_pll_settings_are_in_range_and_on_frequency(fin, fout):
    from rowstat.fpga.board import ecp5_pll
    pll = ecp5_pll(fin, fout)
    fpfd = fin / pll["clki_div"]
    assert 3.125 <= fpfd <= 400 and 400 <= pll["fvco"] <= 800
    assert pll["fout"] == pytest.approx(fpfd * pll["clkfb_div"])
    assert pll["fvco"] == pytest.approx(pll["fout"] * pll["clkop_div"])
    assert abs(pll["fout"] - fout) <= 0.05 * fout


def test_default_clocks_of_the_boards():
    from rowstat.fpga.build import clock_plan
    assert clock_plan(BOARDS["icebreaker"]) == (12.0, None, 12.0)
    assert clock_plan(BOARDS["ulx3s-85f"]) == (25.0, None, 25.0)
    clock, pll, constraint = clock_plan(BOARDS["orangecrab-85f"])
    assert clock == pytest.approx(24.0) and pll["fin"] == 48.0 and constraint == 48.0
    from rowstat.gen.errors import RowstatError
    with pytest.raises(RowstatError, match="--freq.*PLL"):
        clock_plan(BOARDS["ulx3s-85f"], 5.0)


def test_build_plan_refuses_a_baud_rate_the_clock_cannot_make():
    from rowstat.gen.errors import RowstatError
    with pytest.raises(RowstatError, match="--baud.*too fast"):
        build_plan("icebreaker", PRESETS["ice40"], baud=5_000_000)


@pytest.mark.parametrize("args, words", [
    (["build", "--board", "de0", "-o", "x"], ["--board", "de0", "icebreaker"]),
    (["build", "--board", "icebreaker", "--freq", "0", "-o", "x"], ["--freq", "0.0", "MHz"]),
    (["build", "--board", "icebreaker", "--freq", "900", "-o", "x"], ["--freq", "900"]),
    (["build", "--board", "icebreaker", "--preset", "huge", "-o", "x"], ["preset", "huge"]),
    (["build", "--board", "icebreaker", "--set", "rows=0", "-o", "x"], ["rows", "0"]),
])
def test_build_bad_input_is_one_line(args, words, capsys, tmp_path):
    args = [a if a != "x" else str(tmp_path / "x") for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("rowstat: error:")
    for w in words:
        assert w in err
    assert not (tmp_path / "x").exists()


def test_host_without_a_device_is_one_line_no_traceback(tmp_path):
    layer = tmp_path / "l.json"
    layer.write_text(json.dumps({"N": 1, "C": 1, "H": 3, "W": 3, "M": 1, "R": 1, "S": 1}))
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 3, 3), dtype=np.int64))
    np.save(tmp_path / "w.npy", np.ones((1, 1, 1, 1), dtype=np.int64))
    proc = rowstat("host", "--port", tmp_path / "ttyNOPE", "--preset", "tiny",
                   "--layer", layer, "--ifmap", tmp_path / "x.npy",
                   "--weights", tmp_path / "w.npy", "--out", tmp_path / "y.npy")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--port" in lines[0] and "ttyNOPE" in lines[0]
    assert not (tmp_path / "y.npy").exists()


def test_host_bad_baud_is_one_line(tmp_path):
    proc = rowstat("host", "--port", "/dev/null", "--baud", "0", "--preset", "tiny",
                   "--layer", "l.json", "--ifmap", "x", "--weights", "w", "--out", "y.npy")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


# --- the board top in cocotb, through its UART pins ------------------------------------------------

@pytest.mark.parametrize("layer, seed", [
    (LayerSpec(N=1, C=2, H=5, W=5, M=3, R=3, S=3, padding=1, relu=True, shift=4), 0),
    # Raw psums out, several channel blocks and drains, stride 2.
    (LayerSpec(N=2, C=5, H=7, W=6, M=5, R=2, S=3, stride=2), 1),
], ids=["3x3-relu", "raw-psums-stride2"])
def test_board_top_runs_a_layer_over_the_uart_bit_exact(layer, seed):
    arch = PRESETS["tiny"]
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, layer.ifmap_shape)
    x[rng.random(x.shape) < 0.3] = 0
    w = rng.integers(-128, 128, layer.weight_shape)
    b = rng.integers(-5000, 5000, (layer.M,))
    ofmap, stats = run_on_simulated_board(arch, layer, x, w, b)
    expected = golden_layer(arch, layer, x, w, b)
    assert np.array_equal(ofmap, expected), np.argwhere(ofmap != expected)[:5]
    assert stats["board_errors"] == 0
    assert stats["macs"] + stats["macs_skipped_zero"] >= layer.macs
    # Every byte sent took 10 bit times at SIM_DIVISOR clocks each: the link, not the array,
    # sets the pace.
    assert stats["link_cycles"] >= stats["link_bytes_sent"] * 10 * SIM_DIVISOR
    assert 0 < stats["cycles"] < stats["link_cycles"]


# --- a real build (slow) ------------------------------------------------------------------------

@pytest.mark.slow
def test_build_icebreaker_for_real(tmp_path):
    proc = rowstat("build", "--board", "icebreaker", "-o", tmp_path, timeout=3600)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["board"] == "icebreaker" and report["device"] == "iCE40UP5K"
    assert report["preset"] == "ice40" and report["parameters"] == PRESETS["ice40"].to_dict()
    res = report["resources"]
    assert res["lut"]["available"] == 5280 and res["lut"]["used"] > 0
    assert proc.stdout.count("[") >= 2        # stage lines
    # The ice40 preset fits the UP5K (README "Boards"): placed, routed, a bitstream.
    assert report["status"] == "ok", report["error"]
    assert res["lut"]["used"] <= res["lut"]["available"]
    assert res["bram"]["used"] <= res["bram"]["available"] == 30
    assert proc.returncode == 0
    assert (tmp_path / "icebreaker.bin").stat().st_size > 100_000
    assert report["fmax_mhz"] >= report["target_mhz"] == 12.0


# --- the build's orchestration, with stand-in tools ---------------------------------------------

FAKE_TOOL = r'''
import json, os, sys
args = sys.argv[1:]
kind = os.environ["FAKE_KIND"]
if kind == "yosys":
    luts = int(os.environ.get("FAKE_LUTS", "1000"))
    json.dump({"design": {"num_cells_by_type": {"SB_LUT4": luts, "SB_DFF": 500,
                                                "SB_RAM40_4K": 4, "SB_MAC16": 2}}},
              open("stat.json", "w"))
    open("top.json", "w").write("{}")
elif kind == "nextpnr":
    achieved = float(os.environ.get("FAKE_FMAX", "40"))
    json.dump({"fmax": {"clk": {"achieved": achieved, "constraint": 12.0}},
               "utilization": {"ICESTORM_LC": {"used": 1234, "available": 5280}}},
              open(args[args.index("--report") + 1], "w"))
    open(args[args.index("--asc") + 1], "w").write("asc")
else:
    open(args[1], "wb").write(b"bitstream")
'''


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    script = tmp_path / "fake_tool.py"
    script.write_text(FAKE_TOOL)
    for var, kind in (("YOSYS", "yosys"), ("NEXTPNR_ICE40", "nextpnr"), ("ICEPACK", "pack")):
        monkeypatch.setenv(var, f"env FAKE_KIND={kind} {sys.executable} {script}")
    return monkeypatch


@pytest.mark.parametrize("luts, fmax, status", [(1000, 40, "ok"), (9000, 40, "does_not_fit"),
                                                (1000, 9.5, "timing_failed")])
def test_build_reports_fit_timing_and_success(fake_tools, tmp_path, capsys, luts, fmax, status):
    fake_tools.setenv("FAKE_LUTS", str(luts))
    fake_tools.setenv("FAKE_FMAX", str(fmax))
    out = tmp_path / "out"
    (out).mkdir()
    (out / "icebreaker.bin").write_bytes(b"old")          # an older build's bitstream
    code = main(["build", "--board", "icebreaker", "--preset", "tiny", "-o", str(out)])
    captured = capsys.readouterr()
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == status and report["board"] == "icebreaker"
    assert report["parameters"] == PRESETS["tiny"].to_dict() and report["preset"] == "tiny"
    assert report["resources"]["dsp"] == {"used": 2, "available": 8}
    assert report["target_mhz"] == 12.0 and report["pll"] is None
    assert "[1/5]" in captured.out and "[2/5]" in captured.out
    assert not list(out.glob(".*.tmp"))
    if status == "ok":
        assert code == 0 and (out / "icebreaker.bin").read_bytes() == b"bitstream"
        assert report["fmax_mhz"] == 40 and report["resources"]["lut"]["used"] == 1234
        assert report["bitstream"] == str(out / "icebreaker.bin")
    else:
        assert code == 1 and not (out / "icebreaker.bin").exists()
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("rowstat: build failed:")
        if status == "does_not_fit":
            assert "lut 9000 > 5280" in err[0] and report["fmax_mhz"] is None
        else:
            assert "9.5 MHz < 12 MHz" in err[0] and report["fmax_mhz"] == 9.5


# --- `rowstat host` over a real serial device: a pseudo-terminal with a model board -------------

class _PtyBoard:
    """A board on a pseudo-terminal: the host link's protocol in Python, the accelerator
    replaced by the reference model of the command set (rowstat.sim.program_model)."""

    def __init__(self, arch):
        import os
        import threading
        import tty
        self.arch = arch
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.stop = threading.Event()
        self.infos = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def close(self):
        import os
        self.stop.set()
        self.thread.join()
        os.close(self.master)
        os.close(self._slave)

    def _run(self):
        import os
        import select
        import time

        from rowstat.fpga import protocol as P
        from rowstat.sim.program_model import run_program
        nb = P.beat_bytes(self.arch.dram_width)
        buf, cmd, data, taken, last = bytearray(), [], [], 0, time.monotonic()
        while not self.stop.is_set():
            if select.select([self.master], [], [], 0.02)[0]:
                buf += os.read(self.master, 4096)
                last = time.monotonic()
            elif cmd and time.monotonic() - last > 0.2:     # the program is all here
                beats = run_program(self.arch, cmd, data).beats
                os.write(self.master, b"".join(bytes([P.TAG_OUT]) + b.to_bytes(nb, "little")
                                               for b in beats))
                cmd = []
            out = bytearray()
            while len(buf) >= 3:
                op, count = buf[0], buf[1] | buf[2] << 8
                size = {P.CMD: 4, P.DATA: nb}.get(op, 0) * count
                if len(buf) < 3 + size:
                    break
                body = bytes(buf[3:3 + size])
                del buf[:3 + size]
                before = taken
                taken += 3 + size
                if op == P.RESET:
                    taken, cmd, data = 0, [], []
                elif op == P.INFO:
                    self.infos += 1
                    out += bytes([P.TAG_INFO]) + P.info_payload(self.arch, 512)
                elif op == P.CMD:
                    cmd += [int.from_bytes(body[k:k + 4], "little") for k in range(0, size, 4)]
                elif op == P.DATA:
                    data += [int.from_bytes(body[k:k + nb], "little")
                             for k in range(0, size, nb)]
                out += bytes([P.TAG_ACK]) * (taken // P.ACK_CHUNK - before // P.ACK_CHUNK)
            if out:
                os.write(self.master, bytes(out))


def test_host_runs_a_layer_over_a_serial_device_and_finds_the_preset(tmp_path, capsys):
    arch = PRESETS["tiny"]
    layer = LayerSpec(N=1, C=3, H=6, W=6, M=4, R=3, S=3, padding=1, relu=True, shift=5)
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, layer.ifmap_shape)
    w = rng.integers(-128, 128, layer.weight_shape)
    b = rng.integers(-2000, 2000, (layer.M,))
    (tmp_path / "l.json").write_text(json.dumps(
        {"N": 1, "C": 3, "H": 6, "W": 6, "M": 4, "R": 3, "S": 3, "padding": 1, "relu": True,
         "shift": 5}))
    for name, value in (("x", x), ("w", w), ("b", b)):
        np.save(tmp_path / f"{name}.npy", value)
    board = _PtyBoard(arch)
    try:
        code = main(["host", "--port", board.path, "--layer", str(tmp_path / "l.json"),
                     "--ifmap", str(tmp_path / "x.npy"), "--weights", str(tmp_path / "w.npy"),
                     "--bias", str(tmp_path / "b.npy"), "--out", str(tmp_path / "y.npy"),
                     "--stats", str(tmp_path / "s.json"), "--timeout", "10"])
    finally:
        board.close()
    assert code == 0, capsys.readouterr().err
    assert board.infos == 2         # the preset query, then the session's own
    ofmap = np.load(tmp_path / "y.npy")
    assert np.array_equal(ofmap, golden_layer(arch, layer, x, w, b))
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["passes"] > 0 and stats["board_errors"] == 0 and stats["link_bytes_sent"] > 0
    assert "wrote" in capsys.readouterr().out


def test_resources_from_a_nextpnr_log_that_stopped_early():
    # A design that does not fit ends nextpnr before its --report; the log still has the
    # device utilisation, and the build report takes the logic cells from it.
    from rowstat.fpga.board import get_board
    from rowstat.fpga.build import _resources
    from rowstat.fpga.yosys import parse_log_utilisation
    log = "\n".join([
        "Info: Logic utilisation before packing:",
        "Info:     Total LUT4s:     4701/5280    89%",
        "Info: Device utilisation:",
        "Info: \t           ICESTORM_LC:  6545/ 5280   123%",
        "Info: \t          ICESTORM_RAM:    30/   30   100%",
        "Info: \t                 SB_IO:     4/   96     4%",
        "ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_LC'",
    ])
    used = parse_log_utilisation(log)
    assert used == {"ICESTORM_LC": {"used": 6545, "available": 5280},
                    "ICESTORM_RAM": {"used": 30, "available": 30},
                    "SB_IO": {"used": 4, "available": 96}}
    res = _resources(get_board("icebreaker"), {"lut": 4701, "ff": 3120, "bram": 30, "dsp": 3},
                     used)
    assert res["lut"] == {"used": 6545, "available": 5280}
    assert res["dsp"]["used"] == 3 and res["ff"]["used"] == 3120
