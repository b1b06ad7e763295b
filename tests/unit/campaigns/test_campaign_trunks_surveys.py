"""Dialer Rule 3 with dial-plan routed trunk calls (a campaign without a named trunk never
takes the trunk above max_calls, other calls on the trunk count), and Rule 7 across a
restart (surveys of work orders closed while the node was down start at the next start,
none twice). Scripted driver and media of test_campaign_dialer, SQLite in tmp_path."""

from __future__ import annotations

import asyncio
from typing import Any

from test_campaign_dialer import OUTAGE, make_dialer, repo, wait_state

from storage.campaign_repository import CampaignRepository
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
from switch.campaigns.surveys import MARK
from switch.originate import Destination, DestinationResolver, TrunkFull
from switch.trunks.config import TrunkConfig

__all__ = ["repo"]  # the fixture, re-exported for pytest

MAX_CALLS = 3
INBOUND = 1
"""Lines of the trunk held by a call that is not the dialer's (an inbound call)."""


class TrunkPlan(DestinationResolver):
    """A dial plan that sends every number out through trunk ``carrier`` (no campaign names
    a trunk); the node's count of calls on it is the inbound call plus the legs placed."""

    def __init__(self, base: DestinationResolver, originator: Any) -> None:
        super().__init__(base.driver, {"carrier": TrunkConfig("carrier", host="127.0.0.1",
                                                              max_calls=MAX_CALLS)},
                         None)
        self.originator = originator

    def trunk_in_use(self, trunk: str) -> int | None:
        return INBOUND + self.originator.leg_count() if trunk == "carrier" else None

    def resolve(self, number: str, trunk: str = "", *, caller: str = ""
                ) -> Destination | str:
        assert trunk == ""  # the campaign goes through the dial plan
        if (self.trunk_in_use("carrier") or 0) >= MAX_CALLS:
            return TrunkFull("trunk carrier is at max_calls")
        return Destination(number, tuple(self.driver.lookup(number)), "trunk carrier",
                           trunk="carrier")


async def test_dial_plan_routed_campaign_never_exceeds_the_trunk(
        repo: CampaignRepository) -> None:
    phones = [f"1380000{i:04d}" for i in range(8)]
    dialer, driver, _ = make_dialer(repo, dict.fromkeys(phones, "silent"), ring_timeout_s=0.15)
    dialer.resolver = TrunkPlan(dialer.resolver, dialer.originator)
    peak = 0
    originate = driver.originate

    async def counting(ch: Any, target: Any, **kw: Any) -> None:
        nonlocal peak
        peak = max(peak, dialer.originator.leg_count())
        await originate(ch, target, **kw)

    driver.originate = counting  # type: ignore[method-assign]
    campaign = Campaign("dialplan", CampaignKind.OUTAGE_NOTICE,
                        window=CallingWindow(("daily 00:00-24:00",)),
                        limits=Limits(6, 100.0, 6), params=OUTAGE,
                        retry=RetryPolicy(no_answer=RetryRule(0.0, 1)))
    await repo.create(campaign, [NewContact("住户", p) for p in phones])
    await repo.command("dialplan", CampaignCommand.START)
    await dialer.start()
    try:
        await wait_state(repo, "dialplan", "completed")
        assert await dialer.settled(5.0)
    finally:
        await dialer.stop()
    # 6 lines allowed by the campaign, but the trunk has 3 and an inbound call holds one.
    assert peak == MAX_CALLS - INBOUND
    assert sorted(driver.invites) == phones      # everyone called once, nobody failed
    report = await repo.report(await repo.get("dialplan"))
    assert {r.last_outcome for r in report} == {"no_answer"}
    assert all(r.attempts == 1 for r in report)


