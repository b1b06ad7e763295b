"""Persistence: restart mid-campaign without double calls, opt-outs, survey ratings, sources."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from random import Random

import pytest
from sqlalchemy import func, select

from storage.campaign_models import CampaignAttemptRow
from storage.campaign_repository import (
    CampaignRepository,
    DuplicateAttemptError,
    DuplicateCampaignError,
    UnknownCampaignError,
)
from storage.db import Database
from storage.hotline_demo import ensure_hotline_demo
from switch.campaigns import (
    CallingWindow,
    Campaign,
    CampaignCommand,
    CampaignKind,
    CampaignScheduler,
    CampaignState,
    CampaignStateError,
    Limits,
    NewContact,
    Outcome,
    RetryPolicy,
    RetryRule,
    interpret_key,
)
from switch.campaigns.scheduler import INTERRUPTED, DialContact
from switch.campaigns.sources import (
    SourceError,
    arrears_residents,
    building_residents,
    start_repair_survey,
    work_order_resident,
)

T0 = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
POLICY = RetryPolicy(busy=RetryRule(60.0, 3), no_answer=RetryRule(90.0, 3),
                     failed=RetryRule(600.0, 2), retry_interrupted=True)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/campaigns.db")
    await database.start()
    yield database
    await database.close()


@pytest.fixture
async def repo(db: Database) -> CampaignRepository:
    return CampaignRepository(db)


def new_contacts(n: int) -> list[NewContact]:
    return [NewContact(f"住户{i}", f"1380000{i:04d}", {"amount": f"{100 + i}.50",
                                                      "due_date": "2026-12-31"})
            for i in range(n)]


async def started(repo: CampaignRepository, n: int, *, lines: int = 3,
                  retry: RetryPolicy = POLICY, name: str = "催缴",
                  kind: CampaignKind = CampaignKind.ARREARS_REMINDER) -> CampaignScheduler:
    campaign = Campaign(name, kind, window=CallingWindow(("daily 00:00-24:00",)),
                        limits=Limits(lines, 100.0, 100), retry=retry)
    await repo.create(campaign, new_contacts(n))
    await repo.command(name, CampaignCommand.START)
    sched, interrupted = CampaignScheduler.restore(await repo.load_resume_state(name), T0)
    assert interrupted == []
    return sched


def scripted(contact_id: int, attempt_no: int) -> Outcome:
    """The same outcome for the same call, whichever scheduler placed it."""
    return Random(contact_id * 100 + attempt_no).choice(
        [Outcome.BUSY, Outcome.NO_ANSWER, Outcome.FAILED, Outcome.ACKNOWLEDGED,
         Outcome.ANSWERED])


async def tick(repo: CampaignRepository, sched: CampaignScheduler, now: float
               ) -> list[DialContact]:
    """One round of the dialer: persist the dials, then every call ends 20 s later."""
    dials = sched.next_actions(now)
    await repo.begin_attempts(dials)
    decisions = [sched.record_outcome(d.contact.id, scripted(d.contact.id, d.attempt_no),
                                      now + 20) for d in dials]
    await repo.record_outcomes(sched.campaign, decisions)
    return dials


async def test_restart_between_calls_gives_identical_schedule(repo: CampaignRepository
                                                              ) -> None:
    live = await started(repo, 12)
    calls: list[tuple[int, int, float]] = []
    rebuilt: CampaignScheduler | None = None
    for k in range(200):
        now = T0 + 30 * k
        if k == 7:   # the node restarts: a new scheduler from the database only
            rebuilt, interrupted = CampaignScheduler.restore(
                await repo.load_resume_state("催缴"), now)
            assert interrupted == []
            ids = list(range(1, 13))
            assert [rebuilt.due_at(i) for i in ids] == [live.due_at(i) for i in ids]
            assert [rebuilt.attempts_of(i) for i in ids] == [live.attempts_of(i) for i in ids]
            live = rebuilt
        calls += [(d.contact.id, d.attempt_no, now) for d in await tick(repo, live, now)]
        if live.state is CampaignState.COMPLETED:
            break
    assert rebuilt is not None and live.state is CampaignState.COMPLETED
    assert len(calls) == len(set((c, a) for c, a, _ in calls))     # no call placed twice
    campaign = await repo.get("催缴")
    assert campaign.state is CampaignState.COMPLETED
    progress = await repo.progress(campaign)
    assert progress.done == 12 and sum(progress.attempts.values()) == len(calls)


async def test_crash_while_dialing_counts_attempt_and_retries_per_failed_rule(
        repo: CampaignRepository, db: Database) -> None:
    sched = await started(repo, 5, lines=3)
    dials = sched.next_actions(T0)
    await repo.begin_attempts(dials)                    # persisted DIALING, then the crash
    assert [d.contact.id for d in dials] == [1, 2, 3]
    restart = T0 + 120
    rebuilt, cut = CampaignScheduler.restore(await repo.load_resume_state("催缴"), restart)
    assert sorted(d.attempt.contact_id for d in cut) == [1, 2, 3]
    assert all(d.attempt.outcome is Outcome.FAILED and d.attempt.detail == INTERRUPTED
               and d.retry_at == restart + 600 for d in cut)
    await repo.record_outcomes(rebuilt.campaign, cut)
    # Only the two contacts never called are dialed now; the cut ones wait for the rule.
    fresh = rebuilt.next_actions(restart)
    assert [d.contact.id for d in fresh] == [4, 5]
    await repo.begin_attempts(fresh)
    await repo.record_outcomes(rebuilt.campaign, [
        rebuilt.record_outcome(d.contact.id, Outcome.ACKNOWLEDGED, restart + 30) for d in fresh])
    assert rebuilt.next_actions(restart + 599) == []
    again = rebuilt.next_actions(restart + 600)
    assert [(d.contact.id, d.attempt_no) for d in again] == [(1, 2), (2, 2), (3, 2)]
    async with db.transaction() as session:
        rows = (await session.execute(select(CampaignAttemptRow.detail, func.count())
                                      .group_by(CampaignAttemptRow.detail))).all()
    assert dict(rows) == {INTERRUPTED: 3, "": 2}


async def test_crash_without_interrupted_retry_finishes_contact(repo: CampaignRepository
                                                                ) -> None:
    policy = RetryPolicy(failed=RetryRule(600.0, 5), retry_interrupted=False)
    sched = await started(repo, 2, lines=1, retry=policy)
    await repo.begin_attempts(sched.next_actions(T0))
    rebuilt, cut = CampaignScheduler.restore(await repo.load_resume_state("催缴"), T0 + 5)
    assert [d.retry_at for d in cut] == [None]
    await repo.record_outcomes(rebuilt.campaign, cut)
    [d] = rebuilt.next_actions(T0 + 10_000)
    assert d.contact.id == 2
    # The dial of contact 2 was never persisted, hence never placed. A second restart sees
    # contact 1 finished (its interrupted attempt is final) and contact 2 still to call.
    again, cut2 = CampaignScheduler.restore(await repo.load_resume_state("催缴"), T0 + 20)
    assert cut2 == []
    assert (again.due_at(1), again.attempts_of(1)) == (None, 1)
    assert [(x.contact.id, x.attempt_no) for x in again.next_actions(T0 + 20)] == [(2, 1)]


async def test_the_database_refuses_a_dial_twice(repo: CampaignRepository) -> None:
    sched = await started(repo, 2)
    dials = sched.next_actions(T0)
    await repo.begin_attempts(dials)
    with pytest.raises(DuplicateAttemptError):
        await repo.begin_attempts(dials[:1])


async def test_opt_out_persists_for_the_kind(repo: CampaignRepository) -> None:
    sched = await started(repo, 2)
    dials = sched.next_actions(T0)
    await repo.begin_attempts(dials)
    result = interpret_key(CampaignKind.ARREARS_REMINDER, "9")
    assert result is not None and result.outcome is Outcome.OPTED_OUT
    await repo.record_outcomes(sched.campaign, [
        sched.record_outcome(1, result.outcome, T0 + 30)])
    assert await repo.opted_out(CampaignKind.ARREARS_REMINDER) == {"+8613800000000"}
    assert await repo.opted_out(CampaignKind.OUTAGE_NOTICE) == frozenset()
    second = await started(repo, 3, name="催缴2")
    assert [d.contact.phone for d in second.next_actions(T0)] == ["13800000001",
                                                                  "13800000002"]
    assert (await repo.progress(second.campaign)).skipped == 1
    other = await started(repo, 3, name="停水", kind=CampaignKind.OUTAGE_NOTICE)
    assert len(other.next_actions(T0)) == 3


async def test_state_commands_and_errors(repo: CampaignRepository) -> None:
    campaign = Campaign("x", CampaignKind.OUTAGE_NOTICE)
    await repo.create(campaign, new_contacts(1))
    with pytest.raises(DuplicateCampaignError):
        await repo.create(campaign, new_contacts(1))
    with pytest.raises(CampaignStateError):
        await repo.command("x", CampaignCommand.PAUSE)
    assert await repo.command("x", CampaignCommand.START) is CampaignState.RUNNING
    assert await repo.command("x", CampaignCommand.PAUSE) is CampaignState.PAUSED
    assert await repo.command("x", CampaignCommand.STOP) is CampaignState.STOPPED
    with pytest.raises(UnknownCampaignError):
        await repo.get("nope")
    assert [c.name for c in await repo.list_campaigns()] == ["x"]


async def test_config_round_trips(repo: CampaignRepository) -> None:
    campaign = Campaign("cfg", CampaignKind.OUTAGE_NOTICE,
                        window=CallingWindow(("mon-fri 09:00-20:00", "sat 10:00-12:00"),
                                             "Asia/Shanghai", "work_hours"),
                        limits=Limits(7, 2.5, 3), retry=POLICY,
                        params={"what": "水", "area": "3栋"}, trunk="carrier",
                        source="building 3栋")
    stored = await repo.create(campaign, new_contacts(2))
    assert stored.id is not None
    back = await repo.get("cfg")
    assert back.window == campaign.window and back.limits == campaign.limits
    assert back.retry == campaign.retry and dict(back.params) == dict(campaign.params)
    assert (back.trunk, back.source, back.state) == ("carrier", "building 3栋",
                                                     CampaignState.DRAFT)


# --- the hotline: sources and survey ratings -----------------------------------------------


async def test_survey_rating_stored_on_the_work_order(repo: CampaignRepository,
                                                      db: Database) -> None:
    await ensure_hotline_demo(db)
    hotline = repo.hotline
    number = await hotline.create_work_order("repair", account="100003", phone="13600002222",
                                             description="卫生间漏水")
    with pytest.raises(SourceError, match="not closed"):
        await start_repair_survey(repo, number)
    await hotline.update_work_order(number, status="closed")
    campaign = await start_repair_survey(repo, number)
    assert campaign.state is CampaignState.RUNNING
    sched, _ = CampaignScheduler.restore(await repo.load_resume_state(campaign.name), T0)
    [dial] = sched.next_actions(T0)
    assert dial.contact.phone == "13600002222" and dial.contact.name == "王芳"
    await repo.begin_attempts([dial])
    result = interpret_key(CampaignKind.REPAIR_SURVEY, "4")
    assert result is not None and result.rating == 4
    decision = sched.record_outcome(dial.contact.id, result.outcome, T0 + 40,
                                    rating=result.rating)
    await repo.record_outcomes(sched.campaign, [decision])
    order = await hotline.work_order_status(number)
    assert order is not None and order.rating == 4
    assert (await repo.get(campaign.name)).state is CampaignState.COMPLETED
    [line] = await repo.report(await repo.get(campaign.name))
    assert (line.rating, line.last_outcome, line.status) == (4, "acknowledged", "done")


async def test_building_and_arrears_sources(db: Database) -> None:
    await ensure_hotline_demo(db)
    [zhang] = await building_residents(db, "3栋")
    assert (zhang.name, zhang.phone, zhang.fields["unit"]) == ("张伟", "13800000000",
                                                                "3栋2单元501")
    assert await building_residents(db, "9栋") == []
    all_owed = await arrears_residents(db, min_days=0, today=dt.date(2027, 1, 5))
    assert [(c.name, c.fields["amount"], c.fields["due_date"]) for c in all_owed] == [
        ("王芳", "1280.05", "2026-12-15"), ("张伟", "350.50", "2026-12-31"),
        ("刘洋", "150.00", "2026-12-31")]
    overdue = await arrears_residents(db, min_days=10, today=dt.date(2027, 1, 5))
    assert [(c.name, c.fields["amount"]) for c in overdue] == [("王芳", "960.00")]
    assert await arrears_residents(db, min_days=0, today=dt.date(2026, 12, 1)) == []


async def test_work_order_source_errors(db: Database) -> None:
    await ensure_hotline_demo(db)
    with pytest.raises(SourceError, match="no work order"):
        await work_order_resident(db, "99999999")
    with pytest.raises(SourceError, match="in_progress"):
        await work_order_resident(db, "202611280007")
    contact = await work_order_resident(db, "20261120")
    assert (contact.name, contact.phone, contact.fields["work_order"]) == (
        "李娜", "13900001111", "20261120")


async def test_restart_after_hours_waits_for_the_window(repo: CampaignRepository) -> None:
    cn = dt.timezone(dt.timedelta(hours=8))
    friday_1958 = dt.datetime(2026, 12, 4, 19, 58, tzinfo=cn).timestamp()
    monday_0900 = dt.datetime(2026, 12, 7, 9, 0, tzinfo=cn).timestamp()
    campaign = Campaign("晚间", CampaignKind.OUTAGE_NOTICE,
                        window=CallingWindow(("mon-fri 09:00-20:00",)),
                        limits=Limits(2, 100.0, 100), retry=POLICY)
    await repo.create(campaign, new_contacts(4))
    await repo.command("晚间", CampaignCommand.START)
    sched, _ = CampaignScheduler.restore(await repo.load_resume_state("晚间"), friday_1958)
    dials = sched.next_actions(friday_1958)
    await repo.begin_attempts(dials)                        # 2 calls, then the node dies
    restart = friday_1958 + 3600                            # back at 20:58: closed
    rebuilt, cut = CampaignScheduler.restore(await repo.load_resume_state("晚间"), restart)
    await repo.record_outcomes(rebuilt.campaign, cut)
    assert rebuilt.next_actions(restart) == []
    assert rebuilt.next_deadline() == monday_0900
    saturday = restart + 86400
    assert rebuilt.next_actions(saturday) == []
    monday = rebuilt.next_actions(monday_0900)
    assert [(d.contact.id, d.attempt_no) for d in monday] == [(3, 1), (4, 1)]


async def test_live_campaigns_is_what_the_dialer_polls(repo: CampaignRepository) -> None:
    await started(repo, 1, name="running")
    await started(repo, 1, name="paused")
    await repo.command("paused", CampaignCommand.PAUSE)
    await started(repo, 1, name="stopped")
    await repo.command("stopped", CampaignCommand.STOP)
    await repo.create(Campaign("draft", CampaignKind.ARREARS_REMINDER), new_contacts(1))
    assert [c.name for c in await repo.live_campaigns()] == ["running", "paused"]
    stopped = (await repo.get("stopped")).id
    assert stopped is not None
    assert [c.name for c in await repo.live_campaigns([stopped])] == [
        "running", "paused", "stopped"]
