"""One media engine on one event loop: sockets, ticker, RTCP and the send loop (shell).

Used twice: in the switch's own process when ``MediaConfig.workers == 0``, and inside each
worker process (``switch.media.worker``). It owns

* a :class:`~switch.media.engine.MediaEngine` sized for its port range,
* one :class:`~switch.media.endpoint.RtpEndpoint` per channel (ports from
  ``ports.RtpPortAllocator``); the RTP sockets are not read by the event loop but drained
  in batches by :class:`~switch.media.batchio.BatchIO` (one epoll set, ``recvmmsg`` in the
  C extension ``_rtpio`` or a Python fallback) ``rx_drains_per_tick`` times per period,
  the last one at the start of the tick, and handed to ``MediaEngine.receive_batch``; each
  tick's packets leave through one ``BatchIO.send`` call,
* a :class:`~switch.media.ticker.Ticker` that calls :meth:`EngineHost._on_tick` on absolute
  20 ms deadlines,
* one ``rtcp.RtcpSession`` per channel; reports are checked for one fiftieth of the
  channels per tick (each channel once a second) so RTCP never costs a walk over all
  channels, and sent to the peer's RTP port + 1 (RFC 3550 section 11),

and it reports upward through one callback, ``on_event(kind, channel_id, payload)``:
``digit`` (a ``DigitEvent``), ``play_done`` / ``tone_done`` (a ``FinishReason`` value),
``dtmf_sent``, ``rtp_timeout`` (no RTP for ``inactivity_timeout_s``; payload: the last
arrival time or None).

"Added delay" (what the benchmark reports): for every packet of a tick, the time from the
tick's deadline to the end of the send call that transmitted it (an upper bound for each
packet of that tick), i.e. scheduling lateness plus processing, on top of the jitter-buffer
playout delay. Kept as a 0.1 ms histogram.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dsp.tones import PROFILES
from switch.media.batchio import BatchIO
from switch.media.config import MediaConfig
from switch.media.endpoint import RtpEndpoint, open_endpoint
from switch.media.engine import PACKET_BYTES, MediaEngine
from switch.media.errors import MediaError
from switch.media.ports import RtpPortAllocator
from switch.media.prompts import PromptStore
from switch.media.recorder import CallRecorder, RecordingMode
from switch.media.rtcp import RtcpError, RtcpSession
from switch.media.ticker import Ticker

logger = logging.getLogger(__name__)

__all__ = ["DELAY_BINS", "EngineHost", "tune_process"]

DELAY_BINS = 1000  # 0.1 ms bins, the last one is ">= 99.9 ms"
_RTCP_SPREAD = 50  # ticks over which all channels are checked for a due RTCP report

EventSink = Callable[[str, int, Any], None]


class EngineHost:
    """Runs a media engine for the channels of one port range on the current loop.

    Args:
        config: media configuration.
        port_range: (first, last) port of this host's range.
        on_event: receives ``(kind, channel_id, payload)`` for digits and completions.
        capacity: engine slots (default: ``config.capacity()``, at most the range's pairs).
        seed: SSRC/RTCP randomness seed (None = from the OS).
    """

    def __init__(self, config: MediaConfig, port_range: tuple[int, int], on_event: EventSink,
                 *, capacity: int | None = None, seed: int | None = None) -> None:
        self.config = config
        self.port_range = port_range
        pairs = (port_range[1] - port_range[0] + 1) // 2
        self.capacity = capacity or max(1, min(pairs, config.capacity()))
        self.engine = MediaEngine(self.capacity, jitter_min_ms=config.jitter_min_ms,
                                  jitter_max_ms=config.jitter_max_ms, seed=seed)
        self.ports = RtpPortAllocator(port_range[0], port_range[1])
        self.prompts = PromptStore(config.prompt_cache_dir)
        self._on_event = on_event
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ticker: Ticker | None = None
        self._slot_of: dict[int, int] = {}
        self._cid_of: list[int | None] = [None] * self.capacity
        self._ep: list[RtpEndpoint | None] = [None] * self.capacity
        self._rtcp: list[RtcpSession | None] = [None] * self.capacity
        self._recorders: dict[int, CallRecorder] = {}
        self._opened_at = [0.0] * self.capacity
        self._timed_out = [False] * self.capacity
        self.delay_hist = np.zeros(DELAY_BINS, dtype=np.int64)
        self.tick_cpu_s = 0.0  # process CPU time spent inside ticks
        self.tick_wall_s = 0.0  # wall time spent inside ticks
        self.tick_wall_max_s = 0.0
        self._seed = seed
        self.io = BatchIO(self.capacity, config.rtp_io)
        # CPU seconds in: receive (drains), engine tick, send -- where a tick's time goes
        self.cpu_split = [0.0, 0.0, 0.0]
        self._mid_handle: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, t0: float | None = None) -> float:
        """Start ticking on the running loop; returns the tick origin ``t0``."""
        self._loop = asyncio.get_running_loop()
        if self.io.impl == "c":
            logger.info("media RTP I/O: batched, C extension (recvmmsg/sendto without the GIL)")
        else:
            logger.warning("media RTP I/O: batched, pure-Python fallback (rtp_io=%r; the C "
                           "extension %s)", self.config.rtp_io,
                           "was not requested" if self.config.rtp_io == "python"
                           else "is not built")
        self.ticker = Ticker(self._loop, self._on_tick, period_s=self.config.ptime_ms / 1000,
                             late_threshold_s=self.config.late_tick_ms / 1000,
                             max_catchup_s=self.config.max_catchup_ms / 1000,
                             clock=time.monotonic)
        self.ticker.start(t0)
        return self.ticker.t0

    def stop(self) -> None:
        """Stop ticking, close every channel and recorder."""
        if self.ticker is not None:
            self.ticker.stop()
        if self._mid_handle is not None:
            self._mid_handle.cancel()
            self._mid_handle = None
        for cid in list(self._slot_of):
            self.close(cid)
        self.io.close()

    # ------------------------------------------------------------------ channels

    async def open(self, cid: int, *, codec: str = "PCMU",
                   remote: tuple[str, int] | None = None, dtmf_pt: int | None = None,
                   inband: bool = True, latch: bool | None = None) -> tuple[str, int]:
        """Open channel ``cid``: a slot plus an RTP/RTCP port pair; returns (host, port)."""
        if cid in self._slot_of:
            raise ValueError(f"channel {cid} already open")
        loop = self._loop or asyncio.get_running_loop()
        cfg = self.config
        slot = self.engine.open(
            codec=codec, remote=remote, latch=cfg.latch if latch is None else latch,
            dtmf_pt=cfg.dtmf_payload_type if dtmf_pt is None else dtmf_pt, inband=inband)
        try:
            ep = await open_endpoint(loop, self.ports, slot, self.engine.receive_rtp,
                                     self.engine.receive_rtcp, host=cfg.bind_host, batch=True)
        except BaseException:
            self.engine.close(slot)
            raise
        assert ep.rtp_socket is not None
        self.io.register(slot, ep.rtp_socket)
        self._slot_of[cid] = slot
        self._cid_of[slot] = cid
        self._ep[slot] = ep
        self._opened_at[slot] = time.monotonic()
        self._timed_out[slot] = False
        ssrc = self.engine.tx_ssrc(slot)
        self._rtcp[slot] = RtcpSession(ssrc, f"softswitch-{ssrc:08x}",
                                       min_interval_s=cfg.rtcp_interval_s)
        return ep.local_addr

    def slot(self, cid: int) -> int:
        """Engine slot of channel ``cid`` (KeyError if unknown)."""
        return self._slot_of[cid]

    def close(self, cid: int) -> None:
        """Close channel ``cid``: send an RTCP BYE, stop recording, free slot and ports."""
        slot = self._slot_of.pop(cid, None)
        if slot is None:
            return
        ep, session = self._ep[slot], self._rtcp[slot]
        remote = self.engine.channel(slot).remote
        if ep is not None and session is not None and remote is not None:
            now = time.monotonic()
            ep.send_rtcp(session.build_report(now, time.time(), self.engine.rtp_source(slot),
                                              bye=True), (remote[0], remote[1] + 1))
        self.record_stop(cid)
        self.engine.close(slot)
        self.io.unregister(slot)
        if ep is not None:
            ep.close()
        self._ep[slot] = self._rtcp[slot] = self._cid_of[slot] = None

    def channels(self) -> list[int]:
        """Open channel ids."""
        return list(self._slot_of)

    # ------------------------------------------------------------------ commands

    def record_start(self, cid: int, path: str, mode: str = "stereo") -> None:
        """Record channel ``cid`` (rx left, tx right in stereo) into ``path`` (WAV)."""
        self.record_stop(cid)
        recorder = CallRecorder(path, RecordingMode(mode))
        self._recorders[cid] = recorder
        self.engine.record(self.slot(cid), recorder)

    def record_pause(self, cid: int, paused: bool) -> None:
        """Pause (True) or resume (False) the recording of ``cid``."""
        recorder = self._recorders[cid]
        if paused:
            recorder.pause()
        else:
            recorder.resume()

    def record_stop(self, cid: int) -> str | None:
        """Stop recording ``cid``; returns the file path (None when not recording)."""
        recorder = self._recorders.pop(cid, None)
        if recorder is None:
            return None
        slot = self._slot_of.get(cid)
        if slot is not None:
            self.engine.record(slot, None)
        recorder.close()
        return recorder.path

    def resolve_prompts(self, items: list[Any]) -> list[np.ndarray]:
        """Turn prompt names/paths into PCM (cached by ``PromptStore``); arrays pass through."""
        return [self.prompts.get(item) if isinstance(item, (str, Path)) else
                np.asarray(item, dtype=np.int16) for item in items]

    def stats(self, cid: int) -> dict[str, Any]:
        """Per-channel statistics plus RTCP-derived figures from the peer's reports."""
        slot = self.slot(cid)
        st = self.engine.stats(slot)
        out = {name: getattr(st, name) for name in st.__slots__}
        session = self._rtcp[slot]
        if session is not None:
            out["rtt_ms"] = session.rtt_ms
            out["remote_fraction_lost"] = session.remote_fraction_lost
            out["remote_jitter_ms"] = session.remote_jitter_ms
        ep = self._ep[slot]
        out["socket_errors"] = ep.socket_errors if ep is not None else 0
        return out

    def health(self) -> dict[str, Any]:
        """Engine and ticker totals plus the added-delay histogram summary."""
        out: dict[str, Any] = dict(self.engine.totals())
        if self.ticker is not None:
            out.update(self.ticker.stats())
        out["tick_cpu_s"] = self.tick_cpu_s
        out["tick_wall_s"] = self.tick_wall_s
        out["tick_wall_max_ms"] = self.tick_wall_max_s * 1000.0
        out["delay_hist"] = self.delay_hist.tolist()
        out["rtp_io"] = self.io.impl
        out["cpu_rx_s"], out["cpu_engine_s"], out["cpu_tx_s"] = self.cpu_split
        out["rx_errors"] = self.io.rx_errors
        return out

    async def execute(self, op: str, args: tuple[Any, ...]) -> Any:
        """Run one control operation by name (the service and the worker pipe use this).

        Raises:
            MediaError: unknown operation; KeyError for an unknown channel id; ValueError
                for invalid arguments (engine rules).
        """
        if op == "open":
            return await self.open(*args[:1], **args[1])
        handler = _OPS.get(op)
        if handler is None:
            raise MediaError(f"unknown media operation {op!r}")
        return handler(self, *args)

    # ------------------------------------------------------------------ the tick

    def _on_tick(self, deadline: float, now: float) -> None:
        cpu0 = time.process_time()
        wall0 = time.monotonic()
        engine = self.engine
        self._drain()
        cpu1 = time.process_time()
        out = engine.tick(now)
        cpu2 = time.process_time()
        self._send_all(out.slots, out.packets)
        cpu3 = time.process_time()
        self.cpu_split[0] += cpu1 - cpu0
        self.cpu_split[1] += cpu2 - cpu1
        self.cpu_split[2] += cpu3 - cpu2
        chans = engine._chans
        eps = self._ep
        for slot, data in out.extra:
            ep, ch = eps[slot], chans[slot]
            if ep is not None and ch is not None and ch.remote is not None:
                ep.send(data, ch.remote)
        done = time.monotonic()
        if out.slots.size:
            delay_bin = min(int((done - deadline) * 10000.0), DELAY_BINS - 1)
            self.delay_hist[max(delay_bin, 0)] += out.slots.size
        self._rtcp_tick(done)
        for kind, slot, payload in out.events:
            self._dispatch(kind, slot, payload, done)
        self.tick_cpu_s += time.process_time() - cpu0
        busy = time.monotonic() - wall0
        self.tick_wall_s += busy
        self.tick_wall_max_s = max(self.tick_wall_max_s, busy)
        self._arm_drain(deadline, 1)

    def _arm_drain(self, deadline: float, k: int) -> None:
        """Drain the sockets ``rx_drains_per_tick - 1`` more times between ticks, so the tick
        itself only takes in the packets of its last slice of the period: the tick's
        latency is what the peers hear, the drains between ticks are off that path."""
        n = self.config.rx_drains_per_tick
        if k < n and self._loop is not None and self.ticker is not None and \
                self.ticker.running:
            self._mid_handle = self._loop.call_at(
                deadline + k * self.ticker.period_s / n, self._mid_drain, deadline, k)

    def _mid_drain(self, deadline: float, k: int) -> None:
        self._mid_handle = None
        cpu0 = time.process_time()
        self._drain()
        used = time.process_time() - cpu0
        self.tick_cpu_s += used
        self.cpu_split[0] += used
        self._arm_drain(deadline, k + 1)

    def _drain(self) -> None:
        """Receive everything queued on the RTP sockets into the engine (one batch call per
        chunk of datagrams, see ``batchio.py`` and ``engine_rx.py``)."""
        receive = self.engine.receive_batch
        for b in self.io.drain():
            receive(b.slots, b.data, b.lens, b.ip, b.port, b.fam, b.ip6, b.t)

    def _send_all(self, slots: np.ndarray, data: bytes) -> None:
        """Send one tick's packets: one batch call for every IPv4 destination.

        A failing send (full buffer, unreachable peer) is counted on that endpoint, never
        raised; destinations that are not IPv4 literals go one by one through
        ``RtpEndpoint.send``.
        """
        if slots.size == 0:
            return
        ip, port, ok = self.engine.destinations(slots)
        if ok.all():
            err = self.io.send(slots, data, PACKET_BYTES, ip, port)
            failed = slots[err.astype(bool)]
        else:
            rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, PACKET_BYTES)
            sub = slots[ok]
            err = self.io.send(sub, rows[ok].tobytes(), PACKET_BYTES, ip[ok], port[ok])
            failed = sub[err.astype(bool)]
            chans = self.engine._chans
            for j in np.flatnonzero(~ok).tolist():
                slot = int(slots[j])
                ep, ch = self._ep[slot], chans[slot]
                if ep is not None and ch is not None and ch.remote is not None:
                    ep.send(rows[j].tobytes(), ch.remote)
        for slot in failed.tolist():
            ep = self._ep[slot]
            if ep is not None:
                ep.send_errors += 1

    def _dispatch(self, kind: str, slot: int, payload: Any, now: float) -> None:
        if kind == "rtcp":
            data, at = payload
            session = self._rtcp[slot]
            if session is not None:
                try:
                    session.ingest(data, at, time.time())
                except RtcpError as exc:
                    self.engine._bad[slot] += 1
                    logger.debug("slot %d bad RTCP: %s", slot, exc)
            return
        cid = self._cid_of[slot]
        if cid is not None:
            self._on_event(kind, cid, payload)

    def _check_inactive(self, slot: int, now: float, timeout: float) -> None:
        """Report once when no RTP arrived for ``timeout`` s (since open or the last packet);
        the call layer decides (hang up, or nothing while the call is on hold)."""
        last_rx = self.engine.last_rx(slot)
        since = last_rx if last_rx is not None else self._opened_at[slot]
        if now - since <= timeout:
            self._timed_out[slot] = False
        elif not self._timed_out[slot]:
            self._timed_out[slot] = True
            cid = self._cid_of[slot]
            if cid is not None:
                self._on_event("rtp_timeout", cid, last_rx)

    def _rtcp_tick(self, now: float) -> None:
        """Send the RTCP reports that are due among this tick's share of channels."""
        assert self.ticker is not None
        start = self.ticker.index % _RTCP_SPREAD
        engine = self.engine
        timeout = self.config.inactivity_timeout_s
        for slot in range(start, self.capacity, _RTCP_SPREAD):
            session = self._rtcp[slot]
            if session is None:
                continue
            if timeout:
                self._check_inactive(slot, now, timeout)
            if not session.due(now):
                continue
            ch = engine.channel(slot)
            ep = self._ep[slot]
            if ch.remote is None or ep is None:
                session.build_report(now, time.time(), engine.rtp_source(slot))  # reschedule
                continue
            sent = int(engine._sent[slot])
            if sent:
                session.on_rtp_sent(0, int(engine._tx_ts[slot]), now)
                session.packet_count = sent & 0xFFFFFFFF
                session.octet_count = (sent * 160) & 0xFFFFFFFF
            ep.send_rtcp(session.build_report(now, time.time(), engine.rtp_source(slot)),
                         (ch.remote[0], ch.remote[1] + 1))


