"""The media engine's per-tick core: every channel of a worker processed once per 20 ms.

Sans-IO (STYLE.md 4.1): no sockets, no clock. The endpoint hands each datagram to
:meth:`MediaEngine.receive_rtp` with the time ``now``; the ticker calls :meth:`MediaEngine.tick`
once per 20 ms and gets back every RTP packet to send, as one buffer.

Rule 1 -- per-packet work is minimal (DESIGN.md "Why the media engine is fast"): validate the
header (``rtp.parse_header_fast``), check the source address, account the packet
(RFC 3550 A.1 sequence validation, A.8 jitter in ``rtp.RtpSource``) and copy the payload into
the channel's row of one shared ring of samples, indexed by its RTP timestamp. That ring *is*
the jitter buffer: reordering is free (a packet lands where its timestamp says), 30 ms senders
are re-framed into 20 ms frames for free (a frame is any 160 consecutive samples), and loss is
known from a per-5-ms-block generation stamp that is checked for all channels at once.

Rule 2 -- everything else runs once per tick over arrays shaped (channels, 160): gather the
frame of every receiving channel with one fancy index, decode PCMU and PCMA with one lookup
in a 512-entry table, conceal lost frames (``dsp.plc``), detect in-band DTMF for all channels
with one matrix product (``dsp.dtmf.BatchDtmfDetector``), route by index arrays (a two-party
bridge is ``out[a] = pcm[b]; out[b] = pcm[a]``; conferences and supervisor listen / whisper /
barge are ``dsp.mixer`` matrices), overlay prompts (``PlayerBank.fill``) and tones, hand frames
to recorders, encode with one lookup in a 2 x 65536 table, and write all RTP headers with one
structured-array assignment.

Rule 3 -- bad input never raises: truncated or garbage datagrams, a wrong payload type, and
packets from an unexpected address after latching are dropped and counted per channel.

Playout (jitter buffer): the first packet of a source is scheduled ``jitter_min_ms`` (rounded
up to whole frames) after the next tick; each tick reads the next 160 samples. A packet that
arrives after its samples were played is counted ``late`` and grows the playout delay by one
frame (at most once per 100 ms), up to ``jitter_max_ms``; after 5 s without late packets the
delay shrinks by one frame (one frame skipped, counted ``jb_dropped``). A timestamp jump
beyond the ring or a new SSRC re-anchors.
"""

from __future__ import annotations

import logging
from array import array
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dsp import g711
from dsp.dtmf import BatchDtmfDetector
from dsp.plc import Plc
from dsp.tones import render_tone
from switch.media.digits import DigitArbiter
from switch.media.engine_dtmf import DigitsMixin
from switch.media.engine_mix import MixPlan, ToneSource
from switch.media.engine_rx import _SHRINK_AFTER_S, BatchReceiveMixin
from switch.media.errors import MediaError
from switch.media.latch import SymmetricLatch
from switch.media.player import FRAME_SAMPLES, FinishReason, PlayerBank
from switch.media.rfc4733 import DtmfReceiver
from switch.media.rtp import RtpSource, parse_header_fast

logger = logging.getLogger(__name__)

__all__ = ["CODECS", "ChannelStats", "MediaEngine", "TickOutput"]

#: Static payload types (RFC 3551 table 4) of the codecs the fast path handles.
CODECS = {"PCMU": 0, "PCMA": 8}
CN_PT = 13  # RFC 3389 comfort noise: accepted, counted, played as silence
_BLOCK = 40  # validity granularity in samples (5 ms): 10/20/30/40/60 ms ptimes align
_NEVER = np.iinfo(np.int64).min
_PKT = np.dtype(
    [("b0", "u1"), ("b1", "u1"), ("seq", ">u2"), ("ts", ">u4"), ("ssrc", ">u4"),
     ("payload", "u1", (FRAME_SAMPLES,))]
)
PACKET_BYTES = _PKT.itemsize  # 172: 12-byte header + 160 payload octets


