"""ACD actions of the real engine mapped to CTI events (the future switch backend)."""

from __future__ import annotations

from random import Random

from cti.acd_events import acd_events, delivered_event, queue_stats_rows
from cti.backend import BackendEvent
from cti.messages import encode_event, validate_event
from switch.acd import (
    AcdEngine,
    AgentLoggedIn,
    AgentReady,
    CallEnded,
    CallerAbandoned,
    CallerArrived,
    Device,
    OfferAnswered,
    OfferCall,
    QueueConfig,
)


def _map(engine: AcdEngine, actions: list[object]) -> list[BackendEvent]:
    out: list[BackendEvent] = []
    for action in actions:
        out.extend(acd_events(action,  # type: ignore[arg-type]
                              queues_of=lambda agent: frozenset({"billing"}),
                              device_of=lambda agent: engine.agent(agent).device.address))
    for seq, event in enumerate(out, 1):   # every mapped event is a valid wire event
        validate_event(encode_event(seq, 0.0, event.name, event.data))
    return out


def test_engine_call_flow_to_cti_events() -> None:
    engine = AcdEngine([QueueConfig("billing", wrapup_s=5.0)], Random(1))
    device = Device("extension", "1001")
    events = _map(engine, engine.handle(0.0, AgentLoggedIn("a1", device, {"billing": 1},
                                                           ready=False)))
    assert [e.name for e in events] == ["agent.logged_on", "agent.not_ready"]
    assert events[1].agent_id == "a1" and events[1].queues == frozenset({"billing"})
    assert [e.name for e in _map(engine, engine.handle(1.0, AgentReady("a1")))] == \
        ["agent.ready"]
    actions = engine.handle(2.0, CallerArrived("billing", "call-1", priority=5))
    events = _map(engine, actions)
    assert [e.name for e in events] == ["call.queued", "agent.reserved"]
    assert events[0].data["position"] == 1 and events[0].data["priority"] == 5
    offer = next(a for a in actions if isinstance(a, OfferCall))
    pop = delivered_event(offer, caller="13800000001", called="hotline",
                          resident={"name": "Wang Wei", "vip": True},
                          ivr_tags={"intent": "bill"})
    validate_event(encode_event(1, 0.0, pop.name, pop.data))
    assert pop.agent_id == "a1" and pop.data["screen_pop"]["resident"]["vip"] is True
    events = _map(engine, engine.handle(3.0, OfferAnswered("call-1", "a1")))
    assert [e.name for e in events] == ["agent.busy", "call.dequeued", "call.established"]
    assert events[1].data["reason"] == "answered"
    events = _map(engine, engine.handle(60.0, CallEnded("call-1", by_agent=True)))
    assert [e.name for e in events] == ["agent.wrapup"]
    events = _map(engine, engine.handle_timer(65.0))
    assert [e.name for e in events] == ["agent.ready"]


def test_abandon_and_queue_stats() -> None:
    engine = AcdEngine([QueueConfig("billing")], Random(1))
    engine.handle(0.0, AgentLoggedIn("a1", Device("extension", "1001"), {"billing": 1},
                                     ready=False))
    _map(engine, engine.handle(1.0, CallerArrived("billing", "c1")))
    _map(engine, engine.handle(2.0, CallerArrived("billing", "c2")))
    rows = queue_stats_rows(engine, now=11.0)
    assert rows == [{"queue": "billing", "waiting": 2, "longest_wait_s": 10.0,
                     "agents_ready": 0, "agents_busy": 0, "agents_wrapup": 0,
                     "agents_not_ready": 1}]
    events = _map(engine, engine.handle(12.0, CallerAbandoned("c1")))
    assert [(e.name, e.data["reason"]) for e in events] == [("call.dequeued", "abandoned")]
