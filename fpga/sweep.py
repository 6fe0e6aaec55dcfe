"""Parameter sweeps: synthesize every point of a grid of architectures and tabulate the area.

A sweep is the cartesian product of a few ``--vary key=v1,v2,...`` lists applied over a base
:class:`~rowstat.gen.config.ArchConfig`. Each point is generated to Verilog and synthesized with
yosys (see :mod:`rowstat.fpga.yosys`) in its own folder, ``DIR/points/<hash>/``, named by a hash
of everything that decides its result (parameters, top, target, place and route options, flow
version). The point's ``result.json`` is written last, atomically, so a sweep that was stopped
can be run again and only does the points it had not finished; a point that failed (a tool error
or a timeout) is recorded and tried again on the next run, and does not stop the others.

Points run in local worker processes, or on a Dask distributed cluster given its scheduler
address. The results go to ``DIR/sweep.csv``, ``DIR/sweep.json`` and a PNG plot of the area
against each varied parameter, with the fitted cost per PE (area = a + b * rows * cols).
"""

import contextlib
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

from ..version import __version__
from ..gen.config import ArchConfig, parse_int
from ..gen.errors import ConfigError, RowstatError
from ..gen.verilog import TOPS, write_atomic, write_json
from . import board  # noqa: F401  (adds the board top to TOPS)
from . import yosys

__all__ = [
    "FLOW_VERSION", "parse_vary", "grid", "point_hash", "run_point", "run_sweep",
    "fit_cost_per_pe", "area_metric", "csv_columns", "write_csv", "write_report", "write_plots",
    "format_summary", "command_line", "require_dask",
]

#: Bump when the flow changes in a way that changes results: cached points are then redone.
FLOW_VERSION = 1

_KEYS = tuple(f.name for f in dataclasses.fields(ArchConfig))
_FINISHED = ("ok", "invalid")     # statuses a rerun reuses; "failed" points are tried again


# --- the grid --------------------------------------------------------------------------------

def _parse_int(key, text, item):
    value = parse_int(text.strip())
    if value is None:
        raise ConfigError("--vary", item, f"{key}= followed by integers separated by commas "
                                          f"(bad value {text.strip()!r})")
    return value


def parse_vary(items):
    """``["rows=2,4", "act_width=8,16"]`` -> ``{"rows": [2, 4], "act_width": [8, 16]}``.

    Values are integers (decimal or 0x/0o/0b), duplicates dropped; out-of-range values are
    accepted here and become "invalid" points of the sweep. Raises :class:`ConfigError` (one
    line) for a missing ``=``, an unknown key, a key given twice or a value that is not an
    integer.
    """
    if isinstance(items, str):
        items = [items]
    vary = {}
    for item in items or ():
        key, sep, values = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("--vary", item, "key=v1,v2,... (e.g. rows=2,4,8)")
        if key not in _KEYS:
            raise ConfigError(key, values, f"a known key ({', '.join(sorted(_KEYS))})",
                              what="unknown key")
        if key in vary:
            raise ConfigError("--vary", item, f"each key once ({key} is already varied)")
        parts = [v for v in values.split(",")]
        if not values.strip() or any(not v.strip() for v in parts):
            raise ConfigError("--vary", item,
                              f"{key}= followed by integers separated by commas, none empty")
        out = []
        for v in parts:
            n = _parse_int(key, v, item)
            if n not in out:
                out.append(n)
        vary[key] = out
    return vary


def grid(vary):
    """Every point of the grid, in order (the first key varies slowest): a list of dicts."""
    keys = list(vary)
    return [dict(zip(keys, values)) for values in itertools.product(*(vary[k] for k in keys))]


def point_hash(params, top, target, pnr):
    """A stable short hash of all that decides a point's result."""
    key = {"params": params, "top": top, "target": target, "pnr": pnr or None,
           "flow": FLOW_VERSION}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


# --- one point (runs in a worker) -------------------------------------------------------------

