"""RTP packets and receive statistics (RFC 3550 §5.1, Appendix A.1, A.3, A.8).

Pure core: no sockets, no asyncio, no clock reads. Arrival times are passed in by the
caller, already converted to RTP timestamp units (``arrival_ts = int(now * clock_rate)``).

Rules of this module:

1. The hot path is :func:`parse_header_fast` and :func:`build_packet`: one
   ``struct.unpack_from`` / ``pack`` each, no objects other than the returned tuple or bytes.
   The engine receives 100,000 packets/s on one core, so everything else here
   (:class:`RtpPacket`) is for tests, tools and rare packets, not for media frames.
2. Anything malformed gives :class:`RtpError` (a ``ValueError``) from :meth:`RtpPacket.parse`
   or ``None`` from :func:`parse_header_fast`; never ``IndexError`` or ``struct.error``.
3. :class:`RtpSource` is RFC 3550 Appendix A.1 almost line for line (probation,
   MAX_DROPOUT, MAX_MISORDER, sequence cycles), plus duplicate detection over a 128-packet
   window, which A.1 does not do.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_DROPOUT",
    "MAX_MISORDER",
    "MIN_SEQUENTIAL",
    "RtpError",
    "RtpPacket",
    "RtpSource",
    "RtpStats",
    "SequenceTracker",
    "build_packet",
    "parse_header_fast",
]

RTP_VERSION = 2
RTP_SEQ_MOD = 1 << 16
# RFC 3550 Appendix A.1 constants.
MIN_SEQUENTIAL = 2
MAX_DROPOUT = 3000
MAX_MISORDER = 100
# Duplicate window (ours): remembers the last 128 extended sequence numbers.
_DUP_WINDOW = 128
_DUP_MASK = (1 << _DUP_WINDOW) - 1

_HEADER = struct.Struct("!BBHII")
_U16 = struct.Struct("!H")
_EXT_HEADER = struct.Struct("!HH")
_hdr_unpack = _HEADER.unpack_from
_hdr_pack = _HEADER.pack
_u16_unpack = _U16.unpack_from


class RtpError(ValueError):
    """A malformed RTP packet (remote error): truncated, wrong version, bad lengths."""


def parse_header_fast(data: bytes) -> tuple[int, int, int, int, bool, int, int] | None:
    """Parse the RTP fixed header (RFC 3550 §5.1) without building objects.

    Args:
        data: one UDP datagram.

    Returns:
        ``(payload_type, sequence, timestamp, ssrc, marker, payload_offset, payload_end)``,
        so the payload is ``data[payload_offset:payload_end]``. ``payload_end`` is
        ``len(data)`` unless the P bit is set, in which case the padding octets (count in
        the last octet, §5.1) are excluded. Callers that ignore padding may index
        ``[:6]``, but must then use ``data[off:end]`` for correctness on padded packets.
        ``None`` if the datagram is not a valid RTP packet (too short, version != 2, CSRC
        list or header extension longer than the datagram, padding count 0 or too big).
    """
    n = len(data)
    if n < 12:
        return None
    b0, b1, seq, ts, ssrc = _hdr_unpack(data)
    if b0 & 0xC0 != 0x80:
        return None
    off = 12 + ((b0 & 0x0F) << 2)
    if b0 & 0x10:
        if n < off + 4:
            return None
        off += 4 + (_u16_unpack(data, off + 2)[0] << 2)
    end = n
    if b0 & 0x20:
        pad = data[n - 1]
        end = n - pad
        if pad == 0:
            return None
    if off > end:
        return None
    return (b1 & 0x7F, seq, ts, ssrc, b1 >= 0x80, off, end)


def build_packet(
    pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False
) -> bytes:
    """Build a plain RTP packet (no CSRC, extension or padding) with one ``struct.pack``.

    Sequence and timestamp are reduced modulo 2^16 / 2^32 so callers can keep counting.
    """
    return (
        _hdr_pack(
            0x80,
            (pt & 0x7F) | (0x80 if marker else 0),
            seq & 0xFFFF,
            ts & 0xFFFFFFFF,
            ssrc & 0xFFFFFFFF,
        )
        + payload
    )


@dataclass(slots=True)
class RtpPacket:
    """A full RTP packet (RFC 3550 §5.1, §5.3.1 header extension).

    ``padding`` is the total number of padding octets including the count octet (0 = the
    P bit is clear). ``extension`` is the extension body (a multiple of 4 octets) and
    ``extension_profile`` the 16-bit "defined by profile" field, ``None`` when X is clear.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one datagram.

        Raises:
            RtpError: truncated header, version != 2, CSRC list or extension running past
                the end, padding count of zero or longer than the payload.
        """
        n = len(data)
        if n < 12:
            raise RtpError(f"RTP packet too short: {n} bytes < 12")
        b0, b1, seq, ts, ssrc = _hdr_unpack(data)
        version = b0 >> 6
        if version != RTP_VERSION:
            raise RtpError(f"RTP version {version} != 2")
        cc = b0 & 0x0F
        off = 12 + 4 * cc
        if off > n:
            raise RtpError(f"CSRC list ({cc} entries) runs past the packet end")
        csrc = struct.unpack_from(f"!{cc}I", data, 12) if cc else ()
        profile: int | None = None
        ext = b""
        if b0 & 0x10:
            if off + 4 > n:
                raise RtpError("header extension header truncated")
            profile, words = _EXT_HEADER.unpack_from(data, off)
            off += 4
            if off + 4 * words > n:
                raise RtpError(f"header extension ({words} words) runs past the packet end")
            ext = bytes(data[off : off + 4 * words])
            off += 4 * words
        end = n
        padding = 0
        if b0 & 0x20:
            padding = data[n - 1]
            if padding == 0:
                raise RtpError("padding bit set but padding count is 0")
            end = n - padding
            if end < off:
                raise RtpError(f"padding count {padding} longer than the payload")
        return cls(
            payload_type=b1 & 0x7F,
            sequence=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[off:end]),
            marker=bool(b1 & 0x80),
            csrc=tuple(csrc),
            extension_profile=profile,
            extension=ext,
            padding=padding,
        )

    def serialize(self) -> bytes:
        """Serialize to wire format; ``RtpPacket.parse(p.serialize()) == p``.

        Raises:
            RtpError: more than 15 CSRCs, extension not a multiple of 4 octets, padding
                outside 0..255.
        """
        if len(self.csrc) > 15:
            raise RtpError("at most 15 CSRC identifiers")
        if len(self.extension) % 4:
            raise RtpError("header extension length must be a multiple of 4 octets")
        if not 0 <= self.padding <= 255:
            raise RtpError("padding must be 0..255 octets")
        b0 = 0x80 | len(self.csrc)
        if self.extension_profile is not None:
            b0 |= 0x10
        if self.padding:
            b0 |= 0x20
        parts = [
            _hdr_pack(
                b0,
                (self.payload_type & 0x7F) | (0x80 if self.marker else 0),
                self.sequence & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc & 0xFFFFFFFF,
            )
        ]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension_profile is not None:
            parts.append(_EXT_HEADER.pack(self.extension_profile, len(self.extension) // 4))
            parts.append(self.extension)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)

    def __bytes__(self) -> bytes:
        return self.serialize()


@dataclass(frozen=True, slots=True)
class RtpStats:
    """Snapshot of one channel's receive statistics.

    ``received`` counts every packet accepted by A.1 validation (duplicates included, as
    RFC 3550 §6.4.1 counts them); ``lost`` is expected minus unique received, never below
    zero. ``late`` and ``discarded`` are counted by the caller (jitter buffer, latch,
    parser) through :meth:`RtpSource.note_late` / :meth:`RtpSource.note_discarded`.
    """

    received: int
    expected: int
    lost: int
    duplicates: int
    reordered: int
    jitter_ms: float
    late: int
    discarded: int
    ssrc_changes: int


class RtpSource:
    """Per-source receive state (RFC 3550 Appendix A.1 validation, A.3 loss, A.8 jitter).

    One per channel. :meth:`update` is called for every parsed packet; it follows A.1's
    ``update_seq``: a new source is on probation until ``MIN_SEQUENTIAL`` packets in
    sequence arrive; a jump of more than ``MAX_DROPOUT`` ahead or ``MAX_MISORDER`` behind
    is a possible restart, confirmed when the next packet follows it (``bad_seq``).
    A change of SSRC restarts the whole state (the sender restarted or re-INVITE changed
    the stream) and is counted in ``ssrc_changes``.
    """

    __slots__ = (
        "_dup_mask",
        "_has_transit",
        "_transit",
        "bad_seq",
        "base_seq",
        "clock_rate",
        "cycles",
        "discarded",
        "duplicates",
        "expected_prior",
        "jitter",
        "late",
        "max_seq",
        "probation",
        "received",
        "received_prior",
        "reordered",
        "ssrc",
        "ssrc_changes",
    )

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self.ssrc: int | None = None
        self.ssrc_changes = 0
        self.discarded = 0
        self.late = 0
        self._reset(0)
        self.probation = MIN_SEQUENTIAL

    # -- A.1 -------------------------------------------------------------------------
    def _reset(self, seq: int) -> None:
        self._init_seq(seq)
        self.max_seq = (seq - 1) & 0xFFFF
        self.probation = MIN_SEQUENTIAL
        self.jitter = 0.0
        self._transit = 0
        self._has_transit = False
        self.duplicates = 0
        self.reordered = 0

    def _init_seq(self, seq: int) -> None:
        """A.1 ``init_seq``: a new base for the sequence space."""
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self._dup_mask = 1

    def update(
        self, seq: int, ts: int, ssrc: int, arrival_ts: int, jitter: bool = True
    ) -> bool:
        """Account one packet (A.1 ``update_seq`` + A.8 jitter).

        Args:
            seq, ts, ssrc: from the RTP header.
            arrival_ts: arrival time in RTP timestamp units (``int(now * clock_rate)``).
            jitter: False to keep the packet out of the A.8 estimate while still counting
                it: RFC 4733 packets repeat their event's start timestamp for up to
                seconds, which A.8 would read as huge transit jumps.

        Returns:
            True if the packet is valid per A.1 (the source is out of probation and the
            packet is in sequence, reordered or a duplicate), False during probation or
            for a large jump that has not been confirmed yet. A False packet may still be
            played by the caller; A.1 only says it does not count.
        """
        if ssrc != self.ssrc:
            if self.ssrc is not None:
                self.ssrc_changes += 1
                logger.info("RTP SSRC changed %08x -> %08x", self.ssrc, ssrc)
            self.ssrc = ssrc
            self._reset(seq)
        valid = self._update_seq(seq)
        if valid and jitter:
            self._update_jitter(ts, arrival_ts)
        return valid

    def _update_seq(self, seq: int) -> bool:
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta == 0:
            self.duplicates += 1
        elif udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
            self._dup_mask = ((self._dup_mask << udelta) | 1) & _DUP_MASK
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                # Two sequential packets after a big jump: the sender restarted (A.1).
                self._init_seq(seq)
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        else:
            back = RTP_SEQ_MOD - udelta
            if back < _DUP_WINDOW and self._dup_mask >> back & 1:
                self.duplicates += 1
            else:
                self.reordered += 1
                if back < _DUP_WINDOW:
                    self._dup_mask |= 1 << back
        self.received += 1
        return True

    def _update_jitter(self, ts: int, arrival_ts: int) -> None:
        """A.8: J += (|D| - J) / 16, D the change in relative transit time."""
        transit = (arrival_ts - ts) & 0xFFFFFFFF
        if self._has_transit:
            d = (transit - self._transit) & 0xFFFFFFFF
            if d >= 0x80000000:
                d = 0x100000000 - d
            self.jitter += (d - self.jitter) / 16.0
        self._transit = transit
        self._has_transit = True

    # -- A.3 -------------------------------------------------------------------------
    @property
    def extended_max_seq(self) -> int:
        """Extended highest sequence number received (cycles + max_seq)."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """A.3: packets expected = extended max - base + 1 (0 before validation)."""
        if self.ssrc is None or self.probation:
            return 0
        return self.extended_max_seq - self.base_seq + 1

    @property
    def cumulative_lost(self) -> int:
        """A.3 cumulative lost (expected - received, duplicates counted as received),
        clamped to the 24-bit signed field of a report block."""
        lost = self.expected - self.received
        return max(-0x800000, min(0x7FFFFF, lost))

    def report_interval(self) -> tuple[int, int, int, int]:
        """Numbers for one RTCP report block, advancing the A.3 interval counters.

        Returns:
            ``(fraction_lost, cumulative_lost, extended_max_seq, jitter)``; fraction is
            the 8-bit fixed-point loss fraction since the previous call, jitter is in
            timestamp units, truncated as in A.8.
        """
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        return (
            fraction,
            self.cumulative_lost,
            self.extended_max_seq & 0xFFFFFFFF,
            int(self.jitter),
        )

    # -- batch receivers ---------------------------------------------------------------
    def steady_state(self) -> tuple[int, int, int, int, float, int, int] | None:
        """``(ssrc, max_seq, cycles, received, jitter, transit, dup_mask)`` when the source
        is validated (out of probation, a transit time known), else None.

        A batch receiver may then apply the in-sequence case of :meth:`update` (same SSRC,
        ``0 < seq - max_seq < MAX_DROPOUT``) to these numbers itself, for many sources at
        once, and write them back with :meth:`set_steady_state` before anything else uses
        this object; every other case must go through :meth:`update`.
        """
        if self.ssrc is None or self.probation or not self._has_transit:
            return None
        return (self.ssrc, self.max_seq, self.cycles, self.received, self.jitter,
                self._transit, self._dup_mask)

    def set_steady_state(self, max_seq: int, cycles: int, received: int, jitter: float,
                         transit: int, dup_mask: int) -> None:
        """Write back what a batch receiver computed from :meth:`steady_state`."""
        self.max_seq = max_seq
        self.cycles = cycles
        self.received = received
        self.jitter = jitter
        self._transit = transit
        self._dup_mask = dup_mask

    # -- counters kept for the caller --------------------------------------------------
    def note_late(self, count: int = 1) -> None:
        """Count packets that arrived after their playout time (from the jitter buffer)."""
        self.late += count

    def note_discarded(self, count: int = 1) -> None:
        """Count packets dropped before this source saw them (bad header, foreign addr)."""
        self.discarded += count

    def stats(self) -> RtpStats:
        """A snapshot for CDRs, CTI and logs."""
        expected = self.expected
        unique = self.received - self.duplicates
        return RtpStats(
            received=self.received,
            expected=expected,
            lost=max(0, expected - unique),
            duplicates=self.duplicates,
            reordered=self.reordered,
            jitter_ms=self.jitter * 1000.0 / self.clock_rate,
            late=self.late,
            discarded=self.discarded,
            ssrc_changes=self.ssrc_changes,
        )


SequenceTracker = RtpSource
"""Alias: the A.1 sequence tracker is the same object as the per-source state."""
