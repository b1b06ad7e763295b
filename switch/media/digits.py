"""One stream of digits per channel, whatever carries them (RFC 4733, in-band, SIP INFO).

Pure core: ``now`` is passed in.

Why: a peer may send the same key press twice, as RFC 4733 events *and* as tones left in
the audio (many gateways do, although RFC 4733 advises against it), or as INFO
*and* RFC 4733. Users must never see a doubled digit. Rules, in order:

1. Once RFC 4733 has been seen on the channel, in-band detections are dropped: the
   named events are exact and the tones are then an echo of them. Likewise once SIP INFO
   digits have been seen, if ``trust_info_over_inband`` (the default).
2. The same digit from a *different* source within ``dedupe_window_s`` of the last
   reported one is the same key press, reported once (this covers the in-band detection
   that arrives before the first RFC 4733 packet, and INFO + RFC 4733 peers). A reported
   press absorbs at most one copy from each other source.
3. Repeats from the same source are always reported: "11" is two presses, and each
   source already reports one event per press.
"""

from __future__ import annotations

import logging

from switch.media.rfc4733 import EVENT_CODES, DigitEvent

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_DEDUPE_WINDOW_S", "DigitArbiter"]

# In-band detection lags RFC 4733 by the jitter buffer plus 40 ms of detection, and INFO
# arrives by its own path; 0.5 s covers both while staying below human double presses
# *from different sources*, which do not occur.
DEFAULT_DEDUPE_WINDOW_S = 0.5

_RFC4733 = "rfc4733"
_INBAND = "inband"
_INFO = "info"


class DigitArbiter:
    """Merges digit sources for one channel into one de-duplicated digit stream."""

    def __init__(
        self,
        dedupe_window_s: float = DEFAULT_DEDUPE_WINDOW_S,
        trust_info_over_inband: bool = True,
    ) -> None:
        self.dedupe_window_s = dedupe_window_s
        self.trust_info_over_inband = trust_info_over_inband
        self.rfc4733_seen = False
        self.info_seen = False
        self.suppressed = 0
        self._last: DigitEvent | None = None
        self._absorbed: set[str] = set()

    def feed_rfc4733(
        self, digit: str, now: float, duration_ms: int | None = None
    ) -> list[DigitEvent]:
        """A digit from :class:`~switch.media.rfc4733.DtmfReceiver`."""
        self.rfc4733_seen = True
        return self._offer(DigitEvent(digit, _RFC4733, duration_ms, now))

    def feed_inband(
        self, digit: str, now: float, duration_ms: int | None = None
    ) -> list[DigitEvent]:
        """A digit from the in-band (Goertzel) detector."""
        _check(digit)
        if self.rfc4733_seen or (self.info_seen and self.trust_info_over_inband):
            self.suppressed += 1
            return []
        return self._offer(DigitEvent(digit, _INBAND, duration_ms, now))

    def feed_info(self, digit: str, now: float, duration_ms: int | None = None) -> list[DigitEvent]:
        """A digit from a SIP INFO body (:mod:`switch.media.dtmf_info`)."""
        self.info_seen = True
        return self._offer(DigitEvent(digit, _INFO, duration_ms, now))

    def feed(self, event: DigitEvent) -> list[DigitEvent]:
        """Dispatch an already-built event on its ``source``."""
        handlers = {
            _RFC4733: self.feed_rfc4733,
            _INBAND: self.feed_inband,
            _INFO: self.feed_info,
        }
        handler = handlers.get(event.source)
        if handler is None:
            raise ValueError(f"unknown digit source {event.source!r}")
        return handler(event.digit, event.at, event.duration_ms)

    def _offer(self, event: DigitEvent) -> list[DigitEvent]:
        digit = _check(event.digit)
        last = self._last
        if (
            last is not None
            and last.source != event.source
            and event.source not in self._absorbed
            and last.digit == digit
            and 0 <= event.at - last.at <= self.dedupe_window_s
        ):
            # The other source's copy of the press already reported; each reported press
            # absorbs at most one copy per other source, so a real second press counts.
            self._absorbed.add(event.source)
            self.suppressed += 1
            return []
        out = DigitEvent(digit, event.source, event.duration_ms, event.at)
        self._last = out
        self._absorbed = set()
        return [out]


def _check(digit: str) -> str:
    """The canonical (upper-case) digit; a bad one is the caller's bug."""
    canonical = digit.upper()
    if canonical not in EVENT_CODES:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return canonical
