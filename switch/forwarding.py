"""Call forwarding per extension, and the voicemail fallback of unanswered calls.

DESIGN.md "Call model": the call manager (``switch.b2bua``) rings an extension; this module
decides what happens instead of, or after, that ringing. It holds no SIP: it asks the
manager to dial another number or to start voicemail.

Rules:

* Rule 1 -- three forwards per extension (ITU-T Q.732 CFU/CFB/CFNR): ``always`` (the
  extension is not rung at all), ``busy`` (every fork answered 486/600) and ``no_answer``
  (no answer within the extension's ``ring_s``, or the node's ``no_answer_timeout_s``; an
  extension that is not registered, or whose forks all failed, counts as not answering).
  A 603 Decline is the callee's choice and is never forwarded.
* Rule 2 -- a forward target is a number, routed through the dial plan like a number the
  caller dialed (``1002`` rings an extension, ``9013800000000`` goes out through the trunk
  of the "9." rule, a number whose rule targets voicemail reaches that box), or
  ``voicemail:BOX`` for a mailbox directly.
* Rule 3 -- without a forward for the failure, the caller goes to the extension's own
  mailbox when ``[voicemail] enabled`` and the box exists; otherwise the caller gets the
  status the call manager would give (486/480).
* Rule 4 -- loops: every forward a call follows counts; the one beyond ``forward_limit``
  ends the call with 482 (Loop Detected, RFC 3261 §21.4.20), so ``1001 -> 1002 -> 1001``
  cannot ring forever.
* Rule 5 -- forwarding settings are cached in memory (:class:`ForwardingTable`) and
  reloaded from storage every ``refresh_s``; a CLI change reaches a running node within
  that time, and the call path never waits for the database.

The decision functions (:func:`forward_for`, :func:`validate_target`) are pure; the
:class:`Forwarding` service applies them to a live call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from storage.db import StorageError
from switch.events import CallRouted
from switch.router import Extension, Ivr, Reject, Trunk, describe_target

logger = logging.getLogger(__name__)

__all__ = ["ForwardDecision", "ForwardSettings", "Forwarding", "ForwardingTable", "Reason",
           "forward_for", "validate_target"]

VOICEMAIL_PREFIX = "voicemail:"
_NUMBER = re.compile(r"\+?[0-9*#]{1,32}")
_BOX = re.compile(r"[A-Za-z0-9_.+-]{1,64}")
STATE_KEY = "forwarding"
"""Key of this module's per-call state in ``Call.features``."""


class Reason(enum.StrEnum):
    """Why a call is forwarded (Rule 1)."""

    ALWAYS = "always"
    BUSY = "busy"
    NO_ANSWER = "no_answer"


