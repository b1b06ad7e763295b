"""Telephone number normalization for trunks: rewrite rules, E.164 and caller-ID presentation.

Pure functions over strings; no I/O, no clock. The numbering facts come from ITU-T E.164
(at most 15 digits after "+", country code first) and the Chinese national numbering plan
(country code 86, trunk prefix "0", international prefix "00", mobile numbers of 11 digits
starting 13-19 that are dialed without the trunk prefix, landline area codes of 2 or 3
digits such as 10 Beijing, 21 Shanghai, 755 Shenzhen).

Rules of this module:

* Rule 1 -- numbers are cleaned first: RFC 3966 §5.1.1 visual separators (space, "-", ".",
  "(", ")") are removed; what remains must be "+" then digits, or digits (with "*" and "#"
  allowed in dialed strings). Anything else raises :class:`NumberError`.
* Rule 2 -- rewrite rules are tried in order and the **first** that matches is applied
  (strip N leading digits, then prepend), like a dial plan: order specific rules first.
  No rule matching leaves the number as it is. The "9" exit digit of a PBX is removed by
  the dial plan before a number reaches a trunk; a rule ``prefix="9", strip=1`` does the
  same for numbers that arrive with it.
* Rule 3 -- E.164 conversion never guesses: a national number it cannot place (a short
  service code such as 110 or 95555, a local number without a configured area code) raises
  :class:`NumberError` instead of producing a wrong international number.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "CallerId",
    "CallerIdMode",
    "CallerIdPolicy",
    "NumberError",
    "NumberFormat",
    "NumberRule",
    "clean_number",
    "format_number",
    "from_e164",
    "is_emergency",
    "normalize",
    "present_caller_id",
    "to_e164",
]

logger = logging.getLogger(__name__)

_VISUAL = str.maketrans("", "", " -.()")
_DIALED_RE = re.compile(r"\+?[0-9*#]+")
_MOBILE_CN_RE = re.compile(r"1[3-9]\d{9}")
"""Chinese mobile numbers: 11 digits, 13x-19x (MIIT numbering plan)."""
_E164_MAX_DIGITS = 15
"""ITU-T E.164 §6.2.1: at most 15 digits including the country code."""
EMERGENCY_CN = frozenset({"110", "112", "119", "120", "122"})
"""Chinese emergency numbers (police, GSM emergency, fire, ambulance, traffic accidents)."""


class NumberError(ValueError):
    """A number that cannot be cleaned or converted; the message says why."""


def clean_number(number: str) -> str:
    """Rule 1: remove visual separators; "+digits" or a dial string of digits, * and #.

    Raises:
        NumberError: empty, or characters other than digits, * and # (and a leading +).
    """
    cleaned = number.strip().translate(_VISUAL)
    if not cleaned or _DIALED_RE.fullmatch(cleaned) is None or cleaned == "+":
        raise NumberError(f"not a telephone number: {number[:40]!r}")
    return cleaned


@dataclass(frozen=True, slots=True)
class NumberRule:
    """One rewrite rule (Rule 2): when ``prefix`` and ``pattern`` match, strip then prepend.

    An empty ``prefix`` and empty ``pattern`` match every number (a catch-all last rule).
    """

    prefix: str = ""
    """The number must start with this literal string ("" = any)."""
    pattern: str = ""
    """A regular expression the whole (cleaned) number must match ("" = any)."""
    strip: int = 0
    """Leading characters removed when the rule applies."""
    prepend: str = ""
    """Added in front after stripping."""
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.strip < 0:
            raise ValueError("strip must be >= 0")
        if self.pattern:
            try:
                compiled = re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"bad pattern {self.pattern!r}: {exc}") from None
            object.__setattr__(self, "_regex", compiled)

    def matches(self, number: str) -> bool:
        if self.prefix and not number.startswith(self.prefix):
            return False
        return self._regex is None or self._regex.fullmatch(number) is not None

    def apply(self, number: str) -> str:
        return self.prepend + number[self.strip:]


def normalize(number: str, rules: Sequence[NumberRule]) -> str:
    """Clean ``number`` and apply the first matching rule (Rule 2).

    Raises:
        NumberError: the number is not a dial string, or a rule stripped it to nothing.
    """
    cleaned = clean_number(number)
    for rule in rules:
        if rule.matches(cleaned):
            out = rule.apply(cleaned)
            if not out:
                raise NumberError(f"rule {rule} leaves nothing of {number!r}")
            return out
    return cleaned


def is_emergency(number: str, emergency: frozenset[str] = EMERGENCY_CN) -> bool:
    """True for an emergency short code (after cleaning); never blocked by trunk policy."""
    try:
        return clean_number(number) in emergency
    except NumberError:
        return False


def to_e164(
    number: str,
    country: str = "86",
    *,
    area_code: str = "",
    national_prefix: str = "0",
    international_prefix: str = "00",
) -> str:
    """A dialed or national number in E.164 form ("+8613812345678"), Rule 3.

    * "+..." is kept; "00" + digits is international ("+" + digits).
    * "0" + digits is national: the trunk prefix is replaced by "+" + ``country``.
    * A Chinese mobile number (11 digits, 13-19) gets "+86" without a trunk prefix.
    * Any other number of 7 or 8 digits is local: it needs ``area_code``.

    Raises:
        NumberError: a service code, a local number without area code, or too many digits.
    """
    n = clean_number(number)
    if "*" in n or "#" in n:
        raise NumberError(f"{number!r} is a feature code, not a telephone number")
    if n.startswith("+"):
        out = n
    elif international_prefix and n.startswith(international_prefix):
        out = "+" + n[len(international_prefix):]
    elif national_prefix and n.startswith(national_prefix):
        out = f"+{country}{n[len(national_prefix):]}"
    elif country == "86" and _MOBILE_CN_RE.fullmatch(n):
        out = f"+86{n}"
    elif 7 <= len(n) <= 8 and area_code:
        out = f"+{country}{area_code}{n}"
    elif 7 <= len(n) <= 8:
        raise NumberError(f"{number!r} is a local number: set an area code to convert it")
    else:
        raise NumberError(f"{number!r} is a service or short code with no E.164 form")
    digits = out[1:]
    if not digits.isdigit() or len(digits) > _E164_MAX_DIGITS or len(digits) < 7:
        raise NumberError(f"{number!r} does not fit E.164 (7 to 15 digits)")
    return out


def from_e164(
    e164: str,
    country: str = "86",
    *,
    national_prefix: str = "0",
    international_prefix: str = "00",
) -> str:
    """The number as dialed inside ``country``: the inverse of :func:`to_e164`.

    "+8613812345678" -> "13812345678" (mobiles take no trunk prefix), "+862161234567" ->
    "02161234567", "+14155550100" -> "0014155550100". A number without "+" is returned
    cleaned (it is already national).
    """
    n = clean_number(e164)
    if not n.startswith("+"):
        return n
    digits = n[1:]
    if digits.startswith(country):
        national = digits[len(country):]
        if country == "86" and _MOBILE_CN_RE.fullmatch(national):
            return national
        return national_prefix + national
    return international_prefix + digits


class NumberFormat(enum.Enum):
    """How a trunk wants numbers (Request-URI user part, caller ID) written."""

    AS_IS = "as-is"
    """After the rewrite rules, untouched."""
    E164 = "e164"
    """"+8613812345678" (RFC 3966 global number)."""
    E164_DIGITS = "e164-digits"
    """"8613812345678": E.164 without "+", as some carriers want it."""
    NATIONAL = "national"
    """"13812345678", "02161234567": national dialing form."""


def format_number(
    number: str, fmt: NumberFormat, country: str = "86", *, area_code: str = ""
) -> str:
    """Write an already rewritten number in the trunk's format.

    Raises:
        NumberError: E.164 conversion impossible (Rule 3).
    """
    if fmt is NumberFormat.AS_IS:
        return clean_number(number)
    if fmt is NumberFormat.NATIONAL:
        n = clean_number(number)
        if n.startswith("+"):
            return from_e164(n, country)
        return n
    e164 = to_e164(number, country, area_code=area_code)
    return e164 if fmt is NumberFormat.E164 else e164[1:]


# --- caller-ID presentation -------------------------------------------------------------


class CallerIdMode(enum.Enum):
    """Where the calling number sent to a carrier comes from."""

    PASS_THROUGH = "pass-through"
    """The caller's own number (an inbound caller forwarded out keeps theirs)."""
    FIXED = "fixed"
    """Always ``number`` (the hotline's main number)."""
    PER_USER = "per-user"
    """``per_user[user]``, falling back to ``number`` for users not in the map."""


