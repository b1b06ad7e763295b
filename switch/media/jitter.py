"""Adaptive jitter buffer keyed by RTP timestamp, popped once per 20 ms tick.

Pure core: arrival times and ``now`` are passed in (monotonic seconds); no clock reads.

Theory of operation
-------------------
Packets are stored by *extended* RTP timestamp (unwrapped past 2^32) in a dict. A
playout cursor ``play_ts`` walks the timestamp line one frame (``frame_samples``) per
:meth:`JitterBuffer.pop`. The media engine calls ``pop`` exactly once per tick, so the
buffer never needs the wall time to advance; ``now`` is only used to decide when a
talkspurt starts playing (``arrival of its first packet + target delay``).

* **Fast path.** A packet whose timestamp equals ``play_ts`` and whose payload is exactly
  one frame is returned as is (no copy): one dict pop per tick. A longer packet gives its
  first frame and its rest is re-keyed at the next frame's timestamp, so a 30 ms stream
  alternates the fast path with a two-piece assembly.
* **Re-framing.** Any other layout (30 ms G.711 packets as in SIPp's ``g711a.pcap``,
  10 ms packets, misaligned timestamps) is assembled from all packets overlapping
  ``[play_ts, play_ts + frame)``. This byte-level slicing is only valid for *sample
  codecs* where each sample is ``sample_bytes`` octets: G.711 (1 octet) and L16
  (2 octets). Frame codecs (G.729, Opus...) cannot be cut at arbitrary timestamps; they
  must be decoded to PCM before this buffer (feed L16, ``sample_bytes=2``) or use packets
  of exactly one frame so only the fast path runs. A frame that is only partly present
  is completed by holding the nearest sample (a tiny concealment) and counted ``partial``.
* **Loss vs underrun.** No data for ``play_ts``: a *lost* frame, the cursor advances
  and the caller conceals (``FrameKind.LOST``); a packet that comes later is *late*. When
  nothing at all is buffered at or after ``play_ts`` it is also an *underrun* (counted
  apart): after ``_IDLE_TICKS`` of them (60 ms, when G.711 App. I PLC has faded to
  silence) the talkspurt is over: ``FrameKind.EMPTY`` until a packet starts a new one.
  (Holding the cursor on an underrun instead would save merely-late packets, but adds a
  frame of delay on every loss at the tail of the buffer, which is most losses at low
  jitter; the jitter estimate raises the target when packets come late.)
* **Adaptation.** A jitter estimate follows RFC 3550 A.8 (|D| smoothed by 1/16) with a
  slowly decaying peak; ``target = clamp(4 x peak, min_delay, max_delay)`` (for uniform
  delay spread X, A.8 jitter is about X/3). Every ``_WINDOW_TICKS`` the margin (audio
  buffered beyond the frame being played) is compared with the target: if even its
  *minimum* over the window was more than one frame above the target -> *skip* one frame
  (the minimum, so that 30 ms packets, whose margin swings by a packet, and jitter dips
  never trigger a skip into an underrun); if its *mean* is more than half a frame below
  -> *stretch* one frame. So delay changes by at most one frame per half second, which
  also absorbs sender clock drift of a few percent; a new talkspurt starts at exactly
  the target delay.
  ``max_delay`` is a hard bound: beyond it the oldest frames are dropped (``overflow``).
* **Tolerance.** Sequence numbers (unwrapped past 65535) detect duplicates over a
  64-packet window and count reordering; a packet that ends before the cursor is *late*
  and dropped. A timestamp jump of more than ``_RESYNC_S`` is a new stream: flush.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

logger = logging.getLogger(__name__)

__all__ = ["FrameKind", "JitterBuffer", "JitterStats"]

# Ticks of underrun after which a talkspurt is over (60 ms: App. I PLC is silent by then).
_IDLE_TICKS = 3
# Ticks between adaptation decisions (0.5 s at 20 ms).
_WINDOW_TICKS = 25
# target = K x jitter peak (A.8 jitter ~ spread / 3 for uniform delay).
_JITTER_K = 4.0
# Per-packet decay of the jitter peak (half-life about 350 packets, 7 s at 50 pps).
_PEAK_DECAY = 0.998
# Packets needed before the jitter estimate replaces initial_delay_ms.
_MIN_JITTER_SAMPLES = 16
# A timestamp jump larger than this is a new stream (the sender restarted).
_RESYNC_S = 8.0
# Hard bound on stored packets (flood protection; 500 packets = 10 s of 20 ms frames).
_MAX_PACKETS = 500
_SEQ_WINDOW = 64
_NO_MIN = 1 << 62
_SEQ_MASK = (1 << _SEQ_WINDOW) - 1


class FrameKind(Enum):
    """What :meth:`JitterBuffer.pop` returned for this tick."""

    NORMAL = "normal"  # a frame of received audio
    LOST = "lost"  # a frame is missing mid-talkspurt: run packet loss concealment
    EMPTY = "empty"  # nothing playing (not started, or between talkspurts): comfort silence


@dataclass(frozen=True, slots=True)
class JitterStats:
    """Counters and current state of one jitter buffer (delays in ms)."""

    depth_ms: float
    target_ms: float
    jitter_ms: float
    received: int
    late: int
    lost: int
    duplicates: int
    reordered: int
    overflow_drops: int
    underruns: int
    skipped: int
    stretched: int
    partial: int
    resyncs: int


class JitterBuffer:
    """Adaptive playout buffer for one RTP stream (see the module docstring)."""

    def __init__(
        self,
        clock_rate: int = 8000,
        frame_samples: int = 160,
        min_delay_ms: float = 20,
        max_delay_ms: float = 200,
        initial_delay_ms: float = 40,
        sample_bytes: int = 1,
    ) -> None:
        if not 0 <= min_delay_ms <= max_delay_ms:
            raise ValueError("need 0 <= min_delay_ms <= max_delay_ms")
        if frame_samples <= 0 or sample_bytes <= 0 or clock_rate <= 0:
            raise ValueError("clock_rate, frame_samples and sample_bytes must be positive")
        self.clock_rate = clock_rate
        self.frame_samples = frame_samples
        self.sample_bytes = sample_bytes
        self._frame_bytes = frame_samples * sample_bytes
        self._frame_s = frame_samples / clock_rate
        self._min = int(min_delay_ms * clock_rate / 1000)
        self._max = int(max_delay_ms * clock_rate / 1000)
        self._initial = min(self._max, max(self._min, int(initial_delay_ms * clock_rate / 1000)))
        self._resync = int(_RESYNC_S * clock_rate)
        self.received = self.late = self.lost = self.duplicates = self.reordered = 0
        self.overflow_drops = self.underruns = self.skipped = self.stretched = 0
        self.partial = self.resyncs = 0
        self._flush()

    def _flush(self) -> None:
        """Forget the stream (new SSRC or timestamp jump); counters are kept."""
        self._buf: dict[int, bytes] = {}
        self._have_seq = False
        self._last_seq = 0
        self._last_seq_ext = 0
        self._seq_mask = 0
        self._have_ts = False
        self._last_ts = 0
        self._last_ts_ext = 0
        self._max_end = 0
        self._playing = False
        self._anchored = False
        self._play_ts = 0
        self._start_at: float | None = None
        self._underrun_ticks = 0
        self._prev_transit: float | None = None
        self._jitter_s = 0.0
        self._peak_s = 0.0
        self._jitter_n = 0
        self._target = self._initial
        self._win_n = 0
        self._win_sum = 0
        self._win_min = _NO_MIN

    def reset(self) -> None:
        """Drop all buffered audio and timing (call on an SSRC change)."""
        self._flush()

    # -- receive side (per packet) ----------------------------------------------------
    def put(self, seq: int, ts: int, payload: bytes, arrival: float, marker: bool = False) -> None:
        """Store one RTP payload.

        Args:
            seq, ts: RTP sequence number and timestamp (16 / 32 bit, wrapping).
            payload: codec payload (for re-framing: ``sample_bytes`` octets per sample).
            arrival: receive time, monotonic seconds.
            marker: the RTP M bit (start of a talkspurt); optional, a missing marker is
                tolerated by detecting the gap itself.
        """
        if self._have_seq:
            d = (seq - self._last_seq) & 0xFFFF
            if d >= 0x8000:
                d -= 0x10000
            in_sequence = d == 1
            if d > 0:
                self._seq_mask = ((self._seq_mask << d) | 1) & _SEQ_MASK
                self._last_seq = seq
                self._last_seq_ext += d
            elif d == 0 or (-d < _SEQ_WINDOW and self._seq_mask >> -d & 1):
                self.duplicates += 1
                return
            else:
                if -d < _SEQ_WINDOW:
                    self._seq_mask |= 1 << -d
                self.reordered += 1
        else:
            in_sequence = False
            self._have_seq = True
            self._last_seq = seq
            self._seq_mask = 1
        samples = len(payload) // self.sample_bytes
        if samples == 0 or samples > self._max + self.frame_samples:
            self.overflow_drops += 1
            return
        ext = self._unwrap_ts(ts)
        if ext is None:
            # A new timestamp base (sender restart, or silence longer than _RESYNC_S):
            # forget the stream but keep what we learnt about the network's jitter.
            kept = (self._jitter_s, self._peak_s, self._jitter_n, self._target)
            self._flush()
            self._jitter_s, self._peak_s, self._jitter_n, self._target = kept
            self.resyncs += 1
            self._have_seq = True
            self._last_seq = seq
            self._seq_mask = 1
            ext = self._unwrap_ts(ts)
            assert ext is not None
        end = ext + samples
        if self._anchored and end <= self._play_ts:
            self.late += 1
            return
        buf = self._buf
        if ext in buf:
            self.duplicates += 1
            return
        if len(buf) >= _MAX_PACKETS:
            self.overflow_drops += 1
            return
        self.received += 1
        self._update_jitter(arrival - ext / self.clock_rate)
        prev_end = self._max_end
        buf[ext] = payload
        if end > prev_end:
            self._max_end = end
        if not self._playing:
            if self._start_at is None:
                self._start_at = arrival + self._target / self.clock_rate
            self._trim_idle()
        elif prev_end <= self._play_ts and (
            marker or (in_sequence and ext - prev_end >= 2 * self.frame_samples)
        ):
            # A new talkspurt after silence while the buffer is dry: the M bit, or (M bit
            # lost) the next sequence number with a timestamp gap, which is silence
            # suppression, not loss (a loss also skips sequence numbers). Re-anchor so
            # the talkspurt starts at the target delay instead of after the gap.
            self._playing = False
            self._start_at = arrival + self._target / self.clock_rate
        elif self._max_end - self._play_ts > self._max + self.frame_samples:
            self._drop_overflow()

    def _unwrap_ts(self, ts: int) -> int | None:
        """Extend a 32-bit timestamp against the last one; None for a resync jump."""
        if not self._have_ts:
            self._have_ts = True
            self._last_ts = ts
            self._last_ts_ext = ts
            return ts
        d = (ts - self._last_ts) & 0xFFFFFFFF
        if d >= 0x80000000:
            d -= 0x100000000
        if d > self._resync or -d > self._resync:
            return None
        ext = self._last_ts_ext + d
        if d > 0:
            self._last_ts = ts
            self._last_ts_ext = ext
        return ext

    def _update_jitter(self, transit: float) -> None:
        prev = self._prev_transit
        self._prev_transit = transit
        if prev is None:
            return
        d = abs(transit - prev)
        self._jitter_s += (d - self._jitter_s) / 16.0
        peak = self._peak_s * _PEAK_DECAY
        self._peak_s = peak if peak > self._jitter_s else self._jitter_s
        self._jitter_n += 1

    def _drop_overflow(self) -> None:
        excess = self._max_end - self._play_ts - self._max - self.frame_samples
        frames = -(-excess // self.frame_samples)
        self._play_ts += frames * self.frame_samples
        self.overflow_drops += frames
        self._purge()

    def _trim_idle(self) -> None:
        """Before playout starts, keep at most ``max_delay`` (+1 frame) of audio."""
        buf = self._buf
        limit = self._max_end - self._max - self.frame_samples
        if min(buf) >= limit:
            return
        sb = self.sample_bytes
        for s in [s for s, p in buf.items() if s + len(p) // sb <= limit]:
            del buf[s]
            self.overflow_drops += 1

    def _purge(self) -> None:
        """Delete packets that end at or before the cursor."""
        sb = self.sample_bytes
        play = self._play_ts
        stale = [s for s, p in self._buf.items() if s + len(p) // sb <= play]
        for s in stale:
            del self._buf[s]

    # -- playout side (per tick) ------------------------------------------------------
    def pop(self, now: float) -> tuple[bytes | None, FrameKind]:
        """The frame due at this tick; call exactly once per ``frame_samples`` of time.

        Returns:
            ``(payload, NORMAL)``, ``(None, LOST)`` (conceal) or ``(None, EMPTY)``.
        """
        if not self._playing and not self._begin(now):
            return None, FrameKind.EMPTY
        t = self._play_ts
        margin = self._max_end - t - self.frame_samples
        if margin >= 0:
            self._win_sum += margin
            self._win_n += 1
            if margin < self._win_min:
                self._win_min = margin
            if self._win_n >= _WINDOW_TICKS and self._adapt(margin):
                return None, FrameKind.LOST
            t = self._play_ts
        buf = self._buf
        payload = buf.pop(t, None)
        if payload is not None:
            fb = self._frame_bytes
            if len(payload) >= fb:
                nxt = t + self.frame_samples
                if len(payload) > fb:  # keep the rest keyed where the next frame starts
                    buf.setdefault(nxt, payload[fb:])
                    payload = payload[:fb]
                self._play_ts = nxt
                self._underrun_ticks = 0
                return payload, FrameKind.NORMAL
            buf[t] = payload
        frame = self._assemble(t)
        if frame is not None:
            self._play_ts = t + self.frame_samples
            self._underrun_ticks = 0
            return frame, FrameKind.NORMAL
        self._play_ts = t + self.frame_samples
        if self._max_end > t:
            self.lost += 1
            self._underrun_ticks = 0
            return None, FrameKind.LOST
        self.underruns += 1
        self._underrun_ticks += 1
        self._win_sum -= self.frame_samples
        self._win_n += 1
        self._win_min = -self.frame_samples
        if self._underrun_ticks > _IDLE_TICKS:
            self._playing = False
            self._start_at = None
            return None, FrameKind.EMPTY
        self.lost += 1
        return None, FrameKind.LOST

    def _begin(self, now: float) -> bool:
        """Start a talkspurt when its first packet has waited the target delay."""
        if self._start_at is None or now + self._frame_s / 2 < self._start_at:
            return False
        if not self._buf:
            self._start_at = None
            return False
        start = min(self._buf)
        if self._anchored and start < self._play_ts:
            start = self._play_ts
        self._play_ts = start
        self._playing = True
        self._anchored = True
        self._start_at = None
        self._underrun_ticks = 0
        self._win_n = 0
        self._win_sum = 0
        self._win_min = _NO_MIN
        return True

    def _adapt(self, margin: int) -> bool:
        """One adaptation decision per window; True if this tick is a stretch."""
        mean = self._win_sum / self._win_n
        low = self._win_min
        self._win_n = 0
        self._win_sum = 0
        self._win_min = _NO_MIN
        self._update_target()
        target = self._target
        if low > target + self.frame_samples and margin >= self.frame_samples:
            self._play_ts += self.frame_samples
            self.skipped += 1
            self._purge()
            return False
        if mean < target - self.frame_samples / 2:
            self.stretched += 1
            return True
        return False

    def _update_target(self) -> None:
        if self._jitter_n < _MIN_JITTER_SAMPLES:
            return
        want = int(_JITTER_K * self._peak_s * self.clock_rate)
        self._target = min(self._max, max(self._min, want))

    def _assemble(self, t: int) -> bytes | None:
        """Re-frame ``[t, t + frame)`` from overlapping packets (sample codecs only)."""
        sb = self.sample_bytes
        n = self.frame_samples
        out: bytearray | None = None
        spans: list[tuple[int, int]] = []
        stale: list[int] = []
        rest: list[tuple[int, bytes]] = []
        for start, payload in self._buf.items():
            end = start + len(payload) // sb
            if end <= t:
                stale.append(start)
                continue
            if start >= t + n:
                continue
            a = start if start > t else t
            b = end if end < t + n else t + n
            if out is None:
                out = bytearray(n * sb)
            out[(a - t) * sb : (b - t) * sb] = payload[(a - start) * sb : (b - start) * sb]
            spans.append((a - t, b - t))
            stale.append(start)
            if end > t + n:  # re-key the unplayed rest at the next frame: fast path next
                rest.append((t + n, payload[(t + n - start) * sb :]))
        buf = self._buf
        for s in stale:
            del buf[s]
        for key, tail in rest:
            buf.setdefault(key, tail)
        if out is None:
            return None
        spans.sort()
        if spans[0][0] > 0 or _gaps(spans, n):
            self.partial += 1
            _fill_gaps(out, spans, n, sb)
        return bytes(out)

    # -- inspection --------------------------------------------------------------------
    @property
    def depth_ms(self) -> float:
        """Audio buffered ahead of the playout cursor."""
        if not self._buf:
            return 0.0
        start = self._play_ts if self._playing else min(self._buf)
        return max(0, self._max_end - start) * 1000.0 / self.clock_rate

    @property
    def target_ms(self) -> float:
        return self._target * 1000.0 / self.clock_rate

    def stats(self) -> JitterStats:
        return JitterStats(
            depth_ms=self.depth_ms,
            target_ms=self.target_ms,
            jitter_ms=self._jitter_s * 1000.0,
            received=self.received,
            late=self.late,
            lost=self.lost,
            duplicates=self.duplicates,
            reordered=self.reordered,
            overflow_drops=self.overflow_drops,
            underruns=self.underruns,
            skipped=self.skipped,
            stretched=self.stretched,
            partial=self.partial,
            resyncs=self.resyncs,
        )


def _gaps(spans: list[tuple[int, int]], n: int) -> bool:
    """True if sorted spans leave any hole in [0, n)."""
    reach = 0
    for a, b in spans:
        if a > reach:
            return True
        reach = max(reach, b)
    return reach < n


def _fill_gaps(out: bytearray, spans: list[tuple[int, int]], n: int, sb: int) -> None:
    """Fill holes by holding the previous sample (the next one for a leading hole)."""
    covered = bytearray(n)
    for a, b in spans:
        covered[a:b] = b"\x01" * (b - a)
    first = covered.index(1)
    out[0 : first * sb] = out[first * sb : (first + 1) * sb] * first
    for i in range(first + 1, n):
        if not covered[i]:
            out[i * sb : (i + 1) * sb] = out[(i - 1) * sb : i * sb]
