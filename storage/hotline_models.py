"""Hotline demo tables: residents, bills, work orders and caller lists (issue 5 item 6).

The IVR script ``ivr_lang/demo/hotline.ivr`` queries ``residents``, ``bills`` and
``work_orders`` with plain SQL, exactly as the simulator's mock tables
(``hotline_mock.toml``) are shaped. The real tables hold more (several phones per resident,
one bill per kind and period, a work order's whole life), so they are named ``hotline_*``
and three read-only VIEWS give the script its columns:

* ``residents(phone, name, unit, account, vip)`` -- one row per phone;
* ``bills(account, owed, due)`` -- per account: unpaid total and earliest unpaid due date
  (the latest due date when all is paid, with owed = 0);
* ``work_orders(number, status, unit, updated)`` -- status as the text a caller hears (the
  latest progress note, or the status in words), ``updated`` the local date of the last
  change.

The views are plain SQL-92 (no dialect functions), created after the tables and dropped
before them (metadata events), so ``create_all``/``drop_all`` handle them on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    DDL,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models import Base, utc_now

__all__ = [
    "BILL_KINDS",
    "CALLER_LISTS",
    "VIEWS",
    "WORK_ORDER_KINDS",
    "WORK_ORDER_STATUSES",
    "Bill",
    "CallerListEntry",
    "Resident",
    "ResidentPhone",
    "WorkOrder",
]

BILL_KINDS = ("water", "power", "gas", "property")
WORK_ORDER_KINDS = ("repair", "complaint", "inquiry")
WORK_ORDER_STATUSES = ("open", "assigned", "in_progress", "closed")
CALLER_LISTS = ("vip", "blocked")
STATUS_WORDS = {"open": "已受理", "assigned": "已派单", "in_progress": "正在处理",
                "closed": "已完成"}
"""What a caller hears for a status without a progress note."""


class Resident(Base):
    """A household: the account that bills are issued to."""

    __tablename__ = "hotline_residents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(16), unique=True)
    """The six-digit payment account printed on bills."""
    name: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(64))
    """Building/entrance/flat, e.g. 3栋2单元501."""
    vip: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    phones: Mapped[list[ResidentPhone]] = relationship(
        back_populates="resident", cascade="all, delete-orphan", lazy="selectin",
        order_by="ResidentPhone.id")


class ResidentPhone(Base):
    """A number a resident calls from (caller identification)."""

    __tablename__ = "hotline_resident_phones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resident_id: Mapped[int] = mapped_column(
        ForeignKey("hotline_residents.id", ondelete="CASCADE"), index=True)
    phone: Mapped[str] = mapped_column(String(32), unique=True)

    resident: Mapped[Resident] = relationship(back_populates="phones")


class Bill(Base):
    """One charge of one kind for one period."""

    __tablename__ = "hotline_bills"
    __table_args__ = (UniqueConstraint("account", "kind", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(16), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    """water, power, gas or property."""
    period: Mapped[str] = mapped_column(String(7))
    """The billing month, YYYY-MM."""
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    due_date: Mapped[dt.date] = mapped_column(Date)
    paid: Mapped[bool] = mapped_column(Boolean, default=False)
    paid_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class WorkOrder(Base):
    """A repair, complaint or inquiry and its progress."""

    __tablename__ = "hotline_work_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    """YYYYMMDD + a four-digit sequence of the day (local date): 202611300015."""
    kind: Mapped[str] = mapped_column(String(16))
    resident_id: Mapped[int | None] = mapped_column(
        ForeignKey("hotline_residents.id", ondelete="SET NULL"), index=True)
    account: Mapped[str] = mapped_column(String(16), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    unit: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open")
    department: Mapped[str] = mapped_column(String(64), default="")
    progress: Mapped[str | None] = mapped_column(Text)
    """The latest progress note callers hear ("维修师傅已出发"); None: the status in words."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_on: Mapped[dt.date] = mapped_column(Date)
    """Local date of ``updated_at`` (what the IVR reads out)."""
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    rating: Mapped[int | None] = mapped_column(Integer)
    """1-5 from the callback survey."""
    call_id: Mapped[str] = mapped_column(String(128), default="")
    """The call that created it, if any."""


class CallerListEntry(Base):
    """A number on a caller list (``vip``, ``blocked``) used by the dial plan."""

    __tablename__ = "caller_lists"
    __table_args__ = (UniqueConstraint("list_name", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_name: Mapped[str] = mapped_column(String(32), index=True)
    number: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


def _status_case() -> str:
    whens = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in STATUS_WORDS.items())
    return f"COALESCE(progress, CASE status {whens} ELSE status END)"


VIEWS: dict[str, str] = {
    "residents": (
        "SELECT p.phone AS phone, r.name AS name, r.unit AS unit, r.account AS account, "
        "r.vip AS vip FROM hotline_residents r "
        "JOIN hotline_resident_phones p ON p.resident_id = r.id"),
    "bills": (
        "SELECT account, ROUND(SUM(CASE WHEN paid THEN 0 ELSE amount END), 2) AS owed, "
        "COALESCE(MIN(CASE WHEN paid THEN NULL ELSE due_date END), MAX(due_date)) AS due "
        "FROM hotline_bills GROUP BY account"),
    "work_orders": (
        f"SELECT number, {_status_case()} AS status, unit, updated_on AS updated, "
        "kind, department FROM hotline_work_orders"),
}
"""The script-facing views (module docstring), in creation order."""

_BASE_TABLES = ("hotline_residents", "hotline_resident_phones", "hotline_bills",
                "hotline_work_orders")


def _tables_exist(ddl: object, target: object, bind: Any, **kw: object) -> bool:
    """Create the views only once their tables exist (create_all may have been asked for
    a subset of the metadata)."""
    inspector = inspect(bind)
    return all(inspector.has_table(t) for t in _BASE_TABLES)


def _when(dialect: str) -> Any:
    return lambda ddl, target, bind, **kw: (bind.dialect.name == dialect
                                            and _tables_exist(ddl, target, bind))


for _name, _select in VIEWS.items():
    event.listen(Base.metadata, "after_create",
                 DDL(f"CREATE VIEW IF NOT EXISTS {_name} AS {_select}").execute_if(
                     callable_=_when("sqlite")))
    event.listen(Base.metadata, "after_create",
                 DDL(f"CREATE OR REPLACE VIEW {_name} AS {_select}").execute_if(
                     callable_=_when("postgresql")))
    event.listen(Base.metadata, "before_drop", DDL(f"DROP VIEW IF EXISTS {_name}"))
