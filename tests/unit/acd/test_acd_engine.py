"""AcdEngine behaviour under a fake clock: races, priority, widening, wrap-up, overflow,
empty-queue rules, callbacks, announcements (IVR_CTI_ACD.md §C)."""

from __future__ import annotations

from random import Random

import pytest

from switch.acd import (
    AcdEngine,
    AcdError,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentNotReady,
    AgentReady,
    AgentState,
    AgentStateChanged,
    AgentStateError,
    Announce,
    BridgeCall,
    CallbackRequested,
    CallbackScheduled,
    CallEnded,
    CallerAbandoned,
    CallerArrived,
    CallTransferred,
    Device,
    EmptyRule,
    LogEntry,
    MemoryLogSink,
    OfferAnswered,
    OfferCall,
    OfferRejected,
    Overflow,
    OverflowTarget,
    PlaceCallback,
    PlayMusic,
    QueueConfig,
    QueueEvent,
    StopMusic,
    Strategy,
    WithdrawOffer,
    WrapUpEnded,
)
from switch.acd.kpi import queue_kpis


class Harness:
    """Drives an engine, keeps the log, returns the non-log actions of each step."""

    def __init__(self, *queues: QueueConfig, seed: int = 1) -> None:
        self.engine = AcdEngine(queues, Random(seed))
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

    def login(self, now: float, agent_id: str, skills: dict[str, int] | None = None,
              ready: bool = True, **kw: object) -> list:
        dev = Device("extension", agent_id.lstrip("a") or "1")
        return self.do(now, AgentLoggedIn(agent_id, dev, skills or {"q": 1}, ready, **kw))

    def events(self, event: QueueEvent) -> list:
        return [e for e in self.sink.entries if e.event is event]

    def state(self, agent_id: str) -> AgentState:
        return self.engine.agent(agent_id).state


def offers(actions: list) -> list[tuple[str, str]]:
    return [(a.call_id, a.agent_id) for a in actions if isinstance(a, OfferCall)]


def withdrawals(actions: list) -> list[tuple[str, str, str]]:
    return [(a.call_id, a.agent_id, a.reason) for a in actions if isinstance(a, WithdrawOffer)]