def _one_line(exc):
    text = str(exc).strip().splitlines()
    text = text[0] if text else ""
    if isinstance(exc, RowstatError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_point(task):
    """Generate and synthesize one point; returns its result dict and writes it to
    ``task["dir"]/result.json``. Never raises: failures are recorded in the result.

    ``task`` holds: ``params`` (all ArchConfig fields), ``point`` (the varied ones), ``top``,
    ``target``, ``pnr`` (None or {"device", "package", "freq"}), ``hash``, ``dir``,
    ``timeout`` (seconds for the whole point, or None).
    """
    from ..gen.verilog import generate

    t0 = time.monotonic()
    workdir = Path(task["dir"])
    workdir.mkdir(parents=True, exist_ok=True)
    result = {key: task[key] for key in ("point", "hash", "top", "target", "pnr", "params")}
    result.update(status="ok", error="", metrics={}, seconds={})
    timeout = task.get("timeout")

    def remaining():
        if not timeout:
            return None
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            raise yosys.ToolTimeout(f"point timed out after {timeout:g} s")
        return left

    stage = "generate"
    try:
        arch = ArchConfig(**task["params"])
        module = f"rowstat_{task['top']}"
        try:
            text, description = generate(arch, task["top"], name=module)
        except RowstatError as exc:
            result.update(status="invalid", error=_one_line(exc))
            return _finish(result, workdir, t0)
        write_atomic(workdir / f"{module}.v", text)
        write_json(workdir / f"{module}.json", description)
        result["seconds"]["generate"] = round(time.monotonic() - t0, 3)

        stage = "synthesis"
        metrics, cells, seconds = yosys.synthesize(task["target"], workdir, f"{module}.v",
                                                   module, timeout=remaining())
        result["metrics"].update(metrics)
        result["cells_by_type"] = cells
        result["seconds"]["synth"] = round(seconds, 3)

        if task.get("pnr"):
            stage = "place and route"
            pnr = task["pnr"]
            wrapper = "rowstat_pnr_top"
            (workdir / f"{wrapper}.v").write_text(
                yosys.pnr_wrapper(module, description["ports"], name=wrapper))
            _, _, seconds = yosys.synthesize(task["target"], workdir, f"{module}.v", wrapper,
                                             timeout=remaining(), netlist="pnr_netlist.json",
                                             extra_verilog=[f"{wrapper}.v"], tag="pnr_synth")
            result["seconds"]["pnr_synth"] = round(seconds, 3)
            fmax, utilisation, seconds = yosys.place_and_route(
                task["target"], workdir, "pnr_netlist.json", device=pnr.get("device"),
                package=pnr.get("package"), freq=pnr.get("freq"), timeout=remaining())
            result["metrics"]["fmax_mhz"] = round(fmax, 2) if fmax is not None else None
            result["utilisation"] = utilisation
            result["seconds"]["pnr"] = round(seconds, 3)
    except yosys.ToolTimeout as exc:
        result.update(status="failed", error=f"{stage}: {_one_line(exc)}")
    except RowstatError as exc:
        result.update(status="failed", error=f"{stage}: {_one_line(exc)}")
    except Exception as exc:  # noqa: BLE001 -- a point must never take the sweep down
        result.update(status="failed", error=f"{stage}: {_one_line(exc)}")
        result["traceback"] = traceback.format_exc()
    return _finish(result, workdir, t0)


def _finish(result, workdir, t0):
    result["seconds"]["total"] = round(time.monotonic() - t0, 3)
    write_json(workdir / "result.json", result)
    return result


def _load_cached(path):
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return result if result.get("status") in _FINISHED else None


# --- the sweep -------------------------------------------------------------------------------

def _progress_bar(total, enabled, initial=0):
    """A tqdm bar on stderr; ``enabled=None`` shows it only on a terminal."""
    if enabled is False:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    bar = tqdm(total=total, initial=initial, unit="point", desc="sweep", file=sys.stderr,
               dynamic_ncols=True, disable=None if enabled is None else False)
    return None if bar.disable else bar


def _run_local(tasks, jobs, bar, on_result):
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            on_result(task, run_point(task))
            if bar:
                bar.update()
        return
    import concurrent.futures as cf
    import multiprocessing
    # spawn, not fork: the parent may hold threads (a progress bar, Dask) that fork would copy.
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=ctx) as pool:
        futures = {pool.submit(run_point, task): task for task in tasks}
        try:
            for future in cf.as_completed(futures):
                task = futures[future]
                on_result(task, _future_result(task, future.result))
                if bar:
                    bar.update()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _future_result(task, get_result):
    """The result of a finished future, or a failed point if the worker itself died (a
    broken process pool, a lost Dask worker, a cancelled task)."""
    try:
        return get_result()
    except Exception as exc:  # noqa: BLE001 -- recorded as the point's error
        failed = {key: task[key] for key in ("point", "hash", "top", "target", "pnr", "params")}
        failed.update(status="failed", error=f"worker: {_one_line(exc)}", metrics={},
                      seconds={})
        # The cache file only saves a retry; the caller gets the failure either way.
        with contextlib.suppress(OSError):
            write_json(Path(task["dir"]) / "result.json", failed)
        return failed


