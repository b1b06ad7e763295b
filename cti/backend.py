"""The CTI server's view of the switch: the :class:`CtiBackend` Protocol, and a fake.

The server validates, authorizes and audits; then it calls exactly one backend method per
command (the table in :mod:`cti.server`), with keyword arguments named as on the wire. The
backend reports every change as a :class:`BackendEvent` through the sink the server gives
it; a method's return value is only the *acceptance* (Rule 4 of :mod:`cti.messages`).

Backend methods raise :class:`~cti.messages.CtiRequestError` (``not_found``,
``invalid_state``…) for requests the switch refuses; any other exception is a bug, logged by
the server and answered ``internal``.

:class:`FakeBackend` is an in-memory call centre (agents, queues, calls, residents) that
emits the same events the real switch will: tests, the console demo and the benchmark use
it; it lives in :mod:`cti.fake` (also ``from cti import FakeBackend``). Its agent states
come from the ACD's own table (:mod:`switch.acd.agent`), so its transitions are the ones
the real ACD allows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from switch.acd.agent import AgentState

logger = logging.getLogger(__name__)

__all__ = [
    "AGENT_STATE_EVENTS",
    "BackendEvent",
    "CallScope",
    "CtiBackend",
    "EventSink",
    "ResidentDirectory",
]


@dataclass(frozen=True, slots=True)
class BackendEvent:
    """One change: wire ``name`` and ``data``, plus the scope keys used for routing.

    ``queues``: the queues it concerns (scope and subscription filters); ``agent_id``: the
    agent it concerns (an agent sees its own events).
    """

    name: str
    data: Mapping[str, Any]
    queues: frozenset[str] = frozenset()
    agent_id: str | None = None


EventSink = Callable[[BackendEvent], None]


@dataclass(frozen=True, slots=True)
class CallScope:
    """Where a call is, for scope checks: its queue and the agent handling it."""

    queue: str | None
    agent_id: str | None


AGENT_STATE_EVENTS: dict[AgentState, str] = {
    AgentState.LOGGED_OFF: "agent.logged_off",
    AgentState.READY: "agent.ready",
    AgentState.NOT_READY: "agent.not_ready",
    AgentState.RESERVED: "agent.reserved",
    AgentState.BUSY: "agent.busy",
    AgentState.WRAP_UP: "agent.wrapup",
}
"""ACD agent state -> CTI event (CSTA AgentLoggedOff/Ready/NotReady/Busy/WorkingAfterCall)."""


class CtiBackend(Protocol):
    """What the CTI server needs from the switch and the ACD (one method per command)."""

    def set_event_sink(self, sink: EventSink) -> None: ...
    async def agent_queues(self, agent_id: str) -> frozenset[str]: ...
    async def call_scope(self, call_id: str) -> CallScope: ...
    async def snapshot(self) -> dict[str, Any]: ...
    async def agent_login(self, *, agent_id: str, device: str,
                          queues: list[str] | None) -> dict[str, Any]: ...
    async def agent_logout(self, *, agent_id: str, reason: str,
                           forced: bool = False) -> dict[str, Any]: ...
    async def agent_set_state(self, *, agent_id: str, state: str, reason: str,
                              forced: bool = False) -> dict[str, Any]: ...
    async def agent_end_wrapup(self, *, agent_id: str) -> dict[str, Any]: ...
    async def make_call(self, *, agent_id: str, destination: str,
                        data: dict[str, Any] | None) -> dict[str, Any]: ...
    async def answer_call(self, *, agent_id: str, call_id: str) -> dict[str, Any]: ...
    async def clear_connection(self, *, agent_id: str, call_id: str) -> dict[str, Any]: ...
    async def hold_call(self, *, agent_id: str, call_id: str) -> dict[str, Any]: ...
    async def retrieve_call(self, *, agent_id: str, call_id: str) -> dict[str, Any]: ...
    async def single_step_transfer(self, *, agent_id: str, call_id: str,
                                   destination: str) -> dict[str, Any]: ...
    async def consultation_call(self, *, agent_id: str, call_id: str,
                                destination: str) -> dict[str, Any]: ...
    async def transfer_call(self, *, agent_id: str, call_id: str,
                            consult_call_id: str) -> dict[str, Any]: ...
    async def conference_call(self, *, agent_id: str, call_id: str,
                              consult_call_id: str) -> dict[str, Any]: ...
    async def reconnect_call(self, *, agent_id: str, call_id: str,
                             consult_call_id: str) -> dict[str, Any]: ...
    async def send_dtmf(self, *, agent_id: str, call_id: str, digits: str) -> dict[str, Any]: ...
    async def set_call_data(self, *, call_id: str, data: dict[str, Any]) -> dict[str, Any]: ...
    async def get_call_data(self, *, call_id: str) -> dict[str, Any]: ...
    async def record_call(self, *, call_id: str, action: str) -> dict[str, Any]: ...
    async def list_queues(self) -> list[dict[str, Any]]: ...
    async def queue_stats(self, *, queues: list[str] | None) -> list[dict[str, Any]]: ...
    async def queue_callers(self, *, queue: str) -> list[dict[str, Any]]: ...
    async def pickup_call(self, *, agent_id: str, queue: str, call_id: str) -> dict[str, Any]: ...
    async def set_priority(self, *, queue: str, call_id: str, priority: int) -> dict[str, Any]: ...
    async def schedule_callback(self, *, queue: str, number: str, at: float | None,
                                data: dict[str, Any] | None) -> dict[str, Any]: ...
    async def monitor_start(self, *, supervisor: str, agent_id: str, mode: str,
                            device: str | None = None,
                            supervisor_agent: str | None = None) -> dict[str, Any]: ...
    async def monitor_switch(self, *, monitor_id: str, mode: str) -> dict[str, Any]: ...
    async def monitor_stop(self, *, monitor_id: str) -> dict[str, Any]: ...
    async def clear_call(self, *, call_id: str) -> dict[str, Any]: ...
    async def take_over(self, *, call_id: str, agent_id: str) -> dict[str, Any]: ...


class ResidentDirectory(Protocol):
    """Screen-pop source: the resident record behind a caller number (storage later)."""

    async def lookup(self, caller_number: str) -> dict[str, Any] | None: ...



