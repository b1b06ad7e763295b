"""Strategy choice sequences under a fake clock and a seeded RNG (IVR_CTI_ACD.md §C.1/§C.2)."""

from __future__ import annotations

from collections import Counter
from random import Random

import pytest

from switch.acd import (
    AcdEngine,
    AgentLoggedIn,
    CallEnded,
    CallerArrived,
    Device,
    OfferAnswered,
    OfferCall,
    QueueConfig,
    Strategy,
)
from switch.acd.agent import Agent
from switch.acd.strategy import select_agents


def _engine(strategy: Strategy, agents: int = 3, seed: int = 1) -> AcdEngine:
    eng = AcdEngine([QueueConfig("q", strategy=strategy)], Random(seed))
    for i in range(1, agents + 1):
        eng.handle(float(i), AgentLoggedIn(f"a{i}", Device("extension", str(i)), {"q": 1}))
    return eng


def _serve(eng: AcdEngine, calls: int, hold_s: float = 0.0, start: float = 10.0,
           gap_s: float = 10.0) -> list[str]:
    """One call at a time: arrive, answer by whoever is offered, end after hold_s."""
    chosen = []
    t = start
    for i in range(calls):
        acts = eng.handle(t, CallerArrived("q", f"c{i}"))
        (offer,) = [a for a in acts if isinstance(a, OfferCall)]
        chosen.append(offer.agent_id)
        eng.handle(t, OfferAnswered(f"c{i}", offer.agent_id))
        eng.handle(t + hold_s, CallEnded(f"c{i}"))
        t += gap_s
    return chosen


def _agents(n: int, **overrides: dict[str, object]) -> list[Agent]:
    out = []
    for i in range(1, n + 1):
        agent = Agent(f"a{i}", Device("extension", str(i)), {"q": 1}, position=i)
        for field, values in overrides.items():
            setattr(agent, field, values[i - 1])  # type: ignore[index]
        out.append(agent)
    return out


def test_longest_idle_picks_the_agent_idle_longest() -> None:
    eng = _engine(Strategy.LONGEST_IDLE)
    # a1 idle since 1, a2 since 2, a3 since 3; each call ends 1 s after it starts
    assert _serve(eng, 6, hold_s=1.0) == ["a1", "a2", "a3", "a1", "a2", "a3"]
    agents = _agents(3, idle_since=[50.0, 20.0, 30.0])
    assert select_agents(Strategy.LONGEST_IDLE, "q", agents, 60.0, Random(1), None) \
        .agents[0].agent_id == "a2"


def test_round_robin_continues_after_the_last() -> None:
    eng = _engine(Strategy.ROUND_ROBIN, agents=3)
    assert _serve(eng, 7) == ["a1", "a2", "a3", "a1", "a2", "a3", "a1"]
    agents = _agents(4)
    sel = select_agents(Strategy.ROUND_ROBIN, "q", agents, 0, Random(1), 2)
    assert sel.agents[0].agent_id == "a3" and sel.memory == 3
    sel = select_agents(Strategy.ROUND_ROBIN, "q", agents[:2], 0, Random(1), 3)  # a3, a4 busy
    assert sel.agents[0].agent_id == "a1" and sel.memory == 1


def test_linear_always_in_order() -> None:
    eng = _engine(Strategy.LINEAR)
    assert _serve(eng, 4) == ["a1"] * 4
    eng = _engine(Strategy.LINEAR)
    acts = eng.handle(20, CallerArrived("q", "x"))
    assert [a.agent_id for a in acts if isinstance(a, OfferCall)] == ["a1"]
    acts = eng.handle(20, CallerArrived("q", "y"))   # a1 reserved: next in order
    assert [a.agent_id for a in acts if isinstance(a, OfferCall)] == ["a2"]


def test_fewest_calls() -> None:
    agents = _agents(3, calls_answered=[{"q": 5}, {"q": 2}, {"q": 2, "other": 0}],
                     idle_since=[0.0, 10.0, 5.0])
    sel = select_agents(Strategy.FEWEST_CALLS, "q", agents, 20.0, Random(1), None)
    assert sel.agents[0].agent_id == "a3"      # tie on 2 calls: longer idle wins
    eng = _engine(Strategy.FEWEST_CALLS)
    assert _serve(eng, 6, hold_s=1.0) == ["a1", "a2", "a3", "a1", "a2", "a3"]
    assert [eng.agent(f"a{i}").calls_answered["q"] for i in (1, 2, 3)] == [2, 2, 2]


def test_random_is_reproducible_and_covers_everyone() -> None:
    seq1 = _serve(_engine(Strategy.RANDOM, agents=4, seed=9), 40)
    seq2 = _serve(_engine(Strategy.RANDOM, agents=4, seed=9), 40)
    assert seq1 == seq2 and set(seq1) == {"a1", "a2", "a3", "a4"}
    assert seq1 != _serve(_engine(Strategy.RANDOM, agents=4, seed=10), 40)


def test_weighted_random_distribution() -> None:
    agents = _agents(3, weight=[1.0, 2.0, 7.0])
    rng = Random(5)
    picks = Counter(select_agents(Strategy.WEIGHTED_RANDOM, "q", agents, 0, rng, None)
                    .agents[0].agent_id for _ in range(20_000))
    for agent_id, share in (("a1", 0.1), ("a2", 0.2), ("a3", 0.7)):
        assert picks[agent_id] / 20_000 == pytest.approx(share, abs=0.015)
    zero = _agents(2, weight=[0.0, 3.0])
    assert {select_agents(Strategy.WEIGHTED_RANDOM, "q", zero, 0, rng, None).agents[0]
            .agent_id for _ in range(200)} == {"a2"}


def test_ring_all_selects_everyone_in_order() -> None:
    agents = list(reversed(_agents(3)))
    sel = select_agents(Strategy.RING_ALL, "q", agents, 0, Random(1), None)
    assert [a.agent_id for a in sel.agents] == ["a1", "a2", "a3"]


def test_no_candidates_is_an_error() -> None:
    with pytest.raises(ValueError):
        select_agents(Strategy.LINEAR, "q", [], 0, Random(1), None)
