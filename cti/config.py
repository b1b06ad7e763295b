"""``[cti]`` configuration: the CTI listener and its limits (STYLE.md §4.7).

Rule: plain TCP only on loopback unless ``allow_plaintext`` is set; a certificate and key
turn TLS on (IVR_CTI_ACD.md §B.8: "TLS on TCP (plain TCP allowed only on loopback)").
"""

from __future__ import annotations

import dataclasses
import ipaddress
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CTI_KEYS", "CtiConfig", "cti_config"]


@dataclass(frozen=True, slots=True)
class CtiConfig:
    """``[cti]``: the CTI listener and its limits."""

    host: str = "127.0.0.1"
    port: int = 0
    certfile: str | None = None
    keyfile: str | None = None
    allow_plaintext: bool = False
    """Allow plain TCP on a non-loopback address (Rule 4); off by default."""
    max_line_bytes: int = 64 * 1024
    outbound_queue_max: int = 2048
    """Lines waiting for one client before it is disconnected as too slow (Rule 1)."""
    ring_size: int = 2048
    """Events kept per stream for ``resume`` (a tuple each; bodies are shared)."""
    heartbeat_s: float = 30.0
    idle_timeout_s: float = 90.0
    auth_timeout_s: float = 30.0
    resume_grace_s: float = 120.0
    stats_interval_s: float = 5.0
    """Period of ``queue.stats`` events; 0 disables them."""
    max_unauthenticated: int = 64
    max_login_failures: int = 3

    def __post_init__(self) -> None:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("cti: certfile and keyfile go together")
        if not 1024 <= self.max_line_bytes <= 16 * 1024 * 1024:
            raise ValueError("cti.max_line_bytes must be within 1 KiB..16 MiB")
        if self.outbound_queue_max < 16 or self.ring_size < 16:
            raise ValueError("cti.outbound_queue_max and cti.ring_size must be >= 16")
        if self.certfile is None and not self.allow_plaintext and not _is_loopback(self.host):
            raise ValueError(f"cti: plain TCP on {self.host} needs allow_plaintext "
                             "(configure certfile/keyfile for TLS)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_EXTRA_KEYS: dict[str, type] = {"ring_timeout_s": float, "transfer_timeout_s": float,
                                "screen_pop_timeout_s": float}
"""Keys of the switch backend, next to :class:`~cti.config.CtiConfig`'s fields."""

CTI_KEYS: tuple[str, ...] = (*(f.name for f in dataclasses.fields(CtiConfig)), *_EXTRA_KEYS)
"""Every key ``[cti]`` accepts."""


def _kind(name: str) -> type:
    if name in _EXTRA_KEYS:
        return _EXTRA_KEYS[name]
    hint = typing.get_type_hints(CtiConfig)[name]
    return str if hint in (str, str | None) else hint


def cti_config(raw: Mapping[str, Any]) -> tuple[CtiConfig, dict[str, float]]:
    """The listener's config and the switch backend's timers from the ``[cti]`` table.

    Raises:
        switch.config.ConfigError: an unknown key, a value of the wrong type, or a rule of
            :class:`~cti.config.CtiConfig` broken (the key is named).
    """
    from switch.config import ConfigError  # the node's error type; lazy: no import cycle

    kwargs: dict[str, Any] = {}
    extra: dict[str, float] = {}
    for key, value in raw.items():
        if key not in CTI_KEYS:
            raise ConfigError(f"unknown key; expected one of {', '.join(CTI_KEYS)}",
                              key=f"cti.{key}")
        kind = _kind(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"expected {kind.__name__}, got {value!r}", key=f"cti.{key}")
        if kind in (int, float) and value < 0:
            raise ConfigError(f"must not be negative, got {value!r}", key=f"cti.{key}")
        if key in ("certfile", "keyfile") and not Path(value).is_file():
            raise ConfigError(f"file not found: {value}", key=f"cti.{key}")
        (extra if key in _EXTRA_KEYS else kwargs)[key] = value
    try:
        config = CtiConfig(**kwargs)
    except ValueError as exc:
        text = str(exc)
        key = "cti.host" if "plain TCP" in text else next(
            (f"cti.{k}" for k in CTI_KEYS if k in text), "cti")
        raise ConfigError(text.removeprefix("cti: ").removeprefix(f"{key}: "),
                          key=key) from None
    return config, extra
