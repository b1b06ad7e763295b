"""The queue log in storage: write-behind batching, the outage spool (nothing dropped), replay
without duplicates, KPIs from the stored rows and ``softswitch queue stats``; and the
``[queues.<name>]`` configuration with its errors naming the dotted key."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Sequence
from pathlib import Path
from random import Random

import pytest

from storage.acd_log_repository import QueueLogRepository
from storage.db import Database, StorageConflictError, StorageUnavailableError
from switch.acd import (
    AcdEngine,
    AgentLoggedIn,
    CallEnded,
    CallerAbandoned,
    CallerArrived,
    Device,
    LogEntry,
    OfferAnswered,
    OfferCall,
    QueueConfig,
    QueueLogEntry,
)
from switch.acd.kpi import queue_kpis
from switch.config import ConfigError, load_config
from switch.queue_cli import parse_interval, queue_main
from switch.queue_config import parse_queues
from switch.queue_log import QueueLogWriter


def _entries(n: int, t0: float = 1_700_000_000.0) -> list[QueueLogEntry]:
    return [QueueLogEntry(t0 + i, "q", f"c{i}", "NONE", _ENTER, ("0", "1")) for i in range(n)]


_ENTER = QueueLogEntry.from_line("0|c|q|NONE|ENTERQUEUE|0|1").event


class FlakyStore:
    """A store that is down while ``down`` is set, and refuses entries of call "bad"."""

    def __init__(self) -> None:
        self.down = False
        self.rows: dict[str, QueueLogEntry] = {}
        self.calls = 0

    async def insert_many(self, batch: Sequence[tuple[str, QueueLogEntry]]) -> int:
        self.calls += 1
        if self.down:
            raise StorageUnavailableError("database is down")
        if any(e.call_id == "bad" for _, e in batch):
            raise StorageConflictError("refused")
        new = [(u, e) for u, e in batch if u not in self.rows]
        self.rows.update(new)
        return len(new)


async def test_writer_batches_and_keeps_order(tmp_path: Path) -> None:
    store = FlakyStore()
    writer = QueueLogWriter(store, tmp_path / "spool.txt", batch_size=50)
    for e in _entries(120):
        writer.append(e)
    assert store.calls == 0  # write-behind: append never touches the store
    assert await writer.flush()
    assert store.calls == 3 and writer.written == 120 and writer.pending == 0
    assert [e.call_id for e in store.rows.values()] == [f"c{i}" for i in range(120)]


async def test_outage_spools_then_writes_everything_once(tmp_path: Path) -> None:
    store = FlakyStore()
    spool = tmp_path / "spool.txt"
    writer = QueueLogWriter(store, spool, retry_interval_s=0.01)
    store.down = True
    for e in _entries(10):
        writer.append(e)
    assert not await writer.flush()
    assert writer.outage and writer.pending == 10
    assert len(spool.read_text().splitlines()) == 10  # safe on disk during the outage
    writer.append(_entries(1, 2e9)[0])  # appended during the outage: spooled at once
    assert len(spool.read_text().splitlines()) == 11
    # A crash now: a new writer replays the spool; the old one's entries are not lost.
    store.down = False
    again = QueueLogWriter(store, spool)
    await again.start()
    await again.close()
    assert len(store.rows) == 11 and not spool.exists()
    assert await writer.flush()  # the first writer's own retry writes nothing twice
    assert len(store.rows) == 11


async def test_a_refused_entry_is_kept_aside_not_dropped(tmp_path: Path) -> None:
    store = FlakyStore()
    writer = QueueLogWriter(store, tmp_path / "spool.txt")
    good = _entries(2)
    writer.append(good[0])
    writer.append(QueueLogEntry(good[0].time, "q", "bad", "NONE", _ENTER, ("0", "1")))
    writer.append(good[1])
    assert await writer.flush()
    assert sorted(e.call_id for e in store.rows.values()) == ["c0", "c1"]
    assert writer.rejected == 1
    assert "|bad|" in (tmp_path / "spool.txt.rejected").read_text()


def _engine_log() -> list[QueueLogEntry]:
    """A real engine's log: one answered call (waited 5 s, talked 60 s), one abandon."""
    engine = AcdEngine([QueueConfig("support", ring_timeout_s=10)], Random(1))
    t0 = 1_750_000_000.0
    out: list[QueueLogEntry] = []

    def feed(now: float, ev: object) -> list[object]:
        actions = engine.handle(t0 + now, ev)  # type: ignore[arg-type]
        out.extend(a.entry for a in actions if isinstance(a, LogEntry))
        return actions

    feed(0, CallerArrived("support", "c1"))
    feed(1, CallerArrived("support", "c2"))
    actions = feed(5, AgentLoggedIn("8001", Device("extension", "1001"), {"support": 1}))
    assert any(isinstance(a, OfferCall) and a.call_id == "c1" for a in actions)
    feed(5, OfferAnswered("c1", "8001"))
    feed(30, CallerAbandoned("c2"))
    feed(65, CallEnded("c1"))
    return out


