"""RTCP packets and a per-stream reporting session (RFC 3550 §6).

Pure core: no sockets, no clock reads. ``now`` (monotonic seconds) drives intervals and
DLSR; ``wall`` (Unix seconds, from the shell's wall clock) gives NTP timestamps.

Implemented: SR (§6.4.1), RR (§6.4.2), SDES (§6.5, CNAME and any item), BYE (§6.6),
compound packets (§6.1); other packet types (APP, feedback, XR) are kept as
:class:`RtcpUnknown` so a compound packet always round-trips. The report interval is
§6.3 simplified for a two-party call: a 5 s minimum, randomized by a factor 0.5..1.5
with an injected ``random.Random`` (no hidden randomness), the first report after half
the minimum (§6.3 "initial").

Round-trip time (§6.4.1): the receiver of our SR echoes its middle 32 NTP bits as LSR and
the delay it held it as DLSR, both in 1/65536 s; when that report block arrives at NTP
time A, ``rtt = A - LSR - DLSR``.
"""

from __future__ import annotations

import logging
import random
import struct
from dataclasses import dataclass, field

from switch.media.rtp import RtpError, RtpSource

logger = logging.getLogger(__name__)

__all__ = [
    "NTP_UNIX_OFFSET",
    "RTCP_BYE",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_SR",
    "ReportBlock",
    "RtcpBye",
    "RtcpError",
    "RtcpReceiverReport",
    "RtcpSdes",
    "RtcpSenderReport",
    "RtcpSession",
    "RtcpUnknown",
    "SdesChunk",
    "ntp_from_unix",
    "ntp_middle32",
    "parse_compound",
    "rtt_seconds",
    "serialize_compound",
]

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
SDES_CNAME = 1
# Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix epoch), RFC 868 / RFC 5905.
NTP_UNIX_OFFSET = 2_208_988_800
# §6.2 / §6.3: the minimum report interval for a session.
RTCP_MIN_INTERVAL_S = 5.0
# Bound on remembered peer SRs (one stream per call; a few SSRC changes at most).
_MAX_REMOTE_SOURCES = 8

_HDR = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IIIIII")
_SR_INFO = struct.Struct("!IIIIII")  # ssrc, ntp msw, ntp lsw, rtp ts, packets, octets


class RtcpError(RtpError):
    """A malformed RTCP packet (remote error)."""


def ntp_from_unix(wall: float) -> int:
    """64-bit NTP timestamp (32.32 fixed point, §4) for a Unix time in seconds."""
    seconds, fraction = divmod(wall + NTP_UNIX_OFFSET, 1.0)
    return ((int(seconds) & 0xFFFFFFFF) << 32) | min(0xFFFFFFFF, int(fraction * (1 << 32)))


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp: the LSR field (§6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


def rtt_seconds(arrival_ntp32: int, lsr: int, dlsr: int) -> float | None:
    """Round-trip time from a report block (§6.4.1): ``A - LSR - DLSR`` in 1/65536 s.

    Returns None when the block carries no SR echo (LSR = 0) or the result is negative
    (clock step, garbage), since a negative RTT tells us nothing.
    """
    if lsr == 0:
        return None
    rtt = (arrival_ntp32 - lsr - dlsr) & 0xFFFFFFFF
    if rtt >= 0x80000000:
        return None
    return rtt / 65536.0


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (§6.4.1); ``cumulative_lost`` is 24-bit signed."""

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    ext_highest_seq: int
    jitter: int
    lsr: int
    dlsr: int

    def serialize(self) -> bytes:
        return _BLOCK.pack(
            self.ssrc,
            ((self.fraction_lost & 0xFF) << 24) | (self.cumulative_lost & 0xFFFFFF),
            self.ext_highest_seq & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.lsr & 0xFFFFFFFF,
            self.dlsr & 0xFFFFFFFF,
        )

    @classmethod
    def parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, word, ext, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        lost = word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, word >> 24, lost, ext, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class RtcpSenderReport:
    """SR, PT=200 (§6.4.1)."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        body = _SR_INFO.pack(
            self.ssrc,
            (self.ntp_timestamp >> 32) & 0xFFFFFFFF,
            self.ntp_timestamp & 0xFFFFFFFF,
            self.rtp_timestamp & 0xFFFFFFFF,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        ) + b"".join(b.serialize() for b in self.reports)
        return _header(len(self.reports), RTCP_SR, body)


