"""Batched RTP socket I/O: the C extension and the pure-Python fallback behave the same.

Real loopback sockets: the same datagrams (several per socket, empty, oversized, from IPv4
and IPv6 peers) are drained by both implementations and must give identical batches; both
send the same packets to the same peers; and a whole engine host bridging two channels sends
the same packets out for the same packets in, whichever implementation it runs.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time

import numpy as np
import pytest

from benchmarks.bench_media import safe_octets
from switch.media.batchio import RX_STRIDE, BatchIO, c_available
from switch.media.config import MediaConfig
from switch.media.engine_host import EngineHost
from switch.media.rtp import build_packet, parse_header_fast

SAFE, _ = safe_octets()  # PCMU octets that survive decode -> encode (not 0xFF, silence)


def frame(k: int, base: int) -> bytes:
    """Frame k of a phone: two safe octets naming k, repeated (unique for k < 49)."""
    return bytes([SAFE[base + k % 7], SAFE[base + k // 7 % 7]]) * 80


needs_c = pytest.mark.skipif(not c_available(), reason="switch.media._rtpio not built")


def bound(family: int = socket.AF_INET) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    s.setblocking(False)
    return s


def has_ipv6() -> bool:
    try:
        bound(socket.AF_INET6).close()
    except OSError:
        return False
    return True


def drain_all(io: BatchIO) -> dict[str, list]:
    out: dict[str, list] = {"slot": [], "data": [], "len": [], "fam": [], "ip": [],
                            "port": [], "ip6": [], "t": []}
    for b in io.drain():
        for j in range(b.count):
            n = int(b.lens[j])
            out["slot"].append(int(b.slots[j]))
            out["len"].append(n)
            out["data"].append(bytes(b.data[j, :n]) if n >= 0 else None)
            out["fam"].append(int(b.fam[j]))
            out["ip"].append(int(b.ip[j]))
            out["port"].append(int(b.port[j]))
            out["ip6"].append(bytes(b.ip6[j]) if b.fam[j] == 6 else None)
            out["t"].append(float(b.t[j]))
    return out


def feed(io: BatchIO, family: int, peers: dict[int, socket.socket],
         datagrams: list[tuple[int, int, bytes]]) -> dict[str, list]:
    """Register one socket per slot, send ``(slot, peer, bytes)`` to them, drain."""
    socks = {}
    for slot in sorted({d[0] for d in datagrams}):
        socks[slot] = bound(family)
        io.register(slot, socks[slot])
    t0 = time.monotonic()
    for slot, peer, data in datagrams:
        peers[peer].sendto(data, socks[slot].getsockname())
    time.sleep(0.05)
    got = drain_all(io)
    t1 = time.monotonic()
    assert all(t0 - 0.01 <= t <= t1 for t in got["t"])  # kernel timestamps, monotonic clock
    # sort by slot keeping each socket's arrival order (sockets come in epoll order)
    order = sorted(range(len(got["slot"])), key=lambda j: got["slot"][j])
    for s in socks.values():
        s.close()
    return {k: [v[j] for j in order] for k, v in got.items() if k != "t"}


@needs_c
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_c_and_python_drain_identically(family: int) -> None:
    if family == socket.AF_INET6 and not has_ipv6():
        pytest.skip("no IPv6 loopback")
    rng = random.Random(4)
    datagrams = []
    for slot in (0, 3, 7, 9):
        for k in range(rng.randrange(1, 6)):
            datagrams.append((slot, k % 2, build_packet(0, k, 160 * k, slot, rng.randbytes(160))))
    datagrams += [(3, 0, b""), (7, 1, b"x" * (RX_STRIDE + 1)), (9, 0, b"y" * RX_STRIDE)]
    results = []
    for impl in ("c", "python"):
        peers = {0: bound(family), 1: bound(family)}
        io = BatchIO(16, impl, max_batch=8)  # several chunks
        got = feed(io, family, peers, datagrams)
        ports = {peer: s.getsockname()[1] for peer, s in peers.items()}
        got["port"] = [next(p for p, v in ports.items() if v == port) for port in got["port"]]
        results.append(got)
        io.close()
        for s in peers.values():
            s.close()
    c, py = results
    assert c == py
    assert len(c["slot"]) == len(datagrams)
    assert -1 in c["len"] and 0 in c["len"] and RX_STRIDE in c["len"]
    assert set(c["fam"]) == {4 if family == socket.AF_INET else 6}
    want = {slot: [d for s, _, d in datagrams if s == slot] for slot in (0, 3, 7, 9)}
    for slot, items in want.items():
        seen = [d for s, d in zip(c["slot"], c["data"], strict=True) if s == slot]
        assert seen == [d if len(d) <= RX_STRIDE else None for d in items]


@needs_c
def test_c_and_python_send_identically() -> None:
    for impl in ("c", "python"):
        io = BatchIO(4, impl)
        socks = [bound() for _ in range(3)]
        for slot, s in enumerate(socks):
            io.register(slot, s)
        peer = bound()
        host, port = peer.getsockname()
        ip = int.from_bytes(socket.inet_aton(host), "big")
        data = b"".join(bytes([i]) * 10 for i in range(4))
        err = io.send(np.asarray([0, 1, 2, 3]), data, 10, np.full(4, ip, dtype=np.uint32),
                      np.full(4, port, dtype=np.uint16),
                      lens=np.asarray([10, 4, 0, 10], dtype=np.int32))
        assert err.tolist() == [0, 0, 0, 1]  # slot 3 has no socket
        time.sleep(0.05)
        got = []
        while True:
            try:
                got.append(peer.recvfrom(100))
            except BlockingIOError:
                break
        src = {s.getsockname()[1]: slot for slot, s in enumerate(socks)}
        assert sorted((src[a[1]], d) for d, a in got) == [(0, b"\x00" * 10), (1, b"\x01" * 4),
                                                          (2, b"")]
        io.close()
        for s in [*socks, peer]:
            s.close()


def test_unknown_implementation_is_refused() -> None:
    with pytest.raises(ValueError):
        BatchIO(2, "rust")


async def run_bridge(impl: str, frames: int) -> tuple[list[bytes], list[bytes],
                                                     dict[int, dict]]:
    """Two channels bridged in an EngineHost; a phone on each side sends ``frames``."""
    base = random.Random().randrange(52000, 60000, 2)
    cfg = MediaConfig(rtp_port_min=base, rtp_port_max=base + 15, rtp_io=impl,
                      inactivity_timeout_s=0, jitter_min_ms=80)  # a loaded CI machine
    host = EngineHost(cfg, (base, base + 15), lambda *a: None, seed=3)
    assert host.io.impl == impl
    phones = [bound(), bound()]
    host.start()
    try:
        a = await host.open(1, remote=phones[0].getsockname())
        b = await host.open(2, remote=phones[1].getsockname())
        await host.execute("bridge", (1, 2))
        t0 = time.monotonic()
        for k in range(frames):
            for i, (phone, dst) in enumerate(zip(phones, (a, b), strict=True)):
                payload = frame(k, 7 * i)
                phone.sendto(build_packet(0, k, 160 * k, 0x55 + i, payload), dst)
            await asyncio.sleep(max(0.0, t0 + 0.02 * (k + 1) - time.monotonic()))
        await asyncio.sleep(0.2)
        outs: list[list[bytes]] = [[], []]
        for i, phone in enumerate(phones):
            while True:
                try:
                    data = phone.recv(2048)
                except BlockingIOError:
                    break
                hdr = parse_header_fast(data)
                assert hdr is not None
                outs[i].append(data[hdr[5] : hdr[6]])
        stats = {1: host.stats(1), 2: host.stats(2)}
    finally:
        host.stop()
        for p in phones:
            p.close()
    return outs[0], outs[1], stats


@needs_c
async def test_host_sends_the_same_packets_with_either_implementation() -> None:
    results = {impl: await run_bridge(impl, 40) for impl in ("c", "python")}
    heard = {}
    clean = {}
    for impl, (to_a, to_b, both) in results.items():
        # phone a (channel 1) hears what channel 2 received from phone b, and vice versa
        for name, out, first, stats in (("a", to_a, 7, both[2]), ("b", to_b, 0, both[1])):
            assert stats["packets_received"] >= 38, impl
            frames = [p for p in out if p[0] != 0xFF]  # 0xFF: silence before the first frame
            want = [frame(k, first) for k in range(40)]
            clean[impl, name] = stats["late"] == 0 and stats["concealed_frames"] <= 1
            if clean[impl, name]:
                # a loss-free run: the other phone's 40 frames, in order, none twice (then
                # the concealment of the missing 41st frame, which fades to silence)
                assert frames[:40] == want, impl
            else:  # a loaded machine stalled the sender: still in order, most frames there
                idx = [want.index(f) for f in frames if f in want]
                assert idx == sorted(set(idx)) and len(idx) >= 30, impl
            heard[impl, name] = frames[:40]
    for name in ("a", "b"):
        if clean["c", name] and clean["python", name]:
            assert heard["c", name] == heard["python", name]


def test_config_selects_and_validates_the_io_path(caplog: pytest.LogCaptureFixture) -> None:
    from switch.media.config import ConfigError

    with pytest.raises(ConfigError, match="rtp_io"):
        MediaConfig(rtp_io="fast")
    with pytest.raises(ConfigError, match="rx_drains_per_tick"):
        MediaConfig(rx_drains_per_tick=0)
    host = EngineHost(MediaConfig(rtp_io="python"), (40000, 40009), lambda *a: None)
    assert host.io.impl == "python"

    async def start_stop() -> None:
        with caplog.at_level("WARNING", logger="switch.media.engine_host"):
            host.start()
            host.stop()

    asyncio.run(start_stop())
    assert "pure-Python fallback" in caplog.text
    if not c_available():
        with pytest.raises(ValueError, match="not built"):
            BatchIO(2, "c")