async def test_repository_round_trip_and_kpis_from_stored_rows(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'q.db'}"
    db = Database(url)
    await db.start()
    repo = QueueLogRepository(db)
    await repo.ensure_schema()
    log = _engine_log()
    writer = QueueLogWriter(repo, tmp_path / "spool.txt")
    await writer.start()
    for e in log:
        writer.append(e)
    assert await writer.close()
    stored = await repo.entries()
    assert stored == log  # every field, data tuples with empty strings included
    assert await repo.insert_many([("x", log[0])]) == 1
    assert await repo.insert_many([("x", log[0])]) == 0  # idempotent on uid
    only = await repo.entries(queue="support")
    assert {e.queue for e in only} == {"support", "NONE"}
    kpi = queue_kpis(stored, queue="support")
    assert (kpi.offered, kpi.answered, kpi.abandoned) == (2, 1, 1)
    assert kpi.asa_s == pytest.approx(5.0) and kpi.aht_s == pytest.approx(60.0)
    await db.close()


def test_queue_stats_cli_reads_the_stored_log(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'q.db'}"

    log = list(enumerate(_engine_log()))
    half = len(log) // 2

    async def store() -> None:  # the first half stored, the rest left in a node's spool
        async with Database(url) as db:
            repo = QueueLogRepository(db)
            await repo.ensure_schema()
            await repo.insert_many([(str(i), e) for i, e in log[:half]])

    asyncio.run(store())
    (tmp_path / "queue-log-spool.txt").write_text(  # one entry in both: counted once
        "".join(f"{i} {e.to_line()}\n" for i, e in log[half - 1:]), "utf-8")
    out = io.StringIO()
    assert queue_main(["stats", "support", "--db", url, "--interval", "15m",
                       "--data-dir", str(tmp_path)], out) == 0
    text = out.getvalue()
    row = next(line for line in text.splitlines() if line.startswith("support"))
    assert row.split()[:4] == ["support", "2", "1", "1"]
    assert "5.0" in row.split() and "60.0" in row.split() and "50.0%" in row.split()
    assert "per 900 s" in text and "8001" in text
    from switch.cli import main as softswitch

    capsys.readouterr()
    assert softswitch(["queue", "stats", "--json", "--db", url,
                       "--data-dir", str(tmp_path)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["queues"]["support"]["answered"] == 1
    assert stats["agents"]["8001"]["answered"] == 1


def test_parse_interval() -> None:
    assert parse_interval("15m") == 900.0 and parse_interval("1h") == 3600.0
    assert parse_interval("30") == 30.0


def test_queue_config_parses_and_merges_static_agents(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text('[queues.support]\nstrategy = "ring-all"\nring_timeout_s = 12\n'
                    'max_wait_s = 120\noverflow = "queue:operator"\nannounce_frequency_s = 0\n'
                    'callback_key = "#"\n'
                    'static_agents = ["8001@1001", "8002@1002:2"]\n', "utf-8")
    config = load_config(str(site))
    q = config.queues["support"]
    assert q.acd.strategy.value == "ring-all" and q.acd.ring_timeout_s == 12.0
    assert q.acd.max_wait_s == 120.0 and q.acd.overflow is not None and q.callback_key == "#"
    assert q.acd.overflow.label() == "queue:operator" and q.acd.announce_frequency_s is None
    assert [(a.agent_id, a.extension, a.level) for a in q.static_agents] == [
        ("8001", "1001", 1), ("8002", "1002", 2)]
    assert "客服组" in config.queues  # the hotline IVR's queues ship in the default


@pytest.mark.parametrize(("table", "key", "words"), [
    ({"support": {"strategy": "fastest"}}, "queues.support.strategy", "expected one of"),
    ({"support": {"ring_timout_s": 5}}, "queues.support.ring_timout_s", "unknown key"),
    ({"support": {"overflow": "mailbox:1"}}, "queues.support.overflow", "overflow kind"),
    ({"support": {"overflow": "queue:nowhere"}}, "queues.support.overflow", "no queue"),
    ({"support": {"static_agents": ["8001"]}}, "queues.support.static_agents[0]",
     "AGENT@EXTENSION"),
    ({"support": {"max_len": -1}}, "queues.support.max_len", ">= 0"),
    ({"support": {"callback_key": "12"}}, "queues.support.callback_key", "one DTMF key"),
    ({"support": {"ring_timeout_s": 0}}, "queues.support", "ring_timeout_s must be > 0"),
])
def test_queue_config_errors_name_the_key(table: dict[str, object], key: str,
                                          words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_queues(table)
    assert err.value.key == key and words in str(err.value)


def test_queue_config_error_names_the_file(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text('[queues.support]\nwrapup = 5\n', "utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(str(site))
    assert str(err.value).startswith(f"{site}: queues.support.wrapup: unknown key")


def test_caller_max_wait_overrides_the_queue() -> None:
    """An IVR ``queue ... maxwait 2s`` bounds this caller only (CallerArrived.max_wait_s)."""
    engine = AcdEngine([QueueConfig("support")], Random(1))
    engine.handle(0.0, CallerArrived("support", "short", max_wait_s=2.0))
    engine.handle(0.0, CallerArrived("support", "long"))
    assert engine.next_deadline() == 2.0
    exits = [a.entry for a in engine.handle_timer(2.0)
             if isinstance(a, LogEntry) and a.entry.event.value == "EXITWITHTIMEOUT"]
    assert [e.call_id for e in exits] == ["short"]
    assert engine.position("long") == 1 and engine.next_deadline() is None
