"""CTI users in the database: repository, ``softswitch cti-user``, and a DB-backed login."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cti.auth import Authenticator
from cti.client import CtiClient, CtiCommandError
from cti.fake import FakeBackend
from cti.roles import Role
from cti.server import CtiConfig, CtiServer
from cti.users import cti_user_main
from storage import Database, DuplicateUserError, InvalidUserError, UnknownUserError
from storage.cti_models import CtiUserRepository


@pytest.fixture
async def repo(tmp_path: Path) -> CtiUserRepository:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}")
    await db.start()
    yield CtiUserRepository(db, log2_n=4)
    await db.close()


async def test_repository_add_list_verify_remove(repo: CtiUserRepository) -> None:
    info = await repo.add("alice", "agent", "pw", ["repair", "billing"], "a1")
    assert info.queues == ["billing", "repair"] and info.agent_id == "a1"
    await repo.add("boss", "supervisor", "pw2", ["*"])
    assert [u.name for u in await repo.list()] == ["alice", "boss"]
    assert await repo.verify("alice", "pw") and not await repo.verify("alice", "PW")
    assert not await repo.verify("nobody", "pw")
    user = await repo.get_user("boss")
    assert user is not None and user.role is Role.SUPERVISOR and user.all_queues
    assert user.principal().all_queues and "pw2" not in user.password_hash
    with pytest.raises(DuplicateUserError):
        await repo.add("alice", "agent", "x")
    with pytest.raises(InvalidUserError):
        await repo.add("eve", "root", "x")
    with pytest.raises(InvalidUserError):
        await repo.add("bad name", "agent", "x")
    with pytest.raises(InvalidUserError):
        await repo.add("eve", "agent", "")
    carol = await repo.add("carol", "agent", "pw", ["客服组", "报修组"])  # the demo's queues
    assert carol.queues == sorted(["客服组", "报修组"])
    with pytest.raises(InvalidUserError):
        await repo.add("dave", "agent", "pw", ["bad queue"])
    await repo.remove("alice")
    assert await repo.get_user("alice") is None
    with pytest.raises(UnknownUserError):
        await repo.remove("alice")


async def test_login_against_the_database(repo: CtiUserRepository) -> None:
    await repo.add("alice", "agent", "pw", ["billing"], "a1")
    server = CtiServer(FakeBackend(["billing"]), Authenticator(repo),
                       CtiConfig(stats_interval_s=0))
    await server.start()
    client = await CtiClient.connect("127.0.0.1", server.port)
    info = await client.login("alice", "pw")
    assert (info.role, info.queues, info.agent_id) == ("agent", ["billing"], "a1")
    with pytest.raises(CtiCommandError):
        await CtiClient.login(client, "alice", "pw")   # already logged in
    await client.close()
    await server.close()


def test_cti_user_command(tmp_path: Path) -> None:
    flags = ["--data-dir", str(tmp_path)]
    out, err = io.StringIO(), io.StringIO()
    assert cti_user_main(["add", "alice", "--role", "agent", "--password", "pw",
                          "--queues", "billing,repair", "--agent-id", "1001", *flags],
                         out=out, err=err) == 0
    assert "added CTI user alice (role agent, queues billing,repair)" in out.getvalue()
    assert cti_user_main(["add", "wall", "--role", "wallboard", *flags],
                         stdin=io.StringIO("secret\n"), out=out, err=err) == 0
    out = io.StringIO()
    assert cti_user_main(["list", *flags], out=out, err=err) == 0
    listing = out.getvalue()
    assert "alice" in listing and "wallboard" in listing and "2 CTI user(s)" in listing
    assert "pw" not in listing and "secret" not in listing
    assert cti_user_main(["add", "alice", "--role", "agent", "--password", "x", *flags],
                         out=out, err=err) == 1
    assert "already exists" in err.getvalue()
    assert cti_user_main(["remove", "alice", *flags], out=out, err=err) == 0
    assert cti_user_main(["remove", "alice", *flags], out=out, err=err) == 1
    assert cti_user_main(["add", "x", "--role", "god", "--password", "p", *flags]) == 2
    assert (tmp_path / "softswitch.db").exists()
