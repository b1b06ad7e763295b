"""Jitter buffer: order, loss, duplicates, wraparound, drift, adaptation, 30 ms re-framing.

A small simulator plays a sender (packets every ptime, optional clock drift), a network
(delay, jitter, loss, duplication, reordering) and the engine's 20 ms tick.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.media.jitter import FrameKind, JitterBuffer
from switch.media.rtp import parse_header_fast

FRAME = 160


# byte x of the pattern is (7x + x // 256) mod 256: periodic in 65536, so one table
_PATTERN = bytes((x * 7 + (x >> 8)) & 0xFF for x in range(65536 + 65536))


def pattern(ts: int, n: int) -> bytes:
    """Payload whose bytes encode their own timestamp, so re-framing can be checked."""
    start = ts % 65536
    if n <= 65536:
        return _PATTERN[start : start + n]
    return b"".join(pattern(ts + k, min(65536, n - k)) for k in range(0, n, 65536))


@dataclass
class Net:
    base_delay_s: float = 0.010
    jitter_s: float = 0.0
    loss: float = 0.0
    dup: float = 0.0
    drop: set[int] = field(default_factory=set)
    extra_delay: dict[int, float] = field(default_factory=dict)


def simulate(
    n_packets: int,
    net: Net | None = None,
    ptime_ms: int = 20,
    drift: float = 0.0,
    seq0: int = 1000,
    ts0: int = 50_000,
    seed: int = 1,
    jb: JitterBuffer | None = None,
    markers: dict[int, bool] | None = None,
    ts_jumps: dict[int, int] | None = None,
    tick_phase: float = 0.0073,
) -> tuple[JitterBuffer, list[tuple[bytes | None, FrameKind]], list[float]]:
    """Run the scenario; returns the buffer, every pop result and depth after each pop."""
    net = net or Net()
    rng = random.Random(seed)
    jb = jb or JitterBuffer()
    spp = ptime_ms * 8
    events = []
    ts_offset = 0
    for i in range(n_packets):
        ts_offset += (ts_jumps or {}).get(i, 0)
        send = i * ptime_ms / 1000.0 / (1.0 + drift) + ts_offset / 8000.0
        if i in net.drop or rng.random() < net.loss:
            continue
        arrival = send + net.base_delay_s + rng.uniform(0, net.jitter_s)
        arrival += net.extra_delay.get(i, 0.0)
        ts = ts0 + i * spp + ts_offset
        item = (arrival, i, (seq0 + i) & 0xFFFF, ts & 0xFFFFFFFF, pattern(ts, spp))
        events.append(item)
        if rng.random() < net.dup:
            events.append((arrival + 0.003, *item[1:]))
    events.sort(key=lambda e: (e[0], e[1]))
    end = max(e[0] for e in events) + 0.5
    out: list[tuple[bytes | None, FrameKind]] = []
    depths: list[float] = []
    t = tick_phase
    j = 0
    while t < end:
        while j < len(events) and events[j][0] <= t:
            arrival, i, seq, ts, payload = events[j]
            jb.put(seq, ts, payload, arrival, marker=(markers or {}).get(i, i == 0))
            j += 1
        out.append(jb.pop(t))
        depths.append(jb.depth_ms)
        t += 0.02
    return jb, out, depths


def kinds(out: list[tuple[bytes | None, FrameKind]]) -> str:
    code = {FrameKind.NORMAL: "N", FrameKind.LOST: "L", FrameKind.EMPTY: "E"}
    return "".join(code[k] for _, k in out)


def played(out: list[tuple[bytes | None, FrameKind]]) -> bytes:
    return b"".join(f for f, k in out if k is FrameKind.NORMAL and f is not None)


def test_in_order_stream_plays_everything_in_order() -> None:
    jb, out, _ = simulate(100)
    k = kinds(out)
    assert k.strip("E").rstrip("L") == "N" * 100
    assert k.endswith("LLL" + "E" * (len(k) - len(k.rstrip("E"))))
    assert played(out) == pattern(50_000, 100 * FRAME)
    s = jb.stats()
    # the 3 LOST frames at the end: the buffer cannot know the stream stopped
    assert (s.lost, s.late, s.duplicates, s.reordered) == (3, 0, 0, 0)


def test_first_frame_waits_initial_delay() -> None:
    _, out, _ = simulate(20, Net(base_delay_s=0.0), tick_phase=0.001)
    first = kinds(out).index("N")
    # first packet at t=0; initial 40 ms delay -> played at the tick nearest 40 ms
    assert first * 0.02 + 0.001 == pytest.approx(0.041)


def test_reordering_is_repaired() -> None:
    net = Net(extra_delay={i: 0.025 for i in range(4, 100, 7)})  # overtaken by the next
    jb, out, _ = simulate(100, net)
    assert jb.stats().reordered >= 10
    assert played(out) == pattern(50_000, 100 * FRAME)
    assert jb.stats().lost == 3  # end of stream only


def test_duplicates_are_dropped_and_counted() -> None:
    jb, out, _ = simulate(200, Net(dup=1.0))
    assert jb.stats().duplicates == 200
    assert played(out) == pattern(50_000, 200 * FRAME)


def test_lost_packets_give_lost_frames_in_place() -> None:
    jb, out, _ = simulate(60, Net(drop={10, 11, 30}))
    k = kinds(out).strip("E").rstrip("L")
    assert k == "N" * 10 + "LL" + "N" * 18 + "L" + "N" * 29
    frames = [f for f, kind in out if kind is not FrameKind.EMPTY][:60]
    assert frames[12] == pattern(50_000 + 12 * FRAME, FRAME)
    assert jb.stats().lost == 3 + 3  # + the end of the stream


def test_late_packet_is_counted_and_not_played() -> None:
    jb, out, _ = simulate(60, Net(extra_delay={20: 0.3}))
    s = jb.stats()
    assert s.late == 1
    assert kinds(out).count("N") == 59


@pytest.mark.parametrize(
    ("seq0", "ts0"), [(65500, 50_000), (1, 2**32 - 3000), (65530, 2**32 - 800)]
)
def test_sequence_and_timestamp_wraparound(seq0: int, ts0: int) -> None:
    jb, out, _ = simulate(120, Net(jitter_s=0.015), seq0=seq0, ts0=ts0, seed=3)
    s = jb.stats()
    assert (s.lost, s.late, s.duplicates, s.resyncs) == (3, 0, 0, 0)
    expected = b"".join(pattern((ts0 + i * FRAME) & 0xFFFFFFFF, FRAME) for i in range(120))
    assert played(out) == expected


@pytest.mark.parametrize("drift", [0.01, -0.01, 0.003, -0.003])
def test_clock_drift_keeps_depth_bounded_for_10_minutes(drift: float) -> None:
    n = 30_000  # 10 minutes of 20 ms packets
    jb, out, depths = simulate(n, Net(jitter_s=0.01), drift=drift, seed=5)
    s = jb.stats()
    assert max(depths) <= 200 + 20
    tail = depths[len(depths) // 2 : -40]
    assert max(tail) <= 100  # stays near the target, not at the cap
    k = kinds(out)
    assert k.count("N") >= n * (1 - abs(drift)) - 50
    assert s.overflow_drops == 0
    if drift > 0:
        assert s.skipped == pytest.approx(n * drift / (1 + drift), rel=0.2)
    else:
        assert s.stretched + s.underruns == pytest.approx(n * -drift, rel=0.25)


def test_target_follows_measured_jitter() -> None:
    quiet, _out_q, _ = simulate(500, Net())
    assert quiet.stats().target_ms == 20.0
    jb, out, _ = simulate(1500, Net(jitter_s=0.06), seed=9)
    s = jb.stats()
    assert 60 <= s.target_ms <= 200
    assert kinds(out).count("L") <= 0.02 * 1500
    assert s.late <= 0.02 * 1500


def test_30ms_sender_reframed_to_20ms_ticks() -> None:
    jb, out, _ = simulate(200, ptime_ms=30, ts0=12_345)
    assert played(out) == pattern(12_345, 200 * 240)
    assert all(len(f) == FRAME for f, k in out if k is FrameKind.NORMAL and f is not None)
    assert jb.stats().partial == 0 and jb.stats().lost == 3


def test_30ms_sender_with_loss_keeps_alignment() -> None:
    jb, out, _ = simulate(100, Net(drop={40}), ptime_ms=30)
    # packet 40 covers samples 9600..9840: frame 60 [9600, 9760) lost, frame 61 partial
    frames = [(f, k) for f, k in out if k is not FrameKind.EMPTY]
    assert frames[60][1] is FrameKind.LOST
    assert frames[61][1] is FrameKind.NORMAL and jb.stats().partial == 1
    assert frames[61][0] is not None
    assert frames[61][0][80:] == pattern(50_000 + 61 * FRAME + 80, 80)
    assert frames[62][0] == pattern(50_000 + 62 * FRAME, FRAME)


def test_talkspurt_gap_restarts_at_target_delay() -> None:
    # 1 s of silence suppression after packet 50; marker on the new talkspurt
    _jb, out, _ = simulate(100, ts_jumps={50: 8000}, markers={0: True, 50: True})
    k = kinds(out).strip("E")
    assert k.count("N") == 100
    assert "LLLL" not in k  # the gap is EMPTY (comfort noise), not a loss run
    assert "E" * 30 in k


def test_talkspurt_gap_without_marker_is_tolerated() -> None:
    _jb, out, _ = simulate(100, ts_jumps={50: 8000}, markers={})
    k = kinds(out).strip("E")
    assert k.count("N") == 100 and "LLLL" not in k


def test_burst_overflow_is_bounded() -> None:
    net = Net(extra_delay={i: 1.0 - 0.02 * (i - 20) for i in range(20, 70)})  # 1 s stall
    jb, _out, depths = simulate(200, net)
    assert max(depths) <= 220
    assert jb.stats().overflow_drops + jb.stats().skipped > 0


def test_timestamp_jump_resyncs_new_stream() -> None:
    jb = JitterBuffer()
    for i in range(10):
        jb.put(i, i * FRAME, b"a" * FRAME, i * 0.02)
    for i in range(10):
        jb.put(10 + i, 3_000_000 + i * FRAME, b"b" * FRAME, 0.2 + i * 0.02)
    assert jb.stats().resyncs == 1
    outs = [jb.pop(0.3 + 0.02 * i) for i in range(10)]
    assert outs[0] == (b"b" * FRAME, FrameKind.NORMAL)


def test_reset_and_empty_before_start() -> None:
    jb = JitterBuffer()
    assert jb.pop(0.0) == (None, FrameKind.EMPTY)
    jb.put(1, 0, b"x" * FRAME, 0.0)
    jb.reset()
    assert jb.pop(1.0) == (None, FrameKind.EMPTY)
    assert jb.depth_ms == 0.0


def test_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError):
        JitterBuffer(min_delay_ms=100, max_delay_ms=50)
    with pytest.raises(ValueError):
        JitterBuffer(frame_samples=0)


def test_l16_two_bytes_per_sample() -> None:
    jb = JitterBuffer(sample_bytes=2)
    for i in range(6):  # 30 ms L16 packets: 480 bytes each
        jb.put(i, i * 240, bytes([i]) * 480, i * 0.03)
    frames = [jb.pop(0.05 + 0.02 * t)[0] for t in range(9)]
    assert frames[0] == bytes([0]) * 320
    assert frames[1] == bytes([0]) * 160 + bytes([1]) * 160


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            st.integers(-3, 5),  # sequence step
            st.integers(-800, 2400),  # timestamp step
            st.integers(0, 400),  # payload length
            st.booleans(),  # marker
            st.integers(0, 3),  # pops after this packet
        ),
        max_size=120,
    )
)
def test_any_packet_sequence_keeps_invariants(
    steps: list[tuple[int, int, int, bool, int]],
) -> None:
    jb = JitterBuffer()
    seq, ts, now = 65530, 2**32 - 1000, 0.0
    for dseq, dts, size, marker, pops in steps:
        seq = (seq + dseq) & 0xFFFF
        ts = (ts + dts) & 0xFFFFFFFF
        jb.put(seq, ts, bytes(size), now, marker)
        for _ in range(pops):
            frame, kind = jb.pop(now)
            now += 0.02
            assert (frame is not None) == (kind is FrameKind.NORMAL)
            assert frame is None or len(frame) == FRAME
        assert jb.depth_ms <= 200 + 20 + 400 / 8  # max delay + frame + one packet
    s = jb.stats()
    assert min(s.late, s.lost, s.duplicates, s.reordered, s.overflow_drops) >= 0


SIPP_G711A = Path("/usr/share/sip-tester/g711a.pcap")


def read_pcap_udp_payloads(path: Path) -> list[tuple[float, bytes]]:
    """(capture time, UDP payload) of a classic little-endian Ethernet/IPv4 pcap."""
    data = path.read_bytes()
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4
    out = []
    off = 24
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, off)
        frame = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        ihl = (frame[14] & 0x0F) * 4
        out.append((sec + usec / 1e6, frame[14 + ihl + 8 :]))
    return out


@pytest.mark.skipif(not SIPP_G711A.exists(), reason="SIPp (sip-tester) not installed")
def test_sipp_g711a_pcap_30ms_plays_back_continuous() -> None:
    """SIPp's shipped G.711 A-law capture: 30 ms packets, re-framed to 20 ms ticks."""
    packets = read_pcap_udp_payloads(SIPP_G711A)
    t0 = packets[0][0]
    jb = JitterBuffer()
    expected = b""
    played_frames: list[bytes] = []
    j = 0
    t = 0.005
    while j < len(packets) or jb.depth_ms > 0:
        while j < len(packets) and packets[j][0] - t0 <= t:
            hdr = parse_header_fast(packets[j][1])
            assert hdr is not None
            _, seq, ts, _, marker, off, end = hdr
            payload = packets[j][1][off:end]
            assert len(payload) == 240
            expected += payload
            jb.put(seq, ts, payload, packets[j][0] - t0, marker)
            j += 1
        frame, kind = jb.pop(t)
        if kind is FrameKind.NORMAL and frame is not None:
            played_frames.append(frame)
        t += 0.02
    assert b"".join(played_frames) == expected  # 236 x 30 ms = 354 frames of 20 ms
    assert len(played_frames) == 354
    s = jb.stats()
    assert (s.late, s.partial, s.overflow_drops) == (0, 0, 0)


def test_resync_keeps_the_jitter_estimate() -> None:
    jb, _, _ = simulate(1000, Net(jitter_s=0.06), seed=2)
    target = jb.stats().target_ms
    assert target > 40
    jb.put(7, 123_456_789, b"\x00" * FRAME, 100.0)  # far-away timestamp: new stream
    assert jb.stats().resyncs == 1 and jb.stats().target_ms == target
