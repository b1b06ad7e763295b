"""``[trunks.<name>]``: one SIP trunk to a carrier per table (STYLE.md §4.7).

A trunk is used in both directions:

* outbound -- we send calls (later, through the B2BUA) and REGISTER to the carrier's
  ``host``/``port``, or through ``outbound_proxy`` when one is set (RFC 3261 §8.1.2: the
  proxy is the next hop, the Request-URI still names the carrier);
* inbound -- a request is recognised as coming *from* the trunk by its source address
  (``allowed_sources``), never by digest: carriers do not answer our challenges. The called
  number (DID) picks a target through ``did_map`` (:mod:`.inbound` resolves the name).

Rules (the same as :mod:`switch.config`): every mistake raises
:class:`~switch.config.ConfigError` naming ``trunks.<name>.<key>``; unknown keys are
errors; each :class:`TrunkConfig` validates itself in ``__post_init__``. The password is
never part of ``repr()`` and never logged.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from signaling.errors import SipParseError
from signaling.events import Address
from signaling.transport import default_port, uri_address
from signaling.uri import SipUri
from switch.config import ConfigError

from .numbers import (
    CallerIdMode,
    CallerIdPolicy,
    NumberError,
    NumberFormat,
    NumberRule,
    clean_number,
    format_number,
    to_e164,
)

__all__ = ["TRUNK_TRANSPORTS", "TrunkConfig", "parse_trunks"]

TRUNK_TRANSPORTS = ("udp", "tcp", "tls")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _frozen_map(m: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True, slots=True)
class TrunkConfig:
    """One SIP trunk. Field docstrings give the TOML key's meaning."""

    name: str
    """The table name (``[trunks.<name>]``); dial plan targets say ``trunk:<name>``."""
    enabled: bool = True
    """A disabled trunk neither registers nor carries calls, and is not recognised inbound."""
    host: str = ""
    """The carrier's registrar / SIP server (IP address or host name), also the domain of
    the Request-URI of REGISTER and of outbound calls."""
    port: int = 0
    """Its port; 0 = the transport's default (5060, 5061 for TLS; RFC 3261 §19.1.2)."""
    transport: str = "udp"
    """"udp", "tcp" or "tls"."""
    outbound_proxy: str = ""
    """A SIP URI every request to this trunk is sent to (e.g. the carrier's SBC), "" =
    none: requests go straight to host:port."""
    username: str = ""
    """The account (often the main DID): user part of From/To of REGISTER and Contact."""
    auth_username: str = ""
    """Digest user name when it differs from ``username``; "" = ``username``."""
    password: str = field(default="", repr=False)
    """Digest password. Never logged, never in repr()."""
    realm: str = ""
    """When set, credentials are only given to challenges of exactly this realm (a
    challenge from anything else fails the registration instead of leaking a response)."""
    register: bool = False
    """Whether we REGISTER to the carrier (needed by carriers that route DIDs to the
    registered contact; IP-authenticated trunks do not register)."""
    register_expires_s: int = 3600
    """Expires asked for; the carrier's grant (Contact expires / Expires) is what counts."""
    from_user: str = ""
    """User part of From on calls out; "" = ``username``."""
    from_domain: str = ""
    """Host part of From/To; "" = ``host``."""
    country_code: str = "86"
    """Country of the numbers this trunk carries (E.164 conversion)."""
    area_code: str = ""
    """Area code added to 7-8 digit local numbers when converting to E.164 ("21")."""
    number_format: NumberFormat = NumberFormat.AS_IS
    """How the called number is written in the Request-URI: "as-is", "e164",
    "e164-digits" or "national"."""
    outbound_rules: tuple[NumberRule, ...] = ()
    """Rewrite rules for called numbers, first match wins (``{prefix=, pattern=, strip=,
    prepend=}`` tables), applied before ``number_format``."""
    caller_id: CallerIdPolicy = field(default_factory=CallerIdPolicy, hash=False)
    """Caller-ID presentation (keys ``caller_id_mode``, ``caller_id_number``,
    ``caller_id_map``, ``caller_id_format`` in TOML)."""
    did_map: Mapping[str, str] = field(default_factory=_frozen_map, hash=False)
    """Called number -> target name ("ivr:hotline", "queue:billing", "user:1001"); keys
    are stored in E.164 when convertible, so "021 6123 4567" and "+862161234567" match."""
    allowed_sources: tuple[IpNetwork, ...] = ()
    """IP addresses / CIDR blocks inbound requests from this trunk come from. Empty: the
    host and the outbound proxy, when they are IP literals."""
    max_calls: int = 30
    """Concurrent calls through this trunk, both directions (a toll-fraud damage limit)."""
    allow_international: bool = False
    """Whether users may call numbers outside ``country_code`` through this trunk."""
    allowed_users: tuple[str, ...] = ()
    """Users allowed to call out through this trunk; empty = every authenticated user."""
    deny_prefixes: tuple[str, ...] = ()
    """E.164 prefixes never dialed ("+86168" premium-rate, ...), emergency numbers aside."""
    transit_trunks: tuple[str, ...] = ()
    """Trunks whose inbound calls may be sent out through *this* trunk (call forwarding to
    a mobile). Empty: trunk-to-trunk transit is refused (the classic toll-fraud path)."""
    trusted: bool = False
    """The carrier is inside our trust domain (RFC 3325 §2.3): we send it
    P-Asserted-Identity on calls out, and take the caller's number from its
    P-Asserted-Identity / Remote-Party-ID on calls in. An untrusted trunk's identity
    headers are ignored (the From user is the caller) and never passed on."""
    agent_devices: bool = False
    """Whether the ACD may ring agents logged in on an outside number through this trunk
    (``switch/queue_external.py``). The switch places those calls itself, so this switch is
    their authorisation; the number checks (``deny_prefixes``, international,
    ``max_calls``) still apply."""

    def __post_init__(self) -> None:
        if _NAME_RE.fullmatch(self.name or "") is None:
            raise ConfigError("expected letters, digits, '_' or '-' (at most 64)",
                              key=f"trunks.{self.name}")
        if not self.host.strip():
            raise self._error("host", "expected a host name or IP address")
        if self.transport not in TRUNK_TRANSPORTS:
            raise self._error("transport", f"expected one of {', '.join(TRUNK_TRANSPORTS)}, "
                                           f"got {self.transport!r}")
        if self.port == 0:
            object.__setattr__(self, "port", default_port(self.transport))
        if not 1 <= self.port <= 65535:
            raise self._error("port", f"expected 0 or 1..65535, got {self.port}")
        if self.outbound_proxy:
            self._proxy_uri()
        if self.register and not (self.username and self.password):
            key = "username" if not self.username else "password"
            raise self._error(key, "needed when register = true")
        if not 60 <= self.register_expires_s <= 86400:
            raise self._error("register_expires_s",
                              f"expected 60..86400, got {self.register_expires_s}")
        if not 1 <= self.max_calls <= 10000:
            raise self._error("max_calls", f"expected 1..10000, got {self.max_calls}")
        if not self.country_code.isdigit() or not 1 <= len(self.country_code) <= 3:
            raise self._error("country_code", f"expected 1-3 digits, got {self.country_code!r}")
        if self.area_code and not self.area_code.isdigit():
            raise self._error("area_code", f"expected digits, got {self.area_code!r}")
        self._check_caller_id()

    # -- derived values ------------------------------------------------------------------
    def _error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(problem, key=f"trunks.{self.name}.{key}")

    def _proxy_uri(self) -> SipUri:
        try:
            uri = SipUri.parse(self.outbound_proxy.strip().strip("<>"))
        except SipParseError as exc:
            raise self._error("outbound_proxy", f"expected a SIP URI: {exc}") from None
        if uri.scheme not in ("sip", "sips"):
            raise self._error("outbound_proxy", "expected a sip: or sips: URI")
        return uri

    def _check_caller_id(self) -> None:
        policy = self.caller_id
        numbers = [("caller_id_number", policy.number)]
        numbers += [("caller_id_map", n) for n in policy.per_user.values()]
        for key, number in numbers:
            if not number:
                continue
            try:
                format_number(number, policy.fmt, self.country_code, area_code=self.area_code)
            except NumberError as exc:
                raise self._error(key, str(exc)) from None
        if policy.mode is CallerIdMode.FIXED and not policy.number:
            raise self._error("caller_id_number", "needed when caller_id_mode = \"fixed\"")

    @property
    def auth_user(self) -> str:
        """The digest user name."""
        return self.auth_username or self.username

    @property
    def domain(self) -> str:
        """Host part of From/To and of the REGISTER Request-URI."""
        return self.from_domain or self.host

    @property
    def registrar_uri(self) -> str:
        """Request-URI of REGISTER (RFC 3261 §10.2: the registrar's domain, no user)."""
        t = "" if self.transport == "udp" else f";transport={self.transport}"
        scheme = "sips" if self.transport == "tls" else "sip"
        port = "" if self.port == default_port(self.transport) else f":{self.port}"
        return f"{scheme}:{self.domain}{port}{t}"

    @property
    def aor(self) -> str:
        """Our address-of-record at the carrier (From and To of REGISTER)."""
        return f"sip:{self.username}@{self.domain}"

    def next_hop(self) -> Address:
        """Where requests to this trunk go: the outbound proxy, else host:port (§8.1.2)."""
        if self.outbound_proxy:
            return uri_address(self._proxy_uri(), self.transport)
        return Address(self.transport, self.host, self.port)

    def source_networks(self) -> tuple[IpNetwork, ...]:
        """The networks inbound requests from this trunk may come from."""
        if self.allowed_sources:
            return self.allowed_sources
        out: list[IpNetwork] = []
        hosts = [self.host]
        if self.outbound_proxy:
            hosts.append(self._proxy_uri().host)
        for host in hosts:
            try:
                out.append(ipaddress.ip_network(host.strip("[]")))
            except ValueError:
                continue  # a host name: not usable for recognition without DNS
        return tuple(out)

    def did_key(self, number: str) -> str:
        """The form DIDs are stored and looked up in: E.164 when convertible."""
        try:
            return to_e164(number, self.country_code, area_code=self.area_code)
        except NumberError:
            return clean_number(number)

    def route_did(self, number: str) -> str | None:
        """The target for a called number, or None (no DID routing for it)."""
        try:
            key = self.did_key(number)
        except NumberError:
            return None
        return self.did_map.get(key)


