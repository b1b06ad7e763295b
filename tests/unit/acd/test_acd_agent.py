"""Agent state machine: every (state, input) pair is a valid transition or our error (h2
test_state_machines style), plus random input sequences against the whole engine that check
the race invariants (a call never connected twice, offers and agent states agree)."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.acd import (
    AcdEngine,
    AcdError,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentNotReady,
    AgentReady,
    AgentState,
    AgentStateError,
    CallbackRequested,
    CallEnded,
    CallerAbandoned,
    CallerArrived,
    Device,
    LogEntry,
    OfferAnswered,
    OfferRejected,
    QueueConfig,
    QueueEvent,
    Strategy,
    WrapUpEnded,
)
from switch.acd.agent import TRANSITIONS, AgentEffect, AgentInput, transition


@given(st.sampled_from(AgentState), st.sampled_from(AgentInput))
def test_every_pair_is_valid_or_our_error(state: AgentState, agent_input: AgentInput) -> None:
    try:
        effect, new = transition(state, agent_input)
        assert effect is None or isinstance(effect, AgentEffect)
    except AgentStateError as exc:
        assert (state, agent_input) not in TRANSITIONS
        assert exc.state is state and exc.agent_input is agent_input
    else:
        assert (state, agent_input) in TRANSITIONS
        assert isinstance(new, AgentState)


def test_table_shape() -> None:
    # every state can be left, and only login leaves LOGGED_OFF
    sources = {s for s, _ in TRANSITIONS}
    assert sources == set(AgentState)
    assert [i for s, i in TRANSITIONS if s is AgentState.LOGGED_OFF] == [AgentInput.LOGIN]
    # offers only reach READY agents; answering only happens from RESERVED
    assert [s for s, i in TRANSITIONS if i is AgentInput.OFFER] == [AgentState.READY]
    assert [s for s, i in TRANSITIONS if i is AgentInput.ANSWER] == [AgentState.RESERVED]
    with pytest.raises(AgentStateError):
        transition(AgentState.BUSY, AgentInput.OFFER)


AGENTS = ["a1", "a2", "a3"]
CALLS = [f"c{i}" for i in range(5)]

ops = st.one_of(
    st.tuples(st.just("arrive"), st.sampled_from(CALLS), st.integers(0, 3)),
    st.tuples(st.just("abandon"), st.sampled_from(CALLS), st.just(0)),
    st.tuples(st.just("callback"), st.sampled_from(CALLS), st.just(0)),
    st.tuples(st.just("answer"), st.sampled_from(CALLS), st.integers(0, 2)),
    st.tuples(st.just("reject"), st.sampled_from(CALLS), st.integers(0, 2)),
    st.tuples(st.just("end"), st.sampled_from(CALLS), st.integers(0, 1)),
    # the same, aimed at a live offer / a connected call (index into the current ones)
    st.tuples(st.just("answer-live"), st.just(""), st.integers(0, 7)),
    st.tuples(st.just("answer-live"), st.just(""), st.integers(0, 7)),
    st.tuples(st.just("reject-live"), st.just(""), st.integers(0, 7)),
    st.tuples(st.just("end-live"), st.just(""), st.integers(0, 7)),
    st.tuples(st.just("login"), st.sampled_from(AGENTS), st.integers(0, 3)),
    st.tuples(st.just("logout"), st.sampled_from(AGENTS), st.just(0)),
    st.tuples(st.just("ready"), st.sampled_from(AGENTS), st.just(0)),
    st.tuples(st.just("notready"), st.sampled_from(AGENTS), st.just(0)),
    st.tuples(st.just("wrapend"), st.sampled_from(AGENTS), st.just(0)),
    st.tuples(st.just("tick"), st.just(""), st.integers(1, 20)),
)


def _aim(eng: AcdEngine, op: str, _name: str, arg: int) -> tuple[str, str, int]:
    """Turn an "-live" op into a concrete one against the engine's current offers/calls."""
    if op == "end-live":
        talking = sorted(a.call_id for a in eng.agents.values()
                         if a.state is AgentState.BUSY and a.call_id)
        return ("end", talking[arg % len(talking)], arg & 1) if talking else ("tick", "", 1)
    offers = sorted((a.call_id, a.agent_id) for a in eng.agents.values()
                    if a.state is AgentState.RESERVED and a.call_id)
    if not offers:
        return ("tick", "", 1)
    call_id, agent_id = offers[arg % len(offers)]
    return (op.removesuffix("-live"), call_id, AGENTS.index(agent_id))


