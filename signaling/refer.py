"""REFER (RFC 3515), Replaces (RFC 3891) and message/sipfrag (RFC 3420): the pure parts.

A call transfer (RFC 5589) is a REFER sent inside the transferor's dialog. Its Refer-To
names the transfer target; for an attended transfer the target URI carries an embedded
``Replaces`` header naming the dialog the target is to take over. The REFER creates an
implicit subscription to the ``refer`` event package, whose NOTIFYs carry the progress of
the referred call as a ``message/sipfrag`` status line.

Rules:

* Rule 1 -- exactly one Refer-To (RFC 3515 §2.4.1: "A REFER request MUST contain exactly
  one Refer-To header field value"); none, several, or a value that is not a SIP URI is a
  :class:`ReferError` (400). A Refer-To whose URI carries headers must be in name-addr
  form (``<...>``, RFC 3261 §20.10), since a bare ``?`` would end an addr-spec anyway.
* Rule 2 -- the embedded ``Replaces`` (RFC 3891 §6.1, §7.3 example) is %-escaped inside
  the URI (``;`` as ``%3B``, ``=`` as ``%3D``, ``@`` as ``%40``); it is unescaped, then
  parsed as ``callid *(";" replaces-param)`` with ``to-tag`` and ``from-tag`` both
  required and ``early-only`` a flag. Other embedded headers are kept, not interpreted.
* Rule 3 -- sipfrag bodies (RFC 3515 §2.4.5) hold at least the status line of the
  referred request's response: ``SIP/2.0 100 Trying``. NOTIFYs for a REFER carry
  ``Event: refer;id=<CSeq of the REFER>`` (§2.4.6: the id is needed when a dialog sees
  more than one REFER; we always send it) and ``Subscription-State`` ``active`` while the
  status is provisional and ``terminated;reason=noresource`` with the final one (§2.4.7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import RemoteSipError, SipParseError
from .headers import NameAddr
from .message import REASON_PHRASES
from .uri import SipUri, unescape

__all__ = [
    "SIPFRAG",
    "ReferError",
    "ReferTarget",
    "Replaces",
    "notify_headers",
    "parse_refer_to",
    "parse_sipfrag",
    "refer_target",
    "sipfrag",
]

SIPFRAG = "message/sipfrag;version=2.0"
"""Content-Type of the NOTIFY bodies (RFC 3420 §2, RFC 3515 §2.4.5)."""

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALLID_RE = re.compile(f"{_WORD}(?:@{_WORD})?")  # callid = word [ "@" word ] (§25.1)
_STATUS_LINE_RE = re.compile(r"SIP/2\.0 ([1-6][0-9][0-9]) ?([^\r\n]*)")


class ReferError(RemoteSipError):
    """A REFER we cannot act on because of what it says (400 unless stated)."""

    status_code = 400
    reason = "Bad Request"


@dataclass(frozen=True, slots=True)
class Replaces:
    """The Replaces header (RFC 3891 §6.1): which dialog a new call takes over.

    ``to_tag``/``from_tag`` are as seen by the sender of the INVITE with Replaces, i.e.
    the replaced dialog's remote and local tags from the *target's* point of view; a
    B2BUA that owns both ends of that dialog matches them in either order.
    """

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False

    @classmethod
    def parse(cls, value: str) -> Replaces:
        """Parse ``callid;to-tag=x;from-tag=y[;early-only]`` (already unescaped).

        Raises:
            ReferError: no Call-ID, a missing or empty tag, a malformed parameter.
        """
        parts = [p.strip(" \t") for p in value.strip(" \t").split(";")]
        call_id = parts[0]
        if not call_id or _CALLID_RE.fullmatch(call_id) is None:
            raise ReferError(f"Replaces has a bad Call-ID {call_id[:60]!r}")
        tags: dict[str, str] = {}
        early_only = False
        for part in parts[1:]:
            name, eq, val = part.partition("=")
            name = name.strip(" \t").lower()
            val = val.strip(" \t")
            if name == "early-only" and not eq:
                early_only = True
            elif name in ("to-tag", "from-tag") and eq and _TOKEN_RE.fullmatch(val):
                if name in tags:
                    raise ReferError(f"Replaces repeats {name}")
                tags[name] = val
            elif eq and _TOKEN_RE.fullmatch(name) and _TOKEN_RE.fullmatch(val or "x"):
                continue  # generic-param: allowed, not interpreted (§6.1)
            else:
                raise ReferError(f"Replaces has a bad parameter {part[:60]!r}")
        if "to-tag" not in tags or "from-tag" not in tags:
            raise ReferError("Replaces needs both to-tag and from-tag (RFC 3891 §6.1)")
        return cls(call_id, tags["to-tag"], tags["from-tag"], early_only)

    def __str__(self) -> str:
        early = ";early-only" if self.early_only else ""
        return f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}{early}"

    def escaped(self) -> str:
        """The value as it goes into a URI header (Rule 2), e.g. in a Refer-To."""
        out = []
        for ch in str(self):
            out.append(ch if ch.isalnum() or ch in "-_.!~*'()" else f"%{ord(ch):02X}")
        return "".join(out)


@dataclass(frozen=True, slots=True)
class ReferTarget:
    """A parsed Refer-To: the target URI (headers removed), its display name, the
    embedded Replaces when the transfer is attended, and any other embedded headers."""

    uri: SipUri
    display: str | None = None
    replaces: Replaces | None = None
    other_headers: tuple[tuple[str, str], ...] = ()

    @property
    def user(self) -> str:
        """The number or user to transfer to (the URI's user part, unescaped)."""
        if self.uri.scheme == "tel":
            return self.uri.number or ""
        return self.uri.unescaped_user() or ""

    @property
    def attended(self) -> bool:
        return self.replaces is not None


def parse_refer_to(value: str) -> ReferTarget:
    """Parse one Refer-To value (Rules 1 and 2).

    Raises:
        ReferError: not a name-addr/addr-spec, not a sip/sips/tel URI, bad Replaces.
    """
    try:
        addr = NameAddr.parse(value)
    except SipParseError as exc:
        raise ReferError(f"bad Refer-To: {exc.detail}") from None
    if addr.uri is None or addr.is_wildcard:
        raise ReferError("Refer-To must name a URI")
    uri = addr.uri
    if uri.scheme not in ("sip", "sips", "tel"):
        raise ReferError(f"Refer-To scheme {uri.scheme!r} cannot be transferred to",
                         status_code=416, reason="Unsupported URI Scheme")
    replaces: Replaces | None = None
    others: list[tuple[str, str]] = []
    for name, raw in uri.headers:
        if name.lower() == "replaces":
            if replaces is not None:
                raise ReferError("Refer-To carries two Replaces headers")
            replaces = Replaces.parse(unescape(raw))
        else:
            others.append((name, raw))
    return ReferTarget(uri.without_params().replace(params=uri.params), addr.display,
                       replaces, tuple(others))


def refer_target(values: list[str]) -> ReferTarget:
    """The one Refer-To of a REFER from its header values (Rule 1).

    Raises:
        ReferError: no Refer-To, or more than one.
    """
    if not values:
        raise ReferError("REFER without Refer-To (RFC 3515 §2.4.1)",
                         reason="Missing Refer-To")
    if len(values) > 1:
        raise ReferError("REFER with more than one Refer-To (RFC 3515 §2.4.1)")
    return parse_refer_to(values[0])


def sipfrag(status: int, reason: str | None = None) -> bytes:
    """A minimal sipfrag body: the referred request's response status line (Rule 3)."""
    if not 100 <= status <= 699:
        raise ValueError(f"not a SIP status: {status}")
    phrase = reason if reason is not None else REASON_PHRASES.get(status, "")
    return f"SIP/2.0 {status} {phrase}\r\n".encode()


def parse_sipfrag(body: bytes) -> tuple[int, str]:
    """The status and reason of a sipfrag body that starts with a status line.

    Raises:
        ReferError: the body does not start with ``SIP/2.0 <status>``.
    """
    text = body.decode("utf-8", "replace")
    m = _STATUS_LINE_RE.match(text)
    if m is None:
        raise ReferError("sipfrag does not start with a SIP status line")
    return int(m.group(1)), m.group(2).strip()


def notify_headers(refer_cseq: int, status: int, *, expires_s: int = 60) -> list[tuple[str, str]]:
    """Event and Subscription-State of a NOTIFY reporting ``status`` (Rule 3)."""
    state = f"active;expires={expires_s}" if status < 200 else "terminated;reason=noresource"
    return [("Event", f"refer;id={refer_cseq}"), ("Subscription-State", state)]
