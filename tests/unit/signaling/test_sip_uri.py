"""SIP/SIPS/TEL URIs: parsing, serialising, §19.1.4 comparison (RFC 3261 §19.1, RFC 3966)."""

from __future__ import annotations

import pytest

from signaling.errors import SipParseError, UnsupportedUriScheme
from signaling.uri import SipUri, unescape


@pytest.mark.parametrize(
    ("text", "user", "password", "host", "port", "params", "headers"),
    [
        ("sip:alice@atlanta.com", "alice", None, "atlanta.com", None, (), ()),
        ("sip:alice:secretword@atlanta.com;transport=tcp", "alice", "secretword",
         "atlanta.com", None, (("transport", "tcp"),), ()),
        ("sips:alice@atlanta.com?subject=project%20x&priority=urgent", "alice", None,
         "atlanta.com", None, (), (("subject", "project%20x"), ("priority", "urgent"))),
        ("sip:+1-212-555-1212:1234@gateway.com;user=phone", "+1-212-555-1212", "1234",
         "gateway.com", None, (("user", "phone"),), ()),
        ("sips:1212@gateway.com", "1212", None, "gateway.com", None, (), ()),
        ("sip:alice@192.0.2.4", "alice", None, "192.0.2.4", None, (), ()),
        ("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com", None, None, "atlanta.com",
         None, (("method", "REGISTER"),), (("to", "alice%40atlanta.com"),)),
        ("sip:alice;day=tuesday@atlanta.com", "alice;day=tuesday", None, "atlanta.com", None,
         (), ()),
        ("sip:[2001:db8::10]:5070;lr", None, None, "[2001:db8::10]", 5070, (("lr", None),), ()),
        ("sip:bob@example.com.:0", "bob", None, "example.com.", 0, (), ()),
        ("SIP:bob@Example.COM", "bob", None, "Example.COM", None, (), ()),
    ],
)
def test_parse_examples(text: str, user: str | None, password: str | None, host: str,
                        port: int | None, params: tuple[tuple[str, str | None], ...],
                        headers: tuple[tuple[str, str], ...]) -> None:
    uri = SipUri.parse(text)
    assert (uri.user, uri.password, uri.host, uri.port) == (user, password, host, port)
    assert uri.params == params and uri.headers == headers
    assert str(uri) == text[0:4].lower() + text[4:] if text.startswith("SIP:") else str(uri) == text
    assert SipUri.parse(str(uri)) == uri


def test_views() -> None:
    uri = SipUri.parse("sip:bob@biloxi.com:5061;TRANSPORT=TLS;lr;maddr=239.255.255.1;user=Phone")
    assert uri.transport == "tls" and uri.lr and uri.maddr == "239.255.255.1"
    assert uri.user_param == "phone" and uri.host_port() == ("biloxi.com", 5061)
    assert uri.param("Transport") == "TLS" and uri.param("absent") is None
    assert not SipUri.parse("sip:a@b.example").lr
    assert SipUri.parse("sips:a@b.example").is_sips


def test_with_params_and_replace() -> None:
    uri = SipUri.parse("sip:bob@biloxi.com;transport=udp;maddr=10.0.0.1")
    changed = uri.with_params(transport="tcp", maddr=False, lr=True)
    assert str(changed) == "sip:bob@biloxi.com;transport=tcp;lr"
    assert str(uri.replace(host="192.0.2.9", port=5080)) == (
        "sip:bob@192.0.2.9:5080;transport=udp;maddr=10.0.0.1"
    )
    assert str(uri.without_params()) == "sip:bob@biloxi.com"


# RFC 3261 §19.1.4: the pairs it lists as equivalent and as not equivalent.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;newparam=5"),
        ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
         "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
        ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
         "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
        ("sip:cal%6Cer@h.example;%6C%72", "sip:caller@h.example;lr"),
        ("tel:+1-212-555-0101", "tel:+12125550101"),
    ],
)
def test_equivalent(a: str, b: str) -> None:
    ua, ub = SipUri.parse(a), SipUri.parse(b)
    assert ua.equivalent(ub) and ub.equivalent(ua)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
        ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
        ("sip:a%3Ab@h.example", "sip:a:b@h.example"),
    ],
)
def test_not_equivalent(a: str, b: str) -> None:
    ua, ub = SipUri.parse(a), SipUri.parse(b)
    assert not ua.equivalent(ub) and not ub.equivalent(ua)


def test_tel_uri() -> None:
    uri = SipUri.parse("tel:+1-201-555-0123;ext=1234")
    assert (uri.scheme, uri.user, uri.host, uri.number) == ("tel", None, "", "+1-201-555-0123")
    assert uri.param("ext") == "1234"
    assert str(uri) == "tel:+1-201-555-0123;ext=1234"
    local = SipUri.parse("tel:7042;phone-context=example.com")
    assert local.number == "7042" and local.param("phone-context") == "example.com"
    assert uri.canonical_aor() == "tel:+12015550123"
    for bad in ("tel:", "tel:+", "tel:+12x", "tel:12 34"):
        with pytest.raises(SipParseError):
            SipUri.parse(bad)


def test_unknown_schemes() -> None:
    with pytest.raises(UnsupportedUriScheme) as info:
        SipUri.parse("http://www.example.com/")
    assert info.value.status_code == 416
    other = SipUri.parse("http://www.example.com/", allow_other=True)
    assert other.scheme == "http" and other.opaque == "//www.example.com/"
    assert str(other) == "http://www.example.com/"
    with pytest.raises(UnsupportedUriScheme):  # a cached opaque result is not reused
        SipUri.parse("http://www.example.com/")


@pytest.mark.parametrize(
    "bad",
    [
        "", "sip", "sip:", "<sip:a@b>", "sip:a@b c", "sip:2001:db8::1", "sip:a@[2001:db8::1",
        "sip:a@[2001:db8:::1.2.3.4]", "sip:a@b:65536", "sip:a@b:x", "sip:@host", "sip:a@",
        "sip:a@host;=x", "sip:a@host;p=", "sip:a@host?h", "sip:a@ho_st", "sip:a@1.2.3.256",
        "sip:a@-host.com", "sip:a@host.3com", "sip:a b@host", "1sip:a@b", "sip:a@b;p=\"x\"",
        "sip:a%ZZ@host", "sip:a@b\x00", "sip:a@\uff11.2.3.4", "sip:a@host:\uff15060",
    ],
)
def test_bad_uris(bad: str) -> None:
    with pytest.raises(SipParseError):
        SipUri.parse(bad)


def test_ipv6_hosts() -> None:
    assert SipUri.parse("sip:u@[::ffff:192.0.2.10]").host == "[::ffff:192.0.2.10]"
    assert SipUri.parse("sip:u@[2001:db8::192.0.2.1]:5060").port == 5060
    amb = SipUri.parse("sip:[2001:db8::10:5070]")
    assert amb.host_port() == ("[2001:db8::10:5070]", None)


def test_escapes_and_aor() -> None:
    uri = SipUri.parse("sip:I%20have%20spaces@Example.NET:5070;transport=tcp")
    assert uri.user == "I%20have%20spaces" and uri.unescaped_user() == "I have spaces"
    assert uri.canonical_aor() == "sip:I have spaces@example.net:5070"
    assert unescape("%41%4a%zz") == "AJ%zz"
    assert SipUri.parse("sip:%61lice@h.example").equivalent(SipUri.parse("sip:alice@h.example"))
    assert not SipUri.parse("sip:Alice@h.example").equivalent(SipUri.parse("sip:alice@h.example"))
