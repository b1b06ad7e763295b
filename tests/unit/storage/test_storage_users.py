"""UserRepository and the demo users on a SQLite file in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from signaling.location import compute_ha1
from storage import (
    DEMO_USERNAMES,
    Database,
    DuplicateUserError,
    InvalidUserError,
    UnknownUserError,
    UserRepository,
    ensure_demo_users,
    format_demo_users,
)

REALM = "softswitch"
SECRET = "Correct-Horse-42"


@pytest.fixture
async def db(tmp_path: Path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
    await database.start()
    yield database
    await database.close()


def _all_db_bytes(tmp_path: Path) -> bytes:
    """The database file plus its WAL and shared-memory files: everything on disk."""
    return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("test.db*")))


async def test_add_get_list_remove(db: Database) -> None:
    repo = UserRepository(db)
    info = await repo.add("1001", SECRET, REALM, display_name="Front desk")
    assert (info.username, info.realm, info.display_name, info.enabled) == (
        "1001", REALM, "Front desk", True)
    await repo.add("1002", "other", REALM)
    assert [u.username for u in await repo.list()] == ["1001", "1002"]
    got = await repo.get("1001")
    assert got is not None and got.display_name == "Front desk"
    assert got.created_at.utcoffset() is not None  # timezone-aware (UTC) on every database
    assert await repo.get("nobody") is None
    await repo.remove("1001")
    assert [u.username for u in await repo.list()] == ["1002"]
    assert await repo.count() == 1


async def test_ha1_stored_per_algorithm_and_password_nowhere(db: Database, tmp_path: Path) -> None:
    repo = UserRepository(db)
    await repo.add("1001", SECRET, REALM)
    [creds] = await repo.load_users()
    assert creds.username == "1001" and creds.realm == REALM and creds.enabled
    assert creds.ha1 == {
        "MD5": compute_ha1("1001", REALM, SECRET, "MD5"),
        "SHA-256": compute_ha1("1001", REALM, SECRET, "SHA-256"),
    }
    await db.close()  # flush everything to the files before reading their bytes
    data = _all_db_bytes(tmp_path)
    assert creds.ha1["MD5"].encode() in data  # the grep below looks at the right bytes
    assert SECRET.encode() not in data


async def test_duplicate_user_is_a_clear_error(db: Database) -> None:
    repo = UserRepository(db)
    await repo.add("1001", SECRET, REALM)
    with pytest.raises(DuplicateUserError, match="1001"):
        await repo.add("1001", "x", REALM)
    assert await repo.count() == 1


async def test_add_many_is_all_or_nothing(db: Database) -> None:
    repo = UserRepository(db)
    await repo.add("1003", SECRET, REALM)
    with pytest.raises(DuplicateUserError, match=r"exists: 1003$"):
        await repo.add_many([("1002", "a", None), ("1003", "b", None)], REALM)
    with pytest.raises(InvalidUserError, match="twice"):
        await repo.add_many([("1004", "a", None), ("1004", "b", None)], REALM)
    assert [u.username for u in await repo.list()] == ["1003"]


@pytest.mark.parametrize("name", ["", "bad name", "a@b", "x" * 65, "é"])
async def test_invalid_usernames_rejected(db: Database, name: str) -> None:
    with pytest.raises(InvalidUserError):
        await UserRepository(db).add(name, SECRET, REALM)


async def test_empty_password_rejected(db: Database) -> None:
    repo = UserRepository(db)
    with pytest.raises(InvalidUserError):
        await repo.add("1001", "", REALM)
    await repo.add("1001", SECRET, REALM)
    with pytest.raises(InvalidUserError):
        await repo.set_password("1001", "")


async def test_set_password_changes_ha1_and_optionally_realm(db: Database) -> None:
    repo = UserRepository(db)
    await repo.add("1001", SECRET, REALM)
    await repo.set_password("1001", "new-secret")
    [creds] = await repo.load_users()
    assert creds.ha1["SHA-256"] == compute_ha1("1001", REALM, "new-secret", "SHA-256")
    await repo.set_password("1001", "new-secret", realm="pbx.example")
    [creds] = await repo.load_users()
    assert creds.realm == "pbx.example"
    assert creds.ha1["MD5"] == compute_ha1("1001", "pbx.example", "new-secret", "MD5")


async def test_unknown_user_errors(db: Database) -> None:
    repo = UserRepository(db)
    with pytest.raises(UnknownUserError, match="ghost"):
        await repo.remove("ghost")
    with pytest.raises(UnknownUserError, match="ghost"):
        await repo.set_password("ghost", "pw")
    with pytest.raises(UnknownUserError):
        await repo.set_enabled("ghost", False)


async def test_disable_user_shows_in_credentials(db: Database) -> None:
    repo = UserRepository(db)
    await repo.add("1001", SECRET, REALM)
    await repo.set_enabled("1001", False)
    [creds] = await repo.load_users()
    assert creds.enabled is False


async def test_demo_users_created_once(db: Database, tmp_path: Path) -> None:
    repo = UserRepository(db)
    pairs = await ensure_demo_users(repo, REALM)
    assert [u for u, _ in pairs] == list(DEMO_USERNAMES) == [str(n) for n in range(1001, 1011)]
    passwords = [p for _, p in pairs]
    assert len(set(passwords)) == 10 and all(len(p) >= 12 for p in passwords)
    creds = {c.username: c for c in await repo.load_users()}
    for user, password in pairs:
        assert creds[user].ha1["MD5"] == compute_ha1(user, REALM, password, "MD5")
    assert await ensure_demo_users(repo, REALM) == []
    banner = format_demo_users(pairs, REALM)
    assert all(user in banner and password in banner for user, password in pairs)
    await db.close()
    data = _all_db_bytes(tmp_path)
    assert not any(p.encode() in data for p in passwords)


async def test_no_demo_users_when_users_exist(db: Database) -> None:
    repo = UserRepository(db)
    await repo.add("2001", SECRET, REALM)
    assert await ensure_demo_users(repo, REALM) == []
    assert [u.username for u in await repo.list()] == ["2001"]


async def test_users_survive_restart(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    async with Database(url) as first:
        await UserRepository(first).add("1001", SECRET, REALM)
    async with Database(url) as second:
        assert [u.username for u in await UserRepository(second).list()] == ["1001"]


async def test_fingerprint_changes_on_every_edit(db: Database) -> None:
    repo = UserRepository(db)
    seen = [await repo.fingerprint()]
    await repo.add("1001", SECRET, REALM)
    seen.append(await repo.fingerprint())
    await repo.add("1002", SECRET, REALM)
    seen.append(await repo.fingerprint())
    await repo.set_password("1001", "changed")
    seen.append(await repo.fingerprint())
    await repo.set_enabled("1002", False)
    seen.append(await repo.fingerprint())
    await repo.remove("1001")
    seen.append(await repo.fingerprint())
    assert seen[0] == (0, "")
    assert len(set(seen)) == len(seen)
    assert await repo.fingerprint() == seen[-1]  # stable when nothing changes
