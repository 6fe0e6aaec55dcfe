"""``rowstat build``: a bitstream of the accelerator and its UART host link for a board.

The build plan comes from the board's amaranth-boards platform (``platform.build(...,
do_build=False)``: RTLIL, the yosys script, the pin constraints and the tool commands of
Amaranth's own ``build_top.sh``). The tools then run here, one stage at a time, through
:func:`rowstat.fpga.yosys.run_tool`: the YoWASP packages from PyPI, or the executables named by
``YOSYS``, ``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5`` and ``ECPPACK``, as in Amaranth.
Doing the stages here gives progress lines, yosys' cell counts before place and route (a
design that cannot fit stops there, in seconds), nextpnr's JSON report (Fmax, utilisation) and
one-line errors.

Outputs, in ``DIR``: the bitstream (``<board>.bin`` for iCE40, ``<board>.bit`` for ECP5), and
``report.json``, written whatever happens, with what is known. The tools work in
``DIR/build/``. Files are written under a temporary name and renamed.
"""

import contextlib
import json
import os
import re
import shlex
import shutil
import tempfile
import threading
import time
from pathlib import Path

from ..version import __version__
from ..gen.errors import RowstatError
from ..gen.verilog import write_json
from . import yosys
from .board import DEFAULT_BAUD, BoardTop, ecp5_pll, get_board
from .uart import uart_divisor

__all__ = ["BuildFailed", "clock_plan", "build_plan", "plan_commands", "build_bitstream", "check_freq"]

# build_top.sh's tool variables -> rowstat.fpga.yosys tool names. DFU_SUFFIX (OrangeCrab) only
# tags the file for the USB bootloader; rowstat leaves it out (`dfu-suffix` is not on PyPI).
_SCRIPT_TOOLS = {"YOSYS": "yosys", "NEXTPNR_ICE40": "nextpnr-ice40",
                 "NEXTPNR_ECP5": "nextpnr-ecp5", "ICEPACK": "icepack", "ECPPACK": "ecppack"}
_SKIPPED_TOOLS = {"DFU_SUFFIX"}


class BuildFailed(RowstatError):
    """A build that ran and failed (does not fit, misses timing, a tool error): one line. The
    report has been written."""


def check_freq(freq):
    """A target frequency in MHz, or raise a one-line error."""
    if freq is None:
        return None
    if isinstance(freq, bool) or not isinstance(freq, (int, float)) or not 1 <= freq <= 500:
        raise RowstatError(f"bad value for --freq: {freq!r}; allowed: a clock in MHz from 1 "
                           f"to 500")
    return float(freq)


def clock_plan(board, freq=None):
    """How a board reaches a core clock of ``freq`` MHz (default: the board's default):
    ``(clock_mhz, pll, constraint_mhz)``. On ECP5 a PLL makes any clock from 10 MHz (``pll``
    is then the :func:`~rowstat.fpga.board.ecp5_pll` setting and ``clock_mhz`` what it really
    gives); on iCE40 the design runs from the oscillator and ``freq`` is only the constraint
    nextpnr works to (``constraint_mhz``)."""
    target = check_freq(freq) or board.default_mhz
    if board.family == "ecp5" and abs(target - board.clock_mhz) > 1e-6 * target:
        try:
            pll = dict(ecp5_pll(board.clock_mhz, target), fin=board.clock_mhz)
        except ValueError as exc:
            raise RowstatError(f"bad value for --freq: {freq!r}; {exc}") from None
        return pll["fout"], pll, board.clock_mhz
    return board.clock_mhz, None, target


