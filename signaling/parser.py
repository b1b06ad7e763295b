"""Bytes -> SIP message (RFC 3261 §7, §18.3, §25), for datagrams and framed stream messages.

Invariant (the h11 fuzz rule): any input gives a message or a :class:`SipParseError`,
never another exception. The hot path is plain ``bytes``/``str`` splitting; the strict
checks of header *values* happen lazily through the typed accessors of
:mod:`signaling.message` and in :func:`signaling.validate.validate_request` /
:func:`~signaling.validate.validate_response`, which the transaction core calls.
TCP/TLS framing (Content-Length, keep-alives) is :mod:`signaling.framing`.

Tolerances, each one a case RFC 4475/5118 or deployed phones ask for:

* Line endings: RFC 3261 requires CRLF, but RFC 5118's own examples (and some phones) use
  bare LF; we accept either (§7.5 asks implementations to be liberal). A bare CR is an error.
* Leading CRLFs before the start line are skipped (§7.5).
* A datagram that ends right after its last header line, without the empty line, is taken
  as a message with no body (the RFC 5118 archive ships two such messages).
* Header names may have white space before the colon (``Via  :``, RFC 4475 §3.1.1.1).

When a head splits cleanly but the message is still wrong (bad Content-Length, bad
version ...), the raised error carries the partial message in ``err.message`` so that the
caller can still answer a request with ``make_response(err.message, err.status_code,
err.reason)`` (§8.2, RFC 4475 §3.1.2.1: "respond with 400").
"""

from __future__ import annotations

from .errors import MessageTooLarge, SipParseError, VersionNotSupported
from .grammar import is_token
from .message import Headers, Request, Response, canonical_name

__all__ = [
    "MAX_HEADERS",
    "MAX_MESSAGE_BYTES",
    "find_head_end",
    "parse_head",
    "parse_message",
    "split_head",
]

#: Largest message we accept: 64 KiB, the UDP datagram limit (RFC 3261 §18.1.1).
MAX_MESSAGE_BYTES = 65536
#: Most header fields in one message: far above any real message (RFC 4475 longreq has 45).
MAX_HEADERS = 128

_BAD_REQ = "Bad Request"


def _bad(detail: str, why: str) -> SipParseError:
    return SipParseError(detail, reason=f"{_BAD_REQ} - {why}")


def find_head_end(data: bytes | bytearray, start: int = 0) -> tuple[int, int] | None:
    """Locate the empty line ending the head: ``(head_len, body_start)``, or None.

    The first LF followed by an (optionally CR-prefixed) LF ends the head; a CR before
    that first LF belongs to the line ending. Plain ``find`` calls: far cheaper than a
    regular expression on the hot path.
    """
    j = data.find(b"\n\n", start)
    k = data.find(b"\n\r\n", start, j + 2 if j >= 0 else len(data))
    if k >= 0:
        p, end = k, k + 3
    elif j >= 0:
        p, end = j, j + 2
    else:
        return None
    if p > 0 and data[p - 1] == 13:  # b"\r"
        p -= 1
    return p, end


def split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """Split at the first empty line: ``(head, rest)``, or None when there is none yet."""
    found = find_head_end(data)
    if found is None:
        return None
    return data[: found[0]], data[found[1] :]


#: Raw header name -> canonical name, for names already checked to be tokens. A pure memo
#: (bounded, so a peer sending random names cannot grow it without limit).
_NAME_CACHE: dict[str, str] = {}
_NAME_CACHE_MAX = 2048


def _canonical_checked(raw: str) -> str:
    name = raw.rstrip(" \t")
    if not is_token(name):
        raise _bad(f"bad header name {name[:40]!r}", "Malformed header")
    canon = canonical_name(name)
    if len(_NAME_CACHE) < _NAME_CACHE_MAX:
        _NAME_CACHE[raw] = canon
    return canon


def parse_head(head: bytes, max_headers: int = MAX_HEADERS) -> tuple[str, list[list[str]]]:
    """Split a message head into its start line and canonical ``[name, value]`` pairs.

    Continuation lines (§7.3.1 folding) are joined to the previous value with one space.
    """
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # §25: header values may carry UTF-8 only; other bytes are kept, not fatal, so the
        # message can still be answered. surrogateescape round-trips them on serialise.
        text = head.decode("utf-8", "surrogateescape")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            raise _bad("bare CR in message head", "Bare CR")
    lines = text.split("\n")
    start = lines[0]
    items: list[list[str]] = []
    append = items.append
    _names = _NAME_CACHE
    folded: dict[int, list[str]] | None = None
    for line in lines[1:]:
        if not line:
            continue
        first = line[0]
        if first == " " or first == "\t":
            if not items:
                raise _bad("continuation line before any header", "Malformed header")
            part = line.strip(" \t")
            if part:  # joined once at the end: no quadratic re-copying of long values
                if folded is None:
                    folded = {}
                folded.setdefault(len(items) - 1, []).append(part)
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _bad(f"header line without a colon: {line[:40]!r}", "Malformed header")
        canon = _names.get(name)
        if canon is None:
            canon = _canonical_checked(name)
        append([canon, value.strip(" \t")])
        if len(items) > max_headers:
            raise _bad(f"more than {max_headers} header fields", "Too many headers")
    if folded is not None:
        for index, parts in folded.items():
            item = items[index]
            item[1] = " ".join([item[1], *parts]) if item[1] else " ".join(parts)
    return start, items


