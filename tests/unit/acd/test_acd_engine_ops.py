"""Desk operations on waiting callers (switch/acd/engine_ops.py) under a fake clock: pickup,
priority change, scheduled callbacks, and their races with answers and hang-ups."""

from __future__ import annotations

from random import Random

import pytest

from switch.acd import (
    AcdEngine,
    AcdError,
    AgentLoggedIn,
    AgentState,
    AgentStateError,
    BridgeCall,
    CallbackQueued,
    CallbackScheduled,
    CallEnded,
    CallerAbandoned,
    CallerArrived,
    CallPickedUp,
    Device,
    EmptyRule,
    LogEntry,
    MemoryLogSink,
    OfferAnswered,
    OfferCall,
    PlaceCallback,
    PlayMusic,
    PriorityChanged,
    QueueConfig,
    QueueEvent,
    Strategy,
    WithdrawOffer,
)
from switch.acd.kpi import queue_kpis


class Harness:
    def __init__(self, *queues: QueueConfig) -> None:
        self.engine = AcdEngine(queues, Random(1))
        self.sink = MemoryLogSink()

    def _keep(self, actions: list) -> list:
        out = []
        for a in actions:
            if isinstance(a, LogEntry):
                self.sink.append(a.entry)
            else:
                out.append(a)
        return out

    def do(self, now: float, event: object) -> list:
        return self._keep(self.engine.handle(now, event))  # type: ignore[arg-type]

    def tick(self, until: float) -> list:
        out: list = []
        while (d := self.engine.next_deadline()) is not None and d <= until:
            out += self._keep(self.engine.handle_timer(d))
        return out

    def login(self, now: float, agent_id: str, ready: bool = True) -> list:
        return self.do(now, AgentLoggedIn(agent_id, Device("extension", agent_id[1:]),
                                          {"q": 1}, ready))

    def events(self, event: QueueEvent) -> list:
        return [e for e in self.sink.entries if e.event is event]


def offers(actions: list) -> list[tuple[str, str]]:
    return [(a.call_id, a.agent_id) for a in actions if isinstance(a, OfferCall)]


def withdrawals(actions: list) -> list[tuple[str, str, str]]:
    return [(a.call_id, a.agent_id, a.reason) for a in actions if isinstance(a, WithdrawOffer)]


# ---------------------------------------------------------------- pickup

def test_pickup_withdraws_the_ringing_offer_and_rings_only_the_picker() -> None:
    h = Harness(QueueConfig("q", strategy=Strategy.RING_ALL))
    h.login(0, "a1")
    h.login(0, "a2")
    acts = h.do(1, CallerArrived("q", "c1"))
    assert sorted(offers(acts)) == [("c1", "a1"), ("c1", "a2")]
    h.login(2, "a3")                        # nothing waiting unoffered: a3 stays ready
    acts = h.do(4, CallPickedUp("q", "c1", "a3"))
    assert sorted(withdrawals(acts)) == [("c1", "a1", "picked-up"), ("c1", "a2", "picked-up")]
    assert offers(acts) == [("c1", "a3")]
    assert h.engine.agent("a1").state is AgentState.READY
    assert h.engine.agent("a3").state is AgentState.RESERVED
    assert h.events(QueueEvent.PICKUP)[0].data == ("1", "3.000")
    # a late answer of a withdrawn agent is stale (engine Rule 1), the picker's wins
    late = h.do(5, OfferAnswered("c1", "a1"))
    assert withdrawals(late) == [("c1", "a1", "stale")] and not any(
        isinstance(a, BridgeCall) for a in late)
    won = h.do(6, OfferAnswered("c1", "a3"))
    assert next(a for a in won if isinstance(a, BridgeCall)).agent_id == "a3"
    assert h.engine.connected_agent("c1") == "a3"


