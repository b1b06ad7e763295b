"""The screen pop's resident record, read from the hotline's storage.

``call.delivered`` carries what the agent needs before saying a word (issue 6 point 7): who
calls (name, unit, VIP), what is open for them (work orders), what they owe (unpaid bills)
and when they called before (recent CDRs). :class:`StorageResidentDirectory` implements
:class:`cti.backend.ResidentDirectory` over :class:`storage.hotline_repository.
HotlineRepository`; everything is converted to JSON-ready values here (dates as ISO 8601,
money as a decimal string: floats would round cents, Rule 2 of the repository).
"""

from __future__ import annotations

import logging
from typing import Any

from storage.hotline_repository import HotlineRepository

logger = logging.getLogger(__name__)

__all__ = ["StorageResidentDirectory"]


class StorageResidentDirectory:
    """Resident records by caller number.

    Args:
        repo: the hotline repository.
        recent_calls: how many earlier calls to include.
    """

    def __init__(self, repo: HotlineRepository, recent_calls: int = 5) -> None:
        self.repo = repo
        self.recent_calls = recent_calls

    async def warm_up(self) -> None:
        """Run each query once (schema checks, statement compilation) at start-up, so the
        first caller's pop does not pay for them."""
        await self.repo.resident_by_phone("")
        await self.repo.open_work_orders("")
        await self.repo.bills_by_account("", unpaid_only=True)
        await self.repo.recent_calls("", 1)

    async def lookup(self, caller_number: str) -> dict[str, Any] | None:
        """The resident whose phone is ``caller_number``, or None for a stranger.

        Raises:
            storage.db.StorageError: the database failed (the caller logs it).
        """
        resident = await self.repo.resident_by_phone(caller_number)
        if resident is None:
            return None
        orders = await self.repo.open_work_orders(resident.account)
        bills = await self.repo.bills_by_account(resident.account, unpaid_only=True)
        calls = await self.repo.recent_calls(caller_number, self.recent_calls)
        return {
            "name": resident.name,
            "unit": resident.unit,
            "account": resident.account,
            "vip": resident.vip,
            "phones": list(resident.phones),
            "open_work_orders": [
                {"number": o.number, "kind": o.kind, "status": o.status,
                 "status_text": o.status_text, "department": o.department,
                 "description": o.description, "created_at": o.created_at.isoformat()}
                for o in orders],
            "unpaid_bills": [
                {"kind": b.kind, "period": b.period, "amount": str(b.amount),
                 "due_date": b.due_date.isoformat()}
                for b in bills],
            "recent_calls": [
                {"start_at": c.start_at.isoformat(), "callee": c.callee,
                 "disposition": str(getattr(c.disposition, "value", c.disposition)),
                 "duration_s": round(c.duration_s, 1), "agent_id": c.agent_id or None}
                for c in calls],
        }
