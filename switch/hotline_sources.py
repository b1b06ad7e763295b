"""The hotline demo's IVR data sources, bound to the live database.

``ivr_lang/demo/hotline.ivr`` declares::

    source 住户(phone) sql "SELECT name, unit, account, vip FROM residents WHERE phone = :phone"
    source 账单(account) sql "SELECT owed, due FROM bills WHERE account = :account"
    source 新建工单(account, phone) python "create_work_order"
    source 工单(number) sql "SELECT status, unit, updated FROM work_orders WHERE number = :number"

The SQL sources run as written against the views of ``storage/hotline_models.py`` (the same
shape as the simulator's mock tables), through :func:`make_sql_runner`; the Python source
``create_work_order`` and a few more lookups are registered from
:class:`~storage.hotline_repository.HotlineRepository` by :func:`hotline_python_sources`.

Rules:

* Rule 1 -- the SQL runner is read-only: one ``SELECT`` (or ``WITH ... SELECT``) statement,
  bound parameters only (``:name``), so a script can read but never change data. Writing goes
  through named Python functions.
* Rule 2 -- values come back as the script gets them from the simulator's mock tables, on
  SQLite and PostgreSQL alike: dates as ISO text (``2026-12-31``), numbers as ``Decimal``
  without trailing zeros (``350.5``, ``0``; SQLite gives floats, PostgreSQL
  ``Decimal('0.00')``), so transcripts of live calls match the simulated ones.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from ivr_lang.datasources import DataSources, SqlRunner
from storage.db import Database
from storage.hotline_repository import HotlineRepository

logger = logging.getLogger(__name__)

__all__ = ["ReadOnlySqlError", "hotline_data_sources", "hotline_python_sources",
           "make_sql_runner"]

_READ_ONLY = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)
_WRITES = re.compile(r"\b(insert|update|delete|drop|alter|create|replace|attach|pragma|"
                     r"grant|truncate)\b", re.IGNORECASE)


class ReadOnlySqlError(ValueError):
    """A script's SQL source is not a single read-only query (Rule 1)."""


def check_read_only(query: str) -> None:
    """Raises ReadOnlySqlError unless ``query`` is one SELECT/WITH statement."""
    body = query.strip().rstrip(";")
    if not _READ_ONLY.match(body) or ";" in body:
        raise ReadOnlySqlError("only one SELECT statement is allowed in a data source")
    stripped = re.sub(r"'(?:[^']|'')*'", "''", body)  # ignore words inside string literals
    if _WRITES.search(stripped):
        raise ReadOnlySqlError("a data source may only read (SELECT)")


def _number(value: Decimal) -> Decimal:
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return _number(Decimal(repr(value)))
    if isinstance(value, Decimal) and value.is_finite():
        return _number(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def make_sql_runner(db: Database) -> SqlRunner:
    """``ivr_lang.datasources.SqlRunner`` over the node's database (Rules 1 and 2)."""

    async def run(query: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        check_read_only(query)
        async with db.transaction() as session:
            result = await session.execute(text(query), dict(params))
            return [{k: _plain(v) for k, v in row.items()} for row in result.mappings()]

    return run


def hotline_python_sources(repo: HotlineRepository) -> dict[str, Callable[..., Any]]:
    """The Python functions a hotline script may name in ``source ... python "NAME"``."""

    async def create_work_order(account: Any, phone: Any, kind: Any = "repair",
                                description: Any = "") -> dict[str, str]:
        number = await repo.create_work_order(
            str(kind), account=str(account or ""), phone=str(phone or ""),
            description=str(description or ""))
        return {"number": number}

    async def resident_by_phone(phone: Any) -> dict[str, Any] | None:
        r = await repo.resident_by_phone(str(phone))
        return None if r is None else {"name": r.name, "unit": r.unit, "account": r.account,
                                       "vip": r.vip}

    async def work_order_status(number: Any) -> dict[str, Any] | None:
        o = await repo.work_order_status(str(number))
        if o is None:
            return None
        updated = o.updated_at.astimezone(repo.tz).date().isoformat()
        return {"status": o.status_text, "unit": o.unit, "updated": updated,
                "department": o.department}

    async def account_balance(account: Any) -> dict[str, Any] | None:
        found = await repo.balance(str(account))
        if found is None:
            return None
        owed, due = found
        return {"owed": owed, "due": due.isoformat() if due else None}

    async def open_work_orders(account: Any) -> dict[str, Any]:
        orders = await repo.open_work_orders(str(account))
        return {"count": len(orders), "numbers": [o.number for o in orders]}

    return {
        "create_work_order": create_work_order,
        "resident_by_phone": resident_by_phone,
        "work_order_status": work_order_status,
        "account_balance": account_balance,
        "open_work_orders": open_work_orders,
    }


def hotline_data_sources(db: Database, repo: HotlineRepository | None = None) -> DataSources:
    """DataSources for the hotline demo: the read-only SQL runner and the Python sources.
    Wrap it with ``ivr_lang.runtime.with_timeout`` for the interpreter's lookups."""
    repo = repo or HotlineRepository(db)
    return DataSources(sql=make_sql_runner(db), python=hotline_python_sources(repo))
