"""CTI authentication: salted password hashes, session tokens, lockout (IVR_CTI_ACD.md §B.7-8).

Rules:

* Rule 1 -- passwords are stored as salted scrypt hashes (RFC 7914; ``hashlib.scrypt``),
  encoded ``scrypt$<log2 n>$<r>$<p>$<salt hex>$<key hex>``; compared in constant time. AMI's
  MD5 challenge forced plaintext storage (§B.7); we never store or log a password.
* Rule 2 -- an unknown user costs the same hash as a known one (no user enumeration by
  timing), and every failure has the same message.
* Rule 3 (lockout) -- ``max_failures`` failures within ``window_s`` lock the user name for
  ``lockout_s`` (AMI has only ``authlimit``/``authtimeout``); the lock also refuses a correct
  password until it expires. Time is passed in (``now``), so tests drive a fake clock.
* Rule 4 -- tokens are random (``secrets``), stored only as SHA-256 digests, expire, and
  are revoked at ``auth.logout``; the client library reconnects with its token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from typing import Protocol

from cti.messages import CtiRequestError, ErrorCode
from cti.roles import Principal, Role

logger = logging.getLogger(__name__)

__all__ = [
    "Authenticator",
    "CtiUser",
    "LoginThrottle",
    "MemoryUserDirectory",
    "TokenStore",
    "UserDirectory",
    "hash_password",
    "verify_password",
]

SCRYPT_LOG2_N = 14
"""n = 2**14, r = 8, p = 1: the RFC 7914 §2 interactive-login parameters (16 MiB, ~50 ms)."""
_SALT_BYTES = 16


def hash_password(password: str, *, log2_n: int = SCRYPT_LOG2_N, r: int = 8, p: int = 1,
                  salt: bytes | None = None) -> str:
    """Hash ``password`` with a fresh random salt (Rule 1)."""
    if not password:
        raise ValueError("the password must not be empty")
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    key = hashlib.scrypt(password.encode(), salt=salt, n=2 ** log2_n, r=r, p=p,
                         maxmem=2 ** (log2_n + 12) * r, dklen=32)
    return f"scrypt${log2_n}${r}${p}${salt.hex()}${key.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; False for a malformed hash too."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
    except ValueError:
        return False
    if not (1 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
        return False
    got = hashlib.scrypt(password.encode(), salt=salt, n=2 ** log2_n, r=r, p=p,
                         maxmem=2 ** (log2_n + 12) * r, dklen=len(key))
    return hmac.compare_digest(got, key)


@dataclass(frozen=True, slots=True)
class CtiUser:
    """A CTI account as the user store returns it (never the password itself)."""

    name: str
    role: Role
    password_hash: str
    queues: frozenset[str] = frozenset()
    all_queues: bool = False
    agent_id: str | None = None
    enabled: bool = True

    def principal(self) -> Principal:
        """The identity a session acts as after login."""
        return Principal(self.name, self.role, self.queues,
                         self.all_queues or self.role is Role.ADMIN, self.agent_id)


class UserDirectory(Protocol):
    """Where CTI users live (``storage.cti_models.CtiUserRepository`` implements it)."""

    async def get_user(self, name: str) -> CtiUser | None:
        """The user, or None."""
        ...


class MemoryUserDirectory:
    """An in-memory :class:`UserDirectory` (tests, benchmark, embedded use)."""

    def __init__(self, users: list[CtiUser] | None = None) -> None:
        self._users = {u.name: u for u in users or []}

    def add(self, user: CtiUser) -> None:
        self._users[user.name] = user

    async def get_user(self, name: str) -> CtiUser | None:
        return self._users.get(name)


@dataclass(slots=True)
class _Failures:
    times: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginThrottle:
    """Rule 3: count failures per key (the user name) and lock it out.

    Args:
        max_failures: failures within ``window_s`` that trigger a lock.
        window_s: sliding window for counting failures.
        lockout_s: how long the lock lasts.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 300.0,
                 lockout_s: float = 300.0) -> None:
        if max_failures < 1 or window_s <= 0 or lockout_s <= 0:
            raise ValueError("max_failures >= 1, window_s > 0 and lockout_s > 0 are required")
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._state: dict[str, _Failures] = {}

    def locked_until(self, key: str, now: float) -> float | None:
        """The end of the current lock on ``key``, or None when not locked."""
        entry = self._state.get(key)
        if entry is None or entry.locked_until <= now:
            return None
        return entry.locked_until

    def record_failure(self, key: str, now: float) -> bool:
        """Count a failure; return True when it locks ``key``."""
        entry = self._state.setdefault(key, _Failures())
        entry.times = [t for t in entry.times if now - t < self.window_s]
        entry.times.append(now)
        if len(entry.times) >= self.max_failures:
            entry.locked_until = now + self.lockout_s
            entry.times.clear()
            logger.warning("CTI login locked for %s until +%.0f s", key, self.lockout_s)
            return True
        return False

    def record_success(self, key: str) -> None:
        """A successful login clears the failure count."""
        self._state.pop(key, None)

    def unlock(self, key: str) -> None:
        """Administrative unlock."""
        self._state.pop(key, None)


