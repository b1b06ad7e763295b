"""HotlineRepository and the demo data on SQLite."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import Database
from storage.hotline_demo import DEMO_RESIDENTS, ensure_hotline_demo
from storage.hotline_repository import HotlineError, HotlineRepository
from storage.models import Base

CST = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}") as database:
        yield database


async def test_demo_is_created_once_and_matches_the_mock(db: Database) -> None:
    repo = HotlineRepository(db)
    assert await ensure_hotline_demo(db, repo)
    assert not await ensure_hotline_demo(db, repo)
    assert await repo.count_residents() == len(DEMO_RESIDENTS)
    zhang = await repo.resident_by_phone("13800000000")
    assert zhang is not None and (zhang.name, zhang.unit, zhang.account, zhang.vip) == (
        "张伟", "3栋2单元501", "100001", True)
    assert await repo.balance("100001") == (Decimal("350.50"), dt.date(2026, 12, 31))
    assert await repo.balance("100002") == (Decimal("0.00"), None)
    assert await repo.balance("100003") == (Decimal("1280.05"), dt.date(2026, 12, 15))
    assert await repo.balance("999999") is None
    unpaid = await repo.bills_by_account("100001")
    assert [(b.kind, b.amount) for b in unpaid] == [
        ("power", Decimal("65.00")), ("property", Decimal("200.00")),
        ("water", Decimal("85.50"))]
    assert len(await repo.bills_by_account("100001", unpaid_only=False)) == 4
    order = await repo.work_order_status("202611280007")
    assert order is not None and order.status_text == "维修师傅已出发"
    assert order.status == "in_progress" and order.department == "工程部"
    legacy = await repo.work_order_status("20261120")
    assert legacy is not None and legacy.status_text == "已完成" and legacy.rating == 5


async def test_views_have_the_mock_columns(db: Database) -> None:
    await ensure_hotline_demo(db)
    async with db.transaction() as session:
        res = (await session.execute(text("SELECT * FROM residents WHERE phone = '13900001111'"))
               ).mappings().one()
        assert {"phone", "name", "unit", "account", "vip"} <= set(res)
        bill = (await session.execute(text("SELECT * FROM bills WHERE account = '100001'"))
                ).mappings().one()
        assert {"account", "owed", "due"} <= set(bill)
        order = (await session.execute(
            text("SELECT * FROM work_orders WHERE number = '202611280007'"))).mappings().one()
        assert (order["status"], order["unit"], order["updated"]) == (
            "维修师傅已出发", "3栋2单元501", "2026-11-29")


async def test_work_order_numbers_are_local_date_plus_sequence(db: Database) -> None:
    repo = HotlineRepository(db)
    await ensure_hotline_demo(db, repo)
    # 23:30 UTC on the 29th is already the 30th in Shanghai.
    now = dt.datetime(2026, 11, 29, 23, 30, tzinfo=dt.UTC)
    first = await repo.create_work_order("repair", phone="13800000000", now=now)
    second = await repo.create_work_order("complaint", account="100003", now=now)
    assert (first, second) == ("202611300001", "202611300002")
    # The demo's order is the 7th of the 28th: the next one that day is the 8th.
    nov28 = dt.datetime(2026, 11, 28, 15, 0, tzinfo=CST)
    assert await repo.create_work_order("inquiry", now=nov28) == "202611280008"
    o = await repo.work_order_status(first)
    assert o is not None and (o.account, o.unit, o.department, o.status) == (
        "100001", "3栋2单元501", "工程部", "open")
    assert [w.number for w in await repo.open_work_orders("100001")] == [
        "202611280007", first]


async def test_work_order_life_cycle(db: Database) -> None:
    repo = HotlineRepository(db)
    await ensure_hotline_demo(db, repo)
    t = dt.datetime(2026, 12, 1, 9, 0, tzinfo=CST)
    number = await repo.create_work_order("repair", account="100003", description="门锁坏了",
                                          now=t)
    o = await repo.update_work_order(number, status="assigned", department="工程部",
                                     now=t + dt.timedelta(hours=1))
    assert o.status_text == "已派单"
    o = await repo.update_work_order(number, status="in_progress", progress="师傅已上门",
                                     now=t + dt.timedelta(hours=2))
    assert o.status_text == "师傅已上门"
    o = await repo.update_work_order(number, status="closed", rating=4, progress="",
                                     now=t + dt.timedelta(days=1))
    assert o.status_text == "已完成" and o.rating == 4
    assert o.closed_at == (t + dt.timedelta(days=1)).astimezone(dt.UTC)
    assert await repo.open_work_orders("100003") == []
    with pytest.raises(HotlineError):
        await repo.update_work_order(number, rating=6)
    with pytest.raises(HotlineError):
        await repo.update_work_order("404", status="closed")
    with pytest.raises(HotlineError):
        await repo.create_work_order("flood")


async def test_caller_lists(db: Database) -> None:
    repo = HotlineRepository(db)
    await ensure_hotline_demo(db, repo)
    lists = await repo.caller_lists()
    assert lists["vip"] == {"13800000000", "13500004444", "15800004444"}
    assert lists["blocked"] == {"17000000000"}
    await repo.add_to_list("vip", "13900001111", "board member")
    await repo.add_to_list("vip", "13900001111")
    await repo.add_to_list("blocked", "95000000000")
    assert await repo.remove_from_list("blocked", "17000000000")
    assert not await repo.remove_from_list("blocked", "17000000000")
    lists = await repo.caller_lists()
    assert "13900001111" in lists["vip"] and lists["blocked"] == {"95000000000"}
    with pytest.raises(HotlineError):
        await repo.add_to_list("gold", "1")


async def test_tables_and_views_survive_drop_all_and_create_all(db: Database) -> None:
    await ensure_hotline_demo(db)
    async with db.transaction() as session:
        conn = await session.connection()
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    repo = HotlineRepository(db)
    assert await repo.count_residents() == 0
    assert await ensure_hotline_demo(db, repo)
    assert await repo.balance("100001") == (Decimal("350.50"), dt.date(2026, 12, 31))


async def test_schema_is_created_on_first_use(db: Database) -> None:
    """A node whose database was created before the hotline tables existed."""
    async with db.transaction() as session:
        for view in ("residents", "bills", "work_orders"):
            await session.execute(text(f"DROP VIEW {view}"))
        for table in ("hotline_work_orders", "hotline_bills", "hotline_resident_phones",
                      "hotline_residents", "caller_lists"):
            await session.execute(text(f"DROP TABLE {table}"))
    repo = HotlineRepository(db)
    assert await ensure_hotline_demo(db, repo)
    async with db.transaction() as session:
        owed = await session.scalar(text("SELECT owed FROM bills WHERE account = '100001'"))
    assert owed == 350.5


async def test_recent_calls_come_from_cdrs(db: Database) -> None:
    from switch.cdr import Cdr, Disposition

    repo = HotlineRepository(db)
    start = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)
    await repo.cdrs.insert_many([Cdr(
        uuid=f"u{i}", call_id=f"c{i}", caller="13800000000", callee="12345",
        start_at=start + dt.timedelta(hours=i), end_at=start + dt.timedelta(hours=i, minutes=2),
        disposition=Disposition.ANSWERED) for i in range(3)])
    assert [c.uuid for c in await repo.recent_calls("13800000000", 2)] == ["u2", "u1"]


PG_URL = os.environ.get("SOFTSWITCH_TEST_PG_URL", "")


@pytest.mark.skipif(not PG_URL, reason="SOFTSWITCH_TEST_PG_URL not set")
async def test_demo_and_views_on_postgres() -> None:
    """The views are plain SQL: the script's queries give the same answers on PostgreSQL
    (this drops and recreates the softswitch tables: point it at a scratch database)."""
    pytest.importorskip("asyncpg")
    async with Database(PG_URL) as pg:
        async with pg.transaction() as session:
            conn = await session.connection()
            await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)
        repo = HotlineRepository(pg)
        assert await ensure_hotline_demo(pg, repo)
        async with pg.transaction() as session:
            bill = (await session.execute(
                text("SELECT owed, due FROM bills WHERE account = :a"), {"a": "100003"})
            ).one()
            order = (await session.execute(text(
                "SELECT status, unit, updated FROM work_orders WHERE number = '202611280007'"))
            ).one()
        assert bill == (Decimal("1280.05"), dt.date(2026, 12, 15))
        assert order == ("维修师傅已出发", "3栋2单元501", dt.date(2026, 11, 29))
        assert (await repo.caller_lists())["blocked"] == {"17000000000"}
