"""Message framing on stream transports (TCP, TLS): RFC 3261 §18.3, RFC 5626 §3.5.1.

Sans-IO, h11-style: the TCP/TLS adapter feeds whatever bytes arrive with
:meth:`StreamFramer.receive_data` and then calls :meth:`StreamFramer.next_message` until it
returns None (``NEED_DATA``). Bytes may arrive whole, a byte at a time, or as several
messages in one chunk; the framer cuts at the empty line plus Content-Length (mandatory on
streams, §18.3) and hands each frame to :func:`signaling.parser.parse_message`.

Keep-alives (RFC 5626 §3.5.1): a client "ping" is a double CRLF sent between messages; the
server must answer each with a single CRLF "pong". The framer counts pings it has consumed;
the adapter calls :meth:`StreamFramer.take_pongs` and writes that many ``b"\\r\\n"``. A
single CRLF between messages (a pong seen by a client, or stray CRLF allowed by §7.5) is
skipped silently.

Errors. :meth:`next_message` raises :class:`SipParseError` in two ways:

* ``framer.broken`` is True: the stream cannot be framed any more (no or bad
  Content-Length, conflicting Content-Lengths, a head or body over ``max_bytes``, a head
  without an end). The adapter sends a response if ``err.message`` is a request, then
  MUST close the connection: there is no way to find the next message boundary. Every
  later call raises the same error again.
* ``framer.broken`` is False: one framed message was malformed (bad start line, bad
  version ...); its bytes were consumed and the next call continues with the following
  message. The adapter answers a request (``err.message``) and keeps the connection.

Limits are enforced before buffering: a head longer than ``max_bytes`` without its empty
line, or a Content-Length that would take the message over ``max_bytes``, raises (513)
without waiting for the body.
"""

from __future__ import annotations

import re

from .errors import MessageTooLarge, SipParseError
from .message import Message, Request, Response
from .parser import MAX_HEADERS, MAX_MESSAGE_BYTES, find_head_end, parse_message

__all__ = ["StreamFramer"]

# Content-Length or its compact form "l", at the start of a header line; LWS before ':'.
_CL_RE = re.compile(rb"\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)


def _strip_zeros(v: bytes) -> bytes:
    return (v.lstrip(b"0") or b"0") if v else v


class StreamFramer:
    """Cut a byte stream into SIP messages (one per connection, per direction)."""

    __slots__ = (
        "_body_len",
        "_buf",
        "_crlf_run",
        "_error",
        "_head_end",
        "_max_bytes",
        "_max_headers",
        "_pongs",
        "_scan_from",
    )

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES, max_headers: int = MAX_HEADERS):
        self._buf = bytearray()
        self._max_bytes = max_bytes
        self._max_headers = max_headers
        self._error: SipParseError | None = None
        self._pongs = 0
        self._crlf_run = 0
        self._scan_from = 0
        self._head_end = -1  # index just past the empty line, once found
        self._body_len = 0

    # -- public API ----------------------------------------------------------------------
    @property
    def broken(self) -> bool:
        """True once the stream is unframeable; the connection must be closed."""
        return self._error is not None

    @property
    def pong_needed(self) -> bool:
        """True when keep-alive pings were received and not yet answered.

        The adapter may clear it (``framer.pong_needed = False``) after writing one CRLF,
        or use :meth:`take_pongs` to get the exact count.
        """
        return self._pongs > 0

    @pong_needed.setter
    def pong_needed(self, value: bool) -> None:
        if not value:
            self._pongs = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a message."""
        return len(self._buf)

    def take_pongs(self) -> int:
        """Number of CRLF pongs to send now (RFC 5626 §3.5.1); resets the count."""
        n, self._pongs = self._pongs, 0
        return n

    def receive_data(self, data: bytes) -> None:
        """Append received bytes. Call :meth:`next_message` until None afterwards.

        Raises:
            SipParseError: the framer is broken, or the buffer would exceed eight times
                ``max_bytes`` (the caller is not draining it): close the connection.
        """
        if self._error is not None:
            raise self._error
        self._buf += data
        # A backstop against a caller that never drains: asyncio delivers reads of up to
        # 256 KiB, on top of at most one partial message, so 8 x 64 KiB is never legit.
        if len(self._buf) > 8 * self._max_bytes:
            self._fail(MessageTooLarge(f"more than {8 * self._max_bytes} bytes buffered"))

    def next_message(self) -> Request | Response | None:
        """The next complete message, or None when more data is needed.

        Raises:
            SipParseError: see the module docstring (``broken`` tells fatal from not).
        """
        if self._error is not None:
            raise self._error
        if self._head_end < 0 and not (self._skip_crlfs() and self._find_head()):
            return None
        total = self._head_end + self._body_len
        if len(self._buf) < total:
            return None
        frame = bytes(self._buf[:total])
        del self._buf[:total]
        self._head_end = -1
        self._scan_from = 0
        self._crlf_run = 0
        return parse_message(
            frame, max_bytes=self._max_bytes, max_headers=self._max_headers, datagram=False
        )

    # -- internals -------------------------------------------------------------------------
    def _fail(self, err: SipParseError) -> None:
        self._error = err
        raise err

    def _skip_crlfs(self) -> bool:
        """Consume CRLFs between messages, counting double-CRLF pings. False: need data."""
        buf = self._buf
        while buf[:2] == b"\r\n":
            del buf[:2]
            self._crlf_run += 1
            if self._crlf_run == 2:
                self._pongs += 1
                self._crlf_run = 0
        if not buf or buf == b"\r":
            return False
        if buf[:1] == b"\n":  # a bare LF between messages: skip it like a CRLF
            del buf[:1]
            return self._skip_crlfs()
        self._crlf_run = 0
        return True

    def _find_head(self) -> bool:
        """Locate the empty line and read Content-Length. False: need more data."""
        buf = self._buf
        limit = self._max_bytes
        found = find_head_end(buf, max(0, self._scan_from - 3))
        if found is None:
            if len(buf) > limit:
                self._fail(MessageTooLarge(f"message head longer than {limit} bytes"))
            self._scan_from = len(buf)
            return False
        head_len, head_end = found
        head = bytes(buf[:head_len])
        # Compare as numbers ("010" == "10"); an empty value stays empty and fails below.
        values = {_strip_zeros(v.strip()) for v in _CL_RE.findall(head)}
        if not values:
            err = SipParseError(
                "missing Content-Length on a stream transport",
                reason="Bad Request - Missing Content-Length",
            )
            err.message = self._partial(head)
            self._fail(err)
        if len(values) > 1:
            err = SipParseError(
                "conflicting Content-Length values",
                reason="Bad Request - Multiple Content-Length headers",
            )
            err.message = self._partial(head)
            self._fail(err)
        raw = values.pop()
        if not raw.isdigit() or len(raw) > 9:
            err = SipParseError(
                f"bad Content-Length {raw[:20]!r}", reason="Bad Request - Malformed Content-Length"
            )
            err.message = self._partial(head)
            self._fail(err)
        body_len = int(raw)
        if head_end + body_len > limit:
            err = MessageTooLarge(f"message of {head_end + body_len} bytes over {limit}")
            err.message = self._partial(head)
            self._fail(err)
        self._head_end = head_end
        self._body_len = body_len
        return True

    def _partial(self, head: bytes) -> Message | None:
        """Best-effort parse of a head alone, so a 400/513 can still be sent (§18.3)."""
        try:
            return parse_message(head + b"\r\n\r\n", max_bytes=len(head) + 4,
                                 max_headers=self._max_headers)
        except SipParseError as err:
            return err.message
