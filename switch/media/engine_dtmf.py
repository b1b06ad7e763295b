"""Digits in the media engine: in-band detection, RFC 4733 receive and send (internal).

A mixin of :class:`switch.media.engine.MediaEngine`, split out to keep that module short.

* Receive: every channel's decoded frame goes through ``dsp.dtmf.BatchDtmfDetector`` once per
  tick (one matrix product for all channels); RFC 4733 telephone-events go through the
  channel's ``rfc4733.DtmfReceiver``. Both feed the channel's ``digits.DigitArbiter``, so a
  key press sent both ways (RFC 4733 section 2.6 says it SHOULD NOT be, gateways do it)
  is reported once. A reported digit also applies barge-in to prompts and tones.
* Send: ``rfc4733.DtmfSender`` gives the packet schedule; one packet goes out per tick with
  the channel's next sequence number and SSRC (RFC 4733 section 2.1: events share the audio
  stream's sequence space), and the channel's audio packet is suppressed meanwhile.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from switch.media.player import FinishReason
from switch.media.rfc4733 import EVENT_CODES, DigitEvent, DtmfSender

if TYPE_CHECKING:
    from switch.media.engine import _Channel

logger = logging.getLogger(__name__)

__all__ = ["DigitsMixin"]

_HDR = struct.Struct("!BBHII")  # RTP fixed header (RFC 3550 section 5.1)


class DigitsMixin:
    """DTMF handling of the engine (uses the engine's channel table and tx counters)."""

    capacity: int
    detector: Any
    players: Any
    dsp_errors: int
    _chans: list[Any]
    _tones: dict[int, Any]
    _events: list[tuple[str, int, Any]]
    _dtmf_active: set[Any]
    _tx_seq: NDArray[np.uint16]
    _tx_ts: NDArray[np.uint32]
    _tx_ssrc: NDArray[np.uint32]
    _sent: NDArray[np.int64]

    def channel(self, slot: int) -> _Channel:
        raise NotImplementedError

    def _arbitrate(self, ch: _Channel, events: list[DigitEvent]) -> None:
        for event in events:
            self._digits(ch, ch.arbiter.feed(event))

    def _digits(self, ch: _Channel, digits: list[DigitEvent]) -> None:
        """Report arbitrated digits upward and apply barge-in to prompts and tones."""
        for event in digits:
            self._events.append(("digit", ch.slot, event))
            self.players.on_digit(ch.slot)
            tone = self._tones.get(ch.slot)
            if tone is not None and tone.barge_in:
                del self._tones[ch.slot]
                self._events.append(("tone_done", ch.slot, FinishReason.BARGED_IN))

    def send_rfc4733(self, slot: int, digit: str, duration_ms: int = 100,
                     volume: int = 10) -> None:
        """Send ``digit`` as RFC 4733 events (audio of the slot is suppressed meanwhile)."""
        ch = self.channel(slot)
        if digit.upper() not in EVENT_CODES or ch.dtmf_pt < 0:
            raise ValueError(f"cannot send DTMF {digit!r} as RFC 4733 on slot {slot}")
        schedule = DtmfSender(8000).packets(digit, max(40, min(duration_ms, 8000)), volume,
                                            int(self._tx_ts[slot]), 20)
        ch.dtmf_tx = deque(schedule)
        self._dtmf_active.add(ch)

    def feed_info_digit(self, slot: int, digit: str, duration_ms: int, now: float) -> None:
        """A digit signalled out of band (SIP INFO) goes through the same arbiter."""
        ch = self.channel(slot)
        self._digits(ch, ch.arbiter.feed_info(digit, now, duration_ms))

    def _detect_inband(self, rx: NDArray[np.int16], now: float) -> None:
        """In-band DTMF for every slot at once; a failing detector costs digits, not audio."""
        if self._open_list.size == 0:
            return  # an idle node should not pay for detection over empty slots
        try:
            found = self.detector.process(rx[: self.capacity])
        except (ValueError, IndexError, FloatingPointError) as exc:
            self.dsp_errors += 1
            if self.dsp_errors == 1 or self.dsp_errors % 1000 == 0:
                logger.error("in-band DTMF detection failed (%d times): %s", self.dsp_errors, exc)
            return
        for slot, event in found:
            ch = self._chans[slot]
            if ch is not None and ch.inband:
                self._digits(ch, ch.arbiter.feed_inband(event.digit, now))

    def _expire_dtmf(self, now: float) -> None:
        """Let RFC 4733 receivers end digits whose end packets were lost (section 2.5.2.2)."""
        for ch in list(self._dtmf_active):
            if self._chans[ch.slot] is not ch:
                self._dtmf_active.discard(ch)
                continue
            self._arbitrate(ch, ch.dtmf_rx.expire(now))
            last_rx = self.last_rx(ch.slot)  # type: ignore[attr-defined]
            idle = last_rx is None or now - last_rx > 2.0 or ch.dtmf_last < now - 2.0
            if ch.dtmf_tx is None and idle:
                self._dtmf_active.discard(ch)

    def _dtmf_senders(self) -> list[_Channel]:
        if not self._dtmf_active:
            return []
        return [ch for ch in self._dtmf_active if ch.dtmf_tx is not None]

    def _dtmf_packets(self, ch: _Channel) -> list[tuple[int, bytes]]:
        """The next RFC 4733 packet of the digit being sent on ``ch`` (one per tick).

        The schedule comes from ``rfc4733.DtmfSender`` (start packet with M bit, updates,
        end packet three times); each packet takes the channel's next sequence number, so
        audio and events share one sequence space and SSRC (RFC 4733 section 2.1).
        """
        queue = ch.dtmf_tx
        assert queue is not None
        slot = ch.slot
        marker, ts, payload, _offset = queue.popleft()
        seq = int(self._tx_seq[slot])
        self._tx_seq[slot] = (seq + 1) & 0xFFFF
        packet = _HDR.pack(0x80, ch.dtmf_pt | (0x80 if marker else 0), seq, ts,
                           int(self._tx_ssrc[slot])) + payload
        self._sent[slot] += 1
        if not queue:
            ch.dtmf_tx = None
            self._events.append(("dtmf_sent", slot, None))
        return [(slot, packet)]
