"""SIP parser throughput on one core: INVITEs per second.

Three measurements over a set of distinct INVITEs shaped like RFC 3261 §24.2 F1 (each
message has its own Call-ID, From tag and branch, as real traffic does; users and hosts
repeat, as they do on a switch):

* ``parse``            -- :func:`signaling.parser.parse_message` only (split + frame);
* ``parse+serialize``  -- parse, then ``bytes(msg)`` (a proxy's relay path);
* ``parse+validate+typed`` -- parse, :func:`validate_request`, then the typed views the
  transaction core reads (top Via branch, CSeq, From/To tags).

Run ``python -m benchmarks.bench_parser [--seconds S] [--json FILE] [--smoke]``; prints a
table, then JSON (to stdout unless ``--json FILE``). The goal is >= 50,000 parse+serialize
per second on one core.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable

from benchmarks.report import emit_json
from signaling.parser import parse_message
from signaling.validate import validate_request

GOAL_PARSE_SERIALIZE = 50_000

_SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 pc33.atlanta.com\r\ns=-\r\n"
    b"c=IN IP4 pc33.atlanta.com\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)


def make_invites(count: int) -> list[bytes]:
    """Distinct INVITEs in the shape of RFC 3261 §24.2 F1."""
    out = []
    for i in range(count):
        user = f"user{i % 50}"
        head = (
            f"INVITE sip:bob{i % 20}@biloxi.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds{i:08x}\r\n"
            "Max-Forwards: 70\r\n"
            f"To: Bob <sip:bob{i % 20}@biloxi.com>\r\n"
            f"From: Alice <sip:{user}@atlanta.com>;tag={1928301774 + i}\r\n"
            f"Call-ID: a84b4c76e66710{i:06d}@pc33.atlanta.com\r\n"
            f"CSeq: {314159 + i} INVITE\r\n"
            f"Contact: <sip:{user}@pc33.atlanta.com>\r\n"
            "Content-Type: application/sdp\r\n"
            f"Content-Length: {len(_SDP)}\r\n\r\n"
        )
        out.append(head.encode() + _SDP)
    return out


def _parse(data: bytes) -> None:
    parse_message(data)


def _parse_serialize(data: bytes) -> None:
    bytes(parse_message(data))


def _parse_validate_typed(data: bytes) -> None:
    msg = parse_message(data)
    validate_request(msg)  # type: ignore[arg-type]
    _ = (msg.top_via.branch, msg.cseq.seq, msg.from_tag, msg.to_tag, msg.call_id)


CASES: dict[str, Callable[[bytes], None]] = {
    "parse": _parse,
    "parse+serialize": _parse_serialize,
    "parse+validate+typed": _parse_validate_typed,
}


def measure(fn: Callable[[bytes], None], messages: list[bytes], seconds: float,
            repeats: int) -> float:
    """Best-of-``repeats`` messages per CPU second, each run lasting about ``seconds``.

    CPU time of this process (``time.process_time``), not wall time: on a shared machine
    other processes' load would otherwise be counted against the parser.
    """
    best = 0.0
    n = len(messages)
    for _ in range(repeats):
        done = 0
        start = time.process_time()
        deadline = start + seconds
        while True:
            for data in messages:
                fn(data)
            done += n
            now = time.process_time()
            if now >= deadline:
                break
        best = max(best, done / max(now - start, 1e-9))
    return best


def run(seconds: float, repeats: int, count: int) -> dict[str, object]:
    messages = make_invites(count)
    for fn in CASES.values():  # warm up, and prove every case works on every message
        for data in messages:
            fn(data)
    results = {name: measure(fn, messages, seconds, repeats) for name, fn in CASES.items()}
    return {
        "benchmark": "parser",
        "unit": "INVITEs per CPU second, one core",
        "message_bytes": len(messages[0]),
        "distinct_messages": count,
        "python": platform.python_version(),
        "results": {k: round(v) for k, v in results.items()},
        "goal_parse_serialize": GOAL_PARSE_SERIALIZE,
        "goal_met": results["parse+serialize"] >= GOAL_PARSE_SERIALIZE,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="duration of one run")
    ap.add_argument("--repeats", type=int, default=3, help="runs per case (best is kept)")
    ap.add_argument("--messages", type=int, default=1000, help="distinct INVITEs")
    ap.add_argument("--json", metavar="FILE", help="write JSON here instead of stdout")
    ap.add_argument("--smoke", action="store_true", help="tiny run for CI")
    args = ap.parse_args(argv)
    if args.smoke:
        args.seconds, args.repeats, args.messages = 0.05, 1, 20
    report = run(args.seconds, args.repeats, args.messages)
    results: dict[str, int] = report["results"]  # type: ignore[assignment]
    print(f"{'case':<24}{'INVITEs/s':>12}")
    for name, rate in results.items():
        print(f"{name:<24}{rate:>12,}")
    print(f"goal parse+serialize >= {GOAL_PARSE_SERIALIZE:,}/s: "
          f"{'met' if report['goal_met'] else 'NOT met'}")
    emit_json(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
