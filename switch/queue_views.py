"""The CTI-facing side of the live ACD: agent commands and JSON-ready views.

Part of the live ACD (``switch.queues``), kept apart so the shell stays about calls.
:class:`AgentDesk` is the mixin :class:`~switch.queues.QueueService` inherits: CSTA-style
agent requests (log in on a device, log out, ready / not ready with a reason, end wrap-up),
each fed to the engine as one input, and views built from the engine's state (agent
snapshots, the callers of a queue, live KPIs from the in-memory log). Agent records are
read, never changed here (the engine owns them). Errors: :class:`~switch.acd.AcdError`
(unknown agent or queue, bad device) and :class:`~switch.acd.AgentStateError` (a request
the agent state table refuses).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from switch.acd import (
    AcdEngine,
    AcdError,
    AcdInput,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentNotReady,
    AgentReady,
    AgentState,
    CallbackQueued,
    CallPickedUp,
    CallTransferred,
    Device,
    LogSink,
    PriorityChanged,
    QueueKpi,
    WrapUpEnded,
)
from switch.acd.kpi import queue_kpis

logger = logging.getLogger(__name__)

__all__ = ["AgentDesk", "agent_queues", "agent_row", "waiting_rows"]


def agent_queues(engine: AcdEngine, agent_id: str) -> frozenset[str]:
    """The queues whose required skill the agent has (empty if unknown)."""
    agent = engine.agents.get(agent_id)
    if agent is None:
        return frozenset()
    return frozenset(q.name for q in engine.queues.values()
                     if q.config.required_skill in agent.skills)


def agent_row(engine: AcdEngine, agent_id: str) -> dict[str, Any]:
    """One agent: device, state (CSTA names), reason, skills, call, pending state.

    Raises:
        AcdError: unknown agent.
    """
    a = engine.agent(agent_id)
    return {"agent_id": a.agent_id, "device": f"{a.device.kind}:{a.device.address}",
            "state": a.state.value, "reason": a.reason, "since": a.state_since,
            "skills": dict(a.skills), "call_id": a.call_id, "queue": a.call_queue,
            "pending": a.pending.value if a.pending else None,
            "queues": sorted(agent_queues(engine, agent_id))}


def waiting_rows(engine: AcdEngine, queue: str, now: float,
                 caller_of: Callable[[str], str]) -> list[dict[str, Any]]:
    """The callers of ``queue`` in service order, with the agents their call rings at."""
    return [{"call_id": c.call_id, "position": position, "priority": c.priority,
             "waited_s": round(now - c.enter_time, 3),
             "caller": caller_of(c.call_id) or c.callback_number or "",
             "callback": c.callback_number is not None, "ringing": sorted(c.offered_to)}
            for position, c in enumerate(engine.waiting(queue), 1)]


class AgentDesk:
    """Agent commands and views over ``self.engine`` (mixed into ``QueueService``)."""

    engine: AcdEngine
    log: LogSink
    wall: Callable[[], float]
    _waiters: dict[str, Any]

    def _apply(self, event: AcdInput | None) -> None:
        """Feed one input to the engine and perform its actions (QueueService's)."""
        raise NotImplementedError

    def login(self, agent_id: str, device: str, queues: Iterable[str] | None = None, *,
              skills: Mapping[str, int] | None = None, ready: bool = True) -> dict[str, Any]:
        """Log an agent in on ``device``: an extension ("1001", "extension:1001") or an
        outside number ("external:13800000000": rung through a trunk with
        ``agent_devices = true``, ``switch.queue_external``; without one its offers fail and
        the agent goes not ready after the queue's ``max_no_answer``).

        Skills: ``skills`` ({skill: level}, 1 = best) if given, else level 1 in the skill of
        each of ``queues`` (every queue when None).

        Raises:
            AcdError: unknown queue, bad agent id or device.
            AgentStateError: already logged in.
        """
        kind, _, address = device.rpartition(":")
        try:
            dev = Device(kind or "extension", address)
        except ValueError as exc:
            raise AcdError(str(exc)) from None
        if skills is None:
            names = list(queues) if queues is not None else list(self.engine.queues)
            for name in names:
                if name not in self.engine.queues:
                    raise AcdError(f"unknown queue {name}")
            skills = {self.engine.queues[n].config.required_skill: 1 for n in names}
        self._apply(AgentLoggedIn(agent_id, dev, dict(skills), ready=ready))
        return self.agent_snapshot(agent_id)

    def logout(self, agent_id: str) -> dict[str, Any]:
        """Log the agent out (after its current call and wrap-up if busy; an offer ringing
        at its device is withdrawn and the caller keeps its place)."""
        self._apply(AgentLoggedOut(agent_id))
        return self.agent_snapshot(agent_id)

    def set_state(self, agent_id: str, state: str, reason: str = "") -> dict[str, Any]:
        """``state`` "ready" or "not_ready" (with ``reason``); during a call it applies
        when the call and its wrap-up end (CSTA pending state)."""
        if state == AgentState.READY.value:
            self._apply(AgentReady(agent_id))
        elif state == AgentState.NOT_READY.value:
            self._apply(AgentNotReady(agent_id, reason))
        else:
            raise AcdError(f"cannot set agent state {state!r} (ready or not_ready)")
        return self.agent_snapshot(agent_id)

    def end_wrapup(self, agent_id: str) -> dict[str, Any]:
        """End the agent's after-call work now."""
        self._apply(WrapUpEnded(agent_id))
        return self.agent_snapshot(agent_id)

    # ====================================================================================
    # Desk operations on waiting callers (switch.acd.engine_ops)
    # ====================================================================================
    def pickup(self, queue: str, call_id: str, agent_id: str) -> dict[str, Any]:
        """Agent ``agent_id`` (ready) takes the waiting caller ``call_id`` out of turn: its
        device rings with that call alone (engine_ops Rule 1).

        Raises:
            AcdError: unknown queue, agent, or the call is not waiting there.
            AgentStateError: the agent is not ready.
        """
        self._apply(CallPickedUp(queue, call_id, agent_id))
        return {"queue": queue, "call_id": call_id, "agent_id": agent_id,
                "state": self.engine.agent(agent_id).state.value}

    def set_priority(self, queue: str, call_id: str, priority: int) -> dict[str, Any]:
        """Set a waiting caller's base priority (engine_ops Rule 2); returns its new place.

        Raises:
            AcdError: unknown queue, or the call is not waiting there.
        """
        self._apply(PriorityChanged(queue, call_id, priority))
        return {"queue": queue, "call_id": call_id, "priority": priority,
                "position": self.engine.position(call_id)}

    def schedule_callback(self, queue: str, number: str, at: float | None = None, *,
                          priority: int = 0) -> dict[str, Any]:
        """Queue a callback to ``number`` at ``at`` (Unix time; None or past: now), without a
        live caller (engine_ops Rule 3). When an agent takes it, the agent is rung first,
        then ``number`` (``switch.queue_callback``).

        Raises:
            AcdError: unknown queue or empty number.
        """
        call_id = f"cb-{uuid.uuid4().hex[:16]}"
        self._apply(CallbackQueued(queue, call_id, number, at, priority))
        return {"call_id": call_id, "queue": queue, "number": number,
                "at": at if at is not None and at > self.wall() else None,
                "position": self.engine.position(call_id)}

    def call_transferred(self, call_id: str, target: str) -> bool:
        """The agent handed its connected queue call to ``target`` (a CTI single-step or
        consulted transfer): the queue log gets TRANSFER, not COMPLETEAGENT, and the agent
        goes to wrap-up. Call it before the agent's leg leaves the call (the hang-up that
        follows then finds nothing connected). False when no agent of this ACD has the call.
        """
        if self.engine.connected_agent(call_id) is None:
            return False
        self._apply(CallTransferred(call_id, target))
        return True

    # ====================================================================================
    # Views
    # ====================================================================================
    def agent_snapshot(self, agent_id: str) -> dict[str, Any]:
        """One agent as a JSON-ready dict (raises AcdError if unknown)."""
        return agent_row(self.engine, agent_id)

    def queues_of(self, agent_id: str) -> frozenset[str]:
        """The queues whose skill the agent has (empty if unknown)."""
        return agent_queues(self.engine, agent_id)

    def device_of(self, agent_id: str) -> str:
        """The agent's device address ("" if unknown)."""
        agent = self.engine.agents.get(agent_id)
        return agent.device.address if agent is not None else ""

    def agents(self) -> list[dict[str, Any]]:
        """Every agent the ACD knows (logged off ones included)."""
        return [agent_row(self.engine, a) for a in sorted(self.engine.agents)]

    def waiting_callers(self, queue: str) -> list[dict[str, Any]]:
        """The callers of ``queue`` in service order (raises AcdError if unknown)."""
        def caller_of(call_id: str) -> str:
            waiter = self._waiters.get(call_id)
            return waiter.call.caller if waiter is not None else ""

        return waiting_rows(self.engine, queue, self.wall(), caller_of)

    def caller_info(self, call_id: str) -> dict[str, Any] | None:
        """Caller number, number dialed and IVR tags of a queued call (screen pop)."""
        waiter = self._waiters.get(call_id)
        if waiter is None:
            return None
        return {"caller": waiter.call.caller, "called": waiter.call.dialed,
                "queue": waiter.queue, "tags": dict(waiter.tags)}

    def snapshot(self) -> dict[str, Any]:
        """Queues with their callers and agents: what a wallboard or CTI snapshot shows."""
        return {"queues": {name: self.waiting_callers(name) for name in self.engine.queues},
                "agents": self.agents()}

    def live_kpis(self, queue: str | None = None) -> QueueKpi:
        """KPIs from the queue log entries kept in memory (``QueueLogWriter.recent``, or the
        memory sink), with callers still waiting counted."""
        entries = getattr(self.log, "recent", None)
        if entries is None:
            entries = getattr(self.log, "entries", [])
        return queue_kpis(list(entries), queue=queue, now=self.wall())
