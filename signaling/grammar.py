"""RFC 3261 §25 ABNF as regular-expression fragments (internal; the h11 ``_abnf.py`` idea).

Each fragment quotes the ABNF it implements. They are compiled once at import and used by
:mod:`signaling.uri`, :mod:`signaling.headers` and :mod:`signaling.validate`. Rules:

1. Fragments match *text* (``str``), after the parser has unfolded LWS into single spaces.
2. Where RFC 3261 is stricter than deployed practice in a way that RFC 4475/5118 tell
   implementations to tolerate, the tolerance is written here, next to the rule, with the
   reason (e.g. ``received`` carrying a bracketed IPv6 reference, RFC 5118 §4.5).
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "ALPHANUM",
    "HNAME_RE",
    "HOSTNAME_RE",
    "HVALUE_RE",
    "IPV4_RE",
    "MARK",
    "PARAMCHAR_RE",
    "PASSWORD_RE",
    "QUOTED_STRING_RE",
    "SCHEME_RE",
    "TOKEN",
    "TOKEN_RE",
    "USER_RE",
    "is_host",
    "is_ipv4",
    "is_ipv6",
    "is_ipv6_reference",
    "is_token",
    "quote",
    "unquote",
]

# alphanum = ALPHA / DIGIT
ALPHANUM = "A-Za-z0-9"
# mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
MARK = r"\-_.!~*'()"
# unreserved = alphanum / mark
_UNRESERVED = ALPHANUM + MARK
# escaped = "%" HEXDIG HEXDIG
_ESCAPED = "%[0-9A-Fa-f]{2}"

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
TOKEN_RE = re.compile(TOKEN)
_TOKEN_FULL = TOKEN_RE.fullmatch

# user = 1*( unreserved / escaped / user-unreserved )
# user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
USER_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,;?/]|{_ESCAPED})+")
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
PASSWORD_RE = re.compile(rf"(?:[{_UNRESERVED}&=+$,]|{_ESCAPED})*")
# paramchar = param-unreserved / unreserved / escaped
# param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"
PARAMCHAR_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/:&+$]|{_ESCAPED})+")
# hname = 1*( hnv-unreserved / unreserved / escaped )
# hvalue = *( hnv-unreserved / unreserved / escaped )
# hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
HNAME_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESCAPED})+")
HVALUE_RE = re.compile(rf"(?:[{_UNRESERVED}\[\]/?:+$]|{_ESCAPED})*")
# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )   (RFC 3986 §3.1)
SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")

# IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT (each octet <= 255)
IPV4_RE = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")
# hostname = *( domainlabel "." ) toplabel [ "." ]
# domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum
# toplabel = ALPHA / ALPHA *( alphanum / "-" ) alphanum
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_TOPLABEL = r"[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(rf"(?:{_LABEL}\.)*{_TOPLABEL}\.?")
_HOSTNAME_FULL = HOSTNAME_RE.fullmatch


def is_token(s: str) -> bool:
    """True when ``s`` is a non-empty RFC 3261 ``token``."""
    return _TOKEN_FULL(s) is not None


def is_ipv4(s: str) -> bool:
    m = IPV4_RE.fullmatch(s)
    return m is not None and all(int(g) <= 255 for g in m.groups())


def is_ipv6(s: str) -> bool:
    """IPv6address per RFC 3261 §25 (RFC 5118 §4.4: exactly the RFC 4291 textual forms).

    ``ipaddress`` rejects the three-colon form ``2001:db8:::192.0.2.1`` that the original
    RFC 3261 ABNF accidentally allowed (RFC 5118 §4.5); so do we.
    """
    if not s or len(s) > 45 or "%" in s:
        return False
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return True


def is_ipv6_reference(s: str) -> bool:
    """IPv6reference = "[" IPv6address "]"."""
    return len(s) > 2 and s[0] == "[" and s[-1] == "]" and is_ipv6(s[1:-1])


def is_host(s: str) -> bool:
    """host = hostname / IPv4address / IPv6reference.

    An all-digits-and-dots string must be a valid IPv4 address (a hostname's toplabel
    starts with a letter), so ``1.2.3.256`` and ``1.2.3`` are rejected.
    """
    if _HOSTNAME_FULL(s) is not None:
        return True
    if s[:1] == "[":
        return is_ipv6_reference(s)
    return is_ipv4(s)


#: quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
#: qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
#: quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
QUOTED_STRING_RE = re.compile(r'"(?:[^"\\\r\n]|\\[^\r\n])*"')


def unquote(s: str) -> str:
    """Strip the DQUOTEs of a quoted-string and resolve its quoted-pairs."""
    inner = s[1:-1]
    if "\\" not in inner:
        return inner
    out: list[str] = []
    i = 0
    n = len(inner)
    while i < n:
        c = inner[i]
        if c == "\\" and i + 1 < n:
            out.append(inner[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def quote(s: str) -> str:
    """Make a quoted-string of ``s`` (escape ``"`` and ``\\``)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
