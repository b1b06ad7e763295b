"""CampaignScheduler: which contacts to dial next, sans-IO (time is the ``now`` argument).

The shell (the node's dialer) drives it in a loop::

    scheduler, cut = CampaignScheduler.restore(await repo.load_resume_state(name), now)
    await repo.record_outcomes(scheduler.campaign, cut)   # calls cut by the last stop
    loop:
        scheduler.adopt(stored_state)                     # the operator's pause/stop
        dials = scheduler.next_actions(now, active_calls) # list[DialContact]
        await repo.begin_attempts(dials)                  # persisted as DIALING first...
        for dial in dials: start_call(dial)               # ...then handed to the switch
        ...                                               # (storage down: cancel(dial))
        decision = scheduler.record_outcome(contact_id, outcome, now, rating=...)
        await repo.record_outcomes(scheduler.campaign, [decision])
        sleep until scheduler.next_deadline() or the next call event

Rules:

* Rule 1 -- never above the line limit: ``next_actions`` hands out at most
  ``max_lines - max(active_calls, calls it handed out and has no outcome for)`` dials.
* Rule 2 -- pacing is a token bucket (``burst`` tokens, refilled at ``calls_per_second``
  from ``now``); each dial takes one token.
* Rule 3 -- calls start only inside the calling window (:mod:`switch.campaigns.window`)
  and only while the campaign is RUNNING; PAUSED and STOPPED start nothing, calls in
  progress still report their outcomes.
* Rule 4 -- retries follow :class:`~switch.campaigns.model.RetryPolicy` exactly: the same
  pure function :func:`retry_at` decides live and after a restart, so a rebuilt scheduler
  has the same schedule as the one that stopped.
* Rule 5 -- no double calls across a restart. A dial is persisted as a DIALING attempt
  (unique per contact and attempt number) BEFORE it is handed to the switch; if the node
  dies before the outcome is stored, the rebuilt scheduler (:meth:`restore`) sees that
  attempt, counts it, records it FAILED ``interrupted`` and, by default
  (``retry_interrupted=False``), finishes the contact; only a campaign that asks for it
  calls again by the FAILED rule, its delay counted from the restart. A dial that was
  never persisted was never placed. Hence the default: a contact is never called twice
  for one attempt; the price is that a call cut by a crash is not repeated.
* Rule 6 -- a contact whose number opted out of the campaign's kind is never dialed; an
  OPTED_OUT outcome adds the number to the set at once.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from switch.calendar import CalendarSet
from switch.campaigns.model import (
    FINAL_OUTCOMES,
    TRANSITIONS,
    Attempt,
    Campaign,
    CampaignCommand,
    CampaignError,
    CampaignState,
    CampaignStateError,
    Contact,
    Outcome,
    Progress,
    ResumeState,
    RetryPolicy,
    transition,
)
from switch.campaigns.window import CompiledWindow, compile_window

logger = logging.getLogger(__name__)

__all__ = ["CampaignScheduler", "DialContact", "OutcomeDecision", "retry_at"]

INTERRUPTED = "interrupted"
"""Detail of an attempt found DIALING after a restart (Rule 5)."""

_PENDING, _DIALING, _DONE = 0, 1, 2


def retry_at(policy: RetryPolicy, attempts: int, outcome: Outcome, ended_at: float,
             *, interrupted: bool = False) -> float | None:
    """When a contact with ``attempts`` attempts, the last ending in ``outcome`` at
    ``ended_at``, is called again; None when it is finished (Rule 4)."""
    if interrupted and not policy.retry_interrupted:
        return None
    rule = policy.rule_for(outcome)
    if rule is None or attempts >= rule.max_attempts:
        return None
    return ended_at + rule.delay_s


@dataclass(frozen=True, slots=True)
class DialContact:
    """Instruction: call ``contact`` now (attempt number ``attempt_no``)."""

    campaign_id: int | None
    contact: Contact
    attempt_no: int
    started_at: float
    trunk: str
    """The trunk to call through; "" = registered extensions / dial plan."""

    def attempt(self) -> Attempt:
        """The DIALING attempt to persist before the call is placed (Rule 5)."""
        return Attempt(self.contact.id, self.attempt_no, self.started_at)


@dataclass(frozen=True, slots=True)
class OutcomeDecision:
    """What :meth:`CampaignScheduler.record_outcome` decided, for the repository."""

    attempt: Attempt
    """The finished attempt (with outcome, end time, detail, rating)."""
    retry_at: float | None
    """When the contact is called again; None: the contact is finished."""
    opted_out: str | None
    """The phone key to add to the kind's opt-out list, if the callee opted out."""
    campaign_state: CampaignState


