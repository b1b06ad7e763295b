"""Non-INVITE server transactions per second through one SipCore (RFC 3261 §17.2.2).

Each measured transaction is what a registrar does for one REGISTER datagram:
``SipCore.handle_datagram`` (parse, transaction match/create, Via stamping, validation,
the §8.2 checks, a ``RequestReceived`` event), then the application's ``make_response`` +
``SipCore.send_response`` (Figure 8: Trying -> Completed, Timer J armed), then
``datagrams_to_send``. The REGISTERs come in pairs like a digest login (the first answered
401, the second, with an Authorization header, 200), so "registrations/s" is half the
transaction rate. The fake clock advances by 1/rate per request and ``handle_timer`` runs
whenever ``next_deadline`` passes, so completed transactions linger for Timer J (64*T1 =
32 s over UDP) exactly as in production: the live-transaction count at the end is part of
the result. A second case resends every 10th request (retransmission absorbed by the
transaction, answered from its stored response).

Usage: ``python -m benchmarks.bench_transactions [--n N] [--rate R] [--smoke] [--json FILE]``.
Prints a table, then the JSON (to FILE when given, else to stdout).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from random import Random
from typing import Any

from signaling.core import CoreConfig, SipCore
from signaling.events import Address, RequestReceived
from signaling.message import make_response

AUTH = (
    'Digest username="u{n:05d}", realm="softswitch", nonce="6a8f0c2b9d1e4f", '
    'uri="sip:softswitch", response="0123456789abcdef0123456789abcdef", algorithm=MD5'
)


def make_registers(n: int, seed: int = 1) -> list[tuple[bytes, Address]]:
    """``n`` distinct REGISTER datagrams (pairs: without, then with credentials)."""
    rng = Random(seed)
    out: list[tuple[bytes, Address]] = []
    for i in range(n):
        user = i // 2
        host = f"203.0.113.{user % 250 + 1}"
        port = 1024 + user % 60000
        branch = f"z9hG4bK{rng.getrandbits(64):x}{i}"
        lines = [
            "REGISTER sip:softswitch SIP/2.0",
            f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:u{user:05d}@softswitch>;tag={user:x}a1",
            f"To: <sip:u{user:05d}@softswitch>",
            f"Call-ID: reg{user}@{host}",
            f"CSeq: {1 + i % 2} REGISTER",
            f"Contact: <sip:u{user:05d}@{host}:{port}>;expires=3600",
            "User-Agent: bench",
        ]
        if i % 2:
            lines.append("Authorization: " + AUTH.format(n=user))
        lines += ["Expires: 3600", "Content-Length: 0", "", ""]
        out.append(("\r\n".join(lines).encode(), Address("udp", host, port)))
    return out


def run_case(messages: list[tuple[bytes, Address]], rate: float,
             retransmit_every: int = 0) -> dict[str, Any]:
    """Drive one core; returns rates and the live-transaction count at the end."""
    core = SipCore(CoreConfig(host="192.0.2.1", port=5060))
    core.allow = {"REGISTER", "OPTIONS", "ACK", "CANCEL", "BYE"}
    step = 1.0 / rate
    now = 1000.0
    answered = absorbed = 0
    sent = 0
    gc.collect()
    t0 = time.perf_counter()
    for i, (data, source) in enumerate(messages):
        now += step
        deadline = core.next_deadline()
        if deadline is not None and deadline <= now:
            core.handle_timer(now)
        core.handle_datagram(data, source, now)
        for event in core.events():
            if isinstance(event, RequestReceived):
                req = event.request
                status = 200 if "Authorization" in req.headers else 401
                extra = ([("WWW-Authenticate", 'Digest realm="softswitch", nonce="6a8f"')]
                         if status == 401 else [("Contact", req.headers.get("Contact") or "")])
                resp = make_response(req, status, to_tag=core.ids.tag(), extra=extra)
                core.send_response(resp, event.transaction_id, now)
                answered += 1
        if retransmit_every and i % retransmit_every == 0:
            core.handle_datagram(data, source, now)
            absorbed += 1
        sent += len(core.datagrams_to_send())
    elapsed = time.perf_counter() - t0
    handled = len(messages) + absorbed
    return {
        "transactions": answered,
        "datagrams_in": handled,
        "datagrams_out": sent,
        "seconds": elapsed,
        "transactions_per_s": answered / elapsed,
        "datagrams_per_s": handled / elapsed,
        "registrations_per_s": answered / 2 / elapsed,
        "live_transactions": core.layer.live_count(),
        "heap_entries": core.layer.heap_size(),
        "simulated_s": len(messages) * step,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="REGISTER datagrams per case")
    ap.add_argument("--rate", type=float, default=4000.0,
                    help="simulated arrival rate per second (sets how many linger for Timer J)")
    ap.add_argument("--smoke", action="store_true", help="tiny run for CI")
    ap.add_argument("--json", help="write the JSON report here instead of stdout")
    args = ap.parse_args(argv)
    n = 400 if args.smoke else args.n
    messages = make_registers(n)
    cases = {
        "register 401/200": run_case(messages, args.rate),
        "with 10% retransmissions": run_case(messages, args.rate, retransmit_every=10),
    }
    print(f"{'case':<28}{'txn/s':>10}{'reg/s':>10}{'dgram/s':>10}{'live txns':>11}{'heap':>9}")
    for name, r in cases.items():
        print(f"{name:<28}{r['transactions_per_s']:>10.0f}{r['registrations_per_s']:>10.0f}"
              f"{r['datagrams_per_s']:>10.0f}{r['live_transactions']:>11}{r['heap_entries']:>9}")
    report = {
        "benchmark": "transactions",
        "n": n,
        "simulated_rate_per_s": args.rate,
        "python": sys.version.split()[0],
        "results": {name: round(r["transactions_per_s"], 1) for name, r in cases.items()},
        "cases": cases,
    }
    text = json.dumps(report, indent=2)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
