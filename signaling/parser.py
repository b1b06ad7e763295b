"""Bytes -> SIP message (RFC 3261 §7, §18.3, §25), for datagrams and streams.

Invariant (the h11 fuzz rule): any input gives a message or a :class:`SipParseError`,
never another exception. The hot path is plain ``bytes`` splitting; the strict checks of
header *values* happen lazily through the typed accessors of :mod:`signaling.message` and
in :func:`validate_request`/:func:`validate_response`, which the transport core calls.

Line endings: RFC 3261 requires CRLF, but RFC 5118's own examples (and some phones) use
bare LF; we accept either, as §7.5 suggests implementations be liberal here.
"""

from __future__ import annotations

from .errors import SipParseError
from .message import Headers, Request, Response, canonical_name

__all__ = ["MAX_HEADERS", "MAX_MESSAGE_BYTES", "parse_head", "parse_message"]

MAX_MESSAGE_BYTES = 65536
MAX_HEADERS = 128

_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)


def _is_token(s: str) -> bool:
    return bool(s) and all(c in _TOKEN_CHARS for c in s)


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Split at the empty line; returns (head, rest). Leading CRLFs are skipped (§7.5)."""
    i = data.find(b"\r\n\r\n")
    j = data.find(b"\n\n")
    if i < 0 and j < 0:
        raise SipParseError("no empty line after the headers")
    if i >= 0 and (j < 0 or i < j):
        return data[:i], data[i + 4 :]
    return data[:j], data[j + 2 :]


def parse_head(
    head: bytes, max_headers: int = MAX_HEADERS
) -> tuple[str, list[list[str]]]:
    """Split a message head into its start line and canonical ``[name, value]`` pairs."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # §25: header values may carry UTF-8 only; other bytes are kept, not fatal, so the
        # message can still be answered. surrogateescape round-trips them on serialise.
        text = head.decode("utf-8", "surrogateescape")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            raise SipParseError("bare CR in message head")
    lines = text.split("\n")
    start = lines[0]
    items: list[list[str]] = []
    for line in lines[1:]:
        if not line:
            continue
        first = line[0]
        if first == " " or first == "\t":
            # Folded continuation (§7.3.1): joins the previous value with one space.
            if not items:
                raise SipParseError("continuation line before any header")
            items[-1][1] = (items[-1][1] + " " + line.strip()).strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise SipParseError(f"header line without a colon: {line[:40]!r}")
        name = name.rstrip(" \t")
        if not _is_token(name):
            raise SipParseError(f"bad header name {name[:40]!r}")
        items.append([canonical_name(name), value.strip(" \t")])
        if len(items) > max_headers:
            raise SipParseError(f"more than {max_headers} header fields")
    return start, items


def _parse_start_line(start: str) -> tuple[str, str, str] | tuple[int, str, str]:
    if start.startswith("SIP/"):
        version, sp, rest = start.partition(" ")
        code, _, reason = rest.partition(" ")
        if not sp or len(code) != 3 or not code.isdigit():
            raise SipParseError(f"bad status line {start[:60]!r}")
        status = int(code)
        if status < 100 or status > 699:
            raise SipParseError(f"status code out of range: {status}")
        return status, reason, version
    parts = start.split(" ")
    if len(parts) != 3 or not parts[1]:
        raise SipParseError(f"bad request line {start[:60]!r}")
    method, uri, version = parts
    if not _is_token(method):
        raise SipParseError(f"bad method {method[:30]!r}")
    return method, uri, version


def parse_message(
    data: bytes,
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_headers: int = MAX_HEADERS,
    datagram: bool = True,
) -> Request | Response:
    """Parse one whole message (a UDP datagram, or a frame cut by the stream framer).

    For datagrams, a body longer than Content-Length is truncated and a shorter one is an
    error (§18.3); a missing Content-Length means "the rest of the datagram".
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SipParseError("not bytes")
    data = bytes(data)
    if len(data) > max_bytes:
        raise SipParseError(f"message larger than {max_bytes} bytes", status_code=513,
                            reason="Message Too Large")
    stripped = data.lstrip(b"\r\n")
    if not stripped:
        raise SipParseError("empty message")
    head, body = _split_head(stripped)
    start, items = parse_head(head, max_headers)
    first = _parse_start_line(start)
    headers = Headers._from_canonical(items)
    cl = headers.get("Content-Length")
    if cl is not None:
        cl = cl.strip()
        if not cl.isdigit() or len(cl) > 9:
            raise SipParseError(f"bad Content-Length {cl[:20]!r}")
        length = int(cl)
        if length > len(body):
            raise SipParseError(
                f"Content-Length {length} larger than the {len(body)} body bytes received"
            )
        body = body[:length]
    elif not datagram:
        raise SipParseError("missing Content-Length on a stream transport")
    if isinstance(first[0], int):
        status, reason, version = first
        msg: Request | Response = Response(status, str(reason), headers, body, str(version))
    else:
        method, uri, version = first
        msg = Request(str(method), str(uri), headers, body, str(version))
    if msg.version.upper() != "SIP/2.0":
        raise SipParseError(f"unsupported SIP version {msg.version[:20]!r}", status_code=505,
                            reason="Version Not Supported")
    return msg
