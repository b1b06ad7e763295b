"""Symmetric RTP latching (RFC 4961) and RTP port allocation."""

from __future__ import annotations

import random

import pytest

from switch.media.latch import SymmetricLatch
from switch.media.ports import PortsExhaustedError, RtpPortAllocator

SDP = ("192.168.1.20", 4000)  # what the phone wrote in SDP (behind NAT)
NAT = ("203.0.113.7", 61000)  # where its packets really come from
EVIL = ("198.51.100.9", 5004)


def test_latches_to_nat_source_after_n_packets() -> None:
    latch = SymmetricLatch(SDP, latch_packets=3)
    assert latch.target == SDP
    assert [latch.accept(NAT, 0.02 * i) for i in range(4)] == [False, False, True, True]
    assert latch.latched == NAT and latch.target == NAT
    assert latch.dropped == 2 and latch.accepted == 2


def test_expected_address_latches_immediately() -> None:
    latch = SymmetricLatch(SDP, latch_packets=3)
    assert latch.accept(SDP, 0.0)
    assert latch.latched == SDP


def test_interleaved_sources_do_not_latch() -> None:
    latch = SymmetricLatch(None, latch_packets=2)
    results = [latch.accept(a, 0.01 * i) for i, a in enumerate([NAT, EVIL] * 5)]
    assert not any(results) and latch.latched is None


def test_foreign_packets_dropped_while_latched() -> None:
    latch = SymmetricLatch(None, latch_packets=1)
    assert latch.accept(NAT, 0.0)
    flood = [latch.accept(EVIL, 0.001 * i) for i in range(1000)]
    assert not any(flood) and latch.dropped == 1000
    assert latch.accept(NAT, 1.0)  # the real source keeps flowing


def test_relatch_only_after_silence() -> None:
    latch = SymmetricLatch(None, latch_packets=2, relatch_after_s=2.0)
    latch.accept(NAT, 0.0)
    latch.accept(NAT, 0.02)
    new = ("203.0.113.7", 61002)  # NAT rebinding
    assert not latch.accept(new, 1.0) and not latch.accept(new, 1.02)  # NAT still live
    assert not latch.accept(new, 2.5)  # silent long enough: 1st packet of the new source
    assert latch.accept(new, 2.52)  # 2nd in a row: re-latched
    assert latch.latched == new and latch.relatches == 1
    assert not latch.accept(NAT, 2.6)


def test_reset_for_new_sdp() -> None:
    latch = SymmetricLatch(None, latch_packets=1)
    latch.accept(NAT, 0.0)
    latch.reset(SDP)
    assert latch.latched is None and latch.target == SDP
    with pytest.raises(ValueError):
        SymmetricLatch(None, latch_packets=0)


def test_ports_even_with_rtcp_in_range() -> None:
    alloc = RtpPortAllocator(10001, 10010)
    ports = [alloc.allocate() for _ in range(alloc.available)]
    assert ports == [10002, 10004, 10006, 10008]  # 10010 has no 10011 for RTCP
    assert all(p % 2 == 0 and p + 1 <= 10010 for p in ports)
    with pytest.raises(PortsExhaustedError):
        alloc.allocate()


def test_released_ports_reused_last() -> None:
    alloc = RtpPortAllocator(20000, 20007)
    a = alloc.allocate()
    alloc.release(a)
    assert [alloc.allocate() for _ in range(4)] == [20002, 20004, 20006, 20000]
    with pytest.raises(ValueError):
        alloc.release(30000)


def test_double_release_and_discard() -> None:
    alloc = RtpPortAllocator(20000, 20003)
    p = alloc.allocate()
    alloc.release(p)
    with pytest.raises(ValueError):
        alloc.release(p)
    q = alloc.allocate()
    alloc.discard(q)
    assert alloc.available == 1 and alloc.in_use == 0 and q in alloc.discarded


def test_random_order_is_deterministic_per_seed() -> None:
    a = RtpPortAllocator(10000, 10999, random.Random(42))
    b = RtpPortAllocator(10000, 10999, random.Random(42))
    c = RtpPortAllocator(10000, 10999, random.Random(43))
    seq_a = [a.allocate() for _ in range(20)]
    assert seq_a == [b.allocate() for _ in range(20)]
    assert seq_a != [c.allocate() for _ in range(20)]
    assert seq_a != sorted(seq_a) and all(p % 2 == 0 for p in seq_a)


@pytest.mark.parametrize(("start", "end"), [(0, 10), (10, 5), (10001, 10001), (65535, 65536)])
def test_bad_ranges(start: int, end: int) -> None:
    with pytest.raises(ValueError):
        RtpPortAllocator(start, end)
