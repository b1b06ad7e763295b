"""Agents for the live CTI backend: the live ACD's when the node runs one, else a device map.

Rules:

* Rule 1 -- with the live ACD (``switch.queues.QueueService``, ``CallManager.queues``) the
  ACD owns the agents: login, logout, states and wrap-up go to its API, its agent changes
  become ``agent.*`` events (``cti.acd_events``) and its offers become ``call.delivered``
  with the screen pop (:meth:`cti.live_calls.LiveState.deliver_offer`). Errors map to
  ``not_found`` (unknown agent or queue) and ``invalid_state`` (a state change the table
  refuses). A CTI login starts not ready (CSTA: the agent says when it is ready).
* Rule 2 -- without it, :class:`~cti.live_calls.LiveState` keeps a device <-> agent map and
  drives each agent through the ACD's own state table (``switch.acd.agent``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from cti.acd_events import acd_events, queue_stats_rows
from cti.backend import BackendEvent
from cti.live_calls import LiveAgent, LiveState
from cti.messages import CtiRequestError, ErrorCode
from switch.acd import AcdError, AgentStateError, OfferCall, WithdrawOffer
from switch.acd import AgentStateChanged as AcdAgentStateChanged
from switch.acd.agent import AgentInput, AgentState

logger = logging.getLogger(__name__)

__all__ = ["AgentDesk", "QueueCommands"]


def _err(code: ErrorCode, message: str, field_: str | None = None) -> CtiRequestError:
    return CtiRequestError(code, message, field_)


def _no_queues(what: str, field_: str = "queue") -> CtiRequestError:
    return _err(ErrorCode.NOT_FOUND, f"{what}: this node runs no ACD queues", field_)


class AgentDesk:
    """Agent commands and views over the live ACD or the CTI's own table (module rules).

    Args:
        state: the backend's live view.
        calls: the call manager (its ``queues`` attribute is the live ACD, or None).
    """

    def __init__(self, state: LiveState, calls: Any) -> None:
        self.state = state
        self.calls = calls
        self._observing: Any = None

    @property
    def acd(self) -> Any:
        """The live ACD (``switch.queues.QueueService``) or None."""
        return self.calls.queues

    def attach(self) -> None:
        acd = self.acd
        if acd is None:
            return
        acd.add_observer(self._on_acd)
        self._observing = acd
        self.state.external_agent_at = self._acd_agent_at
        self.state.external_queues_of = acd.queues_of

    def detach(self) -> None:
        if self._observing is not None:
            self._observing.remove_observer(self._on_acd)
            self._observing = None

    # -------------------------------------------------------------- ACD (Rule 1)

    def _acd_agent_at(self, device: str) -> str | None:
        acd = self.acd
        if acd is None:
            return None
        for agent in acd.engine.agents.values():
            if agent.device.address == device and agent.state is not AgentState.LOGGED_OFF:
                return str(agent.agent_id)
        return None

    def _on_acd(self, action: Any) -> None:
        acd = self.acd
        if isinstance(action, OfferCall):
            info = acd.caller_info(action.call_id) or {}
            self.state.deliver_offer(action.call_id, action.agent_id, action.device.address,
                                     action.queue, info.get("tags"))
        elif isinstance(action, WithdrawOffer):
            self.state.withdraw_offer(action.call_id, action.agent_id)
        elif isinstance(action, AcdAgentStateChanged):
            for event in acd_events(action, queues_of=acd.queues_of,
                                    device_of=acd.device_of):
                self.state.emit(event)

    def _acd_call(self, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return dict(getattr(self.acd, method)(*args, **kwargs))
        except AgentStateError as exc:
            raise _err(ErrorCode.INVALID_STATE, str(exc), "state") from None
        except AcdError as exc:
            raise _err(ErrorCode.NOT_FOUND, str(exc), "agent_id") from None

    def _acd_agent(self, agent_id: str) -> Any:
        acd = self.acd
        return acd.engine.agents.get(agent_id) if acd is not None else None

    # -------------------------------------------------------------- views

    def queues_of(self, agent_id: str) -> frozenset[str]:
        """Raises ``not_found`` for an agent nobody knows."""
        own = self.state.agents.get(agent_id)
        if own is not None:
            return own.queues
        if self._acd_agent(agent_id) is not None:
            return frozenset(self.acd.queues_of(agent_id))
        raise _err(ErrorCode.NOT_FOUND, f"unknown agent {agent_id}", "agent_id")

    def device(self, agent_id: str) -> str:
        """The device of a logged-in agent (``not_found`` otherwise)."""
        own = self.state.agents.get(agent_id)
        if own is not None and own.state is not AgentState.LOGGED_OFF:
            return own.device
        agent = self._acd_agent(agent_id)
        if agent is not None and agent.state is not AgentState.LOGGED_OFF:
            return str(agent.device.address)
        raise _err(ErrorCode.NOT_FOUND, f"agent {agent_id} is not logged in", "agent_id")

    def busy(self, agent_id: str) -> bool:
        own = self.state.agents.get(agent_id)
        agent = own if own is not None else self._acd_agent(agent_id)
        return agent is not None and agent.state in (AgentState.BUSY, AgentState.RESERVED)

    def snapshot(self) -> list[dict[str, Any]]:
        rows = [{"agent_id": a.agent_id, "state": a.state.value, "reason": a.reason,
                 "device": a.device, "queues": sorted(a.queues), "call_id": a.call_id}
                for a in self.state.agents.values() if a.state is not AgentState.LOGGED_OFF]
        if self.acd is not None:
            rows += [{**row, "device": row["device"].rpartition(":")[2]}
                     for row in self.acd.agents() if row["state"] != "logged_off"]
        return rows

    # -------------------------------------------------------------- commands

    def _own(self, agent_id: str) -> LiveAgent:
        agent = self.state.agents.get(agent_id)
        if agent is None or agent.state is AgentState.LOGGED_OFF:
            raise _err(ErrorCode.NOT_FOUND, f"agent {agent_id} is not logged in", "agent_id")
        return agent

    def _move(self, agent: LiveAgent, agent_input: AgentInput, reason: str = "") -> None:
        try:
            self.state.move(agent, agent_input, reason, strict=True)
        except AgentStateError as exc:
            raise _err(ErrorCode.INVALID_STATE, str(exc), "state") from None

    def _uses_acd(self, agent_id: str) -> bool:
        return self.acd is not None and agent_id not in self.state.agents

    def login(self, agent_id: str, device: str, queues: list[str] | None) -> dict[str, Any]:
        other = self.state.agent_at(device)
        if other is not None and other != agent_id:
            raise _err(ErrorCode.INVALID_STATE, f"device {device} is in use by agent {other}",
                       "device")
        registered = bool(self.calls.driver.lookup(device))
        if self.acd is not None:
            snap = self._acd_call("login", agent_id, device, queues, ready=False)
            return {"agent_id": agent_id, "device": device, "registered": registered,
                    "state": snap["state"], "queues": snap["queues"]}
        agent = self.state.agents.get(agent_id)
        if agent is not None and agent.state is not AgentState.LOGGED_OFF:
            raise _err(ErrorCode.INVALID_STATE, f"agent {agent_id} is already logged in",
                       "agent_id")
        names = frozenset(queues or ())
        agent = self.state.agents[agent_id] = LiveAgent(agent_id, device, names)
        self.state.agent_of_device[device] = agent_id
        self.state.emit(BackendEvent("agent.logged_on", {
            "agent_id": agent_id, "state": "logged_on", "device": device,
            "queues": sorted(names)}, names, agent_id))
        self.state.move(agent, AgentInput.LOGIN, "login")
        return {"agent_id": agent_id, "device": device, "registered": registered,
                "state": agent.state.value, "queues": sorted(names)}

    def logout(self, agent_id: str, forced: bool) -> dict[str, Any]:
        if forced and self.busy(agent_id):
            raise _err(ErrorCode.INVALID_STATE, f"agent {agent_id} is on a call", "agent_id")
        if self._uses_acd(agent_id):
            self.device(agent_id)
            snap = self._acd_call("logout", agent_id)
            return {"agent_id": agent_id, "pending": snap["state"] != "logged_off"}
        agent = self._own(agent_id)
        self._move(agent, AgentInput.LOGOUT)
        return {"agent_id": agent_id, "pending": agent.state is not AgentState.LOGGED_OFF}

    def set_state(self, agent_id: str, state: str, reason: str) -> dict[str, Any]:
        if self._uses_acd(agent_id):
            self.device(agent_id)
            snap = self._acd_call("set_state", agent_id, state,
                                  reason or ("" if state == "ready" else "not ready"))
            return {"agent_id": agent_id, "state": snap["state"]}
        agent = self._own(agent_id)
        if state == "ready":
            self._move(agent, AgentInput.SET_READY)
        else:
            self._move(agent, AgentInput.SET_NOT_READY, reason or "not ready")
        return {"agent_id": agent_id, "state": agent.state.value}

    def end_wrapup(self, agent_id: str) -> dict[str, Any]:
        if self._uses_acd(agent_id):
            agent = self._acd_agent(agent_id)
            if agent is None or agent.state is not AgentState.WRAP_UP:
                raise _err(ErrorCode.INVALID_STATE, f"agent {agent_id} is not in wrap-up",
                           "agent_id")
            self._acd_call("end_wrapup", agent_id)
            return {"agent_id": agent_id}
        agent = self._own(agent_id)
        if agent.state is not AgentState.WRAP_UP:
            raise _err(ErrorCode.INVALID_STATE, f"agent {agent_id} is not in wrap-up",
                       "agent_id")
        agent.call_id = None
        self._move(agent, AgentInput.WRAPUP_END)
        return {"agent_id": agent_id}


class QueueCommands:
    """The queue commands of the live backend over the live ACD (``not_found`` for every
    queue when the node runs none): views, and the desk operations on waiting callers
    (``switch.acd.engine_ops``): pickup, priority change, callback scheduling."""

    calls: Any
    wall: Callable[[], float]

    def _queue(self, queue: str, field_: str = "queue") -> Any:
        acd = self.calls.queues
        if acd is None:
            raise _no_queues(f"unknown queue {queue}", field_)
        if not acd.has(queue):
            raise _err(ErrorCode.NOT_FOUND, f"unknown queue {queue}", field_)
        return acd

    async def list_queues(self) -> list[dict[str, Any]]:
        acd = self.calls.queues
        if acd is None:
            return []
        return [{"queue": row["queue"], "waiting": row["waiting"],
                 "agents_logged_in": row["agents_ready"] + row["agents_busy"] +
                 row["agents_wrapup"] + row["agents_not_ready"]}
                for row in queue_stats_rows(acd.engine, self.wall())]

    async def queue_stats(self, *, queues: list[str] | None) -> list[dict[str, Any]]:
        acd = self.calls.queues
        if acd is None:
            if queues:
                raise _no_queues(f"unknown queue {queues[0]}", "queues")
            return []
        for name in queues or ():
            self._queue(name, "queues")
        return queue_stats_rows(acd.engine, self.wall(), queues)

    async def queue_callers(self, *, queue: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._queue(queue).waiting_callers(queue)
        return rows

    def _queue_transfer(self, call_id: str, target: str) -> None:
        """A transfer of a queue call is TRANSFER in the queue log (issue 6 point 3)."""
        acd = self.calls.queues
        if acd is not None and acd.call_transferred(call_id, target):
            logger.info("queue call %s transferred to %s", call_id, target)

    @staticmethod
    def _desk(call: Callable[[], dict[str, Any]], field_: str) -> dict[str, Any]:
        try:
            return call()
        except AgentStateError as exc:
            raise _err(ErrorCode.INVALID_STATE, str(exc), "agent_id") from None
        except AcdError as exc:
            raise _err(ErrorCode.NOT_FOUND, str(exc), field_) from None

    async def pickup_call(self, *, agent_id: str, queue: str, call_id: str) -> dict[str, Any]:
        """CSTA GroupPickupCall: the agent (ready) is rung with this waiting caller."""
        acd = self._queue(queue)
        if agent_id not in acd.engine.agents:
            raise _err(ErrorCode.NOT_FOUND, f"agent {agent_id} is not logged in on the ACD",
                       "agent_id")
        return self._desk(lambda: acd.pickup(queue, call_id, agent_id), "call_id")

    async def set_priority(self, *, queue: str, call_id: str, priority: int) -> dict[str, Any]:
        acd = self._queue(queue)
        return self._desk(lambda: acd.set_priority(queue, call_id, priority), "call_id")

    async def schedule_callback(self, *, queue: str, number: str, at: float | None,
                                data: dict[str, Any] | None) -> dict[str, Any]:
        """A callback entry for ``number`` (``at``: Unix time, default now); ``data`` is
        logged with it (the entry has no live call to attach it to)."""
        acd = self._queue(queue)
        if not number.strip():
            raise _err(ErrorCode.INVALID_ARGS, "number is empty", "number")
        result = self._desk(lambda: acd.schedule_callback(queue, number.strip(), at), "queue")
        if data:
            logger.info("callback %s for %s in %s: data %s", result["call_id"], number, queue,
                        data)
        return result