def test_pickup_refusals() -> None:
    h = Harness(QueueConfig("q", ring_timeout_s=10))
    h.do(0, CallerArrived("q", "c1"))
    h.do(1, CallerArrived("q", "c2"))
    h.login(2, "a1", ready=False)
    with pytest.raises(AgentStateError):     # not ready: no pickup
        h.do(3, CallPickedUp("q", "c2", "a1"))
    assert h.engine.position("c2") == 2 and not h.engine.waiting("q")[1].offered_to
    h.login(4, "a2")
    assert h.engine.agent("a2").call_id == "c1"
    with pytest.raises(AgentStateError):     # reserved with another call
        h.do(5, CallPickedUp("q", "c2", "a2"))
    with pytest.raises(AcdError):
        h.do(5, CallPickedUp("q", "nope", "a1"))
    with pytest.raises(AcdError):
        h.do(5, CallPickedUp("other", "c1", "a1"))
    with pytest.raises(AcdError):
        h.do(5, CallPickedUp("q", "c1", "ghost"))
    assert h.do(6, CallPickedUp("q", "c1", "a2")) == []   # already ringing there


def test_pickup_ring_timeout_leaves_caller_in_place() -> None:
    h = Harness(QueueConfig("q", ring_timeout_s=10))
    h.do(1, CallerArrived("q", "c1"))
    h.do(2, CallerArrived("q", "c2"))
    h.do(3, AgentLoggedIn("b1", Device("extension", "2001"), {"other": 1}, True))
    assert offers(h.do(4, CallPickedUp("q", "c2", "b1"))) == [("c2", "b1")]
    acts = h.tick(14)
    assert withdrawals(acts) == [("c2", "b1", "ring-timeout")]
    assert h.engine.position("c1") == 1 and h.engine.position("c2") == 2
    assert h.events(QueueEvent.RINGNOANSWER)[0].agent == "b1"


def test_pickup_by_an_agent_of_another_queue() -> None:
    """The case pickup exists for: a ready agent in another queue takes a caller while the
    queue's own agents are busy."""
    h = Harness(QueueConfig("q"), QueueConfig("other"))
    h.do(0, CallerArrived("q", "c1"))
    h.do(1, CallerArrived("q", "c2"))
    h.do(1, AgentLoggedIn("b1", Device("extension", "2001"), {"other": 1}, True))
    assert h.engine.agent("b1").state is AgentState.READY   # not eligible for q
    acts = h.do(3, CallPickedUp("q", "c2", "b1"))
    assert offers(acts) == [("c2", "b1")]
    acts = h.do(4, OfferAnswered("c2", "b1"))
    assert [a.agent_id for a in acts if isinstance(a, BridgeCall)] == ["b1"]
    assert h.engine.position("c1") == 1 and h.engine.position("c2") is None
    connect = h.events(QueueEvent.CONNECT)[0]
    assert connect.call_id == "c2" and connect.agent == "b1"


def test_pickup_races_caller_hangup() -> None:
    h = Harness(QueueConfig("q"))
    h.do(0, CallerArrived("q", "c1"))
    h.do(0, AgentLoggedIn("b1", Device("extension", "2001"), {"other": 1}, True))
    h.do(1, CallPickedUp("q", "c1", "b1"))
    acts = h.do(2, CallerAbandoned("c1"))
    assert withdrawals(acts) == [("c1", "b1", "caller-abandoned")]
    assert h.engine.agent("b1").state is AgentState.READY
    assert h.do(3, OfferAnswered("c1", "b1"))[0].reason == "stale"
    with pytest.raises(AcdError):
        h.do(4, CallPickedUp("q", "c1", "b1"))


# ---------------------------------------------------------------- priority

def test_priority_change_moves_the_caller_and_keeps_its_entry_time() -> None:
    h = Harness(QueueConfig("q", priority_weight=0.0))
    for i, t in enumerate((0, 1, 2), 1):
        h.do(t, CallerArrived("q", f"c{i}"))
    assert [c.call_id for c in h.engine.waiting("q")] == ["c1", "c2", "c3"]
    h.do(10, PriorityChanged("q", "c3", 5))
    assert [c.call_id for c in h.engine.waiting("q")] == ["c3", "c1", "c2"]
    entry = h.events(QueueEvent.PRIORITY)[0]
    assert (entry.call_id, entry.data) == ("c3", ("0", "5", "1"))
    assert h.engine.waiting("q")[0].enter_time == 2
    assert h.do(11, PriorityChanged("q", "c3", 5)) == []     # no change, no log
    h.do(12, PriorityChanged("q", "c3", -1))
    assert [c.call_id for c in h.engine.waiting("q")] == ["c1", "c2", "c3"]
    # served in the new order
    acts = h.login(20, "a1")
    assert offers(acts) == [("c1", "a1")]
    with pytest.raises(AcdError):
        h.do(21, PriorityChanged("q", "zz", 1))


