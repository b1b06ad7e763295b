"""RTCP (RFC 3550 §6): packet vectors by hand, compound parsing, RTT, session reports."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.media.rtcp import (
    NTP_UNIX_OFFSET,
    ReportBlock,
    RtcpBye,
    RtcpError,
    RtcpReceiverReport,
    RtcpSdes,
    RtcpSenderReport,
    RtcpSession,
    RtcpUnknown,
    SdesChunk,
    ntp_from_unix,
    ntp_middle32,
    parse_compound,
    rtt_seconds,
    serialize_compound,
)
from switch.media.rtp import RtpSource

BLOCK = ReportBlock(0x22222222, 25, -1, 0x00010005, 80, 0xB7052000, 0x00054000)
BLOCK_HEX = "22222222 19ffffff 00010005 00000050 b7052000 00054000"
# SR: V=2 RC=1 PT=200 length 12 (13 words) | SSRC | NTP | RTP ts | packets | octets | block
SR_HEX = "81c8000c 11111111 b7108000 80000000 00000640 0000000a 00000640 " + BLOCK_HEX
# RR: V=2 RC=1 PT=201 length 7
RR_HEX = "81c90007 11111111 " + BLOCK_HEX
# SDES: one chunk, CNAME "user@host" (9 octets), null terminator, no extra pad needed
SDES_HEX = "81ca0004 11111111 0109 75736572 40686f73 74 00"
# BYE: SC=1, reason "bye" (length 3) padded to a word
BYE_HEX = "81cb0002 11111111 03627965"


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_sender_report_vector() -> None:
    (sr,) = parse_compound(h(SR_HEX))
    assert isinstance(sr, RtcpSenderReport)
    assert sr.ssrc == 0x11111111
    assert sr.ntp_timestamp == 0xB710800080000000
    assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (1600, 10, 1600)
    assert sr.reports == (BLOCK,)
    assert sr.serialize() == h(SR_HEX)


def test_receiver_report_vector_signed_cumulative_lost() -> None:
    (rr,) = parse_compound(h(RR_HEX))
    assert isinstance(rr, RtcpReceiverReport)
    block = rr.reports[0]
    assert block.cumulative_lost == -1  # 0xffffff is -1 in 24-bit two's complement
    assert block.fraction_lost == 25
    assert rr.serialize() == h(RR_HEX)


def test_sdes_and_bye_vectors() -> None:
    sdes, bye = parse_compound(h(SDES_HEX + BYE_HEX))
    assert isinstance(sdes, RtcpSdes) and isinstance(bye, RtcpBye)
    assert sdes.chunks[0].cname == "user@host"
    assert bye.ssrcs == (0x11111111,) and bye.reason == b"bye"
    assert serialize_compound([sdes, bye]) == h(SDES_HEX + BYE_HEX)


def test_compound_round_trip_with_unknown_type() -> None:
    packets = [
        RtcpReceiverReport(5, (BLOCK, BLOCK)),
        RtcpSdes((SdesChunk(5, ((1, b"a@b"), (2, b"name"))), SdesChunk(6, ()))),
        RtcpUnknown(204, 1, b"\x00\x00\x00\x05name"),
        RtcpBye((5, 6)),
    ]
    data = serialize_compound(packets)
    assert parse_compound(data) == packets


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x81\xc9",
        h("41c90001 00000001"),  # version 1
        h("81c90007 11111111"),  # length runs past the end
        h("81c90001 11111111"),  # RR claims one block, has none
        h("a1c90001 11111111 81c90001 11111111"),  # padding not on the last packet
        h("81ca0001 11111111"),  # SDES item list not terminated
        h("81ca0002 11111111 01ff0000"),  # SDES item longer than the packet
        h("81cb0001 00000001 02cb0001"),  # BYE: 2 SSRCs in one word
    ],
)
def test_malformed_rtcp_raises(data: bytes) -> None:
    with pytest.raises(RtcpError):
        parse_compound(data)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=120))
def test_random_bytes_only_raise_rtcp_error(data: bytes) -> None:
    try:
        packets = parse_compound(data)
    except RtcpError:
        return
    assert isinstance(packets, list) and packets


def test_ntp_helpers() -> None:
    assert ntp_from_unix(0.0) == NTP_UNIX_OFFSET << 32
    assert ntp_from_unix(0.5) == (NTP_UNIX_OFFSET << 32) | 0x80000000
    assert ntp_middle32(0xB710800080000000) == 0x80008000


def test_rtt_worked_example_rfc3550_6_4_1() -> None:
    # §6.4.1 figure: A = 0xb710:8000 (46864.500 s), LSR = 0xb705:2000 (46853.125 s),
    # DLSR = 0x0005:4000 (5.250 s) -> delay 0x0006:2000 = 6.125 s.
    assert rtt_seconds(0xB7108000, 0xB7052000, 0x00054000) == pytest.approx(6.125)
    assert rtt_seconds(0xB7108000, 0, 0) is None  # no SR echoed
    assert rtt_seconds(0x00010000, 0x00020000, 0) is None  # negative: nonsense


def test_session_rtt_between_two_peers() -> None:
    wall0 = 1_700_000_000.0
    a = RtcpSession(ssrc=0xA, cname="a@x", rng=random.Random(1))
    b = RtcpSession(ssrc=0xB, cname="b@y", rng=random.Random(2))
    # A sends 50 packets of media so its report is an SR.
    for i in range(50):
        a.on_rtp_sent(160, 160 * i, 0.02 * i)
    # B receives them (its RtpSource), with a one-way delay of 50 ms.
    b_src = RtpSource()
    for i in range(50):
        b_src.update(i, 160 * i, 0xA, 160 * i + 400)
    sr = a.build_report(now=1.0, wall=wall0 + 1.0)
    kinds = [type(p) for p in parse_compound(sr)]
    assert kinds == [RtcpSenderReport, RtcpSdes]
    b.ingest(sr, now=1.05, wall=wall0 + 1.05)
    assert b.remote_cname == "a@x"
    # B holds the SR 0.75 s, then reports; A gets it 50 ms later: RTT = 100 ms.
    a_src = RtpSource()
    rr = b.build_report(now=1.80, wall=wall0 + 1.80, source=b_src)
    (rr_packet, _) = parse_compound(rr)
    assert isinstance(rr_packet, RtcpReceiverReport)
    block = rr_packet.reports[0]
    assert block.ssrc == 0xA and block.ext_highest_seq == 49 and block.cumulative_lost == 0
    assert block.dlsr == int(0.75 * 65536)
    a.ingest(rr, now=1.85, wall=wall0 + 1.85)
    assert a.rtt_ms == pytest.approx(100.0, abs=0.1)
    assert a.remote_fraction_lost == 0.0 and a.remote_cumulative_lost == 0
    assert a_src.expected == 0


def test_session_remote_loss_and_jitter() -> None:
    a = RtcpSession(ssrc=1, cname="a")
    block = ReportBlock(1, 64, 12, 1000, 160, 0, 0)
    a.ingest(RtcpReceiverReport(2, (block,)).serialize(), now=0.0, wall=0.0)
    assert a.remote_fraction_lost == 0.25
    assert a.remote_cumulative_lost == 12
    assert a.remote_jitter_ms == pytest.approx(20.0)
    assert a.rtt_ms is None  # LSR 0: nothing to compute
    a.ingest(RtcpBye((2,)).serialize(), now=0.0, wall=0.0)
    assert a.bye_received


def test_report_interval_randomized_and_deterministic() -> None:
    s1 = RtcpSession(ssrc=1, cname="a", rng=random.Random(7))
    s2 = RtcpSession(ssrc=1, cname="a", rng=random.Random(7))
    first = s1.next_report_at(100.0)
    assert first == s2.next_report_at(100.0)
    assert 100.0 + 1.25 <= first <= 100.0 + 3.75  # half of 5 s x 0.5..1.5
    assert not s1.due(first - 0.01) and s1.due(first)
    s1.build_report(now=first, wall=0.0)
    nxt = s1.next_report_at(first)
    assert first + 2.5 <= nxt <= first + 7.5
    intervals = {round(s1.interval(), 6) for _ in range(20)}
    assert len(intervals) > 10 and all(2.5 <= i <= 7.5 for i in intervals)


def test_rr_when_nothing_sent_and_bye() -> None:
    s = RtcpSession(ssrc=3, cname="c")
    packets = parse_compound(s.build_report(now=0.0, wall=0.0, bye=True))
    assert [type(p) for p in packets] == [RtcpReceiverReport, RtcpSdes, RtcpBye]


@settings(max_examples=500, deadline=None, derandomize=True)
@given(
    st.integers(0, 63),
    st.sampled_from([200, 201, 202, 203, 204]),
    st.integers(0, 6),
    st.binary(max_size=64),
)
def test_plausible_headers_with_garbage_bodies(b0: int, pt: int, words: int, body: bytes) -> None:
    data = bytes((0x80 | b0 & 0x3F, pt, 0, words)) + body
    try:
        packets = parse_compound(data)
    except RtcpError:
        return
    assert all(p.serialize() is not None for p in packets if not data[0] & 0x20)


def test_default_rng_differs_per_ssrc() -> None:
    a = RtcpSession(ssrc=1, cname="a")
    b = RtcpSession(ssrc=2, cname="b")
    assert a.next_report_at(0.0) != b.next_report_at(0.0)
    assert RtcpSession(ssrc=1, cname="a").next_report_at(0.0) == a.next_report_at(0.0)
