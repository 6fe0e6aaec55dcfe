"""Architecture parameters of a generated accelerator, their presets and how they are loaded."""

import dataclasses
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from .errors import ConfigError

__all__ = ["ArchConfig", "PRESETS", "load_arch", "parse_overrides", "parse_int", "bits_for"]


#: Narrowest external beat: an output header (rowstat.gen.program.header_beat) must count the
#: beats of the longest block (20 bits, the command fields' counts).
_HEADER_MIN_WIDTH = 32


def bits_for(n):
    """Bits needed to hold the unsigned values 0..n."""
    return max(1, int(n).bit_length())


@dataclass(frozen=True)
class ArchConfig:
    """Parameters of one accelerator. Frozen and validated on construction.

    Widths that follow from these (IDs, addresses, counters) are properties, not parameters.
    """

    #: PE array shape.
    rows: int
    cols: int
    #: Signed data widths, in bits.
    act_width: int
    weight_width: int
    psum_width: int
    #: Spad depths, in words (per PE).
    filter_spad_depth: int
    ifmap_spad_depth: int
    psum_spad_depth: int
    #: Global buffer for ifmaps and psums: banks x depth words of glb_width bits, each bank
    #: given wholly to ifmaps or to psums per layer.
    glb_banks: int
    glb_bank_depth: int
    glb_width: int
    #: Filter part of the global buffer (prefetches the next pass's filters), same bank shape.
    glb_filter_banks: int
    #: Bits per beat of the external data streams.
    dram_width: int
    #: Global input network bus widths per data type, in bits (several words per beat where
    #: the width allows).
    filter_bus_width: int
    ifmap_bus_width: int
    psum_bus_width: int
    #: Width of each performance counter (they wrap); the counter dump and its decoding
    #: follow from it.
    counter_width: int = 48
    #: 1: the PE's psum spad and psum FIFOs are block RAMs (read a cycle ahead), for an iCE40,
    #: which has no LUT RAM and would spend a logic cell per bit on them; 0: they are read
    #: combinationally and the tool picks their cells (LUT RAM on an ECP5, where a block RAM
    #: would be mostly empty).
    psum_block_ram: int = 0

    _LIMITS = {
        "rows": (1, 32), "cols": (1, 32),
        "act_width": (2, 16), "weight_width": (2, 16), "psum_width": (4, 48),
        "filter_spad_depth": (1, 4096), "ifmap_spad_depth": (1, 256),
        "psum_spad_depth": (1, 256),
        "glb_banks": (1, 256), "glb_bank_depth": (2, 65536), "glb_width": (8, 1024),
        "glb_filter_banks": (1, 64), "dram_width": (8, 1024),
        "filter_bus_width": (2, 1024), "ifmap_bus_width": (2, 1024),
        "psum_bus_width": (4, 1024),
        "counter_width": (16, 64),
        "psum_block_ram": (0, 1),
    }

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            lo, hi = self._LIMITS[f.name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f.name, value, f"an integer from {lo} to {hi}")
            if not lo <= value <= hi:
                raise ConfigError(f.name, value, f"an integer from {lo} to {hi}")
        if self.psum_width < self.product_width:
            raise ConfigError(
                "psum_width", self.psum_width,
                f"at least act_width + weight_width = {self.product_width}, "
                f"so a product fits in a psum")
        for name, word in (("glb_width", max(self.act_width, self.weight_width)),
                           ("dram_width", self.psum_width)):
            value = getattr(self, name)
            if value % 8 or value < word:
                raise ConfigError(name, value,
                                  f"a multiple of 8 of at least {word} bits (one word)")
        for name, word in (("filter_bus_width", self.weight_width),
                           ("ifmap_bus_width", self.act_width),
                           ("psum_bus_width", self.psum_width)):
            value = getattr(self, name)
            if value < word:
                raise ConfigError(name, value, f"at least one {word}-bit word")
            beat = value // word * word
            if beat > self.glb_width:
                raise ConfigError(name, value, f"a beat of at most glb_width={self.glb_width} "
                                  f"bits ({value // word} words of {word} bits take {beat})")
        if self.filter_spad_depth < self.ifmap_spad_depth:
            raise ConfigError(
                "filter_spad_depth", self.filter_spad_depth,
                f"at least ifmap_spad_depth={self.ifmap_spad_depth}, so the filter spad holds "
                f"one filter row as wide as the ifmap window")
        if self.glb_bank_depth & (self.glb_bank_depth - 1):
            raise ConfigError("glb_bank_depth", self.glb_bank_depth, "a power of two")
        if self.dram_width < _HEADER_MIN_WIDTH:
            raise ConfigError("dram_width", self.dram_width,
                              f"at least {_HEADER_MIN_WIDTH}: an output block's header beat "
                              f"holds 8 bits of magic, a 4-bit kind and a 20-bit beat count")
        if self.dram_width < self.glb_width:
            raise ConfigError("dram_width", self.dram_width,
                              f"at least glb_width={self.glb_width} (one GLB word per beat)")

    # --- derived widths -------------------------------------------------------------------
    @property
    def product_width(self):
        return self.act_width + self.weight_width

    @property
    def pes(self):
        return self.rows * self.cols

    @property
    def row_id_width(self):
        """Bits of a multicast row tag/ID (one X-bus per PE row; copies of a set need distinct IDs)."""
        return bits_for(self.rows - 1)

    @property
    def col_id_width(self):
        """Bits of a filter/psum col tag/ID."""
        return bits_for(self.cols - 1)

    @property
    def ifmap_col_id_width(self):
        """Bits of an ifmap col tag/ID: ifmap rows in view of one set go up to rows + cols - 1
        at stride 1 and further at larger strides, hence wider than the filter one."""
        return bits_for(4 * (self.cols - 1) + self.rows - 1)

    @property
    def filter_addr_width(self):
        return bits_for(self.filter_spad_depth - 1)

    @property
    def ifmap_addr_width(self):
        return bits_for(self.ifmap_spad_depth - 1)

    @property
    def psum_addr_width(self):
        return bits_for(self.psum_spad_depth - 1)

    @property
    def glb_addr_width(self):
        return bits_for(self.glb_bank_depth - 1)

    @property
    def tag_depth(self):
        """Entries of each streamer's tag table (destinations of one pass's stream)."""
        return 1 << bits_for(4 * self.rows * self.cols - 1)

    @property
    def bias_depth(self):
        """Entries of the bias table: the filters of one m block, at most 1024, and no more
        than the psum space holds psums (an m block keeps at least one psum per filter there;
        the psum space is at most ``glb_banks - 1`` banks, as the ifmaps take one or more):
        256 on the ``ice40`` preset, one block RAM rather than three."""
        return min(1024, max(1, self.glb_banks - 1) * self.glb_bank_depth
                   * self.psums_per_beat)

    @property
    def pe_stream_limit(self):
        """Most ifmap words a PE takes in one pass: its stream is one destination's share of a
        region of the GLB's ifmap space, so n_rows, F and a row's words are at most this. The
        ifmap space is at most ``glb_banks - 1`` banks, as the psums take one bank or more."""
        return (max(1, self.glb_banks - 1) * self.glb_bank_depth
                * (self.glb_width // self.act_width))

    @property
    def pe_f_width(self):
        """Width of the ofmap row width F in the PE configuration: up to 4095, or the stream
        limit if smaller."""
        return min(12, bits_for(self.pe_stream_limit))

    @property
    def pe_rows_width(self):
        """Width of n_rows, the 1-D convolutions (ifmap rows) of a pass: up to 65535, or the
        stream limit if smaller."""
        return min(16, bits_for(self.pe_stream_limit))

    @property
    def stream_geometry(self):
        """Beat geometry of the three GINs: {"filter"|"ifmap"|"psum": (words per beat, word
        bits, beats per GLB word)}."""
        out = {}
        for name, bus, word in (("filter", self.filter_bus_width, self.weight_width),
                                ("ifmap", self.ifmap_bus_width, self.act_width),
                                ("psum", self.psum_bus_width, self.psum_width)):
            wpb = bus // word
            out[name] = (wpb, word, self.glb_width // (wpb * word))
        return out

    @property
    def psums_per_beat(self):
        """Psums per psum GIN/GON beat and per psum-space GLB access."""
        return self.psum_bus_width // self.psum_width

    def out_words_per_beat(self, requantize):
        """Output values per data-out beat: activations when the layer requantizes, else
        psums."""
        return self.dram_width // (self.act_width if requantize else self.psum_width)

    @property
    def glb_bytes(self):
        return (self.glb_banks + self.glb_filter_banks) * self.glb_bank_depth * self.glb_width // 8

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def key(self):
        """A short stable hash of the parameters, for build caches."""
        import hashlib
        import json
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


PRESETS = {
    # The Eyeriss v1 chip (JSSC 2017): 12 x 14 PEs, 16-bit data, 108 KiB GLB: 25 banks for
    # ifmaps and psums (100 KiB) + 2 for filters (8 KiB). The chip's banks are 512 x 64 bits
    # and its psums 16 bits, so a GLB access and a psum GIN/GON beat move 4 psums. Our psums
    # are 32 bits (exact sums), so the banks are 256 x 128 bits (the same bytes) and the psum
    # path 128 bits: 4 psums per access and per beat, as on the chip. Filters stay 4 per beat.
    "eyeriss": ArchConfig(
        rows=12, cols=14, act_width=16, weight_width=16, psum_width=32,
        filter_spad_depth=224, ifmap_spad_depth=12, psum_spad_depth=24,
        glb_banks=25, glb_bank_depth=256, glb_width=128, glb_filter_banks=2,
        dram_width=128, filter_bus_width=64, ifmap_bus_width=16, psum_bus_width=128),
    # The chip with wider GINs, to beat it: the ifmap GIN carries 4 activations per beat (the
    # chip's 16-bit GIN paces CONV1's passes) and the filter GIN 8 weights (the filter fill
    # at the start of each pass is half as long). Everything else is the eyeriss preset.
    "eyeriss_wide": ArchConfig(
        rows=12, cols=14, act_width=16, weight_width=16, psum_width=32,
        filter_spad_depth=224, ifmap_spad_depth=12, psum_spad_depth=24,
        glb_banks=25, glb_bank_depth=256, glb_width=128, glb_filter_banks=2,
        dram_width=128, filter_bus_width=128, ifmap_bus_width=64, psum_bus_width=128),
    # Small enough for fast tests: 3 x 4 PEs, 8-bit data.
    "tiny": ArchConfig(
        rows=3, cols=4, act_width=8, weight_width=8, psum_width=24,
        filter_spad_depth=32, ifmap_spad_depth=8, psum_spad_depth=8,
        glb_banks=4, glb_bank_depth=256, glb_width=48, glb_filter_banks=1,
        dram_width=48, filter_bus_width=32, ifmap_bus_width=16, psum_bus_width=48),
    # The iCEBreaker's iCE40UP5K (5280 logic cells, 30 x 4 Kib EBR, 8 DSP): 3 x 1 PEs (R <= 3)
    # with 4-bit data and a 1.5 KiB GLB. Measured (README "Boards"): 4,925 logic cells (93%),
    # all 30 block RAMs and 8 DSPs; Fmax about 25 MHz. Beats are 32 bits (an output header
    # needs them) and carry one 16-bit GLB word in: 128 x 32-bit banks would take two 256 x 16
    # block RAMs each. GIN beats of 2 weights and 1 activation keep the PE sites' FIFOs and
    # buses narrow. 32-bit counters wrap after about 6 minutes at 12 MHz.
    "ice40": ArchConfig(
        rows=3, cols=1, act_width=4, weight_width=4, psum_width=12,
        filter_spad_depth=16, ifmap_spad_depth=4, psum_spad_depth=4,
        glb_banks=2, glb_bank_depth=256, glb_width=16, glb_filter_banks=1,
        dram_width=32, filter_bus_width=8, ifmap_bus_width=4, psum_bus_width=12,
        counter_width=32, psum_block_ram=1),
    # The ECP5-85F (84k LUT4, 208 DP16KD, 156 MULT18X18D) of the ULX3S and OrangeCrab: Eyeriss
    # widths and spads, the chip's 64-bit GLB banks and psum path, on the largest array the
    # open flow routes (README "Boards"): 3 x 4 PEs with an 8-bank (32 KiB) GLB route at about
    # 47 MHz; 4 x 4 and 5 x 5, and any array with the 25-bank GLB, did not finish routing.
    # 6 x 6 places at 60% of the LUTs but did not route either, and 8 x 8 needs 95% of them
    # (docs/results/boards/).
    "ecp5": ArchConfig(
        rows=3, cols=4, act_width=16, weight_width=16, psum_width=32,
        filter_spad_depth=224, ifmap_spad_depth=12, psum_spad_depth=24,
        glb_banks=8, glb_bank_depth=512, glb_width=64, glb_filter_banks=2,
        dram_width=64, filter_bus_width=64, ifmap_bus_width=16, psum_bus_width=64),
}

PRESET_NOTES = {
    "eyeriss": "Eyeriss v1: 12x14 PEs, 16-bit, 108 KiB GLB (100 KiB ifmap/psum + 8 KiB filter)",
    "eyeriss_wide": "eyeriss with 64-bit ifmap and 128-bit filter GINs (4 and 8 words a beat)",
    "tiny": "3x4 PEs, 8-bit: for fast tests",
    "ice40": ("3x1 PEs, 4-bit, 1.5 KiB GLB: fits the iCEBreaker's iCE40UP5K "
              "(about 4,900 of 5,280 logic cells)"),
    "ecp5": ("3x4 PEs, 16-bit, Eyeriss spads, 40 KiB GLB: routes on the ECP5-85F "
             "(ULX3S, OrangeCrab)"),
}


def parse_int(text):
    """An integer from ``text``: decimal (leading zeros allowed, so ``08`` is 8) or with a
    ``0x``/``0o``/``0b`` prefix; None if it is neither."""
    for base in (10, 0):
        try:
            return int(text, base)
        except ValueError:
            continue
    return None


def _coerce(key, text):
    value = parse_int(text)
    if value is None:
        lo, hi = ArchConfig._LIMITS[key]
        raise ConfigError(key, text, f"an integer from {lo} to {hi}")
    return value


def parse_overrides(items):
    """Turn ``["rows=4", "cols=5"]`` into a dict of integers, validating the keys.

    A single string is taken as one item (not iterated character by character).
    """
    names = {f.name for f in fields(ArchConfig)}
    if isinstance(items, str):
        items = [items]
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError("--set", item, "key=value")
        if key not in names:
            raise ConfigError(key, value, f"a known key ({', '.join(sorted(names))})",
                              what="unknown key")
        out[key] = _coerce(key, value.strip())
    return out


def load_arch(preset=None, config=None, overrides=()):
    """Build an ArchConfig: a preset (default ``eyeriss``), then a TOML file's keys, then
    ``key=value`` overrides, each applied over the last."""
    if preset is None:
        preset = "eyeriss"
    if preset not in PRESETS:
        raise ConfigError("preset", preset, f"one of {', '.join(PRESETS)}")
    values = PRESETS[preset].to_dict()
    names = set(values)
    if config is not None:
        path = Path(config)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError("--config", str(path), "an existing TOML file",
                              what="missing file") from None
        except OSError as exc:  # a directory, no permission, ...
            raise ConfigError("--config", str(path),
                              f"a readable TOML file ({exc.strerror or exc})",
                              what="unreadable file") from None
        except UnicodeDecodeError:
            raise ConfigError("--config", str(path), "a UTF-8 TOML file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", str(path), f"valid TOML ({exc})") from None
        for key, value in data.items():
            if key not in names:
                raise ConfigError(key, value, f"a known key ({', '.join(sorted(names))})",
                                  what="unknown key")
            values[key] = value
    values.update(parse_overrides(overrides))
    return ArchConfig(**values)
