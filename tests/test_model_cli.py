"""``rowstat model`` and ``rowstat report``: outputs, files and one-line errors."""

import json
import subprocess
import sys

import pytest

from rowstat.cli import main
from rowstat.gen.config import PRESETS
from rowstat.gen.layer import LayerSpec
from rowstat.sim.model import model_layer

LAYER = {"N": 1, "C": 5, "H": 9, "W": 9, "M": 6, "R": 3, "S": 3, "padding": 1, "shift": 4}


@pytest.fixture
def layer_file(tmp_path):
    path = tmp_path / "conv.json"
    path.write_text(json.dumps(LAYER))
    return path


def test_model_layer_json(layer_file, capsys):
    assert main(["model", "--preset", "tiny", "--layer", str(layer_file), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    want = model_layer(PRESETS["tiny"], LayerSpec(**LAYER))
    assert out["cycles"] == want.cycles
    assert out["pe_utilization"] == pytest.approx(want.pe_utilization)
    assert out["accesses"] == want.accesses
    assert out["energy"] == pytest.approx(want.energy)
    assert out["mapping"]["p"] == want.mapping.p and out["arch"]["rows"] == 3
    assert out["name"] == "conv" and out["costs"]["dram"] == 200


def test_model_network_json_and_batch(capsys, tmp_path):
    costs = tmp_path / "costs.toml"
    costs.write_text("dram = 0\n")
    assert main(["model", "--network", "alexnet", "--batch", "2", "--json",
                 "--costs", str(costs)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [layer["name"] for layer in out["layers"]] == [f"CONV{i}" for i in range(1, 6)]
    assert out["batch"] == 2 and all(layer["layer"]["N"] == 2 for layer in out["layers"])
    assert out["cycles"] == sum(layer["cycles"] for layer in out["layers"])
    assert out["accesses"]["dram_read_words"] == sum(
        layer["accesses"]["dram_read_words"] for layer in out["layers"])
    assert out["energy"]["dram"] == 0 and out["energy"]["total"] > 0
    assert out["costs"]["dram"] == 0


def test_model_table(capsys, layer_file):
    assert main(["model", "--network", "vgg16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("vgg16 on 12 x 14 PEs, batch 1")
    assert sum(line.startswith("CONV") for line in lines) == 13
    assert any(line.startswith("total") for line in lines)
    assert main(["model", "--preset", "tiny", "--layer", str(layer_file), "--batch", "3"]) == 0
    out = capsys.readouterr().out
    assert "batch 3" in out and "conv" in out and "total" not in out


def test_report_writes_files(tmp_path):
    out = tmp_path / "rep"
    assert main(["report", "--network", "mobilenet_pw", "-o", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"report.md", "report.json", "cycles.png", "energy.png", "occupancy.png"}
    for png in ("cycles.png", "energy.png", "occupancy.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert md.count("| PW") == 13 and "**total**" in md and "![occupancy.png]" in md
    result = json.loads((out / "report.json").read_text())
    assert len(result["layers"]) == 13 and result["cycles"] > 0


@pytest.mark.parametrize("args, message", [
    (["model", "--network", "resnet"], "bad value for --network: 'resnet'; allowed: alexnet"),
    (["model", "--network", "alexnet", "--batch", "0"], "bad value for --batch: 0"),
    (["model", "--network", "alexnet", "--io-bits-per-cycle", "-1"],
     "bad value for --io-bits-per-cycle: -1.0"),
    (["model", "--layer", "missing.json"], "missing file for --layer"),
    (["model", "--network", "alexnet", "--costs", "missing.toml"], "missing file for --costs"),
    (["model", "--network", "alexnet", "--set", "rows=0"], "bad value for rows: 0"),
    (["model", "--preset", "tiny", "--network", "alexnet"], "R=11 exceeds rows=3"),
])
def test_bad_input_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_bad_costs_and_report_target(tmp_path, capsys):
    costs = tmp_path / "c.json"
    costs.write_text('{"dram": -5}')
    assert main(["model", "--network", "alexnet", "--costs", str(costs)]) == 2
    assert "bad value for c.json: dram: -5; allowed: a finite number >= 0" in \
        capsys.readouterr().err
    target = tmp_path / "file"
    target.write_text("")
    assert main(["report", "--network", "alexnet", "-o", str(target)]) == 2
    assert "allowed: a folder" in capsys.readouterr().err


def test_no_traceback_in_a_fresh_process():
    res = subprocess.run([sys.executable, "-m", "rowstat.cli", "model", "--network", "x"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith("rowstat: error: bad value for --network")


def test_megabytes_beside_the_chip(capsys, layer_file):
    """The table gives DRAM and GLB MB per layer and, for AlexNet, the chip's in brackets:
    the chip's batch-4 figures scaled to the batch (batch 2: half of 5.0 MB for CONV1)."""
    assert main(["model", "--network", "alexnet", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("CONV")}
    assert "(2.5)" in rows["CONV1"] and "(9.2)" in rows["CONV1"]     # DRAM 5.0/2, GLB 18.5/2
    assert "(0.7)" in rows["CONV5"] and "(12.4)" in rows["CONV5"]    # 1.3/2 (0.65), 24.9/2
    assert main(["model", "--network", "alexnet", "--batch", "2", "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    conv1 = layers[0]
    mb = conv1["megabytes"]
    acc = conv1["accesses"]
    assert mb["dram"] == pytest.approx(
        (acc["dram_read_words"] + acc["dram_write_words"]) * 128 / 8 / 1e6)
    assert mb["chip_dram"] == pytest.approx(2.5) and mb["chip_glb"] == pytest.approx(9.25)
    # a layer that is not AlexNet's has no chip figures
    assert main(["model", "--preset", "tiny", "--layer", str(layer_file), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["megabytes"]) == {"dram", "glb"}
