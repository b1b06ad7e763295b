"""Hotline business data: residents, bills, work orders, caller lists.

What the IVR data sources (``switch/hotline_sources.py``), the CTI screen pop and the dial
plan's caller lists need, over :class:`~storage.db.Database`.

Rules:

* Rule 1 -- work-order numbers are human friendly and can be keyed in on a phone:
  ``YYYYMMDD`` (local date, ``tz``) followed by a four-digit sequence of that day, 12 digits
  (``202611300015``) -- the IVR accepts 8 to 12 digits. Two nodes creating one at the same
  moment collide on the unique number; the loser retries with the next sequence.
* Rule 2 -- money is ``Decimal`` (``Numeric(12, 2)``), never float.
* Rule 3 -- the tables and views are created on first use if missing (as in
  ``storage/cdr_repository.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from storage.cdr_repository import CdrRepository, ensure_tables
from storage.db import Database, StorageConflictError, StorageError
from storage.hotline_models import (
    BILL_KINDS,
    CALLER_LISTS,
    STATUS_WORDS,
    WORK_ORDER_KINDS,
    WORK_ORDER_STATUSES,
    Bill,
    CallerListEntry,
    Resident,
    ResidentPhone,
    WorkOrder,
)
from storage.models import utc_now
from switch.cdr import Cdr

logger = logging.getLogger(__name__)

__all__ = [
    "DEPARTMENTS",
    "BillInfo",
    "HotlineError",
    "HotlineRepository",
    "ResidentInfo",
    "WorkOrderInfo",
]

DEPARTMENTS = {"repair": "工程部", "complaint": "客服部", "inquiry": "客服部"}
"""The department a new work order goes to by kind."""
_NUMBER_RETRIES = 5


class HotlineError(StorageError):
    """A hotline request that cannot be done (unknown kind, status, work order...)."""


@dataclass(frozen=True, slots=True)
class ResidentInfo:
    name: str
    unit: str
    account: str
    vip: bool
    phones: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BillInfo:
    account: str
    kind: str
    period: str
    amount: Decimal
    due_date: dt.date
    paid: bool


@dataclass(frozen=True, slots=True)
class WorkOrderInfo:
    number: str
    kind: str
    status: str
    status_text: str
    """What a caller hears: the progress note or the status in words."""
    department: str
    account: str
    phone: str
    unit: str
    description: str
    created_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    rating: int | None


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _resident(row: Resident) -> ResidentInfo:
    return ResidentInfo(row.name, row.unit, row.account, row.vip,
                        tuple(p.phone for p in row.phones))


def _bill(row: Bill) -> BillInfo:
    return BillInfo(row.account, row.kind, row.period, Decimal(row.amount).quantize(
        Decimal("0.01")), row.due_date, row.paid)


def _order(row: WorkOrder) -> WorkOrderInfo:
    created, updated = _aware(row.created_at), _aware(row.updated_at)
    assert created is not None and updated is not None
    return WorkOrderInfo(
        number=row.number, kind=row.kind, status=row.status,
        status_text=row.progress or STATUS_WORDS.get(row.status, row.status),
        department=row.department, account=row.account, phone=row.phone, unit=row.unit,
        description=row.description, created_at=created, updated_at=updated,
        closed_at=_aware(row.closed_at), rating=row.rating)


class HotlineRepository:
    """The hotline's business tables.

    Args:
        db: the database.
        tz: the site's time zone (work-order numbers and the dates callers hear).
    """

    def __init__(self, db: Database, tz: ZoneInfo | None = None) -> None:
        self._db = db
        self.tz = tz or ZoneInfo("Asia/Shanghai")
        self._ready = False
        self.cdrs = CdrRepository(db)

    async def ensure_schema(self) -> None:
        """Create the hotline tables and views if missing (Rule 3)."""
        if not self._ready:
            tables = [m.__table__ for m in (Resident, ResidentPhone, Bill, WorkOrder,
                                            CallerListEntry)]
            await ensure_tables(self._db, tables)  # type: ignore[arg-type]
            self._ready = True

    # --- residents ---------------------------------------------------------------------

    async def add_resident(self, name: str, unit: str, account: str, phones: list[str],
                           vip: bool = False) -> ResidentInfo:
        """Create a resident with its phones.

        Raises:
            StorageConflictError: the account or a phone exists.
        """
        await self.ensure_schema()
        row = Resident(name=name, unit=unit, account=account, vip=vip,
                       phones=[ResidentPhone(phone=p) for p in phones])
        async with self._db.transaction() as session:
            session.add(row)
        return ResidentInfo(name, unit, account, vip, tuple(phones))

    async def resident_by_phone(self, phone: str) -> ResidentInfo | None:
        """The resident calling from ``phone`` (caller identification), or None."""
        await self.ensure_schema()
        async with self._db.transaction() as session:
            row = await session.scalar(
                select(Resident).join(ResidentPhone).where(ResidentPhone.phone == phone))
            return None if row is None else _resident(row)

    async def resident_by_account(self, account: str) -> ResidentInfo | None:
        await self.ensure_schema()
        async with self._db.transaction() as session:
            row = await session.scalar(select(Resident).where(Resident.account == account))
            return None if row is None else _resident(row)

    async def count_residents(self) -> int:
        await self.ensure_schema()
        async with self._db.transaction() as session:
            return int(await session.scalar(select(func.count()).select_from(Resident)) or 0)

    # --- bills -------------------------------------------------------------------------

    async def add_bill(self, account: str, kind: str, period: str, amount: Decimal,
                       due_date: dt.date, paid: bool = False) -> None:
        if kind not in BILL_KINDS:
            raise HotlineError(f"unknown bill kind {kind!r} (expected {', '.join(BILL_KINDS)})")
        await self.ensure_schema()
        async with self._db.transaction() as session:
            session.add(Bill(account=account, kind=kind, period=period, amount=Decimal(amount),
                             due_date=due_date, paid=paid))

    async def bills_by_account(self, account: str, *, unpaid_only: bool = True
                               ) -> list[BillInfo]:
        """The account's bills (unpaid ones by default), by due date then kind."""
        await self.ensure_schema()
        query = select(Bill).where(Bill.account == account)
        if unpaid_only:
            query = query.where(Bill.paid.is_(False))
        async with self._db.transaction() as session:
            rows = await session.scalars(query.order_by(Bill.due_date, Bill.kind))
            return [_bill(r) for r in rows]

    async def balance(self, account: str) -> tuple[Decimal, dt.date | None] | None:
        """(unpaid total, earliest unpaid due date) of an account; None: no bills at all."""
        bills = await self.bills_by_account(account, unpaid_only=False)
        if not bills:
            return None
        unpaid = [b for b in bills if not b.paid]
        owed = sum((b.amount for b in unpaid), Decimal("0.00"))
        return owed, min((b.due_date for b in unpaid), default=None)

    # --- work orders -------------------------------------------------------------------

    def _local_date(self, now: dt.datetime) -> dt.date:
        return now.astimezone(self.tz).date()

    async def create_work_order(self, kind: str, *, account: str = "", phone: str = "",
                                description: str = "", department: str = "",
                                call_id: str = "", now: dt.datetime | None = None) -> str:
        """Create a work order and return its number (Rule 1). The resident is found by
        account, else by phone; its unit is copied onto the order.

        Raises:
            HotlineError: unknown kind.
            StorageUnavailableError: the database failed.
        """
        if kind not in WORK_ORDER_KINDS:
            raise HotlineError(f"unknown work order kind {kind!r} "
                               f"(expected {', '.join(WORK_ORDER_KINDS)})")
        await self.ensure_schema()
        now = now or utc_now()
        resident = (await self.resident_by_account(account) if account else None) or (
            await self.resident_by_phone(phone) if phone else None)
        prefix = self._local_date(now).strftime("%Y%m%d")
        for _attempt in range(_NUMBER_RETRIES):
            try:
                return await self._insert_order(prefix, kind, resident, account, phone,
                                                description, department, call_id, now)
            except StorageConflictError:
                logger.info("work order number taken concurrently; retrying")
        raise HotlineError(f"could not allocate a work order number for {prefix}")

    async def _insert_order(self, prefix: str, kind: str, resident: ResidentInfo | None,
                            account: str, phone: str, description: str, department: str,
                            call_id: str, now: dt.datetime) -> str:
        async with self._db.transaction() as session:
            last = await session.scalar(
                select(func.max(WorkOrder.number)).where(
                    WorkOrder.number.like(prefix + "____"),
                    func.length(WorkOrder.number) == len(prefix) + 4))
            seq = int(last[len(prefix):]) + 1 if last else 1
            if seq > 9999:
                raise HotlineError(f"more than 9999 work orders on {prefix}")
            number = f"{prefix}{seq:04d}"
            session.add(WorkOrder(
                number=number, kind=kind, account=resident.account if resident else account,
                phone=phone, unit=resident.unit if resident else "", description=description,
                status="open", department=department or DEPARTMENTS[kind], created_at=now,
                updated_at=now, updated_on=self._local_date(now), call_id=call_id))
        logger.info("work order %s (%s) created for %s", number, kind, account or phone)
        return number

    async def import_work_order(self, number: str, kind: str, *, account: str = "",
                                phone: str = "", description: str = "", status: str = "open",
                                progress: str | None = None, department: str = "",
                                rating: int | None = None, created_at: dt.datetime,
                                updated_at: dt.datetime) -> WorkOrderInfo:
        """Store an existing work order under its own number (data taken over from the
        previous system, demo data).

        Raises:
            HotlineError: unknown kind or status.
            StorageConflictError: the number exists.
        """
        if kind not in WORK_ORDER_KINDS or status not in WORK_ORDER_STATUSES:
            raise HotlineError(f"unknown kind {kind!r} or status {status!r}")
        await self.ensure_schema()
        resident = await self.resident_by_account(account) if account else None
        row = WorkOrder(
            number=number, kind=kind, account=account, phone=phone,
            unit=resident.unit if resident else "", description=description, status=status,
            department=department or DEPARTMENTS[kind], progress=progress,
            created_at=created_at, updated_at=updated_at,
            updated_on=self._local_date(updated_at),
            closed_at=updated_at if status == "closed" else None, rating=rating)
        async with self._db.transaction() as session:
            session.add(row)
        return _order(row)

    async def work_order_status(self, number: str) -> WorkOrderInfo | None:
        """The work order ``number``, or None."""
        await self.ensure_schema()
        async with self._db.transaction() as session:
            row = await session.scalar(select(WorkOrder).where(WorkOrder.number == number))
            return None if row is None else _order(row)

    async def open_work_orders(self, account: str) -> list[WorkOrderInfo]:
        """The account's work orders that are not closed, oldest first."""
        await self.ensure_schema()
        async with self._db.transaction() as session:
            rows = await session.scalars(
                select(WorkOrder).where(WorkOrder.account == account,
                                        WorkOrder.status != "closed")
                .order_by(WorkOrder.created_at, WorkOrder.id))
            return [_order(r) for r in rows]

    async def update_work_order(self, number: str, *, status: str | None = None,
                                progress: str | None = None, department: str | None = None,
                                rating: int | None = None, now: dt.datetime | None = None
                                ) -> WorkOrderInfo:
        """Change a work order's status, progress note, department or survey rating.

        Raises:
            HotlineError: no such order, unknown status, rating outside 1-5.
        """
        if status is not None and status not in WORK_ORDER_STATUSES:
            raise HotlineError(f"unknown status {status!r}")
        if rating is not None and not 1 <= rating <= 5:
            raise HotlineError(f"rating must be 1-5, got {rating}")
        await self.ensure_schema()
        now = now or utc_now()
        async with self._db.transaction() as session:
            row = await session.scalar(select(WorkOrder).where(WorkOrder.number == number))
            if row is None:
                raise HotlineError(f"no work order {number}")
            if status is not None:
                row.status = status
                row.closed_at = now if status == "closed" else None
            if progress is not None:
                row.progress = progress or None
            if department is not None:
                row.department = department
            if rating is not None:
                row.rating = rating
            row.updated_at, row.updated_on = now, self._local_date(now)
            return _order(row)

    # --- caller lists --------------------------------------------------------------------

    async def add_to_list(self, list_name: str, number: str, note: str = "") -> None:
        """Put ``number`` on a caller list (idempotent).

        Raises:
            HotlineError: unknown list.
        """
        if list_name not in CALLER_LISTS:
            raise HotlineError(f"unknown caller list {list_name!r} "
                               f"(expected {', '.join(CALLER_LISTS)})")
        await self.ensure_schema()
        async with self._db.transaction() as session:
            exists = await session.scalar(select(CallerListEntry.id).where(
                CallerListEntry.list_name == list_name, CallerListEntry.number == number))
            if exists is None:
                session.add(CallerListEntry(list_name=list_name, number=number, note=note))

    async def remove_from_list(self, list_name: str, number: str) -> bool:
        await self.ensure_schema()
        async with self._db.transaction() as session:
            row = await session.scalar(select(CallerListEntry).where(
                CallerListEntry.list_name == list_name, CallerListEntry.number == number))
            if row is None:
                return False
            await session.delete(row)
            return True

    async def caller_lists(self) -> dict[str, frozenset[str]]:
        """List name -> numbers, for ``DialPlan.route``: the ``caller_lists`` rows, plus
        every phone of a VIP resident in ``vip``."""
        await self.ensure_schema()
        lists: dict[str, set[str]] = {name: set() for name in CALLER_LISTS}
        async with self._db.transaction() as session:
            for name, number in await session.execute(
                    select(CallerListEntry.list_name, CallerListEntry.number)):
                lists.setdefault(name, set()).add(number)
            lists["vip"].update(await session.scalars(
                select(ResidentPhone.phone).join(Resident).where(Resident.vip.is_(True))))
        return {name: frozenset(numbers) for name, numbers in lists.items()}

    # --- calls -----------------------------------------------------------------------------

    async def recent_calls(self, phone: str, limit: int = 5) -> list[Cdr]:
        """The caller's latest CDRs, newest first (screen pop)."""
        return await self.cdrs.recent_for_caller(phone, limit)
