"""CDRs: MOS from the E-model, building CDRs from events, the writer's outage spool."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from storage.cdr_repository import CdrRepository
from storage.db import Database, StorageConflictError, StorageUnavailableError
from switch.bus import EventBus
from switch.cdr import (
    Cdr,
    CdrCollector,
    CdrLeg,
    CdrWriter,
    Disposition,
    disposition_for,
    estimate_mos,
    r_factor,
)
from switch.events import (
    CallAnswered,
    CallDequeued,
    CallHungUp,
    CallOffered,
    CallQueued,
    CallRouted,
    LegMediaStats,
    RecordingStarted,
)

T0 = 1_796_000_000.0  # 2026-11-30


def _cdr(i: int, **kw: object) -> Cdr:
    start = dt.datetime.fromtimestamp(T0 + i, dt.UTC)
    base: dict[str, object] = dict(
        uuid=f"u{i:05d}", call_id=f"call-{i}", caller="13800000000", callee="12345",
        start_at=start, end_at=start + dt.timedelta(seconds=30),
        answer_at=start + dt.timedelta(seconds=2), disposition=Disposition.ANSWERED,
        route="hotline", target="ivr:hotline", codec="PCMA", tags={"类别": "报修"},
        legs=(CdrLeg("a", "caller", "PCMA", "10.0.0.1:4000", 1490, 10, 4.5, 30.0, 4.3),))
    base.update(kw)
    return Cdr(**base)  # type: ignore[arg-type]


# --- MOS ----------------------------------------------------------------------------------


def test_mos_of_a_clean_g711_call_is_near_the_g107_default() -> None:
    # R = 93.2 - Id(20 ms packetisation) = 92.72 -> MOS 4.40 (G.107 Annex B)
    assert r_factor(0, 0) == pytest.approx(93.2 - 0.024 * 20)
    assert estimate_mos(0, 0) == pytest.approx(4.40, abs=0.01)


def test_mos_falls_with_loss_jitter_and_delay() -> None:
    assert estimate_mos(1, 0) < estimate_mos(0, 0)
    assert estimate_mos(5, 0) < estimate_mos(1, 0)
    assert estimate_mos(0, 40) < estimate_mos(0, 0)
    assert estimate_mos(0, 0, 300) < estimate_mos(0, 0, 100)
    # Ie,eff = 95 * 2 / (2 + 25.1) with PLC (G.113 Bpl), and 95 * 2 / (2 + 4.3) without.
    assert r_factor(2, 0) == pytest.approx(92.72 - 95 * 2 / 27.1)
    assert r_factor(2, 0, plc=False) == pytest.approx(92.72 - 95 * 2 / 6.3)
    # Beyond 177.3 ms the second delay term applies.
    d = 300 + 20
    assert r_factor(0, 0, 300) == pytest.approx(93.2 - 0.024 * d - 0.11 * (d - 177.3))


def test_mos_is_bounded() -> None:
    assert estimate_mos(100, 500, 2000) == 1.0
    assert 1.0 <= estimate_mos(30, 80, 150) < 3.0


def test_dispositions() -> None:
    assert disposition_for(True, None, "normal_clearing") is Disposition.ANSWERED
    assert disposition_for(False, 486, "") is Disposition.BUSY
    assert disposition_for(False, 487, "") is Disposition.CANCELLED
    assert disposition_for(False, None, "originator_cancel") is Disposition.CANCELLED
    assert disposition_for(False, 480, "") is Disposition.NO_ANSWER
    assert disposition_for(False, 503, "") is Disposition.FAILED


def test_json_round_trip() -> None:
    cdr = _cdr(1, answer_at=None, disposition=Disposition.NO_ANSWER, sip_status=480)
    assert Cdr.from_json(cdr.to_json()) == cdr


# --- collector ----------------------------------------------------------------------------


async def test_collector_builds_one_cdr_per_attempt_from_bus_events() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    out: list[Cdr] = []
    collector = CdrCollector(out.append)
    c = dict(call_id="c1")
    for ev in [
        CallOffered(at=T0, channel="a", caller="13800000000", callee="12345", source="trunk", **c),
        CallRouted(at=T0, channel="a", rule="hotline", target="ivr:hotline", **c),
        CallAnswered(at=T0 + 1, channel="a", codec="PCMA", **c),
        RecordingStarted(at=T0 + 2, channel="a", ref="rec/c1.wav", **c),
        CallQueued(at=T0 + 20, channel="a", queue="客服组", **c),
        CallOffered(at=T0 + 25, channel="b", caller="12345", callee="1001", **c),
        CallDequeued(at=T0 + 30, channel="a", queue="客服组", reason="answered",
                     agent_id="7", **c),
        LegMediaStats(at=T0 + 90, channel="a", codec="PCMA", packets_received=4400,
                      packets_lost=100, jitter_ms=12.0, rtt_ms=60.0, **c),
        LegMediaStats(at=T0 + 90, channel="b", codec="PCMA", packets_received=3000,
                      packets_lost=0, jitter_ms=2.0, **c),
        CallHungUp(at=T0 + 90, channel="b", cause="normal_clearing", side="callee", **c),
        CallHungUp(at=T0 + 90, channel="a", cause="normal_clearing", side="callee", **c),
        CallOffered(at=T0 + 100, channel="x", caller="1001", callee="1002", call_id="c2"),
        CallHungUp(at=T0 + 130, channel="x", cause="originator_cancel", side="caller",
                   sip_status=487, call_id="c2"),
    ]:
        bus.publish(ev)
    while (ev := sub.get_nowait()) is not None:
        collector.handle(ev)
    assert len(out) == 2 and collector.open_calls == 0
    first, second = out
    assert (first.caller, first.callee, first.route, first.target) == (
        "13800000000", "12345", "hotline", "ivr:hotline")
    assert first.disposition is Disposition.ANSWERED and first.billsec == 89.0
    assert first.duration_s == 90.0 and first.queue == "客服组" and first.agent_id == "7"
    assert first.recording_ref == "rec/c1.wav" and first.source == "trunk"
    assert [(leg.channel, leg.role) for leg in first.legs] == [("a", "caller"), ("b", "callee")]
    a = first.legs[0]
    assert a.loss_pct == pytest.approx(100 / 4500 * 100)
    assert a.mos == estimate_mos(100 / 4500 * 100, 12.0, 30.0)
    assert second.disposition is Disposition.CANCELLED and second.answer_at is None
    assert second.hangup_side == "caller" and second.uuid != first.uuid


def test_collector_finish_all_at_shutdown() -> None:
    out: list[Cdr] = []
    collector = CdrCollector(out.append)
    collector.handle(CallOffered(at=T0, call_id="c", channel="a", caller="1", callee="2"))
    collector.handle(CallAnswered(at=T0 + 1, call_id="c", channel="a"))
    collector.tag("c", "工单号", "202611300001")
    assert collector.finish_all(T0 + 10) == 1
    assert out[0].hangup_cause == "shutdown" and out[0].hangup_side == "system"
    assert out[0].tags == {"工单号": "202611300001"}


# --- writer -------------------------------------------------------------------------------


class FakeSink:
    """Stores by uuid; raises StorageUnavailableError while ``down``."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.rows: dict[str, Cdr] = {}
        self.calls = 0
        self.refuse: set[str] = set()

    async def insert_many(self, cdrs: Sequence[Cdr]) -> int:
        self.calls += 1
        if self.down:
            raise StorageUnavailableError("database is locked")
        if any(c.uuid in self.refuse for c in cdrs):
            raise StorageConflictError("CHECK constraint failed")
        fresh = [c for c in cdrs if c.uuid not in self.rows]
        self.rows.update((c.uuid, c) for c in fresh)
        return len(fresh)