# --- parsing the [trunks] table ------------------------------------------------------------

_TOML_ONLY = {"caller_id_mode", "caller_id_number", "caller_id_map", "caller_id_format"}
_FIELDS = [f.name for f in dataclasses.fields(TrunkConfig) if f.name not in ("name", "caller_id")]
_KNOWN = sorted([*_FIELDS, *_TOML_ONLY])
_TYPES: dict[str, type] = {
    "enabled": bool, "register": bool, "allow_international": bool, "trusted": bool,
    "agent_devices": bool,
    "port": int, "register_expires_s": int, "max_calls": int,
    "outbound_rules": list, "did_map": dict, "caller_id_map": dict,
    "allowed_sources": list, "allowed_users": list, "deny_prefixes": list,
    "transit_trunks": list,
}
_RULE_KEYS = ("prefix", "pattern", "strip", "prepend")


_NOUNS: dict[type, str] = {bool: "true or false", int: "an integer", list: "a list",
                           dict: "a table"}


def _expect(name: str, key: str, value: object, kind: type) -> None:
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        noun = _NOUNS.get(kind, "a string")
        raise ConfigError(f"expected {noun}, got {value!r}", key=f"trunks.{name}.{key}")


def _rules(name: str, items: list[Any]) -> tuple[NumberRule, ...]:
    out = []
    for i, item in enumerate(items):
        key = f"trunks.{name}.outbound_rules[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"expected a table {{prefix=, strip=, prepend=}}, got {item!r}",
                              key=key)
        unknown = [k for k in item if k not in _RULE_KEYS]
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r} (expected {', '.join(_RULE_KEYS)})",
                              key=key)
        try:
            out.append(NumberRule(prefix=str(item.get("prefix", "")),
                                  pattern=str(item.get("pattern", "")),
                                  strip=int(item.get("strip", 0)),
                                  prepend=str(item.get("prepend", ""))))
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc), key=key) from None
    return tuple(out)


