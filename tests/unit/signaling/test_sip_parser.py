"""Datagram parser and serializer: RFC 3261 §7, §20, §24 examples, limits and tolerances."""

from __future__ import annotations

import pytest

from signaling.errors import MessageTooLarge, SipParseError, VersionNotSupported
from signaling.message import COMPACT_FORMS, Headers, Request, Response, make_response
from signaling.parser import MAX_HEADERS, parse_head, parse_message, split_head
from signaling.validate import validate_message, validate_request, validate_response

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 pc33.atlanta.com\r\ns=-\r\n"
    b"c=IN IP4 pc33.atlanta.com\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


# RFC 3261 §24.2 (session setup through two proxies): F1, F8/F9, F11, F13.
F1_INVITE = crlf(
    "INVITE sip:bob@biloxi.com SIP/2.0\n"
    "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8\n"
    "Max-Forwards: 70\n"
    "To: Bob <sip:bob@biloxi.com>\n"
    "From: Alice <sip:alice@atlanta.com>;tag=1928301774\n"
    "Call-ID: a84b4c76e66710\n"
    "CSeq: 314159 INVITE\n"
    "Contact: <sip:alice@pc33.atlanta.com>\n"
    "Content-Type: application/sdp\n"
    f"Content-Length: {len(SDP)}\n\n"
) + SDP
F9_200 = crlf(
    "SIP/2.0 200 OK\n"
    "Via: SIP/2.0/UDP server10.biloxi.com;branch=z9hG4bK4b43c2ff8.1\n"
    " ;received=192.0.2.3\n"
    "Via: SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1\n"
    " ;received=192.0.2.2\n"
    "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8\n"
    " ;received=192.0.2.1\n"
    "To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\n"
    "From: Alice <sip:alice@atlanta.com>;tag=1928301774\n"
    "Call-ID: a84b4c76e66710\n"
    "CSeq: 314159 INVITE\n"
    "Contact: <sip:bob@192.0.2.4>\n"
    "Content-Type: application/sdp\n"
    f"Content-Length: {len(SDP)}\n\n"
) + SDP
F11_ACK = crlf(
    "ACK sip:bob@192.0.2.4 SIP/2.0\n"
    "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds9\n"
    "Max-Forwards: 70\n"
    "To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\n"
    "From: Alice <sip:alice@atlanta.com>;tag=1928301774\n"
    "Call-ID: a84b4c76e66710\n"
    "CSeq: 314159 ACK\n"
    "Content-Length: 0\n\n"
)
F13_BYE = crlf(
    "BYE sip:alice@pc33.atlanta.com SIP/2.0\n"
    "Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds10\n"
    "Max-Forwards: 70\n"
    "From: Bob <sip:bob@biloxi.com>;tag=a6c85cf\n"
    "To: Alice <sip:alice@atlanta.com>;tag=1928301774\n"
    "Call-ID: a84b4c76e66710\n"
    "CSeq: 231 BYE\n"
    "Content-Length: 0\n\n"
)
# RFC 3261 §24.1 (registration), F1.
REGISTER = crlf(
    "REGISTER sip:registrar.biloxi.com SIP/2.0\n"
    "Via: SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bKnashds7\n"
    "Max-Forwards: 70\n"
    "To: Bob <sip:bob@biloxi.com>\n"
    "From: Bob <sip:bob@biloxi.com>;tag=456248\n"
    "Call-ID: 843817637684230@998sdasdh09\n"
    "CSeq: 1826 REGISTER\n"
    "Contact: <sip:bob@192.0.2.4>\n"
    "Expires: 7200\n"
    "Content-Length: 0\n\n"
)


