"""The batch receive path (engine_rx) gives exactly what per-packet receive_rtp gives.

Two engines with the same seed get the same randomized packet stream (loss, reordering,
duplicates, late packets after a sender stall, wrong payload types, garbage, CSRC /
extension / padding headers, 10 and 30 ms packets, foreign floods, an IPv6 source, an SSRC
change, a timestamp jump, RFC 4733 events, comfort noise, latching without an SDP address,
a channel without latching): one per packet through ``receive_rtp``, the other per tick
through ``receive_batch``. Every tick's output packets and events, and in the end every
channel's statistics, must be identical.
"""

from __future__ import annotations

import ipaddress
import random
import struct

import numpy as np
import pytest

from switch.media.engine import MediaEngine
from switch.media.rfc4733 import DtmfSender
from switch.media.rtp import RtpSource, build_packet

STRIDE = 1024
PHONE = [("127.0.0.1", 30000 + 2 * i) for i in range(8)]
EVIL = ("127.0.0.9", 6666)
EVIL6 = ("::1", 7777)


def _v4(addr: tuple[str, int]) -> int:
    return int(ipaddress.IPv4Address(addr[0]))


def to_batch(pkts: list[tuple[int, bytes, tuple[str, int], float]]) -> tuple:
    m = len(pkts)
    data = np.zeros((m, STRIDE), dtype=np.uint8)
    lens = np.zeros(m, dtype=np.int32)
    ip = np.zeros(m, dtype=np.uint32)
    port = np.zeros(m, dtype=np.uint16)
    fam = np.zeros(m, dtype=np.uint8)
    ip6 = np.zeros((m, 16), dtype=np.uint8)
    for j, (_, raw, addr, _) in enumerate(pkts):
        data[j, : len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        lens[j] = len(raw)
        port[j] = addr[1]
        if ":" in addr[0]:
            fam[j] = 6
            ip6[j] = np.frombuffer(ipaddress.IPv6Address(addr[0]).packed, dtype=np.uint8)
        else:
            fam[j] = 4
            ip[j] = _v4(addr)
    slots = np.asarray([p[0] for p in pkts], dtype=np.int64)
    t = np.asarray([p[3] for p in pkts], dtype=np.float64)
    return slots, data, lens, ip, port, fam, ip6, t


class Sender:
    """One RTP source with a few misbehaviours on demand."""

    def __init__(self, rng: random.Random, pt: int, ssrc: int) -> None:
        self.rng = rng
        self.pt = pt
        self.ssrc = ssrc
        self.seq = rng.randrange(65536)
        self.ts = rng.randrange(1 << 32)
        self.held: list[bytes] = []

    def next(self, samples: int = 160) -> bytes:
        payload = bytes(self.rng.randrange(256) for _ in range(samples))
        pkt = build_packet(self.pt, self.seq, self.ts, self.ssrc, payload)
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + samples) & 0xFFFFFFFF
        return pkt


def odd_header(pkt: bytes, rng: random.Random) -> bytes:
    """The same packet with CSRCs, a header extension or padding (RFC 3550 5.1, 5.3.1)."""
    b0, rest, payload = pkt[0], pkt[1:12], pkt[12:]
    kind = rng.randrange(3)
    if kind == 0:
        return bytes([b0 | 2]) + rest + b"\x00" * 8 + payload
    if kind == 1:
        return bytes([b0 | 0x10]) + rest + struct.pack("!HH", 0xBEDE, 1) + b"\x00" * 4 + payload
    return bytes([b0 | 0x20]) + rest + payload + b"\x00\x00\x03"