def validate_target(text: str) -> str:
    """A forward target as stored: a dialable number or ``voicemail:BOX`` (Rule 2).

    Raises:
        ValueError: with a message for the operator.
    """
    text = text.strip()
    if text.startswith(VOICEMAIL_PREFIX):
        box = text[len(VOICEMAIL_PREFIX):]
        if not _BOX.fullmatch(box):
            raise ValueError(f"bad mailbox name in {text!r}")
        return text
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{text!r} is neither a number (digits, * # +) nor voicemail:BOX")
    return text


@dataclass(frozen=True, slots=True)
class ForwardSettings:
    """The forwards of one extension (Rule 1); "" = not set."""

    extension: str
    always: str = ""
    busy: str = ""
    no_answer: str = ""
    ring_s: float | None = None
    """Ring time before the no-answer forward; None: the node's default."""

    def any(self) -> bool:
        return bool(self.always or self.busy or self.no_answer)

    def target(self, reason: Reason) -> str:
        return {Reason.ALWAYS: self.always, Reason.BUSY: self.busy,
                Reason.NO_ANSWER: self.no_answer}[reason]

    def describe(self) -> str:
        parts = [f"{r.value.replace('_', '-')} -> {self.target(r)}" for r in Reason
                 if self.target(r)]
        if self.no_answer and self.ring_s is not None:
            parts[-1] += f" after {self.ring_s:g} s"
        return ", ".join(parts) or "no forwarding"


@dataclass(frozen=True, slots=True)
class ForwardDecision:
    """What to do with a call the extension did not take."""

    action: str
    """"forward" (route ``target``), "voicemail" (box ``target``), "loop" (482) or "none"
    (the caller gets the manager's own status)."""
    target: str = ""


def forward_for(settings: ForwardSettings | None, reason: Reason, *, extension: str,
                hops: int, limit: int, voicemail_fallback: bool,
                box_exists: Callable[[str], bool]) -> ForwardDecision:
    """Rules 1, 3 and 4 for one failure of ``extension`` on a call that already followed
    ``hops`` forwards."""
    target = settings.target(reason) if settings is not None else ""
    if target:
        if hops >= limit:
            return ForwardDecision("loop")
        return ForwardDecision("forward", target)
    if reason is Reason.ALWAYS:
        return ForwardDecision("none")
    if voicemail_fallback and box_exists(extension):
        return ForwardDecision("voicemail", extension)
    return ForwardDecision("none")


class ForwardingTable:
    """Rule 5: the forwarding settings of every extension, reloaded from storage."""

    def __init__(self, load: Callable[[], Awaitable[Mapping[str, ForwardSettings]]] | None,
                 refresh_s: float = 2.0) -> None:
        self._load = load
        self.refresh_s = refresh_s
        self.settings: dict[str, ForwardSettings] = {}
        self._task: asyncio.Task[None] | None = None

    def get(self, extension: str) -> ForwardSettings | None:
        return self.settings.get(extension)

    async def refresh(self) -> None:
        if self._load is None:
            return
        try:
            settings = dict(await self._load())
        except StorageError as exc:  # a database outage: keep what we had
            logger.warning("call forwarding not reloaded: %s", exc)
            return
        if settings != self.settings:
            logger.info("call forwarding loaded: %s", "; ".join(
                f"{ext}: {s.describe()}" for ext, s in sorted(settings.items())) or "none")
        self.settings = settings

    async def start(self) -> None:
        await self.refresh()
        if self._load is not None and self.refresh_s > 0:
            self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                                name="forwarding-reload")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await self.refresh()


@dataclass(slots=True)
class _CallState:
    extension: str = ""
    hops: int = 0


