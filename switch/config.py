"""Node configuration: frozen dataclasses loaded from TOML (STYLE.md 4.7).

Where a value comes from, lowest to highest precedence:

1. the embedded default, ``switch/default_config.toml`` (package data; it lists every key
   with its meaning, so it doubles as the reference an operator copies from);
2. the operator's file (``softswitch run --config FILE``), merged table by table;
3. command-line overrides (``--sip-port``, ``--bind``, ``--db``, ...), given as dotted keys.

Rules:

* Rule 1 -- every mistake stops start-up with a :class:`ConfigError` that names the dotted
  key and where the value came from (``site.toml: sip.port: expected an integer between 1
  and 65535, got 'abc'``); TOML syntax errors name ``file:line``. Unknown keys are errors
  (a typo must not silently fall back to a default).
* Rule 2 -- each section validates itself in ``__post_init__``, so a config built in code
  (tests, ``switch/app.py``) gets the same checks as one read from a file.
* Rule 3 -- no globals: :func:`load_config` returns a value that ``switch/app.py`` passes
  down explicitly.

Relative paths: ``node.data_dir`` is relative to the working directory; relative paths in
``[media]`` (recordings, prompt cache) are relative to ``node.data_dir``. An empty
``db.url`` means the SQLite file ``<data_dir>/softswitch.db``.

``[media]`` is validated by ``switch.media.config.MediaConfig``, imported lazily; ``[cti]``
is kept raw until the CTI server defines its own config (only ``port`` is accepted now).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import ipaddress
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from switch.media.config import MediaConfig
    from switch.queue_config import QueueSettings
    from switch.routing_config import RoutingConfig
    from switch.trunks.config import TrunkConfig

__all__ = [
    "LOG_LEVELS",
    "SIP_TRANSPORTS",
    "CallsConfig",
    "Config",
    "ConfigError",
    "DbConfig",
    "NodeConfig",
    "SipConfig",
    "VoicemailConfig",
    "load_config",
]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SIP_TRANSPORTS = ("udp", "tcp", "tls")
DEFAULT_ORIGIN = "default configuration"
CLI_ORIGIN = "command line"


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and its origin."""

    def __init__(self, problem: str, *, key: str | None = None, origin: str | None = None):
        self.problem = problem
        self.key = key
        self.origin = origin
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [p for p in (self.origin, self.key) if p]
        return ": ".join([*parts, self.problem])


def _m(*, lo: float | None = None, hi: float | None = None,
       choices: tuple[str, ...] | None = None, nonempty: bool = False) -> dict[str, Any]:
    """A field's validation rule, kept in its dataclass metadata."""
    return {"lo": lo, "hi": hi, "choices": choices, "nonempty": nonempty}


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """``[node]``: this process."""

    data_dir: Path = field(default=Path("data"), metadata=_m())
    """Directory of the SQLite database, recordings and other node files; created if
    missing. Relative to the working directory."""
    log_level: str = field(default="INFO", metadata=_m(choices=LOG_LEVELS))
    """Root log level: DEBUG, INFO, WARNING, ERROR or CRITICAL (case-insensitive)."""

    def __post_init__(self) -> None:
        if isinstance(self.data_dir, str):
            object.__setattr__(self, "data_dir", Path(self.data_dir))
        if isinstance(self.log_level, str):
            object.__setattr__(self, "log_level", self.log_level.upper())
        _validate_fields(self, "node")


