"""Shared records of the location service and the user directory (RFC 3261 §10.2, §22).

These are the values that cross the boundary between the pure registrar/authenticator and
storage: the pure core keeps them in memory (it is authoritative while the node runs) and
the shell persists changes write-behind, so a REGISTER never waits for the database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of an address-of-record (RFC 3261 §10.3 step 7).

    ``expires_at`` is wall-clock (epoch seconds) so that bindings survive a restart.
    ``contact`` is the URI the switch sends requests to: for a UDP client behind NAT it is
    rewritten to the observed source (RFC 3581), and ``registered_contact`` keeps what the
    phone sent.
    """

    aor: str
    contact: str
    expires_at: float
    q: float = 1.0
    call_id: str = ""
    cseq: int = 0
    transport: str = "udp"
    source_host: str = ""
    source_port: int = 0
    registered_contact: str = ""
    user_agent: str = ""
    instance_id: str = ""
    reg_id: int = 0
    params: tuple[tuple[str, str], ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class UserCredentials:
    """A SIP user's digest secrets: one HA1 per algorithm, never the password itself.

    ``ha1`` maps an RFC 7616/8760 algorithm name ("MD5", "SHA-256") to the lowercase hex
    H(username ":" realm ":" password) for this user's realm.
    """

    username: str
    realm: str
    ha1: dict[str, str] = field(repr=False)  # never in a log line or traceback
    enabled: bool = True


class LocationStore(Protocol):
    """Persistence for bindings; implemented in storage/. Called by the async shell only."""

    async def load_bindings(self) -> list[Binding]: ...

    async def replace_bindings(self, changes: dict[str, list[Binding]]) -> None:
        """Make each AOR's stored bindings exactly the given list (empty list: remove all)."""
        ...


class CredentialStore(Protocol):
    """The user directory; implemented in storage/. Called by the async shell only."""

    async def load_users(self) -> list[UserCredentials]: ...


DIGEST_ALGORITHMS: dict[str, str] = {"MD5": "md5", "SHA-256": "sha256"}
"""RFC 7616 §3.2 / RFC 8760 algorithm names -> hashlib names. The "-sess" variants reuse these."""


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(username ":" realm ":" password) as lowercase hex (RFC 2617 §3.2.2.2, RFC 7616 §3.4.2).

    Stored instead of the password so that a leaked database does not reveal it directly.
    """
    try:
        name = DIGEST_ALGORITHMS[algorithm.upper().removesuffix("-SESS")]
    except KeyError:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}") from None
    data = f"{username}:{realm}:{password}".encode()
    return hashlib.new(name, data).hexdigest()