@dataclass(frozen=True, slots=True)
class RtcpReceiverReport:
    """RR, PT=201 (§6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(b.serialize() for b in self.reports)
        return _header(len(self.reports), RTCP_RR, body)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk: an SSRC and its (type, text) items (§6.5)."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    @property
    def cname(self) -> str | None:
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(frozen=True, slots=True)
class RtcpSdes:
    """SDES, PT=202 (§6.5)."""

    chunks: tuple[SdesChunk, ...] = ()

    def serialize(self) -> bytes:
        out = bytearray()
        for chunk in self.chunks:
            part = bytearray(struct.pack("!I", chunk.ssrc))
            for kind, value in chunk.items:
                if len(value) > 255:
                    raise RtcpError("SDES item longer than 255 octets")
                part += bytes((kind, len(value))) + value
            # A null item ends the list; then pad to a 32-bit boundary (§6.5).
            part += b"\x00" * (4 - len(part) % 4)
            out += part
        return _header(len(self.chunks), RTCP_SDES, bytes(out))


@dataclass(frozen=True, slots=True)
class RtcpBye:
    """BYE, PT=203 (§6.6)."""

    ssrcs: tuple[int, ...] = ()
    reason: bytes = b""

    def serialize(self) -> bytes:
        body = b"".join(struct.pack("!I", s) for s in self.ssrcs)
        if self.reason:
            if len(self.reason) > 255:
                raise RtcpError("BYE reason longer than 255 octets")
            reason = bytes((len(self.reason),)) + self.reason
            body += reason + b"\x00" * (-len(reason) % 4)
        return _header(len(self.ssrcs), RTCP_BYE, body)


@dataclass(frozen=True, slots=True)
class RtcpUnknown:
    """Any other RTCP packet type, kept verbatim (APP, RTPFB, PSFB, XR...)."""

    packet_type: int
    count: int
    body: bytes = b""

    def serialize(self) -> bytes:
        return _header(self.count, self.packet_type, self.body)


RtcpPacket = RtcpSenderReport | RtcpReceiverReport | RtcpSdes | RtcpBye | RtcpUnknown


def _header(count: int, packet_type: int, body: bytes) -> bytes:
    if count > 31:
        raise RtcpError("at most 31 items per RTCP packet")
    if len(body) % 4:
        raise RtcpError("RTCP body must be a multiple of 4 octets")
    return _HDR.pack(0x80 | count, packet_type, len(body) // 4) + body


def serialize_compound(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    """Concatenate packets into one compound datagram (§6.1)."""
    return b"".join(p.serialize() for p in packets)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP datagram (§6.1, validity checks of Appendix A.2).

    Raises:
        RtcpError: empty, truncated, version != 2, lengths that do not add up, padding on
            anything but the last packet, or an SR/RR/SDES/BYE body too short for its count.
    """
    n = len(data)
    if n < 4:
        raise RtcpError(f"RTCP datagram too short: {n} bytes")
    packets: list[RtcpPacket] = []
    off = 0
    while off < n:
        if off + 4 > n:
            raise RtcpError("truncated RTCP header")
        b0, pt, words = _HDR.unpack_from(data, off)
        if b0 >> 6 != 2:
            raise RtcpError(f"RTCP version {b0 >> 6} != 2")
        end = off + 4 + 4 * words
        if end > n:
            raise RtcpError("RTCP length runs past the datagram end")
        body_end = end
        if b0 & 0x20:
            if end != n:
                raise RtcpError("padding allowed on the last packet only (A.2)")
            pad = data[end - 1]
            if pad == 0 or off + 4 + pad > end:
                raise RtcpError("bad RTCP padding count")
            body_end = end - pad
        packets.append(_parse_one(pt, b0 & 0x1F, data[off + 4 : body_end]))
        off = end
    return packets


