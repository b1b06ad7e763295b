"""Digest authentication and registrar throughput on one core.

Measures, in one process (so on one core):

* ``challenge``: WWW-Authenticate pairs (SHA-256 + MD5) minted per second;
* ``verify SHA-256`` / ``verify MD5``: Authorization values verified per second (stateless
  nonce check, HA1 lookup, response hash, nonce-count tracker);
* ``register``: ``Registrar.handle_register`` per second on pre-parsed REGISTERs for
  distinct AORs (first registrations, then refreshes);
* ``parse+register``: the same including ``parse_message`` of the datagram.

Usage: ``python -m benchmarks.bench_auth [--n N] [--smoke] [--json FILE]``. Prints a table,
then the JSON (to FILE when given, else to stdout).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks.report import emit_json
from signaling.auth import DigestAuthenticator, DigestClient
from signaling.events import Address
from signaling.location import UserCredentials, compute_ha1
from signaling.message import Request
from signaling.parser import parse_message
from signaling.registrar import Registrar

REALM = "bench.example.com"
URI = f"sip:{REALM}"
T0 = 1_750_000_000.0


def _timed(n: int, fn: Callable[[int], object]) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return time.perf_counter() - start


def _users(count: int) -> dict[str, UserCredentials]:
    return {
        f"u{i}": UserCredentials(f"u{i}", REALM, {a: compute_ha1(f"u{i}", REALM, "pw", a)
                                                  for a in ("MD5", "SHA-256")})
        for i in range(count)
    }


def bench_auth(n: int) -> list[dict[str, Any]]:
    rng = random.Random(1)
    auth = DigestAuthenticator(REALM, b"s" * 32, random_bytes=rng.randbytes,
                               max_tracked_nonces=max(1000, 2 * n))
    users = _users(100)
    results = []
    secs = _timed(n, lambda i: auth.challenge(T0, f"10.0.{i % 250}.{i % 200}"))
    results.append({"name": "challenge", "ops": n, "seconds": secs})
    for pick, alg in ((0, "SHA-256"), (1, "MD5")):
        client = DigestClient(lambda: f"{rng.getrandbits(64):016x}")
        values = []
        for i in range(n):
            ip = f"10.1.{i % 250}.{i % 200}"
            ch = auth.challenge(T0, ip)[pick]
            values.append((client.authorize(ch, "REGISTER", URI, f"u{i % 100}", "pw"), ip))
        ok = 0

        def verify(i: int, values: list[tuple[str, str]] = values) -> None:
            nonlocal ok
            value, ip = values[i]
            ok += auth.verify("REGISTER", value, users.get, T0 + 1, ip, request_uri=URI).ok

        secs = _timed(n, verify)
        if ok != n:
            raise RuntimeError(f"only {ok} of {n} {alg} verifications succeeded")
        results.append({"name": f"verify {alg}", "ops": n, "seconds": secs})
    return results


def _register_bytes(i: int, cseq: int) -> bytes:
    return (
        f"REGISTER sip:{REALM} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.{i % 250}:5060;branch=z9hG4bK{i}x{cseq};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:u{i}@{REALM}>;tag=t{i}\r\n"
        f"To: <sip:u{i}@{REALM}>\r\n"
        f"Call-ID: c{i}@bench\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f"Contact: <sip:u{i}@10.0.{i // 250 % 250}.{i % 250}:5060;transport=udp>;expires=600\r\n"
        "User-Agent: bench\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def bench_registrar(n: int) -> list[dict[str, Any]]:
    reg = Registrar([REALM])
    results = []
    for label, cseq in (("register (new)", 1), ("register (refresh)", 2)):
        reqs: list[Request] = []
        for i in range(n):
            msg = parse_message(_register_bytes(i, cseq))
            assert isinstance(msg, Request)
            reqs.append(msg)
        sources = [Address("udp", f"203.0.113.{i % 250}", 1024 + i % 60000) for i in range(n)]
        bad = 0

        def one(i: int, reqs: list[Request] = reqs, sources: list[Address] = sources,
                cseq: int = cseq) -> None:
            nonlocal bad
            out = reg.handle_register(reqs[i], sources[i], f"u{i}", T0 + cseq)
            bad += out.response_status != 200

        secs = _timed(n, one)
        if bad:
            raise RuntimeError(f"{bad} REGISTERs were refused")
        results.append({"name": label, "ops": n, "seconds": secs})
    datagrams = [_register_bytes(i, 3) for i in range(n)]
    addr = Address("udp", "203.0.113.9", 5060)

    def parse_and_register(i: int) -> None:
        msg = parse_message(datagrams[i])
        assert isinstance(msg, Request)
        reg.handle_register(msg, addr, f"u{i}", T0 + 3)

    secs = _timed(n, parse_and_register)
    results.append({"name": "parse+register", "ops": n, "seconds": secs})
    dirty = reg.pop_dirty()
    results.append({"name": "pop_dirty", "ops": len(dirty), "seconds": 0.0})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=20_000, help="operations per case")
    parser.add_argument("--smoke", action="store_true", help="tiny run (CI)")
    parser.add_argument("--json", metavar="FILE", help="write JSON here instead of stdout")
    args = parser.parse_args(argv)
    n = 200 if args.smoke else args.n
    rows = bench_auth(n) + bench_registrar(n)
    for row in rows:
        row["ops_per_s"] = round(row["ops"] / row["seconds"], 1) if row["seconds"] else None
    print(f"{'case':<22} {'ops':>8} {'seconds':>9} {'ops/s':>12}")
    for row in rows:
        rate = f"{row['ops_per_s']:>12,.0f}" if row["ops_per_s"] else f"{'-':>12}"
        print(f"{row['name']:<22} {row['ops']:>8} {row['seconds']:>9.3f} {rate}")
    doc = {"benchmark": "auth", "smoke": args.smoke, "n": n,
           "python": sys.version.split()[0], "results": rows}
    emit_json(doc, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
