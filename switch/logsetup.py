"""Logging for the node: one format, per-call context, and a redaction guard (STYLE.md 4.6).

* Per-call context: :func:`call_context` sets ``call_id``, ``channel`` and ``agent`` in
  ``contextvars`` for the code (and the asyncio tasks it starts) handling one call, and
  :class:`CallContextFilter` copies them into every record, so a line from deep inside the
  media or ACD code still says which call it belongs to. :class:`CallLoggerAdapter` does the
  same for an object that owns a call (aioquic's ``QuicConnectionAdapter`` idea).
* Redaction: no code should log a password, HA1 or digest response; :class:`RedactionFilter`
  is defence in depth in case one does (a logged SIP message with an Authorization header, a
  repr of a credentials record, an exception text that quotes a password).

Format: ``2026-11-30T12:00:00.123Z INFO    signaling.registrar [call=abc channel=7] text``.
Time is UTC. Filters sit on the handler, so records from every logger pass through them.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, TextIO

__all__ = [
    "CONTEXT_FIELDS",
    "CallContextFilter",
    "CallLoggerAdapter",
    "RedactionFilter",
    "call_context",
    "configure_logging",
    "current_call_context",
    "redact",
]

CONTEXT_FIELDS = ("call_id", "channel", "agent")
"""Per-call attributes every record carries ("" when unknown)."""

LOG_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)-7s %(name)s [%(call_ctx)s] %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"

_CONTEXT: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "softswitch_call_context")
_NO_CONTEXT: Mapping[str, str] = MappingProxyType({})

_HANDLER_MARK = "_softswitch_handler"


@contextmanager
def call_context(*, call_id: str | None = None, channel: str | None = None,
                 agent: str | None = None) -> Iterator[None]:
    """Attach call attributes to every log record emitted inside the block.

    Nested blocks add to (and may override) the outer one; tasks created inside inherit it
    (asyncio copies the context at task creation).
    """
    given = {"call_id": call_id, "channel": channel, "agent": agent}
    merged = {**_CONTEXT.get(_NO_CONTEXT), **{k: str(v) for k, v in given.items() if v is not None}}
    token = _CONTEXT.set(merged)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_call_context() -> Mapping[str, str]:
    """The attributes :func:`call_context` set in this context."""
    return dict(_CONTEXT.get(_NO_CONTEXT))


def _context_text(values: Mapping[str, str]) -> str:
    labels = {"call_id": "call", "channel": "channel", "agent": "agent"}
    text = " ".join(f"{labels[k]}={values[k]}" for k in CONTEXT_FIELDS if values.get(k))
    return text or "-"


class CallContextFilter(logging.Filter):
    """Give each record ``call_id``/``channel``/``agent`` and a ``call_ctx`` summary.

    Values passed explicitly (``extra=`` or :class:`CallLoggerAdapter`) win over the
    context variables.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        context = _CONTEXT.get(_NO_CONTEXT)
        values: dict[str, str] = {}
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = context.get(name, "")
                setattr(record, name, value)
            values[name] = str(value)
        record.call_ctx = _context_text(values)
        return True


class CallLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger bound to one call: ``CallLoggerAdapter(logger, call_id=..., channel=...)``."""

    def __init__(self, logger: logging.Logger, *, call_id: str | None = None,
                 channel: str | None = None, agent: str | None = None) -> None:
        given = {"call_id": call_id, "channel": channel, "agent": agent}
        super().__init__(logger, {k: v for k, v in given.items() if v is not None})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Digest response (RFC 7616 §3.4.1) wherever it appears: response="..." or a bare hex
    # digest (32+ digits, so "response=200" stays readable).
    (re.compile(r'(\bresponse\s*=\s*)("[^"]*"|[0-9A-Fa-f]{32,}\b)', re.I), r'\1"***"'),
    # Other authorization schemes carry the secret itself (Basic) or a token (Bearer).
    (re.compile(r"(\b(?:proxy-)?authorization\s*:\s*(?!digest\b)[\w-]+\s+)\S+", re.I),
     r"\1***"),
    # password=..., passwd: ..., "password": "...", secret=...
    (re.compile(r"""(\b(?:password|passwd|pwd|secret)['"]?\s*[=:]\s*)"""
                r"""("[^"]*"|'[^']*'|[^\s,;'"}\)]+)""", re.I), r"\1***"),
    # a command line: --password X
    (re.compile(r"(--password[= ]\s*)(\S+)"), r"\1***"),
    # HA1s by name (ha1=..., ha1_md5: ...) and in a dict keyed by algorithm name
    # ({'MD5': '...', 'SHA-256': '...'}): 32 or 64 hex digits.
    (re.compile(r"""(\bha1\w*['"]?\s*[=:]\s*['"]?)[0-9A-Fa-f]{32,64}\b""", re.I), r"\1***"),
    (re.compile(r"""(['"](?:MD5|SHA-256|SHA-512-256)(?:-sess)?['"]\s*:\s*['"])"""
                r"""[0-9A-Fa-f]{32,64}(['"])""", re.I), r"\1***\2"),
)


def redact(text: str) -> str:
    """``text`` with passwords, HA1s and digest responses replaced by ``***``."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactionFilter(logging.Filter):
    """Mask secrets in a record's final message and exception text (defence in depth)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed record: let logging report it as usual
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def configure_logging(level: str = "INFO", *, stream: TextIO | None = None) -> logging.Handler:
    """Install the node's handler on the root logger (idempotent: replaces its own).

    Args:
        level: a level name (``node.log_level``).
        stream: where to write; stderr by default (stdout is for CLI output).

    Returns:
        The installed handler.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    formatter = logging.Formatter(LOG_FORMAT, DATE_FORMAT)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(CallContextFilter())
    handler.addFilter(RedactionFilter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
