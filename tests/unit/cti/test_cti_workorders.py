"""Work orders at the desk (cti/workorder_commands.py) on a live CtiServer on port 0.

An agent with a delivered call creates a repair order tied to the call; the order lands in
the hotline storage with the caller's resident and unit, the call carries its number, the
``workorder.created`` event reaches the agent; the IVR's own ``工单(number)`` source (parsed
from ``ivr_lang/demo/hotline.ivr``, run through ``switch.hotline_sources``) then reads the
status the desk set; closing stamps ``closed_at``, which is what the campaign dialer's
survey scan selects; roles and scopes are enforced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cti_helpers import PASSWORD, drain_until, make_users
from sqlalchemy import select

from cti.audit import MemoryAuditSink
from cti.auth import Authenticator, LoginThrottle
from cti.client import CtiClient, CtiCommandError
from cti.fake import FakeBackend
from cti.messages import WORK_ORDER_KINDS, WORK_ORDER_STATUSES
from cti.server import CtiConfig, CtiServer
from cti.workorder_commands import install
from ivr_lang.parser import parse
from storage.campaign_repository import CampaignRepository
from storage.db import Database
from storage.hotline_demo import ensure_hotline_demo
from storage.hotline_models import WORK_ORDER_KINDS as STORED_KINDS
from storage.hotline_models import WORK_ORDER_STATUSES as STORED_STATUSES
from storage.hotline_models import WorkOrder
from storage.hotline_repository import HotlineRepository
from switch.campaigns.sources import start_repair_survey
from switch.hotline_sources import hotline_data_sources

DEMO_IVR = Path(__file__).resolve().parents[3] / "ivr_lang" / "demo" / "hotline.ivr"
CALLER = "13800000000"  # 张伟, 3栋2单元501, account 100001 (storage/hotline_demo.py)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}") as database:
        assert await ensure_hotline_demo(database)
        yield database


@pytest.fixture
async def setup(db: Database) -> AsyncIterator[
        tuple[CtiServer, FakeBackend, HotlineRepository]]:
    backend = FakeBackend(["billing", "repair"])
    repo = HotlineRepository(db)
    server = CtiServer(backend, Authenticator(make_users(), LoginThrottle()),
                       CtiConfig(stats_interval_s=0.0), MemoryAuditSink())
    install(server, repo)
    await server.start()
    yield server, backend, repo
    await server.close()


async def _client(server: CtiServer, user: str) -> CtiClient:
    client = await CtiClient.connect("127.0.0.1", server.port)
    await client.login(user, PASSWORD)
    await client.subscribe()
    return client


async def _ivr_reads(db: Database, number: str) -> dict[str, object] | None:
    """What the hotline script's ``工单(number)`` lookup returns on the live database."""
    program = parse(DEMO_IVR.read_text("utf-8"), "hotline.ivr")
    source = next(s for s in program.sources if s.name.text == "工单")
    result = await hotline_data_sources(db).lookup(source, [number], 3.0)
    return None if result is None else dict(result)


async def test_desk_order_is_stored_tied_to_the_call_and_read_by_the_ivr(
        setup: tuple[CtiServer, FakeBackend, HotlineRepository], db: Database) -> None:
    server, backend, repo = setup
    alice = await _client(server, "alice")
    sup, rsup = await _client(server, "sup"), await _client(server, "rsup")
    try:
        await alice.request("agent.login", device="1001", queues=["billing"])
        await alice.request("agent.set_state", state="ready")
        call_id = await backend.inbound_call(CALLER, "billing")
        await drain_until(alice, "call.delivered")
        created = await alice.request("workorder.create", call_id=call_id, kind="repair",
                                      description="厨房水管漏水")
        number = created["number"]
        assert len(number) == 12 and created["status"] == "open"
        assert created["account"] == "100001" and created["unit"] == "3栋2单元501"
        assert created["phone"] == CALLER and created["call_id"] == call_id
        events = await drain_until(alice, "workorder.created")
        event = events[-1].data
        assert event["number"] == number and event["agent_id"] == "a1"
        assert event["call_id"] == call_id
        # the supervisor of the call's queue sees it; one of another queue does not
        assert (await drain_until(sup, "workorder.created"))[-1].data["number"] == number
        with pytest.raises(TimeoutError):
            await drain_until(rsup, "workorder.created", 0.3)
        assert (await alice.request("call.get_data", call_id=call_id))["data"][
            "work_order"] == number

        order = await repo.work_order_status(number)
        assert order is not None and order.description == "厨房水管漏水"
        assert await _stored_call_id(db, number) == call_id

        heard = await _ivr_reads(db, number)
        assert heard is not None and heard["status"] == "已受理"
        assert heard["unit"] == "3栋2单元501"

        updated = await alice.request("workorder.update", number=number,
                                      status="in_progress", progress="维修师傅已出发")
        assert updated["status"] == "in_progress"
        assert (await drain_until(alice, "workorder.updated"))[-1].data["status_text"] == \
            "维修师傅已出发"
        heard = await _ivr_reads(db, number)
        assert heard is not None and heard["status"] == "维修师傅已出发"

        listed = await alice.request("workorder.list", call_id=call_id)
        assert number in [o["number"] for o in listed["orders"]]
        got = await alice.request("workorder.get", number=number)
        assert got["status_text"] == "维修师傅已出发" and got["kind"] == "repair"
    finally:
        for client in (alice, sup, rsup):
            await client.close()


