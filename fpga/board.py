"""Board tops: the accelerator behind the UART host link, on amaranth-boards platforms.

:class:`BoardCore` is the design itself (the accelerator and :class:`~rowstat.fpga.hostlink.
HostLink`, two UART pins, ``busy`` and an error count): the cocotb test runs it as Verilog
(``generate(arch, "board")``, UART at ``SIM_DIVISOR`` clocks per bit). :class:`BoardTop` puts it on
a board: the board's clock, its USB-serial UART pins and two LEDs. :data:`BOARDS` lists the boards
``rowstat build`` knows (see :mod:`rowstat.fpga.build`).
"""

from dataclasses import dataclass

from amaranth import *
from amaranth.build import ResourceError
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..gen.verilog import register_top
from .hostlink import HostLink
from .protocol import arch_key_bytes
from .uart import uart_divisor

__all__ = ["BoardCore", "BoardTop", "ecp5_pll", "Board", "BOARDS", "SIM_DIVISOR", "DEFAULT_BAUD",
           "board_names", "get_board"]

#: UART clocks per bit of the ``board`` top that ``rowstat generate`` and the cocotb test use.
SIM_DIVISOR = 8
#: Default UART baud rate on a board.
DEFAULT_BAUD = 115200


def ecp5_pll(fin_mhz, fout_mhz):
    """EHXPLLL dividers for ``fout_mhz`` from ``fin_mhz`` (the search ``ecppll`` does): a dict
    of ``clki_div``, ``clkfb_div``, ``clkop_div``, ``fvco`` and ``fout`` (the frequency it
    really gives, MHz). Raises ValueError when no setting is within 5%."""
    best = None
    for clki_div in range(1, 129):
        fpfd = fin_mhz / clki_div
        if not 3.125 <= fpfd <= 400:
            continue
        for clkfb_div in range(1, 81):
            fout = fpfd * clkfb_div
            if not 10 <= fout <= 400:
                continue
            for clkop_div in range(1, 129):
                fvco = fout * clkop_div
                if not 400 <= fvco <= 800:
                    continue
                score = (abs(fout - fout_mhz), abs(fvco - 600))
                if best is None or score < best[0]:
                    best = (score, {"clki_div": clki_div, "clkfb_div": clkfb_div,
                                    "clkop_div": clkop_div, "fvco": fvco, "fout": fout})
    if best is None or best[0][0] > 0.05 * fout_mhz:
        raise ValueError(f"no ECP5 PLL setting gives {fout_mhz:g} MHz from {fin_mhz:g} MHz; "
                         f"allowed: 10 to 400 MHz")
    return best[1]


class BoardCore(wiring.Component):
    """The accelerator behind a UART host link.

    Parameters
    ----------
    arch : ArchConfig
    divisor : int
        Clock cycles per UART bit.
    fifo_depth : int
        Receive FIFO bytes (the host's credit window).
    idle_timeout : int
        Cycles without a byte inside a frame before the link's parser starts over.

    Attributes
    ----------
    rx : In(1)
        UART input pin (from the host).
    tx : Out(1)
        UART output pin (to the host).
    busy : Out(1)
        The accelerator is working.
    errors : Out(8)
        UART framing errors, overruns and bad opcodes seen (saturating).
    """

    def __init__(self, arch, divisor=SIM_DIVISOR, *, fifo_depth=512, idle_timeout=None):
        from ..hw.accelerator import Accelerator
        self._arch = arch
        self._accel = Accelerator(arch)
        self._link = HostLink(divisor, arch.dram_width, arch_key_bytes(arch),
                              fifo_depth=fifo_depth,
                              idle_timeout=idle_timeout or 4096 * divisor)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1),
                          "errors": Out(8)})

    def verilog_submodules(self):
        """Verilog of the modules the accelerator instantiates by name (its PE sites)."""
        return self._accel.verilog_submodules()

    def elaborate(self, platform):
        m = Module()
        link, accel = self._link, self._accel
        m.submodules.link = link
        # RESET clears the accelerator (a synchronous reset of all its registers); the link
        # keeps running, so the host's session goes on.
        m.submodules.accel = ResetInserter(link.reset)(accel)
        wiring.connect(m, link.cmd, accel.cmd)
        wiring.connect(m, link.data, accel.data_in)
        wiring.connect(m, accel.data_out, link.out)
        m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx), self.busy.eq(accel.busy),
                     self.errors.eq(link.errors)]
        return m


register_top("board", BoardCore)