@pytest.mark.parametrize(
    ("data", "method", "cseq", "from_tag", "to_tag", "branch"),
    [
        (F1_INVITE, "INVITE", (314159, "INVITE"), "1928301774", None, "z9hG4bKnashds8"),
        (F11_ACK, "ACK", (314159, "ACK"), "1928301774", "a6c85cf", "z9hG4bKnashds9"),
        (F13_BYE, "BYE", (231, "BYE"), "a6c85cf", "1928301774", "z9hG4bKnashds10"),
        (REGISTER, "REGISTER", (1826, "REGISTER"), "456248", None, "z9hG4bKnashds7"),
    ],
)
def test_rfc3261_requests(data: bytes, method: str, cseq: tuple[int, str],
                          from_tag: str, to_tag: str | None, branch: str) -> None:
    req = parse_message(data)
    assert isinstance(req, Request)
    validate_request(req)
    assert req.method == method
    assert (req.cseq.seq, req.cseq.method) == cseq
    assert req.from_tag == from_tag and req.to_tag == to_tag
    assert req.branch == branch
    assert req.call_id in ("a84b4c76e66710", "843817637684230@998sdasdh09")
    assert req.max_forwards == 70
    assert bytes(req) == data


def test_rfc3261_invite_fields() -> None:
    req = parse_message(F1_INVITE)
    assert isinstance(req, Request)
    assert req.uri == "sip:bob@biloxi.com"
    assert req.uri_parsed.user == "bob" and req.uri_parsed.host == "biloxi.com"
    assert req.to.display == "Bob" and req.to.uri is not None
    assert str(req.to.uri) == "sip:bob@biloxi.com"
    assert req.from_.display == "Alice"
    assert [str(c.uri) for c in req.contacts] == ["sip:alice@pc33.atlanta.com"]
    assert req.content_type == "application/sdp"
    assert req.body == SDP
    assert req.top_via.transport == "UDP" and req.top_via.host == "pc33.atlanta.com"


def test_rfc3261_response_with_folded_vias() -> None:
    resp = parse_message(F9_200)
    assert isinstance(resp, Response)
    validate_response(resp)
    assert (resp.status, resp.reason) == (200, "OK")
    assert [v.received for v in resp.vias] == ["192.0.2.3", "192.0.2.2", "192.0.2.1"]
    assert resp.to_tag == "a6c85cf"
    assert resp.headers.get_raw_all("Via")[0] == (
        "SIP/2.0/UDP server10.biloxi.com;branch=z9hG4bK4b43c2ff8.1 ;received=192.0.2.3"
    )
    again = parse_message(bytes(resp))
    assert bytes(again) == bytes(resp)


def test_compact_forms_and_case_insensitive_names() -> None:
    data = crlf(
        "OPTIONS sip:a@example.org SIP/2.0\n"
        "v: SIP/2.0/UDP h.example.org;branch=z9hG4bK1\n"
        "f: <sip:b@example.org>;tag=1\n"
        "t: <sip:a@example.org>\n"
        "i: cid-1\n"
        "CSEQ: 1 OPTIONS\n"
        "m: <sip:b@h.example.org>\n"
        "k: timer, 100rel\n"
        "max-forwards: 70\n"
        "c: text/plain\n"
        "l: 2\n\nhi"
    )
    req = parse_message(data)
    assert isinstance(req, Request)
    validate_request(req)
    names = [k for k, _ in req.headers]
    assert names == ["Via", "From", "To", "Call-ID", "CSeq", "Contact", "Supported",
                     "Max-Forwards", "Content-Type", "Content-Length"]
    assert req.headers.get("VIA") == req.headers.get("v") == req.headers.get("via")
    assert req.headers.get_all("k") == ["timer", "100rel"]
    assert req.body == b"hi"
    assert set(COMPACT_FORMS) >= {"v", "f", "t", "i", "m", "l", "c", "k", "s", "e"}


