"""CTI on the live path: 200 agents, 1,000 queued callers, events fanned out to 200 clients.

What runs: the real ACD engine (``switch.acd.AcdEngine``, one queue, longest-idle, no
wrap-up) with 200 agents all busy and 1,000 callers waiting; the live CTI mapping the node
uses (``cti.switch_agents.AgentDesk`` for the ACD's actions: agent states and offers with
the screen pop; ``cti.live_calls.LiveState`` as a tap on the real ``switch.bus.EventBus``
for the call events the call manager publishes); the real ``cti.server.CtiServer``; and 200
clients on 127.0.0.1, each logged in as a supervisor of every queue and subscribed to every
event (bare socket readers that split lines and read ``event`` and ``call_id``: the server's
cost, not a client library's). No SIP and no media: the bench publishes on the bus what the
call manager and the queue service publish for a queued call (offered, queued, dequeued,
bridged, hung up).

One *cycle* is a day's unit of work: a busy agent's call ends (``call.cleared``, agent
wrap-up then ready), the ACD picks the longest-waiting caller for it (one *decision*:
``agent.reserved``, ``call.delivered`` with the screen pop), the agent answers
(``agent.busy``, ``call.dequeued``, ``call.established``), and a new caller arrives so that
1,000 stay queued (``call.queued``). Cases: ``no clients`` (the ACD, the bus, the mapping
and the server's encoding, nobody subscribed: the decision rate of the switch side),
``burst`` (cycles as fast as the loop allows, yielding every 5 cycles, 200 clients) and
``paced`` (``--rate`` cycles/s in 10 ms ticks, 200 clients).

Latency: the bench notes ``perf_counter()`` when it applies a change to a call; a client
computes ``now - that`` for each call event it reads (agent events are counted, not timed).
Everything shares one process and one core, so the figures include the clients' reading.
``decisions_per_cpu_s`` divides by the process CPU time of the case (steadier than wall
time on a shared machine).

Usage: ``python -m benchmarks.bench_cti_live [--clients N] [--cycles N] [--rate R]
[--smoke] [--json FILE] [--uvloop]``. Prints a table, then the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from random import Random
from types import SimpleNamespace
from typing import Any

from benchmarks.report import emit_json
from cti.audit import MemoryAuditSink
from cti.auth import Authenticator, CtiUser, MemoryUserDirectory, hash_password
from cti.fake import FakeBackend, MemoryResidentDirectory
from cti.live_calls import LiveState
from cti.roles import Role
from cti.server import CtiConfig, CtiServer
from cti.switch_agents import AgentDesk
from switch.acd import (
    AcdEngine,
    AgentLoggedIn,
    AgentState,
    BridgeCall,
    CallEnded,
    CallerArrived,
    Device,
    OfferAnswered,
    OfferCall,
    QueueConfig,
    Strategy,
)
from switch.bus import EventBus
from switch.events import CallBridged, CallDequeued, CallHungUp, CallOffered, CallQueued

AGENTS = 200
QUEUED = 1000
_PASSWORD = "bench"
_TICK_S = 0.01
_RESIDENT = {"name": "张伟", "unit": "3栋2单元501", "vip": True, "open_work_orders": [],
             "unpaid_bills": [{"kind": "property", "amount": "200.00"}], "recent_calls": []}


class _Acd:
    """The part of ``switch.queues.QueueService`` the CTI uses, over a bare engine."""

    def __init__(self, engine: AcdEngine) -> None:
        self.engine = engine
        self.observers: list[Any] = []

    def add_observer(self, observer: Any) -> None:
        self.observers.append(observer)

    def remove_observer(self, observer: Any) -> None:
        self.observers.remove(observer)

    def queues_of(self, agent_id: str) -> frozenset[str]:
        return frozenset(self.engine.queues)

    def device_of(self, agent_id: str) -> str:
        return str(self.engine.agents[agent_id].device.address)

    def caller_info(self, call_id: str) -> dict[str, Any]:
        return {"tags": {"intent": "bill"}}

    def agents(self) -> list[dict[str, Any]]:
        return []


class _Center:
    """The engine, the bus and the live mapping, driven like the node drives them."""

    def __init__(self, sink: Any) -> None:
        self.engine = AcdEngine([QueueConfig("q", strategy=Strategy.LONGEST_IDLE)],
                                Random(7))
        self.acd = _Acd(self.engine)
        self.bus = EventBus()
        self.state = LiveState(MemoryResidentDirectory({"13800000000": _RESIDENT}))
        self.state.set_sink(sink)
        self.bus.tap(self.state.handle)
        self.desk = AgentDesk(self.state, SimpleNamespace(queues=self.acd))
        self.desk.attach()
        self.stamps: dict[str, float] = {}
        self.serial = 0
        self.decisions = 0
        self.now = 1.0

    def _handle(self, event: Any) -> list[Any]:
        actions = self.engine.handle(self.now, event)
        for action in actions:
            for observer in self.acd.observers:
                observer(action)
            if isinstance(action, OfferCall):
                self.decisions += 1
            elif isinstance(action, BridgeCall):
                self._bridged(action)
        return actions

    def _bridged(self, action: BridgeCall) -> None:
        cid = action.call_id
        leg = f"sip/{action.device.address}-{cid}"
        self.bus.publish(CallOffered(at=self.now, call_id=cid, channel=leg, caller="13800000000",
                                     callee=action.device.address, source="internal"))
        self.bus.publish(CallDequeued(at=self.now, call_id=cid, channel=f"sip/a-{cid}",
                                      queue=action.queue, reason="answered",
                                      agent_id=action.agent_id))
        self.bus.publish(CallBridged(at=self.now, call_id=cid, channel=f"sip/a-{cid}",
                                     other_channel=leg))

    def arrive(self) -> None:
        self.serial += 1
        cid = f"c{self.serial}"
        self.stamps[cid] = time.perf_counter()
        self.bus.publish(CallOffered(at=self.now, call_id=cid, channel=f"sip/a-{cid}",
                                     caller="13800000000", callee="12345"))
        actions = self._handle(CallerArrived("q", cid))
        self.bus.publish(CallQueued(at=self.now, call_id=cid, channel=f"sip/a-{cid}",
                                    queue="q", position=len(self.engine.waiting("q"))))
        self.answer(actions)

    def answer(self, actions: list[Any]) -> None:
        for offer in [a for a in actions if isinstance(a, OfferCall)]:
            self.stamps[offer.call_id] = time.perf_counter()
            self._handle(OfferAnswered(offer.call_id, offer.agent_id))

    def end(self, agent_id: str) -> None:
        cid = self.engine.agents[agent_id].call_id
        if cid is None:
            return
        self.stamps[cid] = time.perf_counter()
        actions = self._handle(CallEnded(cid))
        self.bus.publish(CallHungUp(at=self.now, call_id=cid, channel=f"sip/a-{cid}",
                                    cause="normal_clearing", side="caller"))
        self.stamps.update((a.call_id, time.perf_counter()) for a in actions
                           if isinstance(a, OfferCall))
        self.answer(actions)

    async def load(self) -> None:
        """200 agents busy, 1,000 callers waiting (the state events go nowhere yet)."""
        for i in range(AGENTS):
            self._handle(AgentLoggedIn(f"a{i}", Device("extension", str(1000 + i)),
                                       {"q": 1}))
        while len(self.engine.waiting("q")) < QUEUED:
            self.arrive()
        await asyncio.sleep(0.05)  # the screen-pop lookups finish
        busy = sum(a.state is AgentState.BUSY for a in self.engine.agents.values())
        if busy != AGENTS:
            raise RuntimeError(f"only {busy} of {AGENTS} agents busy")

    def cycle(self, i: int) -> None:
        self.now += 0.01
        self.end(f"a{i % AGENTS}")
        self.arrive()


class _Reader:
    """A subscriber that reads lines and times call events by their call id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.got = 0

    @classmethod
    async def open(cls, port: int, token: str) -> _Reader:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        for i, (cmd, args) in enumerate([("hello", {}), ("auth.login", {"token": token}),
                                         ("subscribe", {})]):
            writer.write(json.dumps({"v": 1, "type": "req", "id": str(i), "cmd": cmd,
                                     "args": args}).encode() + b"\n")
            reply = json.loads(await reader.readline())
            if not reply.get("ok"):
                raise RuntimeError(f"client setup failed: {reply}")
        return cls(reader, writer)

    async def consume(self, stamps: dict[str, float], latencies: list[float],
                      target: list[int], done: asyncio.Event) -> None:
        pending = b""
        while not done.is_set():
            chunk = await self.reader.read(1 << 16)
            if not chunk:
                raise ConnectionError("server closed a client")
            now = time.perf_counter()
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                self.got += 1
                at = line.find(b'"call_id":"')
                if at >= 0 and b'"event":"call.' in line:
                    cid = line[at + 11:line.index(b'"', at + 11)].decode()
                    if cid in stamps:
                        latencies.append(now - stamps[cid])
            if self.got >= target[0]:
                return


