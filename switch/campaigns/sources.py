"""Contact lists from the hotline's storage: a building, arrears, a closed work order.

These are the storage queries behind ``softswitch campaign create --building``,
``--overdue-days`` and ``--work-order`` (the async shell: they read the database, never
the clock -- ``today`` is an argument).

Rules:

* Rule 1 -- one contact per resident (household), called on the first phone stored for it
  (the number the resident registered first).
* Rule 2 -- arrears: a bill is overdue when unpaid and its due date is more than
  ``min_days`` days before ``today``. The amount is the sum of the resident's overdue
  bills, the due date the earliest of them (what the reminder reads out).
* Rule 3 -- a repair survey is for a CLOSED work order; the number called is the one the
  order was reported from, else the resident's first phone.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from sqlalchemy import select

from storage.campaign_repository import CampaignRepository
from storage.db import Database
from storage.hotline_models import Bill, Resident, WorkOrder
from storage.hotline_repository import HotlineRepository
from switch.campaigns.model import (
    Campaign,
    CampaignCommand,
    CampaignError,
    CampaignKind,
    NewContact,
)

logger = logging.getLogger(__name__)

__all__ = [
    "SourceError",
    "arrears_residents",
    "building_residents",
    "start_repair_survey",
    "work_order_resident",
]


class SourceError(CampaignError):
    """A contact list that cannot be built (unknown or open work order, no phone...)."""


def _resident_contact(row: Resident, extra: dict[str, str]) -> NewContact | None:
    if not row.phones:
        logger.warning("resident %s (%s) has no phone; left out", row.account, row.unit)
        return None
    return NewContact(row.name, row.phones[0].phone,
                      {"account": row.account, "unit": row.unit, **extra})


async def building_residents(db: Database, unit_prefix: str) -> list[NewContact]:
    """Residents whose unit starts with ``unit_prefix`` ("3栋", "3栋2单元"), by unit.

    Raises:
        SourceError: an empty prefix (that would be every resident).
    """
    if not unit_prefix.strip():
        raise SourceError("give a building, e.g. 3栋")
    await HotlineRepository(db).ensure_schema()
    async with db.transaction() as session:
        rows = await session.scalars(select(Resident).where(
            Resident.unit.startswith(unit_prefix.strip(), autoescape=True))
            .order_by(Resident.unit, Resident.id))
        found = [_resident_contact(r, {}) for r in rows]
    return [c for c in found if c is not None]


async def arrears_residents(db: Database, *, min_days: int, today: dt.date
                            ) -> list[NewContact]:
    """Residents with bills unpaid more than ``min_days`` days past due (Rule 2), by the
    earliest due date."""
    if min_days < 0:
        raise SourceError(f"days overdue must be >= 0, got {min_days}")
    cutoff = today - dt.timedelta(days=min_days)
    await HotlineRepository(db).ensure_schema()
    async with db.transaction() as session:
        bills = (await session.execute(
            select(Bill.account, Bill.amount, Bill.due_date)
            .where(Bill.paid.is_(False), Bill.due_date < cutoff))).all()
        owed: dict[str, tuple[Decimal, dt.date]] = {}
        for account, amount, due in bills:
            total, first = owed.get(account, (Decimal("0.00"), due))
            owed[account] = (total + Decimal(amount), min(first, due))
        residents = await session.scalars(select(Resident).where(
            Resident.account.in_(list(owed))))
        found = []
        for r in residents:
            total, first = owed[r.account]
            contact = _resident_contact(r, {"amount": str(total.quantize(Decimal("0.01"))),
                                            "due_date": first.isoformat()})
            if contact is not None:
                found.append((first, r.account, contact))
    return [c for _, _, c in sorted(found, key=lambda t: (t[0], t[1]))]


async def work_order_resident(db: Database, number: str) -> NewContact:
    """The resident to call about the closed work order ``number`` (Rule 3).

    Raises:
        SourceError: no such order, not closed, or no number to call.
    """
    await HotlineRepository(db).ensure_schema()
    async with db.transaction() as session:
        order = await session.scalar(select(WorkOrder).where(WorkOrder.number == number))
        if order is None:
            raise SourceError(f"no work order {number}")
        if order.status != "closed":
            raise SourceError(f"work order {number} is {order.status}, not closed")
        resident = None
        if order.account:
            resident = await session.scalar(
                select(Resident).where(Resident.account == order.account))
        phone = order.phone or (resident.phones[0].phone if resident and resident.phones
                                else "")
        if not phone:
            raise SourceError(f"work order {number} has no phone to call back")
        name = resident.name if resident is not None else "业主"
        return NewContact(name, phone, {"work_order": number, "account": order.account,
                                        "unit": order.unit})


async def start_repair_survey(repo: CampaignRepository, number: str, *,
                              template: Campaign | None = None) -> Campaign:
    """The 报修回访 of one closed work order: a RUNNING campaign named ``报修回访-NUMBER``
    with its resident as the only contact (the node's dialer picks it up). Call it when a
    work order is closed.

    Raises:
        SourceError: see :func:`work_order_resident`.
        DuplicateCampaignError: the survey of this order exists already.
    """
    contact = await work_order_resident(repo.db, number)
    base = template or Campaign(name="", kind=CampaignKind.REPAIR_SURVEY)
    campaign = Campaign(
        name=f"报修回访-{number}", kind=CampaignKind.REPAIR_SURVEY, window=base.window,
        limits=base.limits, retry=base.retry, params=base.params,
        ivr_program=base.ivr_program, trunk=base.trunk, source=f"work order {number}",
        ring_timeout_s=base.ring_timeout_s)
    created = await repo.create(campaign, [contact])
    await repo.command(created.name, CampaignCommand.START)
    return await repo.get(created.name)