def test_comma_separated_values_and_order() -> None:
    data = crlf(
        "INVITE sip:a@example.org SIP/2.0\n"
        "Via: SIP/2.0/UDP p1.example.org;branch=z9hG4bK1, SIP/2.0/TCP p2.example.org:5070"
        ";branch=z9hG4bK2\n"
        "Via: SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK3;rport\n"
        "Route: <sip:r1.example.org;lr>, <sip:r2.example.org;lr>\n"
        "Route: <sip:r3.example.org;lr>\n"
        'Contact: "A, B" <sip:a@h1.example.org>;q=0.5, <sip:a@h2.example.org>;q=1\n'
        "To: <sip:a@example.org>\nFrom: <sip:b@example.org>;tag=9\nCall-ID: x\n"
        "CSeq: 4 INVITE\nContent-Length: 0\n\n"
    )
    req = parse_message(data)
    validate_message(req)
    assert [v.branch for v in req.vias] == ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3"]
    assert req.vias[1].port == 5070 and req.vias[2].rport is True
    assert req.headers.get_all("Route") == [
        "<sip:r1.example.org;lr>", "<sip:r2.example.org;lr>", "<sip:r3.example.org;lr>"
    ]
    assert [c.display for c in req.contacts] == ["A, B", None]
    assert [c.q for c in req.contacts] == [0.5, 1.0]
    assert req.headers.pop_first("Via") == "SIP/2.0/UDP p1.example.org;branch=z9hG4bK1"
    assert req.headers.get_all("Via")[0].startswith("SIP/2.0/TCP p2")


def test_folding_joins_with_one_space() -> None:
    start, items = parse_head(crlf("OPTIONS sip:a@b SIP/2.0\nSubject: one\n two\n\tthree")[:])
    assert start == "OPTIONS sip:a@b SIP/2.0"
    assert items == [["Subject", "one two three"]]
    with pytest.raises(SipParseError):
        parse_head(b"OPTIONS sip:a@b SIP/2.0\r\n folded-before-any-header")


def test_lf_line_endings_and_leading_crlf_accepted() -> None:
    lf = F13_BYE.replace(b"\r\n", b"\n")
    assert parse_message(lf).headers.items() == parse_message(F13_BYE).headers.items()
    assert isinstance(parse_message(b"\r\n\r\n" + F13_BYE), Request)
    with pytest.raises(SipParseError):
        parse_message(F13_BYE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r"))


def test_datagram_content_length_rules() -> None:
    extra = F11_ACK + b"garbage after the message"
    assert parse_message(extra).body == b""  # §18.3: extra octets are discarded
    no_cl = F13_BYE.replace(b"Content-Length: 0\r\n", b"") + b"body"
    assert parse_message(no_cl).body == b"body"  # UDP: the rest of the datagram
    with pytest.raises(SipParseError) as info:
        parse_message(no_cl, datagram=False)
    assert info.value.reason == "Bad Request - Missing Content-Length"
    short = F13_BYE.replace(b"Content-Length: 0", b"Content-Length: 10") + b"12345"
    with pytest.raises(SipParseError) as info:
        parse_message(short)
    assert info.value.status_code == 400 and isinstance(info.value.message, Request)
    for bad in (b"-1", b"1x", b"\xc2\xb2", b"9999999999"):
        with pytest.raises(SipParseError):
            parse_message(F13_BYE.replace(b"Content-Length: 0", b"Content-Length: " + bad))


def test_limits() -> None:
    with pytest.raises(MessageTooLarge) as info:
        parse_message(F1_INVITE + b"x" * 70000)
    assert info.value.status_code == 513
    many = F13_BYE.replace(b"Content-Length", b"X-A: 1\r\n" * MAX_HEADERS + b"Content-Length")
    with pytest.raises(SipParseError, match="header fields"):
        parse_message(many)
    assert parse_message(many, max_headers=2 * MAX_HEADERS).headers.get("X-A") == "1"
    assert parse_message(F1_INVITE, max_bytes=len(F1_INVITE)).body == SDP
    with pytest.raises(MessageTooLarge):
        parse_message(F1_INVITE, max_bytes=len(F1_INVITE) - 1)


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("INVITE sip:a@b SIP/3.0", 505),
        ("INVITE sip:a@b HTTP/1.1", 400),
        ("INVITE sip:a@b", 400),
        ("INVITE  sip:a@b SIP/2.0", 400),
        ("INV<ITE sip:a@b SIP/2.0", 400),
        ("SIP/2.0 20 OK", 400),
        ("SIP/2.0 700 Weird", 400),
        ("SIP/2.0 2000 OK", 400),
        ("SIP/2.5 200 OK", 505),
    ],
)
def test_bad_start_lines(line: str, status: int) -> None:
    data = crlf(line + "\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nContent-Length: 0\n\n")
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status_code == status
    if status == 505:
        assert isinstance(info.value, VersionNotSupported)