@dataclass(frozen=True, slots=True)
class SipConfig:
    """``[sip]``: transports, registrar, digest authentication and RFC 3261 timers."""

    bind: str = field(default="0.0.0.0", metadata=_m())
    """IP address the SIP sockets listen on: all IPv4 interfaces by default; "::" for all
    IPv6 (opt-in), "127.0.0.1" for a lab."""
    port: int = field(default=5060, metadata=_m(lo=1, hi=65535))
    """UDP and TCP port (RFC 3261 §18.1.1 default 5060)."""
    tls_port: int = field(default=5061, metadata=_m(lo=1, hi=65535))
    """TLS port (RFC 3261 §26.2.1 default 5061); used only when tls_cert/tls_key are set."""
    transports: tuple[str, ...] = field(default=("udp", "tcp"),
                                        metadata=_m(choices=("udp", "tcp")))
    """Plain transports to listen on; TLS is added when tls_cert and tls_key are set."""
    tls_cert: str = field(default="", metadata=_m())
    """PEM certificate chain file for SIP over TLS; empty: no TLS."""
    tls_key: str = field(default="", metadata=_m())
    """PEM private key file matching tls_cert."""
    domain: str = field(default="softswitch", metadata=_m(nonempty=True))
    """The SIP domain this node is registrar for (host part of ``sip:1001@domain``)."""
    realm: str = field(default="", metadata=_m())
    """Digest realm (RFC 3261 §22.1); empty: same as domain. Changing it invalidates the
    stored HA1s: set every password again afterwards."""
    min_expires_s: int = field(default=60, metadata=_m(lo=1, hi=86400))
    """Shortest registration accepted; shorter requests get 423 (RFC 3261 §10.3 step 6)."""
    max_expires_s: int = field(default=3600, metadata=_m(lo=1, hi=86400))
    """Longest registration granted; longer requests are cut down to this."""
    default_expires_s: int = field(default=3600, metadata=_m(lo=1, hi=86400))
    """Registration time when the REGISTER asks for none (RFC 3261 §10.2.1.1)."""
    auth_algorithms: tuple[str, ...] = field(default=("MD5",),
                                             metadata=_m(choices=("MD5", "SHA-256")))
    """Digest algorithms challenged with, one WWW-Authenticate each, in this order (RFC 8760
    §2.4). MD5 only by default: sipsak 0.9.8 and SIPp 3.6 read only the first challenge and
    fail on SHA-256, and baresip 1.0 rejects the whole response when any challenge names an
    algorithm it lacks. A site whose phones all do SHA-256 lists ["SHA-256", "MD5"]."""
    auth_max_failures: int = field(default=5, metadata=_m(lo=1, hi=1000))
    """Failed digest attempts from one source/user within auth_window_s before lockout."""
    auth_window_s: int = field(default=60, metadata=_m(lo=1, hi=86400))
    """Window over which failed attempts are counted."""
    auth_lockout_s: int = field(default=300, metadata=_m(lo=0, hi=86400))
    """How long a locked-out source/user is refused (403); 0 disables the lockout."""
    nonce_lifetime_s: int = field(default=300, metadata=_m(lo=10, hi=86400))
    """Age after which a nonce is answered with stale=true (RFC 7616 §3.3)."""
    max_message_bytes: int = field(default=65536, metadata=_m(lo=1500, hi=1_048_576))
    """Largest SIP message accepted; bigger ones are dropped (UDP) or get 513 (TCP)."""
    max_headers: int = field(default=128, metadata=_m(lo=16, hi=1024))
    """Most header fields accepted in one message (a parser resource bound)."""
    t1_ms: int = field(default=500, metadata=_m(lo=10, hi=10000))
    """RFC 3261 §17.1.1.1 T1, the RTT estimate: base of retransmission timers."""
    t2_ms: int = field(default=4000, metadata=_m(lo=10, hi=60000))
    """T2, the longest retransmit interval for non-INVITE requests and INVITE responses."""
    t4_ms: int = field(default=5000, metadata=_m(lo=10, hi=60000))
    """T4, the longest time a message stays in the network (Timer K/I)."""
    options_keepalive_s: int = field(default=30, metadata=_m(lo=0, hi=3600))
    """Interval of OPTIONS pings to UDP contacts that keep NAT bindings open; 0 disables."""
    user_agent: str = field(default="softswitch", metadata=_m())
    """Value of the User-Agent/Server header; empty: header omitted."""

    def __post_init__(self) -> None:
        if not self.realm:
            object.__setattr__(self, "realm", self.domain)
        _validate_fields(self, "sip")
        try:
            ipaddress.ip_address(self.bind)
        except ValueError:
            raise ConfigError(f"expected an IP address, got {self.bind!r}",
                              key="sip.bind") from None
        if not self.transports:
            raise ConfigError("expected at least one transport", key="sip.transports")
        if not self.auth_algorithms:
            raise ConfigError("expected at least one algorithm", key="sip.auth_algorithms")
        if len(set(self.transports)) != len(self.transports):
            raise ConfigError("a transport is listed twice", key="sip.transports")
        if bool(self.tls_cert) != bool(self.tls_key):
            missing = "sip.tls_key" if self.tls_cert else "sip.tls_cert"
            raise ConfigError("tls_cert and tls_key must be set together", key=missing)
        if self.tls_cert and "tcp" in self.transports and self.tls_port == self.port:
            raise ConfigError("must differ from sip.port when TCP and TLS both listen",
                              key="sip.tls_port")
        if not self.min_expires_s <= self.default_expires_s <= self.max_expires_s:
            raise ConfigError("expected min_expires_s <= default_expires_s <= max_expires_s, "
                              f"got {self.min_expires_s}, {self.default_expires_s}, "
                              f"{self.max_expires_s}", key="sip.default_expires_s")
        if self.t2_ms < self.t1_ms:
            raise ConfigError(f"must not be below sip.t1_ms ({self.t1_ms}), got {self.t2_ms}",
                              key="sip.t2_ms")

    @property
    def active_transports(self) -> tuple[str, ...]:
        """The transports to listen on: ``transports`` plus "tls" when TLS is configured."""
        return (*self.transports, "tls") if self.tls_cert else self.transports