@dataclass(slots=True)
class ChannelStats:
    """Per-channel counters (what ``MediaService.stats`` returns)."""

    slot: int
    packets_received: int
    packets_sent: int
    octets_received: int
    octets_sent: int
    lost: int
    jitter_ms: float
    late: int
    bad: int
    wrong_pt: int
    foreign: int
    concealed_frames: int
    played_frames: int
    playout_delay_ms: float
    last_rx: float | None
    remote: tuple[str, int] | None


@dataclass(slots=True)
class TickOutput:
    """What one tick produces: ``packets`` holds ``len(slots)`` RTP packets of
    ``PACKET_BYTES`` each, back to back, for ``slots`` in order; ``extra`` are other
    datagrams (RFC 4733 events) as (slot, bytes); ``events`` go up to the service."""

    slots: NDArray[np.int64]
    packets: bytes
    extra: list[tuple[int, bytes]]
    events: list[tuple[str, int, Any]]


class _Channel:
    """Per-channel receive/transmit state touched by the per-packet path."""

    __slots__ = (
        "arbiter", "codec", "dtmf_last", "dtmf_pt", "dtmf_rx", "dtmf_tx", "inband", "latch",
        "pt", "remote", "rtp", "send_enabled", "slot",
    )

    def __init__(self, slot: int, codec: str, dtmf_pt: int, remote: tuple[str, int] | None,
                 latch: bool, inband: bool) -> None:
        self.slot = slot
        self.codec = codec
        self.pt = CODECS[codec]
        self.dtmf_pt = dtmf_pt
        self.remote = remote
        self.latch = SymmetricLatch(remote) if latch else None
        self.send_enabled = True
        self.inband = inband
        self.rtp = RtpSource(8000)
        self.dtmf_rx = DtmfReceiver()
        self.arbiter = DigitArbiter()
        self.dtmf_tx: deque[tuple[bool, int, bytes, float]] | None = None
        self.dtmf_last = 0.0


