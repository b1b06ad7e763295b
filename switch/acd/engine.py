"""AcdEngine: the sans-IO ACD core (DESIGN.md "Call model", IVR_CTI_ACD.md §C.8).

The engine takes inputs (frozen dataclasses: a caller arrives or abandons, an agent logs in,
answers, …) with the time ``now`` and returns a list of actions (offer this call to that agent
on that device, withdraw an offer, bridge, announce, play music, overflow, log this entry…). It
never does I/O, never reads the clock, and draws randomness only from the injected
``random.Random``. Timers are deadlines: the shell arms one timer at :meth:`next_deadline` and
calls :meth:`handle_timer` (the aioquic pattern, STYLE.md §4.3).

Rules:

* Rule 1 (one winner): a call may *ring* at several agents (ring-all), but the first
  :class:`OfferAnswered` wins; in the same step every other offer of that call is withdrawn
  (``WithdrawOffer`` + RINGCANCELED) and those agents return to ready. Any later answer for
  the call gets ``WithdrawOffer(reason="stale")`` and changes nothing: a call is never
  connected to two agents and never answered twice.
* Rule 2 (no loss): a caller stays in its queue until it is connected, abandons, overflows or
  leaves empty. A failed or withdrawn offer (reject, ring timeout, agent logged out or went
  not ready while ringing) leaves the caller at its place (``queue.py`` Rule 2).
* Rule 3 (log): every transition returns a ``LogEntry`` action (see :mod:`switch.acd.log`).
* Rule 4 (max wait while ringing): if max wait passes while the call rings at an agent, the
  ring is allowed to finish; the caller leaves only if that offer fails.
* Rule 5 (misses): an agent who missed a call is not offered the same call again while another
  candidate exists; ``max_no_answer`` consecutive misses make the agent not ready.
* Rule 6 (announcements): with ``announce_frequency_s`` set, the first position/EWT
  announcement is a timer due at entry, then one every period while the caller is not ringing.
* Rule 7 (callback): a callback entry keeps the caller's place without a live leg; when it
  reaches an agent, the agent is offered first and ``PlaceCallback`` asks the shell to dial
  the customer ("agent-first", IVR_CTI_ACD.md §C.4). It is logged CALLBACK, never ABANDON.
* Rule 8 (time order): an input at ``now`` first fires every timer due at or before ``now``,
  so the outcome does not depend on the shell's timer jitter: an answer that arrives after
  the ring deadline is stale even if the shell has not called :meth:`handle_timer` yet.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from random import Random
from typing import Any

from switch.acd.agent import (
    AcdError,
    Agent,
    AgentEffect,
    AgentInput,
    AgentState,
    AgentStateError,
    transition,
)
from switch.acd.engine_ops import QueueOps
from switch.acd.events import (
    AcdAction,
    AcdInput,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentNotReady,
    AgentReady,
    AgentStateChanged,
    Announce,
    BridgeCall,
    CallbackQueued,
    CallbackRequested,
    CallbackScheduled,
    CallEnded,
    CallerAbandoned,
    CallerArrived,
    CallPickedUp,
    CallTransferred,
    LogEntry,
    OfferAnswered,
    OfferCall,
    OfferRejected,
    Overflow,
    PlaceCallback,
    PlayMusic,
    PriorityChanged,
    StopMusic,
    WithdrawOffer,
    WrapUpEnded,
)
from switch.acd.log import NONE, QueueEvent, QueueLogEntry, fmt_s
from switch.acd.queue import Caller, Queue, QueueConfig, estimate_wait_s
from switch.acd.strategy import select_agents

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- engine


@dataclass(slots=True)
class _Connected:
    queue: str
    agent_id: str
    hold_s: float
    connect_time: float
    orig_position: int


@dataclass(slots=True)
class _Offer:
    queue: str
    deadline: float
    started: float


@dataclass(slots=True)
class _Work:
    """The actions of one input (log entries included, in emission order), and what changed:
    ``full`` when an agent became ready (every caller must be reconsidered), ``fresh`` for
    callers that may newly match (entered, widened, or lost their offer)."""

    actions: list[AcdAction] = field(default_factory=list)
    full: bool = False
    fresh: list[Caller] = field(default_factory=list)


_MAX_OVERFLOW_HOPS = 8


class AcdEngine(QueueOps):
    """The ACD state machine: queues, agents, offers and timers.

    Args:
        queues: queue configurations.
        rng: seeded random source (used by the random strategies only).
    """

    def __init__(self, queues: Iterable[QueueConfig], rng: Random) -> None:
        self.queues: dict[str, Queue] = {}
        for config in queues:
            if config.name in self.queues:
                raise ValueError(f"duplicate queue {config.name}")
            self.queues[config.name] = Queue(config)
        self._queue_order = sorted(self.queues.values(), key=lambda q: (-q.config.weight, q.name))
        self.agents: dict[str, Agent] = {}
        self._rng = rng
        self._ready: dict[str, Agent] = {}
        self._ready_by_skill: dict[str, dict[str, Agent]] = {}
        self._callers: dict[str, Caller] = {}
        self._connected: dict[str, _Connected] = {}
        self._offers: dict[tuple[str, str], _Offer] = {}
        self._missed: dict[str, set[str]] = {}
        self._timers: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self._next_position = 0
        self._handled: dict[str, tuple[float, int]] = {}
        self._scheduled: dict[str, CallbackQueued] = {}
        self._handlers: dict[type, Callable[[float, Any, _Work], None]] = {
            CallerArrived: self._on_arrived,
            CallerAbandoned: self._on_abandoned,
            CallbackRequested: self._on_callback,
            AgentLoggedIn: self._on_login,
            AgentLoggedOut: self._on_logout,
            AgentReady: self._on_ready,
            AgentNotReady: self._on_not_ready,
            OfferAnswered: self._on_answered,
            OfferRejected: self._on_rejected,
            CallEnded: self._on_call_ended,
            CallTransferred: self._on_call_ended,
            WrapUpEnded: self._on_wrapup_ended,
            CallPickedUp: self._on_pickup,
            PriorityChanged: self._on_priority,
            CallbackQueued: self._on_callback_queued,
        }

    # ------------------------------------------------------------------ public API

    def handle(self, now: float, event: AcdInput) -> list[AcdAction]:
        """Apply one input at time ``now`` and return the resulting actions.

        Raises:
            AcdError: misuse (unknown queue or agent, duplicate call id).
            AgentStateError: an agent request the state table refuses (e.g. log in twice).
        """
        handler = self._handlers.get(type(event))
        if handler is None:
            raise AcdError(f"not an ACD input: {event!r}")
        work = _Work()
        self._fire_due(now, work)  # Rule 8: timers due at or before now fire first
        handler(now, event, work)
        self._dispatch(now, work)
        return work.actions

    def next_deadline(self) -> float | None:
        """The earliest pending timer, or None."""
        while self._timers and not self._timer_valid(self._timers[0]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def handle_timer(self, now: float) -> list[AcdAction]:
        """Fire every timer due at ``now`` (ring timeouts, wrap-up ends, max waits,
        announcements, skill widening) and return the actions."""
        work = _Work()
        self._fire_due(now, work)
        self._dispatch(now, work)
        return work.actions

    def _fire_due(self, now: float, work: _Work) -> None:
        while self._timers and self._timers[0][0] <= now:
            item = heapq.heappop(self._timers)
            if self._timer_valid(item):
                self._fire(now, item, work)

    def position(self, call_id: str) -> int | None:
        """1-based position of a waiting caller in its queue, or None."""
        caller = self._callers.get(call_id)
        return None if caller is None else self.queues[caller.queue].position(call_id)

    def expected_wait_s(self, call_id: str) -> float | None:
        """Expected remaining wait of a waiting caller (see ``queue.estimate_wait_s``)."""
        caller = self._callers.get(call_id)
        if caller is None:
            return None
        queue = self.queues[caller.queue]
        staffed, ready = queue.staffing(self.agents.values())
        return estimate_wait_s(queue.position(call_id), staffed, ready, self._aht_s(queue))

    def waiting(self, queue: str) -> list[Caller]:
        """Callers of ``queue`` in service order."""
        return self._queue(queue).callers()

    def agent(self, agent_id: str) -> Agent:
        """The agent record (read-only by convention)."""
        try:
            return self.agents[agent_id]
        except KeyError:
            raise AcdError(f"unknown agent {agent_id}") from None

    def connected_agent(self, call_id: str) -> str | None:
        """The agent a call is connected to, if any."""
        record = self._connected.get(call_id)
        return None if record is None else record.agent_id

    # ------------------------------------------------------------------ helpers

    def _queue(self, name: str) -> Queue:
        try:
            return self.queues[name]
        except KeyError:
            raise AcdError(f"unknown queue {name}") from None

    def _log(self, work: _Work, now: float, queue: str, call_id: str, agent: str,
             event: QueueEvent, *data: str) -> None:
        work.actions.append(LogEntry(QueueLogEntry(now, queue, call_id, agent, event, data)))

    def _push_timer(self, when: float, kind: str, key: Any) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (when, self._seq, kind, key))

    def _aht_s(self, queue: Queue) -> float:
        total, count = self._handled.get(queue.name, (0.0, 0))
        return total / count if count else queue.config.default_aht_s

    def _set_state(self, now: float, agent: Agent, agent_input: AgentInput, work: _Work,
                   reason: str = "") -> AgentEffect | None:
        """Run one agent transition: update the record, log it, return the side effect."""
        effect, new = transition(agent.state, agent_input)
        old, old_reason = agent.state, agent.reason
        if new is AgentState.NOT_READY and agent_input is not AgentInput.SET_NOT_READY:
            reason = reason or "login"
        if new is old and (new is not AgentState.NOT_READY or reason == old_reason):
            return effect
        agent.state, agent.reason, agent.state_since = new, reason, now
        if new is AgentState.READY:
            work.full = True
            self._ready[agent.agent_id] = agent
            for skill in agent.skills:
                self._ready_by_skill.setdefault(skill, {})[agent.agent_id] = agent
        elif old is AgentState.READY:
            del self._ready[agent.agent_id]
            for skill in agent.skills:
                del self._ready_by_skill[skill][agent.agent_id]
        if new is AgentState.READY and old is not AgentState.RESERVED:
            agent.idle_since = now
        call = agent.call_id or NONE
        self._log(work, now, NONE, call, agent.agent_id, QueueEvent.AGENTSTATE,
                  old.value, new.value, reason)
        if new is AgentState.NOT_READY and old is not AgentState.LOGGED_OFF:
            self._log(work, now, NONE, NONE, agent.agent_id, QueueEvent.PAUSE, reason)
        elif old is AgentState.NOT_READY and new is AgentState.READY:
            self._log(work, now, NONE, NONE, agent.agent_id, QueueEvent.UNPAUSE)
        work.actions.append(AgentStateChanged(agent.agent_id, old, new, reason))
        return effect

    # ------------------------------------------------------------------ caller inputs

    def _on_arrived(self, now: float, ev: CallerArrived, work: _Work) -> None:
        if ev.call_id in self._callers or ev.call_id in self._connected:
            raise AcdError(f"call {ev.call_id} is already queued or connected")
        self._enter(now, self._queue(ev.queue), ev.call_id, ev.priority, ev.skill, ev.level,
                    work, hops=0, max_wait_s=ev.max_wait_s)

    def _enter(self, now: float, queue: Queue, call_id: str, priority: int, skill: str,
               level: int | None, work: _Work, hops: int,
               max_wait_s: float | None = None) -> None:
        cfg = queue.config
        max_wait_s = cfg.max_wait_s if max_wait_s is None else max_wait_s
        if queue.is_full() or queue.is_empty(self.agents.values(), cfg.join_empty):
            event = QueueEvent.FULL if queue.is_full() else QueueEvent.JOINEMPTY
            target = cfg.overflow
            self._log(work, now, queue.name, call_id, NONE, event,
                      target.label() if target else "")
            reason = "full" if event is QueueEvent.FULL else "join-empty"
            self._overflow(now, queue, call_id, priority, reason, work, hops)
            return
        self._seq += 1
        caller = Caller(call_id, queue.name, priority, now, self._seq,
                        skill=skill or cfg.required_skill,
                        initial_level=level if level is not None else cfg.initial_level)
        caller.level = queue.allowed_level(caller, now)
        caller.orig_position = queue.insert(caller)
        self._callers[call_id] = caller
        work.fresh.append(caller)
        self._log(work, now, queue.name, call_id, NONE, QueueEvent.ENTERQUEUE,
                  str(priority), str(caller.orig_position))
        work.actions.append(PlayMusic(call_id, cfg.moh_class))
        if max_wait_s is not None:
            self._push_timer(now + max_wait_s, "maxwait", (call_id, caller.seq))
        if cfg.announce_frequency_s is not None:
            self._push_timer(now, "announce", (call_id, caller.seq))
        widen = queue.next_widening(caller, now)
        if widen is not None:
            self._push_timer(widen, "widen", (call_id, caller.seq))

    def _overflow(self, now: float, queue: Queue, call_id: str, priority: int, reason: str,
                  work: _Work, hops: int) -> None:
        target = queue.config.overflow
        work.actions.append(Overflow(call_id, queue.name, reason, target))
        if target is not None and target.kind == "queue":
            if target.target not in self.queues or hops >= _MAX_OVERFLOW_HOPS:
                logger.warning("overflow of %s from %s to queue %s impossible", call_id,
                               queue.name, target.target)
                return
            self._enter(now, self.queues[target.target], call_id, priority, "", None, work,
                        hops + 1)

    def _leave(self, now: float, caller: Caller, work: _Work) -> int:
        """Remove a caller from its queue; return the position it had."""
        self._callers.pop(caller.call_id)
        self._missed.pop(caller.call_id, None)
        _, position = self.queues[caller.queue].remove(caller.call_id)
        return position

    def _exit(self, now: float, caller: Caller, event: QueueEvent, reason: str,
              work: _Work) -> None:
        """Caller leaves by timeout or empty queue, to the overflow target."""
        queue = self.queues[caller.queue]
        position = self._leave(now, caller, work)
        target = queue.config.overflow
        self._log(work, now, queue.name, caller.call_id, NONE, event, str(position),
                  str(caller.orig_position), fmt_s(now - caller.enter_time),
                  target.label() if target else "")
        work.actions.append(StopMusic(caller.call_id))
        self._overflow(now, queue, caller.call_id, caller.priority, reason, work, 0)

    def _on_abandoned(self, now: float, ev: CallerAbandoned, work: _Work) -> None:
        if ev.call_id in self._connected:  # the hang-up raced the answer: a normal call end
            self._on_call_ended(now, CallEnded(ev.call_id), work)
            return
        caller = self._callers.get(ev.call_id)
        if caller is None or caller.callback_number is not None:
            return  # already gone (overflowed, exited), or its place is held by a callback
        self._withdraw_all(now, caller, "caller-abandoned", work)
        position = self._leave(now, caller, work)
        self._log(work, now, caller.queue, caller.call_id, NONE, QueueEvent.ABANDON,
                  str(position), str(caller.orig_position), fmt_s(now - caller.enter_time))

    def _on_callback(self, now: float, ev: CallbackRequested, work: _Work) -> None:
        caller = self._callers.get(ev.call_id)
        if caller is None:
            raise AcdError(f"call {ev.call_id} is not waiting in a queue")
        if caller.callback_number is not None:
            return
        self._withdraw_all(now, caller, "callback", work)
        caller.callback_number = ev.number
        position = self.queues[caller.queue].position(caller.call_id)
        self._log(work, now, caller.queue, caller.call_id, NONE, QueueEvent.CALLBACK,
                  str(position), fmt_s(now - caller.enter_time), ev.number)
        work.actions.append(StopMusic(caller.call_id))
        work.actions.append(CallbackScheduled(caller.call_id, caller.queue, ev.number, position))

    # ------------------------------------------------------------------ agent inputs

    def _on_login(self, now: float, ev: AgentLoggedIn, work: _Work) -> None:
        agent = self.agents.get(ev.agent_id)
        if agent is not None and agent.state is not AgentState.LOGGED_OFF:
            raise AgentStateError(agent.state, AgentInput.LOGIN)
        if "|" in ev.agent_id or not ev.agent_id:
            raise AcdError(f"bad agent id {ev.agent_id!r}")
        if ev.position is None:
            self._next_position += 1
            position = self._next_position
        else:
            position = ev.position
            self._next_position = max(self._next_position, position)
        if agent is None:
            agent = Agent(ev.agent_id, ev.device, dict(ev.skills), position, ev.weight)
            self.agents[ev.agent_id] = agent
        else:
            agent.device, agent.skills, agent.position = ev.device, dict(ev.skills), position
            agent.weight = ev.weight
        agent.login_time, agent.missed_in_row, agent.pending = now, 0, None
        self._log(work, now, NONE, NONE, agent.agent_id, QueueEvent.AGENTLOGIN,
                  f"{ev.device.kind}:{ev.device.address}")
        self._set_state(now, agent, AgentInput.LOGIN, work)
        if ev.ready:
            self._set_state(now, agent, AgentInput.SET_READY, work)

    def _logged_off(self, now: float, agent: Agent, work: _Work) -> None:
        self._log(work, now, NONE, NONE, agent.agent_id, QueueEvent.AGENTLOGOFF,
                  f"{agent.device.kind}:{agent.device.address}", fmt_s(now - agent.login_time))
        self._check_leave_empty(now, work)

    def _on_logout(self, now: float, ev: AgentLoggedOut, work: _Work) -> None:
        agent = self.agent(ev.agent_id)
        offered = agent.call_id if agent.state is AgentState.RESERVED else None
        if agent.state is AgentState.WRAP_UP:
            self._finish_wrapup(now, agent, work)
        effect = self._set_state(now, agent, AgentInput.LOGOUT, work)
        if effect is AgentEffect.CANCEL_OFFER and offered is not None:
            self._withdraw_one(now, offered, agent, "agent-logged-out", work)
        if effect is AgentEffect.SET_PENDING:
            agent.pending, agent.pending_reason = AgentState.LOGGED_OFF, ""
            return
        agent.wrapup_until = None
        self._logged_off(now, agent, work)

    def _on_ready(self, now: float, ev: AgentReady, work: _Work) -> None:
        agent = self.agent(ev.agent_id)
        if agent.state is AgentState.WRAP_UP:
            self._finish_wrapup(now, agent, work)
        effect = self._set_state(now, agent, AgentInput.SET_READY, work)
        if effect is AgentEffect.CLEAR_PENDING:
            agent.pending, agent.pending_reason = None, ""
        if agent.state is AgentState.READY:
            agent.missed_in_row = 0

    def _on_not_ready(self, now: float, ev: AgentNotReady, work: _Work) -> None:
        agent = self.agent(ev.agent_id)
        offered = agent.call_id if agent.state is AgentState.RESERVED else None
        effect = self._set_state(now, agent, AgentInput.SET_NOT_READY, work, ev.reason)
        if effect is AgentEffect.CANCEL_OFFER and offered is not None:
            self._withdraw_one(now, offered, agent, "agent-not-ready", work)
        elif effect is AgentEffect.SET_PENDING:
            agent.pending, agent.pending_reason = AgentState.NOT_READY, ev.reason
        self._check_leave_empty(now, work)

    def _on_wrapup_ended(self, now: float, ev: WrapUpEnded, work: _Work) -> None:
        agent = self.agent(ev.agent_id)
        if agent.state is not AgentState.WRAP_UP:
            raise AgentStateError(agent.state, AgentInput.WRAPUP_END)
        self._end_wrapup(now, agent, work)

    def _check_leave_empty(self, now: float, work: _Work) -> None:
        for queue in self._queue_order:
            rule = queue.config.leave_empty
            if not len(queue) or not queue.is_empty(self.agents.values(), rule):
                continue
            for caller in queue.callers():
                if caller.callback_number is None and not caller.offered_to:
                    self._exit(now, caller, QueueEvent.EXITEMPTY, "empty", work)

    # ------------------------------------------------------------------ offers and calls

    def _on_answered(self, now: float, ev: OfferAnswered, work: _Work) -> None:
        agent = self.agent(ev.agent_id)
        offer = self._offers.pop((ev.call_id, ev.agent_id), None)
        if offer is None:  # late, duplicate or lost race: Rule 1
            work.actions.append(WithdrawOffer(ev.call_id, agent.agent_id, agent.device, "stale"))
            return
        caller = self._callers[ev.call_id]
        caller.offered_to.discard(agent.agent_id)
        self._set_state(now, agent, AgentInput.ANSWER, work)
        agent.missed_in_row = 0
        self._withdraw_all(now, caller, "answered-elsewhere", work)
        self._leave(now, caller, work)
        queue = self.queues[caller.queue]
        hold = now - caller.enter_time
        kind = "callback" if caller.callback_number is not None else "live"
        self._log(work, now, queue.name, caller.call_id, agent.agent_id, QueueEvent.CONNECT,
                  fmt_s(hold), fmt_s(now - offer.started),
                  f"{agent.device.kind}:{agent.device.address}", kind)
        agent.calls_answered[queue.name] = agent.calls_answered.get(queue.name, 0) + 1
        agent.call_queue = queue.name
        self._connected[caller.call_id] = _Connected(queue.name, agent.agent_id, hold, now,
                                                     caller.orig_position)
        if caller.callback_number is None:
            work.actions.append(StopMusic(caller.call_id))
            work.actions.append(BridgeCall(caller.call_id, queue.name, agent.agent_id,
                                           agent.device))
        else:
            work.actions.append(PlaceCallback(caller.call_id, queue.name, agent.agent_id,
                                              agent.device, caller.callback_number))

    def _on_rejected(self, now: float, ev: OfferRejected, work: _Work) -> None:
        agent = self.agent(ev.agent_id)
        if (ev.call_id, ev.agent_id) in self._offers:
            self._missed_offer(now, ev.call_id, agent, AgentInput.REJECT, "rejected", work)

    def _missed_offer(self, now: float, call_id: str, agent: Agent, agent_input: AgentInput,
                      reason: str, work: _Work) -> None:
        """Reject or ring timeout: log it, count the miss, maybe auto not-ready (Rule 5)."""
        offer = self._offers.pop((call_id, agent.agent_id))
        caller = self._callers[call_id]
        caller.offered_to.discard(agent.agent_id)
        self._missed.setdefault(call_id, set()).add(agent.agent_id)
        work.actions.append(WithdrawOffer(call_id, agent.agent_id, agent.device, reason))
        self._log(work, now, offer.queue, call_id, agent.agent_id, QueueEvent.RINGNOANSWER,
                  fmt_s(now - offer.started))
        self._set_state(now, agent, agent_input, work)
        agent.call_id = None
        agent.missed_in_row += 1
        limit = self.queues[offer.queue].config.max_no_answer
        if limit and agent.missed_in_row >= limit:
            reason = self.queues[offer.queue].config.auto_not_ready_reason
            self._set_state(now, agent, AgentInput.SET_NOT_READY, work, reason)
            self._check_leave_empty(now, work)
        self._after_offer_failed(now, caller, work)

    def _after_offer_failed(self, now: float, caller: Caller, work: _Work) -> None:
        if caller.timed_out and not caller.offered_to and caller.call_id in self._callers:
            self._exit(now, caller, QueueEvent.EXITWITHTIMEOUT, "timeout", work)

    def _withdraw_one(self, now: float, call_id: str, agent: Agent, reason: str,
                      work: _Work) -> None:
        """Withdraw one offer whose agent state was already changed by the caller."""
        offer = self._offers.pop((call_id, agent.agent_id))
        caller = self._callers[call_id]
        caller.offered_to.discard(agent.agent_id)
        work.fresh.append(caller)
        agent.call_id = None
        work.actions.append(WithdrawOffer(call_id, agent.agent_id, agent.device, reason))
        self._log(work, now, offer.queue, call_id, agent.agent_id, QueueEvent.RINGCANCELED,
                  fmt_s(now - offer.started), reason)
        self._after_offer_failed(now, caller, work)

    def _withdraw_all(self, now: float, caller: Caller, reason: str, work: _Work) -> None:
        """Withdraw every outstanding offer of a caller; the agents return to ready."""
        for agent_id in sorted(caller.offered_to):
            agent = self.agents[agent_id]
            offer = self._offers.pop((caller.call_id, agent_id))
            work.actions.append(WithdrawOffer(caller.call_id, agent_id, agent.device, reason))
            self._log(work, now, offer.queue, caller.call_id, agent_id,
                      QueueEvent.RINGCANCELED, fmt_s(now - offer.started), reason)
            self._set_state(now, agent, AgentInput.WITHDRAW, work)
            agent.call_id = None
        caller.offered_to.clear()

    def _on_call_ended(self, now: float, ev: CallEnded | CallTransferred, work: _Work) -> None:
        record = self._connected.pop(ev.call_id, None)
        if record is None:
            return  # the far end raced us (e.g. both legs hung up); nothing is connected
        agent = self.agents[record.agent_id]
        talk = fmt_s(now - record.connect_time)
        if isinstance(ev, CallTransferred):
            self._log(work, now, record.queue, ev.call_id, agent.agent_id, QueueEvent.TRANSFER,
                      ev.target, fmt_s(record.hold_s), talk, str(record.orig_position))
        else:
            event = QueueEvent.COMPLETEAGENT if ev.by_agent else QueueEvent.COMPLETECALLER
            self._log(work, now, record.queue, ev.call_id, agent.agent_id, event,
                      fmt_s(record.hold_s), talk, str(record.orig_position))
        total, count = self._handled.get(record.queue, (0.0, 0))
        wrapup_s = self.queues[record.queue].config.wrapup_s
        self._handled[record.queue] = (total + now - record.connect_time + wrapup_s, count + 1)
        self._set_state(now, agent, AgentInput.CALL_END, work)
        if wrapup_s > 0:
            agent.wrapup_until = now + wrapup_s
            self._push_timer(agent.wrapup_until, "wrapup", (agent.agent_id, agent.wrapup_until))
        else:
            self._end_wrapup(now, agent, work)

    def _finish_wrapup(self, now: float, agent: Agent, work: _Work) -> None:
        self._log(work, now, agent.call_queue or NONE, agent.call_id or NONE, agent.agent_id,
                  QueueEvent.WRAPUP, fmt_s(now - agent.state_since))
        agent.call_id = agent.call_queue = agent.wrapup_until = None

    def _end_wrapup(self, now: float, agent: Agent, work: _Work) -> None:
        """Wrap-up over (timer or agent): ready, or the pending state (CSTA pendingAgentState)."""
        self._finish_wrapup(now, agent, work)
        self._set_state(now, agent, AgentInput.WRAPUP_END, work)
        pending, reason = agent.pending, agent.pending_reason
        agent.pending, agent.pending_reason = None, ""
        if pending is AgentState.NOT_READY:
            self._set_state(now, agent, AgentInput.SET_NOT_READY, work, reason)
            self._check_leave_empty(now, work)
        elif pending is AgentState.LOGGED_OFF:
            self._set_state(now, agent, AgentInput.LOGOUT, work)
            self._logged_off(now, agent, work)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, now: float, work: _Work) -> None:
        """Match ready agents with waiting callers, best queue and best caller first.

        Ready agents are indexed by skill, and the best ready level per skill is cached for
        the pass, so callers nobody ready can take cost one lookup each. When no agent became
        ready, only the callers that changed are tried (an arrival costs O(ready agents), not
        O(queue length)).
        """
        if not self._ready or not (work.full or work.fresh):
            return
        best_level: dict[str, int | None] = {}
        for queue in self._queue_order:
            if not len(queue) or (not queue.foreign_skills and
                                  not self._ready_by_skill.get(queue.config.required_skill)):
                continue
            callers: Iterable[Caller] = queue.ordered()
            if not work.full:  # only the callers whose situation changed can match now
                weight = queue.config.priority_weight
                callers = sorted({id(c): c for c in work.fresh
                                  if queue.get(c.call_id) is c}.values(),
                                 key=lambda c: c.key(weight))
            for caller in callers:
                if not self._ready:
                    return
                if caller.offered_to:
                    continue
                skill = caller.skill
                if skill not in best_level:
                    pool = self._ready_by_skill.get(skill)
                    best_level[skill] = min((a.skills[skill] for a in pool.values()),
                                            default=None) if pool else None
                level = best_level[skill]
                if level is not None and level <= caller.level:
                    self._try_offer(now, queue, caller, work)
                    best_level.clear()   # the pools changed

    def _try_offer(self, now: float, queue: Queue, caller: Caller, work: _Work) -> None:
        allowed = caller.level
        skill = caller.skill
        best = None
        candidates: list[Agent] = []
        for agent in self._ready_by_skill[skill].values():
            level = agent.skills[skill]
            if level > allowed:
                continue
            if best is None or level < best:
                best, candidates = level, [agent]
            elif level == best:
                candidates.append(agent)
        if not candidates:
            return
        missed = self._missed.get(caller.call_id)
        if missed:
            fresh = [a for a in candidates if a.agent_id not in missed]
            candidates = fresh or candidates
        selection = select_agents(queue.config.strategy, queue.name, candidates, now,
                                  self._rng, queue.rr_last_position)
        queue.rr_last_position = selection.memory
        self._offer(now, queue, caller, selection.agents, work)

    def _offer(self, now: float, queue: Queue, caller: Caller, agents: Iterable[Agent],
               work: _Work) -> None:
        """Ring ``agents`` (ready) with ``caller`` for the queue's ring timeout."""
        ring_s = queue.config.ring_timeout_s
        caller.offer_started = now
        for agent in agents:
            agent.call_id, agent.call_queue = caller.call_id, queue.name
            self._set_state(now, agent, AgentInput.OFFER, work)
            caller.offered_to.add(agent.agent_id)
            self._offers[(caller.call_id, agent.agent_id)] = _Offer(queue.name, now + ring_s, now)
            self._push_timer(now + ring_s, "ring", (caller.call_id, agent.agent_id, now + ring_s))
            work.actions.append(OfferCall(caller.call_id, queue.name, agent.agent_id,
                                          agent.device, ring_s, caller.callback_number))

    # ------------------------------------------------------------------ timers

    def _timer_valid(self, item: tuple[float, int, str, Any]) -> bool:
        _, _, kind, key = item
        if kind == "ring":
            offer = self._offers.get((key[0], key[1]))
            return offer is not None and offer.deadline == key[2]
        if kind == "wrapup":
            agent = self.agents.get(key[0])
            return agent is not None and agent.state is AgentState.WRAP_UP and \
                agent.wrapup_until == key[1]
        if kind == "scheduled":
            return self._scheduled_valid(key)
        caller = self._callers.get(key[0])
        return caller is not None and caller.seq == key[1] and caller.callback_number is None

    def _fire(self, now: float, item: tuple[float, int, str, Any], work: _Work) -> None:
        when, _, kind, key = item
        if kind == "ring":
            agent = self.agents[key[1]]
            self._missed_offer(now, key[0], agent, AgentInput.RING_TIMEOUT, "ring-timeout", work)
        elif kind == "wrapup":
            self._end_wrapup(now, self.agents[key[0]], work)
        elif kind == "scheduled":
            self._fire_scheduled(now, key, work)
        elif kind == "maxwait":
            caller = self._callers[key[0]]
            if caller.offered_to:
                caller.timed_out = True  # Rule 4
            else:
                self._exit(now, caller, QueueEvent.EXITWITHTIMEOUT, "timeout", work)
        elif kind == "announce":
            caller = self._callers[key[0]]
            queue = self.queues[caller.queue]
            if not caller.offered_to:
                cfg = queue.config
                position = queue.position(caller.call_id) if cfg.announce_position else None
                ewt = self.expected_wait_s(caller.call_id) if cfg.announce_holdtime else None
                work.actions.append(Announce(caller.call_id, queue.name, position, ewt))
            freq = queue.config.announce_frequency_s
            assert freq is not None
            nxt = when + freq
            self._push_timer(nxt if nxt > now else now + freq, "announce", key)  # no catch-up
        elif kind == "widen":
            caller = self._callers[key[0]]
            caller.level = self.queues[caller.queue].allowed_level(caller, now)
            work.fresh.append(caller)
            widen = self.queues[caller.queue].next_widening(caller, now)
            if widen is not None:
                self._push_timer(widen, "widen", key)
