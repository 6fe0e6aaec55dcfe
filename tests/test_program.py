"""The command set (rowstat.gen.program): encoding and decoding are inverses, and the header
and field widths are the documented ones."""

import random

import pytest
from amaranth.lib import data

from rowstat.gen.config import PRESETS
from rowstat.gen.program import (ARG_LAYOUTS, COUNT, TAGS, HEADER_LAYOUT, Op, Target, Wait,
                                 commands, decode_args, decode_header, disassemble,
                                 encode_command, nargs, pack, unpack)

TINY = PRESETS["tiny"]


def test_header_by_hand():
    # opcode[3:0] | wait[7:4] | nargs[15:8] (the module docstring)
    assert encode_command(TINY, Op.FENCE, wait=Wait.ALL) == [0x76]
    assert decode_header(0x76) == (6, 7, 0)
    assert decode_header(0x0312) == (2, 1, 3)
    assert HEADER_LAYOUT.size == 16
    # a LOAD: target 4 bits, addr COUNT bits, count COUNT + 4 bits = 48 bits, two words
    assert (COUNT, TAGS) == (20, 12)
    words = encode_command(TINY, Op.LOAD, {"target": Target.BIAS, "addr": 5, "count": 3})
    assert words == [0x0202, 2 | 5 << 4 | 3 << 24, 0]      # count starts at bit 24


def _random_value(rng, layout):
    out = {}
    for name, fld in layout:
        if isinstance(fld.shape, data.Layout):
            out[name] = _random_value(rng, fld.shape)
        else:
            out[name] = rng.randrange(1 << fld.width)
    return out


@pytest.mark.parametrize("preset", list(PRESETS))
def test_encode_decode_round_trip(preset):
    arch = PRESETS[preset]
    rng = random.Random(14)
    program, expected = [], []
    for _ in range(60):
        op = rng.choice(list(Op))
        wait = rng.randrange(8)
        args = _random_value(rng, ARG_LAYOUTS[op](arch)) if op in ARG_LAYOUTS else {}
        program += encode_command(arch, op, args, wait=wait)
        expected.append((op, wait, args))
    got = [(op, wait, decode_args(arch, op, words)) for _, op, wait, words in commands(program)]
    assert got == expected
    assert [len(words) for *_, words in commands(program)] == \
        [nargs(arch, op) for op, _, _ in expected]
    assert len(disassemble(arch, program)) == len(expected)


def test_pack_unpack_masks_to_the_field():
    layout = ARG_LAYOUTS[Op.LOAD](TINY)
    assert unpack(layout, pack(layout, {"target": 17, "addr": 1 << COUNT})) == \
        {"target": 1, "addr": 0, "count": 0}


def test_disassemble():
    words = (encode_command(TINY, Op.LOAD, {"target": Target.IDS, "addr": 0, "count": 9})
             + encode_command(TINY, Op.FENCE, wait=Wait.LOAD | Wait.PASS) + [0xF])
    assert disassemble(TINY, words) == ["0: LOAD target=IDS addr=0 count=9",
                                        "1: FENCE wait=LOAD|PASS ",
                                        "2: ??? opcode 15 (word 4)"]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_pe_config_layout_is_the_pes(preset):
    # rowstat.hw.pe still has its own copy of the layout and its widths (to go when the PE
    # imports them from the command set and the configuration): they must agree meanwhile.
    from rowstat.gen.program import pe_config_layout
    from rowstat.hw import pe
    arch = PRESETS[preset]
    assert pe.pe_config_layout(arch) == pe_config_layout(arch)
    assert (pe.pe_f_width(arch), pe.pe_rows_width(arch), pe.pe_stream_limit(arch)) == \
        (arch.pe_f_width, arch.pe_rows_width, arch.pe_stream_limit)
