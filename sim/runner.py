"""Build generated Verilog once per (simulator, configuration) and run cocotb benches on it.

Builds live in a cache folder (``$ROWSTAT_CACHE``, default ``~/.cache/rowstat``), one folder
per (simulator, top, configuration), keyed by a hash of the configuration. The Verilog is
regenerated each time (it is fast) but rewritten only when its bytes change, and the
simulator build runs only when the Verilog or the build flags changed. A file lock lets
parallel test workers share one build.
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from ..gen.errors import RowstatError, ToolError
from ..gen.verilog import generate, write_atomic
from .toolchain import setup_simulator

__all__ = ["Build", "build", "run_bench", "check_pe", "cache_root", "VERILATOR_WAIVERS"]

#: Lint warnings that Yosys-generated Verilog trips in Verilator: waived here, and only here.
VERILATOR_WAIVERS = [
    "-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE",
    "-Wno-UNUSEDSIGNAL", "-Wno-UNDRIVEN", "-Wno-PINCONNECTEMPTY",
    "-Wno-DECLFILENAME", "-Wno-MULTIDRIVEN", "-Wno-LATCH", "-Wno-SELRANGE",
]
VERILATOR_ARGS = VERILATOR_WAIVERS + ["-O3", "--x-assign", "fast", "--x-initial", "fast"]
ICARUS_TIMESCALE = ("1ns", "1ps")  # Amaranth emits no `timescale


def _verilator_runner(module, build_dir):
    """cocotb's Verilator runner, without its --public-flat-rw.

    That flag makes every signal of the design public, which stops Verilator from optimizing
    across the PE sites and slows a 12 x 14 array by an order of magnitude. The benches only
    touch the top's ports, so a control file makes just those public.
    """
    from cocotb_tools.runner import VerilatorControlFile, get_runner
    runner = get_runner("verilator")
    build_command = runner._build_command

    def without_public_flat_rw():
        cmds = build_command()
        cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
        return cmds

    runner._build_command = without_public_flat_rw
    control = build_dir / "public.vlt"
    write_atomic(control, f'`verilator_config\npublic_flat_rw -module "{module}" -var "*"\n')
    return runner, VerilatorControlFile(control)


def cache_root():
    return Path(os.environ.get("ROWSTAT_CACHE", Path.home() / ".cache" / "rowstat"))


@dataclass
class Build:
    """A built simulation model of one top."""

    sim: str
    top: str
    module: str
    build_dir: Path
    description: dict
    build_seconds: float    # 0.0 when the cached build was reused
    verilog_seconds: float


def _say(progress, text):
    if progress:
        print(text, file=sys.stderr, flush=True)


def build(arch, top="pe", sim=None, waves=False, progress=True):
    """Generate and build ``top`` for ``arch``; reuse the cached build when nothing changed."""
    sim = setup_simulator(sim)
    from cocotb_tools.runner import get_runner

    t0 = time.monotonic()
    text, description = generate(arch, top)
    verilog_seconds = time.monotonic() - t0
    module = description["module"]
    tag = f"{sim}-{top}-{arch.key()}" + ("-waves" if waves else "")
    build_dir = cache_root() / tag
    build_dir.mkdir(parents=True, exist_ok=True)
    flags = VERILATOR_ARGS if sim == "verilator" else []
    stamp_text = hashlib.sha256(
        (text + json.dumps([flags, waves, module, "ports-public"])).encode()).hexdigest()
    stamp = build_dir / "build.stamp"
    source = build_dir / f"{module}.v"
    build_seconds = 0.0
    with FileLock(str(build_dir / ".lock")):
        write_atomic(source, text)
        write_atomic(build_dir / f"{module}.json", json.dumps(description, indent=2) + "\n")
        binary = build_dir / (module if sim == "verilator" else "sim.vvp")
        if not (stamp.exists() and stamp.read_text() == stamp_text and binary.exists()):
            _say(progress, f"building {top} for {sim} in {build_dir} ...")
            # Start clean: make's dependency files name the venv that built them last, which
            # may be another clone's and gone.
            for old in build_dir.iterdir():
                if old.name not in (".lock", source.name, f"{module}.json"):
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
            t1 = time.monotonic()
            extra = []
            if sim == "verilator":
                runner, control = _verilator_runner(module, build_dir)
                extra = [control]
            else:
                runner = get_runner(sim)
            log = build_dir / "build.log"
            try:
                runner.build(
                    sources=[source] + extra, hdl_toplevel=module, build_dir=build_dir,
                    build_args=flags, waves=waves, log_file=log,
                    timescale=ICARUS_TIMESCALE if sim == "icarus" else None)
            except (RuntimeError, SystemExit) as exc:
                tail = "".join(log.read_text(errors="replace").splitlines(True)[-15:]) \
                    if log.exists() else ""
                raise ToolError(f"{sim} build of {top} failed ({exc}); log: {log}\n{tail}") \
                    from None
            build_seconds = time.monotonic() - t1
            stamp.write_text(stamp_text)
            _say(progress, f"built in {build_seconds:.1f} s")
    return Build(sim, top, module, build_dir, description, build_seconds, verilog_seconds)


def _show_progress(thread, path, enabled):
    """Wait for ``thread``; meanwhile show the bench's progress file (``{"done": x,
    "total": y, "unit": ...}``) as a progress bar on stderr."""
    bar = None
    while thread.is_alive():
        thread.join(1.0)
        if not enabled or not path.exists():
            continue
        try:
            state = json.loads(path.read_text())
        except (ValueError, OSError):
            continue
        if bar is None:
            from tqdm import tqdm
            bar = tqdm(total=state["total"], unit=state.get("unit", ""), file=sys.stderr,
                       desc="simulating", dynamic_ncols=True)
        bar.n = state["done"]
        bar.set_postfix_str(state.get("note", ""), refresh=False)
        bar.refresh()
    if bar is not None:
        bar.close()


def run_bench(built, bench_module, args, testcase=None, waves=None, progress=True):
    """Run a cocotb bench module on a build.

    ``args`` is handed to the bench as JSON (``ROWSTAT_BENCH_ARGS`` names the file); the bench
    writes its report as JSON to ``ROWSTAT_BENCH_REPORT``. Returns the report (a dict).
    Raises RowstatError when the bench failed, with the end of its log.
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    setup_simulator(built.sim)
    runner = get_runner(built.sim)
    with tempfile.TemporaryDirectory(prefix="rowstat-run-") as tmp:
        tmp = Path(tmp)
        (tmp / "args.json").write_text(json.dumps(args))
        report_path = tmp / "report.json"
        log = tmp / "sim.log"
        progress_path = tmp / "progress.json"
        # A cached Verilator binary keeps the RUNPATH of the venv that built it (another
        # clone's, possibly gone): point the loader at this venv's cocotb libraries first.
        from cocotb_tools.config import libs_dir
        ld_path = os.pathsep.join(p for p in (str(libs_dir), os.environ.get("LD_LIBRARY_PATH"))
                                  if p)
        env = {"LD_LIBRARY_PATH": ld_path,
               "ROWSTAT_BENCH_ARGS": str(tmp / "args.json"),
               "ROWSTAT_BENCH_REPORT": str(report_path),
               "ROWSTAT_BENCH_PROGRESS": str(progress_path)}
        t0 = time.monotonic()
        outcome = {}

        def simulate():
            try:
                outcome["results"] = runner.test(
                    test_module=bench_module, hdl_toplevel=built.module, testcase=testcase,
                    hdl_toplevel_lang="verilog", build_dir=built.build_dir, test_dir=tmp,
                    results_xml=str(tmp / "results.xml"), extra_env=env, log_file=log,
                    waves=bool(waves),
                    timescale=ICARUS_TIMESCALE if built.sim == "icarus" else None)
            except (RuntimeError, SystemExit) as exc:
                outcome["error"] = exc

        # The simulation runs in a thread so that long runs can show the bench's progress.
        thread = threading.Thread(target=simulate, daemon=True)
        thread.start()
        _show_progress(thread, progress_path, progress)
        if "error" in outcome:
            tests, failed, results = 0, 1, outcome["error"]
        else:
            results = outcome["results"]
            tests, failed = get_results(results)
        seconds = time.monotonic() - t0
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        if waves:
            # Verilator writes dump.vcd in the test folder, Icarus <module>.fst in the build
            # folder; the file keeps the format the simulator wrote.
            for found in (tmp / "dump.vcd", tmp / "dump.fst", tmp / f"{built.module}.fst",
                          built.build_dir / f"{built.module}.fst"):
                if found.exists():
                    target = Path(waves).with_suffix(found.suffix)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(found), target)
                    report["waves"] = str(target)
                    break
        if failed or not tests:
            text = log.read_text(errors="replace") if log.exists() else ""
            lines = [ln for ln in text.splitlines() if "Error" in ln or "FAIL" in ln
                     or "assert" in ln.lower()][-12:]
            raise RowstatError(f"simulation of {built.top} failed ({failed} of {tests} tests): "
                               + ("\n".join(lines) or str(results)))
        report["sim_seconds"] = seconds
        return report