def _event(op: str, name: str, arg: int) -> object:
    return {
        "arrive": lambda: CallerArrived("q", name, priority=arg),
        "abandon": lambda: CallerAbandoned(name),
        "callback": lambda: CallbackRequested(name, "100"),
        "answer": lambda: OfferAnswered(name, AGENTS[arg]),
        "reject": lambda: OfferRejected(name, AGENTS[arg]),
        "end": lambda: CallEnded(name, by_agent=bool(arg)),
        "login": lambda: AgentLoggedIn(name, Device("extension", name), {"q": 1 + (arg >> 1)},
                                       bool(arg & 1)),
        "logout": lambda: AgentLoggedOut(name),
        "ready": lambda: AgentReady(name),
        "notready": lambda: AgentNotReady(name, "x"),
        "wrapend": lambda: WrapUpEnded(name),
    }[op]()


def _check_invariants(eng: AcdEngine) -> None:
    offered: dict[str, set[str]] = {}
    for caller in [c for q in eng.queues for c in eng.waiting(q)]:
        for agent_id in caller.offered_to:
            agent = eng.agent(agent_id)
            assert agent.state is AgentState.RESERVED and agent.call_id == caller.call_id
            offered.setdefault(agent_id, set()).add(caller.call_id)
        assert eng.connected_agent(caller.call_id) is None
        if not caller.offered_to:
            # work conservation: nobody ready could take a caller left waiting
            assert not any(a.skills.get(caller.skill, 99) <= caller.level
                           for a in eng.agents.values() if a.state is AgentState.READY)
    for agent in eng.agents.values():
        if agent.state is AgentState.RESERVED:
            assert offered.get(agent.agent_id) == {agent.call_id}
        if agent.state is AgentState.BUSY:
            assert eng.connected_agent(agent.call_id or "") == agent.agent_id


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([Strategy.RING_ALL, Strategy.LINEAR, Strategy.RANDOM]),
       st.lists(ops, min_size=5, max_size=80))
def test_random_input_sequences_keep_the_race_invariants(strategy: Strategy,
                                                         steps: list) -> None:
    eng = AcdEngine([QueueConfig("q", strategy=strategy, ring_timeout_s=5, wrapup_s=3,
                                 max_no_answer=2, max_wait_s=40, widen_every_s=10,
                                 max_level=2)], Random(0))
    for i, agent_id in enumerate(AGENTS):   # start staffed; the steps log them out and in
        eng.handle(0.0, AgentLoggedIn(agent_id, Device("extension", agent_id), {"q": 1 + i // 2}))
    now = 0.0
    talking: set[str] = set()
    for step in steps:
        op, name, arg = _aim(eng, *step) if step[0].endswith("-live") else step
        actions = []
        if op == "tick":
            now += arg
            while (d := eng.next_deadline()) is not None and d <= now:
                actions += eng.handle_timer(d)
        else:
            try:
                actions = eng.handle(now, _event(op, name, arg))  # type: ignore[arg-type]
            except (AgentStateError, AcdError):
                continue
        for a in actions:
            if not isinstance(a, LogEntry):
                continue
            if a.entry.event is QueueEvent.CONNECT:
                assert a.entry.call_id not in talking     # never answered twice
                talking.add(a.entry.call_id)
            elif a.entry.event in (QueueEvent.COMPLETEAGENT, QueueEvent.COMPLETECALLER):
                talking.remove(a.entry.call_id)
        _check_invariants(eng)
