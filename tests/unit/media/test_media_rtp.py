"""RTP packets (RFC 3550 §5.1) and receive statistics (Appendix A.1, A.3, A.8).

Vectors are written by hand from the §5.1 header diagram.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.media.rtp import (
    MAX_DROPOUT,
    RtpError,
    RtpPacket,
    RtpSource,
    SequenceTracker,
    build_packet,
    parse_header_fast,
)


# V=2 P=0 X=0 CC=0 | M=0 PT=0 | seq 0x1234 | ts 0x11223344 | SSRC 0xdeadbeef | payload
def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


PLAIN = hx("80001234 11223344 deadbeef") + b"\xff" * 160
# V=2 CC=2, M=1 PT=8, two CSRCs, 4-byte payload
WITH_CSRC = hx("82 88 0001 00000010 00000001 0000000a 0000000b 01020304")
# V=2 X=1, PT=0, extension profile 0xBEDE length 1 word, payload "ab"
WITH_EXT = hx("90 00 0002 00000020 00000002 bede0001 10ff0000 6162")
# V=2 P=1, payload "xyz" then 3 padding octets (last = count 3)
WITH_PAD = hx("a0 00 0003 00000030 00000003 78797a 000003")


def test_parse_plain_vector() -> None:
    p = RtpPacket.parse(PLAIN)
    assert (p.payload_type, p.sequence, p.timestamp, p.ssrc) == (0, 0x1234, 0x11223344, 0xDEADBEEF)
    assert not p.marker and p.csrc == () and p.extension_profile is None and p.padding == 0
    assert p.payload == b"\xff" * 160
    assert bytes(p) == PLAIN


def test_parse_csrc_marker_vector() -> None:
    p = RtpPacket.parse(WITH_CSRC)
    assert p.marker and p.payload_type == 8 and p.sequence == 1
    assert p.csrc == (10, 11)
    assert p.payload == b"\x01\x02\x03\x04"
    assert p.serialize() == WITH_CSRC


def test_parse_extension_vector() -> None:
    p = RtpPacket.parse(WITH_EXT)
    assert p.extension_profile == 0xBEDE
    assert p.extension == bytes.fromhex("10ff0000")
    assert p.payload == b"ab"
    assert bytes(p) == WITH_EXT


def test_parse_padding_vector() -> None:
    p = RtpPacket.parse(WITH_PAD)
    assert p.payload == b"xyz" and p.padding == 3
    assert bytes(p) == WITH_PAD


@pytest.mark.parametrize("data", [PLAIN, WITH_CSRC, WITH_EXT, WITH_PAD])
def test_fast_parser_agrees(data: bytes) -> None:
    p = RtpPacket.parse(data)
    hdr = parse_header_fast(data)
    assert hdr is not None
    pt, seq, ts, ssrc, marker, off, end = hdr
    assert (pt, seq, ts, ssrc, marker) == (
        p.payload_type,
        p.sequence,
        p.timestamp,
        p.ssrc,
        p.marker,
    )
    assert data[off:end] == p.payload


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too short"),
        (PLAIN[:11], "too short"),
        (b"\x40" + PLAIN[1:], "version"),  # V=1
        (b"\x00" + PLAIN[1:], "version"),  # V=0
        (bytes.fromhex("8f00000100000001 00000001"), "CSRC"),  # CC=15, no room
        (bytes.fromhex("9000000100000001 00000001 bede"), "extension"),  # ext header cut
        (bytes.fromhex("9000000100000001 00000001 bede0004 00000000"), "extension"),
        (bytes.fromhex("a000000100000001 00000001 00"), "padding count is 0"),
        (bytes.fromhex("a000000100000001 00000001 0009"), "padding"),
    ],
)
def test_malformed_packets_raise(data: bytes, reason: str) -> None:
    with pytest.raises(RtpError, match=reason):
        RtpPacket.parse(data)
    assert parse_header_fast(data) is None


def test_build_packet_matches_dataclass_and_wraps() -> None:
    data = build_packet(0, 0x1234, 0x11223344, 0xDEADBEEF, b"\xff" * 160)
    assert data == PLAIN
    wrapped = build_packet(101, 65536 + 5, (1 << 32) + 7, 1, b"", marker=True)
    assert wrapped == bytes.fromhex("80e50005 00000007 00000001".replace(" ", ""))


def test_round_trip_all_fields() -> None:
    p = RtpPacket(96, 65535, 0xFFFFFFFF, 7, b"data", True, (1, 2, 3), 0x1000, b"\x00" * 8, 4)
    assert RtpPacket.parse(bytes(p)) == p


def test_serialize_rejects_bad_fields() -> None:
    with pytest.raises(RtpError):
        RtpPacket(0, 0, 0, 0, b"", extension_profile=1, extension=b"abc").serialize()
    with pytest.raises(RtpError):
        RtpPacket(0, 0, 0, 0, b"", csrc=tuple(range(16))).serialize()


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.binary(max_size=80))
def test_random_bytes_only_raise_rtp_error(data: bytes) -> None:
    try:
        p = RtpPacket.parse(data)
    except RtpError:
        assert parse_header_fast(data) is None
        return
    hdr = parse_header_fast(data)
    assert hdr is not None
    assert data[hdr[5] : hdr[6]] == p.payload
    assert RtpPacket.parse(bytes(p)) == p


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.integers(0, 127),
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=40),
    st.booleans(),
    st.lists(st.integers(0, 2**32 - 1), max_size=15),
    st.one_of(st.none(), st.integers(0, 65535)),
    st.integers(0, 4).map(lambda w: b"\x5a" * 4 * w),
    st.integers(0, 255),
)
def test_generated_packets_round_trip(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes,
    marker: bool,
    csrc: list[int],
    profile: int | None,
    ext: bytes,
    padding: int,
) -> None:
    p = RtpPacket(
        pt,
        seq,
        ts,
        ssrc,
        payload,
        marker,
        tuple(csrc),
        profile,
        ext if profile is not None else b"",
        padding,
    )
    data = p.serialize()
    assert RtpPacket.parse(data) == p
    hdr = parse_header_fast(data)
    assert hdr is not None and data[hdr[5] : hdr[6]] == payload


# -- Appendix A.1: sequence validation --------------------------------------------------
def feed(src: RtpSource, seqs: list[int], ssrc: int = 1) -> list[bool]:
    return [src.update(s & 0xFFFF, 160 * i, ssrc, 160 * i) for i, s in enumerate(seqs)]


def test_probation_needs_two_sequential_packets() -> None:
    src = RtpSource()
    assert feed(src, [100, 101, 102]) == [False, True, True]
    assert src.received == 2 and src.expected == 2
    assert src.stats().lost == 0


def test_probation_restarts_on_out_of_order() -> None:
    src = RtpSource()
    assert feed(src, [100, 300, 301]) == [False, False, True]
    assert src.base_seq == 301


def test_loss_counted_and_fraction_lost() -> None:
    src = RtpSource()
    seqs = [s for s in range(0, 102) if s not in (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)]
    feed(src, seqs)
    # first packet (0) is probation; expected runs base 1 .. 101 = 101, received 91
    assert src.expected == 101 and src.received == 91
    assert src.stats().lost == 10
    fraction, cumulative, ext, _ = src.report_interval()
    assert cumulative == 10 and ext == 101
    assert fraction == (10 << 8) // 101  # A.3 fixed point
    # next interval: no new loss
    feed_more = [src.update(s, 0, 1, 0) for s in range(102, 112)]
    assert all(feed_more)
    assert src.report_interval()[0] == 0


def test_sequence_wraparound_counts_cycles() -> None:
    src = RtpSource()
    feed(src, list(range(65530, 65536 + 20)))
    assert src.cycles == 65536
    assert src.extended_max_seq == 65536 + 19
    assert src.expected == 25 and src.received == 25


def test_duplicates_and_reordering() -> None:
    src = RtpSource()
    feed(src, [1, 2, 3, 5, 4, 4, 6, 6])
    assert src.duplicates == 2
    assert src.reordered == 1
    stats = src.stats()
    assert stats.lost == 0 and stats.expected == 5  # base 2 .. 6


def test_large_jump_needs_confirmation_then_restarts() -> None:
    src = RtpSource()
    feed(src, [10, 11, 12])
    jump = 12 + MAX_DROPOUT + 500
    assert not src.update(jump, 0, 1, 0)  # unconfirmed: bad_seq set
    assert src.update(jump + 1, 0, 1, 0)  # sequential after the jump: restart
    assert src.base_seq == jump + 1 and src.received == 1


def test_ssrc_change_restarts() -> None:
    src = RtpSource()
    feed(src, [1, 2, 3], ssrc=1)
    assert feed(src, [500, 501], ssrc=2) == [False, True]
    assert src.ssrc == 2 and src.stats().ssrc_changes == 1


def test_sequence_tracker_alias() -> None:
    assert SequenceTracker is RtpSource


# -- Appendix A.8: interarrival jitter ------------------------------------------------
def test_jitter_matches_worked_computation() -> None:
    src = RtpSource(8000)
    delays = [0, 80, 0, 160, 40]  # extra transit per packet, timestamp units
    for i, delay in enumerate(delays):
        src.update(100 + i, 160 * i, 9, 1000 + 160 * i + delay)
    # probation drops packet 0 from jitter; transits of packets 1..4: 80, 0, 160, 40.
    # |D| = 80, 160, 120 ; J = 80/16 = 5 ; 5 + (160-5)/16 = 14.6875 ;
    # 14.6875 + (120 - 14.6875)/16 = 21.26953125
    assert src.jitter == pytest.approx(21.26953125)
    assert src.stats().jitter_ms == pytest.approx(21.26953125 / 8)
    assert src.report_interval()[3] == 21


def test_jitter_handles_timestamp_wraparound() -> None:
    src = RtpSource()
    base = 2**32 - 320
    for i in range(6):
        src.update(i, (base + 160 * i) & 0xFFFFFFFF, 1, 5_000_000 + 160 * i)
    assert src.jitter == pytest.approx(0.0)


def test_counters_from_caller() -> None:
    src = RtpSource()
    src.note_late()
    src.note_discarded(3)
    s = src.stats()
    assert (s.late, s.discarded) == (1, 3)


def test_jitter_can_skip_telephone_event_packets() -> None:
    src = RtpSource()
    for i in range(5):
        src.update(i, 160 * i, 1, 160 * i)
    for i in range(5, 15):  # RFC 4733 packets: timestamp frozen at the event start
        src.update(i, 800, 1, 160 * i, jitter=False)
    assert src.jitter == 0.0 and src.received == 14