async def _stored_call_id(db: Database, number: str) -> str | None:
    async with db.transaction() as session:
        value = await session.scalar(
            select(WorkOrder.call_id).where(WorkOrder.number == number))
    return None if value is None else str(value)


async def test_closing_at_the_desk_stamps_what_the_survey_scan_selects(
        setup: tuple[CtiServer, FakeBackend, HotlineRepository], db: Database) -> None:
    """The dialer's 报修回访 scan (switch/campaigns/dialer.py ``_start_surveys``) selects
    ``status == 'closed' and closed_at is not null``: a desk close must produce exactly
    that, and reopening must clear it."""
    server, _backend, _repo = setup
    sup = await _client(server, "sup")
    try:
        number = (await sup.request("workorder.create", kind="repair", phone=CALLER))["number"]
        closed = await sup.request("workorder.update", number=number, status="closed")
        assert closed["status"] == "closed" and closed["closed_at"] is not None
        async with db.transaction() as session:
            rows = (await session.execute(
                select(WorkOrder.number).where(WorkOrder.status == "closed",
                                               WorkOrder.closed_at.is_not(None)))).all()
        assert number in {r[0] for r in rows}
        # ... and the survey it starts for such an order calls the resident back
        survey = await start_repair_survey(CampaignRepository(db), number)
        assert survey.name == f"报修回访-{number}" and survey.state.value == "running"
        assert (await _ivr_reads(db, number) or {})["status"] == "已完成"
        reopened = await sup.request("workorder.update", number=number, status="open")
        assert reopened["closed_at"] is None
    finally:
        await sup.close()


async def test_roles_scopes_and_errors(
        setup: tuple[CtiServer, FakeBackend, HotlineRepository]) -> None:
    server, backend, _repo = setup
    wall, crm, bob, alice = [await _client(server, u)
                             for u in ("wall", "crm", "bob", "alice")]
    try:
        for client in (wall, crm):
            with pytest.raises(CtiCommandError) as err:
                await client.request("workorder.get", number="202611280007")
            assert err.value.code == "forbidden"
        await alice.request("agent.login", device="1001", queues=["billing"])
        await alice.request("agent.set_state", state="ready")
        await bob.request("agent.login", device="1002", queues=["repair"])
        call_id = await backend.inbound_call(CALLER, "billing")
        with pytest.raises(CtiCommandError) as err:  # bob's call it is not
            await bob.request("workorder.create", call_id=call_id, kind="repair")
        assert err.value.code == "forbidden"
        with pytest.raises(CtiCommandError) as err:
            await alice.request("workorder.get", number="209901010001")
        assert err.value.code == "not_found"
        with pytest.raises(CtiCommandError) as err:
            await alice.request("workorder.update", number="209901010001", status="closed")
        assert err.value.code == "not_found"
        with pytest.raises(CtiCommandError) as err:
            await alice.request("workorder.create", kind="leak", phone=CALLER)
        assert err.value.code == "invalid_args"
        with pytest.raises(CtiCommandError) as err:
            await alice.request("workorder.update", number="202611280007")
        assert err.value.code == "invalid_args"
        with pytest.raises(CtiCommandError) as err:
            await alice.request("workorder.get", number="12ab")
        assert err.value.code == "invalid_args"
        demo = await bob.request("workorder.get", number="202611280007")
        assert demo["kind"] == "repair" and demo["account"] == "100001"
    finally:
        for client in (wall, crm, bob, alice):
            await client.close()


def test_the_protocol_schema_matches_the_storage() -> None:
    assert (WORK_ORDER_KINDS, WORK_ORDER_STATUSES) == (STORED_KINDS, STORED_STATUSES)


async def test_a_server_without_work_order_storage_answers_not_supported() -> None:
    server = CtiServer(FakeBackend(["billing"]), Authenticator(make_users(), LoginThrottle()),
                       CtiConfig(stats_interval_s=0.0), MemoryAuditSink())
    await server.start()
    try:
        alice = await _client(server, "alice")
        with pytest.raises(CtiCommandError) as err:
            await alice.request("workorder.get", number="202611280007")
        assert err.value.code == "not_supported"
        await alice.close()
    finally:
        await server.close()
