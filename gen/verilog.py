"""Verilog generation: one registry of tops, reproducible output, and a JSON description."""

import json
import os
import tempfile
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Value
from amaranth.lib import wiring

from ..version import __version__
from .errors import RowstatError

__all__ = ["TOPS", "register_top", "make_top", "generate", "port_list", "write_atomic",
           "write_bytes_atomic", "write_npy", "write_json"]


def _pe(arch):
    from ..hw.pe import PE
    return PE(arch)


def _array(arch):
    from ..hw.array import PEArray
    return PEArray(arch)


def _accelerator(arch):
    from ..hw.accelerator import Accelerator
    return Accelerator(arch)


#: Top-level components a user can generate: name -> function of the arch that builds it. The
#: hardware's tops are here; a higher layer adds its own with :func:`register_top` (importing
#: rowstat.fpga.board adds ``board``, the accelerator behind the UART host link), so that this
#: module does not import the layers above it.
TOPS = {"pe": _pe, "array": _array, "accelerator": _accelerator}


def register_top(name, factory):
    """Make ``factory(arch)`` (a component) available as the top ``name``."""
    TOPS[name] = factory


def make_top(arch, top):
    """Instantiate the Amaranth component for ``top``."""
    if top not in TOPS:
        raise RowstatError(f"bad value for --top: {top!r}; allowed: {', '.join(TOPS)}")
    return TOPS[top](arch)


def port_list(component):
    """Flattened ports of a component as they appear in the Verilog: name, direction, width."""
    ports = []
    for path, member, value in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        ports.append({"name": name, "direction": "input" if member.flow == wiring.In else "output",
                      "width": Value.cast(value).shape().width})
    return [{"name": "clk", "direction": "input", "width": 1},
            {"name": "rst", "direction": "input", "width": 1}] + ports


def generate(arch, top="pe", name=None):
    """Return (verilog_text, description) for ``top`` built from ``arch``.

    The same inputs give the same bytes: no source locations, no timestamps.
    """
    component = make_top(arch, top)
    name = name or f"rowstat_{top}"
    text = verilog.convert(component, name=name, emit_src=False)
    # A top may instantiate modules by name (the array's one shared PE site module, instead of
    # one Verilog module per PE); it supplies their text.
    extra = getattr(component, "verilog_submodules", None)
    if extra is not None:
        text += extra()
    description = dict(arch.to_dict())
    description.update({
        "top": top,
        "module": name,
        "rowstat_version": __version__,
        "ports": port_list(component),
    })
    return text, description


def _publish(tmp, path):
    """Give a finished temporary file normal permissions (mkstemp makes 0600) and rename it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def write_atomic(path, text):
    """Write ``text`` to ``path`` via a temporary file and a rename, so a failed run never
    leaves a half-written file behind. Returns True if the content changed."""
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return False
    write_bytes_atomic(path, text.encode())
    return True


def write_bytes_atomic(path, data):
    """Write the bytes ``data`` to ``path`` like :func:`write_atomic` (always)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_npy(path, array):
    """Save a NumPy array like write_atomic: a temporary file, then a rename."""
    import numpy as np
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npy")
    os.close(fd)
    try:
        np.save(tmp, array)
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path, obj):
    return write_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
