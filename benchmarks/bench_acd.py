"""ACD decision throughput: 200 agents, 1,000 queued callers, one core.

Each measured *cycle* is what a busy contact centre does all day: an agent's call ends (no
wrap-up), the engine picks the best waiting caller for the now-ready agent and offers it
(one *decision*), the agent answers, and a new caller joins so that 1,000 stay queued. Three
``AcdEngine.handle`` calls per cycle, with every queue log entry built. Cases:

* one queue, one skill, each strategy (ring-all rings the single ready agent);
* ``skills``: 10 skills, each agent has 3 at random levels, callers need a random skill with
  widening (the dispatcher must walk past callers the free agent cannot take);
* ``arrive (200 ready)``: empty queue, 200 ready agents, each arrival is one decision among
  200 candidates (strategy cost at its largest), then answered and ended; for ring-all that
  is 200 offers and 199 withdrawals (each logged) per cycle, so it runs n/20 cycles.

Usage: ``python -m benchmarks.bench_acd [--n N] [--smoke] [--json FILE]``. Prints a table,
then the JSON (to FILE when given, else to stdout).
"""

from __future__ import annotations

import argparse
import sys
import time
from random import Random
from typing import Any

from benchmarks.report import emit_json
from switch.acd import (
    AcdEngine,
    AgentLoggedIn,
    AgentState,
    CallEnded,
    CallerArrived,
    Device,
    OfferAnswered,
    OfferCall,
    QueueConfig,
    Strategy,
)

AGENTS = 200
QUEUED = 1000
SKILLS = [f"s{i}" for i in range(10)]


def _offers(actions: list[Any]) -> list[OfferCall]:
    return [a for a in actions if isinstance(a, OfferCall)]


def _loaded_engine(strategy: Strategy, skills: bool, seed: int) -> tuple[AcdEngine, Random]:
    rng = Random(seed)
    if skills:
        queues = [QueueConfig(s, strategy=strategy, initial_level=1, widen_every_s=30.0,
                              max_level=3) for s in SKILLS]
    else:
        queues = [QueueConfig("q", strategy=strategy)]
    eng = AcdEngine(queues, Random(seed + 1))
    for i in range(AGENTS):
        agent_skills = ({s: rng.randint(1, 3) for s in rng.sample(SKILLS, 3)} if skills
                        else {"q": 1})
        eng.handle(0.0, AgentLoggedIn(f"a{i}", Device("extension", str(1000 + i)),
                                      agent_skills, weight=1.0 + i % 5))
    return eng, rng


def _answer_all(eng: AcdEngine, now: float, actions: list[Any]) -> int:
    """Answer the first offer of each call (ring-all: the others are withdrawn)."""
    done: set[str] = set()
    for offer in _offers(actions):
        if offer.call_id not in done:
            done.add(offer.call_id)
            eng.handle(now, OfferAnswered(offer.call_id, offer.agent_id))
    return len(done)


def bench_loaded(strategy: Strategy, n: int, skills: bool = False) -> dict[str, Any]:
    """Steady state with every agent busy and QUEUED callers waiting."""
    eng, rng = _loaded_engine(strategy, skills, seed=7)
    queues = list(eng.queues)
    serial = 0
    now = 1.0

    def arrive() -> int:
        nonlocal serial
        serial += 1
        acts = eng.handle(now, CallerArrived(rng.choice(queues), f"c{serial}"))
        return _answer_all(eng, now, acts)

    while True:
        while sum(len(eng.waiting(q)) for q in queues) < QUEUED:
            arrive()
        now = 1000.0   # skills: the first callers have widened to every level
        if not _answer_all(eng, now, eng.handle_timer(now)):
            break
    busy = [a.agent_id for a in eng.agents.values() if a.state is AgentState.BUSY]
    if len(busy) != AGENTS:
        raise RuntimeError(f"only {len(busy)} of {AGENTS} agents busy")
    decisions = 0
    start = time.perf_counter()
    for i in range(n):
        now += 0.01
        agent = eng.agents[busy[i % AGENTS]]
        if agent.call_id is not None:   # (skills: a freed agent may still be waiting)
            acts = eng.handle(now, CallEnded(agent.call_id))
            decisions += _answer_all(eng, now, acts)
        decisions += arrive()
    secs = time.perf_counter() - start
    label = f"{strategy.value}{' skills' if skills else ''}"
    return {"name": label, "ops": n, "decisions": decisions, "seconds": secs,
            "queued": sum(len(eng.waiting(q)) for q in queues), "agents": AGENTS}


def bench_arrivals(strategy: Strategy, n: int) -> dict[str, Any]:
    """Empty queue, AGENTS ready: every arrival is a decision among all of them."""
    eng, _ = _loaded_engine(strategy, False, seed=7)
    decisions = 0
    start = time.perf_counter()
    for i in range(n):
        now = 1.0 + i * 0.01
        acts = eng.handle(now, CallerArrived("q", f"c{i}"))
        decisions += _answer_all(eng, now, acts)
        eng.handle(now, CallEnded(f"c{i}"))
    secs = time.perf_counter() - start
    return {"name": f"arrive (200 ready) {strategy.value}", "ops": n, "decisions": decisions,
            "seconds": secs, "queued": 0, "agents": AGENTS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=20_000, help="cycles per case")
    parser.add_argument("--smoke", action="store_true", help="tiny run (CI)")
    parser.add_argument("--json", metavar="FILE", help="write JSON here instead of stdout")
    args = parser.parse_args(argv)
    n = 100 if args.smoke else args.n
    rows = [bench_loaded(s, n) for s in Strategy]
    rows.append(bench_loaded(Strategy.LONGEST_IDLE, n, skills=True))
    rows += [bench_arrivals(s, n) for s in (Strategy.LONGEST_IDLE, Strategy.WEIGHTED_RANDOM)]
    rows.append(bench_arrivals(Strategy.RING_ALL, max(10, n // 20)))  # 200 offers per cycle
    for row in rows:
        row["decisions_per_s"] = round(row["decisions"] / row["seconds"], 1)
        row["us_per_cycle"] = round(row["seconds"] / row["ops"] * 1e6, 2)
    print(f"{'case':<36} {'cycles':>7} {'decisions':>9} {'seconds':>8} {'decisions/s':>12} "
          f"{'us/cycle':>9}")
    for row in rows:
        print(f"{row['name']:<36} {row['ops']:>7} {row['decisions']:>9} {row['seconds']:>8.3f} "
              f"{row['decisions_per_s']:>12,.0f} {row['us_per_cycle']:>9.1f}")
    doc = {"benchmark": "acd", "smoke": args.smoke, "n": n, "agents": AGENTS,
           "queued": QUEUED, "python": sys.version.split()[0], "results": rows}
    emit_json(doc, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
