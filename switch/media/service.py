"""MediaService: the async media API the switch uses (channels, bridges, prompts, digits).

The switch (channels, bridges, IVR, ACD) only sees this class. Behind it run one or more
engine hosts (``switch.media.engine_host.EngineHost``): in this process when
``MediaConfig.workers == 0``, or one per worker process (``switch.media.worker``). Both
kinds are *backends* with the same two-method shape -- ``await request(op, args)`` and an
event callback -- so the API below does not change with the deployment.

Rules:

1. Placement. A channel lives on one backend for its whole life. ``open_channel(near=x)``
   puts it on the backend of channel ``x``; both legs of a bridge, all members of a
   conference and a supervisor's trio must share a backend (:class:`MediaError` otherwise).
   Without ``near`` the least loaded backend is chosen.
2. Completions are futures. ``play``/``say``/``tone`` return an ``asyncio.Future`` that
   resolves to a ``FinishReason`` (COMPLETED, STOPPED, BARGED_IN) when that play ends;
   a new play on the same channel stops the previous one (its future gets STOPPED).
3. Digits go up as one ``DigitReceived`` per key press, whatever carried it (RFC 4733,
   in-band, SIP INFO), after ``switch.media.digits.DigitArbiter`` in the engine; they are
   put on :attr:`MediaService.events` and on the channel's own queue (:meth:`digits`).
   ``RtpTimedOut`` (media inactivity) goes on :attr:`MediaService.events` too.
4. Closing a channel resolves its pending futures with STOPPED and drops its queue.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from dsp.tones import dtmf_tone
from switch.media.config import MediaConfig
from switch.media.engine_host import EngineHost, tune_process
from switch.media.errors import MediaError
from switch.media.player import FinishReason
from switch.media.rfc4733 import DigitEvent

logger = logging.getLogger(__name__)

__all__ = ["Backend", "ChannelInfo", "DigitReceived", "LocalBackend", "MediaService",
           "RtpTimedOut"]

_INBAND_GAP_MS = 60


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """An open media channel: its id, where the peer should send RTP, and its backend."""

    channel_id: int
    local_addr: tuple[str, int]
    backend: int


@dataclass(frozen=True, slots=True)
class DigitReceived:
    """One key press on a channel (rule 3)."""

    channel_id: int
    event: DigitEvent


@dataclass(frozen=True, slots=True)
class RtpTimedOut:
    """No RTP arrived on a channel for ``MediaConfig.inactivity_timeout_s``.

    ``last_rx`` is the monotonic time of the last packet (None: never received any)."""

    channel_id: int
    last_rx: float | None


class Backend(Protocol):
    """One engine host, local or in a worker process."""

    index: int
    load: int

    async def request(self, op: str, args: tuple[Any, ...]) -> Any: ...

    async def start(self, t0: float | None) -> float: ...

    async def stop(self) -> None: ...


class LocalBackend:
    """An :class:`EngineHost` on the caller's own event loop (``workers == 0``)."""

    def __init__(self, index: int, config: MediaConfig, port_range: tuple[int, int],
                 on_event: Any, seed: int | None = None) -> None:
        self.index = index
        self.load = 0
        self.host = EngineHost(config, port_range, on_event, seed=seed)

    async def start(self, t0: float | None) -> float:
        tune_process()
        return self.host.start(t0)

    async def stop(self) -> None:
        self.host.stop()

    async def request(self, op: str, args: tuple[Any, ...]) -> Any:
        return await self.host.execute(op, args)


