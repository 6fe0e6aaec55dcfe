"""The host link's byte protocol on the host side: frames, the decoder and the session's
credit window, against hand-derived expectations."""

import random
import struct

import numpy as np
import pytest

from rowstat.fpga import protocol as P
from rowstat.gen.compiler import compile_layer
from rowstat.gen.config import PRESETS
from rowstat.gen.layer import LayerSpec
from rowstat.gen.program import Op, Target, encode_command

TINY = PRESETS["tiny"]


def test_frame_layout_is_opcode_count_little_endian_items():
    assert P.frame(P.CMD, [0x11223344, 5]) == bytes([1, 2, 0, 0x44, 0x33, 0x22, 0x11, 5, 0, 0, 0])
    assert P.frame(P.DATA, [0xABCDEF], 3) == bytes([2, 1, 0, 0xEF, 0xCD, 0xAB])
    assert P.frame(P.INFO) == b"\x03\x00\x00" and P.frame(P.RESET) == b"\x04\x00\x00"
    with pytest.raises(ValueError, match="65535"):
        P.frame(P.CMD, [0] * 65536)


def _parse_frames(arch, stream):
    """Host-to-board bytes -> [(opcode, [items])] (the parser the gateware implements)."""
    out, pos, nb = [], 0, P.beat_bytes(arch.dram_width)
    while pos < len(stream):
        op, count = struct.unpack_from("<BH", stream, pos)
        pos += 3
        size = 4 if op == P.CMD else nb if op == P.DATA else 0
        items = [int.from_bytes(stream[pos + k * size:pos + (k + 1) * size], "little")
                 for k in range(count)] if size else []
        pos += size * count
        out.append((op, items))
    return out


def test_program_frames_put_each_loads_beats_right_after_it():
    arch = TINY
    cmd = (encode_command(arch, Op.LOAD, {"target": Target.BIAS, "addr": 0, "count": 3})
           + encode_command(arch, Op.FENCE, wait=7)
           + encode_command(arch, Op.LOAD, {"target": Target.IFMAP, "addr": 5, "count": 2})
           + encode_command(arch, Op.COUNTERS, {"clear": 0}))
    data = [1, 2, 3, (1 << 48) - 1, 7]
    frames = _parse_frames(arch, b"".join(P.program_frames(arch, cmd, data)))
    n_load = len(encode_command(arch, Op.LOAD, {"target": 0, "addr": 0, "count": 0}))
    assert [op for op, _ in frames] == [P.CMD, P.DATA, P.CMD, P.DATA, P.CMD]
    assert frames[1][1] == [1, 2, 3] and frames[3][1] == [(1 << 48) - 1, 7]
    assert sum((items for op, items in frames if op == P.CMD), []) == cmd
    assert len(frames[0][1]) == n_load
    with pytest.raises(ValueError, match="take 5 of its 6"):
        P.program_frames(arch, cmd, data + [0])
    with pytest.raises(ValueError, match="more than"):
        P.program_frames(arch, cmd, data[:4])


def test_program_frames_of_a_compiled_layer_carry_every_word_and_beat():
    layer = LayerSpec(N=1, C=3, H=6, W=6, M=4, R=3, S=3, padding=1, shift=3)
    rng = np.random.default_rng(1)
    prog = compile_layer(TINY, layer, rng.integers(-100, 100, layer.ifmap_shape),
                         rng.integers(-100, 100, layer.weight_shape))
    frames = _parse_frames(TINY, b"".join(P.program_frames(TINY, prog.cmd, prog.data)))
    assert sum((i for op, i in frames if op == P.CMD), []) == list(prog.cmd)
    assert sum((i for op, i in frames if op == P.DATA), []) == list(prog.data)


def test_decoder_splits_messages_across_any_chunking():
    width = 20
    rng = random.Random(3)
    info = P.info_payload(TINY, 512, errors=2)
    beats = [rng.randrange(1 << width) for _ in range(9)]
    stream = bytes([P.TAG_ACK, P.TAG_INFO]) + info
    for b in beats:
        stream += bytes([P.TAG_OUT]) + b.to_bytes(3, "little") + bytes([P.TAG_ACK])
    for _ in range(5):
        dec = P.Decoder(width)
        events, pos = [], 0
        while pos < len(stream):
            n = rng.randrange(1, 6)
            events += dec.feed(stream[pos:pos + n])
            pos += n
        assert [v for k, v in events if k == "out"] == beats
        assert sum(k == "ack" for k, _ in events) == 10
        assert events[1] == ("info", {"version": P.VERSION, "dram_width": 48, "fifo_depth": 512,
                                      "ack_chunk": P.ACK_CHUNK, "errors": 2,
                                      "arch_key": TINY.key()})
    with pytest.raises(P.LinkError, match="unknown message tag 0x55"):
        P.Decoder(8).feed(b"\x55")