async def _case(name: str, center: _Center, server: CtiServer, readers: list[_Reader],
                cycles: int, rate: float | None) -> dict[str, Any]:
    latencies: list[float] = []
    target = [1 << 62]
    done = asyncio.Event()
    base = [r.got for r in readers]
    published0, decisions0 = server.events_published, center.decisions
    consumers = [asyncio.ensure_future(r.consume(center.stamps, latencies, target, done))
                 for r in readers]
    cpu0, start = time.process_time(), time.perf_counter()
    per_tick = max(1, round((rate or 0) * _TICK_S))
    for i in range(cycles):
        center.cycle(i)
        if rate is None:
            if i % 5 == 4:
                await asyncio.sleep(0)
        elif i % per_tick == per_tick - 1:
            await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
    events = server.events_published - published0
    for reader, got in zip(readers, base, strict=True):
        reader.got -= got
    target[0] = events
    deadline = time.perf_counter() + 600.0
    while any(r.got < events for r in readers):  # a reader may sit in read(): poll
        if time.perf_counter() > deadline or any(
                c.done() and not c.cancelled() and c.exception() is not None
                for c in consumers):
            raise RuntimeError("clients did not receive every event")
        await asyncio.sleep(0.001)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    done.set()
    for consumer in consumers:
        consumer.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    latencies.sort() if latencies else latencies.append(0.0)
    decisions = center.decisions - decisions0
    deliveries = sum(r.got for r in readers)
    return {
        "name": name, "clients": len(readers), "agents": AGENTS, "queued": QUEUED,
        "cycles": cycles, "decisions": decisions, "events": events,
        "deliveries": deliveries, "seconds": round(elapsed, 4), "cpu_s": round(cpu, 4),
        "decisions_per_s": round(decisions / elapsed, 1),
        "decisions_per_cpu_s": round(decisions / cpu, 1),
        "events_per_s": round(events / elapsed, 1),
        "deliveries_per_s": round(deliveries / elapsed, 1),
        "timed": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
                        3),
        "max_ms": round(latencies[-1] * 1000, 3),
        "dropped_slow": server.dropped_slow,
    }


