"""The command table: one backend call per business command (internal to the server).

Each entry takes ``(backend, principal, args)`` with ``args`` already validated, scoped and
defaulted (:mod:`cti.scope`) and returns the ``result`` object of the response. Keeping this
a flat table makes Rule 2 of :mod:`cti.messages` checkable: a test asserts that every
business command has exactly one entry and nothing else does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cti.backend import CtiBackend
from cti.messages import CtiRequestError, ErrorCode
from cti.roles import Principal

__all__ = ["BUSINESS"]

Entry = Callable[[CtiBackend, Principal, dict[str, Any]], Awaitable[dict[str, Any]]]


def _pick(args: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: args[n] for n in names}


def _call(method: str, *names: str) -> Entry:
    """An entry that forwards ``names`` from args to ``backend.<method>``."""

    async def entry(backend: CtiBackend, principal: Principal,
                    args: dict[str, Any]) -> dict[str, Any]:
        result = await getattr(backend, method)(**_pick(args, *names))
        return dict(result or {})

    entry.__name__ = f"call_{method}"
    return entry


def _monitor(mode: str) -> Entry:
    async def entry(backend: CtiBackend, principal: Principal,
                    args: dict[str, Any]) -> dict[str, Any]:
        return await backend.monitor_start(supervisor=principal.user,
                                           agent_id=args["agent_id"], mode=mode,
                                           device=args.get("device"),
                                           supervisor_agent=principal.agent_id)

    return entry


async def _queue_list(backend: CtiBackend, principal: Principal,
                      args: dict[str, Any]) -> dict[str, Any]:
    rows = await backend.list_queues()
    return {"queues": [r for r in rows if principal.in_scope((r["queue"],))]}


async def _queue_stats(backend: CtiBackend, principal: Principal,
                       args: dict[str, Any]) -> dict[str, Any]:
    return {"stats": await backend.queue_stats(queues=args["queues"])}


async def _queue_callers(backend: CtiBackend, principal: Principal,
                         args: dict[str, Any]) -> dict[str, Any]:
    return {"queue": args["queue"], "callers": await backend.queue_callers(queue=args["queue"])}


async def _force_state(backend: CtiBackend, principal: Principal,
                       args: dict[str, Any]) -> dict[str, Any]:
    return await backend.agent_set_state(agent_id=args["agent_id"], state=args["state"],
                                         reason=args["reason"], forced=True)


async def _force_logout(backend: CtiBackend, principal: Principal,
                        args: dict[str, Any]) -> dict[str, Any]:
    return await backend.agent_logout(agent_id=args["agent_id"], reason=args["reason"],
                                      forced=True)


async def _agent_logout(backend: CtiBackend, principal: Principal,
                        args: dict[str, Any]) -> dict[str, Any]:
    return await backend.agent_logout(agent_id=args["agent_id"], reason=args["reason"] or "")


def _workorder(cmd: str) -> Entry:
    """Work orders live in the hotline storage, not in the switch: the node installs
    :class:`cti.workorder_commands.WorkOrderCommands` as ``backend.workorders``."""

    async def entry(backend: CtiBackend, principal: Principal,
                    args: dict[str, Any]) -> dict[str, Any]:
        desk = getattr(backend, "workorders", None)
        if desk is None:
            raise CtiRequestError(ErrorCode.NOT_SUPPORTED,
                                  "this server has no work-order storage", "cmd")
        result: dict[str, Any] = await desk.execute(principal, cmd, args)
        return result

    entry.__name__ = f"workorder_{cmd.partition('.')[2]}"
    return entry


_CALL = ("agent_id", "call_id")
_CONSULT = (*_CALL, "consult_call_id")

BUSINESS: dict[str, Entry] = {
    "agent.login": _call("agent_login", "agent_id", "device", "queues"),
    "agent.logout": _agent_logout,
    "agent.set_state": _call("agent_set_state", "agent_id", "state", "reason"),
    "agent.end_wrapup": _call("agent_end_wrapup", "agent_id"),
    "call.make": _call("make_call", "agent_id", "destination", "data"),
    "call.answer": _call("answer_call", *_CALL),
    "call.hangup": _call("clear_connection", *_CALL),
    "call.hold": _call("hold_call", *_CALL),
    "call.retrieve": _call("retrieve_call", *_CALL),
    "call.transfer_blind": _call("single_step_transfer", *_CALL, "destination"),
    "call.consult": _call("consultation_call", *_CALL, "destination"),
    "call.transfer_complete": _call("transfer_call", *_CONSULT),
    "call.conference": _call("conference_call", *_CONSULT),
    "call.reconnect": _call("reconnect_call", *_CONSULT),
    "call.send_dtmf": _call("send_dtmf", *_CALL, "digits"),
    "call.set_data": _call("set_call_data", "call_id", "data"),
    "call.get_data": _call("get_call_data", "call_id"),
    "call.record": _call("record_call", "call_id", "action"),
    "queue.list": _queue_list,
    "queue.stats": _queue_stats,
    "queue.callers": _queue_callers,
    "queue.pickup": _call("pickup_call", "agent_id", "queue", "call_id"),
    "queue.set_priority": _call("set_priority", "queue", "call_id", "priority"),
    "callback.schedule": _call("schedule_callback", "queue", "number", "at", "data"),
    "monitor.listen": _monitor("listen"),
    "monitor.whisper": _monitor("whisper"),
    "monitor.barge": _monitor("barge"),
    "monitor.switch": _call("monitor_switch", "monitor_id", "mode"),
    "monitor.stop": _call("monitor_stop", "monitor_id"),
    "agent.force_state": _force_state,
    "agent.force_logout": _force_logout,
    "call.force_hangup": _call("clear_call", "call_id"),
    "call.take_over": _call("take_over", "call_id", "agent_id"),
    **{name: _workorder(name) for name in ("workorder.create", "workorder.update",
                                           "workorder.get", "workorder.list")},
}
