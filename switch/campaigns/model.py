"""Outbound campaigns: the data model and the campaign state machine (pure, no I/O).

A campaign calls a list of contacts, plays them something on answer (a message with fields,
or an IVR program), inside a calling window, with a bounded number of lines and calls per
second, and retries some outcomes after a delay. Everything here is a frozen value or a
pure function; :mod:`switch.campaigns.scheduler` decides, ``storage/campaign_repository.py``
persists, and the node's dialer (wired by ``switch/app.py``) places the calls.

Rules of this module:

* Rule 1 -- outcomes: ANSWERED (picked up, no key), ACKNOWLEDGED (pressed the
  acknowledgement key, or gave a survey rating), OPTED_OUT (pressed the opt-out key) are
  final. BUSY, NO_ANSWER and FAILED are retried according to the :class:`RetryPolicy`.
* Rule 2 -- a retry rule counts ALL attempts of a contact: after an outcome O the contact is
  called again ``delay_s`` later if it has had fewer than ``rule(O).max_attempts`` attempts
  in total. ``max_attempts=1`` therefore means "never retry this outcome".
* Rule 3 -- an attempt that was being dialed when the node stopped (persisted DIALING) is
  recorded as FAILED with detail ``interrupted``. By default (``retry_interrupted`` False)
  the contact is then finished: the call may have been answered and the message heard, and
  calling a resident twice is worse than missing one (the report lists them). With
  ``retry_interrupted`` True it follows the FAILED rule instead.
* Rule 4 -- the campaign's state changes only through :data:`TRANSITIONS` (STYLE.md 4.3);
  a missing key is the single error path (:class:`CampaignStateError`).
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from switch.trunks.numbers import NumberError, clean_number, to_e164

logger = logging.getLogger(__name__)

__all__ = [
    "FINAL_OUTCOMES",
    "TRANSITIONS",
    "Attempt",
    "CallingWindow",
    "Campaign",
    "CampaignCommand",
    "CampaignError",
    "CampaignKind",
    "CampaignState",
    "CampaignStateError",
    "Contact",
    "Limits",
    "NewContact",
    "Outcome",
    "Progress",
    "ResumeState",
    "RetryPolicy",
    "RetryRule",
    "phone_key",
    "transition",
]


class CampaignError(Exception):
    """Root of every campaign error (STYLE.md 4.5): bad configuration, bad input."""


class CampaignStateError(CampaignError):
    """A command that is not allowed in the campaign's current state (Rule 4)."""


class CampaignKind(enum.Enum):
    """The three demo kinds; opt-outs are kept per kind."""

    OUTAGE_NOTICE = "outage_notice"
    """停水停电通知: residents of a building hear when water or power is cut."""
    ARREARS_REMINDER = "arrears_reminder"
    """欠费催缴: residents with overdue bills hear the amount and due date."""
    REPAIR_SURVEY = "repair_survey"
    """报修回访: the resident of a closed work order rates the service 1-5."""