async def test_trunk_full_from_the_policy_holds_the_contact_instead_of_failing(
        repo: CampaignRepository) -> None:
    """The node's count says full (another call took the last line between two looks): the
    resolver's TrunkFull refusal puts the contact back, it is called once a line frees."""
    dialer, driver, _ = make_dialer(repo, {"13800000001": "hangup"})
    plan = TrunkPlan(dialer.resolver, dialer.originator)
    busy = {"lines": MAX_CALLS}
    plan.trunk_in_use = lambda trunk: busy["lines"]  # type: ignore[method-assign]
    plan.resolve = lambda number, trunk="", caller="": (  # type: ignore[method-assign]
        TrunkFull("full") if busy["lines"] >= MAX_CALLS else
        Destination(number, tuple(driver.lookup(number)), "trunk carrier", trunk="carrier"))
    dialer.resolver = plan
    campaign = Campaign("held", CampaignKind.OUTAGE_NOTICE,
                        window=CallingWindow(("daily 00:00-24:00",)), params=OUTAGE)
    await repo.create(campaign, [NewContact("住户", "13800000001")])
    await repo.command("held", CampaignCommand.START)
    await dialer.start()
    try:
        await asyncio.sleep(0.6)
        assert driver.invites == []
        assert (await repo.get("held")).state.value == "running"
        busy["lines"] = 1
        dialer.wake()
        await wait_state(repo, "held", "completed")
    finally:
        await dialer.stop()
    assert driver.invites == ["13800000001"]
    report = await repo.report(await repo.get("held"))
    assert [(r.attempts, r.last_outcome) for r in report] == [(1, "answered")]


async def test_surveys_of_orders_closed_while_down_start_at_the_next_start(
        repo: CampaignRepository) -> None:
    hotline = HotlineRepository(repo.db)
    template = Campaign("", CampaignKind.REPAIR_SURVEY,
                        window=CallingWindow(("daily 00:00-24:00",)))
    kw: dict[str, Any] = {"auto_survey": True, "survey_template": template,
                          "survey_poll_s": 0.05}
    script = {"13800000000": "key:5", "13900001111": "key:4"}

    # First start of the site: history is not surveyed; an order closed while up is.
    first, driver1, _ = make_dialer(repo, script, **kw)
    await first.start()
    try:
        await hotline.update_work_order("202611280007", status="closed")
        await wait_state(repo, "报修回访-202611280007", "completed")
        assert await first.settled(5.0)
    finally:
        await first.stop()
    assert driver1.invites == ["13800000000"]
    mark = await repo.get_mark(MARK)
    assert mark is not None

    # Down: two orders are closed, one of them rated at the desk meanwhile.
    closed_down = await _close_two_open_orders(hotline)
    await hotline.update_work_order(closed_down[1], rating=3)

    second, driver2, _ = make_dialer(repo, script, **kw)
    await second.start()
    try:
        await wait_state(repo, f"报修回访-{closed_down[0]}", "completed")
        assert await second.settled(5.0)
        await asyncio.sleep(0.2)  # a few more polls: nothing else starts
    finally:
        await second.stop()
    names = sorted(c.name for c in await repo.list_campaigns())
    assert names == sorted(["报修回访-202611280007", f"报修回访-{closed_down[0]}"])
    assert second.surveys is not None and second.surveys.started == [closed_down[0]]
    assert len(driver2.invites) == 1
    assert (await repo.get_mark(MARK) or 0) >= mark

    # A third start surveys nobody again.
    third, driver3, _ = make_dialer(repo, script, **kw)
    await third.start()
    try:
        await asyncio.sleep(0.3)
    finally:
        await third.stop()
    assert driver3.invites == [] and third.surveys is not None and third.surveys.started == []


async def _close_two_open_orders(hotline: HotlineRepository) -> list[str]:
    """Create two repair orders (reported from numbers of the script) and close them."""
    numbers = [await hotline.create_work_order("repair", phone=phone, description="漏水")
               for phone in ("13900001111", "13800000000")]
    for number in numbers:
        await hotline.update_work_order(number, status="closed")
    return numbers
