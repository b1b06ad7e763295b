"""CdrRepository on SQLite: round trips, idempotent inserts, queries by time and caller."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.cdr_repository import CdrRepository
from storage.db import Database
from switch.cdr import Cdr, CdrLeg, Disposition

T0 = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)


def _cdr(i: int, caller: str = "13800000000", **kw: object) -> Cdr:
    start = T0 + dt.timedelta(minutes=i)
    base: dict[str, object] = dict(
        uuid=f"cdr-{i:04d}", call_id=f"call-{i}", caller=caller, callee="12345",
        start_at=start, end_at=start + dt.timedelta(seconds=61.5),
        answer_at=start + dt.timedelta(seconds=1.5), disposition=Disposition.ANSWERED)
    base.update(kw)
    return Cdr(**base)  # type: ignore[arg-type]


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[CdrRepository]:
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'cdr.db'}") as db:
        yield CdrRepository(db)


async def test_round_trip_keeps_every_field(repo: CdrRepository) -> None:
    full = _cdr(
        1, route="hotline", target="ivr:hotline", source="trunk",
        hangup_cause="normal_clearing", hangup_side="callee", sip_status=None, codec="PCMA",
        recording_ref="recordings/2026/11/30/call-1.wav", queue="客服组", agent_id="7",
        tags={"类别": "报修", "工单号": "202611300001"},
        legs=(CdrLeg("a", "caller", "PCMA", "203.0.113.7:40000", 3000, 30, 12.5, 80.0, 4.2),
              CdrLeg("b", "callee", "PCMA", "192.168.1.20:5004", 2990, 0, 1.0, None, None)))
    assert await repo.insert_many([full]) == 1
    got = await repo.get(full.uuid)
    assert got == full
    assert got is not None and got.start_at.tzinfo is not None and got.billsec == 60.0


async def test_insert_many_is_idempotent(repo: CdrRepository) -> None:
    batch = [_cdr(i) for i in range(3)]
    assert await repo.insert_many(batch) == 3
    assert await repo.insert_many([*batch, _cdr(3), _cdr(3)]) == 1
    assert await repo.count() == 4
    assert await repo.insert_many([]) == 0


async def test_queries_by_time_range_and_caller(repo: CdrRepository) -> None:
    cdrs = [_cdr(i, caller="13800000000" if i % 2 else "13900001111") for i in range(10)]
    await repo.insert_many(list(reversed(cdrs)))
    window = await repo.between(T0 + dt.timedelta(minutes=2), T0 + dt.timedelta(minutes=6))
    assert [c.uuid for c in window] == ["cdr-0002", "cdr-0003", "cdr-0004", "cdr-0005"]
    cst = dt.timezone(dt.timedelta(hours=8))
    local = await repo.between(dt.datetime(2026, 11, 30, 10, 0, tzinfo=cst),
                               dt.datetime(2026, 11, 30, 10, 3, tzinfo=cst),
                               caller="13800000000")
    assert [c.uuid for c in local] == ["cdr-0001"]
    recent = await repo.recent_for_caller("13800000000", limit=3)
    assert [c.uuid for c in recent] == ["cdr-0009", "cdr-0007", "cdr-0005"]
    assert await repo.recent_for_caller("000") == []


async def test_many_cdrs_in_one_batch(repo: CdrRepository) -> None:
    assert await repo.insert_many([_cdr(i) for i in range(1200)]) == 1200
    assert await repo.insert_many([_cdr(i) for i in range(1195, 1205)]) == 5