@dataclass(frozen=True, slots=True)
class DbConfig:
    """``[db]``: where bindings and users are stored."""

    url: str = field(default="", metadata=_m())
    """SQLAlchemy URL; empty: ``sqlite+aiosqlite:///<data_dir>/softswitch.db``. PostgreSQL:
    ``postgresql+asyncpg://user:password@host/dbname`` (the "postgres" extra)."""

    def __post_init__(self) -> None:
        _validate_fields(self, "db")


@dataclass(frozen=True, slots=True)
class CallsConfig:
    """``[calls]``: how the call manager (``switch.b2bua``) treats calls."""

    max_inflight_invites: int = field(default=2000, metadata=_m(lo=0, hi=1_000_000))
    """New calls in setup at once; more get 503 + Retry-After (``switch.overload``); 0: no
    bound."""
    overload_loop_lag_ms: float = field(default=250.0, metadata=_m(lo=0, hi=60_000))
    """Event-loop lag above which new calls get 503 (the node is saturated); 0: off."""
    overload_retry_after_s: int = field(default=5, metadata=_m(lo=1, hi=3600))
    """The Retry-After of those 503s."""
    no_answer_timeout_s: float = field(default=30.0, metadata=_m(lo=1, hi=3600))
    """Ring time before an unanswered call gets 480, its no-answer forward or voicemail."""
    max_call_duration_s: float = field(default=14400.0, metadata=_m(lo=0, hi=604800))
    """An answered call is ended after this many seconds (runaway calls); 0: never."""
    moh_file: str = field(default="", metadata=_m())
    """Music on hold: a WAV file (relative to node.data_dir) looped to a held party;
    empty: a pleasant loop generated at start-up (``switch.moh``)."""

    def __post_init__(self) -> None:
        _validate_fields(self, "calls")


@dataclass(frozen=True, slots=True)
class VoicemailConfig:
    """``[voicemail]``: mailboxes and call forwarding (``switch.voicemail``,
    ``switch.forwarding``)."""

    enabled: bool = field(default=True, metadata=_m())
    """An extension without a forward that is busy, does not answer or is not registered
    sends the caller to its mailbox (when the box exists); false: 486/480 as before."""
    max_s: float = field(default=120.0, metadata=_m(lo=1, hi=3600))
    """Longest message; recording stops after this many seconds."""
    min_s: float = field(default=1.0, metadata=_m(lo=0, hi=60))
    """Shorter (or silent) messages are discarded."""
    greeting: str = field(default="您好，对方暂时无法接听，请在提示音后留言，按井号键结束。",
                          metadata=_m(nonempty=True))
    """Spoken (TTS) before the beep."""
    voice: str = field(default="zh", metadata=_m(nonempty=True))
    """TTS voice of the greeting (espeak-ng voice name)."""
    end_keys: str = field(default="#", metadata=_m(nonempty=True))
    """Keys that end a message."""
    boxes: tuple[str, ...] = field(default=("operator",), metadata=_m())
    """Mailboxes besides the SIP users' own (every user has one)."""
    forward_limit: int = field(default=5, metadata=_m(lo=1, hi=20))
    """Most forwards one call may follow; one more ends it with 482 (a forwarding loop)."""

    def __post_init__(self) -> None:
        _validate_fields(self, "voicemail")


