"""Functional model of the accelerator: executes a program (command words + data beats) exactly
as the command-set contract (rowstat.gen.program) and the hardware docstrings define it, and
produces the output beats the RTL must produce.

It sees only the ArchConfig and the two input streams, never the compiler's internals, so it is
the compiler's test oracle before the RTL exists and the RTL's debugging aid afterwards. What it
models:

* **Storage.** GLB banks (ifmap space ``[0, split)``, psum space ``[split, glb_banks)``, each
  linear), the filter buffer, the bias table, the three GIN tag tables, the GON chain table and
  the ID chain (a shift register of ``rows * (cols + 1)`` stages, decoded with
  ``rowstat.hw.array.id_chain_layout``). GLB words start as a poison pattern, and reading a
  word that was never written is an error (``strict_reads``).
* **Streamers.** ``(base, chunks, ntags, last)``: beat b is tag table entry ``b mod ntags``,
  beats packed ``glb_width // beat_bits`` to a GLB word from ``base``, final chunk ``last + 1``
  words. A beat goes to every PE whose X-bus row ID and PE col ID (enabled) equal its tag; a
  beat reaching no PE, or an inactive PE, is an error (the RTL would drop or hang).
* **PEs.** Each active PE takes the words it received in its documented orders
  (rowstat.hw.pe), runs ``sim.golden.conv1d_row`` for every ifmap row, adds its input psums
  (none; the PE below; or the psum GIN, unless the pass's psum streamer has ``chunks = 0``:
  then it starts from zero) and passes them up or out through the GON.
* **Collector.** Chain ``c`` (the chain table entry of its top PE) writes its beat ``i`` to psum
  space word ``out_base + i * nchains + c``; unused slots of a final partial beat hold poison.
* **Drain.** Bias, then ``golden.output_stage`` with the LAYER's output configuration, packed
  little-endian into dram_width-bit beats after a header beat.
* **Concurrency.** A command starts when its unit and the units of its wait mask are idle;
  commands start in order. So a command may overlap only the latest command of each other unit
  not yet waited for. The model records what every command reads and writes and raises
  :class:`HazardError` when two commands that may overlap touch the same storage, one writing.
  Without hazards, executing in program order gives the result of any legal interleaving.
* **Counters** (the COUNTERS block): macs, macs_skipped_zero, glb_reads / glb_writes (GLB word
  accesses of the ifmap and psum spaces, as rowstat.hw.glb counts them), words_in (data beats
  consumed), words_out (output beats sent before the block), passes are exact. cycles,
  pe_busy_cycles, pe_idle_cycles and stall_cycles come from an estimate (a pass takes the pass
  schedule's cycles, :func:`rowstat.gen.schedule.pass_cycles`; the other units their beats),
  not from the RTL's timing: :mod:`rowstat.sim.timing` is the model of that.
* **Stats** (``ModelResult.stats``, not hardware counters): per GIN the beats streamed
  (``filt_beats``, ``ifmap_beats``, ``psum_beats``) and the words PEs received
  (``*_words_received``, a multicast word once per receiving PE); the GON's beats and psums
  (``gon_beats``, ``gon_words``), the psums sent PE to PE (``local_psum_words``); the filter
  buffer's reads and writes.
"""

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from amaranth.lib import data
from numpy.lib.stride_tricks import sliding_window_view

from ..gen.schedule import COMMAND_START, pass_cycles
from ..gen.program import (COUNTERS, TAGS, BlockKind, Op, Target, Wait, commands,
                           counter_beats, decode_args, decode_header, header_beat, nargs,
                           unpack)
from ..hw.array import PsumFrom, PsumTo, id_chain_layout, id_chain_stages
from .golden import conv1d_row, output_stage, wrap

__all__ = ["ProgramModel", "ModelResult", "ModelError", "HazardError", "run_program"]


class ModelError(RuntimeError):
    """A program that breaks the command-set contract (the RTL would hang or misbehave)."""


class HazardError(ModelError):
    """Two commands that may run at the same time touch the same storage, one of them writing."""


@dataclass
class ModelResult:
    beats: list                                     # output beats, headers included
    counters: list = field(default_factory=list)    # one dict per COUNTERS block
    stats: dict = field(default_factory=dict)


