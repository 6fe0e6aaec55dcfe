"""The accelerator's command set: opcodes, argument layouts, load targets and output framing.

One home for the format: the layouts, the field widths, the encoding and the decoding. The
controller (rowstat.hw.controller) decodes with these layouts, the compiler (rowstat.gen.compiler)
encodes with them, and the reference model (rowstat.sim.program_model), the host protocol
(rowstat.fpga.protocol) and the tests decode with :func:`commands` and :func:`decode_args`, so
none of them can drift. This module imports nothing from the hardware: the hardware imports it.

Command stream: 32-bit words. A command is a header word (:data:`HEADER_LAYOUT`) followed by its
argument words::

    header = opcode[3:0] | wait[7:4] | nargs[15:8]

``wait`` is a mask of units (WAIT_LOAD, WAIT_PASS, WAIT_DRAIN) that must be idle before the
command starts; without it, a command starts as soon as its own unit is free, so loads of the
next pass's data overlap the running pass. The arguments are the command's StructLayout value
packed little-endian into ``nargs`` words.

Data input stream: ``dram_width``-bit beats, one entry per beat, consumed by LOAD commands.
Data output stream: ``dram_width``-bit beats in blocks, each block a header beat
(``magic | kind << 8 | beats << 12``, the number of beats that follow) then its beats: drained
ofmap words (packed little-endian, ``act_width`` bits each when the layer requantizes, else
``psum_width``), or counter values (``arch.counter_width`` bits each, as many beats as needed:
:func:`counter_beats`).
"""

import enum
import functools

from amaranth.lib import data

from .config import bits_for

__all__ = [
    "COUNT", "TAGS", "PE_U_WIDTH", "HEADER_LAYOUT",
    "Op", "Target", "Wait", "BlockKind", "COUNTERS", "counter_beats", "HEADER_MAGIC",
    "header_beats_max",
    "pe_config_layout", "output_config_layout",
    "layer_layout", "load_layout", "pass_layout", "drain_layout", "counters_layout",
    "streamer_layout", "ARG_LAYOUTS", "nargs", "encode_command", "pack", "unpack",
    "decode_header", "commands", "decode_args", "disassemble", "header_beat", "parse_header",
]

COUNT = 20          # width of counts and GLB addresses in commands
TAGS = 12           # width of tag-table sizes and chain table entries
PE_U_WIDTH = 4      # width of the horizontal stride U in the PE configuration (up to 15)
HEADER_MAGIC = 0xA5

#: The header word of a command (bits 16 to 31 are zero).
HEADER_LAYOUT = data.StructLayout({"op": 4, "wait": 4, "nargs": 8})


class Op(enum.IntEnum):
    LAYER = 1       # per-layer configuration: PE pass shape, output stage, GLB split
    LOAD = 2        # data beats -> a GLB space, the bias table, the ID chain or a tag table
    PASS = 3        # one processing pass
    DRAIN = 4       # finished psums from the GLB -> bias, output stage -> data out
    COUNTERS = 5    # dump the performance counters to data out
    FENCE = 6       # wait for the units in the wait mask, nothing else


class Wait(enum.IntFlag):
    LOAD = 1
    PASS = 2
    DRAIN = 4
    ALL = 7


class Target(enum.IntEnum):
    IFMAP = 0       # ifmap space of the GLB (one GLB word per beat)
    FILTER = 1      # filter buffer (one GLB word per beat)
    BIAS = 2        # bias table (one psum_width value per beat)
    IDS = 3         # the array's ID chain (one chain word per beat)
    IFMAP_TAGS = 4  # tag tables: one (row, col) entry per beat
    FILTER_TAGS = 5
    PSUM_TAGS = 6
    CHAINS = 7      # GON source -> chain index table (entry at row * cols + col)


class BlockKind(enum.IntEnum):
    OFMAP = 1
    COUNTERS = 2