def of(actions: list, kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


# ---------------------------------------------------------------- ring-all and races

def test_ring_all_offers_all_ready_eligible_agents_and_first_answer_wins() -> None:
    h = Harness(QueueConfig("q", strategy=Strategy.RING_ALL))
    for a in ("a1", "a2", "a3"):
        h.login(0, a)
    h.login(0, "a4", {"other": 1})          # not eligible
    h.login(0, "a5", ready=False)           # not ready
    acts = h.do(1, CallerArrived("q", "c1"))
    assert offers(acts) == [("c1", "a1"), ("c1", "a2"), ("c1", "a3")]
    assert {h.state(a) for a in ("a1", "a2", "a3")} == {AgentState.RESERVED}
    acts = h.do(3, OfferAnswered("c1", "a2"))
    assert of(acts, BridgeCall) == [BridgeCall("c1", "q", "a2", Device("extension", "2"))]
    assert withdrawals(acts) == [("c1", "a1", "answered-elsewhere"),
                                 ("c1", "a3", "answered-elsewhere")]
    assert h.state("a2") is AgentState.BUSY
    assert h.state("a1") is AgentState.READY and h.state("a3") is AgentState.READY
    # the loser's answer arrives just after: it is told the offer is stale, nothing changes
    acts = h.do(3, OfferAnswered("c1", "a1"))
    assert withdrawals(acts) == [("c1", "a1", "stale")] and len(acts) == 1
    assert h.state("a1") is AgentState.READY
    assert len(h.events(QueueEvent.CONNECT)) == 1
    assert [e.agent for e in h.events(QueueEvent.RINGCANCELED)] == ["a1", "a3"]
    assert h.engine.connected_agent("c1") == "a2"


def test_ring_all_withdrawn_agent_is_free_for_the_next_caller() -> None:
    h = Harness(QueueConfig("q", strategy=Strategy.RING_ALL))
    h.login(0, "a1")
    h.login(0, "a2")
    h.do(1, CallerArrived("q", "c1"))
    h.do(1, CallerArrived("q", "c2"))        # nobody ready: both agents ring for c1
    acts = h.do(2, OfferAnswered("c1", "a1"))
    assert offers(acts) == [("c2", "a2")]     # a2 withdrawn from c1, offered c2 at once
    acts = h.do(2, OfferAnswered("c1", "a2"))  # a2's late answer to c1 must not take c1
    assert withdrawals(acts) == [("c1", "a2", "stale")]
    assert h.state("a2") is AgentState.RESERVED
    h.do(3, OfferAnswered("c2", "a2"))
    assert h.engine.connected_agent("c2") == "a2" and h.engine.connected_agent("c1") == "a1"


def test_agent_logout_while_reserved_puts_call_back_at_head() -> None:
    h = Harness(QueueConfig("q", strategy=Strategy.LINEAR))
    h.login(0, "a1")
    h.do(1, CallerArrived("q", "c1"))
    h.do(2, CallerArrived("q", "c2"))
    acts = h.do(3, AgentLoggedOut("a1"))
    assert withdrawals(acts) == [("c1", "a1", "agent-logged-out")]
    assert h.state("a1") is AgentState.LOGGED_OFF
    assert h.engine.position("c1") == 1 and h.engine.position("c2") == 2
    assert [e.data[1] for e in h.events(QueueEvent.RINGCANCELED)] == ["agent-logged-out"]
    assert h.events(QueueEvent.AGENTLOGOFF)[0].data[1] == "3.000"
    acts = h.login(4, "a2")
    assert offers(acts) == [("c1", "a2")]


def test_agent_not_ready_while_reserved_withdraws_the_offer() -> None:
    h = Harness(QueueConfig("q"))
    h.login(0, "a1")
    h.do(1, CallerArrived("q", "c1"))
    acts = h.do(2, AgentNotReady("a1", "lunch"))
    assert withdrawals(acts) == [("c1", "a1", "agent-not-ready")]
    assert h.state("a1") is AgentState.NOT_READY and h.engine.agent("a1").reason == "lunch"
    assert h.engine.position("c1") == 1
    assert h.events(QueueEvent.PAUSE)[-1].data == ("lunch",)


def test_caller_hangs_up_while_offered() -> None:
    h = Harness(QueueConfig("q"))
    h.login(0, "a1")
    h.do(10, CallerArrived("q", "c1"))
    acts = h.do(14, CallerAbandoned("c1"))
    assert withdrawals(acts) == [("c1", "a1", "caller-abandoned")]
    assert h.state("a1") is AgentState.READY
    (ab,) = h.events(QueueEvent.ABANDON)
    assert ab.call_id == "c1" and ab.data == ("1", "1", "4.000")
    assert h.engine.position("c1") is None
    acts = h.do(15, OfferAnswered("c1", "a1"))      # the agent's answer crossed the hang-up
    assert withdrawals(acts) == [("c1", "a1", "stale")]
    assert h.state("a1") is AgentState.READY and not h.events(QueueEvent.CONNECT)
    assert h.do(16, CallerAbandoned("c1")) == []    # a second hang-up is harmless


def test_answer_after_ring_timeout_is_stale_and_call_moves_on() -> None:
    h = Harness(QueueConfig("q", strategy=Strategy.LINEAR, ring_timeout_s=15))
    h.login(0, "a1")
    h.login(0, "a2")
    assert offers(h.do(1, CallerArrived("q", "c1"))) == [("c1", "a1")]
    assert h.engine.next_deadline() == 16
    acts = h.tick(16)
    assert withdrawals(acts) == [("c1", "a1", "ring-timeout")]
    # linear would pick a1 again, but a1 just missed this call: a2 gets it
    assert offers(acts) == [("c1", "a2")]
    (rna,) = h.events(QueueEvent.RINGNOANSWER)
    assert rna.agent == "a1" and rna.data == ("15.000",)
    assert withdrawals(h.do(16.5, OfferAnswered("c1", "a1"))) == [("c1", "a1", "stale")]
    assert of(h.do(17, OfferAnswered("c1", "a2")), BridgeCall)


def test_late_answer_is_stale_even_if_the_shell_missed_the_timer() -> None:
    h = Harness(QueueConfig("q", ring_timeout_s=15))
    h.login(0, "a1")
    h.do(0, CallerArrived("q", "c1"))
    acts = h.do(15.2, OfferAnswered("c1", "a1"))    # no handle_timer(15) was called
    assert withdrawals(acts) == [("c1", "a1", "ring-timeout"), ("c1", "a1", "stale")]
    assert offers(acts) == [("c1", "a1")]            # rung again: the only agent there is
    assert h.events(QueueEvent.RINGNOANSWER) and not h.events(QueueEvent.CONNECT)
    assert h.engine.connected_agent("c1") is None


def test_reject_reoffers_to_another_agent_and_single_agent_gets_it_again() -> None:
    h = Harness(QueueConfig("q", strategy=Strategy.LINEAR, max_no_answer=0))
    h.login(0, "a1")
    h.do(1, CallerArrived("q", "c1"))
    acts = h.do(2, OfferRejected("c1", "a1"))
    assert withdrawals(acts) == [("c1", "a1", "rejected")]
    assert offers(acts) == [("c1", "a1")]   # the only candidate: offered again
    h.login(3, "a2")
    acts = h.do(4, OfferRejected("c1", "a1"))
    assert offers(acts) == [("c1", "a2")]
    assert h.do(5, OfferRejected("c1", "a1")) == []   # no live offer: ignored


def test_auto_not_ready_after_repeated_missed_offers() -> None:
    h = Harness(QueueConfig("q", ring_timeout_s=10, max_no_answer=2))
    h.login(0, "a1")
    h.do(0, CallerArrived("q", "c1"))
    h.tick(10)
    assert h.state("a1") is AgentState.RESERVED and h.engine.agent("a1").missed_in_row == 1
    acts = h.tick(20)
    assert h.state("a1") is AgentState.NOT_READY
    assert h.engine.agent("a1").reason == "no-answer"
    assert AgentStateChanged("a1", AgentState.READY, AgentState.NOT_READY, "no-answer") in acts
    assert h.events(QueueEvent.PAUSE)[-1].data == ("no-answer",)
    assert h.engine.position("c1") == 1 and offers(acts) == []
    acts = h.do(30, AgentReady("a1"))
    assert offers(acts) == [("c1", "a1")] and h.engine.agent("a1").missed_in_row == 0


def test_answer_resets_the_miss_counter() -> None:
    h = Harness(QueueConfig("q", ring_timeout_s=10, max_no_answer=2))
    h.login(0, "a1")
    h.do(0, CallerArrived("q", "c1"))
    h.tick(10)
    h.do(12, OfferAnswered("c1", "a1"))
    assert h.engine.agent("a1").missed_in_row == 0


# ---------------------------------------------------------------- priority and skills

def test_vip_is_served_first_and_fifo_within_a_class() -> None:
    h = Harness(QueueConfig("q", priority_weight=0.0))
    for i, prio in enumerate((0, 0, 5, 0, 5)):
        h.do(i, CallerArrived("q", f"c{i}", priority=prio))
    assert [c.call_id for c in h.engine.waiting("q")] == ["c2", "c4", "c0", "c1", "c3"]
    served = []
    h.login(10, "a1")
    for t in range(11, 16):
        (call,) = [c for c, _ in offers(h.do(t, AgentReady("a1")))] or [None]
        if call is None:
            call = h.engine.agent("a1").call_id
        served.append(call)
        h.do(t, OfferAnswered(call, "a1"))
        h.do(t, CallEnded(call))
    assert served == ["c2", "c4", "c0", "c1", "c3"]


def test_score_grows_with_waiting_time() -> None:
    h = Harness(QueueConfig("q", priority_weight=1.0))
    h.do(0, CallerArrived("q", "old"))
    h.do(30, CallerArrived("q", "vip10", priority=10))     # score 10 + 0 < old's 30
    h.do(35, CallerArrived("q", "vip100", priority=100))   # 100 beats everyone
    assert [c.call_id for c in h.engine.waiting("q")] == ["vip100", "old", "vip10"]
    caller = h.engine.waiting("q")[1]
    assert caller.score(40, 1.0) == 40


def test_skill_levels_and_widening_over_time() -> None:
    q = QueueConfig("q", initial_level=1, widen_every_s=30, max_level=3, max_no_answer=1)
    h = Harness(q)
    h.login(0, "a2", {"q": 2})
    h.login(0, "a3", {"q": 3})
    assert offers(h.do(0, CallerArrived("q", "c1"))) == []
    assert h.engine.next_deadline() == 30
    assert offers(h.tick(29.9)) == []
    assert offers(h.tick(30)) == [("c1", "a2")]               # level 2 allowed after 30 s
    h.do(31, OfferRejected("c1", "a2"))                      # a2 missed: now not ready
    assert h.state("a3") is AgentState.READY and h.state("a2") is AgentState.NOT_READY
    assert offers(h.tick(59.9)) == []                          # a3 is level 3: not yet
    assert offers(h.tick(60)) == [("c1", "a3")]
    assert h.engine.next_deadline() == 75                      # max level: no more widening


def test_best_level_wins_over_strategy() -> None:
    h = Harness(QueueConfig("q", strategy=Strategy.LONGEST_IDLE, max_level=5,
                            initial_level=5))
    h.login(0, "novice", {"q": 4})      # idle longer, but a worse level
    h.login(10, "expert", {"q": 1})
    assert offers(h.do(11, CallerArrived("q", "c1"))) == [("c1", "expert")]


def test_caller_skill_override() -> None:
    h = Harness(QueueConfig("q"))
    h.login(0, "a1", {"q": 1})
    h.login(0, "a2", {"q": 1, "vip": 1})
    assert offers(h.do(1, CallerArrived("q", "c1", skill="vip"))) == [("c1", "a2")]


# ---------------------------------------------------------------- wrap-up and pending states

def test_wrap_up_timing() -> None:
    h = Harness(QueueConfig("q", wrapup_s=10))
    h.login(0, "a1")
    h.do(1, CallerArrived("q", "c1"))
    h.do(2, OfferAnswered("c1", "a1"))
    h.do(100, CallEnded("c1", by_agent=True))
    assert h.state("a1") is AgentState.WRAP_UP and h.engine.next_deadline() == 110
    assert offers(h.do(105, CallerArrived("q", "c2"))) == []
    assert offers(h.tick(109.99)) == []
    assert offers(h.tick(110)) == [("c2", "a1")]
    (wrap,) = h.events(QueueEvent.WRAPUP)
    assert (wrap.call_id, wrap.queue, wrap.data) == ("c1", "q", ("10.000",))
    (done,) = h.events(QueueEvent.COMPLETEAGENT)
    assert done.data == ("1.000", "98.000", "1")


def test_ready_ends_wrap_up_early_and_pending_not_ready_applies_after() -> None:
    h = Harness(QueueConfig("q", wrapup_s=30))
    h.login(0, "a1")
    h.do(0, CallerArrived("q", "c1"))
    h.do(0, OfferAnswered("c1", "a1"))
    h.do(10, CallEnded("c1"))
    h.do(15, AgentReady("a1"))
    assert h.state("a1") is AgentState.READY
    assert h.events(QueueEvent.WRAPUP)[0].data == ("5.000",)
    assert h.tick(100) == []                                   # the old wrap-up timer is void
    h.do(20, CallerArrived("q", "c2"))
    h.do(20, OfferAnswered("c2", "a1"))
    h.do(25, AgentNotReady("a1", "break"))                     # during the call: pending
    assert h.state("a1") is AgentState.BUSY
    h.do(30, CallEnded("c2"))
    h.do(32, WrapUpEnded("a1"))
    assert h.state("a1") is AgentState.NOT_READY and h.engine.agent("a1").reason == "break"


def test_logout_while_busy_takes_effect_after_the_call() -> None:
    h = Harness(QueueConfig("q"))
    h.login(0, "a1")
    h.do(0, CallerArrived("q", "c1"))
    h.do(0, OfferAnswered("c1", "a1"))
    h.do(5, AgentLoggedOut("a1"))
    assert h.state("a1") is AgentState.BUSY
    h.do(9, CallTransferred("c1", "2000"))
    assert h.state("a1") is AgentState.LOGGED_OFF
    (tr,) = h.events(QueueEvent.TRANSFER)
    assert tr.data == ("2000", "0.000", "9.000", "1")
    assert h.events(QueueEvent.AGENTLOGOFF)


# ---------------------------------------------------------------- limits and overflow

def test_max_length_overflow() -> None:
    vm = OverflowTarget("voicemail", "sales-vm")
    h = Harness(QueueConfig("q", max_len=2, overflow=vm))
    h.do(0, CallerArrived("q", "c1"))
    h.do(0, CallerArrived("q", "c2"))
    acts = h.do(1, CallerArrived("q", "c3"))
    assert acts == [Overflow("c3", "q", "full", vm)]
    assert h.events(QueueEvent.FULL)[0].data == ("voicemail:sales-vm",)
    assert h.engine.position("c3") is None


def test_max_wait_overflows_to_another_queue_keeping_priority() -> None:
    h = Harness(QueueConfig("q1", max_wait_s=60, overflow=OverflowTarget("queue", "q2")),
                QueueConfig("q2"))
    h.do(0, CallerArrived("q1", "c1", priority=7))
    assert h.engine.next_deadline() == 60
    acts = h.tick(60)
    assert Overflow("c1", "q1", "timeout", OverflowTarget("queue", "q2")) in acts
    (ex,) = h.events(QueueEvent.EXITWITHTIMEOUT)
    assert ex.queue == "q1" and ex.data == ("1", "1", "60.000", "queue:q2")
    assert [c.call_id for c in h.engine.waiting("q2")] == ["c1"]
    assert h.engine.waiting("q2")[0].priority == 7
    assert of(acts, PlayMusic) == [PlayMusic("c1", "default")]
    h.login(61, "a1", {"q2": 1})
    assert h.engine.agent("a1").call_id == "c1"


def test_max_wait_while_ringing_lets_the_ring_finish() -> None:
    h = Harness(QueueConfig("q", max_wait_s=60, ring_timeout_s=15,
                            overflow=OverflowTarget("ivr", "menu")))
    h.do(0, CallerArrived("q", "c1"))
    h.do(0, CallerArrived("q", "c2"))
    h.login(55, "a1")
    h.login(55, "a2")
    assert h.tick(60.5) == []
    assert of(h.do(62, OfferAnswered("c1", "a1")), BridgeCall)   # c1 answered after 60 s
    acts = h.tick(70)                                             # c2's ring fails: leave
    assert Overflow("c2", "q", "timeout", OverflowTarget("ivr", "menu")) in acts
    assert [e.call_id for e in h.events(QueueEvent.EXITWITHTIMEOUT)] == ["c2"]


def test_overflow_loop_is_bounded() -> None:
    h = Harness(QueueConfig("a", max_len=1, overflow=OverflowTarget("queue", "b")),
                QueueConfig("b", max_len=1, overflow=OverflowTarget("queue", "a")))
    h.do(0, CallerArrived("a", "x"))
    h.do(0, CallerArrived("b", "y"))
    acts = h.do(1, CallerArrived("a", "z"))
    assert len(of(acts, Overflow)) > 2 and h.engine.position("z") is None


@pytest.mark.parametrize(("rule", "logged_in", "ready", "joins"), [
    (EmptyRule.NEVER, False, False, True),
    (EmptyRule.NO_AGENT_LOGGED_IN, False, False, False),
    (EmptyRule.NO_AGENT_LOGGED_IN, True, False, True),
    (EmptyRule.NO_AGENT_AVAILABLE, True, False, False),
    (EmptyRule.NO_AGENT_AVAILABLE, True, True, True),
])
def test_join_empty_rules(rule: EmptyRule, logged_in: bool, ready: bool, joins: bool) -> None:
    h = Harness(QueueConfig("q", join_empty=rule), QueueConfig("other"))
    h.login(0, "x", {"other": 1})   # an agent of another queue never counts
    if logged_in:
        h.login(0, "a1", ready=ready)
        h.do(0, CallerArrived("other", "busy-x"))   # keep agents busy so nothing is offered
        h.do(0, OfferAnswered("busy-x", "x"))
        if ready:
            h.do(0, CallerArrived("q", "busy-a"))
            h.do(0, OfferAnswered("busy-a", "a1"))
    acts = h.do(1, CallerArrived("q", "c1"))
    assert (h.engine.position("c1") == 1 or h.engine.agent("a1").call_id == "c1") if joins \
        else acts == [Overflow("c1", "q", "join-empty", None)]
    assert bool(h.events(QueueEvent.JOINEMPTY)) is not joins


def test_leave_when_empty() -> None:
    h = Harness(QueueConfig("q", leave_empty=EmptyRule.NO_AGENT_AVAILABLE,
                            overflow=OverflowTarget("voicemail", "vm")))
    h.login(0, "a1")
    h.do(0, CallerArrived("q", "c0"))
    h.do(0, OfferAnswered("c0", "a1"))
    h.do(1, CallerArrived("q", "c1"))
    h.do(2, CallerArrived("q", "c2"))
    h.do(3, CallbackRequested("c2", "555"))
    assert h.do(4, AgentNotReady("a1", "break")) == []   # busy: pending, still available
    acts = h.do(5, CallEnded("c0"))                        # now not ready: queue empty
    assert Overflow("c1", "q", "empty", OverflowTarget("voicemail", "vm")) in acts
    assert [e.call_id for e in h.events(QueueEvent.EXITEMPTY)] == ["c1"]
    assert h.engine.position("c2") == 1                    # the callback keeps its place


# ---------------------------------------------------------------- callback, MOH, announcements

def test_callback_keeps_the_place() -> None:
    h = Harness(QueueConfig("q"))
    h.do(0, CallerArrived("q", "c1"))
    h.do(5, CallerArrived("q", "c2"))
    acts = h.do(20, CallbackRequested("c1", "+8613800000000"))
    assert CallbackScheduled("c1", "q", "+8613800000000", 1) in acts
    assert StopMusic("c1") in acts
    assert h.do(21, CallerAbandoned("c1")) == []     # the caller's leg hangs up: no abandon
    assert h.engine.position("c1") == 1
    acts = h.login(60, "a1")
    (offer,) = of(acts, OfferCall)
    assert offer.call_id == "c1" and offer.callback_number == "+8613800000000"
    acts = h.do(62, OfferAnswered("c1", "a1"))
    assert of(acts, PlaceCallback) == [PlaceCallback("c1", "q", "a1", Device("extension", "1"),
                                                     "+8613800000000")]
    assert not of(acts, BridgeCall)
    assert h.events(QueueEvent.CONNECT)[0].data[3] == "callback"
    h.do(100, CallEnded("c1"))
    kpi = queue_kpis(h.sink.entries, now=100)
    assert (kpi.callbacks, kpi.abandoned, kpi.answered, kpi.waiting) == (1, 0, 0, 1)


def test_music_on_hold_starts_and_stops() -> None:
    h = Harness(QueueConfig("q", moh_class="jazz"))
    assert PlayMusic("c1", "jazz") in h.do(0, CallerArrived("q", "c1"))
    h.login(1, "a1")
    acts = h.do(2, OfferAnswered("c1", "a1"))
    assert acts.index(StopMusic("c1")) < acts.index(of(acts, BridgeCall)[0])


def test_position_and_expected_wait_announcements() -> None:
    h = Harness(QueueConfig("q", announce_frequency_s=30, default_aht_s=180))
    for a in ("a1", "a2"):
        h.login(0, a)
    for i in range(2):                              # both agents busy
        h.do(0, CallerArrived("q", f"b{i}"))
        h.do(0, OfferAnswered(f"b{i}", f"a{i + 1}"))
    first = h.do(1, CallerArrived("q", "c1"))
    first += h.do(2, CallerArrived("q", "c2"))                 # fires c1's entry announcement
    first += h.do(3, CallerArrived("q", "c3", priority=1000))  # fires c2's
    first += h.tick(3)                                          # c3's
    assert of(first, Announce) == [Announce("c1", "q", 1, 90.0),   # 1 × 180 s / 2 agents
                                   Announce("c2", "q", 2, 180.0),
                                   Announce("c3", "q", 1, 90.0)]   # the VIP went first
    assert of(h.tick(30.9), Announce) == []
    acts = h.tick(33)                                           # one period later
    assert of(acts, Announce) == [Announce("c1", "q", 2, 180.0),
                                  Announce("c2", "q", 3, 270.0),
                                  Announce("c3", "q", 1, 90.0)]
    assert h.engine.expected_wait_s("c1") == 180.0
    h.do(40, CallEnded("b0"))                        # handled: AHT estimate is now 40 s
    assert h.engine.expected_wait_s("c1") == pytest.approx(2 * 40 / 2)


def test_announcement_without_staff_says_unknown_wait() -> None:
    h = Harness(QueueConfig("q", announce_frequency_s=60, announce_holdtime=True))
    h.do(0, CallerArrived("q", "c1"))
    assert of(h.tick(0), Announce) == [Announce("c1", "q", 1, None)]


# ---------------------------------------------------------------- API misuse and determinism

def test_errors() -> None:
    h = Harness(QueueConfig("q"))
    h.login(0, "a1")
    with pytest.raises(AgentStateError):
        h.login(1, "a1")
    with pytest.raises(AcdError):
        h.do(1, AgentReady("ghost"))
    with pytest.raises(AcdError):
        h.do(1, CallerArrived("nope", "c1"))
    h.do(1, CallerArrived("q", "c1"))
    with pytest.raises(AcdError):
        h.do(1, CallerArrived("q", "c1"))
    h.do(1, AgentLoggedOut("a1"))
    with pytest.raises(AgentStateError):
        h.do(2, AgentLoggedOut("a1"))
    with pytest.raises(AgentStateError):
        h.do(2, AgentReady("a1"))
    with pytest.raises(ValueError):
        AcdEngine([QueueConfig("q"), QueueConfig("q")], Random(1))


def _scripted_log(seed: int) -> list:
    h = Harness(QueueConfig("q", strategy=Strategy.RANDOM, wrapup_s=3), seed=seed)
    for i in range(6):
        h.login(0, f"a{i}")
    for i in range(40):
        acts = h.do(i * 2.0, CallerArrived("q", f"c{i}"))
        for call, agent in offers(acts + h.tick(i * 2.0)):
            h.do(i * 2.0, OfferAnswered(call, agent))
        if i >= 3:
            h.do(i * 2.0 + 1, CallEnded(f"c{i - 3}"))
        h.tick(i * 2.0 + 1.5)
    return [e.to_line() for e in h.sink.entries]


def test_same_seed_same_log_and_different_seed_differs() -> None:
    assert _scripted_log(3) == _scripted_log(3)
    assert _scripted_log(3) != _scripted_log(4)


def test_agent_on_an_outside_number_through_a_trunk() -> None:
    h = Harness(QueueConfig("q"))
    mobile = Device("external", "+8613912345678")
    h.do(0, AgentLoggedIn("home", mobile, {"q": 1}))
    (offer,) = of(h.do(1, CallerArrived("q", "c1")), OfferCall)
    assert offer.device == mobile
    assert h.events(QueueEvent.AGENTLOGIN)[0].data == ("external:+8613912345678",)
    with pytest.raises(ValueError):
        Device("sip", "x")
    with pytest.raises(ValueError):
        Device("extension", "")


def test_late_timer_handling_does_not_replay_missed_announcements() -> None:
    h = Harness(QueueConfig("q", announce_frequency_s=10))
    h.do(0, CallerArrived("q", "c1"))
    acts = h.engine.handle_timer(95.0)          # the shell was late by 95 s
    assert len(of(acts, Announce)) == 1          # not one per missed period
    assert h.engine.next_deadline() == 105.0


def test_bad_inputs_and_configs() -> None:
    h = Harness(QueueConfig("q"))
    with pytest.raises(AcdError):
        h.engine.handle(0, object())  # type: ignore[arg-type]
    for bad in ({"ring_timeout_s": 0}, {"max_len": -1}, {"widen_every_s": 0},
                {"max_wait_s": 0}, {"announce_frequency_s": -1}):
        with pytest.raises(ValueError):
            QueueConfig("q", **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        QueueConfig("a|b")
    with pytest.raises(ValueError):
        OverflowTarget("pstn", "x")
    with pytest.raises(AcdError):
        h.do(0, CallbackRequested("nobody", "1"))