def _spool_uuids(path: Path) -> list[str]:
    return [json.loads(line)["uuid"] for line in path.read_text("utf-8").splitlines()]


async def test_batches_are_written_in_the_background(tmp_path: Path) -> None:
    sink = FakeSink()
    writer = CdrWriter(sink, tmp_path / "spool.jsonl", batch_size=10)
    await writer.start()
    for i in range(25):
        writer.submit(_cdr(i))
    assert writer.pending == 25  # submit does not wait
    for _ in range(50):
        if not writer.pending:
            break
        await asyncio.sleep(0)
    assert len(sink.rows) == 25 and writer.written == 25 and sink.calls == 3
    assert not (tmp_path / "spool.jsonl").exists()
    await writer.close()


async def test_outage_spools_then_recovers_and_empties_spool(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    sink = FakeSink(down=True)
    writer = CdrWriter(sink, spool, retry_interval_s=0.01)
    await writer.start()
    for i in range(3):
        writer.submit(_cdr(i))
    assert not await writer.flush()
    assert writer.outage and writer.pending == 3 and writer.spooled == 3
    assert _spool_uuids(spool) == ["u00000", "u00001", "u00002"]
    calls = sink.calls
    writer.submit(_cdr(3))  # during the outage: spooled at once, no extra database attempt
    assert _spool_uuids(spool) == ["u00000", "u00001", "u00002", "u00003"]
    await asyncio.sleep(0)
    assert sink.calls == calls
    assert not await writer.flush()
    assert _spool_uuids(spool) == ["u00000", "u00001", "u00002", "u00003"]  # no duplicates
    sink.down = False
    for _ in range(200):  # the retry timer notices the database is back
        if not writer.outage:
            break
        await asyncio.sleep(0.01)
    assert not writer.outage and sorted(sink.rows) == ["u00000", "u00001", "u00002", "u00003"]
    assert not spool.exists()
    await writer.close()


async def test_crash_during_outage_then_replay_into_real_sqlite(tmp_path: Path) -> None:
    spool = tmp_path / "data" / "cdr-spool.jsonl"
    down = CdrWriter(FakeSink(down=True), spool)
    await down.start()
    cdrs = [_cdr(i) for i in range(5)]
    for cdr in cdrs:
        down.submit(cdr)
    assert not await down.close()  # shutdown during the outage: all spooled
    assert len(_spool_uuids(spool)) == 5
    # "Crash": the first writer is gone. A new node starts on a working database, and
    # the first two CDRs were in fact committed before the crash (idempotent replay).
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'cdr.db'}") as db:
        repo = CdrRepository(db)
        assert await repo.insert_many(cdrs[:2]) == 2
        writer = CdrWriter(repo, spool)
        await writer.start()
        assert writer.pending == 0 and not spool.exists()
        assert await repo.count() == 5
        assert await repo.get("u00004") == cdrs[4]
        await writer.close()


