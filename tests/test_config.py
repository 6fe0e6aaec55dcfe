"""ArchConfig, its presets and how a configuration is loaded (preset, TOML file, --set)."""

import dataclasses

import pytest

from rowstat.gen.config import PRESETS, ArchConfig, bits_for, load_arch, parse_overrides
from rowstat.gen.errors import ConfigError, RowstatError

FIELDS = [f.name for f in dataclasses.fields(ArchConfig)]


def tiny(**changes):
    return PRESETS["tiny"].to_dict() | changes


def assert_one_line(exc, *parts):
    """A ConfigError message is one line and names every part (key, value, what is allowed)."""
    text = str(exc)
    assert "\n" not in text, text
    for part in parts:
        assert str(part) in text, (part, text)


# --- presets -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_validates_and_round_trips(name):
    arch = PRESETS[name]
    assert isinstance(arch, ArchConfig)
    assert ArchConfig(**arch.to_dict()) == arch
    assert set(arch.to_dict()) == set(FIELDS)
    assert arch.psum_width >= arch.product_width


def test_eyeriss_preset_matches_the_chip():
    arch = PRESETS["eyeriss"]
    assert (arch.rows, arch.cols, arch.pes) == (12, 14, 168)
    assert (arch.act_width, arch.weight_width) == (16, 16)
    assert (arch.filter_spad_depth, arch.ifmap_spad_depth, arch.psum_spad_depth) == (224, 12, 24)
    # The chip's 25 + 2 banks of 512 x 64 bits hold 16-bit psums, 4 per word and per psum
    # beat; ours are 32 bits, so the same bytes in 128-bit words keep 4 psums per word/beat.
    assert (arch.glb_banks, arch.glb_bank_depth, arch.glb_width) == (25, 256, 128)
    assert arch.glb_bytes == 108 * 1024
    assert (arch.filter_bus_width, arch.ifmap_bus_width, arch.psum_bus_width) == (64, 16, 128)
    assert arch.glb_width // arch.psum_width == arch.psum_bus_width // arch.psum_width == 4
    assert arch.filter_bus_width // arch.weight_width == 4


def test_tiny_preset_is_small():
    arch = PRESETS["tiny"]
    assert arch.pes == 12
    assert arch.act_width == arch.weight_width == 8


def test_derived_widths():
    arch = PRESETS["eyeriss"]
    assert arch.product_width == 32
    assert arch.row_id_width == 4        # 12 rows -> IDs 0..11
    assert arch.col_id_width == 4        # 14 cols -> IDs 0..13
    assert arch.filter_addr_width == 8   # 224 words
    assert arch.ifmap_addr_width == 4    # 12 words
    assert arch.psum_addr_width == 5     # 24 words
    assert arch.glb_addr_width == 8      # 256 words
    assert arch.ifmap_col_id_width >= arch.col_id_width
    # Widths never drop to zero, even for a 1 x 1 array with 1-word spads.
    one = ArchConfig(**tiny(rows=1, cols=1, filter_spad_depth=1, ifmap_spad_depth=1,
                            psum_spad_depth=1))
    assert one.row_id_width == one.col_id_width == one.ifmap_col_id_width == 1
    assert one.filter_addr_width == one.ifmap_addr_width == one.psum_addr_width == 1


@pytest.mark.parametrize("depth, width", [(2, 1), (4, 2), (8, 3), (256, 8), (512, 9)])
def test_addr_width_covers_depth(depth, width):
    arch = ArchConfig(**tiny(glb_bank_depth=depth))
    assert arch.glb_addr_width == width
    assert 2 ** arch.glb_addr_width >= depth


@pytest.mark.parametrize("depth", [3, 5, 257, 1000])
def test_glb_bank_depth_power_of_two(depth):
    with pytest.raises(ConfigError) as info:
        ArchConfig(**tiny(glb_bank_depth=depth))
    assert_one_line(info.value, "glb_bank_depth", repr(depth), "power of two")


@pytest.mark.parametrize("key, value", [("filter_bus_width", 64), ("psum_bus_width", 72)])
def test_bus_beat_fits_a_glb_word(key, value):
    with pytest.raises(ConfigError) as info:
        ArchConfig(**tiny(**{key: value}))
    assert_one_line(info.value, key, repr(value), "glb_width")


def test_dram_beat_holds_a_glb_word():
    with pytest.raises(ConfigError) as info:
        ArchConfig(**tiny(dram_width=40))
    assert_one_line(info.value, "dram_width", "40", "glb_width")


