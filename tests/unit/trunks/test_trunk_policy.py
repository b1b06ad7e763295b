"""Toll-fraud policy: recognition by source address, DID routing only from trunks, who may
dial out, what may be dialed, and the concurrent-call cap."""

from __future__ import annotations

import pytest

from signaling.events import Address
from switch.trunks.config import parse_trunks
from switch.trunks.policy import Source, TrunkPolicy

TRUNKS = parse_trunks({
    "telecom": {
        "host": "203.0.113.10", "allowed_sources": ["203.0.113.0/24"],
        "area_code": "21", "number_format": "e164",
        "outbound_rules": [{"prefix": "9", "strip": 1}],
        "did_map": {"02161234567": "ivr:hotline"}, "deny_prefixes": ["+86168", "0168"],
        "max_calls": 2, "transit_trunks": ["mobile"],
    },
    "sbc": {
        "host": "203.0.113.20", "allowed_sources": ["203.0.113.20"],
        "did_map": {"4008001234": "queue:billing"},
    },
    "mobile": {
        "host": "198.51.100.7", "allow_international": True, "allowed_users": ["1001"],
        "did_map": {"13800000000": "user:1001"},
    },
    "off": {"enabled": False, "host": "192.0.2.99", "did_map": {"4001112222": "ivr:x"}},
})
POLICY = TrunkPolicy(TRUNKS)
TELECOM, SBC, MOBILE, OFF = (TRUNKS[n] for n in ("telecom", "sbc", "mobile", "off"))


def test_identify_by_source_address_most_specific_wins() -> None:
    assert POLICY.identify_trunk(Address("udp", "203.0.113.20", 5060)) is SBC
    assert POLICY.identify_trunk("203.0.113.21") is TELECOM
    assert POLICY.identify_trunk("198.51.100.7") is MOBILE
    assert POLICY.identify_trunk("::ffff:198.51.100.7") is MOBILE
    assert POLICY.identify_trunk("192.0.2.99") is None  # disabled trunk
    assert POLICY.identify_trunk("10.1.1.1") is None
    assert POLICY.identify_trunk("not-an-ip") is None


def test_tie_broken_by_did() -> None:
    trunks = parse_trunks({
        "a": {"host": "192.0.2.1", "did_map": {"4001000001": "ivr:a"}},
        "b": {"host": "192.0.2.1", "did_map": {"4001000002": "ivr:b"}},
    })
    policy = TrunkPolicy(trunks)
    assert policy.identify_trunk("192.0.2.1", "4001000002") is trunks["b"]
    assert policy.identify_trunk("192.0.2.1") is trunks["a"]


def test_did_routing_only_from_trunks() -> None:
    route = POLICY.route_inbound("203.0.113.5", "+86 21 6123 4567")
    assert route is not None and route.trunk is TELECOM and route.target == "ivr:hotline"
    unknown_did = POLICY.route_inbound("203.0.113.5", "02199999999")
    assert unknown_did is not None and unknown_did.target is None
    # The same DID from an address that is no trunk: not routed (a user request).
    assert POLICY.route_inbound("10.9.9.9", "02161234567") is None


def test_authenticated_user_may_dial_out() -> None:
    d = POLICY.may_use_trunk("user", "1002", TELECOM, "913812345678")
    assert d.allowed and d.number == "+8613812345678" and d.status_code == 200


@pytest.mark.parametrize("source, user", [("user", None), ("user", ""), ("unknown", "1001"),
                                          ("bogus", "1001")])
def test_unauthenticated_or_unknown_source_is_refused(source: str, user: str | None) -> None:
    d = POLICY.may_use_trunk(source, user, TELECOM, "13812345678")
    assert not d.allowed and d.status_code == 403


def test_allowed_users_list() -> None:
    assert POLICY.may_use_trunk(Source.USER, "1001", MOBILE, "13812345678").allowed
    d = POLICY.may_use_trunk(Source.USER, "1002", MOBILE, "13812345678")
    assert not d.allowed and "not allowed" in d.reason


def test_trunk_to_trunk_transit_needs_explicit_permission() -> None:
    # mobile -> telecom is listed in telecom.transit_trunks; sbc -> telecom is not.
    assert POLICY.may_use_trunk("trunk", None, TELECOM, "13812345678",
                                from_trunk=MOBILE).allowed
    d = POLICY.may_use_trunk("trunk", None, TELECOM, "13812345678", from_trunk=SBC)
    assert not d.allowed and "transit" in d.reason
    d = POLICY.may_use_trunk("trunk", None, TELECOM, "13812345678", from_trunk=None)
    assert not d.allowed


def test_disabled_or_foreign_trunk_is_refused() -> None:
    assert not POLICY.may_use_trunk("user", "1001", OFF, "13812345678").allowed
    other = parse_trunks({"telecom": {"host": "203.0.113.10"}})["telecom"]
    assert not POLICY.may_use_trunk("user", "1001", other, "13812345678").allowed


def test_international_needs_permission() -> None:
    d = POLICY.may_use_trunk("user", "1001", TELECOM, "0014155550100")
    assert not d.allowed and d.status_code == 403 and "international" in d.reason
    assert POLICY.may_use_trunk("user", "1001", MOBILE, "0014155550100").allowed


def test_denied_prefixes_in_both_forms() -> None:
    assert not POLICY.may_use_trunk("user", "1001", TELECOM, "01681234567").allowed
    assert not POLICY.may_use_trunk("user", "1001", TELECOM, "+861681234567").allowed


def test_emergency_always_allowed_to_users() -> None:
    d = POLICY.may_use_trunk("user", "1001", TELECOM, "9110")
    assert d.allowed and d.number == "110" and d.reason == "emergency"


@pytest.mark.parametrize("dialed", ["*72#", "12ab", "9"])
def test_bad_numbers_get_484(dialed: str) -> None:
    d = POLICY.may_use_trunk("user", "1001", TELECOM, dialed)
    assert not d.allowed and d.status_code == 484


def test_service_codes_go_as_dialed() -> None:
    d = POLICY.may_use_trunk("user", "1001", TELECOM, "995555")
    assert d.allowed and d.number == "95555"


def test_max_calls() -> None:
    assert POLICY.may_use_trunk("user", "1001", TELECOM, "13812345678", active_calls=1).allowed
    d = POLICY.may_use_trunk("user", "1001", TELECOM, "13812345678", active_calls=2)
    assert not d.allowed and d.status_code == 503