def build_plan(board_name, arch, freq=None, baud=DEFAULT_BAUD, fifo_depth=512):
    """The Amaranth build plan of ``arch`` on a board, without running any tool.

    Returns ``(plan, board, top)``; ``top.pll`` says whether an ECP5 PLL makes the clock
    (see :func:`clock_plan`).
    """
    board = get_board(board_name)
    clock_mhz, pll, constraint = clock_plan(board, freq)
    platform = board.make_platform()
    # The clock constraint nextpnr checks (through the PLL, which it follows, on ECP5).
    platform.lookup(platform.default_clk).clock.frequency = constraint * 1e6
    try:
        uart_divisor(clock_mhz * 1e6, baud)
    except (ValueError, TypeError) as exc:
        raise RowstatError(f"bad value for --baud: {baud!r}; {exc}") from None
    top = BoardTop(arch, clock_mhz * 1e6, baud, fifo_depth=fifo_depth, pll=pll)
    platform.add_file("rowstat_pe_sites.v", top.core.verilog_submodules())
    synth_opts = "-dsp" if board.family == "ice40" else ""
    script_after_synth = "tee -q -o stat.json stat -json"
    if board.family == "ice40":
        # An Amaranth read port that is not transparent returns the old word when its address
        # is written in the same cycle; the iCE40 block RAM does not promise that, so yosys
        # adds a bypass of its own: about 37 flip-flops and 20 LUTs per memory, most of them
        # flip-flops that pair with no LUT. No memory of the design reads a word in the cycle
        # it is written (FIFOs read only what they hold, spads and the GLB only what was
        # written before), so let such collisions read anything: synth_ice40 stops after its
        # coarse stage, memories with one clocked read port that is not transparent (all
        # block RAMs but the psum spads and the counter RAM, which keep their bypass) are
        # marked, and synth_ice40 goes on from the RAM mapping.
        synth_opts = "-dsp -run :map_ram"
        script_after_synth = "\n".join([
            "setparam -set RD_COLLISION_X_MASK 1'1 t:$mem_v2 r:RD_TRANSPARENCY_MASK=1'0 %i "
            "r:RD_CLK_ENABLE=1'1 %i",
            "synth_ice40 -dsp -top top -run map_ram:",
            script_after_synth,
        ])
    # synth_ice40 gives a multiply a DSP only if its product has 11 bits or more, so the PEs'
    # 4 x 4-bit MACs and the streamers' 9 x 5-bit ones took LUTs (about 40 each) while most
    # of the UP5K's DSPs sat idle. Map every multiply of two operands of 4 bits or more to a
    # DSP first (8 of 8 on the ice40 preset); narrower ones are left to synth_ice40.
    if board.family == "ecp5":
        # An ECP5 LUT RAM (DPR16X4, 16 x 4 bits) takes the LUTs of three slices, so memories
        # left to synth_ecp5's choice filled the LUTs first: an 8 x 8 `ecp5` array needed
        # 98k of the 85F's 84k LUT positions, a third of them LUT RAM, with 36% of the
        # flip-flops and half the block RAMs used (docs/results/boards/, measured on a PE
        # whose psum FIFO read was registered). So memories with a clocked read port and more
        # than 16 words take a block RAM, and two-word memories (the sites' GIN FIFOs, 65 and
        # 66 bits wide: 17 DPR16X4 each) take flip-flops and a read mux. synth_ecp5 stops before mapping
        # memories, the memories are marked, and it goes on from there.
        synth_opts = "-run :map_ram"
        script_after_synth = "\n".join([
            "setattr -set ram_style \"block\" t:$mem_v2 r:RD_CLK_ENABLE=1'1 %i r:SIZE>16 %i",
            "setattr -set ram_style \"logic\" t:$mem_v2 r:SIZE<=2 %i",
            "synth_ecp5 -top top -run map_ram:",
            script_after_synth,
        ])
    script_after_read = "\n".join([
        "wreduce t:$mul",
        "techmap -map +/mul2dsp.v -map +/ice40/dsp_map.v -D DSP_A_MAXWIDTH=16 "
        "-D DSP_B_MAXWIDTH=16 -D DSP_A_MINWIDTH=4 -D DSP_B_MINWIDTH=4 -D DSP_Y_MINWIDTH=8 "
        "-D DSP_NAME=$__MUL16X16 t:$mul",
        "chtype -set $mul t:$__soft_mul",
    ]) if board.family == "ice40" else ""
    # router2: router1 needs hours for the 5 x 5 ecp5 preset in WebAssembly (over 40 minutes
    # for a third of its 262k arcs). The static (electrostatic) placer: with the default HeAP
    # placer a 3 x 4 array with 16-bit data did not route in 35 minutes (router2 stuck near
    # 1,000 overused wires); static placement has a third less wire and routed it in 11.
    nextpnr_opts = "--router router2 --placer static" if board.family == "ecp5" else ""
    plan = platform.build(top, name="top", do_build=False, synth_opts=synth_opts,
                          nextpnr_opts=nextpnr_opts, script_after_read=script_after_read,
                          script_after_synth=script_after_synth)
    return plan, board, top


def plan_commands(plan):
    """The tool commands of a plan's ``build_top.sh``: a list of (tool, [args])."""
    script = plan.files["build_top.sh"]
    if isinstance(script, bytes):
        script = script.decode()
    commands = []
    for line in script.splitlines():
        match = re.match(r'^"\$(\w+)"(.*)$', line.strip())
        if not match or match.group(1) in _SKIPPED_TOOLS:
            continue
        if match.group(1) not in _SCRIPT_TOOLS:
            raise RowstatError(f"unknown tool ${match.group(1)} in Amaranth's build script")
        commands.append((_SCRIPT_TOOLS[match.group(1)], shlex.split(match.group(2))))
    return commands


