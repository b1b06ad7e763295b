"""Work orders at the desk (issue 6 point 8): CTI commands over the hotline's storage.

An agent on a call records a repair, complaint or inquiry as a work order, updates its
status and progress note, looks one up and lists the caller's open ones. The orders are the
rows the IVR reads (``storage/hotline_repository.py``; the script's ``工单(number)`` source
reads the ``work_orders`` view), so a status set at the desk is what the next caller hears.

Rules:

* Rule 1 -- roles: agents, supervisors and admins (deny by default, IVR_CTI_ACD.md §B.8);
  a wallboard sees statistics only and an integration has no business with orders. The
  ``call_id`` is scoped like a business command's (:func:`cti.scope.authorize`): an
  agent's own call, a supervisor's queues. The acting agent is the user's own agent id; no
  ACD login is needed (back-office work between calls).
* Rule 2 -- tied to the call: ``workorder.create`` with a ``call_id`` stores the call id
  on the order, takes the caller number as the order's phone (the resident, and so the unit,
  is found from it unless an account is given), and attaches ``work_order`` to the call's
  data (``call.data_updated``), so a transfer carries it to the next agent.
* Rule 3 -- one write path: closing goes through
  :meth:`~storage.hotline_repository.HotlineRepository.update_work_order`, which stamps
  ``closed_at``; the campaign dialer starts the 报修回访 survey of every order closed after
  it started from that stamp (``switch/campaigns/dialer.py`` Rule 7), whoever closed it.
* Rule 4 -- events: ``workorder.created`` and ``workorder.updated`` go to the acting agent
  and to supervisors of the call's queue (``created``) or of every queue (``updated``
  carries no queue: the order may outlive the call), through the server's normal fan-out.
* Rule 5 -- errors are data: an unknown order is ``not_found``, a bad kind/status/number
  ``invalid_args`` (schema), a database outage ``internal``.

The commands are in the protocol's static tables (:mod:`cti.messages`, :mod:`cti.roles`,
:mod:`cti.dispatch`); :func:`install` gives one server's backend the handlers (the node does it
in :func:`cti.switch_node.start_cti`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from cti.backend import BackendEvent
from cti.messages import CtiRequestError, ErrorCode
from cti.roles import Principal
from storage.db import StorageError
from storage.hotline_repository import HotlineError, HotlineRepository, WorkOrderInfo

logger = logging.getLogger(__name__)

__all__ = ["WorkOrderCommands", "install", "order_dict"]

_NUMBER = re.compile(r"^[0-9]{8,12}$")


def order_dict(order: WorkOrderInfo, tz: Any) -> dict[str, Any]:
    """A work order as a flat JSON object (times ISO 8601; ``updated``: the local date the
    IVR reads out)."""
    return {
        "number": order.number, "kind": order.kind, "status": order.status,
        "status_text": order.status_text, "department": order.department,
        "account": order.account, "phone": order.phone, "unit": order.unit,
        "description": order.description, "created_at": order.created_at.isoformat(),
        "updated_at": order.updated_at.isoformat(),
        "updated": order.updated_at.astimezone(tz).date().isoformat(),
        "closed_at": order.closed_at.isoformat() if order.closed_at else None,
        "rating": order.rating,
    }


def _number(args: dict[str, Any]) -> str:
    number = str(args["number"])
    if not _NUMBER.match(number):
        raise CtiRequestError(ErrorCode.INVALID_ARGS, "number must be 8 to 12 digits", "number")
    return number


class WorkOrderCommands:
    """The handlers (module rules).

    Args:
        repo: the hotline repository of the node's database.
        backend: the CTI backend (call scope, caller numbers, call data).
        publish: the server's event fan-out (``CtiServer.publish``).
    """

    def __init__(self, repo: HotlineRepository, backend: Any,
                 publish: Callable[[BackendEvent], None]) -> None:
        self.repo = repo
        self.backend = backend
        self.publish = publish

    async def execute(self, principal: Principal, cmd: str,
                      args: dict[str, Any]) -> dict[str, Any]:
        """Run one command for ``principal`` with ``args`` validated and scoped by the
        server (:func:`cti.scope.authorize`, Rule 1).

        Raises:
            CtiRequestError: ``not_found``, ``invalid_args``, ``internal``.
        """
        try:
            if cmd == "workorder.create":
                return await self._create(principal, args)
            if cmd == "workorder.update":
                return await self._update(principal, args)
            if cmd == "workorder.get":
                order = await self.repo.work_order_status(_number(args))
                if order is None:
                    raise CtiRequestError(ErrorCode.NOT_FOUND,
                                          f"no work order {args['number']}", "number")
                return order_dict(order, self.repo.tz)
            return await self._list(args)
        except HotlineError as exc:
            code = ErrorCode.NOT_FOUND if "no work order" in str(exc) else \
                ErrorCode.INVALID_ARGS
            raise CtiRequestError(code, str(exc), "number") from None
        except StorageError as exc:
            logger.warning("CTI %s: storage error: %s", cmd, exc)
            raise CtiRequestError(ErrorCode.INTERNAL, "work order storage unavailable"
                                  ) from None

    async def _caller_of(self, call_id: str) -> str:
        snap = await self.backend.snapshot()
        for call in snap.get("calls", []):
            if call.get("call_id") == call_id:
                return str(call.get("caller") or "")
        raise CtiRequestError(ErrorCode.NOT_FOUND, f"no call {call_id}", "call_id")

    async def _create(self, principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
        call_id = args.get("call_id")
        phone = args.get("phone") or ""
        queues: frozenset[str] = frozenset()
        if call_id:
            phone = phone or await self._caller_of(call_id)
            scope = await self.backend.call_scope(call_id)
            queues = frozenset({scope.queue}) if scope.queue else frozenset()
        if not (phone or args.get("account")):
            raise CtiRequestError(ErrorCode.INVALID_ARGS,
                                  "a work order needs a call_id, phone or account", "phone")
        number = await self.repo.create_work_order(
            args["kind"], account=args.get("account") or "", phone=phone,
            description=args.get("description") or "",
            department=args.get("department") or "", call_id=call_id or "")
        order = await self.repo.work_order_status(number)
        assert order is not None, "a work order just created"
        result = order_dict(order, self.repo.tz)
        agent_id = principal.agent_id
        self.publish(BackendEvent("workorder.created", {
            **result, "call_id": call_id, "agent_id": agent_id, "by": principal.user},
            queues, agent_id))
        if call_id:
            await self._tag_call(call_id, number)
        return {**result, "call_id": call_id}

    async def _tag_call(self, call_id: str, number: str) -> None:
        """Rule 2: the order's number in the call's attached data."""
        try:
            await self.backend.set_call_data(call_id=call_id, data={"work_order": number})
        except CtiRequestError as exc:  # the call ended meanwhile: the order stays
            logger.info("work order %s: call %s not tagged (%s)", number, call_id, exc.message)

    async def _update(self, principal: Principal, args: dict[str, Any]) -> dict[str, Any]:
        number = _number(args)
        if args.get("status") is None and args.get("progress") is None and \
                args.get("department") is None:
            raise CtiRequestError(ErrorCode.INVALID_ARGS,
                                  "nothing to update (status, progress or department)",
                                  "status")
        if await self.repo.work_order_status(number) is None:
            raise CtiRequestError(ErrorCode.NOT_FOUND, f"no work order {number}", "number")
        order = await self.repo.update_work_order(
            number, status=args.get("status"), progress=args.get("progress"),
            department=args.get("department"))
        result = order_dict(order, self.repo.tz)
        agent_id = principal.agent_id
        self.publish(BackendEvent("workorder.updated", {
            **result, "agent_id": agent_id, "by": principal.user}, frozenset(), agent_id))
        logger.info("work order %s updated by %s: status %s", number, principal.user,
                    order.status)
        return result

    async def _list(self, args: dict[str, Any]) -> dict[str, Any]:
        account = args.get("account") or ""
        if not account:
            phone = args.get("phone") or ""
            if not phone and args.get("call_id"):
                phone = await self._caller_of(args["call_id"])
            if not phone:
                raise CtiRequestError(ErrorCode.INVALID_ARGS,
                                      "workorder.list needs an account, phone or call_id",
                                      "account")
            resident = await self.repo.resident_by_phone(phone)
            if resident is None:
                return {"account": None, "orders": []}
            account = resident.account
        orders = await self.repo.open_work_orders(account)
        return {"account": account, "orders": [order_dict(o, self.repo.tz) for o in orders]}


def install(server: Any, repo: HotlineRepository) -> WorkOrderCommands:
    """Serve the work-order commands of ``server`` (a ``CtiServer``) from ``repo``: the
    command table (:data:`cti.dispatch.BUSINESS`) finds them as ``backend.workorders``;
    a server without them answers ``not_supported``."""
    handlers = WorkOrderCommands(repo, server.backend, server.publish)
    server.backend.workorders = handlers
    logger.info("CTI: work-order commands served from the hotline storage")
    return handlers
