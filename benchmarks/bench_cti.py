"""CTI event fan-out: 200 clients on loopback receive every event the FakeBackend emits.

What is measured: the FakeBackend emits ``call.queued`` events (a typical ~150-byte event)
into :meth:`CtiServer.publish`; 200 :class:`~cti.client.CtiClient` connections, each
logged in as a supervisor subscribed to ``call.queued``, receive them over TCP on
127.0.0.1. Each event carries ``t0`` (``perf_counter`` at the moment of the change); each
client records ``perf_counter() - t0`` when the event comes out of its ``events`` queue.
Server and clients share one process and one event loop (one core), so the figures include
the clients' JSON parsing: they are a floor for the server alone.

Cases:

* ``burst``: events are emitted as fast as the loop allows, ``batch`` per loop turn
  (throughput: deliveries/s = events x clients / time until the last delivery);
* ``burst raw``: the same burst to 200 bare socket readers that only split lines and read
  ``t0`` (no JSON parsing): what the server alone sustains, still on the same core;
* ``paced``: ``rate`` events/s in 10 ms ticks (latency under a steady load; 100 events/s
  is far above a 200-agent hotline's real rate, which is a few tens of events per second).

Usage: ``python -m benchmarks.bench_cti [--clients N] [--events N] [--smoke] [--json FILE]
[--uvloop]``. Prints a table, then the JSON (to FILE when given, else to stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

from benchmarks.report import emit_json
from cti.audit import MemoryAuditSink
from cti.auth import Authenticator, CtiUser, MemoryUserDirectory, hash_password
from cti.client import CtiClient
from cti.fake import FakeBackend
from cti.roles import Role
from cti.server import CtiConfig, CtiServer

_PASSWORD = "bench"
_QUEUES = frozenset({"billing"})
_TICK_S = 0.01
"""Paced case: events are emitted in 10 ms ticks (the switch's 20 ms media tick is coarser)."""


async def _connect_clients(port: int, n: int) -> list[CtiClient]:
    first = await CtiClient.connect("127.0.0.1", port, reconnect=False)
    info = await first.login("bench", _PASSWORD)
    clients = [first]
    for _ in range(n - 1):
        client = await CtiClient.connect("127.0.0.1", port, reconnect=False)
        await client.login(token=info.token)   # token login: no scrypt per connection
        clients.append(client)
    await asyncio.gather(*(c.subscribe(events=["call.queued"]) for c in clients))
    return clients


class _RawClient:
    """A subscriber that does the least possible work per event (server-cost case)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, token: str) -> _RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i, (cmd, args) in enumerate([("hello", {}), ("auth.login", {"token": token}),
                                         ("subscribe", {"events": ["call.queued"]})]):
            writer.write(json.dumps({"v": 1, "type": "req", "id": str(i), "cmd": cmd,
                                     "args": args}).encode() + b"\n")
            reply = json.loads(await reader.readline())
            if not reply.get("ok"):
                raise RuntimeError(f"raw client setup failed: {reply}")
        return cls(reader, writer)

    async def consume(self, n: int, latencies: list[float], done: list[float]) -> None:
        pending = b""
        got = 0
        while got < n:
            chunk = await self.reader.read(1 << 16)
            if not chunk:
                raise ConnectionError("server closed the raw client")
            now = time.perf_counter()
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                at = line.find(b'"t0":')
                if at >= 0:
                    latencies.append(now - float(line[at + 5:line.index(b"}", at)]))
                    got += 1
        done.append(time.perf_counter())


async def _raw_case(backend: FakeBackend, port: int, token: str, n_clients: int,
                    events: int, server: CtiServer) -> dict[str, Any]:
    raws = [await _RawClient.open(port, token) for _ in range(n_clients)]
    latencies: list[float] = []
    done: list[float] = []
    consumers = [asyncio.ensure_future(r.consume(events, latencies, done)) for r in raws]
    start = time.perf_counter()
    for sent in range(events):
        backend.emit("call.queued", {"call_id": f"call-{sent}", "queue": "billing",
                                     "position": sent % 20 + 1, "caller": "13800000001",
                                     "priority": 0, "t0": time.perf_counter()}, _QUEUES)
        if sent % 20 == 19:
            await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*consumers), timeout=120.0)
    for r in raws:
        r.writer.close()
    return _row("burst raw", n_clients, events, latencies, max(done) - start, server)


def _row(name: str, clients: int, events: int, latencies: list[float], elapsed: float,
         server: CtiServer) -> dict[str, Any]:
    latencies.sort()
    deliveries = len(latencies)
    return {
        "name": name, "clients": clients, "events": events,
        "deliveries": deliveries, "seconds": round(elapsed, 4),
        "events_per_s": round(events / elapsed, 1),
        "deliveries_per_s": round(deliveries / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[min(deliveries - 1, int(deliveries * 0.99))] * 1000, 3),
        "max_ms": round(latencies[-1] * 1000, 3),
        "dropped_slow": server.dropped_slow,
    }


async def _consume(client: CtiClient, n: int, latencies: list[float],
                   done: list[float]) -> None:
    async for event in client.events():
        latencies.append(time.perf_counter() - event.data["t0"])
        if event.seq >= n:
            done.append(time.perf_counter())
            return


async def _case(backend: FakeBackend, clients: list[CtiClient], name: str, events: int,
                batch: int, rate: float | None, server: CtiServer) -> dict[str, Any]:
    latencies: list[float] = []
    done: list[float] = []
    base = clients[0].last_seq
    consumers = [asyncio.ensure_future(_consume(c, base + events, latencies, done))
                 for c in clients]
    start = time.perf_counter()
    sent = 0
    while sent < events:
        for _ in range(min(batch, events - sent)):
            backend.emit("call.queued", {"call_id": f"call-{sent}", "queue": "billing",
                                         "position": sent % 20 + 1, "caller": "13800000001",
                                         "priority": 0, "t0": time.perf_counter()}, _QUEUES)
            sent += 1
        if rate is None:
            await asyncio.sleep(0)
        else:  # absolute schedule: batch events every batch/rate seconds
            await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
    await asyncio.wait_for(asyncio.gather(*consumers), timeout=120.0)
    return _row(name, len(clients), events, latencies, max(done) - start, server)


async def run(clients: int, events: int, paced_events: int, rate: float) -> list[dict[str, Any]]:
    backend = FakeBackend(["billing"])
    users = MemoryUserDirectory([CtiUser("bench", Role.SUPERVISOR,
                                         hash_password(_PASSWORD, log2_n=4), _QUEUES)])
    config = CtiConfig(stats_interval_s=0.0, outbound_queue_max=8192, ring_size=1024,
                       max_unauthenticated=clients + 8)
    server = CtiServer(backend, Authenticator(users), config, MemoryAuditSink())
    port = await server.start()
    conns = await _connect_clients(port, clients)
    token = conns[0].login_info.token if conns[0].login_info else ""
    try:
        rows = [await _case(backend, conns, "burst", events, 20, None, server)]
        per_tick = max(1, round(rate * _TICK_S))
        rows.append(await _case(backend, conns, f"paced {rate:.0f}/s", paced_events, per_tick,
                                rate, server))
    finally:
        for client in conns:
            await client.close()
    try:  # the library clients are gone: the raw ones are the only subscribers
        rows.insert(1, await _raw_case(backend, port, token, clients, events, server))
    finally:
        await server.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--events", type=int, default=2000, help="events in the burst case")
    parser.add_argument("--rate", type=float, default=100.0, help="events/s, paced case")
    parser.add_argument("--smoke", action="store_true", help="tiny run (CI)")
    parser.add_argument("--json", metavar="FILE", help="write the JSON here")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args(argv)
    clients, events, paced = args.clients, args.events, max(1, int(args.rate * 2))
    if args.smoke:
        clients, events, paced = 20, 50, 20
    if args.uvloop:
        import uvloop

        rows = uvloop.run(run(clients, events, paced, args.rate))
    else:
        rows = asyncio.run(run(clients, events, paced, args.rate))
    print(f"{'case':<14} {'clients':>7} {'events':>7} {'deliveries':>10} {'seconds':>8} "
          f"{'events/s':>9} {'deliv/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in rows:
        print(f"{r['name']:<14} {r['clients']:>7} {r['events']:>7} {r['deliveries']:>10} "
              f"{r['seconds']:>8.3f} {r['events_per_s']:>9.0f} {r['deliveries_per_s']:>9.0f} "
              f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.2f}")
    doc = {"benchmark": "cti", "smoke": args.smoke, "loop": "uvloop" if args.uvloop else
           "asyncio", "python": sys.version.split()[0], "results": rows}
    emit_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