def _empty() -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class Config:
    """The whole node configuration, as :func:`load_config` returns it."""

    node: NodeConfig = field(default_factory=NodeConfig)
    sip: SipConfig = field(default_factory=SipConfig)
    db: DbConfig = field(default_factory=DbConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    media: MediaConfig | None = None
    """The validated ``[media]`` table; None only if ``switch.media.config`` cannot be
    imported, in which case ``media_raw`` holds the table for later validation."""
    media_raw: Mapping[str, Any] = field(default_factory=_empty)
    """The ``[media]`` table as merged from TOML and overrides (before validation)."""
    cti_raw: Mapping[str, Any] = field(default_factory=_empty)
    """The ``[cti]`` table, kept for the CTI server's own config (later)."""
    trunks: Mapping[str, TrunkConfig] = field(default_factory=_empty)
    """``[trunks.<name>]`` tables, validated by ``switch.trunks.config.parse_trunks``."""
    queues: Mapping[str, QueueSettings] = field(default_factory=_empty)
    """``[queues.<name>]`` ACD queues, validated by ``switch.queue_config.parse_queues``."""
    routing: RoutingConfig | None = None
    """``[dialplan]`` and ``[calendars.<name>]``, validated by ``switch.routing_config``."""
    source: str | None = None
    """The operator's config file, if any."""
    voicemail: VoicemailConfig = field(default_factory=VoicemailConfig)


_SECTIONS: dict[str, type] = {"node": NodeConfig, "sip": SipConfig, "db": DbConfig,
                              "calls": CallsConfig, "voicemail": VoicemailConfig}
_CTI_KEYS: dict[str, Any] = {"port": int}
# The other [cti] keys are checked by cti.config.cti_config (ConfigError names the key).
_CTI_KEYS.update(dict.fromkeys((
    "host", "certfile", "keyfile", "allow_plaintext", "max_line_bytes", "outbound_queue_max",
    "ring_size", "heartbeat_s", "idle_timeout_s", "auth_timeout_s", "resume_grace_s",
    "stats_interval_s", "max_unauthenticated", "max_login_failures", "ring_timeout_s",
    "transfer_timeout_s", "screen_pop_timeout_s"), object))


# --- field validation ---------------------------------------------------------------------


def _show(value: object) -> str:
    """A value as the operator wrote it (TOML spelling for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return repr(str(value))
    return repr(value)


def _expectation(hint: Any, meta: Mapping[str, Any]) -> str:
    lo, hi, choices = meta.get("lo"), meta.get("hi"), meta.get("choices")
    origin = typing.get_origin(hint)
    if hint is bool:
        return "expected true or false"
    if hint in (int, float):
        noun = "an integer" if hint is int else "a number"
        if lo is not None and hi is not None:
            return f"expected {noun} between {lo:g} and {hi:g}"
        return f"expected {noun}"
    if origin is tuple:
        allowed = f" from {', '.join(map(repr, choices))}" if choices else ""
        return f"expected a list of strings{allowed}"
    if choices:
        return f"expected one of {', '.join(map(repr, choices))}"
    if hint is Path:
        return "expected a path (a string)"
    return "expected a non-empty string" if meta.get("nonempty") else "expected a string"


def _value_ok(hint: Any, meta: Mapping[str, Any], value: object) -> bool:
    lo, hi, choices = meta.get("lo"), meta.get("hi"), meta.get("choices")
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        kinds = (int,) if hint is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            return False
        return (lo is None or value >= lo) and (hi is None or value <= hi)
    if typing.get_origin(hint) is tuple:
        return isinstance(value, tuple) and all(
            isinstance(v, str) and (not choices or v in choices) for v in value)
    if hint is Path:
        return isinstance(value, Path)
    if not isinstance(value, str):
        return False
    if choices and value not in choices:
        return False
    return not (meta.get("nonempty") and not value.strip())


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _validate_fields(obj: object, section: str) -> None:
    """Type and range checks from each field's metadata (Rule 2)."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if not _value_ok(hints[f.name], f.metadata, value):
            raise ConfigError(f"{_expectation(hints[f.name], f.metadata)}, got {_show(value)}",
                              key=f"{section}.{f.name}")


# --- reading and merging ------------------------------------------------------------------


def _parse_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"at line (\d+), column (\d+)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        if where:
            origin = f"{origin}:{where.group(1)}:{where.group(2)}"
        raise ConfigError(f"TOML syntax error: {message}", origin=origin) from None


def _read_default() -> dict[str, Any]:
    text = resources.files("switch").joinpath("default_config.toml").read_text("utf-8")
    return _parse_toml(text, DEFAULT_ORIGIN)


def _read_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", origin=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {exc}", origin=path) from None
    return _parse_toml(text, path)