def _op_bridge(host: EngineHost, a: int, b: int) -> None:
    host.engine.mix.bridge(host.slot(a), host.slot(b))


def _op_unbridge(host: EngineHost, cid: int) -> None:
    host.engine.mix.unbridge(host.slot(cid))


def _op_join(host: EngineHost, conference: str, cid: int) -> None:
    host.engine.mix.join(conference, host.slot(cid))


def _op_leave(host: EngineHost, cid: int) -> None:
    host.engine.mix.leave(host.slot(cid))


def _op_supervise(host: EngineHost, sup: int, caller: int, agent: int, mode: str) -> None:
    host.engine.mix.supervise(host.slot(caller), host.slot(agent), host.slot(sup), mode)


def _op_unsupervise(host: EngineHost, sup: int) -> None:
    host.engine.mix.unsupervise(host.slot(sup))


def _op_play(host: EngineHost, cid: int, items: list[Any], loop: bool, barge_in: bool) -> None:
    host.engine.play(host.slot(cid), host.resolve_prompts(items), loop=loop, barge_in=barge_in)


def _op_tone(host: EngineHost, cid: int, name: str, duration_ms: int, barge_in: bool) -> None:
    pattern = getattr(PROFILES[host.config.tone_profile], name)
    host.engine.tone(host.slot(cid), pattern, duration_ms=duration_ms, barge_in=barge_in)


