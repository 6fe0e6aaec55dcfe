"""The command line as a user meets it: outputs, reproducibility and one-line errors."""

import json
import subprocess
import sys

import pytest

from rowstat.cli import main
from rowstat.gen.config import PRESETS


def rowstat(*args):
    """Run the CLI in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "rowstat.cli", *args],
                          capture_output=True, text=True, timeout=300)


def test_presets_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert name in out
    assert "224" in out and "filter_spad_depth" in out


def test_generate_pe_is_reproducible(tmp_path):
    a, b = tmp_path / "a.v", tmp_path / "b.v"
    assert main(["generate", "--preset", "eyeriss", "--top", "pe", "-o", str(a)]) == 0
    assert main(["generate", "--preset", "eyeriss", "--top", "pe", "-o", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert "module rowstat_pe" in a.read_text()
    description = json.loads(a.with_suffix(".json").read_text())
    assert description["rows"] == 12 and description["filter_spad_depth"] == 224
    assert description["top"] == "pe" and description["rowstat_version"]
    names = {p["name"]: p for p in description["ports"]}
    assert names["psum_out__payload"] == {"name": "psum_out__payload", "direction": "output",
                                          "width": 32}
    assert names["ifmap__ready"]["direction"] == "output"
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_generate_with_config_file_and_overrides(tmp_path):
    config = tmp_path / "arch.toml"
    config.write_text("act_width = 12\nweight_width = 12\npsum_width = 30\n")
    out = tmp_path / "pe.v"
    assert main(["generate", "--preset", "tiny", "--config", str(config),
                 "--set", "psum_width=28", "-o", str(out)]) == 0
    description = json.loads(out.with_suffix(".json").read_text())
    assert (description["act_width"], description["psum_width"], description["rows"]) == (12, 28, 3)


@pytest.mark.parametrize("args, words", [
    (["generate", "--set", "rows=0", "-o", "x.v"], ["rows", "0", "allowed"]),
    (["generate", "--set", "act_width=banana", "-o", "x.v"], ["act_width", "banana"]),
    (["generate", "--set", "colour=3", "-o", "x.v"], ["colour", "unknown key"]),
    (["generate", "--set", "psum_width=20", "-o", "x.v"], ["psum_width", "20", "32"]),
    (["generate", "--set", "filter_spad_depth=0", "-o", "x.v"], ["filter_spad_depth"]),
    (["generate", "--preset", "huge", "-o", "x.v"], ["preset", "huge", "eyeriss"]),
    (["generate", "--config", "missing.toml", "-o", "x.v"], ["missing.toml"]),
    (["generate", "-o", "x.txt"], ["x.txt", ".v"]),
    (["demo", "--cases", "0"], ["--cases", "0"]),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, words):
    result = subprocess.run([sys.executable, "-m", "rowstat.cli", *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]
    assert not list(tmp_path.iterdir())   # nothing half-written


@pytest.mark.parametrize("top, sets", [("array", ["rows=5", "cols=7"]), ("accelerator", [])])
def test_generate_array_and_accelerator(tmp_path, top, sets):
    out = tmp_path / f"{top}.v"
    args = ["generate", "--preset", "tiny", "--top", top, "-o", str(out)]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 0
    text = out.read_text()
    assert f"module rowstat_{top}" in text
    # The PE sites are one module, instantiated once per PE.
    rows = 5 if sets else 3
    cols = 7 if sets else 4
    assert text.count("module rowstat_pe_site_") == 1
    assert text.count("rowstat_pe_site_") >= rows * cols
    description = json.loads(out.with_suffix(".json").read_text())
    assert (description["rows"], description["cols"]) == (rows, cols)


def test_help_on_every_command():
    for command in ([], ["presets"], ["generate"], ["demo"]):
        result = rowstat(*command, "--help")
        assert result.returncode == 0 and "usage: rowstat" in result.stdout


def test_demo_runs_the_pe_check(tmp_path, capsys):
    assert main(["demo", "--top", "pe", "--preset", "tiny", "--cases", "5",
                 "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PASS: 5 passes" in out and "bit-exact" in out
    assert (tmp_path / "tiny_pe.v").exists()


def test_run_a_layer_from_files(tmp_path):
    import numpy as np
    from rowstat.sim.golden import golden_layer
    layer = {"N": 1, "C": 2, "H": 5, "W": 6, "M": 3, "R": 3, "S": 2, "stride": 1,
             "padding": 1, "relu": True, "shift": 2}
    (tmp_path / "layer.json").write_text(json.dumps(layer))
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (1, 2, 5, 6)).astype(np.int16)
    w = rng.integers(-128, 128, (3, 2, 3, 2)).astype(np.int8)
    b = rng.integers(-1000, 1000, (3,))
    for name, value in (("x", x), ("w", w), ("b", b)):
        np.save(tmp_path / f"{name}.npy", value)
    base = ["run", "--preset", "tiny", "--layer", str(tmp_path / "layer.json"),
            "--ifmap", str(tmp_path / "x.npy"), "--weights", str(tmp_path / "w.npy"),
            "--bias", str(tmp_path / "b.npy")]
    result = rowstat(*base, "--out", str(tmp_path / "y.npy"), "--stats", str(tmp_path / "s.json"))
    assert result.returncode == 0, result.stderr
    from rowstat.gen.config import PRESETS
    from rowstat.gen.layer import LayerSpec
    expected = golden_layer(PRESETS["tiny"], LayerSpec(**layer), x, w, b)
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.int64 and np.array_equal(y, expected)
    stats = json.loads((tmp_path / "s.json").read_text())
    for key in ("cycles", "macs", "macs_skipped_zero", "pe_utilization", "passes", "mapping",
                "dram_read_words", "dram_write_words", "glb_reads", "glb_writes"):
        assert key in stats
    # Bad arrays: one line, exit 2, nothing written.
    np.save(tmp_path / "bad.npy", x[:, :1])
    bad = rowstat(*base[:5], "--ifmap", str(tmp_path / "bad.npy"), *base[7:],
                  "--out", str(tmp_path / "z.npy"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "ifmap" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "z.npy").exists()
    missing = rowstat(*base[:5], "--ifmap", str(tmp_path / "nope.npy"), *base[7:],
                      "--out", str(tmp_path / "z.npy"))
    assert missing.returncode == 2 and "nope.npy" in missing.stderr
