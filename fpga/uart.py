"""A small 8N1 UART: a receiver and a transmitter with valid/ready byte streams.

Both run from the ``sync`` clock with a fixed ``divisor`` = clock cycles per bit (the clock
frequency over the baud rate, rounded: :func:`uart_divisor`). There is no flow control on the
wire; the host link above it (:mod:`rowstat.fpga.hostlink`) grants credits instead.

The receiver synchronizes the pin, waits for a falling edge, checks the start bit half a bit
later, samples the eight data bits (LSB first) and the stop bit at their centres, and offers the
byte on its stream. A missing stop bit drops the byte and strobes ``framing_error``; a byte that
arrives while the previous one has not been taken is dropped and strobes ``overrun``. It looks
for the next start bit from the middle of the stop bit on, so a sender a little faster than the
receiver (a few percent) is still read correctly.
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "uart_divisor", "link_bits_per_cycle", "MIN_DIVISOR"]

#: The fewest clock cycles per bit the receiver samples reliably.
MIN_DIVISOR = 4


def _check_divisor(component, divisor):
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        component._MustUse__silence = True      # refused, so no "never used" warning either
        raise ValueError(f"UART divisor must be an integer >= {MIN_DIVISOR} (clock cycles per "
                         f"bit), not {divisor!r}")


def link_bits_per_cycle(divisor):
    """Payload bits per core clock cycle of an 8N1 UART at ``divisor`` cycles per bit: 8 data
    bits in every 10 bit times. The rate the mapper plans for on a board."""
    return 8 / (10 * divisor)


def uart_divisor(clk_hz, baud, tolerance=0.02):
    """Clock cycles per bit for ``baud`` at ``clk_hz``: the nearest integer, if the baud rate it
    gives is within ``tolerance`` (2%) of the one asked for. Raises ValueError otherwise."""
    if not baud > 0:
        raise ValueError(f"baud rate must be a positive number, not {baud!r}")
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"baud rate {baud:g} is too fast for a {clk_hz / 1e6:g} MHz clock; "
                         f"allowed: at most {clk_hz / MIN_DIVISOR:g} ({MIN_DIVISOR} cycles per "
                         f"bit)")
    error = abs(clk_hz / divisor - baud) / baud
    if error > tolerance:
        raise ValueError(f"baud rate {baud:g} is {error:.1%} off at {clk_hz / 1e6:g} MHz "
                         f"({clk_hz / divisor:g} with {divisor} cycles per bit); allowed: "
                         f"within {tolerance:.0%}, e.g. {clk_hz / divisor:g}")
    return divisor


class _UART(wiring.Component):
    """What the receiver and the transmitter share: the divisor, checked up front."""

    def __init__(self, divisor, members):
        _check_divisor(self, divisor)
        self._divisor = divisor
        super().__init__(members)

    @property
    def divisor(self):
        """Clock cycles per bit."""
        return self._divisor


class UARTRx(_UART):
    """8N1 receiver.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least ``MIN_DIVISOR``.

    Attributes
    ----------
    rx : In(1)
        The serial input pin (idle high). It is synchronized here.
    o : Out(stream of 8-bit bytes)
        Received bytes; a byte stays valid until taken.
    framing_error : Out(1)
        One-cycle strobe: a byte ended without its stop bit and was dropped.
    overrun : Out(1)
        One-cycle strobe: a byte arrived before the last one was taken and was dropped.
    """

    def __init__(self, divisor):
        super().__init__(divisor, {
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(div))
        bit = Signal(range(8))
        shreg = Signal(8)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(~rx):
                        m.d.sync += [timer.eq(div - 1), bit.eq(0)]
                        m.next = "DATA"
                    with m.Else():          # a glitch, not a start bit
                        m.next = "IDLE"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), timer.eq(div - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(~rx):
                        m.d.comb += self.framing_error.eq(1)
                    with m.Elif(self.o.valid & ~self.o.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                    m.next = "IDLE"
        return m


class UARTTx(_UART):
    """8N1 transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least ``MIN_DIVISOR``.

    Attributes
    ----------
    i : In(stream of 8-bit bytes)
        Bytes to send; one is taken whenever the transmitter is idle.
    tx : Out(1)
        The serial output pin, registered, idle high.
    """

    def __init__(self, divisor):
        super().__init__(divisor, {
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        timer = Signal(range(div))
        left = Signal(range(11))        # bit periods left of the current frame
        shreg = Signal(9)               # data bits then the stop bit, LSB first

        m.d.comb += self.i.ready.eq(left == 0)
        with m.If(left == 0):
            with m.If(self.i.valid):
                m.d.sync += [self.tx.eq(0), shreg.eq(Cat(self.i.payload, C(1, 1))),
                             left.eq(10), timer.eq(div - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [left.eq(left - 1), timer.eq(div - 1)]
            with m.If(left == 1):
                m.d.sync += self.tx.eq(1)
            with m.Else():
                m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(shreg >> 1)]
        return m
