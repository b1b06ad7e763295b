"""Scope checks that need the switch's state (which queues an agent or a call belongs to).

The role table (:mod:`cti.roles`) is checked by the pure session; this module applies
Rule 2 of :mod:`cti.roles` to the *targets* of a command, asking the backend where an agent
or a call is. It also fills defaults that depend on who asks: an agent's ``agent_id`` is its
own; queue lists default to the caller's scope.

Order of checks for one request: default ``agent_id`` -> queues named -> target agent ->
target call -> monitor ownership. The first failure answers ``forbidden`` (or
``not_found`` for an unknown agent/call, which the backend reports).
"""

from __future__ import annotations

from typing import Any

from cti.backend import CtiBackend
from cti.messages import COMMANDS, CtiRequestError, ErrorCode
from cti.roles import Principal, Role, check_agent_scope, check_queue_scope

__all__ = ["DEVICE_COMMANDS", "authorize", "filter_snapshot"]

DEVICE_COMMANDS = frozenset({
    "agent.login", "agent.logout", "agent.set_state", "agent.end_wrapup", "call.make",
    "call.answer", "call.hangup", "call.hold", "call.retrieve", "call.transfer_blind",
    "call.consult", "call.transfer_complete", "call.conference", "call.reconnect",
    "call.send_dtmf", "queue.pickup", "call.take_over",
})
"""Commands that act through an agent's device, so they need an ``agent_id``."""

_QUEUED_CALL_COMMANDS = frozenset({"queue.pickup", "queue.set_priority"})
"""Their ``call_id`` is a waiting caller, scoped by the ``queue`` argument instead."""


async def authorize(backend: CtiBackend, principal: Principal, cmd: str, args: dict[str, Any],
                    monitors: dict[str, tuple[str, str]]) -> None:
    """Check the targets of a permitted command; fill defaults in ``args`` (in place).

    Args:
        monitors: monitor_id -> (supervisor user, agent_id), for monitor.switch/stop.

    Raises:
        CtiRequestError: ``forbidden``, ``invalid_args`` or the backend's ``not_found``.
    """
    spec = COMMANDS[cmd]
    if "agent_id" in spec.args and args.get("agent_id") is None:
        if cmd in DEVICE_COMMANDS or principal.role is Role.AGENT:
            args["agent_id"] = principal.agent_id
        if args["agent_id"] is None and cmd in DEVICE_COMMANDS:
            raise CtiRequestError(ErrorCode.INVALID_ARGS,
                                  f"{cmd} needs agent_id (user {principal.user} has no agent)",
                                  "agent_id")
    _check_queues(principal, cmd, args)
    agent_id = args.get("agent_id")
    if agent_id is not None:
        if cmd == "agent.login":
            check_agent_scope(principal, agent_id, frozenset(args["queues"] or ()))
        else:
            check_agent_scope(principal, agent_id, await backend.agent_queues(agent_id))
    call_id = args.get("call_id")
    if call_id is not None and cmd not in _QUEUED_CALL_COMMANDS:
        await _check_call(backend, principal, call_id)
    monitor_id = args.get("monitor_id")
    if monitor_id is not None:
        owner = monitors.get(monitor_id)
        if owner is None:
            raise CtiRequestError(ErrorCode.NOT_FOUND, f"no monitor {monitor_id}", "monitor_id")
        if owner[0] != principal.user and principal.role is not Role.ADMIN:
            raise CtiRequestError(ErrorCode.FORBIDDEN, "another supervisor's monitor",
                                  "monitor_id")


def _check_queues(principal: Principal, cmd: str, args: dict[str, Any]) -> None:
    if args.get("queue") is not None:
        check_queue_scope(principal, (args["queue"],), "queue")
    if "queues" in COMMANDS[cmd].args:
        if args.get("queues") is not None:
            check_queue_scope(principal, args["queues"], "queues")
        elif not principal.all_queues:
            args["queues"] = sorted(principal.queues)  # default: the caller's scope


async def _check_call(backend: CtiBackend, principal: Principal, call_id: str) -> None:
    scope = await backend.call_scope(call_id)
    if principal.agent_id is not None and scope.agent_id == principal.agent_id:
        return
    if principal.role is Role.AGENT:
        raise CtiRequestError(ErrorCode.FORBIDDEN, f"call {call_id} is not yours", "call_id")
    if principal.all_queues:
        return
    queues: set[str] = {scope.queue} if scope.queue else set()
    if scope.agent_id is not None:
        queues |= await backend.agent_queues(scope.agent_id)
    if not principal.in_scope(queues):
        raise CtiRequestError(ErrorCode.FORBIDDEN, f"call {call_id} is not in your queues",
                              "call_id")


def filter_snapshot(principal: Principal, snap: dict[str, Any],
                    queues: list[str] | None) -> dict[str, Any]:
    """The part of a backend snapshot this principal may see (Rule 3 of :mod:`cti.roles`)."""
    wanted = set(queues) if queues is not None else None

    def queue_ok(name: str | None) -> bool:
        return name is not None and principal.in_scope((name,)) and \
            (wanted is None or name in wanted)

    own = principal.agent_id
    agents = [a for a in snap.get("agents", [])
              if a["agent_id"] == own or (principal.role is not Role.AGENT and
                                          any(queue_ok(q) for q in a.get("queues", [])))]
    visible_agents = {a["agent_id"] for a in agents}
    if principal.role is Role.WALLBOARD:
        calls: list[dict[str, Any]] = []
    elif principal.role is Role.AGENT:
        calls = [c for c in snap.get("calls", []) if c.get("agent_id") == own]
    else:
        calls = [c for c in snap.get("calls", [])
                 if queue_ok(c.get("queue")) or c.get("agent_id") in visible_agents]
    return {"agents": agents, "calls": calls,
            "queues": [q for q in snap.get("queues", []) if queue_ok(q.get("queue"))]}
