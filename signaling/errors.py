"""Exception hierarchy of the SIP stack.

h11's split: a *Remote* error means the peer sent something wrong, and carries the status
code RFC 3261 asks us to answer with; a *Local* error means our own code misused the API and
is a bug. Parsers raise only :class:`SipParseError` (a remote error), never IndexError,
UnicodeDecodeError or anything else: that is the invariant the fuzz tests check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .message import Message


class SignalingError(Exception):
    """Root of every error raised by ``signaling``."""


class RemoteSipError(SignalingError):
    """The peer violated the protocol; ``status_code``/``reason`` say how to answer."""

    status_code: int = 400
    reason: str = "Bad Request"
    #: The message as far as it could be parsed (headers split, body maybe short), when
    #: there is one: a UAS answers a bad request from it; None when the head was unusable.
    message: Message | None = None

    def __init__(self, detail: str, *, status_code: int | None = None, reason: str | None = None):
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        if reason is not None:
            self.reason = reason


class SipParseError(RemoteSipError):
    """Bytes that are not a well-formed SIP message (RFC 3261 §7, §25).

    ``status_code``/``reason`` are the response a UAS sends for a request (400 unless a
    subclass says otherwise); a malformed *response* is dropped (§18.1.2, RFC 4475 §3.1.2.19).
    """


class UnsupportedUriScheme(SipParseError):
    """RFC 3261 §8.2.2.1: a Request-URI scheme we do not understand (416).

    A subclass of :class:`SipParseError` so that the parser invariant ("only
    SipParseError escapes") holds for callers that catch the base class.
    """

    status_code = 416
    reason = "Unsupported URI Scheme"


class VersionNotSupported(SipParseError):
    """RFC 3261 §8.2.2 / §21.5.20: a SIP version other than 2.0 (505)."""

    status_code = 505
    reason = "Version Not Supported"


class MessageTooLarge(SipParseError):
    """RFC 3261 §21.5.14 / §18.1.1: a message over our size limit (513)."""

    status_code = 513
    reason = "Message Too Large"


class BadExtension(SipParseError):
    """RFC 3261 §8.2.2.3: a Require option tag we do not support (420).

    ``unsupported`` lists the tags for the Unsupported header of the 420 response.
    """

    status_code = 420
    reason = "Bad Extension"

    def __init__(self, detail: str, unsupported: list[str]) -> None:
        super().__init__(detail)
        self.unsupported = unsupported


class LocalSipError(SignalingError):
    """Our own code used the API wrongly (a bug, not the peer's fault)."""
