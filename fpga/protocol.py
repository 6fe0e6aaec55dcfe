"""The byte protocol of the UART host link: its constants, the host's encoder and decoder.

One home for the format: the board's gateware (:mod:`rowstat.fpga.hostlink`) takes its opcodes,
tags and sizes from here, and both ``rowstat host`` (over pyserial) and the cocotb test (over the
simulated UART pins) drive the board through :class:`HostSession`, which does no I/O itself.

Host to board: frames of ``opcode (1 byte) | count (2 bytes, little-endian) | payload``.

==========  ======  =====================================================================
opcode      value   payload
==========  ======  =====================================================================
``CMD``     0x01    ``count`` 32-bit command words, 4 bytes each, little-endian
``DATA``    0x02    ``count`` data beats, ``ceil(dram_width / 8)`` bytes each, little-endian
``INFO``    0x03    none (count 0): the board answers with an ``I`` message
``RESET``   0x04    none (count 0): resets the accelerator (not the link)
==========  ======  =====================================================================

Board to host: messages of ``tag (1 byte) | payload``.

========  ======  =======================================================================
tag       value   payload
========  ======  =======================================================================
``A``     0x41    none: the board has taken another ``ACK_CHUNK`` bytes from its receive FIFO
``O``     0x4F    one output beat of the accelerator, ``ceil(dram_width / 8)`` bytes, LE
``I``     0x49    ``INFO_BYTES`` bytes: protocol version, dram_width (2 bytes), receive FIFO
                  depth (2 bytes), ACK_CHUNK, error count, the arch key (8 bytes)
========  ======  =======================================================================

Flow control is by credit: the host keeps at most ``fifo_depth`` bytes unacknowledged (bytes
sent minus ``ACK_CHUNK`` per ``A``), so the board's receive FIFO never overflows while the
accelerator holds its command or data stream back. A session starts with ``RESET``, which also
restarts the board's count of bytes taken, and ``INFO``; the host counts bytes from the end of
the ``RESET`` frame, ignores the ``A`` messages that come before the ``I`` answer (they are for
bytes from before the ``RESET``) and sends nothing more until that answer.

A program goes out as the accelerator consumes it: each LOAD command's data beats follow the
LOAD, so the link never blocks on beats that a later command would take. The output beats the
board sends back are the accelerator's output stream as it is, block headers included, and end
with the COUNTERS block; :func:`rowstat.gen.compiler.decode_output` reads them.
"""

import struct

from ..gen.errors import RowstatError

__all__ = [
    "VERSION", "CMD", "DATA", "INFO", "RESET", "TAG_ACK", "TAG_OUT", "TAG_INFO", "ACK_CHUNK",
    "INFO_BYTES", "MAX_COUNT", "LinkError", "beat_bytes", "arch_key_bytes", "frame",
    "program_frames", "info_payload", "parse_info", "Decoder", "HostSession",
]

VERSION = 1
CMD, DATA, INFO, RESET = 0x01, 0x02, 0x03, 0x04
TAG_ACK, TAG_OUT, TAG_INFO = 0x41, 0x4F, 0x49
#: Receive-FIFO bytes the board takes per ``A`` message.
ACK_CHUNK = 32
#: Payload bytes of the ``I`` message.
INFO_BYTES = 15
#: Items (words or beats) in one frame at most.
MAX_COUNT = 0xFFFF


class LinkError(RowstatError):
    """The board answered something the protocol does not allow, or nothing at all."""