#: Counter dump order.
COUNTERS = ("cycles", "macs", "macs_skipped_zero", "pe_busy_cycles", "pe_idle_cycles",
            "stall_cycles", "glb_reads", "glb_writes", "words_in", "words_out", "passes")


def counter_beats(arch):
    """Output beats per counter in a COUNTERS block."""
    return -(-arch.counter_width // arch.dram_width)


def pe_config_layout(arch):
    """The per-pass configuration of one PE (all counts are actual values, not minus one)."""
    return data.StructLayout({
        "p": bits_for(arch.psum_spad_depth),       # filters per PE, 1..psum_spad_depth
        "q": bits_for(arch.ifmap_spad_depth),      # channels per PE, q*S <= ifmap_spad_depth
        "S": bits_for(arch.ifmap_spad_depth),      # filter width
        "F": arch.pe_f_width,                      # output columns per row
        "U": PE_U_WIDTH,                           # horizontal stride
        "n_rows": arch.pe_rows_width,              # rows (1-D convolutions) in this pass
        "psum_in_en": 1,                           # add the psum_in stream to the outputs
    })


def output_config_layout(arch):
    """The output stage's per-layer configuration (rowstat.hw.output_stage)."""
    return data.StructLayout({
        "shift_en": 1,                                  # requantize to act_width
        "shift": range(arch.psum_width + 1),            # shifts beyond psum_width give 0/-1
        "relu": 1,
    })


@functools.lru_cache(maxsize=None)
def layer_layout(arch):
    return data.StructLayout({
        "pe": pe_config_layout(arch),
        "out": output_config_layout(arch),
        "split": range(arch.glb_banks + 1),     # GLB banks for ifmaps
    })


@functools.lru_cache(maxsize=None)
def load_layout(arch):
    return data.StructLayout({"target": 4, "addr": COUNT, "count": COUNT + 4})


@functools.lru_cache(maxsize=None)
def streamer_layout(arch):
    return data.StructLayout({
        "base": COUNT,      # first GLB word of the region
        "chunks": COUNT,    # beats per destination
        "ntags": TAGS,      # destinations = tag table entries used
        "last": 8,          # (words per destination - 1) mod words per beat
    })


@functools.lru_cache(maxsize=None)
def pass_layout(arch):
    return data.StructLayout({
        "filt": streamer_layout(arch),
        "ifmap": streamer_layout(arch),
        "psum": streamer_layout(arch),      # chunks = 0 when the pass starts its psums at zero
        "out_base": COUNT,                  # psum space address of the pass's psums
        "nchains": TAGS,                    # chains (PE-set columns) whose psums leave the array
    })


@functools.lru_cache(maxsize=None)
def drain_layout(arch):
    return data.StructLayout({
        "base": COUNT,          # psum space address
        "chunks": COUNT,        # GLB words per chain
        "nchains": TAGS,
        "last": 8,              # psums in the final chunk's words - 1
        "p": 8,                 # filters per chain (psum order n, f, k within a chain)
        "chains_per_tc": TAGS,  # chains per filter copy (chain // this = filter copy)
        "bias_base": COUNT,     # bias table entry of filter k of copy 0
        "beats": COUNT + 4,     # output beats the block will hold (after its header)
    })


@functools.lru_cache(maxsize=None)
def counters_layout(arch):
    return data.StructLayout({"clear": 1})


ARG_LAYOUTS = {
    Op.LAYER: layer_layout, Op.LOAD: load_layout, Op.PASS: pass_layout,
    Op.DRAIN: drain_layout, Op.COUNTERS: counters_layout,
}


@functools.lru_cache(maxsize=None)
def nargs(arch, op):
    """Argument words of ``op`` (cached: the timing model asks once per command)."""
    if op not in ARG_LAYOUTS:
        return 0
    return -(-ARG_LAYOUTS[op](arch).size // 32)


def pack(layout, value):
    """Integer value of ``layout`` for a (nested) dict of field values (missing fields are 0,
    values are taken modulo their field's width).

    The same bits as ``Const.cast(layout.const(value))``, without building Amaranth constants:
    the compiler and the ID chain pack thousands of these.
    """
    out = 0
    for name, offset, width, nested in _fields_of(layout):
        if name not in value:
            continue
        v = value[name]
        v = pack(nested, v) if nested is not None else int(getattr(v, "value", v))
        out |= (v & ((1 << width) - 1)) << offset
    return out


_FIELDS = {}


def _fields_of(layout):
    """(name, offset, width, nested layout or None) per field of ``layout``, cached."""
    key = id(layout)
    hit = _FIELDS.get(key)
    if hit is None or hit[0] is not layout:
        fields = []
        for name, fld in layout:
            nested = fld.shape if isinstance(fld.shape, data.Layout) else None
            fields.append((name, fld.offset, fld.width, nested))
        hit = _FIELDS[key] = (layout, fields)
    return hit[1]


def unpack(layout, value):
    """A (nested) dict of the fields of ``layout`` in the integer ``value`` (the inverse of
    :func:`pack`)."""
    out = {}
    for name, offset, width, nested in _fields_of(layout):
        raw = (value >> offset) & ((1 << width) - 1)
        out[name] = unpack(nested, raw) if nested is not None else raw
    return out


def encode_command(arch, op, args=None, wait=0):
    """The 32-bit words of one command."""
    n = nargs(arch, op)
    words = [pack(HEADER_LAYOUT, {"op": int(op), "wait": int(wait), "nargs": n})]
    if n:
        value = pack(ARG_LAYOUTS[op](arch), args or {})
        words += [(value >> (32 * k)) & 0xFFFFFFFF for k in range(n)]
    return words


def decode_header(word):
    """(opcode, wait mask, argument words) of a command header word (ints: the opcode may be
    one that :class:`Op` does not know)."""
    h = unpack(HEADER_LAYOUT, word)
    return h["op"], h["wait"], h["nargs"]


def commands(cmd):
    """Walk a command stream: ``(position of the header, opcode, wait, argument words)`` per
    command, the argument words as a list (shorter than announced if the stream ends early)."""
    cmd = [int(v) for v in cmd]
    pos = 0
    while pos < len(cmd):
        opcode, wait, n = decode_header(cmd[pos])
        yield pos, opcode, wait, cmd[pos + 1:pos + 1 + n]
        pos += 1 + n


def decode_args(arch, op, words):
    """The (nested) dict of the arguments of ``op`` from its argument words ({} for commands
    without arguments)."""
    if op not in ARG_LAYOUTS:
        return {}
    return unpack(ARG_LAYOUTS[op](arch), sum(int(w) << (32 * k) for k, w in enumerate(words)))


def disassemble(arch, cmd):
    """One line per command: ``index: OP [wait=UNITS] field=value ...`` (for debugging)."""
    lines = []
    for index, (pos, opcode, wait, words) in enumerate(commands(cmd)):
        try:
            op = Op(opcode)
        except ValueError:
            lines.append(f"{index}: ??? opcode {opcode} (word {pos})")
            break
        args = decode_args(arch, op, words)
        if op == Op.LOAD and args["target"] in iter(Target):
            args["target"] = Target(args["target"]).name

        def flat(d, prefix=""):
            for k, v in d.items():
                if isinstance(v, dict):
                    yield from flat(v, f"{prefix}{k}.")
                else:
                    yield f"{prefix}{k}={v}"
        w = f" wait={Wait(wait).name or wait}" if wait else ""
        lines.append(f"{index}: {op.name}{w} " + " ".join(flat(args)))
    return lines


def header_beats_max(arch):
    """The most beats an output block's header can announce."""
    return (1 << (arch.dram_width - 12)) - 1


def header_beat(kind, beats):
    return HEADER_MAGIC | (int(kind) << 8) | (beats << 12)


def parse_header(value):
    """(kind, beats) of a header beat, or None if it is not one."""
    if value & 0xFF != HEADER_MAGIC:
        return None
    return (value >> 8) & 0xF, value >> 12
