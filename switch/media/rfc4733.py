"""RFC 4733 telephone-event payloads: DTMF digits over RTP.

Pure core: ``now`` is passed in; no clock reads.

Payload (§2.3)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    |     event     |E|R| volume    |          duration             |

One event is one RTP timestamp (§2.5.1: all packets of an event carry the timestamp of
its start). The sender repeats it: a start packet with the M bit, updates with a growing
duration every packet interval, then the final packet (E bit) three times (§2.5.1.4).
So the receiver keys events by timestamp: the first packet seen with a timestamp it has
not seen is a new digit, whatever its M bit says (the start packet may be lost, §2.5.2),
and everything else with that timestamp is ignored. A long event is split into segments
when its duration would overflow 16 bits (long-duration events, §2.5): a segment whose
timestamp is the previous timestamp plus the previous duration, for the same event,
continues it.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from dataclasses import dataclass

from switch.media.rtp import RtpError

logger = logging.getLogger(__name__)

__all__ = [
    "CODE_DIGITS",
    "EVENT_CODES",
    "DigitEvent",
    "DtmfReceiver",
    "DtmfSender",
    "TelephoneEvent",
    "decode_event",
    "encode_event",
]

# RFC 4733 §3.2: the DTMF named events (codes 0-15).
EVENT_CODES: dict[str, int] = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    "A": 12,
    "B": 13,
    "C": 14,
    "D": 15,
}
CODE_DIGITS: dict[int, str] = {code: digit for digit, code in EVENT_CODES.items()}

_EVENT = struct.Struct("!BBH")
# Remembered event timestamps, so late repeats of finished events are never re-reported.
_RECENT_EVENTS = 16
# A digit whose end packets never came is finished after this much silence (§2.5.2
# leaves the value to the receiver; senders update at least every 50 ms).
DEFAULT_END_TIMEOUT_S = 0.5


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One decoded telephone-event payload (§2.3)."""

    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        """The DTMF character, or None for non-DTMF events (flash, tones)."""
        return CODE_DIGITS.get(self.event)


@dataclass(frozen=True, slots=True)
class DigitEvent:
    """A digit detected on a channel, whatever carried it.

    ``source`` is ``"rfc4733"``, ``"inband"`` or ``"info"``; ``duration_ms`` is None when
    it is not known when the digit is reported (RFC 4733 digits are reported on their
    first packet, before the duration is final); ``at`` is the monotonic time reported.
    """

    digit: str
    source: str
    duration_ms: int | None
    at: float


def encode_event(event: int, end: bool, volume: int, duration: int) -> bytes:
    """Build a 4-octet telephone-event payload.

    Raises:
        ValueError: event outside 0..255, volume outside 0..63 (it is -dBm0), duration
            outside 0..65535 timestamp units.
    """
    if not 0 <= event <= 255:
        raise ValueError(f"event {event} outside 0..255")
    if not 0 <= volume <= 63:
        raise ValueError(f"volume {volume} outside 0..63")
    if not 0 <= duration <= 0xFFFF:
        raise ValueError(f"duration {duration} outside 0..65535")
    return _EVENT.pack(event, (0x80 if end else 0) | volume, duration)


def decode_event(payload: bytes) -> TelephoneEvent:
    """Decode the first event of a telephone-event payload (the R bit is ignored, §2.3).

    Raises:
        RtpError: payload shorter than 4 octets.
    """
    if len(payload) < 4:
        raise RtpError(f"telephone-event payload too short: {len(payload)} octets")
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


