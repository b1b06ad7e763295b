"""CTI campaign commands (cti/campaign_commands.py) on a live CtiServer on port 0: admin only,
errors as data, audited, the dialer woken; the protocol tables are restored afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cti.audit import MemoryAuditSink
from cti.auth import Authenticator, CtiUser, LoginThrottle, MemoryUserDirectory, hash_password
from cti.campaign_commands import CAMPAIGN_COMMANDS, install
from cti.client import CtiClient, CtiCommandError
from cti.fake import FakeBackend
from cti.messages import COMMANDS
from cti.roles import PERMISSIONS, Role
from cti.server import CtiConfig, CtiServer
from storage.campaign_repository import CampaignRepository
from storage.db import Database
from switch.campaigns import CallingWindow, Campaign, CampaignKind, NewContact

PASSWORD = "pw-1234"


@pytest.fixture
def tables() -> Iterator[None]:
    """install() adds to the protocol's tables: put them back for the other CTI tests."""
    commands, permissions = dict(COMMANDS), dict(PERMISSIONS)
    yield
    COMMANDS.clear()
    COMMANDS.update(commands)
    PERMISSIONS.clear()
    PERMISSIONS.update(permissions)


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[CampaignRepository]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/c.db")
    await db.start()
    repo = CampaignRepository(db)
    await repo.create(Campaign("停水", CampaignKind.OUTAGE_NOTICE,
                               window=CallingWindow(("daily 00:00-24:00",)),
                               params={"area": "3栋", "what": "水", "date": "2026-12-02",
                                       "start": "09:00", "end": "17:00"}),
                      [NewContact("张伟", "13800000000"), NewContact("李娜", "13900001111")])
    yield repo
    await db.close()


@pytest.fixture
async def server(tables: None, repo: CampaignRepository) -> AsyncIterator[
        tuple[CtiServer, MemoryAuditSink, list[int]]]:
    digest = hash_password(PASSWORD, log2_n=4)
    users = MemoryUserDirectory([
        CtiUser("root", Role.ADMIN, digest, frozenset(), False, None),
        CtiUser("sup", Role.SUPERVISOR, digest, frozenset({"billing"}), True, "s1"),
        CtiUser("alice", Role.AGENT, digest, frozenset({"billing"}), False, "a1")])
    audit = MemoryAuditSink()
    srv = CtiServer(FakeBackend(["billing"]), Authenticator(users, LoginThrottle()),
                    CtiConfig(stats_interval_s=0.0), audit)
    await srv.start()
    woken: list[int] = []
    install(srv, repo, lambda: woken.append(1))
    yield srv, audit, woken
    await srv.close()


async def _client(srv: CtiServer, user: str) -> CtiClient:
    client = await CtiClient.connect("127.0.0.1", srv.port)
    await client.login(user, PASSWORD)
    return client


async def test_admin_lists_starts_pauses_and_follows_a_campaign(server) -> None:
    srv, audit, woken = server
    client = await _client(srv, "root")
    try:
        listed = await client.request("campaign.list")
        assert [(c["name"], c["state"]) for c in listed["campaigns"]] == [("停水", "draft")]
        assert await client.request("campaign.start", name="停水") == {
            "name": "停水", "state": "running"}
        assert woken == [1]
        status = await client.request("campaign.status", name="停水")
        assert status["state"] == "running" and status["kind"] == "outage_notice"
        assert status["progress"]["total"] == 2 and status["progress"]["pending"] == 2
        assert set(status["progress"]["attempts"]) == {
            "answered", "acknowledged", "busy", "no_answer", "failed", "opted_out"}
        assert (await client.request("campaign.pause", name="停水"))["state"] == "paused"
        with pytest.raises(CtiCommandError) as exc:
            await client.request("campaign.pause", name="停水")
        assert exc.value.code == "invalid_state"
        with pytest.raises(CtiCommandError) as exc:
            await client.request("campaign.status", name="nope")
        assert exc.value.code == "not_found" and exc.value.field == "name"
        assert (await client.request("campaign.resume", name="停水"))["state"] == "running"
        assert (await client.request("campaign.stop", name="停水"))["state"] == "stopped"
    finally:
        await client.close()
    done = [(e.cmd, e.outcome) for e in audit.entries if e.cmd.startswith("campaign.")]
    assert ("campaign.start", "ok") in done and ("campaign.stop", "ok") in done
    assert ("campaign.list", "ok") not in done       # reads are not audited


@pytest.mark.parametrize("user", ["sup", "alice"])
async def test_other_roles_are_refused(server, user: str) -> None:
    srv, audit, woken = server
    client = await _client(srv, user)
    try:
        for cmd in CAMPAIGN_COMMANDS:
            args = {} if cmd == "campaign.list" else {"name": "停水"}
            with pytest.raises(CtiCommandError) as exc:
                await client.request(cmd, **args)
            assert exc.value.code == "forbidden", cmd
    finally:
        await client.close()
    assert woken == []
    assert {e.cmd for e in audit.entries if e.outcome == "denied"} == set(CAMPAIGN_COMMANDS)
