"""RtpEndpoint: port pairs from a range, real loopback sockets, symmetric RTP latching."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from switch.media.endpoint import EndpointError, open_endpoint
from switch.media.engine import PACKET_BYTES, MediaEngine
from switch.media.ports import RtpPortAllocator
from switch.media.rtp import build_packet, parse_header_fast


def port_range(pairs: int) -> tuple[int, int]:
    base = random.Random().randrange(40000, 49000, 2)
    return base, base + 2 * pairs - 1


def udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2.0)
    return s


async def test_endpoint_ports_receive_send_close() -> None:
    loop = asyncio.get_running_loop()
    lo, hi = port_range(4)
    alloc = RtpPortAllocator(lo, hi)
    got: list[tuple[str, int, bytes]] = []
    ep = await open_endpoint(loop, alloc, 3, lambda s, d, a, t: got.append(("rtp", s, d)),
                             lambda s, d, a, t: got.append(("rtcp", s, d)))
    try:
        assert lo <= ep.port <= hi and ep.port % 2 == 0
        assert ep.local_addr == ("127.0.0.1", ep.port)
        peer = udp()
        peer.sendto(b"rtp!", ("127.0.0.1", ep.port))
        peer.sendto(b"rtcp", ("127.0.0.1", ep.port + 1))
        for _ in range(100):
            if len(got) == 2:
                break
            await asyncio.sleep(0.01)
        assert sorted(got) == [("rtcp", 3, b"rtcp"), ("rtp", 3, b"rtp!")]
        ep.send(b"back", peer.getsockname())
        assert peer.recv(100) == b"back"
        ep.send(b"x" * 70000, peer.getsockname())  # too big for UDP: counted, not raised
        assert ep.socket_errors == 1
        peer.close()
    finally:
        ep.close()
    assert alloc.in_use == 0
    ep.close()  # idempotent


async def test_port_in_use_is_skipped_and_exhaustion_raises() -> None:
    loop = asyncio.get_running_loop()
    lo = port_range(2)[0]
    alloc = RtpPortAllocator(lo, lo + 3)  # two pairs: lo and lo + 2
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", lo + 1))  # someone else holds the RTCP port of pair lo
    squatters = [squatter]
    eps = []
    try:
        eps.append(await open_endpoint(loop, alloc, 0, lambda *a: None, lambda *a: None))
        assert eps[0].port == lo + 2
        assert lo in alloc.discarded
        with pytest.raises(EndpointError):
            await open_endpoint(loop, alloc, 1, lambda *a: None, lambda *a: None)
    finally:
        for ep in eps:
            ep.close()
        for s in squatters:
            s.close()


async def test_symmetric_latch_with_real_sockets_and_foreign_flood() -> None:
    loop = asyncio.get_running_loop()
    engine = MediaEngine(2, seed=9)
    slot = engine.open(remote=None)  # no SDP address: learn it from the media
    alloc = RtpPortAllocator(*port_range(2))
    ep = await open_endpoint(loop, alloc, slot, engine.receive_rtp, engine.receive_rtcp)
    phone, attacker = udp(), udp()
    try:
        dst = ("127.0.0.1", ep.port)
        for k in range(4):
            phone.sendto(build_packet(0, k, 160 * k, 77, bytes(160)), dst)
        for k in range(30):
            attacker.sendto(build_packet(0, k, 0, 66, b"\x00" * 160), dst)
        await asyncio.sleep(0.1)
        ch = engine.channel(slot)
        assert ch.remote == phone.getsockname()
        # the flood, plus the phone's packets before latching
        assert engine.stats(slot).foreign == 30 + 2
        out = engine.tick(loop.time())
        assert out.slots.tolist() == [slot]
        ep.send(out.packets[:PACKET_BYTES], ch.remote)
        reply = phone.recv(2048)
        assert parse_header_fast(reply)[0] == 0 and len(reply) == PACKET_BYTES
        attacker.settimeout(0.05)
        with pytest.raises(TimeoutError):
            attacker.recv(2048)
    finally:
        ep.close()
        phone.close()
        attacker.close()