def test_status_line_variants() -> None:
    resp = parse_message(crlf("SIP/2.0 180 Ringing and more words\nContent-Length: 0\n\n"))
    assert isinstance(resp, Response) and resp.reason == "Ringing and more words"
    resp = parse_message(crlf("sip/2.0 404 Not Found\nContent-Length: 0\n\n"))
    assert isinstance(resp, Response) and resp.status == 404


@pytest.mark.parametrize(
    "junk",
    [b"", b"\r\n\r\n", b"INVITE", b"\x00\xff\xfe", b"SIP/2.0 200 OK\r\nNoColon\r\n\r\n",
     b"INVITE sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n"],
)
def test_junk_is_a_parse_error(junk: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(junk)


def test_non_utf8_header_bytes_round_trip() -> None:
    data = F13_BYE.replace(b"Content-Length", b"Subject: caf\xe9\r\nContent-Length")
    msg = parse_message(data)
    assert bytes(msg) == data


def test_split_head() -> None:
    assert split_head(b"A\r\n\r\nbody") == (b"A", b"body")
    assert split_head(b"A\n\nbody") == (b"A", b"body")
    assert split_head(b"A\r\nB\r\n") is None


def test_serialize_rewrites_content_length_and_make_response() -> None:
    req = parse_message(F1_INVITE)
    assert isinstance(req, Request)
    req.body = b"v=0\r\n"
    assert bytes(req).endswith(b"Content-Length: 5\r\n\r\nv=0\r\n")
    resp = make_response(req, 180, to_tag="abc", extra=[("Contact", "<sip:bob@192.0.2.4>")])
    validate_response(resp)
    assert resp.to_tag == "abc" and resp.reason == "Ringing"
    assert resp.cseq.method == "INVITE" and resp.branch == req.branch
    again = parse_message(bytes(resp))
    assert isinstance(again, Response) and again.status == 180
    assert make_response(req, 100, to_tag="abc").to_tag is None  # §8.2.6.1


def test_headers_api() -> None:
    h = Headers([("v", "SIP/2.0/UDP a"), ("To", "<sip:x@y>"), ("Via", "SIP/2.0/UDP b")])
    h.prepend("Via", "SIP/2.0/UDP top")
    assert h.get_all("via") == ["SIP/2.0/UDP top", "SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    h.set("Via", "SIP/2.0/UDP only")
    assert h.get_raw_all("Via") == ["SIP/2.0/UDP only"] and len(h) == 2
    h.add("X-Custom", "1")
    assert "x-custom" in h and h.get("X-CUSTOM") == "1"
    copy = h.copy()
    h.remove("To")
    assert "To" not in h and "To" in copy


def test_parsed_views_follow_header_edits_after_invalidate() -> None:
    req = parse_message(F13_BYE)
    assert req.cseq.seq == 231
    req.headers.set("CSeq", "232 BYE")
    req.invalidate()
    assert req.cseq.seq == 232


# -- validate_request / validate_response beyond the torture vectors -----------------------
def _with(data: bytes, old: bytes, new: bytes) -> Request | Response:
    assert old in data
    return parse_message(data.replace(old, new, 1))


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (b"Content-Type: application/sdp\r\n", b"", "Bad Request - Missing Content-Type"),
        (b"Call-ID: a84b4c76e66710", b"Call-ID: a b", "Bad Request - Malformed Call-ID"),
        (b"Call-ID: a84b4c76e66710", b"Call-ID: a@b@c", "Bad Request - Malformed Call-ID"),
        (b"Max-Forwards: 70", b"Max-Forwards: 256", "Bad Request - Malformed Max-Forwards"),
        (b"Max-Forwards: 70", b"Max-Forwards: seventy", "Bad Request - Malformed Max-Forwards"),
        (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nMax-Forwards: 69\r\n",
         "Bad Request - Multiple Max-Forwards headers"),
        (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nDate: Sat, 13 Nov 2010 23:29:00 CET\r\n",
         "Bad Request - Malformed Date"),
        (b"From: Alice", b"From: Al,ice", "Bad Request - Malformed From"),
        (b"CSeq: 314159 INVITE", b"CSeq: INVITE", "Bad Request - Malformed CSeq"),
        (b"Via: SIP/2.0/UDP pc33.atlanta.com", b"Via: SIP/2.0/UDP pc33 atlanta",
         "Bad Request - Malformed Via"),
        (b"INVITE sip:bob@biloxi.com", b"INVITE sip:bob@biloxi.com;lr?x=y",
         "Bad Request - Request-URI with headers"),
        (b"INVITE sip:bob@biloxi.com", b"INVITE sip:bob@bi$oxi.com",
         "Bad Request - Malformed Request-URI"),
        (b"Contact: <sip:alice@pc33.atlanta.com>", b"Contact: <sip:alice@pc33.atlanta.com",
         "Bad Request - Malformed Contact"),
    ],
)
def test_validate_request_rejects(old: bytes, new: bytes, reason: str) -> None:
    req = _with(F1_INVITE, old, new)
    assert isinstance(req, Request)
    with pytest.raises(SipParseError) as info:
        validate_request(req)
    assert info.value.status_code == 400 and info.value.reason == reason
    resp = make_response(req, info.value.status_code, info.value.reason)
    assert bytes(resp).startswith(f"SIP/2.0 400 {reason}\r\n".encode())


