"""SDP model, parser and serializer (RFC 8866): round trips, typed views, malformed input."""

from __future__ import annotations

import pytest
from _sdp_vectors import RFC4317_OFFER, crlf
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.errors import SignalingError
from signaling.sdp import Connection, RtpMap, SdpError, parse

# RFC 8866 §5 example session (all session-level line types).
RFC8866_EXAMPLE = crlf("""
    v=0
    o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1
    s=Call to John Smith
    i=SDP Offer #1
    u=http://www.jdoe.example.com/home.html
    e=Jane Doe <jane@jdoe.example.com>
    p=+1 617 555-6011
    c=IN IP4 198.51.100.1
    t=0 0
    m=audio 49170 RTP/AVP 0
    m=audio 49180 RTP/AVP 0
    m=video 51372 RTP/AVP 99
    c=IN IP6 2001:db8::2
    a=rtpmap:99 h263-1998/90000
""")

# An RFC 5118 §4-style IPv6 offer from a vendor phone: rtcp, fmtp, maxptime, odd case.
VENDOR_IPV6 = crlf("""
    v=0
    o=- 1471 1 IN IP6 2001:db8::9
    s=Talk
    c=IN IP6 2001:db8::9
    b=AS:80
    t=0 0
    a=X-nat:0
    m=audio 7078 RTP/AVP 96 8 0 101
    c=IN IP6 2001:db8::10
    a=rtpmap:96 opus/48000/2
    a=fmtp:96 useinbandfec=1
    a=rtpmap:8 pcma/8000
    a=rtpmap:101 Telephone-Event/8000
    a=fmtp:101 0-16
    a=ptime:30
    a=maxptime:40
    a=rtcp:7079 IN IP6 2001:db8::10
    a=recvonly
""")


@pytest.mark.parametrize("text", [RFC4317_OFFER, RFC8866_EXAMPLE, VENDOR_IPV6])
def test_round_trip_is_exact(text: str) -> None:
    sd = parse(text)
    assert sd.serialize() == text
    assert bytes(sd) == text.encode()
    assert parse(sd.serialize()).serialize() == text


def test_rfc4317_offer_fields() -> None:
    sd = parse(RFC4317_OFFER.encode())
    assert sd.origin.username == "alice" and sd.origin.session_version == 2890844526
    assert sd.session_name == ""
    assert sd.connection == Connection("host.atlanta.example.com", "IP4", "IN")
    audio, video = sd.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == (
        "audio", 49170, "RTP/AVP", ["0", "8", "97"])
    assert audio.rtpmaps[97] == RtpMap(97, "iLBC", 8000)
    assert video.rtpmaps[32].clock_rate == 90000
    assert sd.media_direction(audio) == "sendrecv" and audio.direction is None


def test_vendor_ipv6_typed_views() -> None:
    sd = parse(VENDOR_IPV6)
    m = sd.media[0]
    assert sd.media_connection(m) == Connection("2001:db8::10", "IP6")
    assert m.rtpmaps[96] == RtpMap(96, "opus", 48000, 2)
    assert m.rtpmaps[101].encoding == "Telephone-Event"
    assert m.fmtp == {"96": "useinbandfec=1", "101": "0-16"}
    assert m.ptime == 30 and m.maxptime == 40 and m.rtcp_port == 7079
    assert m.direction == "recvonly" and sd.media_direction(m) == "recvonly"
    assert sd.attributes == [("X-nat", "0")] and sd.bandwidths == ["AS:80"]
    m.set_direction("sendonly")
    assert m.direction == "sendonly" and m.attributes[-1] == ("sendonly", None)
    with pytest.raises(ValueError):
        m.set_direction("loud")


def test_lf_only_trailing_blank_lines_and_out_of_order_session_lines() -> None:
    text = ("v=0\no=- 1 2 IN IP4 192.0.2.1\ns=-\nt=0 0\nc=IN IP4 192.0.2.1\n"
            "m=audio 5004 RTP/AVP 0\na=inactive\n\n\n")
    sd = parse(text)
    assert sd.connection is not None and sd.connection.host == "192.0.2.1"
    assert sd.serialize().splitlines()[3] == "c=IN IP4 192.0.2.1"  # RFC order restored
    assert sd.media[0].direction == "inactive"


def test_hold_address_multicast_and_port_count() -> None:
    sd = parse("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
               "m=audio 49170/2 RTP/AVP 0\r\nc=IN IP4 224.2.1.1/127/3\r\n")
    assert sd.connection is not None and sd.connection.is_hold_address
    m = sd.media[0]
    assert m.port_count == 2 and m.connection is not None
    assert m.connection.host == "224.2.1.1" and not m.connection.is_hold_address
    assert "m=audio 49170/2 RTP/AVP 0" in sd.serialize()


def test_timing_repeats_and_session_attributes() -> None:
    text = crlf("""
        v=0
        o=- 1 1 IN IP4 192.0.2.1
        s=-
        t=2873397496 2873404696
        r=7d 1h 0 25h
        t=0 0
        z=2882844526 -1h
        a=recvonly
        m=audio 1 RTP/AVP 0
    """)
    sd = parse(text)
    assert [(t.start, t.repeats) for t in sd.timings] == [(2873397496, ["7d 1h 0 25h"]), (0, [])]
    assert sd.session_direction() == "recvonly"
    assert sd.media_direction(sd.media[0]) == "recvonly"
    assert sd.serialize() == text


BAD = [
    ("", 0),
    ("v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n", 1),
    ("o=- 1 1 IN IP4 1.2.3.4\r\n", 1),
    ("v=0\r\ns=-\r\n", 2),
    ("v=0\r\no=- 1 1 IN IP4\r\ns=-\r\n", 2),
    ("v=0\r\no=- x 1 IN IP4 1.2.3.4\r\ns=-\r\n", 2),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n", 0),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n", 3),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nx=what\r\n", 4),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\ns=again\r\n", 4),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 300.1.1.1\r\n", 4),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 2001:db8::1\r\n", 4),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP6 1.2.3.4\r\n", 4),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4\r\n", 4),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0\r\n", 4),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nr=1d 1h 0\r\n", 4),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 70000 RTP/AVP 0\r\n", 4),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 1 RTP/AVP\r\n", 4),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 1 RTP/AVP PCMU\r\n", 4),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\nt=0 0\r\n", 5),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n", 5),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\nc=IN IP4 1.1.1.1\r\n"
     "c=IN IP4 1.1.1.2\r\n", 6),
    ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nbogus\r\n", 4),
]


@pytest.mark.parametrize(("text", "line"), BAD)
def test_malformed_raises_sdp_error_with_line(text: str, line: int) -> None:
    with pytest.raises(SdpError) as info:
        parse(text)
    assert info.value.line == line
    assert isinstance(info.value, SignalingError) and info.value.status_code == 400


def test_non_utf8_and_non_text() -> None:
    with pytest.raises(SdpError):
        parse(b"v=0\r\no=\xff\r\n")
    with pytest.raises(SdpError):
        parse(12)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_description_or_sdp_error(data: bytes) -> None:
    try:
        parse(data)
    except SdpError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(RFC4317_OFFER.splitlines() + VENDOR_IPV6.splitlines()
                                + ["a=", "a=rtpmap:", "m=audio 0 x", "c=IN IP6 ::"]),
                max_size=15))
def test_shuffled_lines_never_crash(lines: list[str]) -> None:
    text = "v=0\r\n" + "\r\n".join(lines)
    try:
        sd = parse(text)
    except SdpError:
        return
    assert parse(sd.serialize()).serialize() == sd.serialize()
