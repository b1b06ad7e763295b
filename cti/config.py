"""``[cti]`` configuration: the CTI listener and its limits (STYLE.md §4.7).

Rule: plain TCP only on loopback unless ``allow_plaintext`` is set; a certificate and key
turn TLS on (IVR_CTI_ACD.md §B.8: "TLS on TCP (plain TCP allowed only on loopback)").
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["CtiConfig"]


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
