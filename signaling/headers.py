"""Typed views of the structured SIP header fields (RFC 3261 §7.3, §20, §25; RFC 3581).

Small frozen dataclasses with ``parse(value)`` / ``__str__``: :class:`Via`, :class:`CSeq`,
:class:`NameAddr` (From, To, Contact, Route, Record-Route, Reply-To, Refer-To ...), plus the
generic-param parser and the auth-param parser/formatter used by digest authentication
(RFC 3261 §22, §25: ``challenge`` / ``credentials``).

Rules:

1. ``parse`` takes ONE header value: the message layer has already unfolded continuation
   lines and split list headers on top-level commas (``Headers.get_all``).
2. Every syntax problem raises :class:`SipParseError` (status 400); nothing else escapes.
3. Parameter values are kept as received (a quoted-string keeps its quotes, a value its
   %-escapes and case), so ``str(parse(x))`` is equivalent to ``x``. Lookups by name are
   case-insensitive (§7.3.1).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from .errors import SipParseError
from .grammar import TOKEN, is_host, is_ipv6, is_token, quote, unquote
from .uri import SipUri, parse_port

__all__ = [
    "MAGIC_COOKIE",
    "CSeq",
    "NameAddr",
    "Via",
    "format_auth_params",
    "format_params",
    "parse_auth_params",
    "parse_params",
]

Param = tuple[str, str | None]

#: RFC 3261 §8.1.1.7: branch values of RFC 3261 elements start with this.
MAGIC_COOKIE = "z9hG4bK"

_QSTR = r'"(?:[^"\\]|\\.)*"'
# generic-param = token [ EQUAL gen-value ]; gen-value = token / host / quoted-string.
# EQUAL and SEMI allow SWS around them. Values may also be a bare IPv6 address: RFC 5118
# §4.5 (``received=2001:db8::9:255``), hence ':' in the unquoted class.
_PARAM_RE = re.compile(
    rf"[ \t]*;[ \t]*({TOKEN})(?:[ \t]*=[ \t]*({_QSTR}|[A-Za-z0-9\-.!%*_+`'~:\[\]]+))?[ \t]*",
    re.S,
)
# sent-protocol = protocol-name SLASH protocol-version SLASH transport; sent-by = host [COLON port]
_VIA_RE = re.compile(
    rf"[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]*/[ \t]*({TOKEN})[ \t]+"
    r"(\[[^\]]*\]|[^ \t;:\[\]]+)(?:[ \t]*:[ \t]*([^ \t;]*))?[ \t]*"
)
_CSEQ_RE = re.compile(rf"[ \t]*([0-9]+)[ \t]+({TOKEN})[ \t]*")
_DISPLAY_TOKENS_RE = re.compile(rf"{TOKEN}(?:[ \t]+{TOKEN})*")
_QSTR_RE = re.compile(_QSTR, re.S)
_AUTH_SCHEME_RE = re.compile(rf"[ \t]*({TOKEN})(?:[ \t]+|$)")
_AUTH_PARAM_RE = re.compile(
    rf"[ \t]*({TOKEN})[ \t]*=[ \t]*({_QSTR}|{TOKEN})[ \t]*(,|$)", re.S
)
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_Q_RE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")


# -- parameters ---------------------------------------------------------------------------
def parse_params(text: str) -> tuple[Param, ...]:
    """``*( SEMI generic-param )`` -> ``((name, value | None), ...)``.

    ``text`` is what follows the main part of a header value: empty, or starting (after
    optional LWS) with ``;``. A leading ``;`` is added when missing so callers may pass
    either form.
    """
    if not text.lstrip(" \t").startswith(";") and text.strip(" \t"):
        text = ";" + text
    return _params(text)


def _params(text: str) -> tuple[Param, ...]:
    """Strict form of :func:`parse_params`: ``text`` must be empty or start with SEMI."""
    if not text or text.isspace():
        return ()
    out: list[Param] = []
    pos = 0
    n = len(text)
    match = _PARAM_RE.match
    while pos < n:
        m = match(text, pos)
        if m is None:
            raise SipParseError(f"bad header parameter near {text[pos : pos + 40]!r}")
        out.append((m.group(1), m.group(2)))
        pos = m.end()
    return tuple(out)


def format_params(params: tuple[Param, ...]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _get_param(params: tuple[Param, ...], name: str) -> str | None:
    key = name.lower()
    for k, v in params:
        if k.lower() == key:
            return v
    return None


def _has_param(params: tuple[Param, ...], name: str) -> bool:
    key = name.lower()
    return any(k.lower() == key for k, _ in params)


def _set_param(params: tuple[Param, ...], name: str, value: str | None) -> tuple[Param, ...]:
    key = name.lower()
    out: list[Param] = []
    done = False
    for k, v in params:
        if k.lower() == key:
            if not done:
                out.append((name, value))
                done = True
        else:
            out.append((k, v))
    if not done:
        out.append((name, value))
    return tuple(out)


# -- Via ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Via:
    """One Via value (§20.42): ``SIP/2.0/<transport> <host>[:<port>];params``."""

    transport: str
    host: str
    port: int | None
    params: tuple[Param, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Via:
        """Parse one via-parm (the message layer splits comma-separated Vias)."""
        m = _VIA_RE.match(value)
        if m is None:
            raise SipParseError(f"bad Via {value[:60]!r}")
        proto, version, transport, host, port_text = m.groups()
        if proto.upper() != "SIP" or version != "2.0":
            raise SipParseError(f"unsupported Via protocol {proto}/{version}")
        if not is_host(host):
            raise SipParseError(f"bad Via host {host[:60]!r}")
        port = parse_port(port_text, value) if port_text is not None else None
        params = _params(value[m.end() :])
        via = cls(transport.upper(), host, port, params)
        for k, v in params:  # check the typed parameters now: views never raise later
            lk = k.lower()
            if lk == "rport" and v is not None:
                parse_port(v, value)
            elif lk == "ttl" and (
                v is None or not (v.isascii() and v.isdigit()) or len(v) > 3 or int(v) > 255
            ):
                raise SipParseError(f"bad Via ttl {v!r}")
            elif lk == "received" and not (v and (is_host(v) or is_ipv6(v))):
                raise SipParseError(f"bad Via received {v!r}")
            elif lk in ("branch", "maddr") and not v:
                raise SipParseError(f"empty Via {lk}")
        return via

    def param(self, name: str) -> str | None:
        return _get_param(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    @property
    def branch(self) -> str | None:
        return _get_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return _get_param(self.params, "received")

    @property
    def rport(self) -> int | bool | None:
        """RFC 3581: None when absent, True when present without a value, else the port."""
        key = "rport"
        for k, v in self.params:
            if k.lower() == key:
                return True if v is None else int(v)
        return None

    @property
    def maddr(self) -> str | None:
        return _get_param(self.params, "maddr")

    @property
    def ttl(self) -> int | None:
        v = _get_param(self.params, "ttl")
        return int(v) if v is not None else None

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    @property
    def is_rfc3261_branch(self) -> bool:
        """§17.2.3: the branch starts with the magic cookie (and has more after it)."""
        b = self.branch
        return b is not None and b.startswith(MAGIC_COOKIE) and len(b) > len(MAGIC_COOKIE)

    def with_param(self, name: str, value: str | None) -> Via:
        return dataclasses.replace(self, params=_set_param(self.params, name, value))

    def with_received(self, host: str) -> Via:
        """§18.2.1: record the packet's source address (IPv6 without brackets is fine)."""
        return self.with_param("received", host)

    def with_rport(self, port: int) -> Via:
        """RFC 3581 §4: fill in the source port of the request."""
        return self.with_param("rport", str(port))

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"


