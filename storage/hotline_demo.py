"""Demo data of the hotline, created at a node's first start (issue 5 item 6).

It agrees with ``ivr_lang/demo/hotline_mock.toml`` so that the simulator's transcripts and
a live call give the same answers: 张伟 (13800000000, VIP, account 100001) owes 350.50 due
2026-12-31; 李娜 (100002) owes nothing; 王芳 (100003) owes 1280.05 due 2026-12-15; work order
202611280007 is "维修师傅已出发" (updated 2026-11-29) and 20261120 "已完成". Here the totals are
made of separate water/power/gas/property bills, as the real tables hold them.

Nothing happens when any resident exists, so deleting the demo data and loading real data
is permanent.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from storage.db import Database
from storage.hotline_repository import HotlineRepository

logger = logging.getLogger(__name__)

__all__ = ["DEMO_BLOCKED", "DEMO_RESIDENTS", "ensure_hotline_demo"]

DEMO_RESIDENTS: tuple[tuple[str, str, str, tuple[str, ...], bool], ...] = (
    ("张伟", "3栋2单元501", "100001", ("13800000000",), True),
    ("李娜", "5栋1单元1202", "100002", ("13900001111",), False),
    ("王芳", "1栋3单元302", "100003", ("13600002222",), False),
    ("刘洋", "2栋1单元101", "100004", ("13700003333",), False),
    ("陈静", "6栋2单元803", "100005", ("13500004444", "15800004444"), True),
)
"""(name, unit, account, phones, vip)."""

_D = dt.date
DEMO_BILLS: tuple[tuple[str, str, str, str, dt.date, bool], ...] = (
    ("100001", "property", "2026-11", "200.00", _D(2026, 12, 31), False),
    ("100001", "water", "2026-11", "85.50", _D(2026, 12, 31), False),
    ("100001", "power", "2026-11", "65.00", _D(2026, 12, 31), False),
    ("100001", "gas", "2026-10", "42.00", _D(2026, 11, 30), True),
    ("100002", "property", "2026-11", "180.00", _D(2026, 12, 31), True),
    ("100002", "water", "2026-11", "60.00", _D(2026, 12, 31), True),
    ("100003", "property", "2026-11", "960.00", _D(2026, 12, 15), False),
    ("100003", "power", "2026-11", "230.55", _D(2026, 12, 31), False),
    ("100003", "gas", "2026-11", "89.50", _D(2026, 12, 31), False),
    ("100004", "property", "2026-11", "150.00", _D(2026, 12, 31), False),
    ("100005", "property", "2026-11", "320.00", _D(2026, 12, 31), True),
)
"""(account, kind, period, amount, due date, paid)."""

DEMO_BLOCKED = ("17000000000",)
"""A nuisance caller on the ``blocked`` list."""

_CN = dt.timezone(dt.timedelta(hours=8))


async def ensure_hotline_demo(db: Database, repo: HotlineRepository | None = None) -> bool:
    """Create the demo residents, bills, work orders and caller lists when there are no
    residents yet; returns True when it created them.

    Raises:
        StorageError: the database failed.
    """
    repo = repo or HotlineRepository(db)
    if await repo.count_residents() > 0:
        return False
    for name, unit, account, phones, vip in DEMO_RESIDENTS:
        await repo.add_resident(name, unit, account, list(phones), vip)
    for account, kind, period, amount, due, paid in DEMO_BILLS:
        await repo.add_bill(account, kind, period, Decimal(amount), due, paid)
    await _demo_orders(repo)
    for number in DEMO_BLOCKED:
        await repo.add_to_list("blocked", number, "demo: nuisance caller")
    logger.info("created the hotline demo data (%d residents)", len(DEMO_RESIDENTS))
    return True


async def _demo_orders(repo: HotlineRepository) -> None:
    await repo.import_work_order(
        "202611280007", "repair", account="100001", phone="13800000000",
        description="厨房水管漏水", status="in_progress", progress="维修师傅已出发",
        created_at=dt.datetime(2026, 11, 28, 9, 12, tzinfo=_CN),
        updated_at=dt.datetime(2026, 11, 29, 8, 40, tzinfo=_CN))
    await repo.import_work_order(
        "20261120", "complaint", account="100002", phone="13900001111",
        description="楼道灯不亮", status="closed", rating=5,
        created_at=dt.datetime(2026, 11, 20, 10, 0, tzinfo=_CN),
        updated_at=dt.datetime(2026, 11, 21, 16, 30, tzinfo=_CN))