def scenario(seed: int, ticks: int) -> list[list[tuple[int, bytes, tuple[str, int], float]]]:
    """Per tick, the datagrams (slot, bytes, source, arrival) in arrival order."""
    rng = random.Random(seed)
    senders = [Sender(rng, 8 if i == 3 else 0, 0x1000 + i) for i in range(6)]
    dtmf = DtmfSender()
    plan: list[list[tuple[int, bytes, tuple[str, int], float]]] = []
    t0 = 1000.0
    stall: dict[int, list[bytes]] = {}
    digit: list[tuple[bool, int, bytes, float]] = []
    for k in range(ticks):
        now = t0 + 0.02 * k
        pkts: list[tuple[int, bytes, tuple[str, int], float]] = []
        for slot, snd in enumerate(senders):
            src = PHONE[slot]
            r = rng.random()
            batch: list[bytes] = []
            if k in (40, 41, 42) and slot == 2:
                stall.setdefault(slot, []).append(snd.next())  # held back: late later
                continue
            if k == 45 and slot == 2:
                batch += stall.pop(slot)
            if k == 60 and slot == 1:
                snd.ssrc ^= 0xFFFF  # SSRC change
                snd.seq = rng.randrange(65536)
            if k == 90 and slot == 0:
                snd.ts = (snd.ts + 8000 * 30) & 0xFFFFFFFF  # timestamp jump
            if k == 120 and slot == 5:
                digit = dtmf.packets("5", 60, start_ts=snd.ts)
            if 120 <= k < 125 and slot == 5:  # RFC 4733 digit "5", one packet per tick
                marker, ts, payload, _ = digit[k - 120]
                batch.append(build_packet(101, snd.seq, ts, snd.ssrc, payload, marker=marker))
                snd.seq = (snd.seq + 1) & 0xFFFF
            if r < 0.04:
                pass  # lost
            elif r < 0.08:
                a, b = snd.next(), snd.next()
                batch += [b, a]  # reordered
            elif r < 0.11:
                a = snd.next()
                batch += [a, a]  # duplicate
            elif r < 0.14 and slot == 4:
                batch += [snd.next(80), snd.next(80)]  # 10 ms packets
            elif r < 0.16 and slot == 4:
                batch.append(snd.next(240))  # 30 ms packet
            elif r < 0.20:
                batch.append(odd_header(snd.next(), rng))
            else:
                batch.append(snd.next())
            if rng.random() < 0.03:
                batch.append(build_packet(18, 1, 2, 3, bytes(20)))  # wrong payload type
            if rng.random() < 0.03:
                batch.append(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 14))))
            if rng.random() < 0.02:
                batch.append(build_packet(13, snd.seq, snd.ts, snd.ssrc, b"\x40"))  # CN
            if rng.random() < 0.02:
                batch.append(build_packet(0, snd.seq, snd.ts, snd.ssrc, b""))  # empty
            for pkt in batch:
                pkts.append((slot, pkt, src, 0.0))
            if slot == 0 and 100 <= k < 103:  # a foreign flood, v4 and v6
                pkts += [(0, build_packet(0, i, 0, 66, bytes(160)), EVIL, 0.0)
                         for i in range(5)]
                pkts.append((0, build_packet(0, 9, 0, 66, bytes(160)), EVIL6, 0.0))
        if k > 200 and k % 50 == 0:  # slot 1 (no SDP address) roams after falling silent
            PHONE[1] = ("127.0.0.1", PHONE[1][1] + 1)
        rng.shuffle(pkts)
        pkts.sort(key=lambda p: p[0])  # keep per-slot order stable after the shuffle...
        order = list(range(len(pkts)))
        rng.shuffle(order)  # ...then interleave slots randomly, per-slot order kept
        by_slot: dict[int, list] = {}
        for p in pkts:
            by_slot.setdefault(p[0], []).append(p)
        merged = []
        while any(by_slot.values()):
            slot = rng.choice([s for s, v in by_slot.items() if v])
            merged.append(by_slot[slot].pop(0))
        step = 0.018 / max(1, len(merged))
        plan.append([(s, raw, src, now + 0.001 + i * step)
                     for i, (s, raw, src, _) in enumerate(merged)])
    return plan


