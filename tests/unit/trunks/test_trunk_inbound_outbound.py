"""Pure parts of trunk calls: the Request-URI and identity headers of calls out
(RFC 3261 §19.1, RFC 3325 §9.1, RFC 3323 §4.2), recognition, identity and DID routing of
calls in."""

from __future__ import annotations

import datetime as dt
import tomllib

import pytest

from signaling.events import Address
from signaling.message import Request
from signaling.parser import parse_message
from switch.config import ConfigError
from switch.router import DialPlan, Extension, Ivr, Queue, Reject, Voicemail
from switch.routing_config import parse_routing
from switch.trunks.config import TrunkConfig, parse_trunk, parse_trunks
from switch.trunks.inbound import TrunkInbound, asserted_number, did_target
from switch.trunks.numbers import CallerId
from switch.trunks.outbound import (
    ANONYMOUS_FROM,
    TrunkCalls,
    identity_headers,
    trunk_request_uri,
)
from switch.trunks.policy import TrunkPolicy

NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)


def _trunk(**kw: object) -> TrunkConfig:
    return parse_trunk("t", {"host": "192.0.2.10", **kw})


def _invite(ruri: str = "02161234567", to: str = "02161234567", from_: str = "13900001111",
            extra: str = "") -> Request:
    raw = (f"INVITE sip:{ruri}@192.0.2.1 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKabc\r\n"
           f'From: "Caller" <sip:{from_}@192.0.2.10>;tag=1\r\n'
           f"To: <sip:{to}@192.0.2.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
           f"Max-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n")
    message = parse_message(raw.encode())
    assert isinstance(message, Request)
    return message


# -- out --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kw", "uri"), [
    ({}, "sip:+8613800000000@192.0.2.10"),
    ({"port": 5080}, "sip:+8613800000000@192.0.2.10:5080"),
    ({"transport": "tcp"}, "sip:+8613800000000@192.0.2.10;transport=tcp"),
    ({"transport": "tls"}, "sips:+8613800000000@192.0.2.10;transport=tls"),
    ({"host": "2001:db8::1"}, "sip:+8613800000000@[2001:db8::1]"),
])
def test_request_uri(kw: dict[str, object], uri: str) -> None:
    assert trunk_request_uri(_trunk(**kw), "+8613800000000") == uri


def test_identity_headers_trusted_untrusted_private_and_fallback() -> None:
    trusted = _trunk(trusted=True, from_domain="carrier.example", username="8621001")
    from_, extra = identity_headers(trusted, CallerId("02161234567"), 'Ann "A" Li')
    assert from_ == '"Ann A Li" <sip:02161234567@carrier.example>'
    assert extra == [("P-Asserted-Identity", "<sip:02161234567@carrier.example>")]
    from_, extra = identity_headers(trusted, CallerId("02161234567", private=True))
    assert from_ == ANONYMOUS_FROM
    assert extra == [("Privacy", "id"),
                     ("P-Asserted-Identity", "<sip:02161234567@carrier.example>")]
    untrusted = _trunk(username="8621001", from_user="021999")
    from_, extra = identity_headers(untrusted, CallerId("02161234567", private=True))
    assert (from_, extra) == (ANONYMOUS_FROM, [("Privacy", "id")])  # the number goes nowhere
    from_, extra = identity_headers(untrusted, CallerId(None))
    assert (from_, extra) == ("<sip:021999@192.0.2.10>", [])  # from_user, never an extension
    assert identity_headers(_trunk(), CallerId(None))[0] == ANONYMOUS_FROM


def test_trusted_is_a_boolean_key() -> None:
    assert _trunk(trusted=True).trusted and not _trunk().trusted
    with pytest.raises(ConfigError, match=r"trunks\.t\.trusted"):
        _trunk(trusted="yes")


# -- in ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("entry", "target"), [
    ("ivr:hotline", Ivr("hotline")), ("queue:billing", Queue("billing")),
    ("user:1001", Extension("1001")), ("extension:1002", Extension("1002")),
    ("voicemail:ops", Voicemail("ops")), ("12345", None), ("trunk:other", None),
    ("ivr:", None),
])
def test_did_target(entry: str, target: object) -> None:
    assert did_target(entry) == target


@pytest.mark.parametrize(("extra", "number"), [
    ("P-Asserted-Identity: <tel:+8613900002222;cpc=ordinary>\r\n", "+8613900002222"),
    ('P-Asserted-Identity: "X" <sip:+8613900002222@h;user=phone>\r\n', "+8613900002222"),
    ("P-Asserted-Identity: <sip:a@h>, <tel:+861>\r\n", "a"),
    ("Remote-Party-ID: <sip:02161111111@h>;party=calling\r\n", "02161111111"),
    ("", None),
])
def test_asserted_number(extra: str, number: str | None) -> None:
    assert asserted_number(_invite(extra=extra)) == number