def _known_keys(section: str, media_cls: type | None) -> list[str] | None:
    """The keys a section accepts, or None when any key is accepted (unvalidated media)."""
    if section in _SECTIONS:
        return [f.name for f in dataclasses.fields(_SECTIONS[section])]
    if section == "cti":
        return list(_CTI_KEYS)
    if section == "trunks":
        return None  # trunk names are free; parse_trunks checks the keys inside each
    if section == "dialplan":
        return ["rules", "blocked_lists", "vip_list", "vip_priority"]
    if section == "calendars":
        return None  # calendar names are free; parse_routing checks inside each
    if section == "queues":
        return None  # queue names are free; parse_queues checks the keys inside each
    if media_cls is not None and dataclasses.is_dataclass(media_cls):
        return [f.name for f in dataclasses.fields(media_cls)] + ["rtp_ports"]
    return None


def _unknown(what: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"unknown {what}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _merge(base: dict[str, Any], layer: Mapping[str, Any], origin: str,
           origins: dict[str, str], media_cls: type | None) -> None:
    """Merge one TOML document over ``base``, table by table, checking the key names."""
    sections = [*_SECTIONS, "media", "cti", "trunks", "dialplan", "calendars", "queues"]
    for section, table in layer.items():
        if section not in sections:
            raise ConfigError(_unknown("section", section, sections), key=section,
                              origin=origin)
        if not isinstance(table, dict):
            raise ConfigError(f"expected a table [{section}], got {_show(table)}",
                              key=section, origin=origin)
        known = _known_keys(section, media_cls)
        for key, value in table.items():
            if known is not None and key not in known:
                raise ConfigError(_unknown("key", key, known), key=f"{section}.{key}",
                                  origin=origin)
            base.setdefault(section, {})[key] = value
            origins[f"{section}.{key}"] = origin


def _from_cli(hint: Any, value: str) -> object:
    """Turn a command-line string into the field's type; return it unchanged if it cannot
    be converted, so that validation reports it with the usual message."""
    text = value.strip()
    if hint is int and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if hint is float and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", text):
        return float(text)
    if hint is bool and text.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        return text.lower() in ("true", "yes", "1", "on")
    if typing.get_origin(hint) is tuple and typing.get_args(hint)[-1] is Ellipsis:
        return tuple(v.strip() for v in text.split(",") if v.strip())
    return value


def _prepare(hint: Any, value: object, from_cli: bool) -> object:
    """TOML/CLI value -> dataclass value (lists to tuples, strings to Path, ints to float)."""
    if from_cli and isinstance(value, str) and hint is not str:
        value = _from_cli(hint, value)
    if isinstance(value, list):
        return tuple(value)
    if hint is Path and isinstance(value, str):
        return Path(value).expanduser()
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _kwargs(cls: type, section: str, table: Mapping[str, Any],
            origins: Mapping[str, str]) -> dict[str, Any]:
    hints = _hints(cls)
    return {
        key: _prepare(hints.get(key), value, origins.get(f"{section}.{key}") == CLI_ORIGIN)
        for key, value in table.items()
    }


