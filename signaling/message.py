"""SIP messages: requests, responses, and their header multidict (RFC 3261 §7, §20).

Parsing is lazy (Sippy's lesson): the parser only splits the head into (name, value) pairs,
canonicalises names (compact forms, case) and frames the body. Typed views of a header
(Via, CSeq, From/To, Contact) are parsed on first access and cached, so a proxy-like path
that only needs the branch and Call-ID never pays for the rest. Serialisation writes the
headers back as stored, so ``parse(bytes(msg))`` round-trips.

Header names: known names (RFC 3261 and the IANA registry, compact forms included) are
stored in their conventional spelling; unknown names keep the sender's spelling and are
compared case-insensitively (§7.3.1). The typed views cache: after editing headers of a
parsed message, call :meth:`Message.invalidate`. A typed view of a malformed header raises
:class:`SipParseError`; :func:`signaling.validate.validate_request` turns that into a 400
with a reason phrase naming the header.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .errors import SipParseError
from .headers import CSeq, NameAddr, Via
from .uri import SipUri

__all__ = [
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "REASON_PHRASES",
    "Headers",
    "Message",
    "Request",
    "Response",
    "canonical_name",
    "make_response",
    "split_header_values",
]

SIP_VERSION = "SIP/2.0"

#: RFC 3261 §7.3.3 and the IANA registry: compact form -> full name.
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN = [
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "Identity",
    "Identity-Info", "In-Reply-To", "Max-Forwards", "MIME-Version", "Min-Expires", "Min-SE",
    "Organization", "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Priority",
    "Privacy", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reject-Contact", "Replaces", "Reply-To",
    "Request-Disposition", "Require", "Retry-After", "Route", "RSeq", "Server",
    "Session-Expires", "SIP-ETag", "SIP-If-Match", "Subject", "Subscription-State",
    "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning",
    "WWW-Authenticate",
]
_CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN}
for _short, _full in COMPACT_FORMS.items():
    _CANONICAL[_short] = _full

#: Headers whose values are comma-separated lists (RFC 3261 §7.3.1). Others (Date,
#: WWW-Authenticate, Authorization, ...) contain commas inside one value.
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
        "Call-Info", "Contact", "Content-Encoding", "Content-Language", "Error-Info",
        "In-Reply-To", "Path", "Proxy-Require", "Reason", "Record-Route", "Require", "Route",
        "Supported", "Unsupported", "Via", "Warning", "P-Asserted-Identity",
        "P-Preferred-Identity", "Accept-Contact", "Reject-Contact", "Request-Disposition",
    }
)


def canonical_name(name: str) -> str:
    """Full, conventionally-cased header name; unknown names keep the sender's spelling."""
    return _CANONICAL.get(name.lower(), name)


def _lookup_key(name: str) -> tuple[str, str | None]:
    """``(key, None)`` for a known name (stored in canonical form, compared exactly), or
    ``(name, lower-case name)`` for an unknown one, compared case-insensitively (§7.3.1)."""
    low = name.lower()
    canon = _CANONICAL.get(low)
    if canon is not None:
        return canon, None
    return name, low


def _same(k: str, key: str, low: str | None) -> bool:
    return k == key if low is None else k.lower() == low


def split_header_values(value: str) -> list[str]:
    """Split a list header on commas that are outside quotes and angle brackets (§7.3.1)."""
    if "," not in value:
        v = value.strip()
        return [v] if v else []
    out: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            part = value[start:i].strip()
            if part:
                out.append(part)
            start = i + 1
        i += 1
    part = value[start:].strip()
    if part:
        out.append(part)
    return out