async def run(clients: int, cycles: int, paced_cycles: int, rate: float) -> list[dict[str, Any]]:
    users = MemoryUserDirectory([CtiUser("boss", Role.SUPERVISOR,
                                         hash_password(_PASSWORD, log2_n=4), frozenset(),
                                         True)])
    config = CtiConfig(stats_interval_s=0.0, outbound_queue_max=1 << 16, ring_size=4096,
                       max_unauthenticated=clients + 8)
    server = CtiServer(FakeBackend(["q"]), Authenticator(users), config, MemoryAuditSink())
    sink: list[Any] = [lambda event: None]
    center = _Center(lambda event: sink[0](event))
    await center.load()
    port = await server.start()
    readers: list[_Reader] = []
    try:
        token_reader, token_writer = await asyncio.open_connection("127.0.0.1", port)
        for i, (cmd, args) in enumerate([("hello", {}), ("auth.login", {
                "user": "boss", "password": _PASSWORD})]):
            token_writer.write(json.dumps({"v": 1, "type": "req", "id": str(i), "cmd": cmd,
                                           "args": args}).encode() + b"\n")
            reply = json.loads(await token_reader.readline())
        token = reply["result"]["token"]
        sink[0] = server.publish
        rows = [await _case("no clients", center, server, [], cycles, None)]
        readers = [await _Reader.open(port, token) for _ in range(clients)]
        rows += [await _case("burst", center, server, readers, cycles, None),
                await _case(f"paced {rate:.0f}/s", center, server, readers, paced_cycles,
                            rate)]
        token_writer.close()
    finally:
        for reader in readers:
            reader.writer.close()
        await server.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=1000, help="cycles in the burst case")
    parser.add_argument("--rate", type=float, default=20.0, help="cycles/s, paced case")
    parser.add_argument("--smoke", action="store_true", help="tiny run (CI)")
    parser.add_argument("--json", metavar="FILE", help="write the JSON here")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args(argv)
    clients, cycles, paced = args.clients, args.cycles, max(1, int(args.rate * 3))
    if args.smoke:
        clients, cycles, paced = 10, 30, 10
    runner = run(clients, cycles, paced, args.rate)
    if args.uvloop:
        import uvloop

        rows = uvloop.run(runner)
    else:
        rows = asyncio.run(runner)
    print(f"{'case':<12} {'clients':>7} {'cycles':>6} {'decis/s':>8} {'dec/cpu-s':>9} "
          f"{'events':>7} {'events/s':>9} {'deliv/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8}")
    for r in rows:
        print(f"{r['name']:<12} {r['clients']:>7} {r['cycles']:>6} {r['decisions_per_s']:>8.0f} "
              f"{r['decisions_per_cpu_s']:>9.0f} {r['events']:>7} {r['events_per_s']:>9.0f} "
              f"{r['deliveries_per_s']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
              f"{r['max_ms']:>8.2f}")
    doc = {"benchmark": "cti_live", "smoke": args.smoke, "loop": "uvloop" if args.uvloop
           else "asyncio", "agents": AGENTS, "queued": QUEUED,
           "python": sys.version.split()[0], "results": rows}
    emit_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