def check_pe(arch, cases=50, seed=0, idle=0.2, stall=0.2, sim=None, waves=None,
             max_F=12, max_rows=3, progress=True, corrupt=False):
    """Build the PE for ``arch`` and run ``cases`` random passes on it against the golden
    model. Returns the bench's report with the build times added."""
    built = build(arch, "pe", sim, waves=bool(waves), progress=progress)
    report = run_bench(built, "rowstat.sim.pe_bench",
                       {"arch": arch.to_dict(), "seed": seed, "cases": cases, "idle": idle,
                        "stall": stall, "max_F": max_F, "max_rows": max_rows,
                        "corrupt": corrupt},
                       waves=waves, progress=progress)
    report.update(build_seconds=built.build_seconds, verilog_seconds=built.verilog_seconds,
                  build_dir=str(built.build_dir), sim=built.sim)
    return report


def check_array(arch, cases, seed=0, idle=0.2, stall=0.2, sim=None, waves=None, progress=True,
                corrupt=False, gon_hold=0):
    """Build the PE array for ``arch`` and run the passes of ``cases`` (spec dicts, see
    rowstat.sim.array_model.make_slice) on it against the golden model. Returns the bench's
    report (per pass: cycles, counters, utilisation) with the build times added."""
    built = build(arch, "array", sim, waves=bool(waves), progress=progress)
    report = run_bench(built, "rowstat.sim.array_bench",
                       {"arch": arch.to_dict(), "cases": list(cases), "seed": seed,
                        "idle": idle, "stall": stall, "corrupt": corrupt,
                        "gon_hold": gon_hold},
                       waves=waves, progress=progress)
    report.update(build_seconds=built.build_seconds, verilog_seconds=built.verilog_seconds,
                  build_dir=str(built.build_dir), sim=built.sim)
    return report
