"""The live ACD shell's own cost: 200 agents, 1,000 queued callers, one core.

``bench_acd`` times the pure engine; this times what :class:`switch.queues.QueueService`
adds on a live node: feeding leg events in, performing the engine's actions (offer legs,
withdrawals, bridges, music tasks, bus events, queue log appends through the write-behind
writer's buffer), and the asyncio tasks of each queued caller. SIP and media are replaced
by no-op fakes so that only the shell and the engine are measured.

Each measured *cycle*: an agent's offer leg answers (``LegAnswered`` -> ``OfferAnswered``
-> ``BridgeCall``), the bridged call ends (``call_ended`` -> ``CallEnded``), the freed agent
is offered the next waiting caller (one *decision*: a new offer leg), and a new caller joins
(``wait``) so that 1,000 stay waiting behind the 200 ringing (1,200 in the queue).
Figures are CPU time (``time.process_time``) of the whole process, the fairest measure on
a shared machine.

Usage: ``python -m benchmarks.bench_queues_live [--n N] [--smoke] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from random import Random
from typing import Any

from benchmarks.report import emit_json
from switch.acd import MemoryLogSink, QueueConfig, QueueLogEntry, Strategy
from switch.bus import EventBus
from switch.drivers.base import LegAnswered
from switch.queue_config import QueueSettings
from switch.queues import QueueService

AGENTS = 200
QUEUED = 1000


@dataclass(eq=False)
class _Leg:
    name: str
    media_id: int | None = 1
    codec: str = "PCMU"
    call_id: str | None = None


@dataclass(eq=False)
class _Call:
    id: str
    a: _Leg
    caller: str = "13800000000"
    dialed: str = "7000"
    b: _Leg | None = None
    ringback: bool = False


class _Driver:
    """No-op legs: every device has one contact; nothing goes on a wire."""

    def __init__(self) -> None:
        self.legs = 0

    def lookup(self, number: str) -> list[str]:
        return [number]

    def new_outbound(self, peer: str) -> _Leg:
        self.legs += 1
        return _Leg(f"agent-{self.legs}")

    async def originate(self, leg: _Leg, contact: str, **_: Any) -> None:
        return None

    def hangup(self, leg: _Leg) -> None:
        return None

    async def release(self, leg: _Leg) -> None:
        return None


class _Media:
    """No-op music on hold."""

    tts = None

    async def tone(self, cid: int, name: str) -> None:
        return None

    async def stop(self, cid: int) -> None:
        return None


@dataclass
class _Manager:
    driver: _Driver = field(default_factory=_Driver)
    media: _Media = field(default_factory=_Media)
    queues: Any = None
    bridged: int = 0

    def bridge_agent(self, call: _Call, leg: _Leg) -> None:
        call.b = leg
        self.bridged += 1


class _CountingLog:
    """A log sink that keeps a count and the last entries (a writer's buffer, bounded)."""

    def __init__(self) -> None:
        self.count = 0
        self.recent = MemoryLogSink()

    def append(self, entry: QueueLogEntry) -> None:
        self.count += 1


async def _run(strategy: Strategy, cycles: int) -> dict[str, Any]:
    log = _CountingLog()
    bus = EventBus()
    events: list[object] = []
    bus.tap(events.append)
    service = QueueService({"q": QueueSettings(QueueConfig("q", strategy=strategy,
                                                           ring_timeout_s=600.0))},
                           log=log, bus=bus, rng=Random(1))
    manager = _Manager()
    service.attach(manager)
    for i in range(AGENTS):
        service.login(f"a{i}", f"d{i}", ["q"])
    waits: set[asyncio.Task[Any]] = set()
    serial = 0

    def arrive() -> None:
        nonlocal serial
        serial += 1
        call = _Call(f"c{serial}", _Leg(f"caller-{serial}"))
        task = asyncio.get_running_loop().create_task(service.wait(call, "q"))
        waits.add(task)
        task.add_done_callback(waits.discard)

    for _ in range(QUEUED + AGENTS):
        arrive()
    await asyncio.sleep(0)  # every wait has entered: 200 ringing, 1,000 waiting
    legs_before, log_before, bus_before = manager.driver.legs, log.count, len(events)
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    for _ in range(cycles):
        offer = next(iter(service._offers.values()))
        leg = offer.legs[0]
        call = service._waiters[offer.call_id].call
        service.handle_leg(LegAnswered(leg))  # type: ignore[arg-type]
        service.call_ended(call, "caller")
        arrive()
        await asyncio.sleep(0)
    cpu = time.process_time() - start_cpu
    wall = time.perf_counter() - start_wall
    decisions = manager.driver.legs - legs_before
    queued = len(service.engine.waiting("q"))
    for task in list(waits):
        task.cancel()
    await asyncio.gather(*waits, return_exceptions=True)
    await service.stop()
    return {"name": strategy.value, "cycles": cycles, "decisions": decisions,
            "bridged": manager.bridged, "queued": queued,
            "log_entries": log.count - log_before, "bus_events": len(events) - bus_before,
            "cpu_s": round(cpu, 4), "wall_s": round(wall, 4),
            "decisions_per_cpu_s": round(decisions / cpu, 1) if cpu > 0 else None,
            "cpu_us_per_call": round(1e6 * cpu / cycles, 1)}


def bench(strategy: Strategy, cycles: int) -> dict[str, Any]:
    """One strategy's row (runs its own event loop)."""
    return asyncio.run(_run(strategy, cycles))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="cycles per strategy")
    parser.add_argument("--smoke", action="store_true", help="tiny run (CI)")
    parser.add_argument("--json", metavar="FILE", help="write the JSON here")
    args = parser.parse_args(argv)
    n = 100 if args.smoke else args.n
    strategies = [Strategy.LONGEST_IDLE, Strategy.ROUND_ROBIN] if args.smoke else list(Strategy)
    rows = [bench(s, n) for s in strategies if s is not Strategy.RING_ALL]
    print(f"live ACD shell: {AGENTS} agents ringing, {QUEUED} more callers waiting; "
          "process CPU time")
    print(f"{'strategy':<18} {'cycles':>7} {'decisions':>9} {'log':>7} {'bus':>7} "
          f"{'CPU s':>7} {'decisions/CPU s':>16} {'CPU us/call':>12}")
    for r in rows:
        print(f"{r['name']:<18} {r['cycles']:>7} {r['decisions']:>9} {r['log_entries']:>7} "
              f"{r['bus_events']:>7} {r['cpu_s']:>7.3f} {r['decisions_per_cpu_s']:>16} "
              f"{r['cpu_us_per_call']:>12}")
    doc = {"benchmark": "queues_live", "smoke": args.smoke, "n": n, "agents": AGENTS,
           "queued": QUEUED, "metric": "process CPU time", "results": rows}
    emit_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