class CampaignState(enum.Enum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    COMPLETED = "completed"


class CampaignCommand(enum.Enum):
    """Inputs of the campaign state machine."""

    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    EXHAUST = "exhaust"
    """Internal: no contact is left to call and no call is in progress."""


_S, _C = CampaignState, CampaignCommand
TRANSITIONS: dict[tuple[CampaignState, CampaignCommand], CampaignState] = {
    (_S.DRAFT, _C.START): _S.RUNNING,
    (_S.DRAFT, _C.STOP): _S.STOPPED,
    (_S.RUNNING, _C.PAUSE): _S.PAUSED,
    (_S.RUNNING, _C.STOP): _S.STOPPED,
    (_S.RUNNING, _C.EXHAUST): _S.COMPLETED,
    (_S.PAUSED, _C.RESUME): _S.RUNNING,
    (_S.PAUSED, _C.STOP): _S.STOPPED,
    (_S.PAUSED, _C.EXHAUST): _S.COMPLETED,
}
"""The whole state machine: STOPPED and COMPLETED are terminal. A paused campaign whose
last calls end with nobody left to call completes."""


def phone_key(phone: str) -> str:
    """The form numbers are compared in (opt-outs, duplicates): E.164 when the number has
    one (13800000000, 138-0000-0000 and +8613800000000 are one number), else the cleaned
    dial string (an extension such as 1001).

    Raises:
        NumberError: not a telephone number (``switch.trunks.numbers`` Rule 1).
    """
    cleaned = clean_number(phone)
    try:
        return to_e164(cleaned)
    except NumberError:
        return cleaned


def transition(state: CampaignState, command: CampaignCommand) -> CampaignState:
    """The state after ``command`` (Rule 4).

    Raises:
        CampaignStateError: the command is not allowed in ``state``.
    """
    try:
        return TRANSITIONS[(state, command)]
    except KeyError:
        raise CampaignStateError(
            f"cannot {command.value} a campaign that is {state.value}") from None


class Outcome(enum.Enum):
    """How one attempt ended (Rule 1)."""

    ANSWERED = "answered"
    ACKNOWLEDGED = "acknowledged"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    OPTED_OUT = "opted_out"


FINAL_OUTCOMES = frozenset({Outcome.ANSWERED, Outcome.ACKNOWLEDGED, Outcome.OPTED_OUT})


@dataclass(frozen=True, slots=True)
class RetryRule:
    """Retry of one outcome (Rule 2)."""

    delay_s: float
    """Seconds from the end of the attempt to the next one."""
    max_attempts: int
    """Total attempts of the contact (all outcomes) after which this outcome is final."""

    def __post_init__(self) -> None:
        if self.delay_s < 0 or self.max_attempts < 1:
            raise CampaignError(
                f"retry needs delay_s >= 0 and max_attempts >= 1, got {self}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """What to do after BUSY, NO_ANSWER and FAILED (Rules 2 and 3)."""

    busy: RetryRule = RetryRule(300.0, 3)
    no_answer: RetryRule = RetryRule(1800.0, 3)
    failed: RetryRule = RetryRule(600.0, 2)
    retry_interrupted: bool = False
    """Whether an attempt cut by a crash (FAILED ``interrupted``) may be retried (Rule 3:
    off by default, never risking a second call)."""

    def rule_for(self, outcome: Outcome) -> RetryRule | None:
        """The retry rule of ``outcome``; None for final outcomes."""
        if outcome is Outcome.BUSY:
            return self.busy
        if outcome is Outcome.NO_ANSWER:
            return self.no_answer
        if outcome is Outcome.FAILED:
            return self.failed
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"busy": [self.busy.delay_s, self.busy.max_attempts],
                "no_answer": [self.no_answer.delay_s, self.no_answer.max_attempts],
                "failed": [self.failed.delay_s, self.failed.max_attempts],
                "retry_interrupted": self.retry_interrupted}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetryPolicy:
        def rule(name: str, default: RetryRule) -> RetryRule:
            value = data.get(name)
            return default if value is None else RetryRule(float(value[0]), int(value[1]))

        base = cls()
        return cls(rule("busy", base.busy), rule("no_answer", base.no_answer),
                   rule("failed", base.failed), bool(data.get("retry_interrupted", False)))


@dataclass(frozen=True, slots=True)
class Limits:
    """Line and pacing limits of one campaign."""

    max_lines: int = 4
    """Calls of this campaign in progress at once, never exceeded."""
    calls_per_second: float = 1.0
    """Sustained rate of new calls (a token bucket refilled at this rate)."""
    burst: int = 1
    """Tokens the bucket holds: how many calls may start back to back after a quiet spell."""

    def __post_init__(self) -> None:
        if self.max_lines < 1 or self.calls_per_second <= 0 or self.burst < 1:
            raise CampaignError(f"limits need max_lines >= 1, calls_per_second > 0 and "
                                f"burst >= 1, got {self}")


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """The calling window as configured; compiled by :mod:`switch.campaigns.window`."""

    rules: tuple[str, ...] = ("mon-fri 09:00-20:00",)
    """Weekly hours as calendar lines (``mon-fri 09:00-20:00``, ``sat 10:00-12:00``)."""
    timezone: str = "Asia/Shanghai"
    calendar: str = ""
    """A node calendar (``[calendars.NAME]``) the window is intersected with: its holidays
    close the window, its make-up working days (调休) open it. "" = weekly hours only."""


@dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign's configuration: everything but its contacts and progress."""

    name: str
    kind: CampaignKind
    window: CallingWindow = field(default_factory=CallingWindow)
    limits: Limits = field(default_factory=Limits)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    params: Mapping[str, str] = field(default_factory=dict)
    """Campaign-wide message fields (an outage's ``what``, ``date``, ``start``, ``end``)."""
    ivr_program: str = ""
    """Path of an IVR program run on answer instead of the kind's message ("" = message)."""
    trunk: str = ""
    """The trunk calls go out through; "" = registered extensions / the dial plan."""
    source: str = ""
    """Where the contacts came from, for the operator (``building 3栋``, ``csv list.csv``)."""
    ring_timeout_s: float = 0.0
    """How long a call rings before it is NO_ANSWER; 0 = the node's default."""
    id: int | None = None
    state: CampaignState = CampaignState.DRAFT

    def config_json(self) -> str:
        """Everything but id, name, kind and state, as stored in one JSON column."""
        return json.dumps({
            "window": {"rules": list(self.window.rules), "timezone": self.window.timezone,
                       "calendar": self.window.calendar},
            "limits": {"max_lines": self.limits.max_lines,
                       "calls_per_second": self.limits.calls_per_second,
                       "burst": self.limits.burst},
            "retry": self.retry.to_dict(), "params": dict(self.params),
            "ivr_program": self.ivr_program, "trunk": self.trunk, "source": self.source,
            "ring_timeout_s": self.ring_timeout_s,
        }, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_config_json(cls, name: str, kind: str, state: str, text: str,
                         id: int | None = None) -> Campaign:
        """The inverse of :meth:`config_json`.

        Raises:
            CampaignError: unreadable configuration.
        """
        try:
            data = json.loads(text)
            win, lim = data.get("window", {}), data.get("limits", {})
            return cls(
                name=name, kind=CampaignKind(kind), state=CampaignState(state), id=id,
                window=CallingWindow(tuple(win.get("rules", ())),
                                         win.get("timezone", "Asia/Shanghai"),
                                         win.get("calendar", "")),
                limits=Limits(int(lim.get("max_lines", 4)),
                              float(lim.get("calls_per_second", 1.0)),
                              int(lim.get("burst", 1))),
                retry=RetryPolicy.from_dict(data.get("retry", {})),
                params={str(k): str(v) for k, v in data.get("params", {}).items()},
                ivr_program=str(data.get("ivr_program", "")), trunk=str(data.get("trunk", "")),
                source=str(data.get("source", "")),
                ring_timeout_s=float(data.get("ring_timeout_s", 0.0)))
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise CampaignError(f"unreadable configuration of campaign {name!r}: {exc}"
                                ) from exc


@dataclass(frozen=True, slots=True)
class NewContact:
    """A contact before it is stored (from a CSV file or a storage query)."""

    name: str
    phone: str
    """The number to dial, cleaned (visual separators removed)."""
    fields: Mapping[str, str] = field(default_factory=dict)
    """Message fields: account, amount (yuan, "350.50"), due_date (ISO), unit, work_order."""


@dataclass(frozen=True, slots=True)
class Contact:
    """A stored contact of one campaign."""

    id: int
    name: str
    phone: str
    phone_key: str
    """The number in the form opt-outs and duplicates are compared in (E.164 if possible)."""
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call of one contact. ``outcome`` None means DIALING (not finished)."""

    contact_id: int
    attempt_no: int
    """1 for the first call of the contact, 2 for the first retry..."""
    started_at: float
    ended_at: float | None = None
    outcome: Outcome | None = None
    detail: str = ""
    rating: int | None = None


@dataclass(frozen=True, slots=True)
class ResumeState:
    """What a scheduler is rebuilt from after a restart (loaded by the repository)."""

    campaign: Campaign
    contacts: tuple[Contact, ...]
    attempts: tuple[Attempt, ...]
    opted_out: frozenset[str]
    """Phone keys that opted out of this campaign's kind."""


@dataclass(frozen=True, slots=True)
class Progress:
    """Counts a running campaign shows (CLI status, CTI): contacts by status, and attempts
    by outcome."""

    total: int
    pending: int
    """Contacts waiting for their first call or a retry."""
    dialing: int
    """Calls in progress."""
    done: int
    """Contacts finished (final outcome, retries exhausted or skipped)."""
    skipped: int
    """Contacts never called because they opted out of this kind (in another campaign)."""
    attempts: Mapping[Outcome, int]
    """Finished attempts by outcome."""
    finals: Mapping[Outcome, int]
    """Finished contacts by their last outcome."""

    @property
    def fraction_done(self) -> float:
        return 1.0 if self.total == 0 else self.done / self.total