class TokenStore:
    """Rule 4: opaque bearer tokens for reconnects, kept as SHA-256 digests."""

    def __init__(self, ttl_s: float = 12 * 3600.0) -> None:
        self.ttl_s = ttl_s
        self._tokens: dict[bytes, tuple[Principal, float]] = {}

    @staticmethod
    def _digest(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def issue(self, principal: Principal, now: float) -> str:
        """A new token for ``principal``, valid for ``ttl_s``."""
        self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
        token = secrets.token_urlsafe(32)
        self._tokens[self._digest(token)] = (principal, now + self.ttl_s)
        return token

    def verify(self, token: str, now: float) -> Principal | None:
        """The principal of a live token, or None."""
        entry = self._tokens.get(self._digest(token))
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def revoke(self, token: str) -> None:
        self._tokens.pop(self._digest(token), None)

    def revoke_user(self, user: str) -> None:
        """Drop every token of ``user`` (user removed or disabled)."""
        self._tokens = {k: v for k, v in self._tokens.items() if v[0].user != user}


_DUMMY_HASH = hash_password("not-a-real-password", salt=b"\0" * _SALT_BYTES)
_BAD_CREDENTIALS = "bad user name or password"


class Authenticator:
    """Password or token login with lockout (the server's ``auth.login``).

    Args:
        directory: the user store.
        throttle: lockout policy.
        tokens: token store.
    """

    def __init__(self, directory: UserDirectory, throttle: LoginThrottle | None = None,
                 tokens: TokenStore | None = None) -> None:
        self.directory = directory
        self.throttle = throttle or LoginThrottle()
        self.tokens = tokens or TokenStore()

    async def login(self, *, user: str | None, password: str | None, token: str | None,
                    now: float) -> tuple[Principal, str]:
        """Authenticate; return the principal and a fresh token.

        Raises:
            CtiRequestError: ``invalid_args`` (neither password nor token), ``locked_out``,
                or ``auth_failed``.
        """
        if token is not None:
            principal = self.tokens.verify(token, now)
            if principal is None or (user is not None and user != principal.user):
                raise CtiRequestError(ErrorCode.AUTH_FAILED, "invalid or expired token",
                                      "token")
            record = await self.directory.get_user(principal.user)
            if record is None or not record.enabled:
                self.tokens.revoke(token)
                raise CtiRequestError(ErrorCode.AUTH_FAILED, "invalid or expired token",
                                      "token")
            return record.principal(), token
        if user is None or password is None:
            raise CtiRequestError(ErrorCode.INVALID_ARGS,
                                  "auth.login needs user and password, or token", "password")
        until = self.throttle.locked_until(user, now)
        if until is not None:
            raise CtiRequestError(ErrorCode.LOCKED_OUT,
                                  f"too many failed logins; retry in {until - now:.0f} s",
                                  "user")
        record = await self.directory.get_user(user)
        stored = record.password_hash if record is not None else _DUMMY_HASH
        ok = await asyncio.to_thread(verify_password, password, stored)  # Rule 2
        if not ok or record is None or not record.enabled:
            if self.throttle.record_failure(user, now):
                raise CtiRequestError(ErrorCode.LOCKED_OUT,
                                      "too many failed logins; the account is locked", "user")
            raise CtiRequestError(ErrorCode.AUTH_FAILED, _BAD_CREDENTIALS, "password")
        self.throttle.record_success(user)
        principal = record.principal()
        return principal, self.tokens.issue(principal, now)
