"""Demo users created at a node's first start, so the hotline demo works out of the box.

The ten extensions 1001-1010 get random passwords (``secrets``, never a fixed default that
would be the same on every installation). The passwords exist in clear only in the value
returned here: the node prints them once to stdout for the operator (never to the log), and
the database keeps only their HA1s. Nothing happens when any user already exists, so
removing the demo users and adding real ones is permanent.
"""

from __future__ import annotations

import logging
import secrets

from storage.repositories import UserRepository

logger = logging.getLogger(__name__)

__all__ = ["DEMO_USERNAMES", "ensure_demo_users", "format_demo_users"]

DEMO_USERNAMES: tuple[str, ...] = tuple(str(n) for n in range(1001, 1011))
"""The demo extensions, 1001 to 1010."""

_PASSWORD_BYTES = 9
"""token_urlsafe(9): 12 characters, 72 bits of entropy; easy to type into a phone."""


async def ensure_demo_users(repo: UserRepository, realm: str) -> list[tuple[str, str]]:
    """Create the demo users when the directory is empty.

    Args:
        repo: the user directory.
        realm: the realm their HA1s are computed for (the SIP realm of the node).

    Returns:
        ``(username, password)`` for each created user, to be shown once; ``[]`` when users
        already existed.

    Raises:
        StorageError: the database failed (nothing was created: it is one transaction).
    """
    if await repo.count() > 0:
        return []
    pairs = [(name, secrets.token_urlsafe(_PASSWORD_BYTES)) for name in DEMO_USERNAMES]
    await repo.add_many([(name, password, f"Demo {name}") for name, password in pairs], realm)
    logger.info("created demo users %s-%s (passwords shown once on stdout)",
                DEMO_USERNAMES[0], DEMO_USERNAMES[-1])
    return pairs


def format_demo_users(pairs: list[tuple[str, str]], realm: str) -> str:
    """The text the node prints once to stdout (not to the log) after creating demo users."""
    lines = [
        f"Created demo SIP users in realm {realm!r}. Their passwords are shown only this once;",
        "change them with: softswitch user passwd NAME --password NEW",
        "",
        "  user   password",
    ]
    lines += [f"  {user}   {password}" for user, password in pairs]
    return "\n".join(lines) + "\n"
