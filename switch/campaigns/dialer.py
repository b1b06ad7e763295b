"""The dialer: the asyncio shell that runs campaigns on a live node (DESIGN.md "Three rings").

The pure :class:`~switch.campaigns.scheduler.CampaignScheduler` decides who is called and
when; this module polls the stored campaigns, places the calls through
:class:`~switch.originate.Originator`, plays the message (or runs the IVR program) on the
answered leg, reads the callee's key, and writes every attempt.

Rules:

* Rule 1 -- the CLI and the CTI only write a campaign's state to storage; the dialer reads
  the campaigns every ``poll_s`` (and at once on :meth:`Dialer.wake`). A RUNNING campaign
  not yet loaded is rebuilt from its stored attempts (``CampaignScheduler.restore``); a
  loaded one follows the stored state (``CampaignScheduler.adopt``): PAUSE and STOP stop new
  calls, calls in progress finish normally and are recorded.
* Rule 2 -- never twice: the DIALING rows of a batch are written BEFORE the calls are placed
  (``CampaignRepository.begin_attempts``); when that write fails nothing is dialed and the
  dials are given back to the scheduler. An attempt found DIALING at start-up (the node
  died during it) is resolved by the scheduler as FAILED ``interrupted`` and, by default,
  is NOT retried (``RetryPolicy.retry_interrupted``, model Rule 3): the resident may have
  heard the message, and a second call is worse than a missed one. On a clean shutdown the
  calls in progress are hung up and recorded with what is known: ANSWERED when they were
  answered (final), else FAILED ``shutdown`` (the FAILED retry rule applies).
* Rule 3 -- limits: a campaign never has more than ``max_lines`` calls in progress and
  never starts calls faster than its token bucket (the scheduler), and never takes a
  trunk above its ``max_calls``: every dial is resolved (named trunk or dial plan) before
  its attempt is written, and one whose trunk has no free line -- counting the node's
  calls on it plus the dials with no leg yet, dial-plan routed ones included -- goes back
  to the scheduler until a line frees.
* Rule 4 -- on answer (:mod:`switch.campaigns.answer`): the kind's message, rendered to
  speech while the phone rings, with barge-in; the first key decides, silence or a
  meaningless key repeats it (``MAX_REPEATS``), a hang-up without a key is ANSWERED. An IVR
  program instead reports through its tags ``campaign_outcome`` and ``campaign_rating``.
* Rule 5 -- outcomes are written by one writer task in batches (one transaction per
  campaign per batch); a database outage keeps them in memory and retries.
* Rule 6 -- every campaign call is also a call of the switch: its events go on the node's
  event bus (``CallOffered`` with source ``campaign``, ``CallRouted`` naming the campaign,
  ``CallAnswered``, ``CallHungUp`` with a cause and SIP status), so it gets a CDR like any
  other call and CTI clients see it; the outcome is tagged on the CDR (``campaign_outcome``)
  (:mod:`switch.campaigns.call_events`).
* Rule 7 -- 报修回访: when ``auto_survey`` is on, every closed work order gets a one-contact
  survey campaign (:mod:`switch.campaigns.surveys`: from a stored high-water mark, so the
  orders closed while the node was down are surveyed at the next start, never twice); its
  rating lands on the work order when the outcome is written (repository Rule 2).
* Rule 8 -- progress: every move of a campaign (calls placed, an outcome, a state change)
  is told to ``on_progress`` (the node's CTI sends throttled ``campaign.progress`` events
  to admins, ``cti/campaign_events.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from storage.campaign_repository import (
    CampaignRepository,
    DuplicateAttemptError,
)
from storage.db import StorageError
from switch.calendar import CalendarSet
from switch.campaigns.answer import (
    GOODBYE,
    play_message,
    retrieve_result,
    run_program,
)
from switch.campaigns.call_events import CallEvents, call_ids
from switch.campaigns.messages import PlayMessage, RunIvr, on_answer
from switch.campaigns.model import (
    Campaign,
    CampaignError,
    CampaignState,
    CampaignStateError,
    Outcome,
    Progress,
)
from switch.campaigns.scheduler import CampaignScheduler, DialContact, OutcomeDecision
from switch.campaigns.surveys import SurveyStarter
from switch.media.errors import MediaError
from switch.originate import (
    Destination,
    DestinationResolver,
    OriginatedCall,
    Originator,
    RingOutcome,
    TrunkFull,
)

logger = logging.getLogger(__name__)

__all__ = ["Dialer", "DialerStats"]

TRUNK_RECHECK_S = 0.5
"""How soon a campaign held back by a full trunk looks again (a call's end wakes it first)."""
_RING_TO_OUTCOME = {RingOutcome.BUSY: Outcome.BUSY, RingOutcome.NO_ANSWER: Outcome.NO_ANSWER,
                    RingOutcome.FAILED: Outcome.FAILED}


@dataclass(slots=True)
class _Live:
    """One attempt in progress (internal)."""

    dial: DialContact
    dest: Destination | str = ""
    """Where the call goes (resolved before the attempt is written), or why nowhere."""
    call: OriginatedCall | None = None
    answered: bool = False
    task: asyncio.Task[None] | None = None
    sip_status: int | None = None
    offered: bool = False

    @property
    def trunk(self) -> str:
        return self.dest.trunk if isinstance(self.dest, Destination) else ""


@dataclass(slots=True)
class _Run:
    """A loaded campaign (internal)."""

    campaign: Campaign
    sched: CampaignScheduler
    stored: CampaignState
    live: dict[int, _Live] = field(default_factory=dict)


@dataclass(slots=True)
class DialerStats:
    """Counters for logs, tests and the benchmark."""

    dials: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    written: int = 0
    peak_calls: int = 0
    write_errors: int = 0


class Dialer:
    """Runs the stored campaigns on the node (see the module docstring for the rules).

    Args:
        repo: the campaign repository.
        originator: places the calls.
        resolver: number (+ trunk) -> SIP destination.
        media: the node's ``MediaService`` (play, digits, TTS).
        calendars: the node's calendars (calling windows may name one).
        ivr: the node's ``IvrService`` for campaigns that run a program (None: such
            campaigns' calls FAIL).
        wall: the clock (epoch seconds): the scheduler's ``now``.
        poll_s: how often stored campaigns are read (Rule 1).
        ring_timeout_s: ring time when the campaign does not set one.
        key_wait_s: silence after the message before it is repeated (Rule 4).
        caller: the user part of From on campaign calls.
        auto_survey: start 报修回访 when a work order is closed (Rule 6).
        survey_template: window, limits and retries of those surveys.
        survey_poll_s: how often closed work orders are looked for.
        bus: the node's event bus (Rule 6); None: no events.
        tagger: ``tagger(call_id, key, value)`` tags the call's CDR (``CdrCollector.tag``).
    """

    def __init__(self, repo: CampaignRepository, originator: Originator,
                 resolver: DestinationResolver, media: Any, *,
                 calendars: CalendarSet | None = None, ivr: Any = None,
                 wall: Callable[[], float] = time.time, poll_s: float = 1.0,
                 ring_timeout_s: float = 30.0, key_wait_s: float = 5.0,
                 caller: str = "hotline", voice: str = "zh", rate: int = 160,
                 auto_survey: bool = True, survey_template: Campaign | None = None,
                 survey_poll_s: float = 5.0, bus: Any = None,
                 tagger: Callable[[str, str, str], None] | None = None) -> None:
        self.repo = repo
        self.originator = originator
        self.resolver = resolver
        self.media = media
        self.calendars = calendars
        self.ivr = ivr
        self.wall = wall
        self.poll_s = poll_s
        self.ring_timeout_s = ring_timeout_s
        self.key_wait_s = key_wait_s
        self.caller = caller
        self.voice = voice
        self.rate = rate
        self.auto_survey = auto_survey
        self.survey_template = survey_template
        self.survey_poll_s = survey_poll_s
        self.bus = bus
        self.tagger = tagger
        self.events = CallEvents(bus, tagger, wall, caller)
        self.on_progress: Callable[[Campaign, CampaignState, Callable[[], Progress]],
                                   None] | None = None
        """Told whenever a campaign moves (CTI ``campaign.progress``, Rule 8)."""
        self.on_stopped: Callable[[], None] | None = None
        """Called at the end of :meth:`stop`, after the last outcome was recorded (the CTI
        sends the progress its throttle still holds)."""
        self.stats = DialerStats()
        self._runs: dict[int, _Run] = {}
        self._broken: set[int] = set()
        self._pending: list[tuple[Campaign, OutcomeDecision]] = []
        self._unwritten: Counter[int] = Counter()
        """Outcomes concluded but not yet committed, per campaign: such a campaign is
        neither dropped nor reloaded (a reload would take them for interrupted calls)."""
        self._wake = asyncio.Event()
        self._written = asyncio.Event()
        self._flush = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._closing = False
        self._sync_now = False
        self._warmed = False
        self.surveys = SurveyStarter(repo, template=survey_template, wall=wall) if (
            auto_survey) else None
        self._next_survey = 0.0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.repo.ensure_schema()
        if self.surveys is not None:
            await self.surveys.start()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._loop(), name="dialer"),
                       loop.create_task(self._writer(), name="dialer-writer")]
        for task in self._tasks:
            task.add_done_callback(_report_crash)

    def wake(self) -> None:
        """Read the stored campaigns now (a CLI/CTI command was just written)."""
        self._sync_now = True
        self._wake.set()

    async def stop(self) -> None:
        """Rule 2: stop dialing, hang up and record the calls in progress, write all."""
        self._stopping = True
        self._wake.set()
        main, writer = self._tasks or (None, None)
        if main is not None:
            # Let the loop finish its step: cancelling it inside begin_attempts could leave
            # DIALING rows of calls never placed (they would count as interrupted).
            try:
                await asyncio.wait_for(asyncio.shield(main), 5.0)
            except TimeoutError:
                main.cancel()
                await asyncio.gather(main, return_exceptions=True)
        lives = [lv.task for run in self._runs.values() for lv in run.live.values()
                 if lv.task is not None]
        for task in lives:
            task.cancel()
        await asyncio.gather(*lives, return_exceptions=True)
        if writer is not None:
            self._closing = True
            self._flush.set()
            try:
                await asyncio.wait_for(writer, 10.0)
            except TimeoutError:
                logger.warning("dialer: outcome writer did not finish in 10 s")
        await self._write_pending()
        if self._pending:
            logger.error("dialer: %d outcome(s) could not be written at shutdown; their "
                         "attempts stay DIALING and count as interrupted at the next start",
                         len(self._pending))
        if self.on_stopped is not None:
            self.on_stopped()
        self._tasks = []

    def active_calls(self) -> int:
        return sum(len(run.live) for run in self._runs.values())

    def scheduler(self, campaign_id: int) -> CampaignScheduler | None:
        run = self._runs.get(campaign_id)
        return run.sched if run is not None else None

    async def settled(self, timeout_s: float) -> bool:
        """Wait until every loaded campaign is finished and written (tests, benchmark)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            busy = any(run.live or run.sched.state in (CampaignState.RUNNING,)
                       for run in self._runs.values())
            if not busy and not self._pending:
                return True
            self._written.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._written.wait(), 0.1)
        return False

    def _changed(self, run: _Run) -> None:
        """Rule 8: tell the progress listener; the counts are computed only if it sends."""
        if self.on_progress is not None:
            self.on_progress(run.campaign, run.sched.state, run.sched.progress)

    # ------------------------------------------------------------------ the loop (Rule 1)
    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_sync = 0.0  # on the loop's monotonic clock; the schedule is on ``wall``
        while not self._stopping:
            self._wake.clear()
            if loop.time() >= next_sync or self._sync_now:
                self._sync_now = False
                await self._sync(self.wall())
                next_sync = loop.time() + self.poll_s
            deadline = await self._dial(self.wall())
            wait = next_sync - loop.time()
            if deadline is not None:
                wait = min(wait, deadline - self.wall())
            if wait > 0 and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def _sync(self, now: float) -> None:
        if self.surveys is not None and now >= self._next_survey:
            self._next_survey = now + self.survey_poll_s
            try:
                await self.surveys.poll()  # before the read: a new survey runs at once
            except StorageError as exc:
                logger.warning("dialer: closed work orders not read: %s", exc)
        try:
            campaigns = await self.repo.live_campaigns(list(self._runs))
        except StorageError as exc:
            logger.warning("dialer: campaigns not read: %s", exc)
            return
        seen = set()
        for campaign in campaigns:
            assert campaign.id is not None
            seen.add(campaign.id)
            run = self._runs.get(campaign.id)
            if run is None:
                if (campaign.state is CampaignState.RUNNING and campaign.id not in self._broken
                        and not self._unwritten[campaign.id]):
                    await self._load(campaign, now)  # (outcomes still being written: later)
                continue
            run.stored = campaign.state
            if campaign.state is not run.sched.state:
                try:
                    run.sched.adopt(campaign.state)
                    self._changed(run)
                    logger.info("campaign %s: %s", campaign.name, campaign.state.value)
                except CampaignStateError as exc:
                    logger.debug("campaign %s: stored state not followed: %s",
                                 campaign.name, exc)
        for cid, run in list(self._runs.items()):
            ended = run.sched.state in (CampaignState.STOPPED, CampaignState.COMPLETED,
                                        CampaignState.PAUSED)
            if not run.live and not self._unwritten[cid] and (cid not in seen or ended):
                del self._runs[cid]  # reloaded from storage when it runs again

    async def _load(self, campaign: Campaign, now: float) -> None:
        try:
            state = await self.repo.load_resume_state(campaign.name)
            sched, interrupted = CampaignScheduler.restore(state, now,
                                                           calendars=self.calendars)
            await self.repo.record_outcomes(state.campaign, interrupted)
        except CampaignError as exc:
            assert campaign.id is not None
            self._broken.add(campaign.id)
            logger.error("campaign %s cannot run: %s", campaign.name, exc)
            return
        except StorageError as exc:
            logger.warning("campaign %s not loaded: %s", campaign.name, exc)
            return
        assert campaign.id is not None
        self._runs[campaign.id] = run = _Run(state.campaign, sched, campaign.state)
        self._changed(run)
        self._warm_tts()
        progress = sched.progress()
        logger.info("campaign %s loaded: %d contact(s), %d pending, %d done, %d call(s) "
                    "interrupted", campaign.name, progress.total, progress.pending,
                    progress.done, len(interrupted))
        if sched.state is CampaignState.COMPLETED:
            await self._store_completed(self._runs[campaign.id])

    def _warm_tts(self) -> None:
        """Load the speech engine with the first campaign, not during its first call (and
        not at every node start: most starts run no campaign)."""
        tts = getattr(self.media, "tts", None)
        if tts is not None and not self._warmed:
            self._warmed = True
            warm = asyncio.get_running_loop().create_task(
                tts.render(GOODBYE, self.voice, self.rate))
            warm.add_done_callback(retrieve_result)

    async def _store_completed(self, run: _Run) -> None:
        if run.stored in (CampaignState.RUNNING, CampaignState.PAUSED):
            assert run.campaign.id is not None
            try:
                await self.repo.set_state(run.campaign.id, CampaignState.COMPLETED)
                run.stored = CampaignState.COMPLETED
            except StorageError as exc:
                logger.warning("campaign %s: completion not stored: %s", run.campaign.name,
                               exc)

    # ------------------------------------------------------------------ dialing (Rules 2, 3)
    def _trunk_free(self, trunk: str, extra: int = 0) -> int | None:
        """Lines ``trunk`` can still take (Rule 3): its ``max_calls`` less the node's count
        of calls on it (inbound, dial-plan routed, every campaign's once their leg exists),
        less our calls with no leg yet and ``extra`` about to be placed; None: no trunk."""
        cfg = self.resolver.trunks.get(trunk) if trunk else None
        if cfg is None:
            return None
        mine = [lv for r in self._runs.values() for lv in r.live.values() if lv.trunk == trunk]
        used = self.resolver.trunk_in_use(trunk)
        if used is None:  # no node count: ours is all we know
            return cfg.max_calls - len(mine) - extra
        legless = sum(1 for lv in mine if lv.call is None or not lv.call.forks)
        return cfg.max_calls - used - legless - extra

    def _route(self, run: _Run, dials: list[DialContact], now: float
               ) -> tuple[list[tuple[DialContact, Destination | str]], bool]:
        """Rule 3: resolve each dial (named trunk or dial plan) before it is written; one
        whose trunk has no free line goes back to the scheduler (returns True then)."""
        routed: list[tuple[DialContact, Destination | str]] = []
        taking: Counter[str] = Counter()
        held = False
        for dial in dials:
            dest = self.resolver.resolve(dial.contact.phone, run.campaign.trunk,
                                         caller=self.caller)
            trunk = dest.trunk if isinstance(dest, Destination) else ""
            free = self._trunk_free(trunk, taking[trunk])
            if isinstance(dest, TrunkFull) or (free is not None and free <= 0):
                run.sched.cancel(dial, now)  # due again; dialed when a line frees
                held = True
                continue
            taking[trunk] += 1
            routed.append((dial, dest))
        return routed, held

    async def _dial(self, now: float) -> float | None:
        earliest: float | None = None
        for run in list(self._runs.values()):
            sched, held = run.sched, False
            if sched.state is CampaignState.RUNNING and not self._stopping:
                active = len(run.live)
                trunk_free = self._trunk_free(run.campaign.trunk)
                if trunk_free is not None:
                    active = max(active, sched.campaign.limits.max_lines - trunk_free)
                routed, held = self._route(run, sched.next_actions(now, active), now)
                if routed and not await self._begin(run, [d for d, _ in routed], now):
                    continue
                for dial, dest in routed:
                    self._spawn(run, dial, dest)
                if routed or sched.state is not CampaignState.RUNNING:
                    self._changed(run)
                if sched.state is CampaignState.COMPLETED:
                    await self._store_completed(run)
            deadline = sched.next_deadline()
            if held and deadline is not None:  # a line frees at a call's end (a wake-up)
                deadline = max(deadline, now + TRUNK_RECHECK_S)
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        return earliest

    async def _begin(self, run: _Run, dials: list[DialContact], now: float) -> bool:
        try:
            await self.repo.begin_attempts(dials)
        except DuplicateAttemptError as exc:
            # Someone else placed these attempts: trust storage, rebuild from it.
            logger.error("campaign %s: %s; reloading it", run.campaign.name, exc)
            assert run.campaign.id is not None
            if not run.live and not self._unwritten[run.campaign.id]:
                self._runs.pop(run.campaign.id, None)
            return False
        except StorageError as exc:
            logger.warning("campaign %s: attempts not stored, nothing dialed: %s",
                           run.campaign.name, exc)
            for dial in dials:
                run.sched.cancel(dial, now)
            return False
        return True

    def _spawn(self, run: _Run, dial: DialContact, dest: Destination | str) -> None:
        live = _Live(dial, dest)
        run.live[dial.contact.id] = live
        self.stats.dials += 1
        self.stats.peak_calls = max(self.stats.peak_calls, self.active_calls())
        live.task = asyncio.get_running_loop().create_task(
            self._call(run, live), name=f"campaign-{run.campaign.id}-{dial.contact.id}")

    # ------------------------------------------------------------------ one call (Rule 4)
    async def _call(self, run: _Run, live: _Live) -> None:
        rating: int | None = None
        try:
            outcome, rating, detail = await self._attempt(run, live)
        except asyncio.CancelledError:
            outcome = Outcome.ANSWERED if live.answered else Outcome.FAILED
            detail = "shutdown"
        except (CampaignError, MediaError, OSError, LookupError) as exc:
            outcome = Outcome.ANSWERED if live.answered else Outcome.FAILED
            detail = f"error: {exc}"
            logger.warning("campaign %s: call to %s: %s", run.campaign.name,
                           live.dial.contact.phone, exc)
        finally:
            if live.call is not None:
                await self.originator.release(live.call)
        if live.offered:  # Rule 6 (a dial never placed has no call and no CDR)
            self.events.end(run.campaign, live.dial, outcome, detail, answered=live.answered,
                            sip_status=live.sip_status)
        self._conclude(run, live, outcome, rating, detail)

    def _conclude(self, run: _Run, live: _Live, outcome: Outcome, rating: int | None,
                  detail: str) -> None:
        run.live.pop(live.dial.contact.id, None)
        try:
            decision = run.sched.record_outcome(live.dial.contact.id, outcome, self.wall(),
                                                attempt_no=live.dial.attempt_no,
                                                rating=rating, detail=detail[:200])
        except CampaignError as exc:  # cannot happen unless the run was rebuilt meanwhile
            logger.error("campaign %s: outcome of %s dropped: %s", run.campaign.name,
                         live.dial.contact.phone, exc)
            return
        self.stats.outcomes[outcome.value] = self.stats.outcomes.get(outcome.value, 0) + 1
        logger.info("campaign %s: %s attempt %d: %s (%s)", run.campaign.name,
                    live.dial.contact.phone, live.dial.attempt_no, outcome.value, detail)
        self._pending.append((run.campaign, decision))
        self._changed(run)
        self._unwritten[run.campaign.id or 0] += 1
        self._flush.set()
        self._wake.set()

    async def _attempt(self, run: _Run, live: _Live
                       ) -> tuple[Outcome, int | None, str]:
        campaign, contact = run.campaign, live.dial.contact
        action = on_answer(campaign, contact)
        dest = live.dest
        if isinstance(dest, str):
            return Outcome.FAILED, None, dest
        speech = None
        if isinstance(action, PlayMessage) and getattr(self.media, "tts", None) is not None:
            speech = asyncio.get_running_loop().create_task(
                self.media.tts.render(action.text, self.voice, self.rate))
            speech.add_done_callback(retrieve_result)
        live.call = self.originator.new_call(dest)
        live.offered = True
        self.events.start(campaign, live.dial, dest.via)
        result = await self.originator.ring(
            live.call, caller=self.caller,
            ring_timeout_s=campaign.ring_timeout_s or self.ring_timeout_s)
        if result.call.statuses:
            live.sip_status = result.call.statuses[-1]
        if result.outcome is not RingOutcome.ANSWERED:
            return _RING_TO_OUTCOME[result.outcome], None, f"{dest.via}: {result.detail}"
        live.answered = True
        leg = result.call.answered_leg
        self.events.answered(campaign, live.dial, leg.codec if leg is not None else "")
        if isinstance(action, RunIvr):
            if self.ivr is None:
                return Outcome.FAILED, None, "no IVR service on this node"
            return await run_program(self.ivr, self.originator, result.call, action,
                                     caller=self.caller, called=contact.phone,
                                     call_id=call_ids(campaign, live.dial)[0])
        return await play_message(self.media, result.call, action, campaign.kind, speech,
                                  key_wait_s=self.key_wait_s, voice=self.voice,
                                  rate=self.rate)

    # ------------------------------------------------------------------ writing (Rule 5)
    async def _writer(self) -> None:
        while True:
            await self._flush.wait()
            self._flush.clear()
            ok = await self._write_pending()
            if self._closing and not self._pending:
                return
            if not ok:
                await asyncio.sleep(1.0)
                self._flush.set()

    async def _write_pending(self) -> bool:
        if not self._pending:
            return True
        batch, self._pending = self._pending, []
        by_campaign: dict[int | None, list[OutcomeDecision]] = {}
        campaigns: dict[int | None, Campaign] = {}
        for campaign, decision in batch:
            by_campaign.setdefault(campaign.id, []).append(decision)
            campaigns[campaign.id] = campaign
        failed: list[tuple[Campaign, OutcomeDecision]] = []
        left = list(by_campaign)
        try:
            for cid in list(left):
                decisions = by_campaign[cid]
                try:
                    await self.repo.record_outcomes(campaigns[cid], decisions)
                except StorageError as exc:
                    self.stats.write_errors += 1
                    logger.warning("campaign %s: %d outcome(s) not written yet: %s",
                                   campaigns[cid].name, len(decisions), exc)
                    failed.extend((campaigns[cid], d) for d in decisions)
                else:
                    self.stats.written += len(decisions)
                    self._unwritten[cid or 0] -= len(decisions)
                    self._note_completed(cid, decisions[-1])
                left.remove(cid)
        finally:  # cancelled mid-write: what was not written goes back (one transaction each)
            unwritten = [(campaigns[c], d) for c in left for d in by_campaign[c]]
            self._pending = failed + unwritten + self._pending
            self._written.set()
        return not failed

    def _note_completed(self, cid: int | None, last: OutcomeDecision) -> None:
        if last.campaign_state is CampaignState.COMPLETED and cid is not None:
            run = self._runs.get(cid)
            if run is not None:
                run.stored = CampaignState.COMPLETED

def _report_crash(task: asyncio.Task[Any]) -> None:
    """A dialer task that ends other than by cancellation is a bug: say so loudly."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("dialer task %s died; campaigns stop dialing until restart",
                     task.get_name(), exc_info=task.exception())