def _copy_atomic(src, dst):
    dst = Path(dst)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _resources(board, metrics, utilisation):
    """{"lut"|"ff"|"bram"|"dsp": {"used", "available"}} from yosys' counts and, when place and
    route got that far, nextpnr's (which win: they count what was placed)."""
    available = {"lut": board.luts, "ff": board.luts, "bram": board.brams, "dsp": board.dsps}
    out = {k: {"used": metrics.get(k), "available": available[k]} for k in available}
    names = {"ice40": {"lut": "ICESTORM_LC", "bram": "ICESTORM_RAM", "dsp": "ICESTORM_DSP"},
             "ecp5": {"lut": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD",
                      "dsp": "MULT18X18D"}}[board.family]
    for key, cell in names.items():
        use = utilisation.get(cell)
        if use and use.get("available"):
            out[key] = {"used": use["used"], "available": use["available"]}
    if board.family == "ice40":
        out["spram"] = {"used": metrics.get("spram"), "available": 4}
    return out


@contextlib.contextmanager
def _heartbeat(say, log, every=60.0):
    """While the block runs, say every ``every`` seconds how long it has run and the last
    line of ``log`` (nextpnr's placer and router progress)."""
    done = threading.Event()
    t0 = time.monotonic()

    def beat():
        while not done.wait(every):
            try:
                lines = log.read_text(errors="replace").splitlines()
            except OSError:             # the tool has not opened its log yet
                lines = []
            last = lines[-1].replace("Info:", "").strip() if lines else ""
            say(f"      ... {time.monotonic() - t0:.0f} s: {last[:100]}", flush=True)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _seed_dirs(work, seeds):
    """One folder per nextpnr seed beside the synthesized design, the build's files linked in:
    each run writes its own log, report and placed design there."""
    inputs = [f for f in work.iterdir() if f.is_file()]
    dirs = []
    for seed in seeds:
        d = work / f"seed{seed}"
        d.mkdir()
        for f in inputs:
            (d / f.name).symlink_to(f.resolve())
        dirs.append(d)
    return dirs


def _adopt(winner, work):
    """Move the winning seed's outputs into the build folder (over the links)."""
    for f in winner.iterdir():
        if not f.is_symlink():
            os.replace(f, work / f.name)


