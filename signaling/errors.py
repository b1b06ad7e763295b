"""Exception hierarchy of the SIP stack.

h11's split: a *Remote* error means the peer sent something wrong, and carries the status
code RFC 3261 asks us to answer with; a *Local* error means our own code misused the API and
is a bug. Parsers raise only :class:`SipParseError` (a remote error), never IndexError,
UnicodeDecodeError or anything else: that is the invariant the fuzz tests check.
"""

from __future__ import annotations


class SignalingError(Exception):
    """Root of every error raised by ``signaling``."""


class RemoteSipError(SignalingError):
    """The peer violated the protocol; ``status_code``/``reason`` say how to answer."""

    status_code: int = 400
    reason: str = "Bad Request"

    def __init__(self, detail: str, *, status_code: int | None = None, reason: str | None = None):
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        if reason is not None:
            self.reason = reason


class SipParseError(RemoteSipError):
    """Bytes that are not a well-formed SIP message (RFC 3261 §7, §25)."""


class UnsupportedUriScheme(RemoteSipError):
    """RFC 3261 §8.2.2.1: a Request-URI scheme we do not understand."""

    status_code = 416
    reason = "Unsupported URI Scheme"


class LocalSipError(SignalingError):
    """Our own code used the API wrongly (a bug, not the peer's fault)."""
