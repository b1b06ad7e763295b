"""CTI roles, per-queue scopes and the permission table (IVR_CTI_ACD.md §B.7, §B.8).

Rules:

* Rule 1 (deny by default) -- a command is allowed only if :data:`PERMISSIONS` lists the
  principal's role for it; a command missing from the table is denied to everybody.
* Rule 2 (scope) -- a principal holds a set of queues (or all of them). An ``agent`` acts
  only on its own agent; a ``supervisor`` acts on agents and calls of its queues; a
  ``wallboard`` only reads statistics of its queues; ``integration`` (a CRM) attaches data,
  clicks to dial and schedules callbacks within its queues; ``admin`` has every queue.
* Rule 3 (visibility) -- the same scopes filter the events a principal can receive, and a
  wallboard never sees call data (no screen pop with residents' records).

The lesson of §B.7 (AMI/ESL): a CTI user that can run arbitrary applications owns the
machine. Nothing here grants more than the business verbs of :mod:`cti.messages`.

This module is pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from cti.messages import COMMANDS, CtiRequestError, ErrorCode

__all__ = [
    "PERMISSIONS",
    "QUEUE_LEVEL_EVENTS",
    "Principal",
    "Role",
    "can_see_event",
    "check_agent_scope",
    "check_permission",
    "check_queue_scope",
    "commands_for",
]


class Role(StrEnum):
    """The five roles of §B.8."""

    AGENT = "agent"
    SUPERVISOR = "supervisor"
    WALLBOARD = "wallboard"
    ADMIN = "admin"
    INTEGRATION = "integration"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated CTI user.

    Attributes:
        user: login name.
        role: its role.
        queues: queues in scope (ignored when ``all_queues``).
        all_queues: scope covers every queue (``"*"`` in the user store; admins always).
        agent_id: the ACD agent this user is (agents; supervisors may have one too).
    """

    user: str
    role: Role
    queues: frozenset[str] = frozenset()
    all_queues: bool = False
    agent_id: str | None = None

    def in_scope(self, queues: Iterable[str]) -> bool:
        """True when any of ``queues`` is in this principal's scope."""
        return self.all_queues or self.role is Role.ADMIN or \
            not self.queues.isdisjoint(queues)


A, S, W = Role.AGENT, Role.SUPERVISOR, Role.WALLBOARD
AD, I = Role.ADMIN, Role.INTEGRATION  # noqa: E741 - table shorthand
_ALL = frozenset(Role)
_DESK = frozenset({A, S})                       # the agent desktop verbs
_ORDERS = frozenset({A, S, AD})                 # work orders (cti/workorder_commands.py)

PERMISSIONS: dict[str, frozenset[Role]] = {
    # session commands: every authenticated role
    "auth.logout": _ALL, "ping": _ALL, "subscribe": _ALL, "unsubscribe": _ALL,
    "snapshot.get": _ALL, "resume": _ALL,
    # agent
    "agent.login": _DESK, "agent.logout": _DESK, "agent.set_state": _DESK,
    "agent.end_wrapup": _DESK,
    # call control
    "call.make": frozenset({A, S, I}),
    "call.answer": _DESK, "call.hangup": _DESK, "call.hold": _DESK, "call.retrieve": _DESK,
    "call.transfer_blind": _DESK, "call.consult": _DESK, "call.transfer_complete": _DESK,
    "call.conference": _DESK, "call.reconnect": _DESK, "call.send_dtmf": _DESK,
    "call.set_data": frozenset({A, S, I}), "call.get_data": frozenset({A, S, I}),
    "call.record": _DESK,
    # queues
    "queue.list": frozenset({A, S, W, AD}), "queue.stats": frozenset({A, S, W, AD}),
    "queue.callers": frozenset({A, S, W, AD}), "queue.pickup": _DESK,
    "queue.set_priority": frozenset({S, AD}), "callback.schedule": frozenset({A, S, I}),
    # supervisor
    "monitor.listen": frozenset({S}), "monitor.whisper": frozenset({S}),
    "monitor.barge": frozenset({S}), "monitor.switch": frozenset({S}),
    "monitor.stop": frozenset({S}), "call.take_over": frozenset({S}),
    "agent.force_state": frozenset({S, AD}), "agent.force_logout": frozenset({S, AD}),
    "call.force_hangup": frozenset({S, AD}),
    # work orders at the desk (not wallboards, not integrations)
    "workorder.create": _ORDERS, "workorder.update": _ORDERS, "workorder.get": _ORDERS,
    "workorder.list": _ORDERS,
}
"""Command -> roles allowed. ``hello`` and ``auth.login`` come before a role exists and are
handled by the session machine; any other command absent here is denied (Rule 1)."""

