"""Per-packet cost of the RTP receive path on one core.

What is measured (packets per second, one Python thread, best of ``--repeat`` runs):

* ``parse_header_fast``: the 12-byte header parse every datagram pays.
* ``RtpSource.update``: RFC 3550 A.1 validation + A.8 jitter per packet.
* ``JitterBuffer put+pop (20 ms)``: store a 160-byte G.711 payload and pop one frame per
  packet (the fast path, one dict operation each way).
* ``JitterBuffer put+pop (30 ms)``: 240-byte packets re-framed to 160-sample ticks
  (the slow path); rate is in packets, each packet giving 1.5 frames.
* ``receive path``: parse + source update + payload slice + put, and the tick's pop.

The media engine's budget is 100,000 packets/s per core (DESIGN.md "Why the media engine
is fast"); the table shows the headroom of these pure pieces against that.

Usage: ``python -m benchmarks.bench_rtp [--packets N] [--repeat R] [--json FILE] [--smoke]``
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable

from benchmarks.report import emit_json
from switch.media.jitter import JitterBuffer
from switch.media.rtp import RtpSource, build_packet, parse_header_fast

BUDGET_PPS = 100_000


def _packets(n: int, samples: int) -> list[bytes]:
    payload = b"\xd5" * samples
    return [build_packet(8, i, i * samples, 0x1234, payload) for i in range(n)]


def bench_parse(pkts: list[bytes]) -> int:
    parse = parse_header_fast
    for p in pkts:
        parse(p)
    return len(pkts)


def bench_source(pkts: list[bytes]) -> int:
    src = RtpSource(8000)
    update = src.update
    for i in range(len(pkts)):
        update(i & 0xFFFF, i * 160, 0x1234, i * 160 + 400)
    return len(pkts)


def _jitter(samples: int) -> Callable[[list[bytes]], int]:
    ptime = samples / 8000

    def run(pkts: list[bytes]) -> int:
        jb = JitterBuffer()
        put = jb.put
        pop = jb.pop
        payloads = [p[12:] for p in pkts]
        tick = 0.0
        for i, payload in enumerate(payloads):
            now = i * ptime
            put(i & 0xFFFF, i * samples, payload, now)
            while tick <= now:
                pop(tick)
                tick += 0.02
        return len(pkts)

    return run


def bench_receive_path(pkts: list[bytes]) -> int:
    jb = JitterBuffer()
    src = RtpSource(8000)
    parse = parse_header_fast
    update = src.update
    put = jb.put
    pop = jb.pop
    now = 0.0
    for data in pkts:
        hdr = parse(data)
        if hdr is None:
            continue
        _pt, seq, ts, ssrc, marker, off, end = hdr
        update(seq, ts, ssrc, int(now * 8000))
        put(seq, ts, data[off:end], now, marker)
        pop(now)
        now += 0.02
    return len(pkts)


def measure(fn: Callable[[list[bytes]], int], pkts: list[bytes], repeat: int) -> float:
    """Best packets/s over ``repeat`` runs."""
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn(pkts)
        dt = time.perf_counter() - t0
        best = max(best, n / dt if dt > 0 else float("inf"))
    return best


def run(packets: int, repeat: int) -> dict[str, object]:
    p20 = _packets(packets, 160)
    p30 = _packets(packets, 240)
    cases: list[tuple[str, Callable[[list[bytes]], int], list[bytes]]] = [
        ("parse_header_fast", bench_parse, p20),
        ("RtpSource.update", bench_source, p20),
        ("JitterBuffer put+pop (20 ms)", _jitter(160), p20),
        ("JitterBuffer put+pop (30 ms reframe)", _jitter(240), p30),
        ("receive path (parse+update+put+pop)", bench_receive_path, p20),
    ]
    results = []
    for name, fn, pkts in cases:
        pps = measure(fn, pkts, repeat)
        results.append(
            {
                "case": name,
                "packets_per_s": round(pps),
                "us_per_packet": round(1e6 / pps, 3),
                "x_budget": round(pps / BUDGET_PPS, 2),
                "channels_at_50pps": int(pps // 50),
            }
        )
    return {
        "benchmark": "rtp",
        "packets": packets,
        "repeat": repeat,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "budget_pps": BUDGET_PPS,
        "results": results,
    }


def print_table(report: dict[str, object]) -> None:
    rows = report["results"]
    assert isinstance(rows, list)
    print(f"RTP receive path, {report['packets']} packets, best of {report['repeat']}")
    print(f"{'case':<40} {'packets/s':>12} {'us/pkt':>8} {'x budget':>9} {'ch@50pps':>9}")
    for r in rows:
        print(
            f"{r['case']:<40} {r['packets_per_s']:>12,} {r['us_per_packet']:>8.3f} "
            f"{r['x_budget']:>9.2f} {r['channels_at_50pps']:>9,}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", metavar="FILE", help="write JSON here (default: stdout)")
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    args = parser.parse_args(argv)
    if args.smoke:
        args.packets, args.repeat = 2_000, 1
    report = run(args.packets, args.repeat)
    print_table(report)
    emit_json(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
