"""ACD actions -> CTI events: the mapping the switch's CTI backend uses (IVR_CTI_ACD.md §B.8).

The ACD core (:class:`switch.acd.AcdEngine`) returns actions; the switch performs them and
hands each one here to learn what CTI clients must be told. Keeping the mapping in one pure
function means the event vocabulary of :data:`cti.messages.EVENTS` is decided in one place,
and it is tested against the real engine now, before the switch is wired.

Mapping (CSTA names in brackets):

* ``AgentStateChanged`` -> ``agent.logged_on`` (when leaving logged-off) then
  ``agent.<state>`` [AgentLoggedOn/Ready/NotReady/Busy/WorkingAfterCall/LoggedOff];
* ``LogEntry(ENTERQUEUE)`` -> ``call.queued`` [Queued]; ``LogEntry(ABANDON)`` ->
  ``call.dequeued {reason: abandoned}``;
* ``BridgeCall`` -> ``call.dequeued {reason: answered}`` + ``call.established`` [Established];
* ``PlaceCallback`` -> ``call.dequeued {reason: callback}`` + ``call.originated``
  [Originated: the switch dials the customer for the agent];
* ``Overflow`` -> ``call.dequeued {reason: full|join-empty|timeout|empty}``;
* ``CallbackScheduled`` -> ``call.dequeued {reason: callback}``;
* ``OfferCall`` -> nothing here: ``call.delivered`` needs the screen pop, an async lookup the
  shell does; it then calls :func:`delivered_event`.

Everything else (music, announcements, withdrawals, other log entries) is not a CTI event:
withdrawals already show as agent state changes.

This module is pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cti.backend import AGENT_STATE_EVENTS, BackendEvent
from switch.acd import (
    AcdAction,
    AcdEngine,
    AgentState,
    AgentStateChanged,
    BridgeCall,
    CallbackScheduled,
    LogEntry,
    OfferCall,
    Overflow,
    PlaceCallback,
    QueueEvent,
)

__all__ = ["acd_events", "delivered_event", "queue_stats_rows"]

QueuesOf = Callable[[str], frozenset[str]]
"""agent_id -> the queues it serves (scope of its events)."""


def _one(queue: str) -> frozenset[str]:
    return frozenset((queue,)) if queue else frozenset()


def _agent_events(change: AgentStateChanged, device: str,
                  queues: frozenset[str]) -> list[BackendEvent]:
    events = []
    base = {"agent_id": change.agent_id, "device": device}
    if change.old is AgentState.LOGGED_OFF:
        events.append(BackendEvent("agent.logged_on", {**base, "state": "logged_on",
                                                       "queues": sorted(queues)},
                                   queues, change.agent_id))
    data = {**base, "state": change.new.value, "previous": change.old.value,
            "reason": change.reason}
    events.append(BackendEvent(AGENT_STATE_EVENTS[change.new], data, queues,
                               change.agent_id))
    return events


def _log_events(entry: Any) -> list[BackendEvent]:
    scope = _one(entry.queue)
    if entry.event is QueueEvent.ENTERQUEUE:
        priority, position = (int(x) for x in entry.data[:2])
        return [BackendEvent("call.queued", {"call_id": entry.call_id, "queue": entry.queue,
                                             "position": position, "priority": priority},
                             scope)]
    if entry.event is QueueEvent.ABANDON:
        return [BackendEvent("call.dequeued", {"call_id": entry.call_id, "queue": entry.queue,
                                               "reason": "abandoned"}, scope)]
    return []


def acd_events(action: AcdAction, *, queues_of: QueuesOf,
               device_of: Callable[[str], str]) -> list[BackendEvent]:
    """The CTI events of one ACD action (see the module docstring).

    Args:
        queues_of: the queues an agent serves.
        device_of: the device address of an agent (for agent events).
    """
    if isinstance(action, AgentStateChanged):
        return _agent_events(action, device_of(action.agent_id), queues_of(action.agent_id))
    if isinstance(action, LogEntry):
        return _log_events(action.entry)
    if isinstance(action, BridgeCall | PlaceCallback):
        scope = _one(action.queue)
        answered = isinstance(action, BridgeCall)
        out = [BackendEvent("call.dequeued", {"call_id": action.call_id, "queue": action.queue,
                                              "reason": "answered" if answered else "callback",
                                              "agent_id": action.agent_id}, scope)]
        if isinstance(action, BridgeCall):
            out.append(BackendEvent("call.established", {
                "call_id": action.call_id, "agent_id": action.agent_id,
                "device": action.device.address, "queue": action.queue}, scope, action.agent_id))
        else:
            out.append(BackendEvent("call.originated", {
                "call_id": action.call_id, "agent_id": action.agent_id,
                "device": action.device.address, "destination": action.number,
                "queue": action.queue}, scope, action.agent_id))
        return out
    if isinstance(action, Overflow):
        return [BackendEvent("call.dequeued", {"call_id": action.call_id, "queue": action.queue,
                                               "reason": action.reason}, _one(action.queue))]
    if isinstance(action, CallbackScheduled):
        return [BackendEvent("call.dequeued", {"call_id": action.call_id, "queue": action.queue,
                                               "reason": "callback", "number": action.number},
                             _one(action.queue))]
    return []


def delivered_event(offer: OfferCall, *, caller: str, called: str,
                    resident: Mapping[str, Any] | None,
                    ivr_tags: Mapping[str, Any]) -> BackendEvent:
    """``call.delivered`` with the screen pop, once the shell has looked the caller up."""
    pop = {"caller_number": caller, "resident": dict(resident) if resident else None,
           "ivr_tags": dict(ivr_tags)}
    data = {"call_id": offer.call_id, "agent_id": offer.agent_id,
            "device": offer.device.address, "queue": offer.queue, "caller": caller,
            "called": called, "ring_timeout_s": offer.ring_timeout_s, "screen_pop": pop}
    return BackendEvent("call.delivered", data, _one(offer.queue), offer.agent_id)


def queue_stats_rows(engine: AcdEngine, now: float,
                     queues: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Live ``queue.stats`` rows from the engine (the wallboard figures of §C.7)."""
    rows = []
    for name in queues if queues is not None else sorted(engine.queues):
        queue = engine.queues[name]
        callers = queue.callers()
        members = [a for a in engine.agents.values() if queue.eligible(a)]
        count = {s: sum(a.state is s for a in members) for s in AgentState}
        rows.append({
            "queue": name, "waiting": len(callers),
            "longest_wait_s": round(max((now - c.enter_time for c in callers), default=0.0),
                                    3),
            "agents_ready": count[AgentState.READY],
            "agents_busy": count[AgentState.BUSY] + count[AgentState.RESERVED],
            "agents_wrapup": count[AgentState.WRAP_UP],
            "agents_not_ready": count[AgentState.NOT_READY],
        })
    return rows