def test_validate_request_accepts_odd_but_legal() -> None:
    for old, new in [
        (b"Max-Forwards: 70\r\n", b""),  # not mandatory on receipt
        (b"Content-Length: %d" % len(SDP),
         b"Content-Length: %d\r\nl: %d" % (len(SDP), len(SDP))),  # equal duplicates
        (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nDate: Sat, 13 Nov 2010 23:29:00 GMT\r\n"),
        (b"INVITE sip:bob@biloxi.com", b"INVITE tel:+1-555-0100;phone-context=biloxi.com"),
        (b"Call-ID: a84b4c76e66710", b"Call-ID: a84b-4c76_e66710@[2001:db8::1]"),
    ]:
        req = _with(F1_INVITE, old, new)
        assert isinstance(req, Request)
        validate_request(req)


def test_validate_response() -> None:
    validate_response(parse_message(F9_200))
    for old, new in [(b"To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n", b""),
                     (b"CSeq: 314159 INVITE", b"CSeq: 99999999999 INVITE"),
                     (b"Call-ID: a84b4c76e66710\r\n", b"")]:
        resp = _with(F9_200, old, new)
        with pytest.raises(SipParseError):
            validate_response(resp)  # type: ignore[arg-type]
    no_via = parse_message(crlf("SIP/2.0 200 OK\nTo: <sip:a@b>\nFrom: <sip:c@d>;tag=1\n"
                                "Call-ID: x\nCSeq: 1 BYE\nContent-Length: 0\n\n"))
    with pytest.raises(SipParseError, match="Via"):
        validate_message(no_via)


def test_bad_request_line_still_yields_a_partial_request_to_answer() -> None:
    data = F13_BYE.replace(b"BYE sip:alice@pc33.atlanta.com SIP/2.0",
                           b"BYE  sip:alice@pc33.atlanta.com ; lr  SIP/2.0")
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    partial = info.value.message
    assert isinstance(partial, Request) and partial.method == "BYE"
    resp = make_response(partial, 400, info.value.reason)
    assert resp.call_id == "a84b4c76e66710"
    assert resp.reason == "Bad Request - Malformed Request-Line"
    with pytest.raises(SipParseError) as info:
        parse_message(b"SIP/2.0 2000 OK\r\nContent-Length: 0\r\n\r\n")
    assert info.value.message is None  # a bad status line: nothing to answer
