"""Switch-originated calls: one outbound leg with no inbound caller (campaigns, callbacks).

The call manager (:mod:`switch.b2bua`) always has a caller leg; a campaign call does not:
the switch itself is the caller. :class:`Originator` places such a leg through the same
:class:`~switch.drivers.base.ChannelDriver` verbs (``new_outbound``, ``originate``,
``cancel``, ``hangup``, ``release``), waits for the answer, and hands the answered leg's
media channel to whoever plays the message (:mod:`switch.campaigns.dialer`).

Rules:

* Rule 1 -- where a number goes (:class:`DestinationResolver`): a campaign with a trunk
  sends every number out through that trunk; without a trunk the number goes through the
  dial plan like a call from a local user: an ``extension`` target rings the registered
  contacts, a ``trunk`` target the trunk; anything else (queue, IVR, reject, no route) is
  not dialable and the attempt FAILS without a call. A trunk call asks the trunk policy
  first (``switch.trunks.policy``: enabled, ``allowed_users`` with the dialer's user,
  denied prefixes, international, ``max_calls``) and is sent by
  :func:`switch.trunks.outbound.originate_via_trunk` (number rewriting, caller ID, digest
  answer to the carrier's 401/407); its leg counts against the trunk's ``max_calls``. A
  trunk at ``max_calls`` is a :class:`TrunkFull` refusal: wait for a line, not a failure.
* Rule 2 -- forking (RFC 3261 §16.7 parallel search): an extension with several contacts
  rings them all; the first 2xx wins and the others are cancelled.
* Rule 3 -- how an attempt ends before answer, from the final responses of all forks
  (RFC 3261 §21): 486/600 -> BUSY; 408, 480 and our own ring timeout (then CANCEL, RFC
  3261 §9.1) -> NO_ANSWER; everything else (404, 403, 5xx, no media) -> FAILED. Busy wins
  over no-answer, no-answer over failure, when forks disagree.
* Rule 4 -- leg events of originated legs are taken by :meth:`Originator.handle` (the node
  offers every leg event here first, then to the call manager): an originated leg never
  reaches the B2BUA.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from signaling.location import Binding
from switch.channel import Channel
from switch.drivers.base import (
    ChannelDriver,
    LegAnswered,
    LegEvent,
    LegHungUp,
    LegRejected,
    LegRinging,
)
from switch.router import DialPlan, Extension, Trunk, describe_target
from switch.trunks.config import TrunkConfig
from switch.trunks.numbers import NumberError, format_number
from switch.trunks.outbound import TrunkCalls, originate_via_trunk

logger = logging.getLogger(__name__)

__all__ = [
    "Destination",
    "DestinationResolver",
    "OriginateResult",
    "OriginatedCall",
    "Originator",
    "RingOutcome",
    "TrunkFull",
    "classify_statuses",
]

_BUSY = frozenset({486, 600})
_NO_ANSWER = frozenset({408, 480, 487})


class RingOutcome(enum.Enum):
    """How an originated call ended before (or at) answer (Rule 3)."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"


def classify_statuses(statuses: list[int]) -> RingOutcome:
    """Rule 3: the outcome of an unanswered attempt from its forks' final statuses."""
    if any(s in _BUSY for s in statuses):
        return RingOutcome.BUSY
    if any(s in _NO_ANSWER for s in statuses):
        return RingOutcome.NO_ANSWER
    return RingOutcome.FAILED


@dataclass(frozen=True, slots=True)
class Destination:
    """Where one number is sent: one or more SIP contacts (forks)."""

    number: str
    contacts: tuple[Binding, ...]
    via: str
    """For logs and attempt details: ``extension 1001``, ``trunk carrier``."""
    trunk: str = ""


class TrunkFull(str):
    """Why a number cannot go out right now: its trunk has no free line (``max_calls``).

    A ``str`` like every other refusal of :meth:`DestinationResolver.resolve`, but one that
    passes: the dialer holds the contact until a line frees instead of failing the call."""