def _networks(name: str, items: list[Any]) -> tuple[IpNetwork, ...]:
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            raise ConfigError(f"expected an IP address or CIDR block, got {item!r}",
                              key=f"trunks.{name}.allowed_sources") from None
    return tuple(out)


def _enum(name: str, key: str, cls: type[Any], value: object) -> Any:
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in cls)
        raise ConfigError(f"expected one of {choices}, got {value!r}",
                          key=f"trunks.{name}.{key}") from None


def _did_map(name: str, raw: dict[str, Any], probe: TrunkConfig) -> Mapping[str, str]:
    out: dict[str, str] = {}
    for number, target in raw.items():
        key = f"trunks.{name}.did_map"
        if not isinstance(target, str) or not target.strip():
            raise ConfigError(f"expected a target name for {number!r}, got {target!r}", key=key)
        try:
            did = probe.did_key(str(number))
        except NumberError as exc:
            raise ConfigError(str(exc), key=key) from None
        if did in out:
            raise ConfigError(f"{number!r} is the same DID as another entry ({did})", key=key)
        out[did] = target.strip()
    return _frozen_map(out)


def parse_trunk(name: str, table: Mapping[str, Any]) -> TrunkConfig:
    """One ``[trunks.<name>]`` table -> :class:`TrunkConfig` (raises :class:`ConfigError`)."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"expected a table [trunks.{name}], got {table!r}",
                          key=f"trunks.{name}")
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KNOWN:
            close = difflib.get_close_matches(key, _KNOWN, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown key{hint}", key=f"trunks.{name}.{key}")
        _expect(name, key, value, _TYPES.get(key, str))
        kwargs[key] = value
    for key in ("allowed_users", "deny_prefixes", "transit_trunks"):
        if key in kwargs:
            for v in kwargs[key]:
                _expect(name, key, v, str)
            kwargs[key] = tuple(kwargs[key])
    if "outbound_rules" in kwargs:
        kwargs["outbound_rules"] = _rules(name, kwargs["outbound_rules"])
    if "allowed_sources" in kwargs:
        kwargs["allowed_sources"] = _networks(name, kwargs["allowed_sources"])
    if "number_format" in kwargs:
        kwargs["number_format"] = _enum(name, "number_format", NumberFormat,
                                        kwargs["number_format"])
    mode = _enum(name, "caller_id_mode", CallerIdMode, kwargs.pop("caller_id_mode", "pass-through"))
    fmt = _enum(name, "caller_id_format", NumberFormat, kwargs.pop("caller_id_format", "as-is"))
    per_user = kwargs.pop("caller_id_map", {})
    for v in per_user.values():
        _expect(name, "caller_id_map", v, str)
    kwargs["caller_id"] = CallerIdPolicy(mode=mode, number=kwargs.pop("caller_id_number", ""),
                                         per_user=_frozen_map(per_user), fmt=fmt)
    raw_dids = kwargs.pop("did_map", {})
    trunk = TrunkConfig(name=name, **kwargs)
    if raw_dids:
        trunk = dataclasses.replace(trunk, did_map=_did_map(name, raw_dids, trunk))
    return trunk


def parse_trunks(table: Mapping[str, Any]) -> dict[str, TrunkConfig]:
    """The whole ``[trunks]`` table -> {name: TrunkConfig}, in file order.

    Cross-trunk checks: ``transit_trunks`` must name configured trunks, and one DID may be
    routed by only one enabled trunk.

    Raises:
        ConfigError: naming ``trunks.<name>.<key>``.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(f"expected a table [trunks], got {table!r}", key="trunks")
    trunks = {name: parse_trunk(str(name), sub) for name, sub in table.items()}
    owner: dict[str, str] = {}
    for trunk in trunks.values():
        for other in trunk.transit_trunks:
            if other not in trunks:
                raise ConfigError(f"no trunk named {other!r}",
                                  key=f"trunks.{trunk.name}.transit_trunks")
        if not trunk.enabled:
            continue
        for did in trunk.did_map:
            if did in owner:
                raise ConfigError(f"DID {did} is already routed by trunk {owner[did]!r}",
                                  key=f"trunks.{trunk.name}.did_map")
            owner[did] = trunk.name
    return trunks
