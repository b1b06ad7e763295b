"""Which address the node puts in Via, Contact and SDP."""

from __future__ import annotations

import ipaddress

from switch.app import advertised_host, primary_ipv4


def test_a_specific_bind_address_is_advertised_as_is() -> None:
    assert advertised_host("127.0.0.1") == "127.0.0.1"
    assert advertised_host("::1") == "::1"


def test_a_wildcard_bind_advertises_a_real_interface_address() -> None:
    host = advertised_host("0.0.0.0")
    addr = ipaddress.IPv4Address(host)
    # Never Debian's 127.0.1.1 host-name alias: phones would send RTP to themselves.
    assert not str(addr).startswith("127.0.1.")
    primary = primary_ipv4()
    assert primary is None or not ipaddress.IPv4Address(primary).is_loopback