class MediaService:
    """The media API of the switch (see the module docstring for the rules).

    Args:
        config: media configuration (``workers`` selects local vs worker processes).
        tts: a ``switch.media.tts.TtsEngine`` for :meth:`say` (optional).
        seed: randomness seed for SSRCs (tests); None = OS entropy.
    """

    def __init__(self, config: MediaConfig, *, tts: Any = None, seed: int | None = None) -> None:
        self.config = config
        self.tts = tts
        self._seed = seed
        self.backends: list[Any] = []
        self.events: asyncio.Queue[DigitReceived | RtpTimedOut] = asyncio.Queue(maxsize=10000)
        self._backend_of: dict[int, Any] = {}
        self._digits: dict[int, asyncio.Queue[DigitEvent]] = {}
        self._waiters: dict[tuple[int, str], deque[asyncio.Future[Any]]] = {}
        self._conference_backend: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self.t0: float | None = None
        self.tick_offsets: list[float] = []
        self.dropped_events = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the backends (worker processes when ``config.workers > 0``)."""
        ranges = self.config.worker_port_ranges()
        if self.config.workers == 0:
            self.backends = [LocalBackend(0, self.config, ranges[0], self._on_event,
                                          seed=self._seed)]
        else:
            from switch.media.worker import WorkerBackend  # processes only when configured

            self.backends = [WorkerBackend(i, self.config, r, self._on_event, seed=self._seed)
                             for i, r in enumerate(ranges)]
        loop = asyncio.get_running_loop()
        self.t0 = loop.time() + 0.1
        self.tick_offsets = [self.tick_offset(i) for i in range(len(self.backends))]
        await asyncio.gather(*(backend.start(self.t0 + offset) for backend, offset
                               in zip(self.backends, self.tick_offsets, strict=True)))

    def tick_offset(self, index: int) -> float:
        """Phase of backend ``index``'s tick grid relative to :attr:`t0`, in seconds.

        With ``stagger_ticks`` the workers tick at evenly spread phases, so their busy
        periods do not coincide: on N cores with more than N workers each tick then runs
        without waiting for a core, which is what bounds the added delay.
        """
        if not self.config.stagger_ticks or not self.backends:
            return 0.0
        return index * self.config.ptime_ms / 1000.0 / len(self.backends)

    async def shutdown(self) -> None:
        """Close every channel and stop the backends."""
        for cid in list(self._backend_of):
            await self.close_channel(cid)
        for backend in self.backends:
            await backend.stop()
        self.backends = []

    async def __aenter__(self) -> MediaService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # ------------------------------------------------------------------ channels

    async def open_channel(self, *, codec: str = "PCMU",
                           remote: tuple[str, int] | None = None,
                           dtmf_mode: str | None = None, dtmf_pt: int | None = None,
                           latch: bool | None = None, near: int | None = None) -> ChannelInfo:
        """Open a channel (RTP/RTCP ports, engine slot); returns where to send media.

        Args:
            codec: "PCMU" or "PCMA".
            remote: the peer's RTP address from SDP (None: wait for latching).
            dtmf_mode: receive mode ("auto", "rfc4733", "inband", "info"); default config.
            dtmf_pt: telephone-event payload type; default config.
            latch: symmetric RTP; default config.
            near: place on the same backend as this channel (rule 1).
        """
        if not self.backends:
            raise MediaError("media service not started")
        backend = self._backend(near) if near is not None else min(
            self.backends, key=lambda b: b.load)
        mode = dtmf_mode or self.config.dtmf_rx_mode
        cid = next(self._ids)
        kwargs = {"codec": codec, "remote": remote, "dtmf_pt": dtmf_pt,
                  "inband": mode in ("auto", "inband"), "latch": latch}
        local = await backend.request("open", (cid, kwargs))
        backend.load += 1
        self._backend_of[cid] = backend
        self._digits[cid] = asyncio.Queue(maxsize=256)
        return ChannelInfo(cid, tuple(local), backend.index)

    async def set_remote(self, cid: int, remote: tuple[str, int] | None, *,
                         sending: bool = True) -> None:
        """New remote address (re-INVITE); ``sending=False`` puts our side on hold."""
        await self._backend(cid).request("set_remote", (cid, remote, sending))

    async def close_channel(self, cid: int) -> None:
        """Close a channel (idempotent); pending plays resolve STOPPED (rule 4)."""
        backend = self._backend_of.pop(cid, None)
        if backend is None:
            return
        backend.load -= 1
        try:
            await backend.request("close", (cid,))
        finally:
            self._digits.pop(cid, None)
            for key in [k for k in self._waiters if k[0] == cid]:
                for fut in self._waiters.pop(key):
                    if not fut.done():
                        fut.set_result(FinishReason.STOPPED)

    def _backend(self, cid: int) -> Any:
        try:
            return self._backend_of[cid]
        except KeyError:
            raise MediaError(f"unknown media channel {cid}") from None

    def _same_backend(self, *cids: int) -> Any:
        backends = {id(self._backend(c)) for c in cids}
        if len(backends) != 1:
            raise MediaError(f"channels {cids} are on different media workers; open the "
                             "later legs with near=<first leg>")
        return self._backend(cids[0])

    # ------------------------------------------------------------------ routing

    async def bridge(self, a: int, b: int) -> None:
        """Two-party bridge: ``a`` hears ``b`` and ``b`` hears ``a`` (PCMU<->PCMA fine)."""
        await self._same_backend(a, b).request("bridge", (a, b))

    async def unbridge(self, cid: int) -> None:
        """Undo the bridge of ``cid`` (both legs hear silence)."""
        await self._backend(cid).request("unbridge", (cid,))

    async def conference(self, conference: str, cid: int) -> None:
        """Add ``cid`` to conference ``conference`` (created on first join)."""
        backend = self._backend(cid)
        pinned = self._conference_backend.setdefault(conference, backend)
        if pinned is not backend:
            raise MediaError(f"conference {conference!r} lives on another media worker")
        await backend.request("join", (conference, cid))

    async def leave_conference(self, cid: int) -> None:
        """Take ``cid`` out of its conference."""
        await self._backend(cid).request("leave", (cid,))

    async def supervise(self, supervisor: int, caller: int, agent: int, mode: str) -> None:
        """Supervisor ``mode``: "listen" (silent), "whisper" (agent hears), "barge" (all)."""
        await self._same_backend(supervisor, caller, agent).request(
            "supervise", (supervisor, caller, agent, mode))

    async def unsupervise(self, supervisor: int) -> None:
        """End supervision (caller and agent stay bridged)."""
        await self._backend(supervisor).request("unsupervise", (supervisor,))

    # ------------------------------------------------------------------ prompts and tones

    def _expect(self, cid: int, kind: str) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault((cid, kind), deque()).append(fut)
        return fut

    async def play(self, cid: int, prompts: list[str | Path | NDArray[np.int16]], *,
                   barge_in: bool = False, loop: bool = False) -> asyncio.Future[Any]:
        """Play prompts (names under ``prompt_cache_dir``, paths, or int16 arrays).

        Returns:
            A future resolving to the ``FinishReason`` (rule 2).
        """
        backend = self._backend(cid)
        items = [str(p) if isinstance(p, Path) else p for p in prompts]
        fut = self._expect(cid, "play_done")
        try:
            await backend.request("play", (cid, items, loop, barge_in))
        except BaseException:
            self._waiters[(cid, "play_done")].remove(fut)
            raise
        return fut

    async def say(self, cid: int, text: str, *, voice: str = "en-us", rate: int = 160,
                  barge_in: bool = False) -> asyncio.Future[Any]:
        """Speak ``text`` with the TTS engine (rendered off the loop, then played)."""
        if self.tts is None:
            raise MediaError("no TTS engine configured")
        pcm = await self.tts.render(text, voice, rate)
        return await self.play(cid, [pcm], barge_in=barge_in)

    async def tone(self, cid: int, name: str, *, duration_ms: int = 0,
                   barge_in: bool = False) -> asyncio.Future[Any]:
        """Play a call-progress tone of the configured profile ("dial", "ringback",
        "busy", "congestion", "call_waiting"); ``duration_ms=0`` plays until stopped."""
        if name not in ("dial", "ringback", "busy", "congestion", "call_waiting"):
            raise MediaError(f"unknown tone {name!r}")
        fut = self._expect(cid, "tone_done")
        try:
            await self._backend(cid).request("tone", (cid, name, duration_ms, barge_in))
        except BaseException:
            self._waiters[(cid, "tone_done")].remove(fut)
            raise
        return fut

    async def stop(self, cid: int) -> None:
        """Stop the prompt or tone playing on ``cid`` (its future resolves STOPPED)."""
        await self._backend(cid).request("stop_media", (cid,))

    # ------------------------------------------------------------------ recording

    async def record_start(self, cid: int, path: str | Path | None = None, *,
                           mode: str = "stereo") -> str:
        """Record what ``cid`` says (left) and hears (right); returns the WAV path."""
        if path is None:
            path = self.config.recordings_dir / f"channel-{cid}.wav"
        path = str(path)
        await self._backend(cid).request("record_start", (cid, path, mode))
        return path

    async def record_pause(self, cid: int) -> None:
        """Pause recording (e.g. while a card number is read)."""
        await self._backend(cid).request("record_pause", (cid, True))

    async def record_resume(self, cid: int) -> None:
        """Resume a paused recording."""
        await self._backend(cid).request("record_pause", (cid, False))

    async def record_stop(self, cid: int) -> str | None:
        """Stop recording; returns the file path (None if not recording)."""
        return await self._backend(cid).request("record_stop", (cid,))

    # ------------------------------------------------------------------ digits

    async def send_dtmf(self, cid: int, digits: str, *, mode: str | None = None,
                        duration_ms: int = 100, gap_ms: int = _INBAND_GAP_MS) -> None:
        """Send ``digits`` as RFC 4733 events (default) or in-band tones; returns when sent."""
        mode = mode or self.config.dtmf_tx_mode
        backend = self._backend(cid)
        if mode == "inband":
            gap = np.zeros(gap_ms * 8, dtype=np.int16)
            pcm = np.concatenate([part for d in digits for part in
                                  (dtmf_tone(d, duration_ms), gap)])
            await (await self.play(cid, [pcm]))
            return
        for digit in digits:
            fut = self._expect(cid, "dtmf_sent")
            await backend.request("send_dtmf", (cid, digit, duration_ms))
            await fut
            await asyncio.sleep(gap_ms / 1000.0)

    async def info_digit(self, cid: int, digit: str, duration_ms: int = 100) -> None:
        """A digit the SIP driver received in an INFO request (goes through the arbiter)."""
        await self._backend(cid).request("info_digit", (cid, digit, duration_ms))

    def digits(self, cid: int) -> asyncio.Queue[DigitEvent]:
        """The per-channel digit queue (rule 3)."""
        try:
            return self._digits[cid]
        except KeyError:
            raise MediaError(f"unknown media channel {cid}") from None

    # ------------------------------------------------------------------ statistics

    async def stats(self, cid: int) -> dict[str, Any]:
        """Per-channel statistics; ``last_rx`` is the RTP inactivity timestamp."""
        return await self._backend(cid).request("stats", (cid,))

    async def health(self) -> list[dict[str, Any]]:
        """Per-backend engine totals, ticker counters and added-delay histograms."""
        return [await b.request("health", ()) for b in self.backends]

    # ------------------------------------------------------------------ events

    def _on_event(self, kind: str, cid: int, payload: Any) -> None:
        if kind == "digit":
            queue = self._digits.get(cid)
            for q in (queue, self.events):
                if q is None:
                    continue
                try:
                    q.put_nowait(payload if q is queue else DigitReceived(cid, payload))
                except asyncio.QueueFull:
                    self.dropped_events += 1
            return
        if kind == "rtp_timeout":
            try:
                self.events.put_nowait(RtpTimedOut(cid, payload))
            except asyncio.QueueFull:
                self.dropped_events += 1
            return
        waiters = self._waiters.get((cid, kind))
        if waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(FinishReason(payload) if isinstance(payload, str) else payload)
