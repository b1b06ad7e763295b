"""Via, CSeq, NameAddr, generic params and auth params (RFC 3261 §20, §25; RFC 3581)."""

from __future__ import annotations

import pytest

from signaling.errors import SipParseError
from signaling.headers import (
    CSeq,
    NameAddr,
    Via,
    format_auth_params,
    format_params,
    parse_auth_params,
    parse_params,
)

# -- Via ---------------------------------------------------------------------------------


def test_via_basic_and_round_trip() -> None:
    via = Via.parse("SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport")
    assert (via.transport, via.host, via.port) == ("UDP", "pc33.atlanta.com", 5066)
    assert via.branch == "z9hG4bK776asdhds" and via.rport is True and via.received is None
    assert via.is_rfc3261_branch
    assert str(via) == "SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport"
    assert Via.parse(str(via)) == via


def test_via_lws_everywhere_and_lowercase_transport() -> None:
    via = Via.parse("SIP / 2.0 / tcp   host.example.com : 5070 ;  branch = z9hG4bKx ; ttl=16")
    assert (via.transport, via.host, via.port, via.branch, via.ttl) == (
        "TCP", "host.example.com", 5070, "z9hG4bKx", 16)


def test_via_rfc3581_helpers() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKabc")
    stamped = via.with_received("192.0.2.44").with_rport(40001)
    assert stamped.received == "192.0.2.44" and stamped.rport == 40001
    assert str(stamped) == "SIP/2.0/UDP 10.0.0.5:5060;rport=40001;branch=z9hG4bKabc" \
        ";received=192.0.2.44"
    assert Via.parse(str(stamped)) == stamped
    assert via.rport is True and Via.parse("SIP/2.0/UDP h").rport is None


def test_via_ipv6_and_maddr() -> None:
    via = Via.parse("SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bK1;maddr=224.2.0.1;ttl=1")
    assert via.sent_by == ("[2001:db8::9:1]", 6050)
    assert via.maddr == "224.2.0.1" and via.ttl == 1
    assert Via.parse("SIP/2.0/UDP [::1];received=::1").received == "::1"


@pytest.mark.parametrize(
    "bad",
    [
        "", "SIP/2.0/UDP", "SIP/2.0 UDP host", "HTTP/1.1/TCP host", "SIP/3.0/UDP host",
        "SIP/2.0/UDP host;;", "SIP/2.0/UDP host;branch", "SIP/2.0/UDP host;rport=x",
        "SIP/2.0/UDP host;rport=70000", "SIP/2.0/UDP host:99999", "SIP/2.0/UDP 2001:db8::1",
        "SIP/2.0/UDP host;ttl=300", "SIP/2.0/UDP host;received=not..valid",
        "SIP/2.0/UDP host junk", "SIP/2.0/UDP [2001:db8::1", "SIP/2.0/UDP host;branch=a b",
    ],
)
def test_via_bad(bad: str) -> None:
    with pytest.raises(SipParseError):
        Via.parse(bad)


# -- CSeq --------------------------------------------------------------------------------


def test_cseq() -> None:
    assert CSeq.parse("314159 INVITE") == CSeq(314159, "INVITE")
    assert CSeq.parse("  0009   INVITE ") == CSeq(9, "INVITE")
    assert str(CSeq(1, "BYE")) == "1 BYE"
    assert CSeq.parse(f"{2**31 - 1} ACK").seq == 2**31 - 1
    for bad in (f"{2**31} INVITE", "1", "INVITE", "-1 INVITE", "1 IN<VITE", "1 INVITE x",
                "99999999999999999999999 OPTIONS", "１ INVITE"):
        with pytest.raises(SipParseError):
            CSeq.parse(bad)


# -- NameAddr ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "display", "uri", "params"),
    [
        ('"Bob" <sip:bob@biloxi.com>;tag=a6c85cf', "Bob", "sip:bob@biloxi.com",
         (("tag", "a6c85cf"),)),
        ("Bob <sip:bob@biloxi.com>", "Bob", "sip:bob@biloxi.com", ()),
        ("The Operator <sip:op@h.example>", "The Operator", "sip:op@h.example", ()),
        ("<sip:bob@biloxi.com;transport=tcp>;expires=60", None,
         "sip:bob@biloxi.com;transport=tcp", (("expires", "60"),)),
        # addr-spec: parameters after it belong to the header (§20.10)
        ("sip:bob@biloxi.com;tag=88", None, "sip:bob@biloxi.com", (("tag", "88"),)),
        ("sip:bob@biloxi.com ; tag = 88", None, "sip:bob@biloxi.com", (("tag", "88"),)),
        ('"A \\"q\\" \\\\ b" <sip:a@h.example>', 'A "q" \\ b', "sip:a@h.example", ()),
        ('"" <sip:a@h.example>', "", "sip:a@h.example", ()),
        ("caller<sip:caller@example.com>;tag=1", "caller", "sip:caller@example.com",
         (("tag", "1"),)),
        ('<sip:a@h.example>;+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"'
         ";reg-id=1", None, "sip:a@h.example",
         (("+sip.instance", '"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"'),
          ("reg-id", "1"))),
        ("tel:+15551234567;tag=9", None, "tel:+15551234567", (("tag", "9"),)),
        ("<urn:service:sos>", None, "urn:service:sos", ()),
    ],
)
def test_name_addr_parse(text: str, display: str | None, uri: str,
                         params: tuple[tuple[str, str | None], ...]) -> None:
    na = NameAddr.parse(text)
    assert na.display == display and str(na.uri) == uri and na.params == params
    assert not na.is_wildcard
    again = NameAddr.parse(str(na))
    assert again == na


