"""Strict checks of a parsed message, run by the transaction core on every message received.

The splitter (:mod:`signaling.parser`) stays lean; the rules of RFC 3261 §8.2.1-§8.2.3 and
§18.1.2/§18.2.1 that decide whether a message may be processed at all live here:

* mandatory header fields: To, From, Call-ID, CSeq and at least one Via (§8.1.1; a missing
  Max-Forwards is tolerated on receipt, RFC 4475 §3.1.2.17 "insuf" is about the others);
* single-valued fields present once (Call-ID, CSeq, From, To, Max-Forwards, Content-Type;
  Content-Length only if the copies disagree) -- RFC 4475 §3.3.9 "multi01", §3.3.10 "mcl01";
* the Request-URI is a URI: 416 for a scheme we do not serve (§8.2.2.1, "unkscm",
  "novelsc"), 400 for garbage ("ltgtruri") and for URI headers, which §19.1.1 forbids in a
  Request-URI ("escruri");
* every Via, From, To, Contact and the CSeq parse; the CSeq method equals the request
  method (§8.1.1.5, "mismatch01/02"); the CSeq number is below 2**31 ("scalar02");
* Max-Forwards in 0..255 (§20.22), a Date in GMT (§20.17, "baddate"), a Content-Type
  whenever there is a body (§20.15);
* optionally, Require option tags against what the UAS supports: 420 (§8.2.2.3, "bext01").

Errors raised are :class:`SipParseError` (or a subclass with another status code) with a
reason phrase that names the problem, e.g. ``"Bad Request - CSeq method mismatch"``. For a
request the caller answers with it (``make_response(req, e.status_code, e.reason)``); a bad
*response* is dropped (§18.1.2, RFC 4475 §3.1.2.19 "bigcode", "scalarlg").
"""

from __future__ import annotations

import re
from collections.abc import Collection

from .errors import BadExtension, SipParseError, UnsupportedUriScheme
from .message import Message, Request, Response

__all__ = ["validate_message", "validate_request", "validate_response"]

#: Header fields that RFC 3261 §20 defines with exactly one value.
_SINGLE = frozenset(
    {"Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Type", "Content-Length"}
)
_MANDATORY = ("To", "From", "Call-ID", "CSeq")
# callid = word [ "@" word ]; word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" /
#   "`" / "'" / "~" / "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" /
#   "{" / "}" )
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALLID_RE = re.compile(rf"{_WORD}(?:@{_WORD})?")
# rfc1123-date = wkday "," SP date1 SP time SP "GMT"   (§20.17, §25)
_DATE_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)


def _bad(why: str, detail: str | None = None) -> SipParseError:
    return SipParseError(detail or why, reason=f"Bad Request - {why}")


def _same_number(a: str, b: str) -> bool:
    """Two Content-Length values that agree ("010" and "10" do, RFC 4475 §3.3.10)."""
    a, b = a.strip(), b.strip()
    return a == b or (a.isdigit() and b.isdigit() and a.lstrip("0") == b.lstrip("0"))


def _check_fields(msg: Message) -> None:
    """Checks shared by requests and responses (the §8.2.1/§18.1.2 "well formed" part)."""
    seen: dict[str, str] = {}
    has_via = has_contact = False
    date: str | None = None
    for k, v in msg.headers._items:
        if k in _SINGLE:
            prev = seen.get(k)
            if prev is not None:
                if k == "Content-Length" and _same_number(prev, v):
                    continue
                raise _bad(f"Multiple {k} headers", f"more than one {k} header field")
            seen[k] = v
        elif k == "Via":
            has_via = True
        elif k == "Contact":
            has_contact = True
        elif k == "Date" and date is None:
            date = v
    for name in _MANDATORY:
        if name not in seen:
            raise _bad(f"Missing {name}", f"missing mandatory {name} header")
    if not has_via:
        raise _bad("Missing Via", "missing mandatory Via header")
    if _CALLID_RE.fullmatch(seen["Call-ID"]) is None:
        raise _bad("Malformed Call-ID", f"bad Call-ID {seen['Call-ID'][:60]!r}")
    _typed(msg, "vias", "Via")
    _typed(msg, "cseq", "CSeq")
    _typed(msg, "from_", "From")
    _typed(msg, "to", "To")
    if has_contact:
        _typed(msg, "contacts", "Contact")
    if "Max-Forwards" in seen:
        mf = _typed(msg, "max_forwards", "Max-Forwards")
        if isinstance(mf, int) and mf > 255:
            raise _bad("Malformed Max-Forwards", f"Max-Forwards {mf} above 255")
    if msg.body and "Content-Type" not in seen:
        raise _bad("Missing Content-Type", "a body without a Content-Type header")
    if date is not None and _DATE_RE.fullmatch(date) is None:
        raise _bad("Malformed Date", f"Date not an RFC 1123 GMT date: {date[:40]!r}")


def _typed(msg: Message, attr: str, name: str) -> object:
    """Read a typed view, turning its parse error into a 400 that names the header."""
    try:
        return getattr(msg, attr)
    except SipParseError as err:
        raise _bad(f"Malformed {name}", err.detail) from None


def validate_request(req: Request, *, supported: Collection[str] | None = None) -> None:
    """Check a received request before the transaction/UAS layers act on it.

    Args:
        req: the parsed request.
        supported: the option tags this UAS supports; when given, a Require header with
            other tags raises :class:`BadExtension` (420, §8.2.2.3), except on ACK and
            CANCEL. Leave None in a proxy, which does not inspect Require (§16.3).

    Raises:
        UnsupportedUriScheme: Request-URI scheme other than sip/sips/tel (416).
        BadExtension: unsupported Require option tags (420).
        SipParseError: any other problem (400, with a reason phrase naming it).
    """
    try:
        uri = req.uri_parsed
    except UnsupportedUriScheme:
        raise
    except SipParseError as err:
        raise _bad("Malformed Request-URI", err.detail) from None
    if uri.headers:
        raise _bad("Request-URI with headers", "§19.1.1: no URI headers in a Request-URI")
    _check_fields(req)
    if req.cseq.method != req.method:
        raise _bad(
            "CSeq method mismatch",
            f"CSeq method {req.cseq.method[:30]!r} differs from {req.method[:30]!r}",
        )
    if supported is not None and req.method not in ("ACK", "CANCEL"):
        known = {t.lower() for t in supported}
        missing = [t for t in req.headers.get_all("Require") if t.lower() not in known]
        if missing:
            raise BadExtension(f"unsupported option tags: {', '.join(missing)}", missing)


def validate_response(resp: Response) -> None:
    """Check a received response (§8.1.3, §18.1.2); on error the caller drops it.

    Raises:
        SipParseError: the response is malformed (its status code is irrelevant: responses
            are never answered).
    """
    _check_fields(resp)


def validate_message(msg: Request | Response, *, supported: Collection[str] | None = None) -> None:
    """:func:`validate_request` or :func:`validate_response`, by type."""
    if isinstance(msg, Request):
        validate_request(msg, supported=supported)
    else:
        validate_response(msg)