def test_frozen_replace_and_key():
    arch = PRESETS["tiny"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.rows = 5
    bigger = arch.replace(rows=5)
    assert bigger.rows == 5 and arch.rows == 3
    with pytest.raises(ConfigError):
        arch.replace(rows=0)
    assert arch.key() == ArchConfig(**arch.to_dict()).key()
    assert arch.key() != bigger.key()
    assert len(arch.key()) == 16
    assert hash(arch) == hash(ArchConfig(**arch.to_dict()))


# --- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("key, value", [
    ("rows", 0), ("rows", 33), ("rows", -1), ("cols", 0),
    ("act_width", 1), ("act_width", 17), ("weight_width", 1),
    ("psum_width", 49), ("filter_spad_depth", 0), ("ifmap_spad_depth", 257),
    ("psum_spad_depth", 0), ("glb_banks", 0), ("glb_bank_depth", 1),
    ("glb_filter_banks", 0), ("dram_width", 0),
])
def test_out_of_range_is_rejected(key, value):
    with pytest.raises(ConfigError) as info:
        ArchConfig(**tiny(**{key: value}))
    exc = info.value
    assert (exc.key, exc.value) == (key, value)
    lo, hi = ArchConfig._LIMITS[key]
    assert_one_line(exc, key, repr(value), f"from {lo} to {hi}")


@pytest.mark.parametrize("value", [True, False, 4.0, "4", None, [4]])
def test_non_integers_are_rejected(value):
    with pytest.raises(ConfigError) as info:
        ArchConfig(**tiny(rows=value))
    assert info.value.key == "rows"
    assert_one_line(info.value, "rows", repr(value), "an integer")


def test_config_error_is_a_value_error_and_a_rowstat_error():
    with pytest.raises(ValueError):
        ArchConfig(**tiny(rows=0))
    with pytest.raises(RowstatError):
        ArchConfig(**tiny(rows=0))


def test_boundaries_are_accepted():
    ArchConfig(**tiny(rows=1, cols=32))
    ArchConfig(**tiny(rows=32, cols=1))
    ArchConfig(**tiny(psum_width=16, psum_bus_width=16))  # exactly act+weight


def test_psum_narrower_than_product_is_rejected():
    with pytest.raises(ConfigError) as info:
        ArchConfig(**tiny(psum_width=15, psum_bus_width=15))
    assert info.value.key == "psum_width"
    assert_one_line(info.value, "psum_width", "15", "act_width + weight_width = 16")


def test_psum_check_follows_the_data_widths():
    # 12 + 10 = 22 > 20.
    with pytest.raises(ConfigError) as info:
        ArchConfig(**tiny(act_width=12, weight_width=10, psum_width=20, psum_bus_width=40,
                          filter_bus_width=30, ifmap_bus_width=24))
    assert info.value.key == "psum_width"
    assert "22" in str(info.value)


@pytest.mark.parametrize("value", [36, 33, 20, 16])
def test_dram_width_must_be_a_multiple_of_8_holding_a_psum(value):
    # tiny's psum is 24 bits: 36 and 33 are not multiples of 8, 20 and 16 are too narrow.
    with pytest.raises(ConfigError) as info:
        ArchConfig(**tiny(dram_width=value))
    assert info.value.key == "dram_width"
    assert_one_line(info.value, "dram_width", repr(value), "multiple of 8", "24")


def test_dram_width_must_hold_an_output_header():
    # An output block's header beat counts its beats from bit 12: 24 bits hold a psum of the
    # 4-bit preset but leave a 12-bit count.
    narrow = PRESETS["ice40"].to_dict() | {"dram_width": 24}
    with pytest.raises(ConfigError) as info:
        ArchConfig(**narrow)
    assert info.value.key == "dram_width"
    assert_one_line(info.value, "dram_width", "24", "at least 32", "header")
    assert ArchConfig(**(narrow | {"dram_width": 32})).dram_width == 32


@pytest.mark.parametrize("value", [12, 36])
def test_glb_width_must_be_a_multiple_of_8(value):
    with pytest.raises(ConfigError) as info:
        ArchConfig(**tiny(glb_width=value))
    assert info.value.key == "glb_width"
    assert_one_line(info.value, "glb_width", repr(value), "multiple of 8")