def beat_bytes(dram_width):
    """Bytes per data beat on the link."""
    return -(-dram_width // 8)


def arch_key_bytes(arch):
    """The 8 bytes of ``arch.key()`` (a hash of the architecture) the board reports."""
    return bytes.fromhex(arch.key())[:8]


def frame(opcode, items=(), item_bytes=4):
    """One host-to-board frame: ``opcode``, the count, the items little-endian."""
    items = list(items)
    if len(items) > MAX_COUNT:
        raise ValueError(f"a frame holds at most {MAX_COUNT} items, not {len(items)}")
    out = bytearray(struct.pack("<BH", opcode, len(items)))
    for value in items:
        out += int(value).to_bytes(item_bytes, "little")
    return bytes(out)


def _load_counts(arch, cmd):
    """For each command of ``cmd``: (first word, words, data beats it consumes)."""
    from ..gen.program import Op, commands, decode_args
    return [(pos, 1 + len(words),
             decode_args(arch, Op.LOAD, words)["count"] if opcode == Op.LOAD else 0)
            for pos, opcode, wait, words in commands(cmd)]


def program_frames(arch, cmd, data):
    """The frames that send a compiled program (command words and data beats), each LOAD's
    beats right after the LOAD. Raises ValueError if the LOADs do not take exactly ``data``."""
    nbytes = beat_bytes(arch.dram_width)
    frames, words, used = [], [], 0

    def flush():
        for k in range(0, len(words), MAX_COUNT):
            frames.append(frame(CMD, words[k:k + MAX_COUNT], 4))
        words.clear()

    for pos, n, beats in _load_counts(arch, cmd):
        words.extend(int(w) for w in cmd[pos:pos + n])
        if beats:
            flush()
            if used + beats > len(data):
                raise ValueError(f"the program's LOADs take more than its {len(data)} data beats")
            for k in range(used, used + beats, MAX_COUNT):
                frames.append(frame(DATA, data[k:min(k + MAX_COUNT, used + beats)], nbytes))
            used += beats
    flush()
    if used != len(data):
        raise ValueError(f"the program's LOADs take {used} of its {len(data)} data beats")
    return frames


def info_payload(arch, fifo_depth, errors=0):
    """The ``I`` message payload a board for ``arch`` sends (the reference for the gateware)."""
    return (struct.pack("<BHHBB", VERSION, arch.dram_width, fifo_depth, ACK_CHUNK,
                        min(errors, 255)) + arch_key_bytes(arch))


def parse_info(payload):
    """An ``I`` payload -> dict(version, dram_width, fifo_depth, ack_chunk, errors, arch_key)."""
    version, width, depth, chunk, errors = struct.unpack("<BHHBB", payload[:7])
    return {"version": version, "dram_width": width, "fifo_depth": depth, "ack_chunk": chunk,
            "errors": errors, "arch_key": payload[7:15].hex()}


class Decoder:
    """Splits the board's byte stream into messages. :meth:`feed` returns a list of
    ``("ack", None)``, ``("out", beat)`` and ``("info", dict)`` in arrival order."""

    def __init__(self, dram_width):
        self._beat = beat_bytes(dram_width)
        self._buf = bytearray()
        self.received = 0

    def _size(self, tag):
        if tag == TAG_ACK:
            return 0
        if tag == TAG_OUT:
            return self._beat
        if tag == TAG_INFO:
            return INFO_BYTES
        raise LinkError(f"the board sent an unknown message tag {tag:#04x} after "
                        f"{self.received} bytes (baud rate or bitstream mismatch?)")

    def feed(self, data):
        self._buf += data
        self.received += len(data)
        events = []
        while self._buf:
            size = self._size(self._buf[0])
            if len(self._buf) < 1 + size:
                break
            tag, body = self._buf[0], bytes(self._buf[1:1 + size])
            del self._buf[:1 + size]
            if tag == TAG_ACK:
                events.append(("ack", None))
            elif tag == TAG_OUT:
                events.append(("out", int.from_bytes(body, "little")))
            else:
                events.append(("info", parse_info(body)))
        return events


class HostSession:
    """The host's side of one program run, without I/O.

    A driver loop calls :meth:`to_send` for the bytes it may write now and :meth:`received`
    with whatever bytes came back, until :attr:`done`. The session first sends ``RESET`` and
    ``INFO``, checks the board's answer against ``arch`` and then streams the program within
    the board's credit window. :attr:`beats` holds the output beats.
    """

    def __init__(self, arch, cmd, data, out_beats):
        self.arch = arch
        self.out_beats = out_beats
        self.beats = []
        self.info = None
        self._decoder = Decoder(arch.dram_width)
        self._pending = bytearray(frame(RESET) + frame(INFO))
        self._base = len(frame(RESET))     # the board counts the bytes after the RESET frame
        self._window = len(frame(INFO))    # until the board says how deep its FIFO is
        self._program = b"".join(program_frames(arch, cmd, data))
        self.sent = 0
        self.acked = 0
        self.bytes_total = len(self._pending) + len(self._program)

    @property
    def bytes_received(self):
        return self._decoder.received

    @property
    def done(self):
        return self.info is not None and len(self.beats) >= self.out_beats and not self._pending

    def to_send(self):
        """The bytes the credit window allows now (possibly none)."""
        room = self._window - (self.sent - self._base - self.acked)
        if room <= 0 or not self._pending:
            return b""
        chunk = bytes(self._pending[:room])
        del self._pending[:room]
        self.sent += len(chunk)
        return chunk

    def received(self, data):
        for kind, value in self._decoder.feed(data):
            if kind == "ack":
                if self.info is not None:       # earlier ones are for bytes before RESET
                    self.acked += self.info["ack_chunk"]
            elif kind == "out":
                if self.info is None:
                    raise LinkError("the board sent output before answering INFO (a previous "
                                    "run still going? reset the board)")
                self.beats.append(value)
                if len(self.beats) > self.out_beats:
                    raise LinkError(f"the board sent more than the {self.out_beats} output "
                                    f"beats the program makes")
            else:
                self._check_info(value)

    def _check_info(self, info):
        arch = self.arch
        if info["version"] != VERSION:
            raise LinkError(f"the board speaks protocol version {info['version']}; this "
                            f"rowstat speaks {VERSION}")
        if info["dram_width"] != arch.dram_width or info["arch_key"] != arch.key()[:16]:
            raise LinkError(f"the board's bitstream was built for another architecture "
                            f"(dram_width {info['dram_width']}, key {info['arch_key']}); the "
                            f"layer was compiled for dram_width {arch.dram_width}, key "
                            f"{arch.key()}: pass the same --preset/--config/--set as the build")
        if info["fifo_depth"] < 16 or info["ack_chunk"] > info["fifo_depth"]:
            raise LinkError(f"the board reports a receive FIFO of {info['fifo_depth']} bytes "
                            f"and ACK_CHUNK {info['ack_chunk']}: not a rowstat host link")
        self.info = info
        self._pending += self._program
        self._program = b""
        self._window = info["fifo_depth"]