class _Slot:
    """Mutable per-contact state (internal)."""

    __slots__ = ("attempts", "contact", "due_at", "last", "skipped", "started_at", "status")

    def __init__(self, contact: Contact) -> None:
        self.contact = contact
        self.attempts = 0
        self.status = _PENDING
        self.due_at = 0.0
        self.last: Outcome | None = None
        self.skipped = False
        self.started_at = 0.0


class CampaignScheduler:
    """Decides the dials of one campaign (module docstring).

    Args:
        campaign: the configuration and state (its window is compiled here).
        contacts: the contacts, in calling order.
        calendars: resolves the window's calendar name.
        opted_out: phone keys that opted out of the campaign's kind.

    Raises:
        CampaignError: a bad window (see :func:`~switch.campaigns.window.compile_window`).
    """

    def __init__(self, campaign: Campaign, contacts: Iterable[Contact], *,
                 calendars: CalendarSet | None = None,
                 opted_out: Iterable[str] = ()) -> None:
        self.campaign = campaign
        self.state = campaign.state
        self.window: CompiledWindow = compile_window(campaign.window, calendars)
        self._limits = campaign.limits
        self._policy = campaign.retry
        self._opted_out = set(opted_out)
        self._slots: dict[int, _Slot] = {}
        self._heap: list[tuple[float, int, int]] = []
        self._order: dict[int, int] = {}
        for seq, contact in enumerate(contacts):
            self._slots[contact.id] = _Slot(contact)
            self._order[contact.id] = seq
            self._heap.append((0.0, seq, contact.id))
        heapq.heapify(self._heap)
        self._pending = len(self._slots)
        self._dialing = 0
        self._tokens = float(self._limits.burst)
        self._refilled_at: float | None = None
        self._now = 0.0
        self._inside_minute = -1
        self._inside = False
        self._attempts: Counter[Outcome] = Counter()

    # --- commands -------------------------------------------------------------------------

    def handle(self, command: CampaignCommand) -> CampaignState:
        """Apply start/pause/resume/stop (the transition table of ``model.py``).

        Raises:
            CampaignStateError: not allowed in the current state.
        """
        self.state = transition(self.state, command)
        self._maybe_complete()
        return self.state

    def adopt(self, state: CampaignState) -> CampaignState:
        """Follow a state the operator stored (``softswitch campaign pause`` while the node
        runs): the dialer polls the stored state and hands it here. A state reachable by
        one command is taken; the same state is a no-op.

        Raises:
            CampaignStateError: no single command leads from the current state there.
        """
        if state is self.state:
            return state
        for (origin, command), target in TRANSITIONS.items():
            if origin is self.state and target is state and command is not (
                    CampaignCommand.EXHAUST):
                return self.handle(command)
        raise CampaignStateError(f"cannot go from {self.state.value} to {state.value}")

    # --- dialing --------------------------------------------------------------------------

    def next_actions(self, now: float, active_calls: int = 0) -> list[DialContact]:
        """The contacts to dial at ``now`` (Rules 1-3 and 6); each is now DIALING.

        Args:
            now: epoch seconds.
            active_calls: lines of this campaign the dialer sees in use.
        """
        self._now = now
        if self.state is not CampaignState.RUNNING:
            return []
        free = self._limits.max_lines - max(active_calls, self._dialing)
        if free <= 0 or not self._is_inside(now):
            return []
        self._refill(now)
        out: list[DialContact] = []
        heap, slots = self._heap, self._slots
        while free > 0 and self._tokens >= 1.0 and heap and heap[0][0] <= now:
            due, _seq, cid = heapq.heappop(heap)
            slot = slots[cid]
            if slot.status != _PENDING or slot.due_at != due:
                continue  # a stale heap entry
            if slot.contact.phone_key in self._opted_out:
                self._finish(slot, skipped=True)
                continue
            slot.attempts += 1
            slot.status = _DIALING
            slot.started_at = now
            self._pending -= 1
            self._dialing += 1
            self._tokens -= 1.0
            free -= 1
            out.append(DialContact(self.campaign.id, slot.contact, slot.attempts, now,
                                   self.campaign.trunk))
        self._maybe_complete()
        return out

    def cancel(self, dial: DialContact, now: float) -> None:
        """Take back a dial that was never placed (its DIALING row could not be stored):
        the contact is due again at once and the attempt is not counted.

        Raises:
            CampaignStateError: the contact is not dialing that attempt.
        """
        slot = self._dialing_slot(dial.contact.id, dial.attempt_no)
        slot.attempts -= 1
        self._dialing -= 1
        self._schedule(slot, now)

    def record_outcome(self, contact_id: int, outcome: Outcome, now: float, *,
                       attempt_no: int | None = None, rating: int | None = None,
                       detail: str = "") -> OutcomeDecision:
        """Finish the contact's call with ``outcome`` and apply the retry policy.

        Raises:
            CampaignStateError: the contact is not being dialed (or not that attempt).
            CampaignError: a rating outside 1-5.
        """
        if rating is not None and not 1 <= rating <= 5:
            raise CampaignError(f"a rating is 1 to 5, got {rating}")
        slot = self._dialing_slot(contact_id, attempt_no)
        self._now = max(self._now, now)
        self._dialing -= 1
        attempt = Attempt(contact_id, slot.attempts, slot.started_at, now, outcome, detail,
                          rating)
        return self._conclude(slot, attempt, now, interrupted=False)

    def _dialing_slot(self, contact_id: int, attempt_no: int | None) -> _Slot:
        slot = self._slots.get(contact_id)
        if slot is None or slot.status != _DIALING or (
                attempt_no is not None and attempt_no != slot.attempts):
            raise CampaignStateError(
                f"contact {contact_id} is not dialing attempt {attempt_no or '(any)'}")
        return slot

    def _conclude(self, slot: _Slot, attempt: Attempt, now: float, *,
                  interrupted: bool) -> OutcomeDecision:
        outcome = attempt.outcome
        assert outcome is not None
        self._attempts[outcome] += 1
        slot.last = outcome
        opted = None
        if outcome is Outcome.OPTED_OUT:
            opted = slot.contact.phone_key
            self._opted_out.add(opted)
        when = None if outcome in FINAL_OUTCOMES else retry_at(
            self._policy, slot.attempts, outcome, attempt.ended_at or now,
            interrupted=interrupted)
        if when is None:
            self._finish(slot)
        else:
            self._schedule(slot, when)
        self._maybe_complete()
        return OutcomeDecision(attempt, when, opted, self.state)

    def _schedule(self, slot: _Slot, due: float) -> None:
        slot.status = _PENDING
        slot.due_at = due
        self._pending += 1
        heapq.heappush(self._heap, (due, self._order[slot.contact.id], slot.contact.id))

    def _finish(self, slot: _Slot, *, skipped: bool = False) -> None:
        if slot.status == _PENDING:
            self._pending -= 1
        slot.status = _DONE
        slot.skipped = skipped

    def _maybe_complete(self) -> None:
        if self._pending == 0 and self._dialing == 0 and self.state in (
                CampaignState.RUNNING, CampaignState.PAUSED):
            self.state = transition(self.state, CampaignCommand.EXHAUST)
            logger.info("campaign %s completed", self.campaign.name)

    def _refill(self, now: float) -> None:
        if self._refilled_at is not None and now > self._refilled_at:
            self._tokens = min(float(self._limits.burst), self._tokens + (
                now - self._refilled_at) * self._limits.calls_per_second)
        if self._refilled_at is None or now > self._refilled_at:
            self._refilled_at = now

    def _is_inside(self, now: float) -> bool:
        minute = int(now // 60)  # the window has minute resolution (window.py Rule 1)
        if minute != self._inside_minute:
            self._inside_minute, self._inside = minute, self.window.is_inside_ts(now)
        return self._inside

    # --- timers and progress -------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`next_actions` may next return dials without any other input (a
        retry falls due, a token refills, the window opens); None: only an outcome or a
        command can change anything."""
        if self.state is not CampaignState.RUNNING:
            return None
        if self._dialing >= self._limits.max_lines:
            return None
        heap, slots = self._heap, self._slots
        while heap and (slots[heap[0][2]].status != _PENDING
                        or slots[heap[0][2]].due_at != heap[0][0]):
            heapq.heappop(heap)
        if not heap:
            return None
        when = max(heap[0][0], self._now)
        if self._tokens < 1.0 and self._refilled_at is not None:
            when = max(when, self._refilled_at
                       + (1.0 - self._tokens) / self._limits.calls_per_second)
        if self.window.is_inside_ts(when):
            return when
        return self.window.next_opening_ts(when)

    def progress(self) -> Progress:
        """Counts by contact status and attempt outcome."""
        finals: Counter[Outcome] = Counter()
        skipped = done = 0
        for slot in self._slots.values():
            if slot.status == _DONE:
                done += 1
                if slot.skipped:
                    skipped += 1
                elif slot.last is not None:
                    finals[slot.last] += 1
        return Progress(len(self._slots), self._pending, self._dialing, done, skipped,
                        dict(self._attempts), dict(finals))

    def due_at(self, contact_id: int) -> float | None:
        """When the contact is next due (None: dialing or finished)."""
        slot = self._slots[contact_id]
        return slot.due_at if slot.status == _PENDING else None

    def attempts_of(self, contact_id: int) -> int:
        return self._slots[contact_id].attempts

    # --- restart ---------------------------------------------------------------------------

    @classmethod
    def restore(cls, state: ResumeState, now: float, *,
                calendars: CalendarSet | None = None
                ) -> tuple[CampaignScheduler, list[OutcomeDecision]]:
        """Rebuild the scheduler of a campaign from its persisted attempts (Rule 5).

        Returns:
            The scheduler, and one decision per attempt found DIALING, now FAILED
            ``interrupted``: the caller persists them (``repo.record_outcome``).
        """
        sched = cls(state.campaign, state.contacts, calendars=calendars,
                    opted_out=state.opted_out)
        by_contact: dict[int, list[Attempt]] = {}
        for attempt in state.attempts:
            by_contact.setdefault(attempt.contact_id, []).append(attempt)
        interrupted: list[OutcomeDecision] = []
        for cid, attempts in by_contact.items():
            slot = sched._slots.get(cid)
            if slot is None:
                continue
            attempts.sort(key=lambda a: a.attempt_no)
            slot.attempts = attempts[-1].attempt_no
            for done in attempts[:-1]:
                if done.outcome is not None:
                    sched._attempts[done.outcome] += 1
            sched._pending -= 1
            slot.status = _DIALING
            interrupted.extend(sched._restore_last(slot, attempts[-1], now))
        sched._maybe_complete()
        if interrupted:
            logger.warning("campaign %s: %d call(s) were in progress at the restart; recorded "
                           "as failed (interrupted)", state.campaign.name, len(interrupted))
        return sched, interrupted

    def _restore_last(self, slot: _Slot, last: Attempt, now: float
                      ) -> Sequence[OutcomeDecision]:
        if last.outcome is None:
            cut = replace(last, ended_at=now, outcome=Outcome.FAILED, detail=INTERRUPTED)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("campaign %s: contact %d attempt %d was cut by a restart",
                             self.campaign.name, slot.contact.id, last.attempt_no)
            return [self._conclude(slot, cut, now, interrupted=True)]
        self._conclude(slot, last, last.ended_at or last.started_at,
                       interrupted=last.detail == INTERRUPTED)
        return []
