"""The same repositories on PostgreSQL, when a server is provided.

Set SOFTSWITCH_TEST_PG_URL=postgresql+asyncpg://user@127.0.0.1:PORT/db (and install the
"postgres" extra) to run these; they are skipped otherwise. The tests drop and recreate the
softswitch tables in that database, so point them at a scratch database only.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from signaling.location import Binding, compute_ha1
from storage import Database, DuplicateUserError, LocationRepository, UserRepository
from storage.models import Base

PG_URL = os.environ.get("SOFTSWITCH_TEST_PG_URL", "")

pytestmark = pytest.mark.skipif(not PG_URL, reason="SOFTSWITCH_TEST_PG_URL not set")


@pytest.fixture
async def pg() -> AsyncIterator[Database]:
    pytest.importorskip("asyncpg")
    db = Database(PG_URL)
    await db.start()
    async with db.transaction() as session:
        conn = await session.connection()
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    yield db
    await db.close()


async def test_users_on_postgres(pg: Database) -> None:
    repo = UserRepository(pg)
    await repo.add("1001", "pw-1001", "softswitch", "Desk")
    with pytest.raises(DuplicateUserError):
        await repo.add("1001", "again", "softswitch")
    before = await repo.fingerprint()
    await repo.set_password("1001", "pw-new")
    assert await repo.fingerprint() != before
    [creds] = await repo.load_users()
    assert creds.ha1["SHA-256"] == compute_ha1("1001", "softswitch", "pw-new", "SHA-256")
    [info] = await repo.list()
    assert info.created_at.utcoffset() is not None
    await repo.remove("1001")
    assert await repo.count() == 0


async def test_bindings_on_postgres(pg: Database) -> None:
    repo = LocationRepository(pg)
    changes = {f"sip:{n}@x": [Binding(f"sip:{n}@x", f"sip:{n}@h:{p}", 2e9, q=0.5,
                                      params=(("a", "b"),)) for p in (1, 2)]
               for n in range(700)}
    await repo.replace_bindings(changes)
    await repo.replace_bindings({"sip:0@x": [], "sip:1@x": changes["sip:1@x"][:1]})
    loaded = await repo.load_bindings()
    assert len(loaded) == 2 * 700 - 3
    assert changes["sip:1@x"][0] in loaded and changes["sip:5@x"][1] in loaded
