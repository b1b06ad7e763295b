"""SIP, SIPS and TEL URIs (RFC 3261 §19.1, §25; RFC 3966), and other schemes as opaque text.

One frozen class, :class:`SipUri`, covers the three schemes a softswitch routes on:

* ``sip:``/``sips:`` -- ``user``, ``password``, ``host``, ``port``, ``params``, ``headers``.
* ``tel:`` (RFC 3966) -- ``user`` is None, ``host`` is ``""`` and the subscriber number
  (``+1-212-555-0101`` or a local number) is in ``number``; its parameters (``ext``,
  ``isub``, ``phone-context``) are in ``params``. One class rather than a separate TelUri
  keeps ``Request.uri_parsed`` and ``NameAddr.uri`` one type for callers.
* any other scheme (``http:``, ``urn:``, ``isbn:`` ... legal in From/To/Contact, RFC 4475
  §3.3.2) -- only when the caller passes ``allow_other=True``: ``opaque`` holds everything
  after the colon. Without it an unknown scheme raises :class:`UnsupportedUriScheme`
  (416, §8.2.2.1), which is what a UAS wants for a Request-URI.

Text is kept as received: ``user``, ``params`` and ``headers`` keep their %-escapes, so
``str(uri)`` reproduces the input (modulo scheme case). :meth:`SipUri.equivalent`
implements the §19.1.4 comparison (escapes, case rules, "parameters in both must match",
``user/ttl/method/maddr/transport`` must be in both or neither, headers must all match).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from .errors import SipParseError, UnsupportedUriScheme
from .grammar import (
    HNAME_RE,
    HVALUE_RE,
    PARAMCHAR_RE,
    PASSWORD_RE,
    SCHEME_RE,
    USER_RE,
    is_host,
)

__all__ = ["SipUri", "unescape"]

Param = tuple[str, str | None]

_ESC_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()"
)
_FORBIDDEN_SEARCH = re.compile(r'[ \t\r\n<>"\x00]').search
# RFC 3966: global-number-digits = "+" *phonedigit DIGIT *phonedigit,
# local-number-digits = *phonedigit-hex (HEXDIG / "*" / "#") *phonedigit-hex
_TEL_GLOBAL_RE = re.compile(r"\+[0-9\-.()]*[0-9][0-9\-.()]*")
_TEL_LOCAL_RE = re.compile(r"[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*")
_TEL_VISUAL = str.maketrans("", "", "-.()")
#: Memo of parsed URIs (they are immutable): the same AORs, contacts and Request-URIs come
#: back in every request of a dialog and every REGISTER refresh. Bounded; cleared when full.
_MEMO: dict[str, SipUri] = {}
_MEMO_MAX = 4096
_MEMO_MAX_LEN = 256
#: §19.1.4: these parameters must appear in both URIs or in neither.
_MUST_MATCH = ("user", "ttl", "method", "maddr", "transport")


def unescape(s: str) -> str:
    """Resolve every %-escape (RFC 3261 §25 ``escaped``); invalid ones are left as is."""
    if "%" not in s:
        return s
    return _ESC_RE.sub(lambda m: chr(int(m.group(1), 16)), s)


def _normalize_escapes(s: str) -> str:
    """§19.1.4: an escaped unreserved character equals the character itself; escaped
    reserved characters stay escaped (``%3a`` ≠ ``:``), with upper-case hex."""
    if "%" not in s:
        return s

    def sub(m: re.Match[str]) -> str:
        c = chr(int(m.group(1), 16))
        return c if c in _UNRESERVED else "%" + m.group(1).upper()

    return _ESC_RE.sub(sub, s)


def _parse_params(text: str, uri: str) -> tuple[Param, ...]:
    """uri-parameters = *( ";" uri-parameter ); ``text`` starts after the first ';'."""
    out: list[Param] = []
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        if PARAMCHAR_RE.fullmatch(name) is None:
            raise SipParseError(f"bad URI parameter {part[:40]!r} in {uri[:60]!r}")
        if eq:
            if PARAMCHAR_RE.fullmatch(value) is None:
                raise SipParseError(f"bad URI parameter value {part[:40]!r}")
            out.append((name, value))
        else:
            out.append((name, None))
    return tuple(out)


def _parse_headers(text: str, uri: str) -> tuple[tuple[str, str], ...]:
    """headers = "?" header *( "&" header ); header = hname "=" hvalue."""
    out: list[tuple[str, str]] = []
    for part in text.split("&"):
        name, eq, value = part.partition("=")
        if not eq or HNAME_RE.fullmatch(name) is None or HVALUE_RE.fullmatch(value) is None:
            raise SipParseError(f"bad URI header {part[:40]!r} in {uri[:60]!r}")
        out.append((name, value))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SipUri:
    """A parsed URI; see the module docstring for how tel: and other schemes are held."""

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None
    params: tuple[Param, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    number: str | None = None
    opaque: str | None = None

    # -- parsing ---------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, *, allow_other: bool = False) -> SipUri:
        """Parse a URI (no surrounding ``<>``, no LWS inside).

        Raises:
            UnsupportedUriScheme: a syntactically valid scheme other than sip/sips/tel,
                unless ``allow_other`` (status 416, RFC 3261 §8.2.2.1).
            SipParseError: anything else that is not a URI (status 400).
        """
        hit = _MEMO.get(text) if type(text) is str else None
        if hit is not None and (allow_other or hit.opaque is None):
            return hit
        uri = cls._parse(text, allow_other)
        if len(text) <= _MEMO_MAX_LEN:
            if len(_MEMO) >= _MEMO_MAX:
                _MEMO.clear()
            _MEMO[text] = uri
        return uri

    @classmethod
    def _parse(cls, text: str, allow_other: bool) -> SipUri:
        if not isinstance(text, str):
            raise SipParseError("URI is not text")
        scheme, colon, rest = text.partition(":")
        if not colon or SCHEME_RE.fullmatch(scheme) is None:
            raise SipParseError(f"not a URI: {text[:60]!r}")
        if _FORBIDDEN_SEARCH(rest) is not None:
            raise SipParseError(f"white space or delimiter inside URI {text[:60]!r}")
        low = scheme.lower()
        if low == "sip" or low == "sips":
            return cls._parse_sip(low, rest, text)
        if low == "tel":
            return cls._parse_tel(rest, text)
        if not allow_other:
            raise UnsupportedUriScheme(f"unsupported URI scheme {scheme[:20]!r}")
        if not rest:
            raise SipParseError(f"empty URI after scheme {scheme[:20]!r}")
        return cls(low, None, None, "", None, opaque=rest)

    @classmethod
    def _parse_sip(cls, scheme: str, rest: str, text: str) -> SipUri:
        user: str | None = None
        password: str | None = None
        at = rest.find("@")
        if at >= 0:
            userinfo, hostpart = rest[:at], rest[at + 1 :]
            u, colon, pw = userinfo.partition(":")
            if USER_RE.fullmatch(u) is None:
                raise SipParseError(f"bad user part in {text[:60]!r}")
            user = u
            if colon:
                if PASSWORD_RE.fullmatch(pw) is None:
                    raise SipParseError(f"bad password in {text[:60]!r}")
                password = pw
        else:
            hostpart = rest
        headers: tuple[tuple[str, str], ...] = ()
        q = hostpart.find("?")
        if q >= 0:
            headers = _parse_headers(hostpart[q + 1 :], text)
            hostpart = hostpart[:q]
        params: tuple[Param, ...] = ()
        s = hostpart.find(";")
        if s >= 0:
            params = _parse_params(hostpart[s + 1 :], text)
            hostpart = hostpart[:s]
        host, port = _split_hostport(hostpart, text)
        return cls(scheme, user, password, host, port, params, headers)

    @classmethod
    def _parse_tel(cls, rest: str, text: str) -> SipUri:
        number, semi, ptext = rest.partition(";")
        if number.startswith("+"):
            ok = _TEL_GLOBAL_RE.fullmatch(number) is not None
        else:
            ok = _TEL_LOCAL_RE.fullmatch(number) is not None
        if not ok:
            raise SipParseError(f"bad telephone number in {text[:60]!r}")
        params = _parse_params(ptext, text) if semi else ()
        return cls("tel", None, None, "", None, params, (), number=number)

    # -- views -----------------------------------------------------------------------
    def param(self, name: str, default: str | None = None) -> str | None:
        """Value of a URI parameter (case-insensitive name); ``default`` when absent or
        valueless (use :meth:`has_param` for flags like ``lr``)."""
        key = name.lower()
        for k, v in self.params:
            if _pname(k) == key:
                return v if v is not None else default
        return default

    def has_param(self, name: str) -> bool:
        """Whether the parameter is present; names compare case-insensitively and with
        %-escapes resolved (``%6C%72`` is ``lr``, RFC 4475 §3.1.1.3)."""
        key = name.lower()
        return any(_pname(k) == key for k, _ in self.params)

    @property
    def transport(self) -> str | None:
        v = self.param("transport")
        return unescape(v).lower() if v else None

    @property
    def lr(self) -> bool:
        """Loose-routing flag (RFC 3261 §16.12.1.1)."""
        return self.has_param("lr")

    @property
    def maddr(self) -> str | None:
        v = self.param("maddr")
        return unescape(v) if v else None

    @property
    def user_param(self) -> str | None:
        v = self.param("user")
        return unescape(v).lower() if v else None

    @property
    def is_sips(self) -> bool:
        return self.scheme == "sips"

    def unescaped_user(self) -> str | None:
        """``user`` with %-escapes resolved (what a registrar compares, §10.3 step 5)."""
        return unescape(self.user) if self.user is not None else None

    def host_port(self) -> tuple[str, int | None]:
        return self.host, self.port

    def canonical_aor(self) -> str:
        """Address-of-record key of §10.3 step 5: scheme, unescaped user, lower-cased host
        and port; every parameter and header dropped."""
        if self.scheme == "tel":
            return "tel:" + (self.number or "").translate(_TEL_VISUAL)
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        user = f"{unescape(self.user)}@" if self.user is not None else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}:{user}{self.host.lower()}{port}"

    # -- building --------------------------------------------------------------------
    def replace(self, **changes: object) -> SipUri:
        """A copy with fields replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def with_params(self, **params: str | bool | None) -> SipUri:
        """A copy with parameters set: a string sets ``name=value``, ``True``/``None``
        sets a flag (``lr``), ``False`` removes. Names use ``_`` for ``-``."""
        out = list(self.params)
        for raw_name, value in params.items():
            name = raw_name.replace("_", "-")
            key = name.lower()
            out = [(k, v) for k, v in out if _pname(k) != key]
            if value is False:
                continue
            out.append((name, None if value is True or value is None else str(value)))
        return dataclasses.replace(self, params=tuple(out))

    def without_params(self) -> SipUri:
        return dataclasses.replace(self, params=(), headers=())

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        parts: list[str] = [self.scheme, ":"]
        if self.scheme == "tel":
            parts.append(self.number or "")
        else:
            if self.user is not None:
                parts.append(self.user)
                if self.password is not None:
                    parts.append(":" + self.password)
                parts.append("@")
            parts.append(self.host)
            if self.port is not None:
                parts.append(f":{self.port}")
        for k, v in self.params:
            parts.append(f";{k}" if v is None else f";{k}={v}")
        if self.headers:
            parts.append("?" + "&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(parts)

    # -- comparison ------------------------------------------------------------------
    def equivalent(self, other: SipUri) -> bool:
        """URI equality of RFC 3261 §19.1.4 (tel: per RFC 3966 §4)."""
        if self.scheme != other.scheme:
            return False
        if self.opaque is not None or other.opaque is not None:
            return self.opaque == other.opaque
        if self.scheme == "tel":
            a = (self.number or "").translate(_TEL_VISUAL).lower()
            b = (other.number or "").translate(_TEL_VISUAL).lower()
            return a == b and _params_dict(self) == _params_dict(other)
        if _norm_opt(self.user) != _norm_opt(other.user):
            return False
        if _norm_opt(self.password) != _norm_opt(other.password):
            return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        pa, pb = _params_dict(self), _params_dict(other)
        for name in _MUST_MATCH:
            if (name in pa) != (name in pb):
                return False
        for name in pa.keys() & pb.keys():
            if pa[name] != pb[name]:
                return False
        return _headers_dict(self) == _headers_dict(other)


def _pname(name: str) -> str:
    return unescape(name).lower() if "%" in name else name.lower()


def _norm_opt(s: str | None) -> str | None:
    return _normalize_escapes(s) if s is not None else None


def _params_dict(u: SipUri) -> dict[str, str | None]:
    return {
        _normalize_escapes(k).lower(): (_normalize_escapes(v).lower() if v is not None else None)
        for k, v in u.params
    }


def _headers_dict(u: SipUri) -> dict[str, str]:
    return {_normalize_escapes(k).lower(): _normalize_escapes(v).lower() for k, v in u.headers}


def _split_hostport(hostport: str, text: str) -> tuple[str, int | None]:
    """hostport = host [ ":" port ]; an IPv6 host is kept with its brackets."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SipParseError(f"unterminated IPv6 reference in {text[:60]!r}")
        host, tail = hostport[: end + 1], hostport[end + 1 :]
        if tail and not tail.startswith(":"):
            raise SipParseError(f"junk after IPv6 reference in {text[:60]!r}")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text_raw = hostport.partition(":")
        port_text = port_text_raw if colon else None
    if not is_host(host):
        raise SipParseError(f"bad host {host[:60]!r}")
    if port_text is None:
        return host, None
    return host, parse_port(port_text, text)


def parse_port(port_text: str, context: str = "") -> int:
    """port = 1*DIGIT, in 0..65535 (a larger value cannot be a transport port)."""
    if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise SipParseError(f"bad port {port_text[:10]!r} in {context[:60]!r}")
    port = int(port_text)
    if port > 65535:
        raise SipParseError(f"port {port} out of range")
    return port
