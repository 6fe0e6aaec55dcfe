"""The generated PE Verilog in cocotb: seeded random passes against the golden model."""

import shutil

import pytest

from rowstat.gen.config import PRESETS, load_arch
from rowstat.gen.errors import RowstatError
from rowstat.sim.runner import check_pe

SIMS = ["verilator"] + (["icarus"] if shutil.which("iverilog") else [])


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("preset,seed", [("eyeriss", 1), ("tiny", 2)])
def test_pe_cocotb_random(preset, seed, sim):
    cases = 60 if sim == "verilator" else 10
    report = check_pe(PRESETS[preset], cases=cases, seed=seed, idle=0.25, stall=0.25, sim=sim,
                      progress=False)
    assert report["cases"] == cases and not report["failures"]
    assert report["psums_checked"] > 0 and report["macs_skipped"] > 0


def test_pe_cocotb_odd_widths_wrap():
    """5-bit activations, 7-bit weights, 12-bit psums: sums wrap, odd widths pack."""
    arch = load_arch("tiny", overrides=["act_width=5", "weight_width=7", "psum_width=12",
                                        "ifmap_spad_depth=5", "psum_spad_depth=3",
                                        "filter_spad_depth=17"])
    report = check_pe(arch, cases=40, seed=3, idle=0.1, stall=0.5, progress=False)
    assert not report["failures"]


#: Cycles of a PE pass beyond its p*q*S*F*rows MAC slots, with inputs always valid and the
#: output always ready: start and setup (2), pipeline (2), done FIFO (1), output FIFO (1): the
#: two FIFOs are unbuffered (a word written is readable the next cycle) where the psums are in
#: LUT RAM, as in the eyeriss preset. The last column's psums leave as they are finished, one
#: per cycle, so p adds nothing.
PE_PASS_OVERHEAD = 6


def test_pe_cocotb_full_rate():
    """Without stalls the MAC issues every cycle: a pass takes exactly its MAC slots plus a
    fixed overhead, whatever the shape or stride."""
    report = check_pe(PRESETS["eyeriss"], cases=20, seed=4, idle=0.0, stall=0.0, max_F=30,
                      progress=False)
    for shape in report["shapes"]:
        slots = shape["p"] * shape["q"] * shape["S"] * shape["F"] * shape["rows"]
        assert shape["cycles"] == slots + PE_PASS_OVERHEAD, shape


def test_pe_cocotb_detects_a_wrong_answer():
    with pytest.raises(RowstatError, match="differ from the golden"):
        check_pe(PRESETS["tiny"], cases=2, seed=5, corrupt=True, progress=False)


def test_pe_cocotb_writes_waves(tmp_path):
    report = check_pe(PRESETS["tiny"], cases=1, seed=6, waves=tmp_path / "pe.vcd",
                      progress=False)
    waves = tmp_path / "pe.vcd"
    assert report["waves"] == str(waves) and waves.stat().st_size > 1000
    assert "psum_out__payload" in waves.read_text(errors="replace")