def _fields(words, bits, nfields):
    """GLB words (ints) -> signed array (len(words), nfields) of ``bits``-bit fields."""
    n = len(words)
    mask = (1 << bits) - 1
    if bits * nfields <= 64:
        arr = np.array(words, dtype=np.uint64).reshape(n, 1)
        shifts = np.arange(nfields, dtype=np.uint64) * np.uint64(bits)
        vals = ((arr >> shifts) & np.uint64(mask)).astype(np.int64)
    else:
        vals = np.array([[(w >> (j * bits)) & mask for j in range(nfields)] for w in words],
                        dtype=np.int64).reshape(n, nfields)
    return np.where(vals >= 1 << (bits - 1), vals - (1 << bits), vals)


def _pack_word(values, bits):
    mask = (1 << bits) - 1
    return sum((int(v) & mask) << (j * bits) for j, v in enumerate(values))


class _Poison:
    """Deterministic garbage for never-written GLB words and undefined beat slots."""

    @staticmethod
    def word(addr, width):
        v = (addr * 0x9E3779B97F4A7C15 + 0x5DEECE66D) & ((1 << 64) - 1)
        out = 0
        for k in range(0, width, 64):
            out |= v << k
            v = (v * 0x5851F42D4C957F2D + 0x14057B7EF767814F) & ((1 << 64) - 1)
        return out & ((1 << width) - 1)


