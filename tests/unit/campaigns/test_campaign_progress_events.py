"""CTI ``campaign.progress`` (cti/campaign_events.py): throttled, state changes at once,
admin only, the final counts last; and the campaign section of cti/PROTOCOL.md holds valid
messages. A live CtiServer on port 0 over the scripted dialer of test_campaign_dialer."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_campaign_dialer import OUTAGE, make_dialer, repo, wait_state

from cti.auth import Authenticator, CtiUser, LoginThrottle, MemoryUserDirectory, hash_password
from cti.backend import BackendEvent
from cti.campaign_commands import install
from cti.campaign_events import EVENT, ProgressEvents, install_progress
from cti.client import CtiClient, CtiEvent
from cti.fake import FakeBackend
from cti.messages import COMMANDS, parse_request, validate_event, validate_response
from cti.roles import PERMISSIONS, Role
from cti.server import CtiConfig, CtiServer
from storage.campaign_repository import CampaignRepository
from switch.campaigns import (
    CallingWindow,
    Campaign,
    CampaignKind,
    CampaignState,
    Limits,
    NewContact,
    Outcome,
    Progress,
    RetryPolicy,
    RetryRule,
)

__all__ = ["repo"]  # the fixture, re-exported for pytest

PASSWORD = "pw-1234"
DOC = Path(__file__).resolve().parents[3] / "cti" / "PROTOCOL.md"


@pytest.fixture
def tables() -> Iterator[None]:
    commands, permissions = dict(COMMANDS), dict(PERMISSIONS)
    yield
    COMMANDS.clear()
    COMMANDS.update(commands)
    PERMISSIONS.clear()
    PERMISSIONS.update(permissions)


def _progress(done: int) -> Progress:
    return Progress(10, 10 - done, 0, done, 0, {Outcome.ANSWERED: done},
                    {Outcome.ANSWERED: done})


async def test_throttle_folds_changes_and_sends_state_changes_at_once() -> None:
    sent: list[BackendEvent] = []
    events = ProgressEvents(sent.append, interval_s=0.2)
    campaign = Campaign("c", CampaignKind.OUTAGE_NOTICE)
    computed: list[int] = []

    def counts(done: int) -> Any:
        def compute() -> Progress:
            computed.append(done)
            return _progress(done)
        return compute

    for done in range(1, 6):
        events.notify(campaign, CampaignState.RUNNING, counts(done))
    assert [e.data["progress"]["done"] for e in sent] == [1]       # the first at once
    await asyncio.sleep(0.3)
    assert [e.data["progress"]["done"] for e in sent] == [1, 5]    # one trailing, latest
    assert computed == [1, 5]                                       # lazily (Rule 4)
    events.notify(campaign, CampaignState.RUNNING, counts(6))
    events.notify(campaign, CampaignState.COMPLETED, counts(10))   # state change: now
    assert [(e.data["state"], e.data["progress"]["done"]) for e in sent[2:]] == [
        ("completed", 10)]
    await asyncio.sleep(0.3)
    assert len(sent) == 3       # the running 6 was folded into the completed event
    assert all(e.name == EVENT and e.queues == frozenset() for e in sent)
    for e in sent:  # what goes on the wire is a valid event of the protocol
        validate_event({"v": 1, "type": "evt", "seq": 1, "ts": 0.0, "event": e.name,
                        "data": json.loads(json.dumps(e.data))})


async def test_the_dialers_stop_sends_the_progress_the_throttle_holds() -> None:
    """install_progress wires the dialer's stop to close(): a running update folded by the
    throttle is sent at shutdown instead of being lost with the timer."""
    sent: list[BackendEvent] = []
    dialer = SimpleNamespace(on_progress=None, on_stopped=None)
    install_progress(SimpleNamespace(publish=sent.append), dialer, interval_s=60.0)
    campaign = Campaign("c", CampaignKind.OUTAGE_NOTICE)
    dialer.on_progress(campaign, CampaignState.RUNNING, lambda: _progress(1))
    dialer.on_progress(campaign, CampaignState.RUNNING, lambda: _progress(7))
    assert [e.data["progress"]["done"] for e in sent] == [1]  # 7 waits for the throttle
    dialer.on_stopped()
    assert [e.data["progress"]["done"] for e in sent] == [1, 7]


async def _client(srv: CtiServer, user: str) -> CtiClient:
    client = await CtiClient.connect("127.0.0.1", srv.port)
    await client.login(user, PASSWORD)
    return client


async def _drain(client: CtiClient, timeout_s: float) -> list[CtiEvent]:
    got = []
    while True:
        try:
            got.append(await client.next_event(timeout_s))
        except TimeoutError:
            return got


async def test_admin_sees_progress_while_it_runs_others_do_not(
        tables: None, repo: CampaignRepository) -> None:
    digest = hash_password(PASSWORD, log2_n=4)
    users = MemoryUserDirectory([
        CtiUser("root", Role.ADMIN, digest, frozenset(), False, None),
        CtiUser("sup", Role.SUPERVISOR, digest, frozenset({"billing"}), True, "s1")])
    srv = CtiServer(FakeBackend(["billing"]), Authenticator(users, LoginThrottle()),
                    CtiConfig(stats_interval_s=0.0))
    await srv.start()
    script = {f"1380000000{i}": what for i, what in
              enumerate(["key:1", "key:1", "busy", "hangup", "key:9", "silent"])}
    dialer, _, _ = make_dialer(repo, script)
    install(srv, repo, dialer.wake)
    events = install_progress(srv, dialer, interval_s=0.1)
    root = await _client(srv, "root")
    sup = await _client(srv, "sup")
    try:
        await root.subscribe(events=["campaign.*"])
        await sup.subscribe(events=["*"])
        campaign = Campaign("进度", CampaignKind.OUTAGE_NOTICE,
                            window=CallingWindow(("daily 00:00-24:00",)),
                            limits=Limits(2, 20.0, 2), params=OUTAGE,
                            retry=RetryPolicy(busy=RetryRule(0.05, 2),
                                              no_answer=RetryRule(0.0, 1)))
        await repo.create(campaign, [NewContact("住户", p) for p in script])
        await root.request("campaign.start", name="进度")
        await dialer.start()
        try:
            await wait_state(repo, "进度", "completed")
            assert await dialer.settled(5.0)
        finally:
            await dialer.stop()
        got = await _drain(root, 0.5)
        seen_by_sup = await _drain(sup, 0.2)
    finally:
        events.close()
        await root.close()
        await sup.close()
        await srv.close()
    progress = [e for e in got if e.event == EVENT]
    assert progress and all(e.data["name"] == "进度" for e in progress)
    running = [e for e in progress if e.data["state"] == "running"]
    assert running, "no progress while it ran"
    assert any(0 < e.data["progress"]["done"] < 6 for e in running)
    last = progress[-1].data
    assert last["state"] == "completed" and last["progress"]["done"] == 6
    assert last["progress"]["finals"] == {"acknowledged": 2, "answered": 1, "busy": 1,
                                          "opted_out": 1, "no_answer": 1, "failed": 0}
    assert last["progress"]["attempts"]["busy"] == 2     # retried once, as configured
    # 8 calls, each placed and concluded: far fewer events than moves (throttled).
    assert len(progress) < 16
    assert [e for e in seen_by_sup if e.event.startswith("campaign.")] == []


def test_protocol_campaign_examples_are_valid_messages(tables: None) -> None:
    """The campaign section's plain block (commands exist only once installed) holds valid
    requests and responses; its event example is in a jsonl block (the contract test)."""
    install(_NullServer(), None)  # type: ignore[arg-type]
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Outbound campaigns (admin)", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block is not None
    messages = [json.loads(line) for line in block.group(1).splitlines() if line.strip()]
    assert {m["cmd"] for m in messages if m["type"] == "req"} >= {
        "campaign.list", "campaign.start", "campaign.status", "campaign.pause"}
    for m in messages:
        if m["type"] == "req":
            parse_request(m)
        else:
            validate_response(m)
    assert f"`{EVENT}`" in section


class _NullServer:
    def __init__(self) -> None:
        self.extra_handlers: dict[str, Any] = {}
