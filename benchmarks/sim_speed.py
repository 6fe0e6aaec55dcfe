"""Verilator simulation speed of the accelerator on one busy layer.

Runs ``rowstat run --stats`` on a layer (default AlexNet CONV5 on the ``eyeriss`` preset, the
12 x 14 array) with seeded random int8-range data, 40% of the ifmap words zero, and the link
throttled to 19.2 bits per cycle, and writes the cycles, ``sim_seconds``, cycles per second and
the Verilator build time (0 when a cached build was reused) to ``OUT/sim_speed.json``. The
ofmap is checked against the golden model, so a fast wrong simulation cannot pass.

    .venv/bin/python benchmarks/sim_speed.py -o docs/results/pe_site/after

Run with ``ROWSTAT_CACHE`` pointing at an empty folder to measure a fresh build.
"""

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rowstat.gen.config import PRESETS
from rowstat.gen.layer import LayerSpec
from rowstat.gen.networks import NETWORKS
from rowstat.sim.golden import golden_layer

ZERO_FRACTION = 0.4


def layer_data(layer, seed):
    """Seeded int8-range ifmap (``ZERO_FRACTION`` zeros) and weights."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=layer.ifmap_shape, dtype=np.int64)
    x[rng.random(x.shape) < ZERO_FRACTION] = 0
    w = rng.integers(-128, 128, size=layer.weight_shape, dtype=np.int64)
    return x, w


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="eyeriss")
    parser.add_argument("--network", default="alexnet")
    parser.add_argument("--layer", default="CONV5")
    parser.add_argument("--io-bits-per-cycle", type=float, default=19.2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--layer-set", action="append", default=[], metavar="KEY=VALUE",
                        help="change the layer's shape, e.g. C=96 (a shorter run)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)

    spec = dict(NETWORKS[args.network][args.layer], N=1)
    for item in args.layer_set:
        key, _, value = item.partition("=")
        if key not in spec or not value.isdigit():
            parser.error(f"bad --layer-set {item!r}: KEY=VALUE with KEY one of {sorted(spec)}")
        spec[key] = int(value)
    layer = LayerSpec.from_dict(spec)
    x, w = layer_data(layer, args.seed)
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rowstat-speed-") as tmp:
        tmp = Path(tmp)
        (tmp / "layer.json").write_text(json.dumps(spec))
        np.save(tmp / "x.npy", x)
        np.save(tmp / "w.npy", w)
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "import sys; from rowstat.cli import main; "
                        "sys.argv[0] = 'rowstat'; sys.exit(main())",
                        "run", "--preset", args.preset, "--layer", str(tmp / "layer.json"),
                        "--ifmap", str(tmp / "x.npy"), "--weights", str(tmp / "w.npy"),
                        "--out", str(tmp / "y.npy"), "--stats", str(tmp / "stats.json"),
                        "--io-bits-per-cycle", str(args.io_bits_per_cycle)], check=True)
        wall = time.monotonic() - t0
        y = np.load(tmp / "y.npy")
        stats = json.loads((tmp / "stats.json").read_text())
    exact = bool(np.array_equal(y, golden_layer(PRESETS[args.preset], layer, x, w)))
    result = {
        "preset": args.preset, "layer": f"{args.network} {args.layer}", "shape": spec, "seed": args.seed,
        "zero_fraction": ZERO_FRACTION, "io_bits_per_cycle": args.io_bits_per_cycle,
        "exact": exact, "cycles": stats["cycles"], "sim_seconds": stats["sim_seconds"],
        "cycles_per_second": stats["cycles"] / stats["sim_seconds"],
        "build_seconds": stats["build_seconds"], "wall_seconds": wall,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": platform.machine(),
    }
    (args.output / "sim_speed.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
