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
transaction, answered from its stored response). A third runs whole calls (INVITE, 180,
200, ACK, BYE, 200) from one core to another: what a B2BUA pays per call for its SIP.

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
from signaling.events import Address, RequestReceived, ResponseReceived
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


def _deliver(src: SipCore, src_addr: Address, dst: SipCore, now: float) -> int:
    """Move every pending datagram of ``src`` into ``dst``; returns how many moved."""
    out = src.datagrams_to_send()
    for data, _ in out:
        dst.handle_datagram(data, src_addr, now)
    return len(out)


def run_calls(n: int, rate: float) -> dict[str, Any]:
    """``n`` whole calls (INVITE, 180, 200, ACK, BYE, 200) from one core to another.

    Both ends run in this process, so the figure is what a B2BUA pays per call for its
    two legs' SIP (one UAS leg, one UAC leg), without SDP or media.
    """
    uac_addr = Address("udp", "192.0.2.1", 5060)
    uas_addr = Address("udp", "192.0.2.2", 5060)
    uac = SipCore(CoreConfig(host=uac_addr.host, port=uac_addr.port), rng=Random(1))
    uas = SipCore(CoreConfig(host=uas_addr.host, port=uas_addr.port), rng=Random(2))
    sdp = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    step = 1.0 / rate
    now = 1000.0
    moved = completed = 0
    gc.collect()
    t0 = time.perf_counter()
    for i in range(n):
        now += step
        for core in (uac, uas):
            deadline = core.next_deadline()
            if deadline is not None and deadline <= now:
                core.handle_timer(now)
        invite = uac.create_request(
            "INVITE", f"sip:{i}@192.0.2.2", from_="<sip:caller@192.0.2.1>",
            to=f"<sip:{i}@192.0.2.2>", body=sdp, content_type="application/sdp")
        uac.send_request(invite, uas_addr, now)
        moved += _deliver(uac, uac_addr, uas, now)
        for ev in uas.events():
            if isinstance(ev, RequestReceived):
                tag = uas.ids.tag()
                uas.send_response(make_response(ev.request, 180, to_tag=tag),
                                  ev.transaction_id, now)
                uas.send_response(make_response(ev.request, 200, to_tag=tag, body=sdp, extra=[
                    ("Content-Type", "application/sdp")]), ev.transaction_id, now)
        moved += _deliver(uas, uas_addr, uac, now)
        dialogs = [e.dialog_id for e in uac.events()
                   if isinstance(e, ResponseReceived) and e.response.status == 200]
        moved += _deliver(uac, uac_addr, uas, now)  # the ACK
        uas.events()
        for did in dialogs:
            if did is not None:
                uac.send_in_dialog(did, "BYE", now)
        moved += _deliver(uac, uac_addr, uas, now)
        for ev in uas.events():
            if isinstance(ev, RequestReceived):
                uas.send_response(make_response(ev.request, 200), ev.transaction_id, now)
        moved += _deliver(uas, uas_addr, uac, now)
        completed += sum(1 for e in uac.events()
                         if isinstance(e, ResponseReceived) and e.response.cseq.method == "BYE")
    elapsed = time.perf_counter() - t0
    return {
        "calls": completed,
        "datagrams": moved,
        "seconds": elapsed,
        "calls_per_s": completed / elapsed,
        "live_transactions": uac.layer.live_count() + uas.layer.live_count(),
        "dialogs_left": len(uac.dialogs) + len(uas.dialogs),
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
    calls = run_calls(max(n // 10, 20), 500.0)
    print(f"{'case':<28}{'txn/s':>10}{'reg/s':>10}{'dgram/s':>10}{'live txns':>11}{'heap':>9}")
    for name, r in cases.items():
        print(f"{name:<28}{r['transactions_per_s']:>10.0f}{r['registrations_per_s']:>10.0f}"
              f"{r['datagrams_per_s']:>10.0f}{r['live_transactions']:>11}{r['heap_entries']:>9}")
    print(f"{'calls INVITE..BYE (2 cores)':<28}{calls['calls_per_s']:>10.0f} calls/s, "
          f"{calls['datagrams']} datagrams, {calls['live_transactions']} live txns, "
          f"{calls['dialogs_left']} dialogs left")
    report = {
        "benchmark": "transactions",
        "n": n,
        "simulated_rate_per_s": args.rate,
        "python": sys.version.split()[0],
        "results": {name: round(r["transactions_per_s"], 1) for name, r in cases.items()},
        "calls_per_s": round(calls["calls_per_s"], 1),
        "cases": cases,
        "calls": calls,
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