class DestinationResolver:
    """Rule 1: a number (and an optional trunk) -> a :class:`Destination`.

    Args:
        driver: looks up registered contacts of extensions.
        trunks: the node's ``[trunks]``.
        dialplan: the node's dial plan (used when no trunk is given).
        trunk_calls: the node's trunk calls (policy and ``max_calls`` accounting); None:
            numbers are only written in the trunk's format.
        user: the user the trunk policy sees placing campaign calls.
        wall: wall clock (the dial plan's calendars).
    """

    def __init__(self, driver: ChannelDriver, trunks: Mapping[str, TrunkConfig],
                 dialplan: DialPlan | None, *, trunk_calls: TrunkCalls | None = None,
                 user: str = "campaign", wall: Callable[[], float] = time.time) -> None:
        self.driver = driver
        self.trunks = trunks
        self.dialplan = dialplan
        self.trunk_calls = trunk_calls
        self.user = user
        self.wall = wall

    def trunk_in_use(self, trunk: str) -> int | None:
        """Calls up or being set up through ``trunk``, both directions (None: unknown)."""
        if self.trunk_calls is None:
            return None
        return self.trunk_calls.active_calls(trunk)

    def resolve(self, number: str, trunk: str = "", *, caller: str = ""
                ) -> Destination | str:
        """The destination of ``number``, or why it cannot be dialed (a string)."""
        if trunk:
            return self._trunk(trunk, number)
        if self.dialplan is None:
            return self._extension(number)
        import datetime as dt

        decision = self.dialplan.route(number, caller, "user",
                                       dt.datetime.fromtimestamp(self.wall(), dt.UTC))
        target = decision.target
        if isinstance(target, Extension):
            return self._extension(target.number)
        if isinstance(target, Trunk):
            return self._trunk(target.name, target.number)
        return f"not dialable: {describe_target(target)} ({decision.rule_name})"

    def _extension(self, number: str) -> Destination | str:
        contacts = tuple(self.driver.lookup(number))
        if not contacts:
            return f"extension {number} is not registered"
        return Destination(number, contacts, f"extension {number}")

    def _trunk(self, name: str, number: str) -> Destination | str:
        cfg = self.trunks.get(name)
        if cfg is None or not cfg.enabled:
            return f"no enabled trunk {name!r}"
        if self.trunk_calls is not None:
            if self.trunk_calls.active_calls(name) >= cfg.max_calls:
                return TrunkFull(f"trunk {name} is at max_calls ({cfg.max_calls})")
            decision = self.trunk_calls.policy.may_use_trunk(
                "user", self.user, cfg, number,
                active_calls=self.trunk_calls.active_calls(name))
            if not decision.allowed or decision.number is None:
                return f"trunk {name} refused {number}: {decision.reason}"
            dialed = decision.number
        else:
            try:
                dialed = format_number(number, cfg.number_format, cfg.country_code,
                                       area_code=cfg.area_code)
            except NumberError as exc:
                return f"number {number} cannot go out on trunk {name}: {exc}"
        return Destination(dialed, (), f"trunk {name}", trunk=name)


