"""The stateless parts of a UAS's request inspection (RFC 3261 §8.2, §16.3, §21.4.1).

Each check looks at one request and returns a :data:`Rejection` — the status, reason
phrase and extra header fields of the automatic answer — or None to go on. Checks that need
state (dialogs, merged requests, our own client transactions) stay in
:mod:`signaling.core`, which calls these in the RFC's order: method (§8.2.1), then
Require (§8.2.2.3), then content (§8.2.3).
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterable

from .errors import SipParseError
from .message import Headers, Request, Response
from .parser import parse_head

__all__ = [
    "KNOWN_METHODS",
    "Rejection",
    "answer_unparsable",
    "check_content",
    "check_method",
    "check_require",
    "options_headers",
    "warning",
]

Rejection = tuple[int, str, list[tuple[str, str]]]

#: Methods of RFC 3261 and the extensions in common use; others get 501 (§21.5.2).
KNOWN_METHODS = frozenset({
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
    "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
})

_COPIED = ("Via", "From", "To", "Call-ID", "CSeq")


def check_method(method: str, allow: Collection[str]) -> Rejection | None:
    """§8.2.1: 405 for a method we know but do not serve here, 501 for one we do not
    know (§21.5.2); both carry Allow (§20.5)."""
    if method in allow:
        return None
    header = [("Allow", ", ".join(sorted(allow)))]
    if method in KNOWN_METHODS:
        return 405, "Method Not Allowed", header
    return 501, "Not Implemented", header


def check_require(request: Request, supported: Container[str]) -> Rejection | None:
    """§8.2.2.3: 420 listing in Unsupported every Require tag we lack (``supported``
    holds lower-case tags). ACK and CANCEL are exempt."""
    if request.method in ("ACK", "CANCEL") or "Require" not in request.headers:
        return None
    missing = [t for t in request.headers.get_all("Require") if t.lower() not in supported]
    if missing:
        return 420, "Bad Extension", [("Unsupported", ", ".join(missing))]
    return None


def check_content(
    request: Request,
    accept: Container[str],
    accept_encoding: Container[str],
    accept_text: str,
    accept_encoding_text: str,
) -> Rejection | None:
    """§8.2.3: 415 with Accept for a body type we cannot read, 415 with Accept-Encoding for
    a content coding we cannot undo (``accept*`` hold lower-case values)."""
    if not request.body:
        return None
    ctype = request.content_type
    if ctype is not None and ctype not in accept:
        return 415, "Unsupported Media Type", [("Accept", accept_text)]
    for enc in request.headers.get_all("Content-Encoding"):
        if enc.strip().lower() not in accept_encoding:
            return 415, "Unsupported Media Type", [("Accept-Encoding", accept_encoding_text)]
    return None


def options_headers(allow: Iterable[str], accept: Iterable[str],
                    accept_encoding: Iterable[str], supported: Iterable[str]
                    ) -> list[tuple[str, str]]:
    """§11.2: the capability headers of a 200 to OPTIONS."""
    out = [
        ("Allow", ", ".join(sorted(allow))),
        ("Accept", ", ".join(accept)),
        ("Accept-Encoding", ", ".join(accept_encoding)),
    ]
    tags = ", ".join(supported)
    if tags:
        out.append(("Supported", tags))
    return out


def warning(detail: str, agent: str = "softswitch") -> str:
    """§20.43 Warning 399 (miscellaneous) carrying the parser's description."""
    text = detail.replace("\\", "").replace('"', "'")[:120]
    return f'399 {agent} "{text}"'


def answer_unparsable(data: bytes, err: SipParseError) -> bytes | None:
    """The answer to bytes the parser rejected, or None to drop them.

    §21.4.1 / RFC 4475: a request is answered with the error's status (400, 505, 513...)
    and reason phrase when its Via, From, To, Call-ID and CSeq can be copied; responses,
    ACKs and anything without those fields are dropped (nobody could match an answer).
    """
    head = data.lstrip(b"\r\n")
    cut = head.find(b"\r\n\r\n")
    if cut < 0:
        cut = head.find(b"\n\n")
    try:
        start, items = parse_head(head if cut < 0 else head[:cut])
    except SipParseError:
        return None
    parts = start.split(" ")
    if start.startswith("SIP/") or len(parts) != 3 or parts[0] == "ACK":
        return None
    copied = [[k, v] for k, v in items if k in _COPIED]
    if {k for k, _ in copied} != set(_COPIED):
        return None
    resp = Response(err.status_code, err.reason, Headers._from_canonical(copied))
    resp.headers.add("Warning", warning(err.detail))
    return resp.serialize()