class BoardTop(Elaboratable):
    """:class:`BoardCore` on an amaranth-boards platform: the board's clock (or, with ``pll``,
    an ECP5 PLL's output) with a power-on reset, ``uart`` 0 and, where the board has them,
    LED 0 (busy) and LED 1 (a UART error).

    ``clk_hz`` is the core clock: the board's oscillator, or the PLL's output frequency.
    ``pll`` is a dict from :func:`ecp5_pll` (and ``fin``, the oscillator in MHz), or None.
    """

    def __init__(self, arch, clk_hz, baud=DEFAULT_BAUD, *, fifo_depth=512, pll=None):
        self.divisor = uart_divisor(clk_hz, baud)
        self.pll = pll
        self.core = BoardCore(arch, self.divisor, fifo_depth=fifo_depth,
                              idle_timeout=int(clk_hz // 4))

    def _ecp5_pll(self, m, clk_in):
        """An EHXPLLL from ``clk_in``; returns (clock out, lock)."""
        pll = self.pll
        clk_out, lock = Signal(), Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{pll['fin']:g}", a_FREQUENCY_PIN_CLKOP=f"{pll['fout']:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=pll["clki_div"], p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=pll["clkop_div"], p_CLKOP_CPHASE=pll["clkop_div"] - 1,
            p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=pll["clkfb_div"],
            i_RST=0, i_STDBY=0, i_CLKI=clk_in, i_CLKFB=clk_out, i_PHASESEL0=0,
            i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0,
            i_ENCLKOP=0, o_CLKOP=clk_out, o_LOCK=lock)
        return clk_out, lock

    def elaborate(self, platform):
        m = Module()
        # The sync domain, made here rather than by the platform so that it has a reset on
        # every family (the ECP5 platforms' default one is reset-less). The reset holds for
        # 15 us after configuration (iCE40 block RAMs read as zero for about 3 us) and, with
        # a PLL, until it locks.
        clk_buf = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
        m.submodules.clk_buf = clk_buf
        delay = int(15e-6 * platform.default_clk_frequency)
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.domains.sync = ClockDomain("sync")
        timer = Signal(range(delay + 1))
        ready = Signal()
        m.d.comb += ClockSignal("por").eq(clk_buf.i)
        with m.If(timer == delay):
            m.d.por += ready.eq(1)
        with m.Else():
            m.d.por += timer.eq(timer + 1)
        if self.pll is None:
            m.d.comb += [ClockSignal("sync").eq(clk_buf.i), ResetSignal("sync").eq(~ready)]
        else:
            clk, lock = self._ecp5_pll(m, clk_buf.i)
            m.d.comb += ClockSignal("sync").eq(clk)
            m.submodules.reset_sync = ResetSynchronizer(~(ready & lock), domain="sync")

        m.submodules.core = core = self.core
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx_buf.i), tx_buf.o.eq(core.tx)]
        for number, value in ((0, core.busy), (1, core.errors != 0)):
            try:
                led = platform.request("led", number, dir="-")
            except ResourceError:   # a board with fewer LEDs: the design works without them
                continue
            m.submodules[f"led{number}_buf"] = led_buf = io.Buffer("o", led)
            m.d.comb += led_buf.o.eq(value)
        return m


@dataclass(frozen=True)
class Board:
    """A board ``rowstat build`` can target."""

    name: str
    platform: str               # amaranth_boards module:class
    family: str                 # "ice40" or "ecp5" (nextpnr flavour, yosys target)
    device: str
    preset: str                 # default preset
    clock_mhz: float            # the board's oscillator
    default_mhz: float          # the core clock `rowstat build` aims at without --freq
    luts: int
    brams: int
    dsps: int
    uart: str                   # where the host link's pins are

    def make_platform(self):
        """An instance of the board's platform, with the UART resource added if needed."""
        import importlib
        module, cls = self.platform.split(":")
        platform = getattr(importlib.import_module(module), cls)()
        if self.name.startswith("orangecrab"):
            # No USB-UART bridge on the OrangeCrab: the link uses two pads of the Feather
            # header instead (pad 0 = RX in, pad 1 = TX out; 3.3 V).
            from amaranth.build import Attrs
            from amaranth_boards.resources import UARTResource
            platform.add_resources([UARTResource(0, rx="0", tx="1", conn=("io", 0),
                                                 attrs=Attrs(IO_TYPE="LVCMOS33",
                                                             PULLMODE="UP"))])
        return platform


BOARDS = {
    "icebreaker": Board(
        "icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40", "iCE40UP5K",
        "ice40", 12.0, 12.0, 5280, 30, 8, "FTDI channel B (USB serial), pins 6 (RX) and 9 (TX)"),
    "ulx3s-85f": Board(
        "ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5", "LFE5U-85F",
        "ecp5", 25.0, 25.0, 83640, 208, 156, "FTDI FT231X (USB serial), pins M1 (RX) and L4 (TX)"),
    # The same part as the ULX3S, but the ecp5 preset did not route in its package (README
    # "Boards"); the tiny preset (3 x 4, 8-bit) routes at 66 MHz.
    "orangecrab-85f": Board(
        "orangecrab-85f", "amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_85FPlatform", "ecp5",
        "LFE5U-85F", "tiny", 48.0, 24.0, 83640, 208, 156,
        "Feather header pads 0 (RX, N17) and 1 (TX, M18): wire a 3.3 V USB-serial adapter"),
}


def board_names():
    return list(BOARDS)


def get_board(name):
    from ..gen.errors import RowstatError
    try:
        return BOARDS[name]
    except KeyError:
        raise RowstatError(f"bad value for --board: {name!r}; allowed: "
                           f"{', '.join(BOARDS)}") from None