@pytest.mark.parametrize("key, value", [
    ("filter_bus_width", 4), ("filter_bus_width", 7), ("ifmap_bus_width", 2),
    ("psum_bus_width", 23), ("psum_bus_width", 12),
])
def test_bus_width_holds_a_word(key, value):
    with pytest.raises(ConfigError) as info:
        ArchConfig(**tiny(**{key: value}))
    assert info.value.key == key
    assert_one_line(info.value, key, repr(value), "at least one")


def test_bus_width_need_not_be_whole_words():
    # 7-bit weights on a 32-bit bus: four words per beat, four bits unused.
    ArchConfig(**tiny(weight_width=7, filter_bus_width=32))


def test_missing_and_extra_constructor_arguments():
    with pytest.raises(TypeError):
        ArchConfig(**{k: v for k, v in tiny().items() if k != "rows"})
    with pytest.raises(TypeError):
        ArchConfig(**tiny(bogus=1))


# --- parse_overrides -----------------------------------------------------------------------

def test_parse_overrides_values():
    assert parse_overrides(["rows=4", " cols = 5 ", "glb_bank_depth=0x100", "act_width=0b1000",
                            "psum_width=08", "dram_width=1_024"]) == {
        "rows": 4, "cols": 5, "glb_bank_depth": 256, "act_width": 8, "psum_width": 8,
        "dram_width": 1024}
    assert parse_overrides([]) == {}
    assert parse_overrides(None) == {}
    assert parse_overrides(("rows=1", "rows=2")) == {"rows": 2}  # the last one wins
    assert parse_overrides("rows=4") == {"rows": 4}               # one string, one item
    assert parse_overrides(["rows=-3"]) == {"rows": -3}          # range is ArchConfig's job


@pytest.mark.parametrize("text", ["banana", "", "4.0", "1e3", "0xZZ", "true"])
def test_parse_overrides_bad_value(text):
    with pytest.raises(ConfigError) as info:
        parse_overrides([f"act_width={text}"])
    assert (info.value.key, info.value.value) == ("act_width", text)
    assert_one_line(info.value, "act_width", repr(text), "an integer from 2 to 16")


def test_parse_overrides_unknown_key():
    with pytest.raises(ConfigError) as info:
        parse_overrides(["rowz=4"])
    exc = info.value
    assert exc.key == "rowz"
    assert_one_line(exc, "unknown key", "rowz", "'4'", "rows", "cols", "psum_width")


@pytest.mark.parametrize("item", ["rows", "rows4", ""])
def test_parse_overrides_needs_key_equals_value(item):
    with pytest.raises(ConfigError) as info:
        parse_overrides([item])
    assert info.value.key == "--set"
    assert_one_line(info.value, "--set", repr(item), "key=value")


# --- load_arch -----------------------------------------------------------------------------

def test_load_arch_defaults_to_eyeriss():
    assert load_arch() == PRESETS["eyeriss"]
    assert load_arch("tiny") == PRESETS["tiny"]


def test_load_arch_unknown_preset():
    with pytest.raises(ConfigError) as info:
        load_arch("huge")
    assert_one_line(info.value, "preset", "'huge'", "eyeriss", "tiny")


