"""``rowstat host``: run one conv layer on a board over its UART host link.

The layer is compiled as for the simulator (:func:`rowstat.gen.compiler.compile_layer`), sent
with :class:`rowstat.fpga.protocol.HostSession` over pyserial, and the output beats decoded
(:func:`rowstat.gen.compiler.decode_output`); the stats are the simulator's
(:func:`rowstat.sim.run.stats_from`), with the board's own cycle counter as the cycle count.
"""

import time

from ..gen.errors import RowstatError
from .board import DEFAULT_BAUD
from .protocol import INFO, Decoder, HostSession, LinkError, frame

#: The core clock assumed without ``--freq``: the iCEBreaker's 12 MHz (the link's bits per core
#: cycle follow from it; on a UART every layer is bound by the link whatever the clock).
DEFAULT_CLK_HZ = 12e6

__all__ = ["DEFAULT_CLK_HZ", "open_port", "drive", "query_info", "preset_for_key", "run_on_board",
           "run_on_simulated_board"]


def open_port(port, baud):
    """A pyserial port, or a one-line :class:`RowstatError` naming the device."""
    try:
        import serial
    except ImportError:
        raise RowstatError("pyserial is not installed: `pip install pyserial`") from None
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise RowstatError(f"bad value for --baud: {baud!r}; allowed: a positive integer")
    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=0.02, write_timeout=5)
    except (serial.SerialException, OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).split(":")[0] or type(exc).__name__
        raise RowstatError(f"bad value for --port: {port!r}; allowed: a serial device that "
                           f"can be opened ({reason})") from None


def drive(session, port, timeout=30.0, progress=None):
    """Run ``session`` over an open pyserial ``port`` until it is done. Raises
    :class:`LinkError` if nothing comes back for ``timeout`` seconds."""
    last = time.monotonic()
    while not session.done:
        chunk = session.to_send()
        if chunk:
            port.write(chunk)
        data = port.read(max(1, port.in_waiting))
        if data:
            session.received(data)
            last = time.monotonic()
            if progress:
                progress(session)
        elif time.monotonic() - last > timeout:
            got = "no INFO answer" if session.info is None else \
                f"{len(session.beats)} of {session.out_beats} output beats"
            raise LinkError(f"the board went quiet for {timeout:g} s ({got}; {session.sent} "
                            f"of {session.bytes_total} bytes sent): wrong --port or --baud, "
                            f"or not a rowstat bitstream?")


def query_info(port, timeout=5.0):
    """Ask the board at an open ``port`` for its INFO answer (a dict, see
    :func:`rowstat.fpga.protocol.parse_info`)."""
    decoder = Decoder(8)
    port.reset_input_buffer()
    port.write(frame(INFO))
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for kind, value in decoder.feed(port.read(max(1, port.in_waiting))):
            if kind == "info":
                return value
    raise LinkError(f"no INFO answer from the board within {timeout:g} s: wrong --port or "
                    f"--baud, or not a rowstat bitstream?")


def preset_for_key(key):
    """The name of the preset whose architecture key is ``key``, or None."""
    from ..gen.config import PRESETS
    for name, arch in PRESETS.items():
        if arch.key() == key:
            return name
    return None


def run_on_board(arch, layer, ifmap, weights, bias=None, *, port, baud=DEFAULT_BAUD,
                 clk_hz=DEFAULT_CLK_HZ, objective="cycles", timeout=30.0, progress=True):
    """Run ``layer`` on the board at ``port``. Returns (ofmap (N, M, E, F) int64, stats).

    ``clk_hz`` is the bitstream's core clock: with ``baud`` it gives the link's bits per core
    cycle, for which the layer is mapped (as ``rowstat model --io-bits-per-cycle`` would)."""
    from ..gen.compiler import compile_layer, decode_output
    from ..sim.model import choose_mapping
    from ..sim.run import model_check, stats_from
    from .uart import link_bits_per_cycle, uart_divisor
    try:
        io = link_bits_per_cycle(uart_divisor(clk_hz, baud))
    except ValueError as exc:
        raise RowstatError(f"bad --freq/--baud: {exc}") from None
    link = open_port(port, baud)
    if arch is None:        # the board's preset, from its INFO answer
        try:
            info = query_info(link)
        except BaseException:
            link.close()
            raise
        name = preset_for_key(info["arch_key"])
        if name is None:
            link.close()
            raise RowstatError(f"the board's architecture (key {info['arch_key']}) is no "
                               f"preset: pass the --preset/--config/--set it was built with")
        from ..gen.config import PRESETS
        arch = PRESETS[name]
    try:
        mapping = choose_mapping(arch, layer, objective, io_bits_per_cycle=io)
        program = compile_layer(arch, layer, ifmap, weights, bias, mapping)
    except BaseException:
        link.close()
        raise
    session = HostSession(arch, program.cmd, program.data, program.out_beats)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=program.out_beats, unit="beats", desc="board", leave=False)

    def show(s):
        bar.n = len(s.beats)
        bar.refresh()

    t0 = time.monotonic()
    try:
        drive(session, link, timeout=timeout, progress=show if bar else None)
    finally:
        link.close()
        if bar is not None:
            bar.close()
    seconds = time.monotonic() - t0
    ofmap, counters = decode_output(program, session.beats)
    stats = stats_from(arch, layer, program, counters, counters["cycles"])
    stats.update(link_seconds=round(seconds, 3), link_bytes_sent=session.sent,
                 link_bytes_received=session.bytes_received, board_errors=session.info["errors"])
    stats["model"] = model_check(arch, layer, program.mapping, stats, io_bits_per_cycle=io,
                                 ifmap=ifmap)
    return ofmap, stats


def run_on_simulated_board(arch, layer, ifmap, weights, bias=None, *, sim=None, progress=False):
    """Run ``layer`` on the board top's RTL in cocotb, through its UART pins, as
    :func:`run_on_board` does on a board. Returns (ofmap, stats) like it."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from ..gen.compiler import compile_layer, decode_output
    from ..sim.model import choose_mapping
    from ..sim.run import model_check, stats_from
    from ..sim.runner import build, run_bench
    from .board import SIM_DIVISOR
    from .uart import link_bits_per_cycle
    io = link_bits_per_cycle(SIM_DIVISOR)
    program = compile_layer(arch, layer, ifmap, weights, bias,
                            choose_mapping(arch, layer, io_bits_per_cycle=io))
    built = build(arch, "board", sim, progress=progress)
    with tempfile.TemporaryDirectory(prefix="rowstat-board-") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "data.npy", np.array(program.data, dtype=object), allow_pickle=True)
        args = {"arch": arch.to_dict(), "cmd": [int(w) for w in program.cmd],
                "data_file": str(tmp / "data.npy"), "out_beats": program.out_beats,
                "divisor": SIM_DIVISOR, "out_file": str(tmp / "out.npy"),
                "max_cycles": 20_000_000}
        report = run_bench(built, "rowstat.fpga.board_bench", args, progress=progress)
        beats = np.load(tmp / "out.npy", allow_pickle=True).tolist()
    ofmap, counters = decode_output(program, beats)
    stats = stats_from(arch, layer, program, counters, counters["cycles"])
    stats.update(link_bytes_sent=report["bytes_sent"],
                 link_bytes_received=report["bytes_received"], board_errors=report["errors"],
                 link_cycles=report["cycles"], sim_seconds=report["sim_seconds"],
                 build_seconds=built.build_seconds)
    stats["model"] = model_check(arch, layer, program.mapping, stats, io_bits_per_cycle=io,
                                 ifmap=ifmap)
    return ofmap, stats