def test_name_addr_views_and_builders() -> None:
    na = NameAddr.parse("<sip:a@h.example>;expires=3600;q=0.7;TAG=abc")
    assert na.expires == 3600 and na.q == 0.7 and na.tag == "abc"
    assert na.param("Expires") == "3600" and na.has_param("q")
    tagged = NameAddr.parse("Bob <sip:bob@b.example>").with_tag("xyz")
    assert str(tagged) == '"Bob" <sip:bob@b.example>;tag=xyz'
    assert str(NameAddr.parse("sip:b@b.example;tag=1").with_tag("2")) == "sip:b@b.example;tag=2"
    assert str(NameAddr(None, NameAddr.parse("<sip:a@b.example;lr>").uri)) == "<sip:a@b.example;lr>"
    star = NameAddr.parse(" * ")
    assert star.is_wildcard and star.uri is None and str(star) == "*"
    huge = NameAddr.parse("<sip:a@h.example>;expires=280297596632815")
    assert huge.expires == 2**32 - 1
    assert NameAddr.parse("<sip:a@h.example>;expires=000000000000000000030").expires == 30
    for bad_q in ("1.5", "0.1234", "x", "2"):
        with pytest.raises(SipParseError):
            _ = NameAddr.parse(f"<sip:a@h.example>;q={bad_q}").q
    with pytest.raises(SipParseError):
        _ = NameAddr.parse("<sip:a@h.example>;expires=soon").expires


@pytest.mark.parametrize(
    "bad",
    [
        "", '"unterminated <sip:a@h.example>', "Bell, Alexander <sip:a@h.example>",
        "< sip:a@h.example >", "<sip:a@h.example", "sip:a@h.example?Route=x",
        '"A" sip:a@h.example', "<sip:a@h.example> junk", "<sip:a@h.example>;;",
        "<sip:a@h.example>;tag", "<>", "nocolon", "**",
    ],
)
def test_name_addr_bad(bad: str) -> None:
    if bad == "<sip:a@h.example>;tag":
        assert NameAddr.parse(bad).tag is None  # a valueless parameter is legal
        return
    with pytest.raises(SipParseError):
        NameAddr.parse(bad)


# -- params ------------------------------------------------------------------------------


def test_parse_params() -> None:
    assert parse_params("") == ()
    assert parse_params(";a=1;b;c=\"x;y,z\"") == (("a", "1"), ("b", None), ("c", '"x;y,z"'))
    assert parse_params("a=1") == (("a", "1"),)
    assert parse_params(" ; a = [2001:db8::1] ") == (("a", "[2001:db8::1]"),)
    assert format_params((("a", "1"), ("b", None))) == ";a=1;b"
    with pytest.raises(SipParseError):
        parse_params(";a=1;")
    with pytest.raises(SipParseError):
        parse_params(';a="unterminated')


# -- auth params -------------------------------------------------------------------------


def test_parse_auth_params_digest() -> None:
    value = ('Digest realm="atlanta.com", domain="sip:boxesbybob.com",  qop="auth,auth-int",'
             ' nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5')
    scheme, params = parse_auth_params(value)
    assert scheme == "Digest"
    assert params == {
        "realm": "atlanta.com", "domain": "sip:boxesbybob.com", "qop": "auth,auth-int",
        "nonce": "f84f1cec41e6cbe5aea9c8e88d359", "opaque": "", "stale": "FALSE",
        "algorithm": "MD5",
    }


def test_auth_params_escapes_case_and_token68() -> None:
    _, params = parse_auth_params('Digest Username="a\\"b\\\\c",REALM="r, with comma"')
    assert params == {"username": 'a"b\\c', "realm": "r, with comma"}
    assert parse_auth_params("Basic dXNlcjpwYXNz") == ("Basic", {"token68": "dXNlcjpwYXNz"})
    assert parse_auth_params("Basic dXNlcg==") == ("Basic", {"token68": "dXNlcg=="})
    assert parse_auth_params("Digest") == ("Digest", {})
    for bad in ('Digest realm="x', "Digest realm=x,", "Digest realm=x realm2=y", "",
                'Digest realm="a", realm="b"', "Digest =x"):
        with pytest.raises(SipParseError):
            parse_auth_params(bad)


def test_format_auth_params_round_trip() -> None:
    params = {"username": 'bo"b', "realm": "biloxi.com", "nonce": "dcd98b", "uri": "sip:b@c",
              "response": "6629fae49393a05397450978507c4ef1", "algorithm": "MD5", "nc": "00000001"}
    text = format_auth_params("Digest", params, {"username", "realm", "nonce", "uri",
                                                 "response"})
    assert text.startswith('Digest username="bo\\"b", realm="biloxi.com"')
    assert "algorithm=MD5" in text and "nc=00000001" in text
    assert parse_auth_params(text) == ("Digest", params)
    with pytest.raises(ValueError):
        format_auth_params("Digest", {"realm": "needs quoting"}, set())
