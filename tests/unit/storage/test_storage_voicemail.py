"""VoicemailRepository and ForwardRepository on SQLite: tables made on first use, round
trips in UTC, delete, forwarding set/replace/clear."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from storage.db import Database
from storage.voicemail_repository import ForwardRepository, VoicemailRepository
from switch.forwarding import ForwardSettings


async def test_messages_round_trip_filter_and_delete(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'vm.db'}"
    at = dt.datetime(2026, 11, 30, 22, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    async with Database(url) as db:
        repo = VoicemailRepository(db)
        first = await repo.add("1002", "13800000000", "c1", 3.14159, "/v/1002/a.wav", "key", at)
        await repo.add("operator", "1001", "c2", 12.0, "/v/operator/b.wav", "hangup")
        assert first.id == 1 and first.duration_s == 3.142
        assert first.created_at == at and first.created_at.tzinfo is not None
        assert [m.box for m in await repo.list()] == ["1002", "operator"]
        (only,) = await repo.list("operator")
        assert (only.caller, only.ended_by, only.path) == ("1001", "hangup",
                                                           "/v/operator/b.wav")
        assert await repo.get(99) is None
    async with Database(url) as db:  # a second process (the CLI) sees the same rows
        repo = VoicemailRepository(db)
        gone = await repo.delete(1)
        assert gone is not None and gone.path == "/v/1002/a.wav"
        assert await repo.delete(1) is None
        assert [m.id for m in await repo.list()] == [2]


async def test_forwarding_set_replace_and_clear(tmp_path: Path) -> None:
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'fw.db'}") as db:
        repo = ForwardRepository(db)
        assert await repo.all() == {} and await repo.get("1001") is None
        await repo.set(ForwardSettings("1001", busy="1002", no_answer="9013800000000",
                                       ring_s=15.0))
        await repo.set(ForwardSettings("1003", always="voicemail:1003"))
        assert await repo.get("1001") == ForwardSettings("1001", "", "1002", "9013800000000",
                                                         15.0)
        await repo.set(ForwardSettings("1001", busy="1004"))  # replaces the whole row
        assert await repo.all() == {
            "1001": ForwardSettings("1001", busy="1004"),
            "1003": ForwardSettings("1003", always="voicemail:1003")}
        await repo.set(ForwardSettings("1003"))  # nothing set: the row goes
        assert await repo.clear("1001") is True and await repo.clear("1001") is False
        assert await repo.all() == {}