def require_dask():
    """Fail in one line, naming the extra to install, when Dask is missing (it is optional)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise RowstatError("--scheduler needs Dask, which is not installed: install the dask "
                           "extra (pip install 'rowstat[dask]')") from None


def _run_dask(tasks, scheduler, bar, on_result):
    require_dask()
    from distributed import Client, as_completed
    if isinstance(scheduler, Client):
        client, own = scheduler, False
    else:
        try:
            client, own = Client(scheduler, timeout="20s"), True
        except (OSError, TimeoutError) as exc:
            raise RowstatError(f"bad value for --scheduler: {scheduler!r}; allowed: the address "
                               f"of a running Dask scheduler ({_one_line(exc)})") from None
    try:
        futures = {}
        for task in tasks:
            future = client.submit(run_point, task, key=f"rowstat-point-{task['hash']}",
                                   pure=False)
            futures[future] = task
        for future in as_completed(futures):
            on_result(futures[future], _future_result(futures[future], future.result))
            if bar:
                bar.update()
    finally:
        if own:
            client.close()


def run_sweep(base_arch, vary, target="ice40", top="pe", out_dir="sweep", jobs=None,
              scheduler=None, pnr=False, progress=True, timeout=None, device=None, freq=None,
              command=None, plots=True):
    """Synthesize every point of ``vary`` (``{key: [values]}``) over ``base_arch``.

    Returns the list of point dicts in grid order. Writes ``out_dir/points/<hash>/``,
    ``out_dir/sweep.csv``, ``out_dir/sweep.json`` and (if ``plots``) ``out_dir/*.png``.

    Parameters
    ----------
    target : "ice40", "ecp5" or "generic"
    top : "pe", "array" or "accelerator"
    jobs : local worker processes (default: the number of cores)
    scheduler : address of a Dask scheduler (or a ``distributed.Client``); overrides ``jobs``
    pnr : also place and route with nextpnr and report Fmax (FPGA targets only)
    progress : show a progress bar (True), never (False), or only on a terminal (None)
    timeout : seconds allowed for each point; a point past it is recorded as failed
    device : ``"DEVICE:PACKAGE"`` for place and route (default up5k:sg48 / 85k:CABGA381)
    freq : target MHz given to nextpnr (default 12 for ice40, 100 for ecp5)
    """
    t_start = time.monotonic()
    if target not in yosys.TARGETS:
        raise RowstatError(f"bad value for --target: {target!r}; allowed: "
                           f"{', '.join(yosys.TARGETS)}")
    if top not in TOPS:
        raise RowstatError(f"bad value for --top: {top!r}; allowed: {', '.join(TOPS)}")
    if pnr and target not in yosys.DEVICES:
        raise RowstatError(f"bad value for --pnr with --target {target}: place and route needs "
                           f"an FPGA target; allowed: {', '.join(yosys.DEVICES)}")
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs < 1:
        raise RowstatError(f"bad value for --jobs: {jobs}; allowed: an integer >= 1")
    if timeout is not None and timeout <= 0:
        raise RowstatError(f"bad value for --timeout: {timeout}; allowed: seconds > 0")
    if not vary:
        raise RowstatError("nothing to sweep: give at least one --vary key=v1,v2,...")
    for key, values in vary.items():
        if key not in _KEYS:
            raise ConfigError(key, values, f"a known key ({', '.join(sorted(_KEYS))})",
                              what="unknown key")
        if not values or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
            raise ConfigError("--vary", f"{key}={values}", "a non-empty list of integers")

    # A top that is not built yet fails the same way at every point: say so once, up front.
    from ..gen.verilog import make_top
    component = make_top(base_arch, top)
    component._MustUse__silence = True   # built only to check it exists: no unused warning
    # Check the tools before starting any work (a missing one is one line naming the package).
    # On a Dask cluster the workers have their own environment: they report per point.
    tools = ["yosys"] + ([f"nextpnr-{target}"] if pnr else [])
    if scheduler is None:
        for tool in tools:
            yosys.find_tool(tool)
    pnr_options = None
    if pnr:
        d_device, d_package, d_freq = yosys.DEVICES[target]
        if device:
            dev, sep, pkg = device.partition(":")
            if not dev or not sep or not pkg:
                raise RowstatError(f"bad value for --device: {device!r}; allowed: "
                                   f"DEVICE:PACKAGE, e.g. {d_device}:{d_package}")
        else:
            dev, pkg = d_device, d_package
        if freq is not None and not freq > 0:
            raise RowstatError(f"bad value for --freq: {freq}; allowed: MHz > 0")
        pnr_options = {"device": dev, "package": pkg, "freq": float(freq or d_freq)}

    out_dir = Path(out_dir)
    (out_dir / "points").mkdir(parents=True, exist_ok=True)
    base = base_arch.to_dict()
    points, tasks = [], []
    for index, point in enumerate(grid(vary)):
        params = dict(base, **point)
        entry = {"index": index, "point": point, "params": params, "top": top,
                 "target": target, "pnr": pnr_options, "dir": None}
        try:
            ArchConfig(**params)
        except ConfigError as exc:
            entry.update(hash=None, status="invalid", error=_one_line(exc), metrics={},
                         seconds={}, reused=False)
            points.append(entry)
            continue
        h = point_hash(params, top, target, pnr_options)
        entry["hash"] = h
        folder = out_dir / "points" / h
        entry["dir"] = f"points/{h}"
        cached = _load_cached(folder / "result.json")
        if cached is not None:
            cached.update(index=index, point=point, dir=entry["dir"], reused=True)
            points.append(cached)
            continue
        entry.update(status=None, reused=False)
        points.append(entry)
        tasks.append({"index": index, "point": point, "params": params, "top": top,
                      "target": target, "pnr": pnr_options, "hash": h, "dir": str(folder),
                      "timeout": timeout})

    reused = sum(1 for p in points if p.get("reused"))
    versions = {}
    if tasks and scheduler is None:
        # The first run of a YoWASP tool compiles its WebAssembly (slow, then cached): do it
        # once here rather than in every worker at the same time.
        versions = {tool: yosys.tool_version(tool, cwd=out_dir) for tool in tools}
    bar = _progress_bar(len(points), progress, initial=len(points) - len(tasks))

    def on_result(task, result):
        result.update(index=task["index"], point=task["point"], reused=False,
                      dir=f"points/{task['hash']}")
        points[task["index"]] = result
        if bar and result["status"] != "ok":
            bar.write(f"point {task['point']}: {result['status']}: {result['error']}")

    try:
        if scheduler is not None:
            _run_dask(tasks, scheduler, bar, on_result)
        else:
            _run_local(tasks, jobs, bar, on_result)
    finally:
        if bar:
            bar.close()

    wall = time.monotonic() - t_start
    summary = {
        "points": len(points),
        "ok": sum(p["status"] == "ok" for p in points),
        "failed": sum(p["status"] == "failed" for p in points),
        "invalid": sum(p["status"] == "invalid" for p in points),
        "reused": reused,
        "synthesized": len(tasks),
        "wall_seconds": round(wall, 2),
        "jobs": None if scheduler is not None else jobs,
        "scheduler": None if scheduler is None else str(getattr(scheduler, "scheduler_address",
                                                                 scheduler)),
    }
    fits = fit_cost_per_pe(points, vary, target, top)
    report = {
        "rowstat_version": __version__,
        "command": command,
        "top": top,
        "target": target,
        "pnr": pnr_options,
        "timeout": timeout,
        "tools": versions,
        "base": base,
        "vary": vary,
        "area_metric": area_metric(target),
        "columns": csv_columns(vary, target, bool(pnr)),
        "summary": summary,
        "fits": fits,
        "points": points,
    }
    write_csv(out_dir / "sweep.csv", points, vary, target, bool(pnr))
    if plots:
        report["plots"] = [p.name for p in write_plots(out_dir, points, vary, target, fits)]
    write_report(out_dir / "sweep.json", report)
    return points


# --- results ---------------------------------------------------------------------------------

def area_metric(target):
    """The column plotted and fitted as area: LUTs on an FPGA, transistors for generic."""
    return "transistors" if target == "generic" else "lut"


def csv_columns(vary, target, pnr):
    columns = list(vary) + list(yosys.TARGETS[target])
    if pnr:
        columns.append("fmax_mhz")
    return columns + ["seconds", "status", "error"]


def write_csv(path, points, vary, target, pnr):
    columns = csv_columns(vary, target, pnr)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for p in points:
        row = []
        for column in columns:
            if column in vary:
                value = p["point"][column]
            elif column == "status":
                value = p["status"]
            elif column == "error":
                value = p.get("error", "")
            elif column == "seconds":
                value = p.get("seconds", {}).get("total", "")
            else:
                value = p.get("metrics", {}).get(column, "")
            row.append("" if value is None else value)
        writer.writerow(row)
    write_atomic(path, buffer.getvalue())
    return path


def write_report(path, report):
    write_json(path, report)
    return path


def _lstsq(xs, ys):
    """Least-squares line y = a + b x: (a, b, r2)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    b = sxy / sxx
    a = my - b * mx
    syy = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    r2 = 1.0 - ss_res / syy if syy else 1.0
    return a, b, r2


def fit_cost_per_pe(points, vary, target, top):
    """Fit area = a + b * rows * cols over the ok points, once per combination of the other
    varied parameters (a width changes the cost of every PE, so it gets its own line).

    For ``top="pe"`` the design is one PE whatever rows and cols are, so its own area is the
    cost per PE: b is the mean area of the group and a is 0 (rows and cols only widen a few
    tag registers). For an array or accelerator, b is the least-squares slope, which needs at
    least two distinct PE counts in the group; otherwise a and b are None.
    """
    metric = area_metric(target)
    others = [k for k in vary if k not in ("rows", "cols")]
    groups = {}
    for p in points:
        if p.get("status") != "ok" or p.get("metrics", {}).get(metric) is None:
            continue
        key = tuple(p["point"][k] for k in others)
        pes = p["params"]["rows"] * p["params"]["cols"]
        groups.setdefault(key, []).append((pes, p["metrics"][metric]))
    fits = []
    for key, samples in groups.items():
        xs = [float(x) for x, _ in samples]
        ys = [float(y) for _, y in samples]
        fit = {"group": dict(zip(others, key)), "metric": metric, "n": len(samples),
               "pes": sorted(set(int(x) for x in xs))}
        if top == "pe":
            fit.update(a=0.0, b=round(sum(ys) / len(ys), 2), r2=None,
                       method="top is one PE: its area is the cost per PE")
        elif len(set(xs)) >= 2:
            a, b, r2 = _lstsq(xs, ys)
            fit.update(a=round(a, 2), b=round(b, 2), r2=round(r2, 4),
                       method="least squares: area = a + b * rows * cols")
        else:
            fit.update(a=None, b=None, r2=None,
                       method="rows * cols does not vary in this group: no fit")
        fits.append(fit)
    return fits


def _fit_label(fit):
    group = ", ".join(f"{k}={v}" for k, v in fit["group"].items())
    if fit["b"] is None:
        text = "no fit"
    elif fit["a"] == 0.0 and fit["r2"] is None:
        text = f"{fit['b']:,.0f} {fit['metric']}/PE"
    else:
        text = f"{fit['b']:,.0f} {fit['metric']}/PE + {fit['a']:,.0f}"
        if fit["r2"] is not None:
            text += f" (R²={fit['r2']:.3f})"
    return f"{group}: {text}" if group else text


def write_plots(out_dir, points, vary, target, fits, max_series=10):
    """One PNG per varied parameter (area against it, one line per combination of the other
    parameters), plus area against rows * cols when that varies, with the fitted cost per PE
    in a text box. Returns the paths written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    metric = area_metric(target)
    label = {"lut": "LUT4s", "transistors": "transistors (yosys stat -tech cmos)"}[metric]
    ok = [p for p in points if p.get("status") == "ok" and
          p.get("metrics", {}).get(metric) is not None]
    fit_text = "\n".join(["cost per PE:"] + [_fit_label(f) for f in fits[:8]] +
                         ([f"... {len(fits) - 8} more in sweep.json"] if len(fits) > 8 else []))
    written = []

    def draw(fig, ax, path, title):
        if ok:
            ax.text(0.02, 0.98, fit_text, transform=ax.transAxes, va="top", ha="left",
                    fontsize=7, family="monospace",
                    bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8})
        else:
            ax.text(0.5, 0.5, "no successful points", transform=ax.transAxes, ha="center")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    top_name = points[0]["top"] if points else "pe"
    for key in vary:
        others = [k for k in vary if k != key]
        series = {}
        for p in ok:
            series.setdefault(tuple(p["point"][k] for k in others), []).append(
                (p["point"][key], p["metrics"][metric]))
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, (group, samples) in enumerate(sorted(series.items())):
            samples.sort()
            name = ", ".join(f"{k}={v}" for k, v in zip(others, group)) or None
            ax.plot([s[0] for s in samples], [s[1] for s in samples], marker="o",
                    label=name if i < max_series else None)
        if others and len(series) > 1:
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xlabel(key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        draw(fig, ax, Path(out_dir) / f"area_vs_{key}.png",
             f"{top_name} on {target}: {metric} against {key}")

    pes = {p["params"]["rows"] * p["params"]["cols"] for p in ok}
    if ("rows" in vary or "cols" in vary) and len(pes) >= 2:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        others = [k for k in vary if k not in ("rows", "cols")]
        for i, fit in enumerate(fits):
            samples = sorted((p["params"]["rows"] * p["params"]["cols"], p["metrics"][metric])
                             for p in ok
                             if all(p["point"][k] == fit["group"][k] for k in others))
            line = ax.plot([s[0] for s in samples], [s[1] for s in samples], "o",
                           label=(", ".join(f"{k}={v}" for k, v in fit["group"].items())
                                  or None) if i < max_series else None)
            if fit["b"] is not None and fit["r2"] is not None:
                xs = [0, max(s[0] for s in samples)]
                ax.plot(xs, [fit["a"] + fit["b"] * x for x in xs], "--",
                        color=line[0].get_color(), linewidth=1)
        if others:
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xlabel("PEs (rows * cols)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        draw(fig, ax, Path(out_dir) / "area_vs_pes.png",
             f"{top_name} on {target}: {metric} against rows * cols")
    return written


def format_summary(points, out_dir):
    """A few lines for the terminal: counts, reuse, failures."""
    n = len(points)
    ok = sum(p["status"] == "ok" for p in points)
    failed = [p for p in points if p["status"] == "failed"]
    invalid = [p for p in points if p["status"] == "invalid"]
    reused = sum(1 for p in points if p.get("reused"))
    run = sum(1 for p in points if not p.get("reused") and p.get("hash"))
    lines = [f"{n} points: {ok} ok, {len(failed)} failed, {len(invalid)} invalid; "
             f"{reused} reused from {Path(out_dir) / 'points'}, {run} synthesized"]
    for p in failed + invalid:
        lines.append(f"  {p['status']}: {p['point']}: {p['error']}")
    return lines


def command_line(argv=None):
    """The command as typed, for sweep.json."""
    argv = sys.argv if argv is None else argv
    return " ".join(shlex.quote(a) for a in argv)