async def test_damaged_spool_line_is_skipped(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    spool.write_text(_cdr(1).to_json() + "\n{not json\n" + _cdr(2).to_json()[:40], "utf-8")
    sink = FakeSink()
    writer = CdrWriter(sink, spool)
    await writer.start()
    assert list(sink.rows) == ["u00001"] and not spool.exists()
    await writer.close()


async def test_refused_cdr_goes_to_rejected_file_and_others_are_written(tmp_path: Path) -> None:
    sink = FakeSink()
    sink.refuse = {"u00001"}
    writer = CdrWriter(sink, tmp_path / "spool.jsonl")
    for i in range(3):
        writer.submit(_cdr(i))
    assert await writer.flush()
    assert sorted(sink.rows) == ["u00000", "u00002"]
    assert writer.rejected == 1 and writer.written == 2
    assert _spool_uuids(writer.rejected_path) == ["u00001"]


async def test_close_writes_everything_pending(tmp_path: Path) -> None:
    sink = FakeSink()
    writer = CdrWriter(sink, tmp_path / "s.jsonl")
    await writer.start()
    for i in range(7):
        writer.submit(_cdr(i))
    assert await writer.close()
    assert len(sink.rows) == 7


async def test_bus_to_sqlite_end_to_end_with_shutdown(tmp_path: Path) -> None:
    """Calls on the bus -> collector (tap) -> writer -> SQLite; one call still up at stop."""
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}") as db:
        repo = CdrRepository(db)
        writer = CdrWriter(repo, tmp_path / "spool.jsonl")
        await writer.start()
        bus = EventBus()
        collector = CdrCollector(writer.submit)
        bus.tap(collector.handle)
        for i in range(3):
            c = dict(call_id=f"c{i}", channel=f"a{i}")
            bus.publish(CallOffered(at=T0 + i, caller="1001", callee="12345", **c))
            bus.publish(CallAnswered(at=T0 + i + 1, **c))
            if i < 2:
                bus.publish(CallHungUp(at=T0 + i + 9, cause="normal_clearing", side="caller",
                                       **c))
        assert collector.finish_all(T0 + 60) == 1  # graceful stop with one call up
        assert await writer.close()
        stored = await repo.between(dt.datetime.fromtimestamp(T0, dt.UTC),
                                    dt.datetime.fromtimestamp(T0 + 100, dt.UTC))
        assert [(c.call_id, c.hangup_cause, c.billsec) for c in stored] == [
            ("c0", "normal_clearing", 8.0), ("c1", "normal_clearing", 8.0),
            ("c2", "shutdown", 57.0)]
