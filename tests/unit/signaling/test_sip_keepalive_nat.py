"""Keep-alive pings go to NATed contacts only (Kamailio nathelper's rule)."""

from __future__ import annotations

from signaling.keepalive import KeepAliveTracker
from signaling.location import Binding


def _binding(contact: str, source: tuple[str, int], transport: str = "udp") -> Binding:
    return Binding(aor="sip:1001@softswitch", contact=contact, expires_at=1e12,
                   transport=transport, source_host=source[0], source_port=source[1],
                   registered_contact=contact)


def test_contact_equal_to_the_source_is_not_pinged() -> None:
    ka = KeepAliveTracker(interval_s=30, timeout_s=5)
    ka.update("sip:1001@softswitch", [_binding("sip:1001@192.0.2.7:5062", ("192.0.2.7", 5062))],
              now=0.0)
    assert len(ka) == 0


def test_contact_behind_nat_is_pinged_and_unpinged_when_gone() -> None:
    ka = KeepAliveTracker(interval_s=30, timeout_s=5)
    natted = _binding("sip:1001@10.0.0.5:5060", ("198.51.100.9", 40123))
    ka.update("sip:1001@softswitch", [natted], now=0.0)
    assert len(ka) == 1
    pings, _ = ka.poll(now=31.0)
    assert [p.target.port for p in pings] == [40123]
    ka.update("sip:1001@softswitch", [], now=40.0)
    assert len(ka) == 0


def test_default_port_counts_as_5060_and_nat_only_can_be_turned_off() -> None:
    same = _binding("sip:1001@192.0.2.7", ("192.0.2.7", 5060))
    assert len(_tracked([same], nat_only=True)) == 0
    assert len(_tracked([same], nat_only=False)) == 1


def _tracked(bindings: list[Binding], *, nat_only: bool) -> KeepAliveTracker:
    ka = KeepAliveTracker(interval_s=30, timeout_s=5, nat_only=nat_only)
    ka.update("sip:1001@softswitch", bindings, now=0.0)
    return ka