def build_bitstream(board_name, arch, out_dir, *, preset=None, freq=None, baud=DEFAULT_BAUD,
                    seed=1, seeds=None, timeout=None, say=print):
    """Build the bitstream of ``arch`` for a board into ``out_dir``. Returns the report (a
    dict, also in ``out_dir/report.json``). Raises :class:`BuildFailed` (after writing the
    report) if the design does not fit, misses the target frequency or a tool fails.

    ``seeds``: several nextpnr seeds run at once; the first that routes and meets timing is
    kept and the others are stopped (default: ``seed`` alone). An interrupted build
    (KeyboardInterrupt, or SIGTERM turned into one by the CLI) stops its tools and leaves a
    report whose status is "interrupted"."""
    seeds = list(seeds) if seeds else [seed]
    t0 = time.monotonic()
    out = Path(out_dir)
    board = get_board(board_name)
    target = check_freq(freq) or board.default_mhz
    clock_mhz, pll, _ = clock_plan(board, target)
    report = {
        "board": board.name, "device": board.device, "family": board.family,
        "preset": preset, "parameters": arch.to_dict(), "arch_key": arch.key(),
        "target_mhz": target, "clock_mhz": round(clock_mhz, 4), "pll": pll,
        "clock_note": (f"an ECP5 PLL makes {clock_mhz:g} MHz from the board's "
                       f"{board.clock_mhz:g} MHz oscillator" if pll else
                       f"the design runs from the board's {board.clock_mhz:g} MHz oscillator "
                       f"(no PLL); the target is the clock constraint given to nextpnr"),
        "baud": baud, "uart": board.uart, "fmax_mhz": None, "resources": None,
        "status": "running", "error": None, "bitstream": None, "stages": {},
        "rowstat_version": __version__,
    }
    out.mkdir(parents=True, exist_ok=True)
    work = out / "build"
    suffix = ".bin" if board.family == "ice40" else ".bit"
    bitstream = out / f"{board.name}{suffix}"
    bitstream.unlink(missing_ok=True)       # never leave an older build's beside this report

    def save():
        report["seconds"] = round(time.monotonic() - t0, 1)
        write_json(out / "report.json", report)

    def fail(status, message):
        report.update(status=status, error=message)
        save()
        raise BuildFailed(message)

    def stage(n, what):
        say(f"[{n}/5] {what}", flush=True)

    stage(1, f"elaborating the {board.name} top ({arch.rows} x {arch.cols} PEs, "
             f"{arch.act_width}-bit) and writing the build plan")
    t = time.monotonic()
    plan, board, top = build_plan(board.name, arch, target, baud)
    if work.exists():
        shutil.rmtree(work)
    plan.extract(work)
    report["divisor"] = top.divisor
    report["stages"]["plan"] = round(time.monotonic() - t, 1)
    commands = plan_commands(plan)
    metrics, utilisation, clocks = {}, {}, {}
    fmax = None
    for tool, args in commands:
        t = time.monotonic()
        try:
            if tool == "yosys":
                stage(2, f"synthesizing with yosys (synth_{board.family}); minutes for a "
                         f"large array")
                yosys.run_tool(tool, args, cwd=work, log="top.rpt", timeout=timeout)
                metrics, _ = yosys.parse_stat(board.family, work / "stat.json")
                report["synthesis"] = metrics       # yosys' cell counts (LUT4s, not slices)
                report["resources"] = _resources(board, metrics, {})
                say(f"      {metrics['lut']} LUT4, {metrics['ff']} FF, {metrics['bram']} BRAM, "
                    f"{metrics['dsp']} DSP", flush=True)
                over = [f"{k} {report['resources'][k]['used']} > "
                        f"{report['resources'][k]['available']}" for k in ("lut", "bram", "dsp")
                        if report["resources"][k]["used"] > report["resources"][k]["available"]]
                if over:
                    report["stages"][tool] = round(time.monotonic() - t, 1)
                    fail("does_not_fit", f"{arch.rows}x{arch.cols} design does not fit the "
                         f"{board.device} ({', '.join(over)} after synthesis); try a smaller "
                         f"--preset or --set rows=/cols=/act_width=")
            elif tool.startswith("nextpnr"):
                stage(3, f"placing and routing with {tool} for {clock_mhz:g} MHz")
                args = args + ["--report", "pnr_report.json", "--timing-allow-fail"]
                try:
                    if len(seeds) == 1:
                        report["seed"] = seeds[0]
                        with _heartbeat(say, work / "top.tim"):
                            yosys.run_tool(tool, args + ["--seed", str(seeds[0])], cwd=work,
                                           log="top.tim", timeout=timeout)
                    else:
                        say(f"      seeds {', '.join(map(str, seeds))} at once; the first "
                            f"that routes is kept", flush=True)
                        dirs = _seed_dirs(work, seeds)
                        try:
                            with _heartbeat(say, dirs[0] / "top.tim"):
                                won, _ = yosys.run_first_ok(
                                    tool, [(args + ["--seed", str(sd)], d)
                                           for sd, d in zip(seeds, dirs)],
                                    log="top.tim", timeout=timeout)
                        except yosys.ToolRunError:
                            _adopt(dirs[0], work)       # the first seed's log and report
                            raise
                        report["seed"] = seeds[won]
                        _adopt(dirs[won], work)
                finally:
                    if (work / "pnr_report.json").exists():
                        fmax = yosys.parse_fmax(work / "pnr_report.json")
                        data = json.loads((work / "pnr_report.json").read_text())
                        utilisation = data.get("utilization", {})
                        clocks = data.get("fmax", {})
                        report["clocks"] = clocks
                        report["resources"] = _resources(board, metrics, utilisation)
                        report["fmax_mhz"] = round(fmax, 2) if fmax else None
                        report["critical_paths"] = yosys.parse_critical_paths(
                            work / "pnr_report.json")
                    elif (work / "top.tim").exists():
                        # stopped before its report (e.g. it does not fit): the log's counts
                        used = yosys.parse_log_utilisation(
                            (work / "top.tim").read_text(errors="replace"))
                        report["resources"] = _resources(board, metrics, used)
                say(f"      Fmax {fmax:.1f} MHz (target {target:g} MHz)" if fmax else
                    "      no Fmax in nextpnr's report", flush=True)
                missed = fmax is None or any(
                    c.get("achieved", 0) < c.get("constraint", 0) for c in clocks.values())
                if missed:
                    report["stages"][tool] = round(time.monotonic() - t, 1)
                    got = f"{fmax:.1f} MHz" if fmax else "no Fmax"
                    fail("timing_failed", f"design misses timing on the {board.device}: "
                         f"{got} < {clock_mhz:g} MHz; try a lower --freq or a smaller design")
            else:
                stage(4, f"packing the bitstream with {tool}")
                yosys.run_tool(tool, args, cwd=work, timeout=timeout)
        except KeyboardInterrupt:
            report.update(status="interrupted", error=f"interrupted during {tool}")
            save()
            raise
        except yosys.ToolRunError as exc:
            report["stages"][tool] = round(time.monotonic() - t, 1)
            text = str(exc)
            status = "does_not_fit" if re.search(r"no BELs remaining|Unable to place|"
                                                 r"failed to place", text) else "tool_failed"
            fail(status, text)
        report["stages"][tool] = round(time.monotonic() - t, 1)
    stage(5, f"writing {bitstream} and {out / 'report.json'}")
    _copy_atomic(work / f"top{suffix}", bitstream)
    report.update(status="ok", bitstream=str(bitstream))
    save()
    return report
