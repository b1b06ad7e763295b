"""RFC 4733 telephone-event: payload vectors, receiver (one digit per event), sender."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.media.rfc4733 import (
    CODE_DIGITS,
    EVENT_CODES,
    DigitEvent,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    decode_event,
    encode_event,
)
from switch.media.rtp import RtpError, parse_header_fast

# §2.3 layout: event | E R volume(6) | duration(16)
VECTORS = [
    ("05 0a 0320", TelephoneEvent(5, False, 10, 800)),  # digit 5, -10 dBm0, 100 ms
    ("0b 8a 0640", TelephoneEvent(11, True, 10, 1600)),  # '#', end bit, 200 ms
    ("0a 3f 0000", TelephoneEvent(10, False, 63, 0)),  # '*', volume 63, start
    ("0f 80 ffff", TelephoneEvent(15, True, 0, 65535)),  # 'D', max duration
]


@pytest.mark.parametrize(("hex_", "event"), VECTORS)
def test_payload_vectors(hex_: str, event: TelephoneEvent) -> None:
    data = bytes.fromhex(hex_.replace(" ", ""))
    assert decode_event(data) == event
    assert encode_event(event.event, event.end, event.volume, event.duration) == data


def test_reserved_bit_ignored_and_extra_bytes_tolerated() -> None:
    assert decode_event(bytes.fromhex("05ca0320ffff")) == TelephoneEvent(5, True, 10, 800)


def test_event_codes_table() -> None:
    assert [EVENT_CODES[d] for d in "0123456789*#ABCD"] == list(range(16))
    assert CODE_DIGITS[10] == "*" and CODE_DIGITS[11] == "#"
    assert TelephoneEvent(16, False, 0, 0).digit is None  # flash is not a digit


@pytest.mark.parametrize("payload", [b"", b"\x05", b"\x05\x0a\x03"])
def test_short_payload_raises(payload: bytes) -> None:
    with pytest.raises(RtpError):
        decode_event(payload)


@pytest.mark.parametrize(
    "args", [(256, False, 0, 0), (1, False, 64, 0), (1, False, 0, 65536), (-1, False, 0, 0)]
)
def test_encode_rejects_out_of_range(args: tuple[int, bool, int, int]) -> None:
    with pytest.raises(ValueError):
        encode_event(*args)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=12))
def test_random_payloads_only_raise_rtp_error(data: bytes) -> None:
    try:
        ev = decode_event(data)
    except RtpError:
        assert len(data) < 4
        return
    assert encode_event(ev.event, ev.end, ev.volume, ev.duration)[1] & 0xBF == data[1] & 0xBF


def sender_packets(digit: str, ts: int, **kw: int) -> list[tuple[bool, int, bytes, float]]:
    return DtmfSender().packets(digit, start_ts=ts, **kw)


def run(
    rx: DtmfReceiver, packets: list[tuple[bool, int, bytes, float]], t0: float = 0.0
) -> list[DigitEvent]:
    out: list[DigitEvent] = []
    for marker, ts, payload, offset in packets:
        out += rx.feed(ts, marker, payload, t0 + offset)
    return out


def test_sender_schedule_rfc4733_2_5_1() -> None:
    pkts = sender_packets("5", 1000, duration_ms=100, ptime_ms=20)
    assert [m for m, *_ in pkts] == [True] + [False] * 6
    assert {ts for _, ts, _, _ in pkts} == {1000}
    events = [decode_event(p) for _, _, p, _ in pkts]
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert [round(o, 3) for *_, o in pkts] == [0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12]
    assert all(e.event == 5 and e.volume == 10 for e in events)


def test_sender_50ms_updates_and_short_digit() -> None:
    pkts = sender_packets("#", 0, duration_ms=100, ptime_ms=50)
    assert [decode_event(p).duration for *_, p, _ in pkts] == [400, 800, 800, 800]
    short = sender_packets("1", 0, duration_ms=20, ptime_ms=50)
    assert len(short) == 3 and short[0][0] and decode_event(short[0][2]).end


def test_sender_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        sender_packets("x", 0)
    with pytest.raises(ValueError):
        sender_packets("1", 0, duration_ms=9000)


def test_receiver_one_digit_per_event() -> None:
    rx = DtmfReceiver()
    digits = run(rx, sender_packets("5", 1000) + sender_packets("5", 2600), t0=1.0)
    assert [(d.digit, d.source) for d in digits] == [("5", "rfc4733"), ("5", "rfc4733")]
    assert digits[0].at == 1.0 and digits[0].duration_ms is None
    assert not rx.active and rx.last_duration_ms == 100


def test_receiver_lost_start_packet_and_missing_marker() -> None:
    rx = DtmfReceiver()
    pkts = sender_packets("7", 5000)[2:]  # start and first update lost
    assert [d.digit for d in run(rx, pkts)] == ["7"]
    pkts = [(False, ts, p, o) for _, ts, p, o in sender_packets("8", 9000)]  # no marker
    assert [d.digit for d in run(rx, pkts)] == ["8"]


def test_receiver_only_end_packets() -> None:
    rx = DtmfReceiver()
    pkts = sender_packets("9", 100)[-3:]
    assert [d.digit for d in run(rx, pkts)] == ["9"]


def test_receiver_lost_end_packets_expire() -> None:
    rx = DtmfReceiver(end_timeout_s=0.5)
    pkts = sender_packets("1", 100)[:-3]
    assert [d.digit for d in run(rx, pkts)] == ["1"]
    assert rx.active
    assert rx.expire(0.3) == [] and rx.active
    rx.expire(0.6)
    assert not rx.active and rx.timeouts == 1
    # a late end packet of that event changes nothing
    assert run(rx, sender_packets("1", 100)[-1:]) == []


def test_receiver_reordered_old_event_ignored() -> None:
    rx = DtmfReceiver()
    first = sender_packets("1", 100)
    second = sender_packets("2", 2000)
    # second event starts, then a straggler of the first (never seen before) arrives
    digits = run(rx, second[:2] + first[-1:] + second[2:])
    assert [d.digit for d in digits] == ["2"]


def test_receiver_timestamp_wraparound() -> None:
    rx = DtmfReceiver()
    a = sender_packets("3", 2**32 - 400)
    b = sender_packets("4", 1200)  # after the wrap
    assert [d.digit for d in run(rx, a + b)] == ["3", "4"]
    assert run(rx, a[-1:]) == []  # a's late repeat is older, ignored


def test_receiver_long_event_segments_are_one_digit() -> None:
    rx = DtmfReceiver()
    seg1 = [(True, 0, encode_event(0, False, 10, 65535), 0.0)]
    seg2 = [(False, 65535, encode_event(0, False, 10, 800), 8.3)]
    seg2 += [(False, 65535, encode_event(0, True, 10, 1600), 8.4)] * 3
    assert [d.digit for d in run(rx, seg1 + seg2)] == ["0"]


def test_receiver_ignores_non_dtmf_and_counts_bad() -> None:
    rx = DtmfReceiver()
    assert rx.feed(100, True, encode_event(16, False, 0, 160), 0.0) == []  # flash
    assert rx.feed(200, True, b"\x01", 0.0) == []
    assert rx.bad_payloads == 1


def test_receiver_survives_timestamp_base_restart() -> None:
    rx = DtmfReceiver()
    first = sender_packets("1", 3_000_000_000)
    restarted = sender_packets("2", 1_000_000_000)  # "older" by far more than 10 s
    assert [d.digit for d in run(rx, first + restarted)] == ["1", "2"]
    rx.reset()
    assert [d.digit for d in run(rx, first)] == ["1"]


SIPP_DIR = Path("/usr/share/sip-tester")
SIPP_DTMF = {f"dtmf_2833_{n}.pcap": n for n in "0123456789"} | {
    "dtmf_2833_pound.pcap": "#",
    "dtmf_2833_star.pcap": "*",
}


def read_pcap_udp_payloads(path: Path) -> list[tuple[float, bytes]]:
    """(capture time, UDP payload) of a classic little-endian Ethernet/IPv4 pcap."""
    data = path.read_bytes()
    out = []
    off = 24
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, off)
        frame = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        ihl = (frame[14] & 0x0F) * 4
        out.append((sec + usec / 1e6, frame[14 + ihl + 8 :]))
    return out


@pytest.mark.skipif(not SIPP_DIR.exists(), reason="SIPp (sip-tester) not installed")
def test_sipp_rfc2833_captures_give_one_digit_each() -> None:
    """SIPp's shipped telephone-event captures, replayed back to back on one receiver."""
    captures = [
        (read_pcap_udp_payloads(SIPP_DIR / name), digit)
        for name, digit in SIPP_DTMF.items()
        if (SIPP_DIR / name).exists()
    ]
    # in RTP timestamp order, as one sender would have sent them (the files were cut
    # from one stream; "0" was captured separately)
    captures.sort(key=lambda c: parse_header_fast(c[0][0][1])[2])  # type: ignore[index]
    rx = DtmfReceiver()
    got: list[str] = []
    want: list[str] = []
    for packets, digit in captures:
        want.append(digit)
        for at, datagram in packets:
            hdr = parse_header_fast(datagram)
            assert hdr is not None and hdr[0] == 101
            _, _, ts, _, marker, off, end = hdr
            got += [d.digit for d in rx.feed(ts, marker, datagram[off:end], at)]
    assert want and got == want
    assert not rx.active  # every event ended with its E packets