QUEUE_LEVEL_EVENTS = frozenset({"queue.stats", "call.queued", "call.dequeued"})
"""Events about a queue rather than one agent: agents see them for their own queues."""

_WALLBOARD_EVENTS = QUEUE_LEVEL_EVENTS | {"agent.logged_on", "agent.logged_off",
                                          "agent.ready", "agent.not_ready", "agent.reserved",
                                          "agent.busy", "agent.wrapup",
                                          "session.resync_required"}


def check_permission(principal: Principal, cmd: str) -> None:
    """Rule 1.

    Raises:
        CtiRequestError: ``forbidden``.
    """
    if principal.role not in PERMISSIONS.get(cmd, frozenset()):
        raise CtiRequestError(ErrorCode.FORBIDDEN,
                              f"role {principal.role.value} may not use {cmd}", "cmd")


def check_queue_scope(principal: Principal, queues: Iterable[str], field: str) -> None:
    """Every queue named must be in scope.

    Raises:
        CtiRequestError: ``forbidden`` naming ``field``.
    """
    for queue in queues:
        if not principal.in_scope((queue,)):
            raise CtiRequestError(ErrorCode.FORBIDDEN, f"queue {queue} is not in your scope",
                                  field)


def check_agent_scope(principal: Principal, agent_id: str, agent_queues: frozenset[str],
                      field: str = "agent_id") -> None:
    """May ``principal`` act on ``agent_id`` (whose queues are ``agent_queues``)? Rule 2.

    Agents (and integrations acting for an agent without queues) need the agent to be their
    own or in scope; supervisors need a shared queue.

    Raises:
        CtiRequestError: ``forbidden``.
    """
    if principal.agent_id is not None and agent_id == principal.agent_id:
        return
    if principal.role is Role.AGENT:
        raise CtiRequestError(ErrorCode.FORBIDDEN, "an agent acts on its own agent only", field)
    if principal.role is Role.ADMIN or principal.all_queues:
        return
    if not principal.in_scope(agent_queues):
        raise CtiRequestError(ErrorCode.FORBIDDEN,
                              f"agent {agent_id} is not in your queues", field)


def can_see_event(principal: Principal, name: str, queues: frozenset[str],
                  agent_id: str | None) -> bool:
    """Rule 3: may this event reach this principal at all (before its own filters)?"""
    role = principal.role
    if name.startswith("campaign.") and role is not Role.ADMIN:
        return False  # outbound campaigns are the admin's (cti/campaign_events.py Rule 3)
    if role is Role.WALLBOARD and name not in _WALLBOARD_EVENTS:
        return False
    if role is Role.INTEGRATION and not name.startswith("call."):
        return False
    if principal.agent_id is not None and agent_id == principal.agent_id:
        return True
    if role is Role.AGENT:
        return name in QUEUE_LEVEL_EVENTS and principal.in_scope(queues)
    if role is Role.ADMIN or principal.all_queues:
        return True
    return principal.in_scope(queues)


def commands_for(role: Role) -> list[str]:
    """The commands a role may use (``hello``/``auth.login`` excluded), sorted."""
    return sorted(cmd for cmd in COMMANDS if role in PERMISSIONS.get(cmd, frozenset()))