class Headers:
    """Ordered, case-insensitive multidict of header fields.

    Stored as a list of ``[name, value]`` pairs in arrival order with canonical names, so
    that relative order of same-named fields (Via, Route) is kept, as §7.3.1 requires.
    """

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[list[str]] = []
        if items:
            for name, value in items:
                self._items.append([canonical_name(name), value])

    @classmethod
    def _from_canonical(cls, items: list[list[str]]) -> Headers:
        h = cls.__new__(cls)
        h._items = items
        return h

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first field's raw value (for list headers: the whole first line)."""
        key, low = _lookup_key(name)
        if low is None:
            for k, v in self._items:
                if k == key:
                    return v
        else:
            for k, v in self._items:
                if k.lower() == low:
                    return v
        return default

    def _first(self, key: str) -> str | None:
        """:meth:`get` for a known name in canonical form (the typed views' hot path)."""
        for k, v in self._items:
            if k == key:
                return v
        return None

    def get_raw_all(self, name: str) -> list[str]:
        """Every field line of this name, unsplit."""
        key, low = _lookup_key(name)
        return [v for k, v in self._items if _same(k, key, low)]

    def get_all(self, name: str) -> list[str]:
        """Every value, comma-split for list headers (Via, Contact, Route, ...)."""
        key, low = _lookup_key(name)
        if low is None:  # a known name: exact comparison, no call per field (hot path)
            raw = [v for k, v in self._items if k == key]
        else:
            raw = [v for k, v in self._items if k.lower() == low]
        if key in LIST_HEADERS:
            out: list[str] = []
            for v in raw:
                out.extend(split_header_values(v))
            return out
        return raw

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key, low = _lookup_key(name)
        if low is None:
            return key in [k for k, _ in self._items]  # no generator frame per field
        return any(k.lower() == low for k, _ in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((k, v) for k, v in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self._items]

    def add(self, name: str, value: str) -> None:
        """Append a field after the existing ones."""
        self._items.append([canonical_name(name), value])

    def prepend(self, name: str, value: str) -> None:
        """Insert a field before the first one of its name (a proxy's Via, Record-Route)."""
        key, low = _lookup_key(name)
        for i, (k, _) in enumerate(self._items):
            if _same(k, key, low):
                self._items.insert(i, [key, value])
                return
        self._items.append([key, value])

    def set(self, name: str, value: str) -> None:
        """Replace every field of this name by one, keeping the first one's position."""
        key, low = _lookup_key(name)
        for i, (k, _) in enumerate(self._items):
            if _same(k, key, low):
                rest = [it for it in self._items[i + 1 :] if not _same(it[0], key, low)]
                self._items[i:] = [[key, value], *rest]
                return
        self._items.append([key, value])

    def remove(self, name: str) -> None:
        key, low = _lookup_key(name)
        self._items = [it for it in self._items if not _same(it[0], key, low)]

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value of a list header (e.g. the top Via)."""
        key, low = _lookup_key(name)
        for i, (k, v) in enumerate(self._items):
            if not _same(k, key, low):
                continue
            values = split_header_values(v) if key in LIST_HEADERS else [v]
            if len(values) <= 1:
                del self._items[i]
            else:
                self._items[i] = [k, ", ".join(values[1:])]
            return values[0] if values else None
        return None

    def copy(self) -> Headers:
        return Headers._from_canonical([[k, v] for k, v in self._items])

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


class Message:
    """Common part of requests and responses."""

    __slots__ = ("_cache", "body", "headers", "version")

    def __init__(
        self, headers: Headers | None = None, body: bytes = b"", version: str = SIP_VERSION
    ) -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self.version = version
        self._cache: dict[str, Any] = {}

    # -- typed views, parsed on first use --------------------------------------------
    def invalidate(self) -> None:
        """Forget cached typed views after editing headers."""
        self._cache.clear()

    def _required(self, name: str) -> str:
        value = self.headers._first(name)
        if value is None:
            raise SipParseError(f"missing {name} header", reason=f"Bad Request - Missing {name}")
        return value

    @property
    def call_id(self) -> str:
        return self._required("Call-ID").strip()

    @property
    def cseq(self) -> CSeq:
        c = self._cache.get("cseq")
        if c is None:
            c = self._cache["cseq"] = CSeq.parse(self._required("CSeq"))
        return c

    @property
    def vias(self) -> list[Via]:
        v = self._cache.get("vias")
        if v is None:
            v = self._cache["vias"] = [Via.parse(x) for x in self.headers.get_all("Via")]
            if not v:
                raise SipParseError("missing Via header")
        return v

    @property
    def top_via(self) -> Via:
        v = self._cache.get("top_via")
        if v is None:
            vias = self._cache.get("vias")
            if vias is not None:
                v = vias[0]
            else:
                first = self.headers._first("Via")
                if first is None:
                    raise SipParseError("missing Via header")
                values = split_header_values(first)
                if not values:
                    raise SipParseError("empty Via header")
                v = Via.parse(values[0])
            self._cache["top_via"] = v
        return v

    @property
    def branch(self) -> str | None:
        return self.top_via.branch

    @property
    def from_(self) -> NameAddr:
        v = self._cache.get("from")
        if v is None:
            v = self._cache["from"] = NameAddr.parse(self._required("From"))
        return v

    @property
    def to(self) -> NameAddr:
        v = self._cache.get("to")
        if v is None:
            v = self._cache["to"] = NameAddr.parse(self._required("To"))
        return v

    @property
    def from_tag(self) -> str | None:
        return self.from_.tag

    @property
    def to_tag(self) -> str | None:
        return self.to.tag

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values; a wildcard ``*`` comes back as a NameAddr with ``is_wildcard``."""
        v = self._cache.get("contacts")
        if v is None:
            v = self._cache["contacts"] = [
                NameAddr.parse(x) for x in self.headers.get_all("Contact")
            ]
        return v

    @property
    def content_type(self) -> str | None:
        v = self.headers.get("Content-Type")
        return v.split(";", 1)[0].strip().lower() if v else None

    @property
    def max_forwards(self) -> int | None:
        v = self.headers.get("Max-Forwards")
        if v is None:
            return None
        v = v.strip()
        if not v.isascii() or not v.isdigit() or len(v) > 10:
            raise SipParseError(
                f"bad Max-Forwards {v[:20]!r}", reason="Bad Request - Malformed Max-Forwards"
            )
        return int(v)

    # -- serialisation ---------------------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """Wire form; Content-Length is always (re)written to match the body."""
        parts = [self.start_line()]
        for k, v in self.headers._items:
            if k != "Content-Length":
                parts.append(f"{k}: {v}")
        parts.append(f"Content-Length: {len(self.body)}")
        parts.append("")
        parts.append("")
        return "\r\n".join(parts).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.serialize()


class Request(Message):
    """A SIP request; ``uri`` is the Request-URI as text, ``uri_parsed`` its typed view."""

    __slots__ = ("method", "uri")

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(headers, body, version)
        self.method = method
        self.uri = uri

    @property
    def uri_parsed(self) -> SipUri:
        v = self._cache.get("uri")
        if v is None:
            v = self._cache["uri"] = SipUri.parse(self.uri)
        return v

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str = "",
        headers: Headers | None = None,
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(headers, body, version)
        self.status = status
        self.reason = reason

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


#: Default reason phrases (RFC 3261 §21 and extensions we send).
REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    body: bytes = b"",
    extra: list[tuple[str, str]] | None = None,
) -> Response:
    """Build a response per RFC 3261 §8.2.6.2: Via, From, Call-ID and CSeq copied verbatim,
    To copied and given ``to_tag`` when it has none (never on 100 Trying, §8.2.6.1)."""
    items: list[list[str]] = []
    for k, v in request.headers._items:
        if k == "To":
            if to_tag and status != 100 and ";tag=" not in v.replace(" ", "").lower():
                v = f"{v};tag={to_tag}"
            items.append([k, v])
        elif k in ("Via", "From", "Call-ID", "CSeq"):
            items.append([k, v])
        elif k == "Timestamp" and status == 100:
            items.append([k, v])  # §8.2.6.1
    resp = Response(
        status,
        reason if reason is not None else REASON_PHRASES.get(status, ""),
        Headers._from_canonical(items),
        body,
    )
    if extra:
        for name, value in extra:
            resp.headers.add(name, value)
    return resp
