"""Branch, tag and Call-ID generation (RFC 3261 §8.1.1.4, §8.1.1.7, §19.3).

The generator takes an injected ``random.Random`` so tests are deterministic (no hidden
randomness, STYLE §4.10); production passes ``random.SystemRandom()``, which draws from the
OS generator as §19.3 asks ("cryptographically random" tags are RECOMMENDED for Call-ID
and tags since they guard against dialog hijacking).
"""

from __future__ import annotations

import random

__all__ = ["MAGIC_COOKIE", "IdGenerator"]

#: §8.1.1.7: branches created by RFC 3261 implementations start with this cookie.
MAGIC_COOKIE = "z9hG4bK"


class IdGenerator:
    """Makes unique tokens from one random source.

    Each token is ``bits`` random bits in hex, prefixed where the RFC asks. A counter
    is mixed into branches so that two transactions created in the same instant by a
    seeded generator still differ even if the seed is reused by mistake.
    """

    __slots__ = ("_counter", "_rng")

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.SystemRandom()
        self._counter = 0

    def _token(self, bits: int) -> str:
        # Lower-case hex: one C-level format call (this runs for every tag we answer with).
        return f"{self._rng.getrandbits(bits):x}"

    def branch(self) -> str:
        """A Via branch unique in space and time, with the z9hG4bK cookie (§8.1.1.7)."""
        self._counter += 1
        return f"{MAGIC_COOKIE}{self._token(64)}.{self._counter:x}"

    def tag(self) -> str:
        """A From/To tag: at least 32 bits of randomness (§19.3)."""
        return self._token(48)

    def call_id(self, host: str | None = None) -> str:
        """A Call-ID (§8.1.1.4), ``random@host`` when a host is given."""
        token = self._token(96)
        return f"{token}@{host}" if host else token

    def randint(self, low: int, high: int) -> int:
        """A random integer in [low, high] from the same source (e.g. §14.2 Retry-After)."""
        return self._rng.randint(low, high)
