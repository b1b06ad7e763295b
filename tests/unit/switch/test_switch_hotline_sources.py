"""The hotline script's data sources against the live database agree with the simulator.

Each demo transcript that needs no mocked failure is replayed with the real interpreter,
the simulator's FakeCall (scripted keys, fake clock) and lookups through
``switch.hotline_sources`` on a SQLite database holding ``ensure_hotline_demo``'s data. The
transcript must be identical, line for line, to the one recorded against
``hotline_mock.toml``: the live tables and the mock tell callers the same things.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ivr_lang import ast as A
from ivr_lang.interpreter import Interpreter, TraceEvent
from ivr_lang.parser import parse
from ivr_lang.runtime import with_timeout
from ivr_lang.simulator import FakeCall, parse_options, parse_transcript_file
from storage.db import Database
from storage.hotline_demo import ensure_hotline_demo
from storage.hotline_repository import HotlineRepository
from switch.hotline_sources import (
    ReadOnlySqlError,
    check_read_only,
    hotline_data_sources,
    make_sql_runner,
)

DEMO = Path(__file__).resolve().parents[3] / "ivr_lang" / "demo"
LIVE_TRANSCRIPTS = [
    "after_hours_emergency", "after_hours_message", "after_hours_silence", "bill_bad_input",
    "bill_vip", "bill_zero_then_silence", "emergency_connected", "more_silence",
    "order_no_input", "order_status",
]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'hotline.db'}") as database:
        assert await ensure_hotline_demo(database)
        yield database


@pytest.fixture(scope="module")
def program() -> A.Program:
    return parse((DEMO / "hotline.ivr").read_text("utf-8"), "hotline.ivr")


async def _live_call(program: A.Program, db: Database, name: str) -> tuple[list[str], list[str]]:
    header, expected = parse_transcript_file((DEMO / f"{name}.transcript").read_text("utf-8"))
    options = parse_options(header)
    assert not options.mocks, "only transcripts without mocked failures run live"
    lines: list[str] = []
    call = FakeCall(options, lines)
    lookup_live = with_timeout(hotline_data_sources(db))

    async def lookup(src: A.SourceDecl, args: list[Any], timeout_s: float) -> Any:
        call.now_s += 0.05  # the simulator's cost of a lookup on its fake clock
        return await lookup_live(src, args, timeout_s)

    def trace(ev: TraceEvent) -> None:  # as ivr_lang.simulator.simulate prints it
        call.step = ev.step
        if ev.kind in ("goto", "lookup", "error"):
            call.log({"goto": "-> ", "lookup": "lookup ", "error": "error: "}[ev.kind]
                     + ev.detail)
        elif ev.kind == "end":
            lines.append(f"end: {ev.detail} at {call.now_s:.1f}s")

    await Interpreter(program, call, lookup, trace=trace).run()
    return lines, expected


@pytest.mark.parametrize("name", LIVE_TRANSCRIPTS)
async def test_live_database_gives_the_recorded_transcript(
        program: A.Program, db: Database, name: str) -> None:
    lines, expected = await _live_call(program, db, name)
    assert lines == expected


async def test_every_source_of_the_script_is_bound(program: A.Program, db: Database) -> None:
    sources = hotline_data_sources(db)
    for src in program.sources:
        if src.kind.text == "python":
            assert src.target in sources.python
    by_name = {s.name.text: s for s in program.sources}
    created = await sources.lookup(by_name["新建工单"], ["100001", "13800000000"], 3)
    assert re.fullmatch(r"20\d{6}0001", created["number"])  # today (local) + first of the day
    order = await sources.lookup(by_name["工单"], [created["number"]], 3)
    assert order is not None and order["status"] == "已受理" and order["unit"] == "3栋2单元501"
    assert await sources.lookup(by_name["住户"], ["15800004444"], 3) == {
        "name": "陈静", "unit": "6栋2单元803", "account": "100005", "vip": 1}
    assert await sources.lookup(by_name["账单"], ["100003"], 3) == {
        "owed": Decimal("1280.05"), "due": "2026-12-15"}


async def test_python_sources(db: Database) -> None:
    repo = HotlineRepository(db)
    fns = hotline_data_sources(db, repo).python
    assert await fns["resident_by_phone"]("13800000000") == {
        "name": "张伟", "unit": "3栋2单元501", "account": "100001", "vip": True}
    assert await fns["resident_by_phone"]("000") is None
    status = await fns["work_order_status"]("202611280007")
    assert status["status"] == "维修师傅已出发" and status["updated"] == "2026-11-29"
    balance = await fns["account_balance"]("100001")
    assert str(balance["owed"]) == "350.50" and balance["due"] == "2026-12-31"
    assert await fns["open_work_orders"]("100001") == {"count": 1, "numbers": ["202611280007"]}


@pytest.mark.parametrize("query", [
    "DELETE FROM residents",
    "SELECT 1; DROP TABLE hotline_bills",
    "UPDATE hotline_bills SET paid = 1",
    "WITH x AS (SELECT 1) DELETE FROM hotline_bills",
    "PRAGMA table_info(residents)",
])
def test_sql_runner_refuses_writes(query: str) -> None:
    with pytest.raises(ReadOnlySqlError):
        check_read_only(query)


async def test_sql_runner_reads_with_bound_parameters(db: Database) -> None:
    run = make_sql_runner(db)
    check_read_only("SELECT 'delete me' AS x")  # words inside literals are fine
    rows = await run("SELECT name FROM residents WHERE phone = :phone",
                     {"phone": "13800000000' OR '1'='1"})
    assert rows == []
    rows = await run("SELECT account, owed FROM bills WHERE account IN ('100001', '100002') "
                     "ORDER BY account", {})
    assert [(r["account"], str(r["owed"])) for r in rows] == [("100001", "350.5"),
                                                              ("100002", "0")]
    with pytest.raises(ReadOnlySqlError):
        await run("DELETE FROM hotline_bills", {})