@dataclass(frozen=True, slots=True)
class CallerIdPolicy:
    """Caller-ID presentation towards one trunk."""

    mode: CallerIdMode = CallerIdMode.PASS_THROUGH
    number: str = ""
    """The fixed number, and the fallback for PER_USER and for PASS_THROUGH of internal
    extensions (a carrier rejects or rewrites calls that present a bare extension)."""
    per_user: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Authenticated user name -> presented number (PER_USER)."""
    fmt: NumberFormat = NumberFormat.AS_IS
    """Format of the presented number."""
    min_external_digits: int = 7
    """Shorter numbers are internal extensions and are never presented to a carrier."""


@dataclass(frozen=True, slots=True)
class CallerId:
    """What to present: number (None when nothing presentable) and RFC 3323 privacy."""

    number: str | None
    private: bool = False
    """True: send ``Privacy: id`` (RFC 3323 §4.2) and an anonymous From (RFC 3325 §9.1);
    the number still goes in P-Asserted-Identity towards a trusted carrier."""


def present_caller_id(
    policy: CallerIdPolicy,
    *,
    user: str | None,
    caller_number: str | None,
    private: bool = False,
    country: str = "86",
    area_code: str = "",
) -> CallerId:
    """The caller ID a call through the trunk presents.

    Args:
        policy: the trunk's presentation policy.
        user: the authenticated user placing the call (None when forwarded from a trunk).
        caller_number: the caller's number as we received it (pass-through).
        private: the caller asked for privacy (kept through every mode).
    """
    if policy.mode is CallerIdMode.PER_USER and user is not None:
        chosen: str | None = policy.per_user.get(user) or policy.number
    elif policy.mode is CallerIdMode.PASS_THROUGH:
        chosen = caller_number
        if chosen is None or _is_internal(chosen, policy.min_external_digits):
            chosen = policy.number or None
    else:
        chosen = policy.number
    if not chosen:
        return CallerId(None, private)
    try:
        return CallerId(format_number(chosen, policy.fmt, country, area_code=area_code),
                        private)
    except NumberError as exc:
        logger.warning("caller ID %r cannot be presented: %s", chosen, exc)
        if policy.number and chosen != policy.number:
            return present_caller_id(
                CallerIdPolicy(CallerIdMode.FIXED, policy.number, fmt=policy.fmt),
                user=user, caller_number=None, private=private, country=country,
                area_code=area_code)
        return CallerId(None, private)


def _is_internal(number: str, min_digits: int) -> bool:
    try:
        n = clean_number(number)
    except NumberError:
        return True
    return not n.startswith("+") and len(n) < min_digits