@dataclass(eq=False, slots=True)
class OriginatedCall:
    """One originated call: its forks and, once answered, the answered leg."""

    destination: Destination
    forks: list[Channel] = field(default_factory=list)
    answered_leg: Channel | None = None
    statuses: list[int] = field(default_factory=list)
    ringing: bool = False
    settled: asyncio.Future[RingOutcome] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the answered leg hangs up from its far side (BYE) or is hung up by us."""

    @property
    def media_id(self) -> int | None:
        return self.answered_leg.media_id if self.answered_leg is not None else None


@dataclass(frozen=True, slots=True)
class OriginateResult:
    outcome: RingOutcome
    call: OriginatedCall
    detail: str = ""
    """The SIP statuses of the forks, or "ring timeout"."""


class Originator:
    """Places switch-originated calls (see the module docstring for the rules).

    Args:
        driver: the SIP channel driver.
        trunks: the node's ``[trunks]`` (trunk destinations).
        trunk_calls: counts trunk legs against ``max_calls`` (optional).
    """

    def __init__(self, driver: ChannelDriver, *,
                 trunks: Mapping[str, TrunkConfig] | None = None,
                 trunk_calls: TrunkCalls | None = None) -> None:
        self.driver = driver
        self.trunks = dict(trunks or {})
        self.trunk_calls = trunk_calls
        self._by_leg: dict[str, OriginatedCall] = {}
        self.active = 0
        self.stats = {"originated": 0, "answered": 0, "busy": 0, "no_answer": 0,
                      "failed": 0}

    # ------------------------------------------------------------------ leg events (Rule 4)
    def handle(self, event: LegEvent) -> bool:
        """Take a leg event of an originated leg; False: not ours."""
        ch = event.channel
        call = self._by_leg.get(ch.name)
        if call is None:
            return False
        if isinstance(event, LegRinging):
            call.ringing = True
        elif isinstance(event, LegAnswered):
            self._answered(call, ch)
        elif isinstance(event, LegRejected):
            self._fork_failed(call, event.status)
        elif isinstance(event, LegHungUp):
            if ch is call.answered_leg:
                call.ended.set()
            elif call.answered_leg is None:
                self._fork_failed(call, 480)
        return True

    def _answered(self, call: OriginatedCall, ch: Channel) -> None:
        if call.answered_leg is not None or (call.settled is not None and call.settled.done()):
            self.driver.hangup(ch)  # a second fork, or an answer after our timeout
            return
        call.answered_leg = ch
        for fork in call.forks:
            if fork is not ch:
                self.driver.cancel(fork)
        if call.settled is not None and not call.settled.done():
            call.settled.set_result(RingOutcome.ANSWERED)

    def _fork_failed(self, call: OriginatedCall, status: int) -> None:
        call.statuses.append(status)
        if call.answered_leg is None and all(f.ended for f in call.forks) and (
                call.settled is not None and not call.settled.done()):
            call.settled.set_result(classify_statuses(call.statuses))

    # ------------------------------------------------------------------ verbs
    def new_call(self, destination: Destination) -> OriginatedCall:
        """The record of a call about to be placed: hand it to :meth:`ring`, and always to
        :meth:`release` afterwards (even when :meth:`ring` was cancelled)."""
        call = OriginatedCall(destination, settled=asyncio.get_running_loop().create_future())
        self.active += 1
        self.stats["originated"] += 1
        return call

    async def originate(self, destination: Destination, *, caller: str,
                        caller_name: str = "", ring_timeout_s: float = 30.0,
                        codec: str = "PCMU") -> OriginateResult:
        """:meth:`new_call` then :meth:`ring`; the caller must :meth:`release` the call."""
        return await self.ring(self.new_call(destination), caller=caller,
                               caller_name=caller_name, ring_timeout_s=ring_timeout_s,
                               codec=codec)

    async def ring(self, call: OriginatedCall, *, caller: str, caller_name: str = "",
                   ring_timeout_s: float = 30.0, codec: str = "PCMU") -> OriginateResult:
        """Ring the call's destination until answer, failure or ``ring_timeout_s``
        (Rules 2, 3). Cancelled, it cancels the forks (the caller still releases)."""
        destination = call.destination
        assert call.settled is not None
        trunk = self.trunks.get(destination.trunk) if destination.trunk else None
        if trunk is not None:
            ch = self.driver.new_outbound(destination.number)
            self._track(call, ch)
            if self.trunk_calls is not None:
                self.trunk_calls.track(trunk.name, ch)
            # The trunk's caller-ID policy presents the site's number (no caller given).
            await originate_via_trunk(self.driver, ch, trunk, destination.number,
                                      caller="", caller_name=caller_name, codec=codec)
        else:
            for _contact in destination.contacts:
                self._track(call, self.driver.new_outbound(destination.number))
            await asyncio.gather(*(
                self.driver.originate(ch, contact, caller=caller, caller_name=caller_name,
                                      codec=codec)
                for ch, contact in zip(call.forks, destination.contacts, strict=True)))
        if not call.forks:
            call.settled.set_result(RingOutcome.FAILED)
        detail = ""
        try:
            outcome = await asyncio.wait_for(asyncio.shield(call.settled), ring_timeout_s)
        except asyncio.CancelledError:
            for fork in call.forks:
                self.driver.hangup(fork)
            raise
        except TimeoutError:
            if call.settled.done():  # settled in the same instant
                outcome = call.settled.result()
            else:
                outcome = RingOutcome.NO_ANSWER
                detail = "ring timeout"
                call.settled.set_result(outcome)
                for fork in call.forks:
                    self.driver.cancel(fork)
        if not detail:
            detail = ",".join(str(s) for s in call.statuses) or outcome.value
        self.stats[outcome.value] += 1
        return OriginateResult(outcome, call, detail)

    def _track(self, call: OriginatedCall, ch: Channel) -> None:
        ch.call_id = f"orig-{ch.name}"
        call.forks.append(ch)
        self._by_leg[ch.name] = call

    def hangup(self, call: OriginatedCall) -> None:
        """End the call from our side (BYE the answered leg, CANCEL the rest)."""
        for fork in call.forks:
            self.driver.hangup(fork)
        call.ended.set()

    async def release(self, call: OriginatedCall) -> None:
        """Hang up what is left and close every fork's media (always call this)."""
        self.hangup(call)
        for fork in call.forks:
            try:
                await self.driver.release(fork)
            finally:
                self._by_leg.pop(fork.name, None)
        self.active -= 1

    def leg_count(self) -> int:
        """Originated legs the node still tracks (tests: 0 once every call is released)."""
        return len(self._by_leg)