def _op_stop_media(host: EngineHost, cid: int) -> None:
    slot = host.slot(cid)
    host.engine.players.stop(slot)
    host.engine.stop_tone(slot)


def _op_send_dtmf(host: EngineHost, cid: int, digit: str, duration_ms: int) -> None:
    host.engine.send_rfc4733(host.slot(cid), digit, duration_ms)


def _op_info_digit(host: EngineHost, cid: int, digit: str, duration_ms: int) -> None:
    host.engine.feed_info_digit(host.slot(cid), digit, duration_ms, time.monotonic())


_OPS: dict[str, Callable[..., Any]] = {
    "close": EngineHost.close,
    "set_remote": lambda h, cid, remote, sending: h.engine.set_remote(
        h.slot(cid), remote, sending=sending),
    "bridge": _op_bridge,
    "unbridge": _op_unbridge,
    "join": _op_join,
    "leave": _op_leave,
    "supervise": _op_supervise,
    "unsupervise": _op_unsupervise,
    "play": _op_play,
    "tone": _op_tone,
    "stop_media": _op_stop_media,
    "send_dtmf": _op_send_dtmf,
    "info_digit": _op_info_digit,
    "record_start": EngineHost.record_start,
    "record_pause": EngineHost.record_pause,
    "record_stop": EngineHost.record_stop,
    "stats": EngineHost.stats,
    "health": lambda h: h.health(),
    "channels": lambda h: h.channels(),
}