def _build(cls: type, section: str, table: Mapping[str, Any],
           origins: Mapping[str, str]) -> Any:
    try:
        return cls(**_kwargs(cls, section, table, origins))
    except ConfigError as exc:
        raise ConfigError(exc.problem, key=exc.key,
                          origin=_origin_of(exc.key or section, origins)) from None


def _origin_of(key: str, origins: Mapping[str, str]) -> str:
    """Where a key's value came from; for a key left at its default that fails a check
    against other keys (min <= default <= max), the layer that set one of its neighbours."""
    origin = origins.get(key, DEFAULT_ORIGIN)
    if origin != DEFAULT_ORIGIN:
        return origin
    section = key.partition(".")[0] + "."
    others = [o for k, o in origins.items() if k.startswith(section) and o != DEFAULT_ORIGIN]
    return others[-1] if others else DEFAULT_ORIGIN


def _import_media_config() -> type | None:
    try:
        from switch.media.config import MediaConfig
    except ImportError:
        return None
    return MediaConfig


def _build_media(cls: type | None, table: dict[str, Any], data_dir: Path,
                 origins: Mapping[str, str]) -> Any:
    """Build ``[media]`` with whatever MediaConfig accepts by keyword (Rule 2 is its own)."""
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    table = dict(table)
    ports = table.pop("rtp_ports", None)
    if ports is not None and "rtp_ports" not in names:
        origins = {**origins, "media.rtp_port_min": origins.get("media.rtp_ports", ""),
                   "media.rtp_port_max": origins.get("media.rtp_ports", "")}
        if not (isinstance(ports, list | tuple) and len(ports) == 2):
            raise ConfigError(f"expected [first, last], got {_show(ports)}",
                              key="media.rtp_ports", origin=origins.get("media.rtp_ports"))
        table["rtp_port_min"], table["rtp_port_max"] = ports
    elif ports is not None:
        table["rtp_ports"] = ports
    try:
        hints = _hints(cls)
    except (NameError, TypeError):
        hints = {}
    kwargs = _kwargs(cls, "media", table, origins)
    for f in dataclasses.fields(cls) if names else ():
        if hints.get(f.name) is not Path:
            continue
        value = kwargs.get(f.name, _default_of(f))
        if isinstance(value, Path) and not value.is_absolute():
            kwargs[f.name] = data_dir / value
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        text = str(exc)
        found = re.match(r"(media\.\w+): (.*)", text)
        key = found.group(1) if found else "media"
        problem = found.group(2) if found else text
        raise ConfigError(problem, key=key, origin=origins.get(key)) from None


def _default_of(f: dataclasses.Field[Any]) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _check_cti(table: Mapping[str, Any], origins: Mapping[str, str]) -> dict[str, Any]:
    out = dict(table)
    if "port" in out:
        port = _prepare(int, out["port"], origins.get("cti.port") == CLI_ORIGIN)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"expected an integer between 1 and 65535, got {_show(port)}",
                              key="cti.port", origin=origins.get("cti.port"))
        out["port"] = port
    from cti.config import cti_config  # lazy, as [media]: the CTI checks its own keys

    try:
        cti_config(out)
    except ConfigError as exc:
        raise ConfigError(exc.problem, key=exc.key, origin=origins.get(exc.key or "")) from None
    return out


def _check_files(sip: SipConfig, origins: Mapping[str, str]) -> None:
    for key in ("tls_cert", "tls_key"):
        path = getattr(sip, key)
        if path and not Path(path).expanduser().is_file():
            raise ConfigError(f"file not found: {path}", key=f"sip.{key}",
                              origin=origins.get(f"sip.{key}"))


