"""``rowstat presets`` and ``rowstat generate``: the presets, and Verilog of a top."""

import sys
import time
from pathlib import Path

from ..gen.config import PRESET_NOTES, PRESETS
from ..gen.errors import RowstatError
from .common import arch_from_args, arch_options

__all__ = ["add_parser", "cmd_presets", "cmd_generate", "generate_to"]


def add_parser(sub):
    p = sub.add_parser("presets", help="list the presets and their parameters")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("generate", help="write Verilog and a JSON description of a top")
    arch_options(p)
    p.add_argument("--top", default="pe", choices=["pe", "array", "accelerator"],
                   help="what to generate (default pe)")
    p.add_argument("--name", default=None, help="Verilog module name (default rowstat_TOP)")
    p.add_argument("-o", "--output", required=True, metavar="FILE.v",
                   help="Verilog output; FILE.json is written beside it")
    p.set_defaults(func=cmd_generate)


def cmd_presets(args):
    names = list(PRESETS)
    keys = list(PRESETS[names[0]].to_dict())
    width = max(len(k) for k in keys)
    print(f"{'':{width}}  " + "  ".join(f"{n:>10}" for n in names))
    for key in keys:
        print(f"{key:{width}}  " + "  ".join(f"{PRESETS[n].to_dict()[key]:>10}" for n in names))
    print(f"{'glb KiB':{width}}  " + "  ".join(f"{PRESETS[n].glb_bytes / 1024:>10g}" for n in names))
    print()
    for n in names:
        print(f"{n}: {PRESET_NOTES[n]}")
    return 0


def cmd_generate(args):
    arch = arch_from_args(args)
    out = Path(args.output)
    if out.suffix != ".v":
        raise RowstatError(f"bad value for -o: {str(out)!r}; allowed: a file name ending in .v")
    lines, seconds = generate_to(arch, args.top, out, name=args.name)
    print(f"wrote {out} ({lines} lines) and {out.with_suffix('.json')} in {seconds:.2f} s",
          file=sys.stderr)
    return 0


def generate_to(arch, top, path, name=None):
    """Write ``top``'s Verilog to ``path`` and its JSON beside it (the .v last, so it appears
    only once both are complete). Returns (lines of Verilog, seconds)."""
    from ..gen.verilog import generate, write_atomic, write_json
    t0 = time.monotonic()
    text, description = generate(arch, top, name=name)
    write_json(path.with_suffix(".json"), description)
    write_atomic(path, text)
    return len(text.splitlines()), time.monotonic() - t0