def _inbound() -> TrunkInbound:
    return TrunkInbound(TrunkPolicy(parse_trunks({
        "trusted": {"host": "192.0.2.10", "trusted": True,
                    "did_map": {"02161234567": "user:1002", "02161234500": "12345"}},
        "plain": {"host": "192.0.2.20", "did_map": {"02161230000": "queue:billing"}},
        "off": {"host": "192.0.2.30", "enabled": False},
    })))


def test_identify_by_source_with_trusted_identity_only() -> None:
    inbound = _inbound()
    pai = "P-Asserted-Identity: <sip:+8613900002222@h>\r\n"
    caller = inbound.identify(_invite(extra=pai), Address("udp", "192.0.2.10", 5060))
    assert caller is not None
    assert (caller.trunk.name, caller.number, caller.asserted) == (
        "trusted", "+8613900002222", True)
    caller = inbound.identify(_invite(ruri="02161230000", extra=pai),
                              Address("udp", "192.0.2.20", 5060))
    assert caller is not None and (caller.number, caller.asserted) == ("13900001111", False)
    assert inbound.identify(_invite(), Address("udp", "192.0.2.99", 5060)) is None
    assert inbound.identify(_invite(), Address("udp", "192.0.2.30", 5060)) is None  # disabled
    anon = inbound.identify(_invite(from_="anonymous"), Address("udp", "192.0.2.10", 5060))
    assert anon is not None and anon.number == ""


def test_called_number_from_to_when_only_it_is_a_did() -> None:
    inbound = _inbound()
    src = Address("udp", "192.0.2.10", 5060)
    caller = inbound.identify(_invite(ruri="8621001", to="02161234567"), src)
    assert caller is not None and caller.called == "02161234567"
    caller = inbound.identify(_invite(ruri="02161234500", to="02161234567"), src)
    assert caller is not None and caller.called == "02161234500"  # the R-URI wins


def test_route_did_entries_dial_plan_and_blocked_callers() -> None:
    inbound = _inbound()
    plan = DialPlan.from_config(parse_routing(tomllib.loads("""
[[dialplan.rules]]
name = "hotline"
match = "12345"
target = "ivr"
program = "hotline"

[[dialplan.rules]]
name = "out"
match = "_9."
target = "trunk"
trunk = "plain"
strip = 1
source = "user"
""")))
    d = inbound.route("trusted", "02161234567", "139", plan, NOW)
    assert (d.target, d.rule_name) == (Extension("1002"), "did:trusted")
    d = inbound.route("trusted", "02161234500", "139", plan, NOW)
    assert (d.target, d.rule_name) == (Ivr("hotline"), "hotline")
    d = inbound.route("trusted", "913800000000", "139", plan, NOW)
    assert d.target == Reject(404, "no route")  # the user-only exit never matches a trunk
    d = inbound.route("trusted", "02161234567", "139", plan, NOW, {"blocked": {"139"}})
    assert d.target == Reject(403, "caller blocked")
    assert inbound.route("off", "02161234567", "139", plan, NOW).target.status == 403


async def test_a_trunk_named_by_host_name_is_recognised_once_resolved() -> None:
    calls = TrunkCalls(parse_trunks({
        "named": {"host": "localhost"},
        "pinned": {"host": "localhost", "allowed_sources": ["192.0.2.50"]},
    }))
    source = Address("udp", "127.0.0.1", 5060)
    assert calls.inbound.identify(_invite(), source) is None  # not before DNS
    await calls.resolve_sources()
    caller = calls.inbound.identify(_invite(), source)
    assert caller is not None and caller.trunk.name == "named"
    assert calls.policy.add_resolved("pinned", ["127.0.0.1"]) == 0  # explicit sources win
    assert calls.policy.add_resolved("named", ["127.0.0.1", "not an ip"]) == 0  # known


class _FakeIvr:
    """``IvrService.has`` / ``load`` over a set of program files."""

    def __init__(self, files: set[str], loaded: set[str]) -> None:
        self.files, self.loaded = files, loaded

    def has(self, name: str) -> bool:
        return name in self.loaded

    def load(self, name: str) -> list[object]:
        if name not in self.files:
            raise FileNotFoundError(name)
        self.loaded.add(name)
        return []


def test_did_ivr_programs_are_loaded_when_the_dial_plan_does_not_name_them() -> None:
    calls = TrunkCalls(parse_trunks({
        "a": {"host": "192.0.2.1", "did_map": {"4001": "ivr:hotline", "4002": "ivr:night",
                                               "4003": "ivr:gone", "4004": "user:1001"}},
        "off": {"host": "192.0.2.2", "enabled": False, "did_map": {"4005": "ivr:other"}},
    }))
    ivr = _FakeIvr({"hotline", "night", "other"}, {"hotline"})
    assert calls.load_programs(ivr) == ["night"]
    assert ivr.loaded == {"hotline", "night"}
