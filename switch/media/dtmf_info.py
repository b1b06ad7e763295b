"""DTMF carried in SIP INFO bodies (the non-RTP path, for peers that cannot do RFC 4733).

Pure functions over the body bytes. Two formats are in use; neither is an RFC:

* ``application/dtmf-relay`` (Cisco, also Asterisk/FreeSWITCH/most PBXs)::

      Signal=5
      Duration=160

  ``Signal`` is the digit (some devices send the RFC 4733 code, ``10`` for ``*``, ``11``
  for ``#``); ``Duration`` is in milliseconds and optional.
* ``application/dtmf`` (draft-kaplan-dispatch-info-dtmf-package style): the body is the
  digit alone, or its RFC 4733 event code.

Errors are :class:`DtmfInfoError` with a message saying what is wrong, so the SIP layer
can answer 400 / 415 and log something useful.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from switch.media.rfc4733 import CODE_DIGITS, EVENT_CODES

logger = logging.getLogger(__name__)

__all__ = [
    "DTMF_CONTENT_TYPES",
    "DtmfInfoError",
    "InfoDigit",
    "parse_dtmf",
    "parse_dtmf_relay",
    "parse_info_dtmf",
]

DTMF_RELAY = "application/dtmf-relay"
DTMF = "application/dtmf"
DTMF_CONTENT_TYPES = (DTMF_RELAY, DTMF)
# Cap on the body we look at: a dtmf-relay body is two short lines.
_MAX_BODY = 1024
# Longest plausible key press (an INFO with a larger value is a broken or hostile peer).
_MAX_DURATION_MS = 60_000


class DtmfInfoError(ValueError):
    """A DTMF INFO body that cannot be understood (remote error, answer 400)."""


@dataclass(frozen=True, slots=True)
class InfoDigit:
    """A digit from an INFO body; ``duration_ms`` None when the body had none."""

    digit: str
    duration_ms: int | None


def _digit(token: str) -> str:
    """A digit character from ``5`` / ``*`` / ``a`` / RFC 4733 code ``10``."""
    token = token.strip()
    if len(token) == 1 and token.upper() in EVENT_CODES:
        return token.upper()
    if token.isdigit() and int(token) in CODE_DIGITS:
        return CODE_DIGITS[int(token)]
    raise DtmfInfoError(f"not a DTMF digit: {token[:16]!r}")


def _text(body: bytes) -> str:
    if len(body) > _MAX_BODY:
        raise DtmfInfoError(f"DTMF INFO body too long: {len(body)} bytes")
    try:
        return body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DtmfInfoError("DTMF INFO body is not ASCII") from exc


def parse_dtmf_relay(body: bytes) -> InfoDigit:
    """Parse an ``application/dtmf-relay`` body (``Signal=`` and optional ``Duration=``).

    Keys are case-insensitive, whitespace around ``=`` is allowed, lines end in CRLF or
    LF, unknown keys are ignored.

    Raises:
        DtmfInfoError: no ``Signal``, a bad digit, a bad or negative duration.
    """
    fields: dict[str, str] = {}
    for line in _text(body).splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise DtmfInfoError(f"dtmf-relay line without '=': {line[:32]!r}")
        fields[key.strip().lower()] = value.strip()
    if "signal" not in fields:
        raise DtmfInfoError("dtmf-relay body has no Signal= line")
    digit = _digit(fields["signal"])
    duration: int | None = None
    if "duration" in fields:
        raw = fields["duration"]
        if not raw.isdigit():
            raise DtmfInfoError(f"dtmf-relay Duration is not a number: {raw[:16]!r}")
        duration = int(raw)
        if duration > _MAX_DURATION_MS:
            raise DtmfInfoError(f"dtmf-relay Duration {duration} ms is implausible")
    return InfoDigit(digit, duration)


def parse_dtmf(body: bytes) -> InfoDigit:
    """Parse an ``application/dtmf`` body: one digit (or its event code), no duration.

    Raises:
        DtmfInfoError: empty body or not a digit.
    """
    text = _text(body).strip()
    if not text:
        raise DtmfInfoError("application/dtmf body is empty")
    return InfoDigit(_digit(text), None)


def parse_info_dtmf(content_type: str, body: bytes) -> InfoDigit | None:
    """Dispatch on the INFO Content-Type (parameters and case ignored).

    Returns:
        The digit, or None when the content type is not a DTMF one (e.g. media control
        XML): that INFO is not ours to interpret.

    Raises:
        DtmfInfoError: a DTMF content type with a body we cannot parse.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == DTMF_RELAY:
        return parse_dtmf_relay(body)
    if media_type == DTMF:
        return parse_dtmf(body)
    return None