def tune_process() -> dict[str, bool]:
    """Process-wide settings the media tick needs on a small, busy machine (3 of them).

    * BLAS threads = 1. numpy's OpenBLAS starts one spinning thread per core for every
      matrix product; the tick's products are small (DTMF Goertzel basis), and on 2 busy
      cores the spinning threads fight the event loop: we measured the 1,000-channel DTMF
      detection at 16-30 ms per tick with the default and 0.9 ms with one thread.
      ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` are also set for child processes.
    * malloc: keep freed memory in the heap instead of returning it to the kernel. The
      tick allocates a few MB of temporaries; with glibc's defaults those come from fresh
      ``mmap`` pages every tick and the page faults cost more than the DSP (a 1,000-channel
      tick measured ~30 ms instead of ~3 ms here).

    * Garbage collector: the receive path allocates a few short-lived objects per packet
      (freed by reference counting, no cycles), which triggers a generation-0 collection
      every 700 allocations and, in turn, full collections that walk every socket and
      channel object; a higher generation-0 threshold makes those rare (shorter tick tails).

    Returns which settings could be applied (none is fatal when missing).
    """
    gc.set_threshold(50_000, 50, 50)
    return {"blas_threads": _limit_blas_threads(), "malloc": _tune_malloc(), "gc": True}


def _limit_blas_threads() -> bool:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    libdir = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for lib in sorted(libdir.glob("*openblas*")):
        try:
            handle = ctypes.CDLL(str(lib))
        except OSError:
            continue
        for name in ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_",
                     "openblas_set_num_threads64_", "scipy_openblas_set_num_threads"):
            setter = getattr(handle, name, None)
            if setter is not None:
                setter(1)
                return True
    return False


def _tune_malloc() -> bool:
    path = ctypes.util.find_library("c")
    if path is None:
        return False
    try:
        libc = ctypes.CDLL(path)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = mallopt(m_mmap_threshold, 32 << 20) == 1
    ok &= mallopt(m_trim_threshold, 1 << 30) == 1
    ok &= mallopt(m_top_pad, 64 << 20) == 1
    return bool(ok)
