"""Digit arbitration across RFC 4733 / in-band / SIP INFO, and INFO body parsing."""

from __future__ import annotations

import pytest

from switch.media.digits import DigitArbiter
from switch.media.dtmf_info import (
    DtmfInfoError,
    InfoDigit,
    parse_dtmf,
    parse_dtmf_relay,
    parse_info_dtmf,
)
from switch.media.rfc4733 import DigitEvent, DtmfReceiver, DtmfSender


def digits(events: list[DigitEvent]) -> str:
    return "".join(e.digit for e in events)


def test_single_source_every_press_reported() -> None:
    arb = DigitArbiter()
    out = arb.feed_inband("1", 0.0) + arb.feed_inband("1", 0.2) + arb.feed_inband("2", 0.3)
    assert digits(out) == "112"
    assert all(e.source == "inband" for e in out)


def test_rfc4733_then_inband_echo_suppressed() -> None:
    arb = DigitArbiter()
    out = arb.feed_rfc4733("5", 1.00)
    out += arb.feed_inband("5", 1.12)  # the tone left in the audio
    out += arb.feed_inband("6", 5.00)  # even much later: once RFC 4733 is seen, ignore
    assert digits(out) == "5" and arb.suppressed == 2


def test_inband_before_first_rfc4733_not_doubled() -> None:
    arb = DigitArbiter()
    out = arb.feed_inband("9", 1.00)
    out += arb.feed_rfc4733("9", 1.05)  # same press, other source
    out += arb.feed_rfc4733("9", 1.30)  # a real second press within the window
    assert digits(out) == "99"
    assert [e.source for e in out] == ["inband", "rfc4733"]


def test_info_and_rfc4733_peer_never_doubles() -> None:
    arb = DigitArbiter()
    out = []
    for i, d in enumerate("1122"):
        t = i * 0.3
        out += arb.feed_info(d, t)
        out += arb.feed_rfc4733(d, t + 0.05)
    assert digits(out) == "1122"


def test_info_suppresses_inband_by_default() -> None:
    arb = DigitArbiter()
    assert digits(arb.feed_info("#", 0.0) + arb.feed_inband("#", 0.9)) == "#"
    lax = DigitArbiter(trust_info_over_inband=False)
    assert digits(lax.feed_info("#", 0.0) + lax.feed_inband("#", 0.9)) == "##"


def test_dedupe_window_only_for_same_digit() -> None:
    arb = DigitArbiter(dedupe_window_s=0.5)
    out = arb.feed_inband("1", 0.0) + arb.feed_info("2", 0.1) + arb.feed_info("2", 0.2)
    assert digits(out) == "122"
    arb2 = DigitArbiter()
    assert digits(arb2.feed_inband("4", 0.0) + arb2.feed_info("4", 0.6)) == "44"


def test_feed_dispatch_and_validation() -> None:
    arb = DigitArbiter()
    assert digits(arb.feed(DigitEvent("a", "info", 100, 0.0))) == "A"
    with pytest.raises(ValueError):
        arb.feed(DigitEvent("1", "carrier-pigeon", None, 0.0))
    with pytest.raises(ValueError):
        arb.feed_inband("x", 1.0)


def test_receiver_to_arbiter_end_to_end() -> None:
    rx, arb, tx = DtmfReceiver(), DigitArbiter(), DtmfSender()
    out: list[DigitEvent] = []
    t = 0.0
    for i, d in enumerate("0*#"):
        for marker, ts, payload, offset in tx.packets(d, start_ts=1000 * (i + 1) * 8):
            for ev in rx.feed(ts, marker, payload, t + offset):
                out += arb.feed_rfc4733(ev.digit, ev.at)
        out += arb.feed_inband(d, t + 0.1)  # same digits heard in the audio
        t += 0.5
    assert digits(out) == "0*#"


# -- SIP INFO bodies -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"Signal=5\r\nDuration=160\r\n", InfoDigit("5", 160)),
        (b"Signal=5\r\nDuration=160", InfoDigit("5", 160)),
        (b"signal = #\nduration = 250\n", InfoDigit("#", 250)),
        (b"Signal=*", InfoDigit("*", None)),
        (b"Signal=11\r\nDuration=100", InfoDigit("#", 100)),  # RFC 4733 code
        (b"Signal=d\r\nDuration=80\r\nVolume=10\r\n", InfoDigit("D", 80)),
    ],
)
def test_dtmf_relay_bodies(body: bytes, expected: InfoDigit) -> None:
    assert parse_dtmf_relay(body) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "no Signal"),
        (b"Duration=100", "no Signal"),
        (b"Signal=X", "not a DTMF digit"),
        (b"Signal=16", "not a DTMF digit"),
        (b"Signal=5\r\nDuration=-3", "not a number"),
        (b"Signal=5\r\nDuration=999999", "implausible"),
        (b"Signal 5", "without '='"),
        (b"Signal=\xff", "not ASCII"),
        (b"Signal=5" + b" " * 2000, "too long"),
    ],
)
def test_dtmf_relay_errors_are_clear(body: bytes, message: str) -> None:
    with pytest.raises(DtmfInfoError, match=message):
        parse_dtmf_relay(body)


def test_application_dtmf_bodies() -> None:
    assert parse_dtmf(b"5") == InfoDigit("5", None)
    assert parse_dtmf(b" 10\r\n") == InfoDigit("*", None)
    with pytest.raises(DtmfInfoError, match="empty"):
        parse_dtmf(b"\r\n")
    with pytest.raises(DtmfInfoError):
        parse_dtmf(b"55")


def test_parse_info_dispatch_on_content_type() -> None:
    assert parse_info_dtmf("application/dtmf-relay", b"Signal=1") == InfoDigit("1", None)
    assert parse_info_dtmf("Application/DTMF-Relay; charset=x", b"Signal=2") == InfoDigit("2", None)
    assert parse_info_dtmf("application/dtmf", b"3") == InfoDigit("3", None)
    assert parse_info_dtmf("application/media_control+xml", b"<x/>") is None
    with pytest.raises(DtmfInfoError):
        parse_info_dtmf("application/dtmf", b"")