def write(tmp_path, text, name="arch.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_arch_order_preset_then_file_then_overrides(tmp_path):
    path = write(tmp_path, "rows = 5\ncols = 6\n")
    arch = load_arch("tiny", path, ["cols=7"])
    assert (arch.rows, arch.cols) == (5, 7)       # file over preset, --set over file
    assert arch.act_width == PRESETS["tiny"].act_width  # the rest from the preset
    assert load_arch("tiny", str(path)).cols == 6       # str paths work too
    assert load_arch("tiny", overrides=["rows=2"]).rows == 2


def test_load_arch_file_and_override_combine_to_a_valid_config(tmp_path):
    # Neither the file nor the overrides alone would be valid on the tiny preset; validation
    # happens once, on the final result.
    path = write(tmp_path, "act_width = 16\nweight_width = 16\nifmap_bus_width = 16\n"
                           "filter_bus_width = 32\n")
    with pytest.raises(ConfigError) as info:
        load_arch("tiny", path)
    assert info.value.key == "psum_width"
    arch = load_arch("tiny", path, ["psum_width=32", "psum_bus_width=64", "glb_width=64",
                                    "dram_width=64"])
    assert arch.psum_width == 32 and arch.act_width == 16


def test_load_arch_file_unknown_key(tmp_path):
    path = write(tmp_path, "rows = 4\nbanks = 3\n")
    with pytest.raises(ConfigError) as info:
        load_arch("tiny", path)
    assert info.value.key == "banks"
    assert_one_line(info.value, "unknown key", "banks", "3", "glb_banks")


def test_load_arch_file_table_is_an_unknown_key(tmp_path):
    path = write(tmp_path, "[arch]\nrows = 4\n")
    with pytest.raises(ConfigError) as info:
        load_arch("tiny", path)
    assert info.value.key == "arch"


@pytest.mark.parametrize("text, key, value", [
    ('rows = "4"\n', "rows", "'4'"),
    ("rows = 4.0\n", "rows", "4.0"),
    ("rows = true\n", "rows", "True"),
    ("rows = 0\n", "rows", "0"),
    ("dram_width = 36\n", "dram_width", "36"),
])
def test_load_arch_file_bad_value(tmp_path, text, key, value):
    with pytest.raises(ConfigError) as info:
        load_arch("tiny", write(tmp_path, text))
    assert info.value.key == key
    assert_one_line(info.value, key, value, "allowed")


def test_load_arch_empty_file_is_the_preset(tmp_path):
    assert load_arch("tiny", write(tmp_path, "")) == PRESETS["tiny"]


def test_load_arch_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_arch("tiny", path)
    assert_one_line(info.value, "missing file", "--config", str(path), "an existing TOML file")


def test_load_arch_bad_toml(tmp_path):
    path = write(tmp_path, "rows = = 4\n")
    with pytest.raises(ConfigError) as info:
        load_arch("tiny", path)
    assert_one_line(info.value, "--config", str(path), "valid TOML")


def test_load_arch_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_arch("tiny", tmp_path)
    assert_one_line(info.value, "--config", str(tmp_path), "readable TOML file")


def test_load_arch_non_utf8_file(tmp_path):
    path = tmp_path / "arch.toml"
    path.write_bytes(b"rows = 4 # \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_arch("tiny", path)
    assert_one_line(info.value, "--config", "UTF-8")




def test_load_arch_bad_override_after_good_file(tmp_path):
    path = write(tmp_path, "rows = 4\n")
    with pytest.raises(ConfigError) as info:
        load_arch("tiny", path, ["act_width=banana"])
    assert_one_line(info.value, "act_width", "'banana'", "an integer")
    with pytest.raises(ConfigError) as info:
        load_arch("tiny", path, ["nope=1"])
    assert info.value.key == "nope"


def test_filter_spad_must_hold_one_filter_row():
    with pytest.raises(ConfigError) as info:
        ArchConfig(**tiny(filter_spad_depth=7, ifmap_spad_depth=8))
    assert_one_line(info.value, "filter_spad_depth", "7", "one filter row")
    ArchConfig(**tiny(filter_spad_depth=8, ifmap_spad_depth=8))


def test_derived_stream_geometry_and_pe_widths_by_hand():
    eyeriss, tiny, ice40 = PRESETS["eyeriss"], PRESETS["tiny"], PRESETS["ice40"]
    # (words per beat, word bits, beats per GLB word): eyeriss filter 64 / 16 bits and
    # 128 / 64; ifmap 16 / 16 and 128 / 16; psum 128 / 32 and 128 / 128.
    assert eyeriss.stream_geometry == {"filter": (4, 16, 2), "ifmap": (1, 16, 8),
                                       "psum": (4, 32, 1)}
    # tiny: filter 32 / 8, 48 / 32; ifmap 16 / 8, 48 / 16; psum 48 / 24, 48 / 48.
    assert tiny.stream_geometry == {"filter": (4, 8, 1), "ifmap": (2, 8, 3), "psum": (2, 24, 1)}
    assert (eyeriss.psums_per_beat, tiny.psums_per_beat) == (4, 2)
    assert (eyeriss.out_words_per_beat(True), eyeriss.out_words_per_beat(False)) == (8, 4)
    # A PE's stream: 24 banks x 256 words x 8 activations = 49152 (16 bits): F takes its
    # 12-bit cap, n_rows its 16. ice40: 1 x 256 x 4 = 1024 (11 bits) caps both.
    assert (eyeriss.pe_stream_limit, eyeriss.pe_f_width, eyeriss.pe_rows_width) == (49152, 12, 16)
    assert (ice40.pe_stream_limit, ice40.pe_f_width, ice40.pe_rows_width) == (1024, 11, 11)
    assert (bits_for(0), bits_for(1), bits_for(255), bits_for(256)) == (1, 1, 8, 9)
