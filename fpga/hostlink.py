"""The board side of the UART host link: bytes on two pins <-> the accelerator's streams.

The byte protocol (frames in, messages out, credit flow control) is defined in
:mod:`rowstat.fpga.protocol`; this module is its gateware::

    rx pin ─► UARTRx ─► FIFO ─► frame parser ─┬─► cmd (32-bit words)
                          │ pops              └─► data (dram_width-bit beats)
                          ▼
    tx pin ◄─ UARTTx ◄─ message sender ◄── ACK credits, INFO, out (output beats)

The FIFO absorbs the bytes that arrive while the accelerator holds its command or data stream
back; the host never has more bytes in flight than it holds, because it only sends what the
``A`` (ack) messages have freed. The parser returns to the start of a frame when no byte has
come for ``idle_timeout`` cycles in the middle of one, so a host that was interrupted can start
again without resetting the board.
"""

from amaranth import *
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from . import protocol as P
from .uart import UARTRx, UARTTx, _check_divisor

__all__ = ["HostLink"]


class HostLink(wiring.Component):
    """UART host link.

    Parameters
    ----------
    divisor : int
        Clock cycles per UART bit (see :func:`rowstat.fpga.uart.uart_divisor`).
    dram_width : int
        Bits of a data beat (the accelerator's ``dram_width``).
    arch_key : bytes
        8 bytes naming the architecture, reported by ``INFO`` (``protocol.arch_key_bytes``).
    fifo_depth : int
        Bytes of the receive FIFO, a power of two from 64 (the host's credit window).
    idle_timeout : int
        Cycles without a byte, inside a frame, after which the parser starts over.

    Attributes
    ----------
    rx : In(1)
        Serial input pin.
    tx : Out(1)
        Serial output pin.
    cmd : Out(stream of 32-bit command words)
    data : Out(stream of dram_width-bit beats)
    out : In(stream of dram_width-bit beats)
        The accelerator's output, sent to the host as ``O`` messages.
    reset : Out(1)
        One-cycle strobe for the ``RESET`` opcode.
    errors : Out(8)
        Framing errors, overruns and unknown opcodes seen so far (saturating).
    """

    def __init__(self, divisor, dram_width, arch_key=bytes(8), *, fifo_depth=512,
                 idle_timeout=1 << 22):
        _check_divisor(self, divisor)
        if fifo_depth < 64 or fifo_depth & (fifo_depth - 1) or fifo_depth > 0xFFFF:
            self._MustUse__silence = True       # refused, so no "never used" warning either
            raise ValueError(f"fifo_depth must be a power of two from 64 to 32768, "
                             f"not {fifo_depth!r}")
        if len(arch_key) != 8:
            self._MustUse__silence = True
            raise ValueError(f"arch_key must be 8 bytes, not {arch_key!r}")
        self._divisor = divisor
        self._width = dram_width
        self._key = bytes(arch_key)
        self._depth = fifo_depth
        self._timeout = idle_timeout
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "cmd": Out(stream.Signature(32)),
            "data": Out(stream.Signature(dram_width)),
            "out": In(stream.Signature(dram_width)),
            "reset": Out(1),
            "errors": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        nbytes = P.beat_bytes(self._width)
        m.submodules.uart_rx = urx = UARTRx(self._divisor)
        m.submodules.uart_tx = utx = UARTTx(self._divisor)
        m.submodules.rx_fifo = rxf = fifo.SyncFIFOBuffered(width=8, depth=self._depth)
        m.d.comb += [
            urx.rx.eq(self.rx), self.tx.eq(utx.tx),
            rxf.w_data.eq(urx.o.payload), rxf.w_en.eq(urx.o.valid), urx.o.ready.eq(1),
        ]

        # --- errors (saturating) ---------------------------------------------------------------
        bad_op = Signal()
        error = urx.framing_error | urx.overrun | bad_op | (urx.o.valid & ~rxf.w_rdy)
        with m.If(error & (self.errors != 0xFF)):
            m.d.sync += self.errors.eq(self.errors + 1)

        # --- credits: one ACK per ACK_CHUNK bytes taken from the FIFO ----------------------
        popped = Signal(range(P.ACK_CHUNK))
        acks = Signal(range(2 * (self._depth // P.ACK_CHUNK) + 2))
        new_ack, ack_sent = Signal(), Signal()
        with m.If(rxf.r_rdy & rxf.r_en):
            m.d.sync += popped.eq(popped + 1)
            m.d.comb += new_ack.eq(popped == P.ACK_CHUNK - 1)
        m.d.sync += acks.eq(acks + new_ack - ack_sent)

        # --- frame parser --------------------------------------------------------------------
        # Items shift in from the top of `word`, so after an item's last byte a command word
        # is its top 4 bytes and a beat its top `nbytes` bytes.
        op = Signal(8)
        count = Signal(16)
        got = Signal(range(max(nbytes, 4) + 1))
        word = Signal(8 * max(nbytes, 4))
        info_req, info_taken = Signal(), Signal()
        idle = Signal(range(self._timeout + 1))
        timed_out = Signal()
        is_cmd = op == P.CMD
        m.d.comb += [self.cmd.payload.eq(word[-32:]),
                     self.data.payload.eq(word[-8 * nbytes:][:self._width]),
                     timed_out.eq(idle == self._timeout)]
        with m.If(info_taken):
            m.d.sync += info_req.eq(0)

        def take_byte():
            """In a state inside a frame: read the FIFO, or count towards the timeout."""
            m.d.comb += rxf.r_en.eq(1)
            with m.If(rxf.r_rdy):
                m.d.sync += idle.eq(0)
            with m.Elif(timed_out):
                m.d.sync += idle.eq(0)
                m.next = "OP"
            with m.Else():
                m.d.sync += idle.eq(idle + 1)

        with m.FSM():
            with m.State("OP"):
                m.d.comb += rxf.r_en.eq(1)
                m.d.sync += idle.eq(0)
                with m.If(rxf.r_rdy):
                    m.d.sync += op.eq(rxf.r_data)
                    with m.Switch(rxf.r_data):
                        with m.Case(P.CMD, P.DATA, P.INFO, P.RESET):
                            m.next = "LEN0"
                        with m.Default():
                            m.d.comb += bad_op.eq(1)
            with m.State("LEN0"):
                take_byte()
                with m.If(rxf.r_rdy):
                    m.d.sync += count[:8].eq(rxf.r_data)
                    m.next = "LEN1"
            with m.State("LEN1"):
                take_byte()
                with m.If(rxf.r_rdy):
                    m.d.sync += [count[8:].eq(rxf.r_data), got.eq(0)]
                    with m.If(op == P.INFO):
                        m.d.sync += info_req.eq(1)
                        m.next = "OP"
                    with m.Elif(op == P.RESET):
                        # Credits restart too: the next ACK is for the ACK_CHUNK bytes after
                        # this frame, whatever came before (an earlier session, a query).
                        m.d.comb += self.reset.eq(1)
                        m.d.sync += popped.eq(0)
                        m.next = "OP"
                    with m.Elif(Cat(count[:8], rxf.r_data) == 0):
                        m.next = "OP"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                take_byte()
                with m.If(rxf.r_rdy):
                    m.d.sync += [word.eq(Cat(word[8:], rxf.r_data)), got.eq(got + 1)]
                    with m.If(got + 1 == Mux(is_cmd, 4, nbytes)):
                        m.next = "PUSH"
            with m.State("PUSH"):
                m.d.comb += [self.cmd.valid.eq(is_cmd), self.data.valid.eq(~is_cmd)]
                with m.If(Mux(is_cmd, self.cmd.ready, self.data.ready)):
                    m.d.sync += [count.eq(count - 1), got.eq(0)]
                    with m.If(count == 1):
                        m.next = "OP"
                    with m.Else():
                        m.next = "PAYLOAD"

        # --- message sender ------------------------------------------------------------------
        # ACK and O messages shift out of `msg`; the INFO message, constants but for the error
        # count, is picked byte by byte (a shift register as long as it took an iCE40 logic
        # cell per bit).
        msg = Signal(8 * (1 + nbytes))
        left = Signal(range(2 + max(nbytes, P.INFO_BYTES)))
        info_mode = Signal()
        info_errors = Signal(8)         # the error count when the INFO was taken
        info = Cat(C(P.TAG_INFO, 8), C(P.VERSION, 8), C(self._width, 16), C(self._depth, 16),
                   C(P.ACK_CHUNK, 8), info_errors, C(int.from_bytes(self._key, "little"), 64))
        info_byte = Array(info.word_select(k, 8) for k in range(1 + P.INFO_BYTES))[
            1 + P.INFO_BYTES - left]
        m.d.comb += [utx.i.payload.eq(Mux(info_mode, info_byte, msg[:8])),
                     utx.i.valid.eq(left != 0)]
        with m.If(left == 0):
            m.d.sync += info_mode.eq(0)
            with m.If(acks != 0):
                m.d.comb += ack_sent.eq(1)
                m.d.sync += [msg.eq(P.TAG_ACK), left.eq(1)]
            with m.Elif(info_req):
                m.d.comb += info_taken.eq(1)
                m.d.sync += [info_mode.eq(1), info_errors.eq(self.errors),
                             left.eq(1 + P.INFO_BYTES)]
            with m.Elif(self.out.valid):
                m.d.comb += self.out.ready.eq(1)
                m.d.sync += [msg.eq(Cat(C(P.TAG_OUT, 8), self.out.payload)), left.eq(1 + nbytes)]
        with m.Elif(utx.i.ready):
            m.d.sync += [msg.eq(msg >> 8), left.eq(left - 1)]
        return m