# -- CSeq ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CSeq:
    """CSeq (§20.16): a sequence number below 2**31 (§8.1.1.5) and a method token."""

    seq: int
    method: str

    @classmethod
    def parse(cls, value: str) -> CSeq:
        m = _CSEQ_RE.fullmatch(value)
        if m is None:
            raise SipParseError(f"bad CSeq {value[:40]!r}")
        digits, method = m.groups()
        if len(digits) > 10 or int(digits) >= 2**31:
            raise SipParseError("CSeq number out of range", reason="Bad Request - CSeq too large")
        return cls(int(digits), method)

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


# -- name-addr / addr-spec ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NameAddr:
    """From, To, Contact, Route ... (§20.10, §20.20, §20.39): display name, URI, params.

    ``display`` is the unquoted display name (quoted-pairs resolved), or None. A Contact
    of ``*`` is ``NameAddr(None, None, (), is_wildcard=True)``. ``uri`` is None only then.
    """

    display: str | None
    uri: SipUri | None
    params: tuple[Param, ...] = ()
    is_wildcard: bool = False

    @classmethod
    def parse(cls, value: str) -> NameAddr:
        """Parse name-addr (``"Bob" <sip:b@h>;tag=x``) or addr-spec (``sip:b@h;tag=x``:
        there, §20.10, everything after the first ``;`` is a header parameter)."""
        s = value.strip(" \t")
        if not s:
            raise SipParseError("empty address")
        if s == "*":
            return cls(None, None, (), True)
        display: str | None = None
        rest: str | None = None
        if s[0] == '"':
            m = _QSTR_RE.match(s)
            if m is None:
                raise SipParseError("unterminated quoted display name")
            display = unquote(m.group())
            rest = s[m.end() :].lstrip(" \t")
            if not rest.startswith("<"):
                raise SipParseError("display name not followed by <URI>")
        else:
            lt = s.find("<")
            semi = s.find(";")
            if lt >= 0 and (semi < 0 or lt < semi):  # a ';' first means addr-spec + params
                dn = s[:lt].rstrip(" \t")
                if dn:
                    if _DISPLAY_TOKENS_RE.fullmatch(dn) is None:
                        raise SipParseError(f"bad display name {dn[:40]!r}")
                    display = dn
                rest = s[lt:]
        if rest is not None:
            gt = rest.find(">")
            if gt < 0:
                raise SipParseError("missing '>' after URI")
            uri = SipUri.parse(rest[1:gt], allow_other=True)
            ptext = rest[gt + 1 :]
        else:
            semi = s.find(";")
            uri_text = (s if semi < 0 else s[:semi]).rstrip(" \t")
            if "?" in uri_text or "," in uri_text:
                # §20.10: such a URI MUST be enclosed in <> (RFC 4475 §3.1.2.13 regbadct).
                raise SipParseError("URI with '?' or ',' outside <>")
            uri = SipUri.parse(uri_text, allow_other=True)
            ptext = "" if semi < 0 else s[semi:]
        return cls(display, uri, _params(ptext))

    def param(self, name: str) -> str | None:
        return _get_param(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    @property
    def tag(self) -> str | None:
        return _get_param(self.params, "tag")

    @property
    def expires(self) -> int | None:
        """Contact ``expires`` parameter (§10.2.1.1); None when absent."""
        v = _get_param(self.params, "expires")
        if v is None:
            return None
        if not v.isascii() or not v.isdigit():
            raise SipParseError(f"bad expires parameter {v[:20]!r}")
        # §20.19: a huge value means "as long as possible"; cap to 2**32-1 seconds.
        digits = v.lstrip("0")
        return min(int(digits[:11] or "0"), 2**32 - 1)

    @property
    def q(self) -> float | None:
        """Contact ``q`` (§20.10): qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )."""
        v = _get_param(self.params, "q")
        if v is None:
            return None
        if _Q_RE.fullmatch(v) is None:
            raise SipParseError(f"bad q value {v[:20]!r}")
        return float(v)

    def with_tag(self, tag: str) -> NameAddr:
        return dataclasses.replace(self, params=_set_param(self.params, "tag", tag))

    def with_param(self, name: str, value: str | None) -> NameAddr:
        return dataclasses.replace(self, params=_set_param(self.params, name, value))

    def __str__(self) -> str:
        if self.is_wildcard:
            return "*" + format_params(self.params)
        uri = str(self.uri)
        params = format_params(self.params)
        if self.display is not None:
            return f"{quote(self.display)} <{uri}>{params}"
        if any(c in uri for c in ";?,"):
            return f"<{uri}>{params}"
        return uri + params


# -- auth-params (WWW-Authenticate, Authorization, Proxy-*) -------------------------------
def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """``challenge`` / ``credentials`` (§25, RFC 7616 §3.3) -> (scheme, params).

    Names are lower-cased; quoted values are unquoted with quoted-pairs resolved (commas
    inside quotes are kept). A token68 credential (``Basic dXNlcg==``) comes back as
    ``{"token68": ...}``.
    """
    m = _AUTH_SCHEME_RE.match(value)
    if m is None:
        raise SipParseError(f"bad auth scheme in {value[:40]!r}")
    scheme = m.group(1)
    rest = value[m.end() :].strip(" \t")
    params: dict[str, str] = {}
    if not rest:
        return scheme, params
    if "=" not in rest.rstrip("=") and _TOKEN68_RE.fullmatch(rest):
        return scheme, {"token68": rest}
    pos = 0
    n = len(rest)
    while pos < n:
        pm = _AUTH_PARAM_RE.match(rest, pos)
        if pm is None:
            raise SipParseError(f"bad auth parameter near {rest[pos : pos + 40]!r}")
        name = pm.group(1).lower()
        if name in params:
            raise SipParseError(f"duplicate auth parameter {name!r}")
        raw = pm.group(2)
        params[name] = unquote(raw) if raw.startswith('"') else raw
        pos = pm.end()
        if pm.group(3) == "," and pos >= n:
            raise SipParseError("trailing comma in auth parameters")
    return scheme, params


def format_auth_params(scheme: str, params: dict[str, str], quoted: set[str]) -> str:
    """Inverse of :func:`parse_auth_params`: names in ``quoted`` get a quoted-string."""
    if not is_token(scheme):
        raise ValueError(f"bad auth scheme {scheme!r}")
    parts = []
    for k, v in params.items():
        if k in quoted:
            parts.append(f"{k}={quote(v)}")
        else:
            if not is_token(v):
                raise ValueError(f"auth parameter {k!r} needs quoting: {v!r}")
            parts.append(f"{k}={v}")
    return f"{scheme} " + ", ".join(parts)