def _parse_start_line(start: str) -> tuple[str, str, str] | tuple[int, str, str]:
    """Request-Line = Method SP Request-URI SP SIP-Version (single SPs, §7.1, RFC 4475
    §3.1.2.7-9); Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2)."""
    if start[:4].upper() == "SIP/":
        version, sp, rest = start.partition(" ")
        code, _, reason = rest.partition(" ")
        if not sp or len(code) != 3 or not code.isascii() or not code.isdigit():
            raise _bad(f"bad status line {start[:60]!r}", "Malformed Status-Line")
        status = int(code)
        if status < 100 or status > 699:
            raise _bad(f"status code out of range: {status}", "Malformed Status-Line")
        return status, reason, version
    parts = start.split(" ")
    if len(parts) != 3 or not parts[1]:
        raise _bad(f"bad request line {start[:60]!r}", "Malformed Request-Line")
    method, uri, version = parts
    if not is_token(method):
        raise _bad(f"bad method {method[:30]!r}", "Malformed Request-Line")
    return method, uri, version


def _check_version(version: str) -> None:
    """SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT; anything but 2.0 is a 505 (§8.2.2)."""
    if version == "SIP/2.0":
        return
    if version.upper() == "SIP/2.0":
        return
    name, slash, num = version.partition("/")
    major, dot, minor = num.partition(".")
    if (
        name.upper() != "SIP"
        or not slash
        or not dot
        or not (major.isascii() and major.isdigit())
        or not (minor.isascii() and minor.isdigit())
    ):
        raise _bad(f"bad SIP version {version[:20]!r}", "Malformed SIP-Version")
    raise VersionNotSupported(f"unsupported SIP version {version[:20]!r}")


def _partial_request(start: str, headers: Headers, body: bytes) -> Request | None:
    """A best-effort Request for a bad Request-Line (extra SP, LWS in the URI: RFC 4475
    §3.1.2.7-10), so that the 400 the RFC asks for can still be built from the headers."""
    parts = start.split()
    if len(parts) < 2 or not is_token(parts[0]) or parts[0].upper().startswith("SIP/"):
        return None
    if len(parts) == 2:
        return Request(parts[0], parts[1], headers, body)
    return Request(parts[0], " ".join(parts[1:-1]), headers, body, parts[-1])


def parse_message(
    data: bytes,
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_headers: int = MAX_HEADERS,
    datagram: bool = True,
) -> Request | Response:
    """Parse one whole message (a UDP datagram, or a frame cut by the stream framer).

    For datagrams, bytes beyond Content-Length are discarded and a body shorter than
    Content-Length is an error (§18.3); a missing Content-Length means "the rest of the
    datagram". On streams (``datagram=False``) Content-Length is mandatory.

    Raises:
        SipParseError: (or a subclass carrying 505/513) for anything not a SIP message.
    """
    if not isinstance(data, bytes):
        if not isinstance(data, (bytearray, memoryview)):
            raise SipParseError("not bytes")
        data = bytes(data)
    if len(data) > max_bytes:
        raise MessageTooLarge(f"message larger than {max_bytes} bytes")
    if data[:1] == b"\r" or data[:1] == b"\n":
        data = data.lstrip(b"\r\n")
    if not data:
        raise _bad("empty message", "Empty message")
    split = split_head(data)
    if split is None:
        if not datagram or not data.endswith(b"\n"):
            raise _bad("no empty line after the headers", "Incomplete header")
        head, body = data.rstrip(b"\r\n"), b""
    else:
        head, body = split
    start, items = parse_head(head, max_headers)
    headers = Headers._from_canonical(items)
    try:
        first = _parse_start_line(start)
    except SipParseError as err:
        err.message = _partial_request(start, headers, body)
        raise
    if isinstance(first[0], int):
        status, reason, version = first
        msg: Request | Response = Response(status, str(reason), headers, body, str(version))
    else:
        method, uri, version = first
        msg = Request(str(method), str(uri), headers, body, str(version))
    try:
        _check_version(msg.version)
        cl = headers.get("Content-Length")
        if cl is not None:
            if not cl.isascii() or not cl.isdigit() or len(cl) > 9:
                raise _bad(f"bad Content-Length {cl[:20]!r}", "Malformed Content-Length")
            length = int(cl)
            if length > len(body):
                raise _bad(
                    f"Content-Length {length} larger than the {len(body)} body bytes received",
                    "Content-Length mismatch",
                )
            if length < len(body):
                msg.body = body[:length]
        elif not datagram:
            raise _bad("missing Content-Length on a stream transport", "Missing Content-Length")
    except SipParseError as err:
        err.message = msg
        raise
    return msg