def test_priority_with_score_weight_and_max_wait_unchanged() -> None:
    h = Harness(QueueConfig("q", priority_weight=1.0, max_wait_s=100))
    h.do(0, CallerArrived("q", "c1"))
    h.do(30, CallerArrived("q", "c2"))
    h.do(31, PriorityChanged("q", "c2", 20))       # 20 < 30 s head start: still second
    assert [c.call_id for c in h.engine.waiting("q")] == ["c1", "c2"]
    h.do(32, PriorityChanged("q", "c2", 40))
    assert [c.call_id for c in h.engine.waiting("q")] == ["c2", "c1"]
    h.tick(100)                                     # c1's max wait at 100
    assert h.engine.position("c1") is None and h.engine.position("c2") == 1
    h.tick(130)                                     # c2's (entered at 30)
    assert h.engine.position("c2") is None


# ---------------------------------------------------------------- scheduled callbacks

def test_scheduled_callback_waits_for_its_time_then_agent_first() -> None:
    h = Harness(QueueConfig("q", join_empty=EmptyRule.NO_AGENT_LOGGED_IN, max_len=1))
    assert h.do(0, CallbackQueued("q", "cb1", "13800000000", at=600.0)) == []
    assert [c.call_id for c in h.engine.scheduled_callbacks()] == ["cb1"]
    assert h.engine.position("cb1") is None
    assert h.engine.next_deadline() == 600.0
    acts = h.tick(600)
    assert acts == [CallbackScheduled("cb1", "q", "13800000000", 1)]
    assert not any(isinstance(a, PlayMusic) for a in acts)
    assert h.engine.position("cb1") == 1 and h.engine.scheduled_callbacks() == []
    assert [e.event for e in h.sink.entries] == [QueueEvent.ENTERQUEUE, QueueEvent.CALLBACK]
    assert h.do(601, CallerAbandoned("cb1")) == []   # no live leg: nothing abandons
    acts = h.login(700, "a1")
    (offer,) = [a for a in acts if isinstance(a, OfferCall)]
    assert offer.callback_number == "13800000000"
    acts = h.do(702, OfferAnswered("cb1", "a1"))
    assert next(a for a in acts if isinstance(a, PlaceCallback)).number == "13800000000"
    h.do(800, CallEnded("cb1", by_agent=True))
    kpi = queue_kpis(h.sink.entries, now=800)
    assert (kpi.callbacks, kpi.answered, kpi.abandoned) == (1, 0, 0)


def test_scheduled_callback_now_and_errors() -> None:
    h = Harness(QueueConfig("q"))
    h.login(0, "a1")
    acts = h.do(5, CallbackQueued("q", "cb1", "1002", at=3.0))   # in the past: now
    assert offers(acts) == [("cb1", "a1")]
    with pytest.raises(AcdError):
        h.do(6, CallbackQueued("q", "cb1", "1002"))
    with pytest.raises(AcdError):
        h.do(6, CallbackQueued("nope", "cb2", "1002"))
    with pytest.raises(AcdError):
        h.do(6, CallbackQueued("q", "cb3", ""))
    h.do(6, CallbackQueued("q", "cb4", "1003", at=50.0))
    with pytest.raises(AcdError):
        h.do(7, CallbackQueued("q", "cb4", "1003", at=60.0))
    # Rule 8 of the engine: an input after the due time first fires the held callback
    h.do(51, CallerArrived("q", "c9"))
    assert (h.engine.position("cb4"), h.engine.position("c9")) == (2, 3)
