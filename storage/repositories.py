"""Repositories: the storage side of the Protocols that ``signaling.location`` declares.

* :class:`UserRepository` is the user directory (``CredentialStore``) plus the admin
  operations behind ``softswitch user ...``. Passwords come in, HA1s go to the database
  (RFC 7616 §3.4.2: one per algorithm we offer, MD5 and SHA-256); a password is never stored,
  returned or logged.
* :class:`LocationRepository` is the ``LocationStore``. The registrar keeps bindings in
  memory and is authoritative while the node runs; the shell hands changes here
  write-behind, batched every ~200 ms, so a REGISTER never waits for the database.
  :meth:`LocationRepository.replace_bindings` therefore writes a whole batch (hundreds of
  AORs) in one transaction with a few set-based statements.

Failure contract: every method raises :class:`~storage.db.StorageError` subclasses only. On
:class:`~storage.db.StorageUnavailableError` nothing was written and the caller retries
(the write-behind keeps the batch and merges later changes into it).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Result, delete, func, insert, select, update

from signaling.location import Binding, UserCredentials, compute_ha1
from storage.db import Database, StorageConflictError, StorageError
from storage.models import RegistrationBinding, SipUser

logger = logging.getLogger(__name__)

__all__ = [
    "DuplicateUserError",
    "InvalidUserError",
    "LocationRepository",
    "UnknownUserError",
    "UserInfo",
    "UserRepository",
]

_SQL_CHUNK = 500
"""Rows per IN (...) list: below SQLite's historic 999 bound-parameter limit."""

_USERNAME = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]{1,64}")
"""RFC 3261 §25.1 ``user`` characters (unreserved / user-unreserved, no escapes), so the
name can stand unquoted in a SIP URI; 64 characters is the column size."""


class DuplicateUserError(StorageConflictError):
    """``user add`` for a username that exists."""


class UnknownUserError(StorageError):
    """The named user does not exist."""


class InvalidUserError(StorageError):
    """A username or password that cannot be stored (bad characters, empty password)."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    """What ``user list`` shows: never a password or an HA1."""

    username: str
    realm: str
    display_name: str | None
    enabled: bool
    created_at: dt.datetime


def _check_username(username: str) -> None:
    if not _USERNAME.fullmatch(username):
        raise InvalidUserError(
            f"invalid username {username!r}: use 1-64 letters, digits or - _ . ! ~ * ' ( ) "
            "& = + $ , ; ? /"
        )


def _check_password(password: str) -> None:
    if not password:
        raise InvalidUserError("the password must not be empty")


def _ha1_columns(username: str, realm: str, password: str) -> dict[str, str]:
    return {
        "ha1_md5": compute_ha1(username, realm, password, "MD5"),
        "ha1_sha256": compute_ha1(username, realm, password, "SHA-256"),
    }


def _rowcount(result: Result[Any]) -> int:
    """Rows a DELETE/UPDATE touched (its result is a CursorResult)."""
    return int(cast(CursorResult[Any], result).rowcount)


def _info(row: SipUser) -> UserInfo:
    created = row.created_at
    if created.tzinfo is None:  # SQLite drops the zone; the value was written in UTC
        created = created.replace(tzinfo=dt.UTC)
    return UserInfo(row.username, row.realm, row.display_name, row.enabled, created)


class UserRepository:
    """The SIP user directory. Implements ``signaling.location.CredentialStore``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, username: str, password: str, realm: str, display_name: str | None = None
    ) -> UserInfo:
        """Create a user, storing only its HA1s.

        Raises:
            InvalidUserError: bad username or empty password.
            DuplicateUserError: the username exists.
        """
        [info] = await self.add_many([(username, password, display_name)], realm)
        return info

    async def add_many(
        self, users: Sequence[tuple[str, str, str | None]], realm: str
    ) -> list[UserInfo]:
        """Create several users (username, password, display_name) in one transaction.

        All or nothing: if one is invalid or exists, none is created.
        """
        for username, password, _ in users:
            _check_username(username)
            _check_password(password)
        rows = [
            SipUser(username=u, realm=realm, display_name=d, enabled=True,
                    **_ha1_columns(u, realm, p))
            for u, p, d in users
        ]
        names = [u for u, _, _ in users]
        if len(set(names)) != len(names):
            raise InvalidUserError("a username is given twice")
        try:
            async with self._db.transaction() as session:
                existing = await session.scalars(
                    select(SipUser.username).where(SipUser.username.in_(names)))
                taken = sorted(existing)
                if taken:
                    raise DuplicateUserError(f"user already exists: {', '.join(taken)}")
                session.add_all(rows)
        except DuplicateUserError:
            raise
        except StorageConflictError as exc:  # created by someone else meanwhile
            raise DuplicateUserError(f"user already exists: {', '.join(names)}") from exc
        logger.info("added %d user(s): %s", len(rows), ", ".join(r.username for r in rows))
        return [_info(r) for r in rows]

    async def get(self, username: str) -> UserInfo | None:
        """The user, or None if there is no such user."""
        async with self._db.transaction() as session:
            row = await session.scalar(select(SipUser).where(SipUser.username == username))
            return None if row is None else _info(row)

    async def count(self) -> int:
        """How many users exist."""
        async with self._db.transaction() as session:
            return int(await session.scalar(select(func.count()).select_from(SipUser)) or 0)

    async def remove(self, username: str) -> None:
        """Delete a user. Its registrations expire on their own (or at the next restart).

        Raises:
            UnknownUserError: no such user.
        """
        async with self._db.transaction() as session:
            result = await session.execute(delete(SipUser).where(SipUser.username == username))
            if _rowcount(result) == 0:
                raise UnknownUserError(f"no such user: {username}")
        logger.info("removed user %s", username)

    async def set_password(self, username: str, password: str, realm: str | None = None) -> None:
        """Replace the user's HA1s; with ``realm``, also move the user to that realm.

        Raises:
            InvalidUserError: empty password.
            UnknownUserError: no such user.
        """
        _check_password(password)
        async with self._db.transaction() as session:
            row = await session.scalar(select(SipUser).where(SipUser.username == username))
            if row is None:
                raise UnknownUserError(f"no such user: {username}")
            new_realm = row.realm if realm is None else realm
            await session.execute(
                update(SipUser)
                .where(SipUser.id == row.id)
                .values(realm=new_realm, **_ha1_columns(username, new_realm, password))
            )
        logger.info("password changed for user %s", username)

    async def set_enabled(self, username: str, enabled: bool) -> None:
        """Enable or disable a user without touching its secrets.

        Raises:
            UnknownUserError: no such user.
        """
        async with self._db.transaction() as session:
            result = await session.execute(
                update(SipUser).where(SipUser.username == username).values(enabled=enabled)
            )
            if _rowcount(result) == 0:
                raise UnknownUserError(f"no such user: {username}")

    async def fingerprint(self) -> tuple[int, str]:
        """(user count, latest change time): changes whenever a user is added, removed or
        edited, e.g. by ``softswitch user ...`` while the node runs. A node polls this every
        few seconds and calls :meth:`load_users` again only when it differs."""
        async with self._db.transaction() as session:
            count, latest = (await session.execute(
                select(func.count(), func.max(SipUser.updated_at)))).one()
            return int(count), str(latest or "")

    async def load_users(self) -> list[UserCredentials]:
        """``CredentialStore.load_users``: every user with its HA1 per algorithm."""
        async with self._db.transaction() as session:
            rows = await session.scalars(select(SipUser).order_by(SipUser.username))
            return [
                UserCredentials(
                    username=r.username,
                    realm=r.realm,
                    ha1={"MD5": r.ha1_md5, "SHA-256": r.ha1_sha256},
                    enabled=r.enabled,
                )
                for r in rows
            ]


    async def list(self) -> list[UserInfo]:
        """Every user, by username."""
        async with self._db.transaction() as session:
            rows = await session.scalars(select(SipUser).order_by(SipUser.username))
            return [_info(r) for r in rows]