def _parse_one(pt: int, count: int, body: bytes) -> RtcpPacket:
    if pt == RTCP_SR:
        if len(body) < 24 + 24 * count:
            raise RtcpError("SR shorter than its report count")
        ssrc, msw, lsw, rtp_ts, packets, octets = _SR_INFO.unpack_from(body, 0)
        blocks = tuple(ReportBlock.parse(body, 24 + 24 * i) for i in range(count))
        return RtcpSenderReport(ssrc, (msw << 32) | lsw, rtp_ts, packets, octets, blocks)
    if pt == RTCP_RR:
        if len(body) < 4 + 24 * count:
            raise RtcpError("RR shorter than its report count")
        blocks = tuple(ReportBlock.parse(body, 4 + 24 * i) for i in range(count))
        return RtcpReceiverReport(struct.unpack_from("!I", body, 0)[0], blocks)
    if pt == RTCP_SDES:
        return RtcpSdes(_parse_sdes(body, count))
    if pt == RTCP_BYE:
        if len(body) < 4 * count:
            raise RtcpError("BYE shorter than its SSRC count")
        ssrcs = struct.unpack_from(f"!{count}I", body, 0)
        reason = b""
        pos = 4 * count
        if pos < len(body):
            length = body[pos]
            if pos + 1 + length > len(body):
                raise RtcpError("BYE reason runs past the packet end")
            reason = bytes(body[pos + 1 : pos + 1 + length])
        return RtcpBye(tuple(ssrcs), reason)
    return RtcpUnknown(pt, count, bytes(body))


def _parse_sdes(body: bytes, count: int) -> tuple[SdesChunk, ...]:
    chunks = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(body):
            raise RtcpError("SDES chunk truncated")
        ssrc = struct.unpack_from("!I", body, pos)[0]
        pos += 4
        items = []
        while True:
            if pos >= len(body):
                raise RtcpError("SDES item list not terminated")
            kind = body[pos]
            if kind == 0:
                pos += 1
                pos += -pos % 4  # skip the null padding to the next 32-bit boundary
                break
            if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                raise RtcpError("SDES item runs past the packet end")
            length = body[pos + 1]
            items.append((kind, bytes(body[pos + 2 : pos + 2 + length])))
            pos += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return tuple(chunks)


@dataclass(slots=True)
class _RemoteSr:
    lsr: int
    received_at: float


