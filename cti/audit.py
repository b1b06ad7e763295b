"""Audit log of CTI actions: every supervisor/admin action and every refused attempt.

§B.8: "every supervisor action audited". The server writes one :class:`AuditEntry` per
audited request through an :class:`AuditSink` (a Protocol, so storage can implement it
later), *after* the outcome is known: ``ok``, ``denied`` (role or scope) or ``error``.

Rules:

* Rule 1 -- what is audited: commands flagged ``audited`` in :data:`cti.messages.COMMANDS`
  (monitor, force, priority, take-over) whatever the role; every mutating command of a
  supervisor or an admin; every ``forbidden`` refusal, whoever asked.
* Rule 2 -- secrets never reach the audit log: ``password`` and ``token`` arguments are
  removed (:func:`redact`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = ["AuditEntry", "AuditSink", "LoggingAuditSink", "MemoryAuditSink", "redact"]

logger = logging.getLogger(__name__)

_SECRET_ARGS = frozenset({"password", "token"})


def redact(args: dict[str, Any]) -> dict[str, Any]:
    """Rule 2: the arguments without secrets."""
    return {k: v for k, v in args.items() if k not in _SECRET_ARGS}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited request.

    Attributes:
        ts: wall-clock epoch seconds.
        user: login name ("" when not logged in).
        role: role name ("" when not logged in).
        cmd: command name (may be an unknown name for refused requests).
        args: arguments, redacted.
        outcome: ``ok``, ``denied`` or ``error``.
        error_code: the error code when not ok.
        peer: the client's address.
    """

    ts: float
    user: str
    role: str
    cmd: str
    args: dict[str, Any] = field(default_factory=dict)
    outcome: str = "ok"
    error_code: str | None = None
    peer: str = ""


class AuditSink(Protocol):
    """Where audit entries go (must not block: the server calls it inline)."""

    def record(self, entry: AuditEntry) -> None: ...


class MemoryAuditSink:
    """Keeps entries in a list (tests; a bounded recent view for an admin console)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.entries: list[AuditEntry] = []
        self._limit = limit

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)
        if len(self.entries) > self._limit:
            del self.entries[: len(self.entries) - self._limit]


class LoggingAuditSink:
    """Writes each entry as one JSON object to the ``cti.audit`` logger (INFO)."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self._log = log or logging.getLogger("cti.audit")

    def record(self, entry: AuditEntry) -> None:
        self._log.info("%s", json.dumps(asdict(entry), ensure_ascii=False, default=str))
