"""LocationRepository: write-behind batches, round trips and restarts on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from signaling.location import Binding
from storage import Database, LocationRepository


def _binding(aor: str, contact: str, **kw: object) -> Binding:
    return Binding(aor=aor, contact=contact, expires_at=kw.pop("expires_at", 2_000_000_000.5),
                   **kw)  # type: ignore[arg-type]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'loc.db'}"


async def test_round_trip_keeps_every_field(url: str) -> None:
    full = Binding(
        aor="sip:1001@softswitch",
        contact="sip:1001@203.0.113.7:40000;transport=udp",
        expires_at=1_900_000_123.25,
        q=0.7,
        call_id="a84b4c76e66710@pc33",
        cseq=314159,
        transport="tcp",
        source_host="203.0.113.7",
        source_port=40000,
        registered_contact="sip:1001@192.168.1.20:5060",
        user_agent="Yealink T46U 108.86",
        instance_id="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>",
        reg_id=1,
        params=(("expires", "3600"), ("+sip.ice", ""), ("x", "é")),
    )
    async with Database(url) as db:
        repo = LocationRepository(db)
        await repo.replace_bindings({full.aor: [full]})
        assert await repo.load_bindings() == [full]


async def test_replace_removes_old_contacts_and_empty_list_clears(url: str) -> None:
    async with Database(url) as db:
        repo = LocationRepository(db)
        a1, a2 = _binding("sip:a@x", "sip:a@1"), _binding("sip:a@x", "sip:a@2")
        b1 = _binding("sip:b@x", "sip:b@1")
        await repo.replace_bindings({"sip:a@x": [a1, a2], "sip:b@x": [b1]})
        assert set(await repo.load_bindings()) == {a1, a2, b1}
        a3 = _binding("sip:a@x", "sip:a@3", cseq=9)
        await repo.replace_bindings({"sip:a@x": [a3]})
        assert set(await repo.load_bindings()) == {a3, b1}
        await repo.replace_bindings({"sip:b@x": []})
        assert await repo.load_bindings() == [a3]
        await repo.replace_bindings({})
        assert await repo.count() == 1


async def test_same_contact_twice_keeps_last(url: str) -> None:
    async with Database(url) as db:
        repo = LocationRepository(db)
        old = _binding("sip:a@x", "sip:a@1", cseq=1)
        new = _binding("sip:a@x", "sip:a@1", cseq=2)
        await repo.replace_bindings({"sip:a@x": [old, new]})
        assert await repo.load_bindings() == [new]


async def test_expired_bindings_are_loaded_for_the_registrar_to_discard(url: str) -> None:
    async with Database(url) as db:
        repo = LocationRepository(db)
        stale = _binding("sip:a@x", "sip:a@1", expires_at=1.0)
        await repo.replace_bindings({"sip:a@x": [stale]})
        assert await repo.load_bindings() == [stale]


async def test_large_batch_in_one_call_and_restart(url: str) -> None:
    """1200 AORs (more than two IN-list chunks) x 2 contacts, then a new Database on the file."""
    changes = {
        f"sip:{n}@x": [_binding(f"sip:{n}@x", f"sip:{n}@10.0.{n // 250}.{n % 250}:{p}")
                       for p in (5060, 5062)]
        for n in range(1200)
    }
    async with Database(url) as db:
        repo = LocationRepository(db)
        await repo.replace_bindings(changes)
        # A second batch rewrites half of them and clears a quarter.
        second = {f"sip:{n}@x": [_binding(f"sip:{n}@x", f"sip:{n}@new", cseq=n)]
                  for n in range(0, 600)}
        second.update({f"sip:{n}@x": [] for n in range(600, 900)})
        await repo.replace_bindings(second)
    async with Database(url) as restarted:
        loaded = await LocationRepository(restarted).load_bindings()
    expected = [b for n in range(600) for b in second[f"sip:{n}@x"]]
    expected += [b for n in range(900, 1200) for b in changes[f"sip:{n}@x"]]
    assert sorted(loaded, key=repr) == sorted(expected, key=repr)


async def test_in_memory_database_works(tmp_path: Path) -> None:
    async with Database("sqlite+aiosqlite://") as db:
        repo = LocationRepository(db)
        b = _binding("sip:a@x", "sip:a@1")
        await repo.replace_bindings({"sip:a@x": [b]})
        assert await repo.load_bindings() == [b]
