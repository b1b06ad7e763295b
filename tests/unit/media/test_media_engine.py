"""MediaEngine tick core: routing, playback, tones, digits, recording, bad input, jitter,
and the absolute-deadline ticker (fake loop clock)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp import g711
from dsp.tones import PROFILES, dtmf_tone
from switch.media.engine import PACKET_BYTES, MediaEngine
from switch.media.player import FinishReason
from switch.media.rfc4733 import DtmfReceiver, DtmfSender
from switch.media.rtp import build_packet, parse_header_fast
from switch.media.ticker import Ticker

A_ADDR = ("127.0.0.1", 40000)
B_ADDR = ("127.0.0.1", 40002)
C_ADDR = ("127.0.0.1", 40004)
T0 = 1000.0


def ulaw(pcm: np.ndarray) -> bytes:
    return g711.ulaw_encode(np.asarray(pcm, dtype=np.int16)).tobytes()


def const_frame(level: int) -> np.ndarray:
    return np.full(160, level, dtype=np.int16)


class Harness:
    """Feeds frames to slots and collects what the engine sends, tick by tick."""

    def __init__(self, capacity: int = 8, **kw: object) -> None:
        self.engine = MediaEngine(capacity, seed=1, **kw)  # type: ignore[arg-type]
        self.now = T0
        self.k = 0
        self.sent: dict[int, list[bytes]] = {}
        self.extra: dict[int, list[bytes]] = {}
        self.events: list[tuple[str, int, object]] = []

    def open(self, addr: tuple[str, int], **kw: object) -> int:
        return self.engine.open(remote=addr, **kw)  # type: ignore[arg-type]

    def feed(self, slot: int, addr: tuple[str, int], pcm: np.ndarray | None, *, seq: int,
             pt: int = 0, ssrc: int = 0x1234, codec: str = "PCMU") -> None:
        if pcm is None:
            return
        enc = g711.ulaw_encode if codec == "PCMU" else g711.alaw_encode
        payload = enc(np.asarray(pcm, dtype=np.int16)).tobytes()
        self.engine.receive_rtp(slot, build_packet(pt, seq, 8000 + 160 * seq, ssrc, payload),
                                addr, self.now)

    def tick(self) -> None:
        out = self.engine.tick(self.now)
        for i, slot in enumerate(out.slots.tolist()):
            self.sent.setdefault(slot, []).append(
                out.packets[i * PACKET_BYTES:(i + 1) * PACKET_BYTES])
        for slot, data in out.extra:
            self.extra.setdefault(slot, []).append(data)
        self.events.extend(out.events)
        self.now += 0.020
        self.k += 1

    def pcm_sent(self, slot: int, codec: str = "PCMU") -> np.ndarray:
        dec = g711.ulaw_decode if codec == "PCMU" else g711.alaw_decode
        return np.stack([dec(np.frombuffer(p[12:], dtype=np.uint8))
                         for p in self.sent[slot]])


def test_bridge_in_pairs_relays_exact_payload() -> None:
    h = Harness()
    a, b = h.open(A_ADDR), h.open(B_ADDR)
    c, d = h.open(C_ADDR), h.open(("127.0.0.1", 40006))
    h.engine.mix.bridge(a, b)
    h.engine.mix.bridge(c, d)
    rng = np.random.default_rng(0)
    sent_a = [(rng.standard_normal(160) * 3000).astype(np.int16) for _ in range(10)]
    for k in range(10):
        h.feed(a, A_ADDR, sent_a[k], seq=k)
        h.feed(c, C_ADDR, const_frame(1000), seq=k)
        h.tick()
    # jitter_min 20 ms: a frame is played one tick after it arrived
    payload_b = [p[12:] for p in h.sent[b]]
    assert payload_b[1:10] == [ulaw(sent_a[k]) for k in range(9)]
    assert h.pcm_sent(d)[5].tolist() == g711.ulaw_decode(
        g711.ulaw_encode(const_frame(1000))).tolist()
    assert not np.any(h.pcm_sent(a))  # b sends nothing: a hears silence
    hdr = [parse_header_fast(p) for p in h.sent[b]]
    assert [x[1] for x in hdr] == [(hdr[0][1] + i) & 0xFFFF for i in range(10)]
    assert [x[2] for x in hdr] == [(hdr[0][2] + 160 * i) & 0xFFFFFFFF for i in range(10)]
    assert hdr[0][4] is True and not any(x[4] for x in hdr[1:])


def test_pcmu_to_pcma_bridge_differs_only_in_encode_table() -> None:
    h = Harness()
    a = h.open(A_ADDR)
    b = h.open(B_ADDR, codec="PCMA")
    h.engine.mix.bridge(a, b)
    frame = (np.sin(np.arange(160) / 5) * 8000).astype(np.int16)
    for k in range(4):
        h.feed(a, A_ADDR, frame, seq=k)
        h.tick()
    out = h.sent[b][2]
    assert out[1] & 0x7F == 8
    assert out[12:] == g711.ulaw_to_alaw(g711.ulaw_encode(frame)).tobytes()


def test_conference_minus_one() -> None:
    h = Harness()
    slots = [h.open(("127.0.0.1", 41000 + 2 * i)) for i in range(3)]
    for s in slots:
        h.engine.mix.join("room", s)
    levels = [1000, 2000, 4000]
    for k in range(4):
        for s, lv in zip(slots, levels, strict=True):
            h.feed(s, ("127.0.0.1", 41000 + 2 * s), const_frame(lv), seq=k)
        h.tick()
    heard = [int(np.median(h.pcm_sent(s)[3])) for s in slots]
    rt = [int(g711.ulaw_decode(g711.ulaw_encode(const_frame(lv)))[0]) for lv in levels]
    expected = [rt[1] + rt[2], rt[0] + rt[2], rt[0] + rt[1]]
    for got, want in zip(heard, expected, strict=True):
        assert abs(got - want) <= want * 0.04  # G.711 re-encoding step
    h.engine.mix.leave(slots[0])
    assert h.engine.mix.members("room") == slots[1:]


@pytest.mark.parametrize(("mode", "caller_hears_sup", "agent_hears_sup"),
                         [("listen", False, False), ("whisper", False, True),
                          ("barge", True, True)])
def test_supervisor_modes(mode: str, caller_hears_sup: bool, agent_hears_sup: bool) -> None:
    h = Harness()
    caller, agent = h.open(A_ADDR), h.open(B_ADDR)
    sup = h.open(C_ADDR)
    h.engine.mix.bridge(caller, agent)
    h.engine.mix.supervise(caller, agent, sup, mode)
    levels = {caller: 1000, agent: 2000, sup: 8000}
    addrs = {caller: A_ADDR, agent: B_ADDR, sup: C_ADDR}
    for k in range(4):
        for s in (caller, agent, sup):
            h.feed(s, addrs[s], const_frame(levels[s]), seq=k)
        h.tick()
    heard = {s: int(np.median(h.pcm_sent(s)[3])) for s in (caller, agent, sup)}
    assert (heard[caller] > 6000) is caller_hears_sup
    assert (heard[agent] > 6000) is agent_hears_sup
    assert 2500 < heard[sup] < 3300  # supervisor always hears caller + agent
    h.engine.mix.unsupervise(sup)
    h.tick()
    assert h.engine.mix.peer(caller) == agent


def test_playback_then_completion_event() -> None:
    h = Harness()
    a = h.open(A_ADDR)
    prompt = (np.arange(480) * 10).astype(np.int16)
    h.engine.play(a, [prompt])
    for _ in range(5):
        h.tick()
    assert [p[12:] for p in h.sent[a][:3]] == [ulaw(prompt[i * 160:(i + 1) * 160])
                                               for i in range(3)]
    done = [e for e in h.events if e[0] == "play_done"]
    assert done == [("play_done", a, FinishReason.COMPLETED)]


def test_tone_cadence_busy_cn() -> None:
    h = Harness()
    a = h.open(A_ADDR)
    busy = PROFILES["cn"].busy  # 350 ms on, 350 ms off
    h.engine.tone(a, busy, duration_ms=1400)
    for _ in range(75):
        h.tick()
    energy = (h.pcm_sent(a).astype(np.int64) ** 2).mean(axis=1)
    on = energy > 1000
    assert on[:17].all() and not on[18:35].any() and on[35:52].all()
    assert not on[70:].any()  # finished after 1400 ms
    assert ("tone_done", a, FinishReason.COMPLETED) in h.events


def test_inband_dtmf_one_digit() -> None:
    h = Harness()
    a = h.open(A_ADDR)
    pcm = np.concatenate([dtmf_tone("9", 120), np.zeros(1600, np.int16)])
    for k in range(len(pcm) // 160):
        h.feed(a, A_ADDR, pcm[k * 160:(k + 1) * 160], seq=k)
        h.tick()
    digits = [e[2] for e in h.events if e[0] == "digit"]
    assert [(d.digit, d.source) for d in digits] == [("9", "inband")]


def rfc4733_packets(digit: str, seq0: int, ts: int) -> list[bytes]:
    sched = DtmfSender().packets(digit, 100, start_ts=ts)
    return [build_packet(101, seq0 + i, t, 0x1234, payload, marker)
            for i, (marker, t, payload, _) in enumerate(sched)]


def test_rfc4733_and_inband_same_press_give_one_digit_and_barge_in() -> None:
    h = Harness()
    a = h.open(A_ADDR)
    h.engine.play(a, [np.ones(16000, np.int16)], barge_in=True)
    tone = np.concatenate([dtmf_tone("4", 120), np.zeros(800, np.int16)])
    events = rfc4733_packets("4", 100, 8000 + 160 * 100)
    for k in range(len(tone) // 160):
        h.feed(a, A_ADDR, tone[k * 160:(k + 1) * 160], seq=k)
        if k < len(events):
            h.engine.receive_rtp(a, events[k], A_ADDR, h.now)
        h.tick()
    digits = [e[2] for e in h.events if e[0] == "digit"]
    assert [d.digit for d in digits] == ["4"]
    assert ("play_done", a, FinishReason.BARGED_IN) in h.events


def test_send_rfc4733_shares_sequence_and_suppresses_audio() -> None:
    h = Harness()
    a = h.open(A_ADDR)
    h.tick()
    h.engine.send_rfc4733(a, "7", 100)
    for _ in range(10):
        h.tick()
    events = h.extra[a]
    assert len(events) == 5 + 3 - 1  # 4 updates (20..80 ms), end x3 -> 7 packets
    hdrs = [parse_header_fast(p) for p in events]
    assert all(x[0] == 101 for x in hdrs) and len({x[2] for x in hdrs}) == 1
    assert hdrs[0][4] and not any(x[4] for x in hdrs[1:])
    rx = DtmfReceiver()
    got = [d for p, x in zip(events, hdrs, strict=True)
           for d in rx.feed(x[2], x[4], p[x[5]:x[6]], 0.0)]
    assert [d.digit for d in got] == ["7"]
    seqs = sorted([parse_header_fast(p)[1] for p in h.sent[a] + events])
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one sequence space
    assert ("dtmf_sent", a, None) in h.events


class FakeRecorder:
    def __init__(self) -> None:
        self.legs: list[tuple[np.ndarray, np.ndarray]] = []

    def write_legs(self, a: np.ndarray, b: np.ndarray) -> None:
        self.legs.append((a, b))


def test_recording_gets_rx_and_tx_frames() -> None:
    h = Harness()
    a, b = h.open(A_ADDR), h.open(B_ADDR)
    h.engine.mix.bridge(a, b)
    rec = FakeRecorder()
    h.engine.record(a, rec)
    for k in range(4):
        h.feed(a, A_ADDR, const_frame(1000), seq=k)
        h.feed(b, B_ADDR, const_frame(-3000), seq=k)
        h.tick()
    rx, tx = rec.legs[2]
    assert 950 < rx.mean() < 1050 and -3100 < tx.mean() < -2900
    h.engine.record(a, None)
    h.tick()
    assert len(rec.legs) == 4


def test_bad_input_dropped_and_counted() -> None:
    h = Harness()
    a = h.open(A_ADDR)
    good = build_packet(0, 1, 8160, 0x1234, bytes(160))
    e = h.engine
    e.receive_rtp(a, b"", A_ADDR, h.now)
    e.receive_rtp(a, good[:11], A_ADDR, h.now)  # truncated header
    e.receive_rtp(a, b"\x40" + good[1:], A_ADDR, h.now)  # version 1
    e.receive_rtp(a, b"\x8f" + good[1:20], A_ADDR, h.now)  # 15 CSRCs, too short
    e.receive_rtp(a, good[:12], A_ADDR, h.now)  # header only, no payload
    e.receive_rtp(a, build_packet(18, 2, 8320, 0x1234, bytes(20)), A_ADDR, h.now)  # G.729
    e.receive_rtp(a, good, A_ADDR, h.now)  # latches
    for i in range(50):  # flood from elsewhere after latching
        e.receive_rtp(a, build_packet(0, 100 + i, 0, 99, bytes(160)), ("10.0.0.9", 5000), h.now)
    e.receive_rtp(99 % e.capacity, good, A_ADDR, h.now)  # closed slot
    h.tick()
    st = e.stats(a)
    assert st.bad == 5 and st.wrong_pt == 1 and st.foreign == 50
    assert st.octets_received == 160  # only the good packet was accepted
    assert e.orphans == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 1))
def test_fuzz_receive_never_raises(data: bytes, which: int) -> None:
    engine = _FUZZ_ENGINE
    engine.receive_rtp(which, data, A_ADDR, 5.0)
    engine.receive_rtcp(which, data, A_ADDR, 5.0)
    engine.tick(5.0)


_FUZZ_ENGINE = MediaEngine(2, seed=3)
_FUZZ_ENGINE.open(remote=A_ADDR)
_FUZZ_ENGINE.open(remote=A_ADDR, latch=False)


def test_reordered_packets_play_in_order_and_late_grows_delay() -> None:
    h = Harness(jitter_min_ms=40)
    a, b = h.open(A_ADDR), h.open(B_ADDR)
    h.engine.mix.bridge(a, b)
    frames = [const_frame(500 * (k + 1)) for k in range(12)]
    order = [0, 2, 1, 3, 5, 4, 6, 7, 8, 9, 10, 11]
    for seq in order:
        h.feed(a, A_ADDR, frames[seq], seq=seq)
        h.tick()
    got = [p[12:] for p in h.sent[b]]
    expected = [ulaw(frames[k]) for k in range(10)]
    assert got[2:12] == expected  # 40 ms playout delay, reordering absorbed
    st = h.engine.stats(a)
    assert st.late == 0 and st.concealed_frames == 0
    # now a packet that arrives after its slot was played
    h.feed(a, A_ADDR, const_frame(1), seq=5)
    assert h.engine.stats(a).late == 1
    assert h.engine.stats(a).playout_delay_ms == 60.0


def test_thirty_ms_packets_are_reframed() -> None:
    h = Harness()
    a, b = h.open(A_ADDR), h.open(B_ADDR)
    h.engine.mix.bridge(a, b)
    pcm = (np.arange(240 * 10) % 2000).astype(np.int16)
    tick_time = T0
    for k in range(10):
        arrival = T0 + 0.030 * k
        while tick_time + 0.020 <= arrival:
            h.tick()
            tick_time += 0.020
        h.now = arrival
        payload = ulaw(pcm[240 * k:240 * (k + 1)])
        h.engine.receive_rtp(a, build_packet(0, k, 240 * k, 7, payload), A_ADDR, arrival)
        h.now = tick_time
    for _ in range(6):
        h.tick()
    data = b"".join(p[12:] for p in h.sent[b])
    assert ulaw(pcm) in data  # 10 x 30 ms in, 15 x 20 ms out, nothing concealed between
    assert h.engine.stats(a).played_frames == 15


def test_ssrc_change_reanchors() -> None:
    h = Harness()
    a, b = h.open(A_ADDR), h.open(B_ADDR)
    h.engine.mix.bridge(a, b)
    for k in range(5):
        h.feed(a, A_ADDR, const_frame(1000), seq=k)
        h.tick()
    for k in range(5):  # new sender, unrelated timestamps
        pkt = build_packet(0, 7000 + k, 123456789 + 160 * k, 0x9999, ulaw(const_frame(3000)))
        h.engine.receive_rtp(a, pkt, A_ADDR, h.now)
        h.tick()
    assert h.sent[b][-2][12:] == ulaw(const_frame(3000))


# ---------------------------------------------------------------------- ticker


class FakeLoop:
    """Just enough of an event loop for Ticker: a clock and call_at/call_soon."""

    def __init__(self) -> None:
        self.t = 100.0
        self.timers: list[tuple[float, object]] = []

    def time(self) -> float:
        return self.t

    def call_at(self, when: float, cb: object) -> _Handle:
        h = _Handle(when, cb)
        self.timers.append((when, h))
        return h

    def call_soon(self, cb: object) -> _Handle:
        return self.call_at(self.t, cb)

    def run_next(self, work_s: float = 0.0, delay_s: float = 0.0) -> None:
        self.timers.sort(key=lambda x: x[0])
        when, handle = self.timers.pop(0)
        self.t = max(self.t, when) + delay_s
        if not handle.cancelled:
            handle.cb()  # type: ignore[operator]
        self.t += work_s


class _Handle:
    def __init__(self, when: float, cb: object) -> None:
        self.when, self.cb, self.cancelled = when, cb, False

    def cancel(self) -> None:
        self.cancelled = True


def test_ticker_absolute_deadlines_do_not_drift() -> None:
    loop = FakeLoop()
    seen: list[tuple[float, float]] = []
    ticker = Ticker(loop, lambda d, n: seen.append((d, n)))  # type: ignore[arg-type]
    ticker.start(t0=100.0)
    for i in range(5000):
        loop.run_next(work_s=0.007, delay_s=0.0015 if i % 7 == 0 else 0.0003)
    assert len(seen) == 5000
    assert seen[-1][0] == pytest.approx(100.0 + 4999 * 0.020, abs=1e-9)
    assert ticker.late_ticks == 0 and ticker.skipped_ticks == 0
    assert max(n - d for d, n in seen) < 0.002


def test_ticker_counts_late_catches_up_and_skips() -> None:
    loop = FakeLoop()
    seen: list[float] = []
    ticker = Ticker(loop, lambda d, n: seen.append(d), max_catchup_s=0.1)  # type: ignore[arg-type]
    ticker.start(t0=100.0)
    loop.run_next()
    loop.run_next(delay_s=0.050)  # 50 ms late: counted, then the missed ticks run at once
    for _ in range(4):
        loop.run_next()
    assert ticker.late_ticks >= 1 and ticker.skipped_ticks == 0
    assert seen[:6] == pytest.approx([100.0 + 0.02 * i for i in range(6)])
    loop.run_next(delay_s=0.5)  # stalled: skip ahead instead of bursting
    assert ticker.skipped_ticks > 0
    assert seen[-1] == pytest.approx(100.0 + 0.02 * int((loop.t - 100.0) // 0.02), abs=0.021)
    ticker.stop()
    assert not ticker.running


def test_rtcp_is_queued_and_foreign_rtcp_counted() -> None:
    h = Harness()
    a = h.open(A_ADDR)
    h.engine.receive_rtcp(a, struct.pack("!BBH", 0x80, 201, 1) + bytes(4), A_ADDR, h.now)
    h.engine.receive_rtcp(a, b"x", ("10.9.9.9", 1), h.now)
    h.tick()
    assert [e[0] for e in h.events] == ["rtcp"]
    assert h.engine.stats(a).foreign == 1


def test_playout_delay_grows_once_per_burst_and_shrinks_back() -> None:
    h = Harness()
    a = h.open(A_ADDR)
    for k in range(5):
        h.feed(a, A_ADDR, const_frame(100), seq=k)
        h.tick()
    for _ in range(4):  # the sender stalls for 80 ms ...
        h.tick()
    for k in range(5, 9):  # ... then its 4 late packets arrive at once
        h.feed(a, A_ADDR, const_frame(100), seq=k)
    st = h.engine.stats(a)
    assert st.late >= 2 and st.playout_delay_ms == 40.0  # one step, not one per packet
    for k in range(9, 9 + 300):  # 6 s of packets on time
        h.feed(a, A_ADDR, const_frame(100), seq=k + 4)
        h.tick()
    assert h.engine.stats(a).playout_delay_ms == 20.0
    assert h.engine.totals()["jb_dropped"] == 1


def test_closed_slot_events_do_not_leak_to_the_next_channel() -> None:
    h = Harness()
    a = h.open(A_ADDR)
    h.engine.play(a, [np.ones(8000, np.int16)])
    h.tick()
    h.engine.close(a)
    b = h.open(B_ADDR)
    assert b == a  # the slot is reused
    h.engine.play(b, [np.ones(320, np.int16)])
    for _ in range(4):
        h.tick()
    assert [e for e in h.events if e[0] == "play_done"] == [
        ("play_done", b, FinishReason.COMPLETED)]


def test_engine_full_and_unknown_codec() -> None:
    from switch.media.errors import MediaError

    engine = MediaEngine(1, seed=0)
    with pytest.raises(ValueError):
        engine.open(codec="G729")
    engine.open()
    with pytest.raises(MediaError):
        engine.open()