def _build_trunks(table: Mapping[str, Any], origins: Mapping[str, str]) -> dict[str, Any]:
    """``[trunks.<name>]`` -> TrunkConfig per trunk. Imported lazily: switch.trunks imports
    ConfigError from this module. A trunk table in the operator's file replaces the trunk
    of the same name in the default as a whole (merged trunk by trunk)."""
    from switch.trunks.config import parse_trunks

    try:
        return parse_trunks(table)
    except ConfigError as exc:
        owner = ".".join((exc.key or "trunks").split(".")[:2])
        raise ConfigError(exc.problem, key=exc.key, origin=origins.get(owner)) from None


def _build_routing(merged: Mapping[str, Any], origins: Mapping[str, str]) -> Any:
    """``[dialplan]`` + ``[calendars]`` -> RoutingConfig (lazy import: routing_config
    imports ConfigError from this module)."""
    from switch.routing_config import parse_routing

    try:
        return parse_routing({"dialplan": merged.get("dialplan", {}),
                              "calendars": merged.get("calendars", {})})
    except ConfigError as exc:
        raise ConfigError(exc.problem, key=exc.key,
                          origin=_origin_of(exc.key or "dialplan", origins)) from None


def _build_queues(table: Mapping[str, Any], origins: Mapping[str, str]) -> dict[str, Any]:
    """``[queues.<name>]`` -> QueueSettings per queue (lazy import, as for trunks)."""
    from switch.queue_config import parse_queues

    try:
        return parse_queues(table)
    except ConfigError as exc:
        owner = ".".join((exc.key or "queues").split(".")[:2])
        raise ConfigError(exc.problem, key=exc.key, origin=origins.get(owner)) from None


def _db_url(db: DbConfig, data_dir: Path, origins: Mapping[str, str]) -> DbConfig:
    from storage.db import StorageError, default_sqlite_url, normalize_url

    if not db.url:
        return DbConfig(url=default_sqlite_url(data_dir))
    try:
        return DbConfig(url=normalize_url(db.url))
    except StorageError as exc:
        raise ConfigError(str(exc), key="db.url", origin=origins.get("db.url")) from None


def load_config(path: str | None = None, overrides: Mapping[str, object] | None = None) -> Config:
    """Read the embedded default, the operator's file and the overrides into a Config.

    Args:
        path: the operator's TOML file, or None for the defaults only.
        overrides: dotted keys to values, e.g. ``{"sip.port": "5070"}``; strings are
            converted to the key's type (they come from the command line).
            ``"media.rtp_ports"`` takes ``(first, last)``.

    Raises:
        ConfigError: naming the key (and file, or "command line") of the first problem.
    """
    media_cls = _import_media_config()
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    _merge(merged, _read_default(), DEFAULT_ORIGIN, origins, media_cls)
    if path is not None:
        _merge(merged, _read_file(path), path, origins, media_cls)
    layer: dict[str, dict[str, Any]] = {}
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        layer.setdefault(section, {})[key] = value
    _merge(merged, layer, CLI_ORIGIN, origins, media_cls)

    node = _build(NodeConfig, "node", merged.get("node", {}), origins)
    node = dataclasses.replace(node, data_dir=node.data_dir.expanduser().resolve())
    sip = _build(SipConfig, "sip", merged.get("sip", {}), origins)
    _check_files(sip, origins)
    db = _db_url(_build(DbConfig, "db", merged.get("db", {}), origins), node.data_dir, origins)
    calls = _build(CallsConfig, "calls", merged.get("calls", {}), origins)
    media_raw = copy.deepcopy(merged.get("media", {}))
    media = _build_media(media_cls, media_raw, node.data_dir, origins)
    trunks = _build_trunks(merged.get("trunks", {}), origins)
    routing = _build_routing(merged, origins)
    queues = _build_queues(merged.get("queues", {}), origins)
    return Config(node=node, sip=sip, db=db, calls=calls, queues=queues, media=media,
                  media_raw=media_raw,
                  cti_raw=_check_cti(merged.get("cti", {}), origins), trunks=trunks,
                  routing=routing, source=path,
                  voicemail=_build(VoicemailConfig, "voicemail", merged.get("voicemail", {}),
                                   origins))
