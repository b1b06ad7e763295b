"""The dialer (switch/campaigns/dialer.py) and the originator (switch/originate.py) over a
scripted channel driver and media: outcomes, retries, opt-out across campaigns, the window
under a fake clock, shutdown with calls in progress, and the 报修回访 started by closing a
work order with its rating stored on the order. SQLite in tmp_path, no sockets."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from signaling.location import Binding
from storage.campaign_repository import CampaignRepository, UnknownCampaignError
from storage.db import Database
from storage.hotline_demo import ensure_hotline_demo
from storage.hotline_repository import HotlineRepository
from switch.campaigns import (
    CallingWindow,
    Campaign,
    CampaignCommand,
    CampaignKind,
    Limits,
    NewContact,
    RetryPolicy,
    RetryRule,
)
from switch.campaigns.dialer import Dialer
from switch.channel import Channel, ChannelInput, ChannelState
from switch.drivers.base import LegAnswered, LegHungUp, LegRejected, LegRinging
from switch.originate import DestinationResolver, Originator, RingOutcome, classify_statuses

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
OUTAGE = {"area": "3栋", "what": "水", "date": "2026-12-02", "start": "09:00", "end": "17:00"}


@dataclass(frozen=True)
class Key:
    digit: str


class FakeMedia:
    """Prompts end after 20 ms; digits are put on per-channel queues by the driver."""

    tts = None

    def __init__(self) -> None:
        self.queues: dict[int, asyncio.Queue[Key]] = {}
        self.said: list[str] = []
        self.answer_prompts: dict[int, str] = {}
        """cid -> the key pressed right after the first prompt that asks for keys (按)."""

    def digits(self, cid: int) -> asyncio.Queue[Key]:
        return self.queues.setdefault(cid, asyncio.Queue())

    async def say(self, cid: int, text: str, **_: Any) -> asyncio.Future[str]:
        self.said.append(text)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()
        loop.call_later(0.02, lambda: fut.done() or fut.set_result("completed"))
        if "按" in text and cid in self.answer_prompts:
            key = Key(self.answer_prompts.pop(cid))
            loop.call_later(0.03, self.digits(cid).put_nowait, key)
        return fut

    async def stop(self, cid: int) -> None:
        return None


class FakeDriver:
    """A channel driver whose callees follow a script keyed by number: ``busy``,
    ``silent`` (rings for ever), ``hangup`` (answers, hangs up without a key), ``key:D``
    (answers, presses D), ``ask:D`` (answers, presses D once a prompt asks for a key),
    ``mute`` (answers and stays on the line in silence)."""

    def __init__(self, media: FakeMedia, script: dict[str, str]) -> None:
        self.media = media
        self.script = script
        self.on_event: Any = None
        self.invites: list[str] = []
        self.cancelled: list[str] = []
        self.byes: list[str] = []
        self.released = 0
        self._ids = itertools.count(1)

    def lookup(self, number: str) -> list[Binding]:
        return [Binding(f"sip:{number}@test", f"sip:{number}@127.0.0.1:5999", 0.0)]

    def new_outbound(self, peer: str) -> Channel:
        return Channel(f"fake/{peer}-{next(self._ids)}", "callee", peer)

    async def originate(self, ch: Channel, target: Any, *, caller: str,
                        caller_name: str = "", codec: str = "PCMU",
                        near: int | None = None) -> None:
        self.invites.append(ch.peer)
        ch.media_id = next(self._ids)
        what = self.script[ch.peer]
        loop = asyncio.get_running_loop()
        if what == "busy":
            loop.call_later(0.01, self._end, ch, LegRejected(ch, 486))
        elif what == "silent":
            ch.fire(ChannelInput.RING, 0.0)
            self.on_event(LegRinging(ch, False))
        else:
            loop.call_later(0.01, self._answer, ch, what)

    def _end(self, ch: Channel, event: Any) -> None:
        if not ch.ended:
            ch.fire(ChannelInput.HANGUP, 0.0)
            self.on_event(event)

    def _answer(self, ch: Channel, what: str) -> None:
        ch.fire(ChannelInput.ANSWER, 0.0)
        self.on_event(LegAnswered(ch))
        loop = asyncio.get_running_loop()
        if what == "hangup":
            loop.call_later(0.05, self._end, ch, LegHungUp(ch))
        elif what.startswith("key:"):
            queue = self.media.digits(ch.media_id or 0)
            loop.call_later(0.01, queue.put_nowait, Key(what[4:]))
        elif what.startswith("ask:"):  # presses D once a prompt has asked for a key
            self.media.answer_prompts[ch.media_id or 0] = what[4:]

    def cancel(self, ch: Channel) -> None:
        if not ch.ended:
            self.cancelled.append(ch.peer)
            ch.fire(ChannelInput.HANGUP, 0.0)

    def hangup(self, ch: Channel) -> None:
        if ch.ended:
            return
        if ch.state is not ChannelState.UP:   # like the SIP driver: CANCEL before answer
            self.cancel(ch)
            return
        self.byes.append(ch.peer)
        ch.fire(ChannelInput.HANGUP, 0.0)

    async def release(self, ch: Channel) -> None:
        self.released += 1


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[CampaignRepository]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/dialer.db")
    await db.start()
    await ensure_hotline_demo(db)
    yield CampaignRepository(db)
    await db.close()


def make_dialer(repo: CampaignRepository, script: dict[str, str], **kw: Any
                ) -> tuple[Dialer, FakeDriver, FakeMedia]:
    media = FakeMedia()
    driver = FakeDriver(media, script)
    originator = Originator(driver)  # type: ignore[arg-type]
    driver.on_event = originator.handle
    resolver = DestinationResolver(driver, {}, None)  # type: ignore[arg-type]
    kw.setdefault("poll_s", 0.05)
    kw.setdefault("key_wait_s", 0.1)
    kw.setdefault("ring_timeout_s", 0.2)
    kw.setdefault("auto_survey", False)
    return Dialer(repo, originator, resolver, media, **kw), driver, media


async def create(repo: CampaignRepository, name: str, phones: list[str], *,
                 kind: CampaignKind = CampaignKind.OUTAGE_NOTICE,
                 window: tuple[str, ...] = ("daily 00:00-24:00",), lines: int = 3,
                 retry: RetryPolicy | None = None, start: bool = True) -> Campaign:
    campaign = Campaign(name, kind, window=CallingWindow(window), limits=Limits(lines, 50.0, 5),
                        retry=retry or RetryPolicy(busy=RetryRule(0.05, 3),
                                                   no_answer=RetryRule(0.05, 2)),
                        params=OUTAGE if kind is CampaignKind.OUTAGE_NOTICE else {})
    created = await repo.create(campaign, [NewContact("住户", p, {"work_order": "20261120"})
                                           for p in phones])
    if start:
        await repo.command(name, CampaignCommand.START)
    return created


async def wait_state(repo: CampaignRepository, name: str, state: str, timeout_s: float = 10.0
                     ) -> None:
    seen = None
    for _ in range(int(timeout_s / 0.05)):
        try:
            seen = (await repo.get(name)).state.value
        except UnknownCampaignError:
            seen = None              # not created yet
        if seen == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never became {state}: {seen}")


def test_ring_outcomes_from_fork_statuses() -> None:
    assert classify_statuses([480, 486]) is RingOutcome.BUSY
    assert classify_statuses([404, 408]) is RingOutcome.NO_ANSWER
    assert classify_statuses([404, 503]) is RingOutcome.FAILED
    assert classify_statuses([600]) is RingOutcome.BUSY


async def test_outcomes_retries_and_opt_out_across_campaigns(repo: CampaignRepository) -> None:
    script = {"13800000001": "hangup", "13800000002": "key:1", "13800000003": "busy",
              "13800000004": "silent", "13800000005": "key:9", "13800000006": "key:7"}
    dialer, driver, media = make_dialer(repo, script)
    await create(repo, "n1", list(script))
    await dialer.start()
    try:
        await wait_state(repo, "n1", "completed")
        assert await dialer.settled(5.0)
        # The opted-out number is skipped by the next campaign of the same kind only.
        await create(repo, "n2", ["13800000005", "13800000002"])
        await create(repo, "r1", ["13800000005"], kind=CampaignKind.ARREARS_REMINDER,
                     start=False)
        await wait_state(repo, "n2", "completed")
        assert await dialer.settled(5.0)
    finally:
        await dialer.stop()
    n1 = await repo.get("n1")
    report = {r.phone: (r.last_outcome, r.attempts) for r in await repo.report(n1)}
    assert report == {"13800000001": ("answered", 1), "13800000002": ("acknowledged", 1),
                      "13800000003": ("busy", 3), "13800000004": ("no_answer", 2),
                      "13800000005": ("opted_out", 1), "13800000006": ("answered", 1)}
    # 7 means nothing: the message is said 3 times (MAX_REPEATS), then the call ends.
    counts = Counter(driver.invites)
    assert counts["13800000003"] == 3 and counts["13800000004"] == 2
    assert counts["13800000005"] == 1                  # never again for outage notices
    assert driver.cancelled.count("13800000004") == 2  # rang out: CANCEL after the timeout
    progress = await repo.progress(await repo.get("n2"))
    assert progress.skipped == 1 and progress.finals == {
        **{k: v for k, v in progress.finals.items() if v}}
    assert dialer.originator.leg_count() == 0 and driver.released == len(driver.invites)
    assert all("停水" in text or "再见" in text for text in media.said)


async def test_window_respected_under_a_fake_clock(repo: CampaignRepository) -> None:
    saturday = dt.datetime(2026, 11, 28, 10, 0, tzinfo=SHANGHAI).timestamp()
    clock = Clock(saturday)
    dialer, driver, _ = make_dialer(repo, {"13800000001": "key:1"}, wall=clock)
    await create(repo, "weekdays", ["13800000001"], window=("mon-fri 09:00-20:00",))
    await dialer.start()
    try:
        await asyncio.sleep(0.4)                      # several polls: outside the window
        assert driver.invites == []
        sched = dialer.scheduler((await repo.get("weekdays")).id or 0)
        assert sched is not None
        monday_9 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=SHANGHAI).timestamp()
        assert sched.next_deadline() == monday_9
        clock.now = monday_9 - 61
        await asyncio.sleep(0.3)
        assert driver.invites == []                   # 08:58:59 is still closed
        clock.now = monday_9                          # the next poll dials, no wake needed
        await wait_state(repo, "weekdays", "completed")
    finally:
        await dialer.stop()
    assert driver.invites == ["13800000001"]


async def test_shutdown_records_the_calls_in_progress(repo: CampaignRepository) -> None:
    dialer, driver, _ = make_dialer(repo, {"13800000001": "mute", "13800000002": "silent"},
                                    ring_timeout_s=30.0, key_wait_s=30.0)
    await create(repo, "cut", ["13800000001", "13800000002"],
                 retry=RetryPolicy(failed=RetryRule(600.0, 2)))
    await dialer.start()
    for _ in range(100):
        if len(driver.invites) == 2:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    stopped: list[int] = []
    dialer.on_stopped = lambda: stopped.append(dialer.stats.written)
    await dialer.stop()
    assert stopped == [2]  # told once, after both outcomes were written
    rows = {r.phone: (r.last_outcome, r.status) for r in
            await repo.report(await repo.get("cut"))}
    # Answered: final (the message was being heard). Ringing: failed, retried by policy.
    assert rows == {"13800000001": ("answered", "done"), "13800000002": ("failed", "pending")}
    assert driver.byes == ["13800000001"] and driver.cancelled == ["13800000002"]
    resume = await repo.load_resume_state("cut")
    assert [a.detail for a in resume.attempts] == ["shutdown", "shutdown"]


async def test_closing_a_work_order_starts_the_survey_and_stores_the_rating(
        repo: CampaignRepository) -> None:
    template = Campaign("", CampaignKind.REPAIR_SURVEY,
                        window=CallingWindow(("daily 00:00-24:00",)))
    dialer, driver, media = make_dialer(repo, {"13800000000": "key:5"}, auto_survey=True,
                                        survey_template=template, survey_poll_s=0.1)
    hotline = HotlineRepository(repo.db)
    await dialer.start()
    try:
        await asyncio.sleep(0.1)
        assert (await hotline.work_order_status("202611280007")).rating is None
        await hotline.update_work_order("202611280007", status="closed")
        await wait_state(repo, "报修回访-202611280007", "completed")
        assert await dialer.settled(5.0)
    finally:
        await dialer.stop()
    assert driver.invites == ["13800000000"]
    assert any("工单已经完成" in text for text in media.said)
    order = await hotline.work_order_status("202611280007")
    assert order is not None and order.rating == 5
    report = await repo.report(await repo.get("报修回访-202611280007"))
    assert [(r.last_outcome, r.rating) for r in report] == [("acknowledged", 5)]
    # The demo order closed before the dialer started (20261120) got no survey.
    assert [c.name for c in await repo.list_campaigns()] == ["报修回访-202611280007"]


async def test_ivr_program_on_answer_reports_rating_and_opt_out(
        repo: CampaignRepository, tmp_path: Path) -> None:
    """A survey campaign that runs switch/campaigns/programs/repair_survey.ivr: the program's
    tags decide the outcome (4 -> acknowledged, rating 4 on the work order; 9 -> opted out)."""
    from ivr_lang.datasources import DataSources
    from switch.ivr_service import IvrService

    program = Path(__file__).resolve().parents[3] / "switch/campaigns/programs/repair_survey.ivr"
    # The keys come when asked for, after the greeting (keys pressed during a prompt
    # without barge-in are dropped, ivr_lang/live.py Rule 1).
    script = {"13800000001": "ask:4", "13800000002": "ask:9"}
    dialer, _, media = make_dialer(repo, script)
    tags: list[tuple[str, str]] = []
    dialer.ivr = IvrService(media, DataSources(), site_dir=tmp_path / "ivr",
                            recordings_dir=tmp_path / "rec", reload_interval_s=0,
                            tagger=lambda _call, key, value: tags.append((key, value)))
    campaign = Campaign("ivr-survey", CampaignKind.REPAIR_SURVEY,
                        window=CallingWindow(("daily 00:00-24:00",)), ivr_program=str(program))
    await repo.create(campaign, [NewContact(name, p, {"work_order": "20261120"})
                                 for name, p in zip(("王芳", "李娜"), script, strict=True)])
    await repo.command("ivr-survey", CampaignCommand.START)
    await dialer.start()
    try:
        await wait_state(repo, "ivr-survey", "completed")
        assert await dialer.settled(5.0)
    finally:
        await dialer.stop()
    report = {r.phone: (r.last_outcome, r.rating) for r in
              await repo.report(await repo.get("ivr-survey"))}
    assert report == {"13800000001": ("acknowledged", 4), "13800000002": ("opted_out", None)}
    assert any("维修服务打分" in text for text in media.said)
    # The contact's fields reach the program as its flow inputs (name, work_order).
    assert "王芳您好，这里是物业服务中心。您报修的二零二六一一二零号工单已经完成。" in media.said
    assert "李娜您好，这里是物业服务中心。您报修的二零二六一一二零号工单已经完成。" in media.said
    assert "您给二零二六一一二零号工单打了四分，感谢您的评价，再见。" in media.said
    assert tags.count(("回访工单", "20261120")) == 2          # on each call's CDR
    order = await HotlineRepository(repo.db).work_order_status("20261120")
    assert order is not None and order.rating == 4
    assert await repo.opted_out(CampaignKind.REPAIR_SURVEY) == {"+8613800000002"}


async def test_campaign_calls_get_cdrs_through_the_bus(repo: CampaignRepository) -> None:
    from switch.bus import EventBus
    from switch.cdr import CdrCollector, Disposition

    cdrs: list[Any] = []
    collector = CdrCollector(cdrs.append)
    bus = EventBus()
    bus.tap(collector.handle)
    script = {"13800000001": "key:1", "13800000002": "busy", "13800000003": "silent",
              "13800000004": "hangup"}
    dialer, _, _ = make_dialer(repo, script, bus=bus, tagger=collector.tag)
    await create(repo, "cdr", list(script), retry=RetryPolicy(busy=RetryRule(0.0, 1),
                                                              no_answer=RetryRule(0.0, 1)))
    await dialer.start()
    try:
        await wait_state(repo, "cdr", "completed")
    finally:
        await dialer.stop()
    got = {c.callee: (c.disposition, c.sip_status, c.hangup_side, c.tags["campaign_outcome"],
                      c.source, c.route) for c in cdrs}
    assert got == {
        "13800000001": (Disposition.ANSWERED, None, "system", "acknowledged", "campaign",
                        "campaign cdr"),
        "13800000002": (Disposition.BUSY, 486, "system", "busy", "campaign", "campaign cdr"),
        "13800000003": (Disposition.NO_ANSWER, None, "system", "no_answer", "campaign",
                        "campaign cdr"),
        "13800000004": (Disposition.ANSWERED, None, "callee", "answered", "campaign",
                        "campaign cdr")}
    assert all(c.caller == "hotline" and c.target == f"extension {c.callee}" for c in cdrs)
    assert collector.open_calls == 0


async def test_pause_resume_and_stop_written_by_the_operator(repo: CampaignRepository) -> None:
    phones = [f"1380000{i:04d}" for i in range(8)]
    dialer, driver, _ = make_dialer(repo, dict.fromkeys(phones, "key:1"))
    await create(repo, "ops", phones, lines=1)
    await create(repo, "halt", ["13900000001", "13900000002"], lines=1, start=False)
    driver.script.update({"13900000001": "mute", "13900000002": "key:1"})
    await dialer.start()
    try:
        for _ in range(200):
            if driver.invites:
                break
            await asyncio.sleep(0.01)
        await repo.command("ops", CampaignCommand.PAUSE)   # what the CLI / CTI write
        dialer.wake()
        await asyncio.sleep(0.3)
        placed = len(driver.invites)
        assert 1 <= placed <= 2 and dialer.active_calls() == 0
        await asyncio.sleep(0.3)
        assert len(driver.invites) == placed               # nothing dialed while paused
        await repo.command("ops", CampaignCommand.RESUME)
        await wait_state(repo, "ops", "completed")
        # STOP while a call is up: it finishes and is recorded; nobody else is called.
        await repo.command("halt", CampaignCommand.START)
        for _ in range(200):
            if "13900000001" in driver.invites:
                break
            await asyncio.sleep(0.01)
        await repo.command("halt", CampaignCommand.STOP)
        dialer.wake()
        await asyncio.sleep(0.3)
    finally:
        await dialer.stop()
    assert Counter(driver.invites) == {**dict.fromkeys(phones, 1), "13900000001": 1}
    halt = {r.phone: (r.status, r.last_outcome) for r in
            await repo.report(await repo.get("halt"))}
    assert halt == {"13900000001": ("done", "answered"), "13900000002": ("pending", "")}
    assert (await repo.get("halt")).state.value == "stopped"