class MediaEngine(DigitsMixin, BatchReceiveMixin):
    """All channels of one worker, processed once per 20 ms tick.

    Args:
        capacity: number of channel slots (fixed; slots are reused through a free list).
        jitter_min_ms, jitter_max_ms: playout delay bounds (rounded up to 20 ms frames).
        seed: seeds the SSRC generator (deterministic tests; the service passes entropy).
    """

    def __init__(self, capacity: int, *, jitter_min_ms: int = 20, jitter_max_ms: int = 200,
                 seed: int | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._min_depth = -(-jitter_min_ms // 20)
        self._max_depth = max(self._min_depth, -(-jitter_max_ms // 20))
        ring = (self._max_depth + 12) * FRAME_SAMPLES  # a whole number of frames and blocks
        self._ring_len = ring
        self._nblocks = ring // _BLOCK
        self._ring = np.zeros((capacity, ring), dtype=np.uint8)
        self._ring_mv = memoryview(self._ring.reshape(-1))
        self._gen = np.full((capacity, self._nblocks), _NEVER, dtype=np.int64)
        self._play = array("q", bytes(8 * capacity))  # next sample to play, per slot
        self._ts_base = array("q", bytes(8 * capacity))  # RTP ts of ring sample 0, per slot
        self._started = np.zeros(capacity, dtype=bool)  # has a playout anchor
        self._anchor_at = np.zeros(capacity, dtype=np.int64)  # first sample of the source
        self._play_np = np.frombuffer(self._play, dtype=np.int64)
        self._pending = array("q")  # (slot, first sample, n samples) per accepted packet
        self._chans: list[_Channel | None] = [None] * capacity
        self._free = list(range(capacity - 1, -1, -1))
        self._rng = np.random.default_rng(seed)
        # Codec tables: decode = table[octet], encode = table[uint16 view of the sample]
        octets = np.arange(256, dtype=np.uint8)
        self._dec_u, self._dec_a = g711.ulaw_decode(octets), g711.alaw_decode(octets)
        lin = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16)
        self._enc_u, self._enc_a = g711.ulaw_encode(lin), g711.alaw_encode(lin)
        self._is_alaw = np.zeros(capacity, dtype=bool)
        self._tx_pt = np.zeros(capacity, dtype=np.uint8)
        self._tx_seq = self._rng.integers(0, 1 << 16, capacity).astype(np.uint16)
        self._tx_ts = self._rng.integers(0, 1 << 32, capacity, dtype=np.uint64).astype(np.uint32)
        self._tx_ssrc = np.zeros(capacity, dtype=np.uint32)
        self._marker = np.zeros(capacity, dtype=bool)
        self._sending = np.zeros(capacity, dtype=bool)  # open, remote known, not on hold
        self._open = np.zeros(capacity, dtype=bool)
        self._played = np.zeros(capacity, dtype=np.int64)
        # Per-tick working buffers, allocated once.
        self.pcm_rx = np.zeros((capacity + 1, FRAME_SAMPLES), dtype=np.int16)  # row cap = 0
        self.pcm_tx = np.zeros((capacity, FRAME_SAMPLES), dtype=np.int16)
        self._blk_off = np.arange(FRAME_SAMPLES // _BLOCK, dtype=np.int64)
        self.detector = BatchDtmfDetector(capacity)
        self.plc = Plc(capacity, FRAME_SAMPLES)
        self.players = PlayerBank(capacity)
        self.mix = MixPlan(capacity)
        self._tones: dict[int, ToneSource] = {}
        self._taps: dict[int, Any] = {}
        self._open_list = np.zeros(0, dtype=np.int64)
        self._events: list[tuple[str, int, Any]] = []
        self._dtmf_active: set[_Channel] = set()
        self._live = np.zeros(0, dtype=np.int64)
        self._concealed = np.zeros(capacity, dtype=np.int64)
        self._loss_run = np.zeros(capacity, dtype=np.int64)
        self._sent = np.zeros(capacity, dtype=np.int64)
        # Per-channel receive state as arrays, so that engine_rx can check and update a
        # whole batch of packets at once (the scalar path below uses the same arrays).
        self._bad = np.zeros(capacity, dtype=np.int64)
        self._wrong_pt = np.zeros(capacity, dtype=np.int64)
        self._foreign = np.zeros(capacity, dtype=np.int64)
        self._octets_rx = np.zeros(capacity, dtype=np.int64)
        self._last_rx = np.full(capacity, np.nan)  # NaN: nothing received yet
        self._depth = np.zeros(capacity, dtype=np.int64)  # playout delay, frames
        self._last_late = np.full(capacity, -1e9)
        self._last_adjust = np.full(capacity, -1e9)
        self._resync = np.ones(capacity, dtype=bool)  # next packet re-anchors the playout
        self._init_batch_rx(capacity)
        self._dirty = False
        self.ticks = 0
        self.late_packets = 0
        self.orphans = 0
        self.dsp_errors = 0
        self.jb_dropped = 0

    # ------------------------------------------------------------------ channels

    def open(self, *, codec: str = "PCMU", remote: tuple[str, int] | None = None,
             latch: bool = True, dtmf_pt: int = 101, inband: bool = True,
             ssrc: int | None = None) -> int:
        """Open a channel and return its slot.

        Args:
            codec: "PCMU" or "PCMA" (both directions).
            remote: where to send (from SDP); None sends nothing until latched.
            latch: symmetric RTP: send to the source of the first valid packets (NAT).
            dtmf_pt: telephone-event payload type (RFC 4733), -1 to disable.
            inband: run in-band DTMF detection on this channel.
            ssrc: our SSRC (random if None).

        Raises:
            ValueError: unknown codec.
            MediaError: no free slot.
        """
        if codec not in CODECS:
            raise ValueError(f"unsupported codec {codec!r} (fast path: {sorted(CODECS)})")
        if not self._free:
            raise MediaError(f"media engine full ({self.capacity} channels)")
        slot = self._free.pop()
        ch = _Channel(slot, codec, dtmf_pt, remote, latch, inband)
        self._chans[slot] = ch
        self._bad[slot] = self._wrong_pt[slot] = self._foreign[slot] = 0
        self._octets_rx[slot] = 0
        self._last_rx[slot] = np.nan
        self._depth[slot] = self._min_depth
        self._last_late[slot] = self._last_adjust[slot] = -1e9
        self._resync[slot] = True
        self._open_batch_rx(ch)
        self._is_alaw[slot] = codec == "PCMA"
        self._tx_pt[slot] = CODECS[codec]
        self._tx_ssrc[slot] = int(self._rng.integers(1, 1 << 32)) if ssrc is None else ssrc
        self._marker[slot] = True
        self._open[slot] = True
        self._sending[slot] = remote is not None
        self._gen[slot] = _NEVER
        self._played[slot] = self._concealed[slot] = self._sent[slot] = 0
        self._loss_run[slot] = 0
        self._started[slot] = False
        self._play[slot] = 0
        self.detector.reset(slot)
        self.plc.reset(slot)
        self._dirty = True
        return slot

    def close(self, slot: int) -> None:
        """Close a channel: unbridge it, stop its players/tones/recording, free the slot."""
        ch = self._chans[slot]
        if ch is None:
            return
        self.mix.remove(slot)
        self.players.stop(slot)
        # Events of the closed channel must not reach whoever reuses the slot next.
        self._events = [e for e in self._events if e[1] != slot]
        self._events += [("play_done", s, r) for s, r in self.players.pop_finished()
                         if s != slot]
        self._tones.pop(slot, None)
        self._taps.pop(slot, None)
        self._dtmf_active.discard(ch)
        self._chans[slot] = None
        self._close_batch_rx(slot)
        self._open[slot] = False
        self._sending[slot] = False
        self.pcm_rx[slot] = 0
        self.pcm_tx[slot] = 0
        self._free.append(slot)
        self._dirty = True

    def channel(self, slot: int) -> _Channel:
        """The channel in ``slot`` (ValueError if the slot is not open)."""
        ch = self._chans[slot]
        if ch is None:
            raise ValueError(f"slot {slot} is not open")
        return ch

    def set_remote(self, slot: int, remote: tuple[str, int] | None, *,
                   sending: bool = True) -> None:
        """A new remote SDP (re-INVITE): new address, latch reset; ``sending=False`` = hold."""
        ch = self.channel(slot)
        ch.remote = remote
        ch.send_enabled = sending
        if ch.latch is not None:
            ch.latch.reset(remote)
        self._sending[slot] = sending and remote is not None
        self._refresh_batch_rx(ch)

    def last_rx(self, slot: int) -> float | None:
        """Arrival time of the last accepted RTP packet of ``slot`` (None: none yet)."""
        value = float(self._last_rx[slot])
        return None if value != value else value

    def tx_ssrc(self, slot: int) -> int:
        """Our SSRC on ``slot``."""
        return int(self._tx_ssrc[slot])

    # ------------------------------------------------------------------ receive path

    def receive_rtp(self, slot: int, data: bytes, addr: tuple[str, int], now: float) -> None:
        """Accept one datagram from the RTP socket of ``slot`` (never raises on bad input)."""
        ch = self._chans[slot]
        if ch is None:
            self.orphans += 1
            return
        hdr = parse_header_fast(data)
        if hdr is None:
            self._bad[slot] += 1
            return
        pt, seq, ts, ssrc, marker, off, end = hdr
        if pt != ch.pt and pt != ch.dtmf_pt and pt != CN_PT:
            self._wrong_pt[slot] += 1
            return
        latch = ch.latch
        if latch is not None:
            if self._latch_acc[slot] or self._latch_drop[slot]:
                self._sync_latch(slot)  # fold in what the batch path accepted (engine_rx)
            ok = latch.accept(addr, now)
            if ok and addr != ch.remote:
                self._latched(ch, addr)
            self._refresh_batch_rx(ch)
            if not ok:
                self._foreign[slot] += 1
                return
        elif addr != ch.remote:
            self._foreign[slot] += 1
            return
        self._last_rx[slot] = now
        self._flush_rtp(slot)  # the batch path may hold newer A.1/A.8 numbers (engine_rx)
        ch.rtp.update(seq, ts, ssrc, int(now * 8000))
        self._load_rtp(slot)
        self._octets_rx[slot] += end - off
        if pt != ch.pt:
            if pt == ch.dtmf_pt:
                ch.dtmf_last = now
                self._dtmf_active.add(ch)
                self._arbitrate(ch, ch.dtmf_rx.feed(ts, marker, data[off:end], now))
            return
        n = end - off
        if n <= 0 or n > self._ring_len // 4:
            self._bad[slot] += 1
            return
        play = self._play[slot]
        if self._resync[slot]:
            rel = self._reanchor(ch, ts, play)
        else:
            rel = play + ((ts - self._ts_base[slot] - play + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            ahead = rel + n - play
            if ahead <= 0:
                self._late(ch, play, now)
                return
            if self._depth[slot] > self._min_depth \
                    and now - self._last_adjust[slot] > _SHRINK_AFTER_S \
                    and now - self._last_late[slot] > _SHRINK_AFTER_S:
                self._maybe_shrink(ch, play, now)
            if ahead > self._ring_len - 2 * FRAME_SAMPLES:
                rel = self._reanchor(ch, ts, play)
        pos = rel % self._ring_len
        base = slot * self._ring_len
        mv = self._ring_mv
        if pos + n <= self._ring_len:
            mv[base + pos : base + pos + n] = data[off:end]
        else:
            first = self._ring_len - pos
            mv[base + pos : base + self._ring_len] = data[off : off + first]
            mv[base : base + n - first] = data[off + first : end]
        self._pending.extend((slot, rel, n))

    def _latched(self, ch: _Channel, addr: tuple[str, int]) -> None:
        """Symmetric RTP (``latch.SymmetricLatch``, checked per packet in ``receive_rtp``):
        the latch accepted a new source (first valid packets, or a re-latch after the old
        source fell silent, e.g. NAT rebinding); send there from now on. Packets from anyone
        else are dropped and counted, so a flood cannot steal the stream. Without latching
        only the SDP address is accepted."""
        logger.info("slot %d latched to %s:%d", ch.slot, addr[0], addr[1])
        ch.remote = addr
        self._sending[ch.slot] = ch.send_enabled
        self._refresh_batch_rx(ch)

    def receive_rtcp(self, slot: int, data: bytes, addr: tuple[str, int], now: float) -> None:
        """Queue an RTCP datagram for the service (ingested by its RtcpSession)."""
        ch = self._chans[slot]
        if ch is None:
            self.orphans += 1
            return
        if ch.remote is not None and addr[0] != ch.remote[0]:
            self._foreign[slot] += 1
            return
        self._events.append(("rtcp", slot, (data, now)))

    # ------------------------------------------------------------------ sources

    def play(self, slot: int, items: list[NDArray[np.int16]], *, loop: bool = False,
             barge_in: bool = False) -> None:
        """Play prompts on ``slot`` (replaces its tone); completion comes as "play_done"."""
        self.channel(slot)
        self.stop_tone(slot)
        self.players.play(slot, items, loop=loop, barge_in=barge_in)

    def tone(self, slot: int, pattern: Any, *, duration_ms: int = 0,
             barge_in: bool = False) -> None:
        """Play a cadenced ``dsp.tones.TonePattern`` (replaces prompts and other tones)."""
        self.channel(slot)
        self.players.stop(slot)
        self.stop_tone(slot)
        self._tones[slot] = ToneSource(pattern, 0, duration_ms * 8, barge_in)

    def stop_tone(self, slot: int) -> None:
        """Stop the tone on ``slot`` (reported as "tone_done" STOPPED)."""
        if self._tones.pop(slot, None) is not None:
            self._events.append(("tone_done", slot, FinishReason.STOPPED))

    def record(self, slot: int, recorder: Any | None) -> None:
        """Hand (rx, tx) of ``slot`` to ``recorder.write_legs`` every tick (None = stop)."""
        self.channel(slot)
        if recorder is None:
            self._taps.pop(slot, None)
        else:
            self._taps[slot] = recorder

    # ------------------------------------------------------------------ the tick

    def tick(self, now: float) -> TickOutput:
        """Process one 20 ms period for every channel; returns the packets to send."""
        if self._dirty:
            self._open_list = np.flatnonzero(self._open)
            self._live = np.flatnonzero(self._started & self._open)
            self._dirty = False
        self._apply_pending()
        self._playout(self._live)
        rx, tx = self.pcm_rx, self.pcm_tx
        self._detect_inband(rx, now)
        if self._dtmf_active:
            self._expire_dtmf(now)
        slots = self._open_list
        self.mix.render(rx, tx, slots)
        self.players.fill(tx)
        for slot, reason in self.players.pop_finished():
            self._events.append(("play_done", slot, reason))
        if self._tones:
            self._render_tones(tx)
        for slot, recorder in self._taps.items():
            recorder.write_legs(rx[slot].copy(), tx[slot].copy())
        out = self._packetize(slots)
        self.ticks += 1
        events, self._events = self._events, []
        out.events = events
        return out

    def _apply_pending(self) -> None:
        """Stamp the 5 ms blocks fully covered by the packets received since the last tick."""
        if not self._pending and not self._pending_np:
            return
        rec = np.frombuffer(self._pending, dtype=np.int64).reshape(-1, 3)
        if self._pending_np:  # batches first: engine_rx flushes _pending before each one
            rec = np.concatenate([*self._pending_np, rec])
            self._pending_np = []
        slot, first, count = rec[:, 0], rec[:, 1], rec[:, 2]
        b0 = -(-first // _BLOCK)
        nb = np.maximum((first + count) // _BLOCK - b0, 0)
        total = int(nb.sum())
        if total:
            starts = np.repeat(b0 - np.cumsum(nb) + nb, nb)
            blocks = starts + np.arange(total, dtype=np.int64)
            self._gen[np.repeat(slot, nb), blocks % self._nblocks] = blocks
        del rec, slot, first, count
        self._pending = array("q")

    def _playout(self, live: NDArray[np.int64]) -> None:
        """Gather, validate and decode the next frame of every receiving channel."""
        if live.size == 0:
            return
        play = self._play_np[live]
        blocks = (play // _BLOCK)[:, None] + self._blk_off
        cols = blocks % self._nblocks
        ok = (self._gen[live[:, None], cols] == blocks).all(axis=1)
        ring = self._ring.reshape(self.capacity, self._nblocks, _BLOCK)
        octets = ring[live[:, None], cols].reshape(live.size, FRAME_SAMPLES)
        pcm = self._dec_u[octets]
        alaw = self._is_alaw[live]
        if alaw.any():
            pcm[alaw] = self._dec_a[octets[alaw]]
        # Pre-roll (the playout delay before a new source's first frame) is silence, not
        # loss: no concealment, so the first real frame is not faded in by the PLC.
        self._play_np[live] += FRAME_SAMPLES
        preroll = play < self._anchor_at[live]
        if preroll.any():
            self.pcm_rx[live[preroll]] = 0
            keep = ~preroll
            live, ok, pcm = live[keep], ok[keep], pcm[keep]
        if ok.all():  # steady state: no boolean-mask copies
            good, bad = live, live[:0]
        else:
            good, bad, pcm = live[ok], live[~ok], pcm[ok]
        if good.size:
            self.pcm_rx[good] = self.plc.good(good, pcm)
            self._played[good] += 1
            self._loss_run[good] = 0
        if bad.size:
            # Concealment fades to silence after 60 ms (G.711 App. I); beyond that a row is
            # plain silence, so a silent peer (hold, one-way call) costs no synthesis.
            run = self._loss_run[bad]
            fresh = bad[run < 4]
            if fresh.size:
                self.pcm_rx[fresh] = self.plc.conceal(fresh)
            stale = bad[run == 4]
            if stale.size:
                self.pcm_rx[stale] = 0
            self._loss_run[bad] = np.minimum(run + 1, 5)
            self._concealed[bad] += 1

    def _render_tones(self, tx: NDArray[np.int16]) -> None:
        by_pattern: dict[int, list[tuple[int, ToneSource]]] = {}
        for slot, tone in self._tones.items():
            by_pattern.setdefault(id(tone.pattern), []).append((slot, tone))
        for group in by_pattern.values():
            slots = [slot for slot, _ in group]
            starts = np.asarray([tone.start_sample for _, tone in group], dtype=np.int64)
            tx[slots] = render_tone(group[0][1].pattern, starts, FRAME_SAMPLES)
        for slot, tone in list(self._tones.items()):
            tone.start_sample += FRAME_SAMPLES
            if tone.finished():
                del self._tones[slot]
                self._events.append(("tone_done", slot, FinishReason.COMPLETED))

    def _packetize(self, slots: NDArray[np.int64]) -> TickOutput:
        """Encode and write the RTP header of every sending channel (RFC 3550 5.1)."""
        extra: list[tuple[int, bytes]] = []
        for ch in self._dtmf_senders():
            extra.extend(self._dtmf_packets(ch))
        send = slots[self._sending[slots]]
        if extra:
            busy = np.asarray([slot for slot, _ in extra], dtype=np.int64)
            send = send[~np.isin(send, busy)]
        pkts = np.empty(send.size, dtype=_PKT)
        pkts["b0"] = 0x80
        pkts["b1"] = self._tx_pt[send] | (self._marker[send].astype(np.uint8) << 7)
        pkts["seq"] = self._tx_seq[send]
        pkts["ts"] = self._tx_ts[send]
        pkts["ssrc"] = self._tx_ssrc[send]
        lin = self.pcm_tx[send].view(np.uint16)
        payload = self._enc_u[lin]
        alaw = self._is_alaw[send]
        if alaw.any():
            payload[alaw] = self._enc_a[lin[alaw]]
        pkts["payload"] = payload
        self._tx_seq[send] += np.uint16(1)
        self._marker[send] = False
        self._sent[send] += 1
        self._tx_ts[slots] += np.uint32(FRAME_SAMPLES)
        return TickOutput(send, pkts.tobytes(), extra, [])

    # ------------------------------------------------------------------ statistics

    def stats(self, slot: int) -> ChannelStats:
        """Counters of ``slot`` (RFC 3550 A.3 loss and A.8 jitter from ``RtpSource``)."""
        ch = self.channel(slot)
        self._sync_latch(slot)
        rtp = self.rtp_source(slot).stats()
        return ChannelStats(
            slot=slot,
            packets_received=rtp.received,
            packets_sent=int(self._sent[slot]),
            octets_received=int(self._octets_rx[slot]),
            octets_sent=int(self._sent[slot]) * FRAME_SAMPLES,
            lost=rtp.lost,
            jitter_ms=rtp.jitter_ms,
            late=rtp.late,
            bad=int(self._bad[slot]),
            wrong_pt=int(self._wrong_pt[slot]),
            foreign=int(self._foreign[slot]),
            concealed_frames=int(self._concealed[slot]),
            played_frames=int(self._played[slot]),
            playout_delay_ms=20.0 * int(self._depth[slot]),
            last_rx=self.last_rx(slot),
            remote=ch.remote,
        )

    def totals(self) -> dict[str, int]:
        """Engine-wide counters (benchmark and health endpoint)."""
        chans = [ch for ch in self._chans if ch is not None]
        self._flush_all_rtp()
        return {
            "channels": len(chans),
            "ticks": self.ticks,
            "late_packets": self.late_packets,
            "orphans": self.orphans,
            "dsp_errors": self.dsp_errors,
            "jb_dropped": self.jb_dropped,
            "bad": int(self._bad[self._open].sum()),
            "wrong_pt": int(self._wrong_pt[self._open].sum()),
            "foreign": int(self._foreign[self._open].sum()),
            "received": sum(ch.rtp.received for ch in chans),
            "played_frames": int(self._played.sum()),
            "concealed_frames": int(self._concealed.sum()),
            "sent": int(self._sent.sum()),
            "batch_fast": self.batch_fast,
            "batch_slow": self.batch_slow,
        }