class Forwarding:
    """Applies the rules to live calls of a ``switch.b2bua.CallManager``.

    The manager calls :meth:`before_dial` before ringing an extension, :meth:`ring_time`
    for its no-answer timer and :meth:`on_failure` when the extension did not take the
    call; a True return means this module took the call over.

    Args:
        table: the cached settings (Rule 5).
        voicemail: the voicemail service (``switch.voicemail.VoicemailService``) or None.
        fallback: Rule 3 on (``[voicemail] enabled``).
        limit: Rule 4's ``forward_limit``.
    """

    def __init__(self, table: ForwardingTable, voicemail: Any = None, *,
                 fallback: bool = True, limit: int = 5) -> None:
        self.table = table
        self.voicemail = voicemail
        self.fallback = fallback
        self.limit = limit
        self.stats = {"forwarded": 0, "to_voicemail": 0, "loops": 0}

    @staticmethod
    def _state(call: Any) -> _CallState:
        state = call.features.get(STATE_KEY)
        if state is None:
            state = call.features[STATE_KEY] = _CallState()
        return state

    def _box_exists(self, box: str) -> bool:
        return self.voicemail is not None and self.voicemail.has_box(box)

    def before_dial(self, manager: Any, call: Any, extension: str) -> bool:
        """About to ring ``extension``: an unconditional forward takes the call instead."""
        state = self._state(call)
        state.extension = extension
        return self._apply(manager, call, Reason.ALWAYS, extension)

    def ring_time(self, extension: str, default: float) -> float:
        settings = self.table.get(extension)
        if settings is not None and settings.no_answer and settings.ring_s is not None:
            return settings.ring_s
        return default

    def on_failure(self, manager: Any, call: Any, reason: Reason | str) -> bool:
        """The extension being rung is busy or did not answer: forward, voicemail, or
        False (the manager fails the call as before)."""
        reason = Reason(reason)
        extension = self._state(call).extension
        if not extension or call.ending or call.b is not None:
            return False
        return self._apply(manager, call, reason, extension)

    def _apply(self, manager: Any, call: Any, reason: Reason, extension: str) -> bool:
        state = self._state(call)
        decision = forward_for(self.table.get(extension), reason, extension=extension,
                               hops=state.hops, limit=self.limit,
                               voicemail_fallback=self.fallback and reason is not Reason.ALWAYS,
                               box_exists=self._box_exists)
        if decision.action == "none":
            return False
        self._quiet_forks(manager, call)
        if decision.action == "loop":
            self.stats["loops"] += 1
            logger.warning("call %s: forward limit %d reached at %s; 482", call.id,
                           self.limit, extension)
            manager._fail(call, 482, "forward_loop", "system")
            return True
        if decision.action == "voicemail":
            self.stats["to_voicemail"] += 1
            logger.info("call %s: %s %s -> voicemail", call.id, extension, reason.value)
            return self._to_voicemail(manager, call, decision.target, f"voicemail-{reason}")
        state.hops += 1
        self.stats["forwarded"] += 1
        logger.info("call %s: %s forwards (%s) to %s (forward %d)", call.id, extension,
                    reason.value, decision.target, state.hops)
        return self._route(manager, call, decision.target, f"forward-{reason}")

    def _quiet_forks(self, manager: Any, call: Any) -> None:
        """Stop ringing what the call rang so far (the new target starts afresh)."""
        call.cancel_timers()
        for fork in call.forks:
            manager.driver.cancel(fork)
        call.fork_statuses.clear()
        if call.early_from is not None and call.a.media_id is not None:
            # The old callee's early media goes; the next callee's ringing brings our
            # ringback (b2bua Rule 3), voicemail its greeting.
            call.early_from = None
            manager._spawn(manager.media.unbridge(call.a.media_id),
                           f"forward-unbridge-{call.id}")

    @staticmethod
    def _routed(manager: Any, call: Any, rule: str, target: str) -> None:
        """The CDR's route and target follow the forward (``CallRouted`` again)."""
        manager.bus.publish(CallRouted(at=manager.wall(), call_id=call.id,
                                       channel=call.a.name, rule=rule, target=target))

    def _to_voicemail(self, manager: Any, call: Any, box: str, rule: str) -> bool:
        if not self._box_exists(box):
            return False
        self._routed(manager, call, rule, f"{VOICEMAIL_PREFIX}{box}")
        manager.start_voicemail(call, box)
        return True

    def _route(self, manager: Any, call: Any, target: str, rule: str) -> bool:
        """Rule 2: ``voicemail:BOX``, or a number through the dial plan, whose target is
        served like the target of a dialed number."""
        if target.startswith(VOICEMAIL_PREFIX):
            box = target[len(VOICEMAIL_PREFIX):]
            if not self._to_voicemail(manager, call, box, rule):
                manager._fail(call, 480, "no_voicemail_box", "system")
            return True
        now = dt.datetime.fromtimestamp(manager.wall(), dt.UTC)
        decision = manager.dialplan.route(target, call.caller, "user", now, manager.lists)
        routed = decision.target
        self._routed(manager, call, f"{rule}/{decision.rule_name}", describe_target(routed))
        logger.info("call %s: forward %s", call.id, decision.describe())
        trunks = getattr(manager, "trunks", None)  # switch.trunks.outbound.TrunkCalls
        queues = getattr(manager, "queues", None)  # switch.queues.QueueService
        ivr = getattr(manager, "ivr", None)
        if isinstance(routed, Reject):
            cause = "unallocated_number" if routed.status == 404 else "call_rejected"
            manager._fail(call, routed.status, cause, "system")
        elif isinstance(routed, Extension):
            manager._dial_extension(call, routed.number)
        elif self.voicemail is not None and self.voicemail.serves(routed):
            manager.start_voicemail(call, routed.box)
        elif isinstance(routed, Trunk) and trunks is not None:
            trunks.dial(manager, call, routed)
        elif queues is not None and queues.serves(routed):
            manager._start_queue(call, routed)
        elif isinstance(routed, Ivr) and ivr is not None and ivr.has(routed.program):
            manager._start_ivr(call, routed.program)
        else:
            logger.info("call %s: forward target %s is not served", call.id,
                        describe_target(routed))
            manager._fail(call, 480, "not_implemented", "system")
        return True