def _binding_row(binding: Binding) -> dict[str, object]:
    return {
        "aor": binding.aor,
        "contact": binding.contact,
        "expires_at": binding.expires_at,
        "q": binding.q,
        "call_id": binding.call_id,
        "cseq": binding.cseq,
        "transport": binding.transport,
        "source_host": binding.source_host,
        "source_port": binding.source_port,
        "registered_contact": binding.registered_contact,
        "user_agent": binding.user_agent,
        "instance_id": binding.instance_id,
        "reg_id": binding.reg_id,
        "params": json.dumps([list(p) for p in binding.params]),
    }


def _decode_params(text: str, aor: str) -> tuple[tuple[str, str], ...]:
    try:
        pairs = json.loads(text)
        return tuple((str(k), str(v)) for k, v in pairs)
    except (ValueError, TypeError):
        logger.warning("ignoring unreadable contact parameters of a binding of %s", aor)
        return ()


def _binding(row: RegistrationBinding) -> Binding:
    return Binding(
        aor=row.aor,
        contact=row.contact,
        expires_at=row.expires_at,
        q=row.q,
        call_id=row.call_id,
        cseq=row.cseq,
        transport=row.transport,
        source_host=row.source_host,
        source_port=row.source_port,
        registered_contact=row.registered_contact,
        user_agent=row.user_agent,
        instance_id=row.instance_id,
        reg_id=row.reg_id,
        params=_decode_params(row.params, row.aor),
    )


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class LocationRepository:
    """Registrar bindings. Implements ``signaling.location.LocationStore``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def load_bindings(self) -> list[Binding]:
        """Every stored binding, expired ones included: the registrar discards those with
        its own clock, so this method needs none."""
        async with self._db.transaction() as session:
            rows = await session.scalars(
                select(RegistrationBinding).order_by(
                    RegistrationBinding.aor, RegistrationBinding.id
                )
            )
            return [_binding(r) for r in rows]

    async def replace_bindings(self, changes: dict[str, list[Binding]]) -> None:
        """Make each AOR's stored bindings exactly the given list, all AORs in ONE transaction.

        An empty list removes the AOR's bindings. Within one AOR a contact given twice keeps
        its last binding (the (aor, contact) pair is unique). Bindings whose ``aor`` differs
        from the key are stored under the key.

        Raises:
            StorageUnavailableError: nothing was written; retry with the same (or a merged)
                batch -- the operation is idempotent.
        """
        if not changes:
            return
        rows: list[dict[str, object]] = []
        for aor, bindings in changes.items():
            by_contact = {b.contact: b for b in bindings}
            for binding in by_contact.values():
                row = _binding_row(binding)
                row["aor"] = aor
                rows.append(row)
        aors = list(changes)
        async with self._db.transaction() as session:
            for chunk in _chunks(aors, _SQL_CHUNK):
                await session.execute(
                    delete(RegistrationBinding).where(RegistrationBinding.aor.in_(chunk))
                )
            if rows:
                await session.execute(insert(RegistrationBinding), rows)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("stored bindings of %d AOR(s): %d contact(s)", len(aors), len(rows))

    async def count(self) -> int:
        """How many bindings are stored (for status output and tests)."""
        async with self._db.transaction() as session:
            return int(
                await session.scalar(select(func.count()).select_from(RegistrationBinding)) or 0
            )