def open_channels(engine: MediaEngine) -> list[int]:
    return [
        engine.open(remote=PHONE[0]),
        engine.open(remote=None),
        engine.open(remote=PHONE[2], latch=False),
        engine.open(remote=PHONE[3], codec="PCMA"),
        engine.open(remote=PHONE[4]),
        engine.open(remote=PHONE[5], dtmf_pt=101),
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batch_receive_equals_per_packet(seed: int) -> None:
    ticks = 420 if seed == 1 else 160
    plan = scenario(seed, ticks)
    PHONE[1] = ("127.0.0.1", 30002)
    a, b = MediaEngine(8, seed=5), MediaEngine(8, seed=5)
    slots_a, slots_b = open_channels(a), open_channels(b)
    assert slots_a == slots_b
    a.mix.bridge(slots_a[0], slots_a[1])
    b.mix.bridge(slots_b[0], slots_b[1])
    now = 1000.0
    for k, pkts in enumerate(plan):
        for slot, raw, src, t in pkts:
            a.receive_rtp(slot, raw, src, t)
        if pkts:
            cut = len(pkts) // 2 if k % 3 == 0 else len(pkts)  # sometimes two chunks
            for part in (pkts[:cut], pkts[cut:]):
                if part:
                    b.receive_batch(*to_batch(part))
        now = 1000.0 + 0.02 * (k + 1)
        out_a, out_b = a.tick(now), b.tick(now)
        assert out_a.slots.tolist() == out_b.slots.tolist(), k
        assert out_a.packets == out_b.packets, k
        assert out_a.extra == out_b.extra, k
        assert out_a.events == out_b.events, k
    for slot in slots_a:
        assert a.stats(slot) == b.stats(slot)
        la, lb = a.channel(slot).latch, b.channel(slot).latch
        if la is not None:
            assert (la.latched, la.accepted, la.dropped, la.last_at) == \
                (lb.latched, lb.accepted, lb.dropped, lb.last_at)
        ra, rb = a.rtp_source(slot), b.rtp_source(slot)
        assert [getattr(ra, n) for n in ra.__slots__] == [getattr(rb, n) for n in rb.__slots__]
    ta, tb = a.totals(), b.totals()
    assert tb["batch_fast"] > 0.6 * tb["received"]  # the array path does the bulk...
    assert tb["batch_slow"] > 0  # ...and the rare cases were exercised
    for key in ("batch_fast", "batch_slow"):
        ta.pop(key)
        tb.pop(key)
    assert ta == tb
    assert ta["late_packets"] > 0 and ta["foreign"] > 0 and ta["bad"] > 0
    assert ta["wrong_pt"] > 0


def test_truncated_and_closed_slots_are_counted() -> None:
    e = MediaEngine(4, seed=1)
    s = e.open(remote=PHONE[0])
    pkt = build_packet(0, 1, 160, 7, bytes(160))
    slots, data, lens, ip, port, fam, ip6, t = to_batch([(s, pkt, PHONE[0], 1.0)] * 2 +
                                                        [(3, pkt, PHONE[0], 1.0)])
    lens[0] = -1  # longer than the receive stride
    e.receive_batch(slots, data, lens, ip, port, fam, ip6, t)
    assert e.stats(s).bad == 1
    assert e.stats(s).packets_received == 0  # first packet of a source: probation (A.1)
    assert e.totals()["orphans"] == 1


def test_mirrored_sequence_accounting_equals_rtp_source_update() -> None:
    """The array form of A.1/A.8 (engine_rx._sequence) against RtpSource.update, for every
    in-sequence step size the array path takes (1..MAX_DROPOUT-1, across 16-bit wraps and
    the 64/128-packet words of the duplicate window)."""
    rng = random.Random(11)
    e = MediaEngine(4, seed=1)
    slots = [e.open(remote=PHONE[i]) for i in range(4)]
    refs = []
    for slot in slots:
        src = e.channel(slot).rtp
        seq, ts = rng.randrange(65536), rng.randrange(1 << 32)
        for k in range(3):  # probation (A.1), then a known transit time
            src.update((seq + k) & 0xFFFF, (ts + 160 * k) & 0xFFFFFFFF, 99, 5000 + 160 * k)
        e._load_rtp(slot)
        assert e._m_valid[slot]
        ref = RtpSource(8000)
        for name in ref.__slots__:
            setattr(ref, name, getattr(src, name))
        refs.append((ref, seq + 2, ts + 320))
    arr = 5000 + 480
    for step in range(300):
        s = np.asarray(slots, dtype=np.int64)
        deltas = [rng.choice([1, 1, 2, 3, 63, 64, 65, 127, 128, 129, 2999]) for _ in slots]
        seqs, tss = [], []
        for i, (ref, seq, ts) in enumerate(refs):
            seq, ts = seq + deltas[i], ts + 160 * deltas[i] + rng.randrange(-40, 40)
            refs[i] = (ref, seq, ts)
            ref.update(seq & 0xFFFF, ts & 0xFFFFFFFF, 99, arr)
            seqs.append(seq & 0xFFFF)
            tss.append(ts & 0xFFFFFFFF)
        e._sequence(s, np.asarray(seqs), np.asarray(deltas), np.asarray(tss),
                    np.full(len(slots), arr, dtype=np.int64))
        arr += 160 + rng.randrange(-30, 30)
        if step % 37 == 0:
            for slot, (ref, _, _) in zip(slots, refs, strict=True):
                src = e.rtp_source(slot)
                assert [getattr(src, n) for n in src.__slots__] == \
                    [getattr(ref, n) for n in ref.__slots__]