class DtmfReceiver:
    """Turns telephone-event packets of one stream into one :class:`DigitEvent` each.

    Args:
        clock_rate: RTP clock of the telephone-event payload type (8000 for 8 kHz).
        end_timeout_s: silence after which an event without end packets is finished.
    """

    def __init__(
        self, clock_rate: int = 8000, end_timeout_s: float = DEFAULT_END_TIMEOUT_S
    ) -> None:
        self.clock_rate = clock_rate
        self.end_timeout_s = end_timeout_s
        self._recent: deque[int] = deque(maxlen=_RECENT_EVENTS)
        self._active_ts: int | None = None
        self._active_event = -1
        self._active_duration = 0
        self._last_packet_at = 0.0
        self._newest_ts: int | None = None
        # Only timestamps up to 10 s behind the newest event are stale; anything further
        # back is a sender that restarted its timestamp base (new SSRC, re-INVITE).
        self._stale_window = 10 * clock_rate
        self.bad_payloads = 0
        self.timeouts = 0

    def reset(self) -> None:
        """Forget all events (the stream's SSRC changed)."""
        self._recent.clear()
        self._active_ts = None
        self._newest_ts = None

    @property
    def active(self) -> bool:
        """True while an event is in progress (started, no end packet, not expired)."""
        return self._active_ts is not None

    def feed(self, ts: int, marker: bool, payload: bytes, now: float) -> list[DigitEvent]:
        """Account one telephone-event packet.

        Returns:
            ``[DigitEvent]`` for the first packet of a new event carrying a DTMF code,
            else ``[]``. Malformed payloads are counted in ``bad_payloads`` and ignored.
        """
        try:
            ev = decode_event(payload)
        except RtpError:
            self.bad_payloads += 1
            return []
        if ts == self._active_ts:
            return self._update(ev, now)
        if ts in self._recent:
            return []  # a late repeat (often the 2nd/3rd end packet) of a finished event
        if (
            self._newest_ts is not None
            and 0 < (self._newest_ts - ts) & 0xFFFFFFFF < self._stale_window
        ):
            self._recent.append(ts)  # a bit older than the newest event: reordered, stale
            return []
        if self._continues_segment(ts, ev):
            self._active_ts = ts
            self._recent.append(ts)
            self._newest_ts = ts
            return self._update(ev, now)
        return self._start(ts, ev, now)

    def _continues_segment(self, ts: int, ev: TelephoneEvent) -> bool:
        """Long-duration events (§2.5): the next segment starts where the last one ended."""
        return (
            self._active_ts is not None
            and ev.event == self._active_event
            and ts == (self._active_ts + self._active_duration) & 0xFFFFFFFF
        )

    def _start(self, ts: int, ev: TelephoneEvent, now: float) -> list[DigitEvent]:
        self._recent.append(ts)
        self._newest_ts = ts
        self._active_ts = ts
        self._active_event = ev.event
        self._active_duration = ev.duration
        self._last_packet_at = now
        if ev.end:
            self._active_ts = None
        digit = ev.digit
        if digit is None:
            logger.debug("ignoring telephone-event %d (not DTMF)", ev.event)
            return []
        return [DigitEvent(digit, "rfc4733", None, now)]

    def _update(self, ev: TelephoneEvent, now: float) -> list[DigitEvent]:
        self._last_packet_at = now
        if ev.duration > self._active_duration:
            self._active_duration = ev.duration
        if ev.end:
            self._active_ts = None
        return []

    def expire(self, now: float) -> list[DigitEvent]:
        """Finish an event whose end packets were all lost (call at least every tick).

        Returns ``[]``: digits are reported at their start, so expiry only frees the
        receiver; the list return keeps the call shape of :meth:`feed`.
        """
        if self._active_ts is not None and now - self._last_packet_at >= self.end_timeout_s:
            self._active_ts = None
            self.timeouts += 1
        return []

    @property
    def last_duration_ms(self) -> int:
        """Duration of the current or last event, in ms."""
        return self._active_duration * 1000 // self.clock_rate


class DtmfSender:
    """Packet schedule for sending one digit (RFC 4733 §2.5.1).

    Args:
        clock_rate: RTP clock of the telephone-event payload type.
    """

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate

    def packets(
        self,
        digit: str,
        duration_ms: int = 100,
        volume: int = 10,
        start_ts: int = 0,
        ptime_ms: int = 20,
    ) -> list[tuple[bool, int, bytes, float]]:
        """All packets of one event, with their send time relative to the first.

        The start packet has the M bit (§2.5.1); one update per ``ptime_ms`` carries the
        duration so far; the final packet has the E bit and the full duration
        and is sent three times at the update interval (§2.5.1.4). Every packet has the
        timestamp ``start_ts``.

        Returns:
            ``[(marker, ts, payload, send_offset_s), ...]``

        Raises:
            ValueError: unknown digit, non-positive duration or ptime, or a duration that
                does not fit 16 bits of timestamp units (segmenting is not implemented).
        """
        code = EVENT_CODES.get(digit.upper())
        if code is None:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        if duration_ms <= 0 or ptime_ms <= 0:
            raise ValueError("duration_ms and ptime_ms must be positive")
        total = duration_ms * self.clock_rate // 1000
        step = ptime_ms * self.clock_rate // 1000
        if total > 0xFFFF:
            raise ValueError(f"duration {duration_ms} ms too long for one event segment")
        ts = start_ts & 0xFFFFFFFF
        out: list[tuple[bool, int, bytes, float]] = []
        k = 0
        while (k + 1) * step < total:
            payload = encode_event(code, False, volume, (k + 1) * step)
            out.append((k == 0, ts, payload, k * ptime_ms / 1000.0))
            k += 1
        final = encode_event(code, True, volume, total)
        for r in range(3):
            out.append((k == 0 and r == 0, ts, final, (k + r) * ptime_ms / 1000.0))
        return out