class _BoardModel:
    """A byte-level model of the board's link: a FIFO of `depth` bytes drained at `rate` bytes
    per step, an ACK per ACK_CHUNK bytes taken after the RESET frame, an INFO answer."""

    def __init__(self, arch, depth, rate):
        self.arch, self.depth, self.rate = arch, depth, rate
        self.fifo = bytearray()
        self.taken = 0
        self.max_fill = 0

    def step(self, incoming):
        self.fifo += incoming
        self.max_fill = max(self.max_fill, len(self.fifo))
        assert len(self.fifo) <= self.depth, "the host overran the board's FIFO"
        out = bytearray()
        for _ in range(min(self.rate, len(self.fifo))):
            self.fifo.pop(0)
            self.taken += 1
            if self.taken == 6:       # RESET + INFO frames
                out += bytes([P.TAG_INFO]) + P.info_payload(self.arch, self.depth)
            if self.taken > 3 and (self.taken - 3) % P.ACK_CHUNK == 0:   # after RESET
                out += bytes([P.TAG_ACK])
        return bytes(out)


@pytest.mark.parametrize("depth, rate", [(64, 1), (512, 7), (64, 40)])
def test_session_keeps_within_the_credit_window(depth, rate):
    arch = TINY
    cmd = encode_command(arch, Op.LOAD, {"target": Target.IFMAP, "addr": 0, "count": 300})
    session = P.HostSession(arch, cmd, list(range(300)), out_beats=2)
    board = _BoardModel(arch, depth, rate)
    for _ in range(100000):
        back = board.step(session.to_send())
        session.received(back)
        if board.taken == session.bytes_total:
            break
    assert board.taken == session.bytes_total
    assert 6 < board.max_fill <= depth
    session.received(bytes([P.TAG_OUT]) + bytes(6) + bytes([P.TAG_OUT]) + bytes(range(6)))
    assert session.done and session.beats == [0, int.from_bytes(bytes(range(6)), "little")]
    with pytest.raises(P.LinkError, match="more than"):
        session.received(bytes([P.TAG_OUT]) + bytes(6))


def test_session_refuses_a_board_built_for_another_arch():
    session = P.HostSession(TINY, [], [], out_beats=0)
    assert session.to_send() == P.frame(P.RESET) + P.frame(P.INFO)
    assert session.to_send() == b""     # nothing more before the INFO answer
    session.received(bytes([P.TAG_ACK]))   # an ACK for bytes from before the RESET
    assert session.acked == 0
    other = TINY.replace(rows=2)
    with pytest.raises(P.LinkError, match="another architecture"):
        session.received(bytes([P.TAG_INFO]) + P.info_payload(other, 512))
    with pytest.raises(P.LinkError, match="version"):
        session.received(bytes([P.TAG_INFO, 99]) + P.info_payload(TINY, 512)[1:])
    with pytest.raises(P.LinkError, match="before answering INFO"):
        P.HostSession(TINY, [], [], 1).received(bytes([P.TAG_OUT]) + bytes(6))


class _FakePort:
    """A pyserial-like port in front of _BoardModel that answers `outs` once all is taken."""

    def __init__(self, arch, outs, quiet=False):
        self.board = _BoardModel(arch, 64, 16)
        self.outs, self.quiet = outs, quiet
        self.rx = bytearray()
        self.total = None

    @property
    def in_waiting(self):
        return len(self.rx)

    def write(self, data):
        if not self.quiet:
            self.rx += self.board.step(data)

    def read(self, n):
        if not self.quiet:
            self.rx += self.board.step(b"")
            if self.board.taken == self.total and self.outs:
                self.rx += b"".join(bytes([P.TAG_OUT]) + v.to_bytes(6, "little")
                                    for v in self.outs)
                self.outs = []
        data, self.rx[:n] = bytes(self.rx[:n]), b""
        return data


def test_drive_runs_a_session_over_a_port_and_times_out_on_silence():
    from rowstat.fpga.host import drive, preset_for_key
    cmd = encode_command(TINY, Op.LOAD, {"target": Target.IFMAP, "addr": 0, "count": 40})
    session = P.HostSession(TINY, cmd, list(range(40)), out_beats=3)
    port = _FakePort(TINY, [7, 8, 9])
    port.total = session.bytes_total
    drive(session, port, timeout=5)
    assert session.beats == [7, 8, 9] and port.board.taken == session.bytes_total
    silent = P.HostSession(TINY, cmd, list(range(40)), out_beats=3)
    with pytest.raises(P.LinkError, match="quiet for 0.2 s .no INFO answer"):
        drive(silent, _FakePort(TINY, [], quiet=True), timeout=0.2)
    assert preset_for_key(PRESETS["ice40"].key()) == "ice40"
    assert preset_for_key("0" * 16) is None