@dataclass(slots=True)
class RtcpSession:
    """RTCP for one RTP stream: builds our reports and digests the peer's (§6.3, §6.4).

    The shell calls :meth:`on_rtp_sent` for each packet sent, :meth:`due` /
    :meth:`next_report_at` to schedule, :meth:`build_report` to get the compound datagram
    (SR if we sent RTP since the last report, else RR; always with SDES CNAME, §6.1), and
    :meth:`ingest` for every RTCP datagram received.
    """

    ssrc: int
    cname: str
    clock_rate: int = 8000
    rng: random.Random | None = None
    min_interval_s: float = RTCP_MIN_INTERVAL_S
    packet_count: int = 0
    octet_count: int = 0
    rtt_ms: float | None = None
    remote_fraction_lost: float | None = None
    remote_cumulative_lost: int | None = None
    remote_jitter_ms: float | None = None
    remote_cname: str | None = None
    bye_received: bool = False
    _next_at: float | None = field(default=None, init=False)
    _sent_since_report: bool = field(default=False, init=False)
    _last_rtp_ts: int = field(default=0, init=False)
    _last_rtp_at: float = field(default=0.0, init=False)
    _remote_sr: dict[int, _RemoteSr] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.rng is None:
            # Deterministic but different per stream, so sessions do not report in step
            # (§6.3 randomizes precisely to avoid synchronized reports).
            self.rng = random.Random(self.ssrc)

    def on_rtp_sent(self, payload_len: int, rtp_ts: int, now: float) -> None:
        """Count one sent RTP packet (SR sender info, §6.4.1)."""
        self.packet_count = (self.packet_count + 1) & 0xFFFFFFFF
        self.octet_count = (self.octet_count + payload_len) & 0xFFFFFFFF
        self._last_rtp_ts = rtp_ts
        self._last_rtp_at = now
        self._sent_since_report = True

    def interval(self) -> float:
        """§6.3 simplified: the minimum interval times a uniform 0.5..1.5 factor."""
        assert self.rng is not None
        return self.min_interval_s * self.rng.uniform(0.5, 1.5)

    def next_report_at(self, now: float) -> float:
        """The deadline of the next report; the first is after half an interval (§6.3)."""
        if self._next_at is None:
            self._next_at = now + self.interval() / 2.0
        return self._next_at

    def due(self, now: float) -> bool:
        return now >= self.next_report_at(now)

    def build_report(
        self, now: float, wall: float, source: RtpSource | None = None, bye: bool = False
    ) -> bytes:
        """Build our compound report and schedule the next one.

        Args:
            now: monotonic seconds (DLSR, RTP timestamp extrapolation, scheduling).
            wall: Unix time (NTP timestamp of the SR).
            source: receive state of the peer's stream, for the report block, if any.
            bye: append a BYE (§6.6) — the call is ending.
        """
        blocks: tuple[ReportBlock, ...] = ()
        if source is not None and source.ssrc is not None and source.expected > 0:
            fraction, lost, ext_seq, jitter = source.report_interval()
            lsr = dlsr = 0
            remote = self._remote_sr.get(source.ssrc)
            if remote is not None:
                lsr = remote.lsr
                dlsr = int((now - remote.received_at) * 65536) & 0xFFFFFFFF
            blocks = (ReportBlock(source.ssrc, fraction, lost, ext_seq, jitter, lsr, dlsr),)
        packets: list[RtcpPacket] = []
        if self._sent_since_report:
            rtp_ts = self._last_rtp_ts + int((now - self._last_rtp_at) * self.clock_rate)
            packets.append(
                RtcpSenderReport(
                    self.ssrc,
                    ntp_from_unix(wall),
                    rtp_ts & 0xFFFFFFFF,
                    self.packet_count,
                    self.octet_count,
                    blocks,
                )
            )
        else:
            packets.append(RtcpReceiverReport(self.ssrc, blocks))
        cname = self.cname.encode("utf-8")[:255]
        packets.append(RtcpSdes((SdesChunk(self.ssrc, ((SDES_CNAME, cname),)),)))
        if bye:
            packets.append(RtcpBye((self.ssrc,)))
        self._sent_since_report = False
        self._next_at = now + self.interval()
        return serialize_compound(packets)

    def ingest(self, data: bytes, now: float, wall: float) -> list[RtcpPacket]:
        """Digest a received compound packet; updates rtt_ms and the remote's view of us.

        Raises:
            RtcpError: malformed datagram (nothing is updated then).
        """
        packets = parse_compound(data)
        arrival32 = ntp_middle32(ntp_from_unix(wall))
        for packet in packets:
            if isinstance(packet, RtcpSenderReport):
                if len(self._remote_sr) >= _MAX_REMOTE_SOURCES:
                    self._remote_sr.pop(next(iter(self._remote_sr)))
                self._remote_sr[packet.ssrc] = _RemoteSr(ntp_middle32(packet.ntp_timestamp), now)
                self._take_blocks(packet.reports, arrival32)
            elif isinstance(packet, RtcpReceiverReport):
                self._take_blocks(packet.reports, arrival32)
            elif isinstance(packet, RtcpSdes):
                for chunk in packet.chunks:
                    if chunk.cname is not None:
                        self.remote_cname = chunk.cname
            elif isinstance(packet, RtcpBye):
                self.bye_received = True
        return packets

    def _take_blocks(self, blocks: tuple[ReportBlock, ...], arrival32: int) -> None:
        for block in blocks:
            if block.ssrc != self.ssrc:
                continue
            self.remote_fraction_lost = block.fraction_lost / 256.0
            self.remote_cumulative_lost = block.cumulative_lost
            self.remote_jitter_ms = block.jitter * 1000.0 / self.clock_rate
            rtt = rtt_seconds(arrival32, block.lsr, block.dlsr)
            if rtt is not None:
                self.rtt_ms = rtt * 1000.0
