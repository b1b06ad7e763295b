"""Database: URLs, pragmas, and clear StorageErrors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from storage import (
    Database,
    LocationRepository,
    StorageError,
    StorageUnavailableError,
    default_sqlite_url,
    normalize_url,
    redact_url,
)


def test_default_url_is_absolute_sqlite_in_data_dir(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path / "data")
    assert url == f"sqlite+aiosqlite:///{(tmp_path / 'data').resolve()}/softswitch.db"


def test_plain_urls_get_the_async_driver() -> None:
    assert normalize_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert normalize_url("postgresql://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert normalize_url("postgresql+asyncpg://h/db") == "postgresql+asyncpg://h/db"


def test_redact_url_hides_password() -> None:
    assert redact_url("postgresql+asyncpg://bob:s3cret@db.local/ss") == (
        "postgresql+asyncpg://bob:***@db.local/ss")
    assert "s3cret" not in redact_url("not a url://bob:s3cret@host")


def test_bad_url_is_storage_error() -> None:
    with pytest.raises(StorageError, match="not a database URL"):
        Database("definitely not a url")


def test_missing_driver_names_url_without_password() -> None:
    with pytest.raises(StorageError) as info:
        Database("nosuchdb+nodriver://bob:s3cret@host/db")
    assert "s3cret" not in str(info.value) and "bob:***@host" in str(info.value)


async def test_unopenable_sqlite_path_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    db = Database(f"sqlite+aiosqlite:///{blocker}/sub/x.db")
    with pytest.raises(StorageUnavailableError, match="cannot"):
        await db.start()
    await db.close()


async def test_corrupt_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    path.write_bytes(b"this is not a sqlite database" * 100)
    db = Database(f"sqlite+aiosqlite:///{path}")
    with pytest.raises(StorageUnavailableError, match=str(path)):
        await db.start()
    await db.close()


async def test_pragmas_applied_and_parent_created(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'a' / 'b' / 'x.db'}"
    async with Database(url) as db:
        assert db.dialect == "sqlite"
        async with db.transaction() as session:
            assert (await session.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await session.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await session.execute(text("PRAGMA synchronous"))).scalar() == 1
            assert (await session.execute(text("PRAGMA busy_timeout"))).scalar() == 5000
    assert (tmp_path / "a" / "b" / "x.db").exists()


async def test_failure_inside_transaction_is_unavailable_and_rolled_back(tmp_path: Path) -> None:
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}") as db:
        with pytest.raises(StorageUnavailableError):
            async with db.transaction() as session:
                await session.execute(text("DELETE FROM registration_bindings"))
                await session.execute(text("SELECT * FROM no_such_table"))
        assert await LocationRepository(db).count() == 0


async def test_postgres_url_builds_engine_or_names_missing_driver() -> None:
    """Nothing SQLite-specific outside the pragma hook: a PostgreSQL URL builds an engine
    when asyncpg is installed, else fails with a StorageError naming the extra."""
    try:
        db = Database("postgresql://bob:pw@127.0.0.1:1/softswitch")
    except StorageError as exc:
        assert "postgres" in str(exc) and ":pw@" not in str(exc)
        return
    assert db.dialect == "postgresql"
    assert db.display_url == "postgresql+asyncpg://bob:***@127.0.0.1:1/softswitch"
    await db.close()
