"""Agent selection strategies as pure functions (IVR_CTI_ACD.md §C.1, §C.2).

Each strategy is a function ``(queue, candidates, now, rng, memory) -> Selection``:

* ``candidates`` are the agents the engine already found ready and eligible for the caller,
  restricted to the best (lowest) skill level present, as mod_callcenter does "always within
  tier level";
* ``rng`` is the engine's injected, seeded ``random.Random`` (never the global one);
* ``memory`` is the queue's round-robin memory (the ``position`` of the last agent rung).

A selection lists the agents to offer the call to, in order: one agent, or every candidate for
ring-all. Ties are always broken by agent ``position`` then id, so that a run is reproducible.

Semantics (Asterisk queues.conf.sample wording, mod_callcenter SQL orderings):

==================  ========================================================================
ring-all            every candidate at once; the first to answer wins, the engine withdraws
                    the other offers in the same step (so a call is never *connected* to two
                    agents, although it rings at several)
longest-idle        smallest ``idle_since`` (Asterisk leastrecent, mod_callcenter
                    longest-idle-agent)
fewest-calls        fewest calls answered from this queue, then longest idle
round-robin         next ``position`` after the one rung last, wrapping (Asterisk rrmemory)
linear              lowest ``position`` always (Asterisk linear, mod_callcenter top-down)
random              uniform choice
weighted-random     probability proportional to ``Agent.weight``
==================  ========================================================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from random import Random

from switch.acd.agent import Agent
from switch.acd.queue import Strategy

logger = logging.getLogger(__name__)

__all__ = ["STRATEGIES", "Selection", "select_agents"]


@dataclass(frozen=True, slots=True)
class Selection:
    """Agents to offer the call to (in order) and the queue's new round-robin memory."""

    agents: tuple[Agent, ...]
    memory: int | None


StrategyFn = Callable[[str, Sequence[Agent], float, Random, int | None], Selection]


def _ordered(candidates: Sequence[Agent]) -> list[Agent]:
    return sorted(candidates, key=lambda a: (a.position, a.agent_id))


def ring_all(queue: str, candidates: Sequence[Agent], now: float, rng: Random,
             memory: int | None) -> Selection:
    """Offer to every candidate at once."""
    return Selection(tuple(_ordered(candidates)), memory)


def longest_idle(queue: str, candidates: Sequence[Agent], now: float, rng: Random,
                 memory: int | None) -> Selection:
    """The agent idle the longest (earliest ``idle_since``)."""
    best = min(candidates, key=lambda a: (a.idle_since, a.position, a.agent_id))
    return Selection((best,), memory)


def fewest_calls(queue: str, candidates: Sequence[Agent], now: float, rng: Random,
                 memory: int | None) -> Selection:
    """The agent with the fewest answered calls from this queue, then the longest idle."""
    best = min(candidates, key=lambda a: (a.calls_answered.get(queue, 0), a.idle_since,
                                          a.position, a.agent_id))
    return Selection((best,), memory)


def round_robin(queue: str, candidates: Sequence[Agent], now: float, rng: Random,
                memory: int | None) -> Selection:
    """The first agent after the one rung last, in position order, wrapping around."""
    ordered = _ordered(candidates)
    chosen = ordered[0]
    if memory is not None:
        chosen = next((a for a in ordered if a.position > memory), ordered[0])
    return Selection((chosen,), chosen.position)


def linear(queue: str, candidates: Sequence[Agent], now: float, rng: Random,
           memory: int | None) -> Selection:
    """Always the first agent in position order."""
    return Selection((_ordered(candidates)[0],), memory)


def random_agent(queue: str, candidates: Sequence[Agent], now: float, rng: Random,
                 memory: int | None) -> Selection:
    """A uniformly random agent."""
    return Selection((rng.choice(_ordered(candidates)),), memory)


def weighted_random(queue: str, candidates: Sequence[Agent], now: float, rng: Random,
                    memory: int | None) -> Selection:
    """A random agent with probability ``weight / sum(weights)``.

    Agents with weight 0 are chosen only when every candidate has weight 0 (then uniformly).
    """
    ordered = _ordered(candidates)
    total = sum(max(0.0, a.weight) for a in ordered)
    if total <= 0.0:
        return Selection((rng.choice(ordered),), memory)
    point = rng.random() * total
    acc = 0.0
    for agent in ordered:
        acc += max(0.0, agent.weight)
        if point < acc:
            return Selection((agent,), memory)
    last = [a for a in ordered if a.weight > 0][-1]
    return Selection((last,), memory)


STRATEGIES: dict[Strategy, StrategyFn] = {
    Strategy.RING_ALL: ring_all,
    Strategy.LONGEST_IDLE: longest_idle,
    Strategy.FEWEST_CALLS: fewest_calls,
    Strategy.ROUND_ROBIN: round_robin,
    Strategy.LINEAR: linear,
    Strategy.RANDOM: random_agent,
    Strategy.WEIGHTED_RANDOM: weighted_random,
}


def select_agents(strategy: Strategy, queue: str, candidates: Sequence[Agent], now: float,
                  rng: Random, memory: int | None) -> Selection:
    """Apply ``strategy`` to a non-empty candidate list.

    Raises:
        ValueError: no candidates.
    """
    if not candidates:
        raise ValueError("select_agents needs at least one candidate")
    return STRATEGIES[strategy](queue, candidates, now, rng, memory)