class ProgramModel:
    """The accelerator's functional model for one ArchConfig. State persists across
    :meth:`run` calls, like the hardware's between programs."""

    def __init__(self, arch, *, strict_reads=True, check_hazards=True):
        self.arch = arch
        self.strict_reads = strict_reads
        self.check_hazards = check_hazards
        a = arch
        D = a.glb_bank_depth
        self.glb = [_Poison.word(i, a.glb_width) for i in range(a.glb_banks * D)]
        self.glb_written = bytearray(a.glb_banks * D)
        self.fbuf = [_Poison.word(i + 7, a.glb_width) for i in range(a.glb_filter_banks * D)]
        self.fbuf_written = bytearray(a.glb_filter_banks * D)
        self.bias = [None] * a.bias_depth
        # As deep as the RTL's tables, so that the model catches a program that overflows them.
        self.tags = {Target.IFMAP_TAGS: [None] * a.tag_depth,
                     Target.FILTER_TAGS: [None] * a.tag_depth,
                     Target.PSUM_TAGS: [None] * a.tag_depth}
        self.chains = [None] * (a.rows * a.cols)
        self.stages = id_chain_stages(a.rows, a.cols)
        self.ids = [0] * len(self.stages)
        self.ids_loaded = 0
        self.layer = None                   # LAYER arguments
        self.counters = {name: 0 for name in COUNTERS}
        self.stats = defaultdict(int)
        self._id_layout = id_chain_layout(a)
        self._receivers = None
        # concurrency and timing
        self._running = {}                  # unit -> (command index, name, footprint)
        self._free = {Wait.LOAD: 0, Wait.PASS: 0, Wait.DRAIN: 0}
        self._last_start = 0

    # --- streams -------------------------------------------------------------------------------
    def run(self, cmd, data_beats):
        """Execute command words ``cmd`` with data beats ``data_beats``; return a ModelResult."""
        a = self.arch
        self._data = [int(v) for v in data_beats]
        self._dpos = 0
        self._out = []
        dumps = []
        cmd = [int(v) for v in cmd]
        for index, (pos, opcode, wait, words) in enumerate(commands(cmd)):
            head = cmd[pos]
            if not 0 <= head < 1 << 32:
                raise ModelError(f"command word {pos} = {head:#x} is not a 32-bit word")
            try:
                op = Op(opcode)
            except ValueError:
                raise ModelError(f"command word {pos}: unknown opcode {opcode}") from None
            n, want = decode_header(head)[2], nargs(a, op)
            if n != want:
                raise ModelError(f"command word {pos} ({op.name}): nargs={n}, the layout "
                                 f"needs {want}")
            if len(words) < n:
                raise ModelError(f"command word {pos} ({op.name}): the stream ends inside its "
                                 f"arguments")
            args = decode_args(a, op, words)
            self._where = f"command {index} ({op.name}, word {pos})"
            fp, dur = getattr(self, "_op_" + op.name.lower())(args)
            if op == Op.COUNTERS:
                dumps.append(fp.pop())
            self._schedule(index, op, Wait(wait), fp, dur)
        if self._dpos != len(self._data):
            raise ModelError(f"{len(self._data) - self._dpos} data beat(s) left over after the "
                             f"last command")
        stats = dict(self.stats)
        stats["estimated_cycles"] = max([self._last_start] + list(self._free.values()))
        return ModelResult(self._out, dumps, stats)

    def _take(self, count, width, what):
        if self._dpos + count > len(self._data):
            raise ModelError(f"{self._where}: needs {count} data beats, only "
                             f"{len(self._data) - self._dpos} left")
        beats = self._data[self._dpos:self._dpos + count]
        self._dpos += count
        limit = 1 << self.arch.dram_width
        for i, v in enumerate(beats):
            if not 0 <= v < limit:
                raise ModelError(f"{self._where}: data beat {v:#x} is not a "
                                 f"{self.arch.dram_width}-bit value")
            if v >> width:
                raise ModelError(f"{self._where}: data beat {i} = {v:#x} has bits above the "
                                 f"{width}-bit {what} entry")
        self.counters["words_in"] += count
        return beats

    # --- concurrency ---------------------------------------------------------------------------
    _UNIT = {Op.LOAD: Wait.LOAD, Op.PASS: Wait.PASS, Op.DRAIN: Wait.DRAIN}

    def _schedule(self, index, op, wait, footprint, duration):
        unit = self._UNIT.get(op)
        if op == Op.COUNTERS:
            wait = Wait.ALL
        if self.check_hazards:
            for u, (j, name, fp) in self._running.items():
                if u == unit or u & wait:
                    continue
                clash = _clash(footprint, fp)
                if clash:
                    raise HazardError(
                        f"{self._where} may run while command {j} ({name}) is still running "
                        f"and both touch {clash} (one writes): the wait mask needs "
                        f"{Wait(u).name}")
        self._running = {u: v for u, v in self._running.items() if not (u & wait) and u != unit}
        if unit is not None:
            self._running[unit] = (index, op.name, footprint)
        # timing estimate: in-order start, unit and wait-mask units idle
        start = self._last_start
        for u in (Wait.LOAD, Wait.PASS, Wait.DRAIN):
            if u == unit or u & wait:
                start = max(start, self._free[u])
        self._last_start = start
        if unit is not None:
            self._free[unit] = start + duration
        if op == Op.COUNTERS:
            self._counters_time = start

    # --- storage access ------------------------------------------------------------------------
    def _space(self, name):
        a = self.arch
        if self.layer is None:
            raise ModelError(f"{self._where}: the GLB split is not set (no LAYER command yet)")
        split = self.layer["split"]
        if name == "ifmap":
            return 0, split * a.glb_bank_depth
        return split * a.glb_bank_depth, (a.glb_banks - split) * a.glb_bank_depth

    def _glb_read(self, space, base, count, count_access=True):
        if space == "filter":
            size, store, written, offset = len(self.fbuf), self.fbuf, self.fbuf_written, 0
        else:
            offset, size = self._space(space)
            store, written = self.glb, self.glb_written
        if base + count > size:
            raise ModelError(f"{self._where}: reads {space} words {base}..{base + count - 1}, "
                             f"the {space} space has {size}")
        if self.strict_reads:
            for a in range(base, base + count):
                if not written[offset + a]:
                    raise ModelError(f"{self._where}: reads {space} word {a}, never written")
        if space == "filter":
            self.stats["filter_buffer_reads"] += count
        elif count_access:
            self.counters["glb_reads"] += count
        return store[offset + base:offset + base + count]

    def _glb_write(self, space, addr, value):
        if space == "filter":
            if addr >= len(self.fbuf):
                raise ModelError(f"{self._where}: writes filter buffer word {addr}, the buffer "
                                 f"has {len(self.fbuf)}")
            self.fbuf[addr] = value
            self.fbuf_written[addr] = 1
            self.stats["filter_buffer_writes"] += 1
            return
        offset, size = self._space(space)
        if addr >= size:
            raise ModelError(f"{self._where}: writes {space} word {addr}, the {space} space has "
                             f"{size}")
        self.glb[offset + addr] = value
        self.glb_written[offset + addr] = 1
        self.counters["glb_writes"] += 1

    # --- commands ------------------------------------------------------------------------------
    def _op_layer(self, args):
        a = self.arch
        if args["split"] > a.glb_banks:
            raise ModelError(f"{self._where}: split={args['split']} exceeds glb_banks")
        self.layer = args
        return [("config", 0, 1, True)], 0

    def _op_fence(self, args):
        return [], 0

    def _op_load(self, args):
        a = self.arch
        target, addr, count = args["target"], args["addr"], args["count"]
        try:
            target = Target(target)
        except ValueError:
            raise ModelError(f"{self._where}: unknown load target {target}") from None
        fp = [("config", 0, 1, False)]
        if target in (Target.IFMAP, Target.FILTER):
            beats = self._take(count, a.glb_width, "GLB word")
            space = "ifmap" if target == Target.IFMAP else "filter"
            for i, v in enumerate(beats):
                self._glb_write(space, addr + i, v)
            fp.append((space, addr, addr + count, True))
        elif target == Target.BIAS:
            beats = self._take(count, a.psum_width, "bias")
            if addr + count > len(self.bias):
                raise ModelError(f"{self._where}: bias entries {addr}..{addr + count - 1} "
                                 f"exceed the table ({len(self.bias)})")
            for i, v in enumerate(beats):
                self.bias[addr + i] = int(wrap(v, a.psum_width))
            fp.append(("bias", addr, addr + count, True))
        elif target == Target.IDS:
            beats = self._take(count, self._id_layout.size, "ID chain")
            for v in beats:
                self.ids = [v] + self.ids[:-1]
            self.ids_loaded += count
            self._receivers = None
            fp.append(("ids", 0, 1, True))
        elif target == Target.CHAINS:
            beats = self._take(count, TAGS, "chain table")
            if addr + count > len(self.chains):
                raise ModelError(f"{self._where}: chain table entries {addr}..{addr + count - 1} "
                                 f"exceed rows * cols = {len(self.chains)}")
            self.chains[addr:addr + count] = beats
            fp.append(("chains", addr, addr + count, True))
        else:
            col_w = a.ifmap_col_id_width if target == Target.IFMAP_TAGS else a.col_id_width
            beats = self._take(count, a.row_id_width + col_w, "tag")
            if addr + count > a.tag_depth:
                raise ModelError(f"{self._where}: tag entries {addr}..{addr + count - 1} exceed "
                                 f"the table's {a.tag_depth}")
            table = self.tags[target]
            mask = (1 << a.row_id_width) - 1
            for i, v in enumerate(beats):
                table[addr + i] = (v & mask, v >> a.row_id_width)
            self.stats[f"max_{target.name.lower()}"] = max(
                self.stats[f"max_{target.name.lower()}"], addr + count)
            fp.append((target.name.lower(), addr, addr + count, True))
        return fp, count

    def _decode_ids(self):
        """(xbus records by row, PE records by (row, col)) from the ID chain."""
        xl, pl = self._id_layout["xbus"].shape, self._id_layout["pe"].shape
        xbus, pes = {}, {}
        for stage, word in zip(self.stages, self.ids):
            if stage[0] == "xbus":
                xbus[stage[1]] = unpack(xl, word)
            else:
                pes[stage[1:]] = unpack(pl, word)
        return xbus, pes

    def _receivers_for(self):
        """{gin: {(row tag, col tag): [PE positions]}} and the PE records."""
        if self._receivers is None:
            xbus, pes = self._decode_ids()
            recv = {}
            for gin in ("filt", "ifmap", "psum"):
                table = defaultdict(list)
                for (row, col), rec in pes.items():
                    x = xbus[row]
                    if x[gin + "_en"] and rec[gin + "_en"]:
                        table[(x[gin + "_id"], rec[gin + "_id"])].append((row, col))
                recv[gin] = table
            self._receivers = (recv, pes)
        return self._receivers

    def _stream(self, gin, args, space, tag_target, wpb, bits, per_word):
        """Run one streamer: ({PE: words received}, GLB word range read)."""
        a = self.arch
        base, chunks, ntags, last = args["base"], args["chunks"], args["ntags"], args["last"]
        if chunks == 0:
            return {}, None, []
        if ntags == 0:
            raise ModelError(f"{self._where}: {gin} streamer with chunks={chunks} and ntags=0")
        if last >= wpb:
            raise ModelError(f"{self._where}: {gin} streamer last={last}, a beat has {wpb} words")
        if ntags > len(self.tags[tag_target]):
            raise ModelError(f"{self._where}: {gin} streamer ntags={ntags} exceeds the tag "
                             f"table's {len(self.tags[tag_target])} entries")
        nbeats = chunks * ntags
        nwords = -(-nbeats // per_word)
        words = self._glb_read(space, base, nwords)
        beats = _fields(words, bits, per_word * wpb).reshape(-1, wpb)[:nbeats]
        beats = beats.reshape(chunks, ntags, wpb)
        table = self.tags[tag_target]
        tags = []
        for i in range(ntags):
            if table[i] is None:
                raise ModelError(f"{self._where}: {gin} tag table entry {i} was never loaded")
            tags.append(table[i])
        recv, pes = self._receivers_for()
        entries = defaultdict(list)
        for i, tag in enumerate(tags):
            who = recv[gin].get(tag, [])
            if not who:
                raise ModelError(f"{self._where}: {gin} beats tagged {tag} (entry {i}) reach "
                                 f"no PE")
            for pe in who:
                if not pes[pe]["active"]:
                    raise ModelError(f"{self._where}: {gin} beats tagged {tag} reach PE {pe}, "
                                     f"which is not active (the GIN would stall)")
                entries[pe].append(i)
        valid = np.ones((chunks, wpb), dtype=bool)
        valid[-1, last + 1:] = False
        got = {}
        for pe, idx in entries.items():
            sel = beats[:, idx, :]
            got[pe] = sel[np.broadcast_to(valid[:, None, :], sel.shape)]
            self.stats[f"{gin}_words_received"] += len(got[pe])
        self.stats[f"{gin}_beats"] += nbeats
        return got, (space, base, base + nwords), [(tag_target.name.lower(), 0, ntags)]

    def _op_pass(self, args):
        a = self.arch
        if self.layer is None:
            raise ModelError(f"{self._where}: PASS before LAYER")
        cfg = self.layer["pe"]
        p, q, S, F, U, nr = (cfg[k] for k in ("p", "q", "S", "F", "U", "n_rows"))
        if min(p, q, S, F, U, nr) < 1:
            raise ModelError(f"{self._where}: PE configuration has a zero count: {cfg}")
        if p > a.psum_spad_depth or q * S > a.ifmap_spad_depth or \
                p * q * S > a.filter_spad_depth:
            raise ModelError(f"{self._where}: p={p}, q={q}, S={S} do not fit the PE spads")
        Wp = U * (F - 1) + S
        geo = a.stream_geometry
        fp = [("config", 0, 1, False), ("ids", 0, 1, False)]
        received = {}
        for gin, space, target in (("filt", "filter", Target.FILTER_TAGS),
                                   ("ifmap", "ifmap", Target.IFMAP_TAGS),
                                   ("psum", "psum", Target.PSUM_TAGS)):
            got, rng, tfp = self._stream(gin, args[gin], space, target, *geo[space])
            received[gin] = got
            if rng:
                fp.append(rng + (False,))
                fp += [t + (False,) for t in tfp]
        psum_start = args["psum"]["chunks"] == 0
        recv, pes = self._receivers_for()
        active = sorted(pos for pos, rec in pes.items() if rec["active"])
        if not active:
            raise ModelError(f"{self._where}: no PE is active (ID chain not loaded?)")
        outs = {}
        nchains = args["nchains"]
        wpb_p, P = geo["psum"][0], a.psum_width
        tops = {}
        macs = skipped = 0
        for pos in active:                                  # row-major: the PE below first
            rec = pes[pos]
            fw = received["filt"].get(pos)
            iw = received["ifmap"].get(pos)
            if fw is None or len(fw) != p * q * S:
                raise ModelError(f"{self._where}: PE {pos} received "
                                 f"{0 if fw is None else len(fw)} filter words, needs "
                                 f"p*q*S = {p * q * S}")
            if iw is None or len(iw) != nr * Wp * q:
                raise ModelError(f"{self._where}: PE {pos} received "
                                 f"{0 if iw is None else len(iw)} ifmap words, needs "
                                 f"n_rows*(U*(F-1)+S)*q = {nr * Wp * q}")
            w = np.asarray(fw).reshape(S, q, p).transpose(2, 1, 0)
            x = np.asarray(iw).reshape(nr, Wp, q).transpose(0, 2, 1)
            src = PsumFrom(rec["psum_from"])
            pin = received["psum"].get(pos)
            if pin is not None and (src != PsumFrom.GIN):
                raise ModelError(f"{self._where}: PE {pos} receives input psums but takes them "
                                 f"from {src.name}")
            if src == PsumFrom.GIN and not psum_start:
                if pin is None or len(pin) != nr * F * p:
                    raise ModelError(f"{self._where}: PE {pos} received "
                                     f"{0 if pin is None else len(pin)} input psums, needs "
                                     f"n_rows*F*p = {nr * F * p}")
                psum_in = np.asarray(pin).reshape(nr, F, p).transpose(0, 2, 1)
            elif src == PsumFrom.BELOW:
                below = (pos[0] - 1, pos[1])
                if below not in outs or PsumTo(pes[below]["psum_to"]) != PsumTo.ABOVE:
                    raise ModelError(f"{self._where}: PE {pos} takes psums from below, but PE "
                                     f"{below} is not an active PE sending them up")
                psum_in = outs[below]
            else:
                psum_in = None
            res = np.stack([conv1d_row(w, x[rr], F, U, P,
                                       None if psum_in is None else psum_in[rr])
                            for rr in range(nr)])
            outs[pos] = res
            win = sliding_window_view(x, S, axis=2)[:, :, ::U][:, :, :F]
            zeros = int(np.count_nonzero(win == 0))
            macs += p * (win.size - zeros)
            skipped += p * zeros
            dest = PsumTo(rec["psum_to"])
            self.stats["gon_words" if dest == PsumTo.GON else "local_psum_words"] += res.size
            if dest == PsumTo.ABOVE:
                above = (pos[0] + 1, pos[1])
                if above not in pes or not pes[above]["active"] or \
                        PsumFrom(pes[above]["psum_from"]) != PsumFrom.BELOW:
                    raise ModelError(f"{self._where}: PE {pos} sends psums up, but PE {above} "
                                     f"does not take them")
            else:
                chain = self.chains[pos[0] * a.cols + pos[1]]
                if chain is None or chain >= nchains:
                    raise ModelError(f"{self._where}: chain table entry of top PE {pos} is "
                                     f"{chain}, the pass has nchains={nchains}")
                if chain in tops:
                    raise ModelError(f"{self._where}: PEs {tops[chain]} and {pos} are both "
                                     f"chain {chain}")
                tops[chain] = pos
        # collector
        out_base = args["out_base"]
        written = []
        for chain, pos in sorted(tops.items()):
            words = outs[pos].transpose(0, 2, 1).reshape(-1)      # (row, f, k)
            for i in range(-(-len(words) // wpb_p)):
                beat = list(words[i * wpb_p:(i + 1) * wpb_p])
                for slot in range(len(beat), wpb_p):             # undefined slots
                    beat.append(_Poison.word(out_base + i * 31 + slot, P))
                addr = out_base + i * nchains + chain
                self._glb_write("psum", addr, _pack_word(beat, P))
                self.stats["gon_beats"] += 1
                written.append(addr)
        if written:
            fp.append(("psum", min(written), max(written) + 1, True))
        fp.append(("chains", 0, len(self.chains), False))
        self.counters["macs"] += macs
        self.counters["macs_skipped_zero"] += skipped
        self.counters["passes"] += 1
        cycles = nr * F * p * q * S
        busy = len(active) * cycles
        self.counters["pe_busy_cycles"] += busy
        f, i, ps = args["filt"], args["ifmap"], args["psum"]
        # the pass schedule the timing model and the mapper use (rowstat.gen.schedule)
        dur = COMMAND_START + pass_cycles(
            p=p, q=q, S=S, F=F, rows=nr, wpb_ifmap=a.stream_geometry["ifmap"][0],
            wpb_psum=a.psums_per_beat, filter_chunks=f["chunks"], filter_ntags=f["ntags"],
            filter_last=f["last"], ifmap_chunks=i["chunks"], ifmap_ntags=i["ntags"],
            psum_chunks=ps["chunks"], psum_ntags=ps["ntags"], nchains=nchains)
        self.counters["pe_idle_cycles"] += a.rows * a.cols * dur - busy
        self.stats["passes"] += 1
        return fp, dur

    def _op_drain(self, args):
        a = self.arch
        if self.layer is None:
            raise ModelError(f"{self._where}: DRAIN before LAYER")
        base, chunks, nchains, last = args["base"], args["chunks"], args["nchains"], args["last"]
        p, cpt, bias_base = args["p"], args["chains_per_tc"], args["bias_base"]
        wpb, P = a.psums_per_beat, a.psum_width
        if chunks == 0 or nchains == 0 or p == 0 or cpt == 0:
            raise ModelError(f"{self._where}: chunks, nchains, p and chains_per_tc must be "
                             f"non-zero: {args}")
        if last >= wpb:
            raise ModelError(f"{self._where}: last={last}, a psum word has {wpb} psums")
        words = self._glb_read("psum", base, chunks * nchains)
        vals = _fields(words, P, wpb)                             # (chunks*nchains, wpb)
        widx = np.arange(chunks * nchains)
        chunk, chain = widx // nchains, widx % nchains
        slot = np.arange(wpb)
        valid = (chunk[:, None] < chunks - 1) | (slot[None, :] <= last)
        s = chunk[:, None] * wpb + slot[None, :]
        bidx = bias_base + (chain[:, None] // cpt) * p + s % p
        psums, bidx = vals[valid], bidx[valid]
        if bidx.size and bidx.max() >= len(self.bias):
            raise ModelError(f"{self._where}: bias entry {int(bidx.max())} beyond the table")
        bias = []
        for i in bidx.tolist():
            if self.bias[i] is None:
                raise ModelError(f"{self._where}: bias entry {i} was never loaded")
            bias.append(self.bias[i])
        out_cfg = self.layer["out"]
        shift = out_cfg["shift"] if out_cfg["shift_en"] else None
        v = wrap(psums + np.asarray(bias, dtype=np.int64), P)
        v = output_stage(v, a.act_width, shift, bool(out_cfg["relu"]))
        bits = a.act_width if out_cfg["shift_en"] else P
        per = a.out_words_per_beat(bool(out_cfg["shift_en"]))
        nbeats = -(-len(v) // per)
        if nbeats != args["beats"]:
            raise ModelError(f"{self._where}: the block holds {len(v)} values = {nbeats} beats, "
                             f"the command says beats={args['beats']}")
        self._out.append(header_beat(BlockKind.OFMAP, nbeats))
        vl = v.tolist()
        for i in range(nbeats):
            self._out.append(_pack_word(vl[i * per:(i + 1) * per], bits))
        self.counters["words_out"] += 1 + nbeats
        used = sorted(set(bidx.tolist()))
        fp = [("config", 0, 1, False), ("psum", base, base + chunks * nchains, False)]
        if used:
            fp.append(("bias", used[0], used[-1] + 1, False))
        return fp, max(chunks * nchains, nbeats) + 4

    def _op_counters(self, args):
        a = self.arch
        self.counters["cycles"] = max([self._last_start] + list(self._free.values()))
        cb = counter_beats(a)
        self._out.append(header_beat(BlockKind.COUNTERS, len(COUNTERS) * cb))
        mask = (1 << a.counter_width) - 1
        dump = {}
        for name in COUNTERS:
            value = self.counters[name] & mask
            dump[name] = value
            for j in range(cb):
                self._out.append((value >> (j * a.dram_width)) & ((1 << a.dram_width) - 1))
        self.counters["words_out"] += 1 + len(COUNTERS) * cb
        if args.get("clear"):
            self.counters = {name: 0 for name in COUNTERS}
        return [dump], 1 + len(COUNTERS) * cb


def _clash(fa, fb):
    """A description of the first storage both footprints touch with a write, or None."""
    for ra, lo_a, hi_a, wa in fa:
        for rb, lo_b, hi_b, wb in fb:
            if ra == rb and (wa or wb) and lo_a < hi_b and lo_b < hi_a:
                lo, hi = max(lo_a, lo_b), min(hi_a, hi_b)
                return f"{ra} {lo}..{hi - 1}"
    return None


def run_program(arch, cmd, data_beats, **kwargs):
    """Execute a program on a fresh model: a ModelResult (beats, counters, stats)."""
    return ProgramModel(arch, **kwargs).run(cmd, data_beats)
