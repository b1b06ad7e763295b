"""CTI users: the table and the repository behind ``softswitch cti-user`` and CTI logins.

Rules of this module:

* Rule 1 -- a row holds a salted scrypt hash (:func:`cti.auth.hash_password`), never the
  password (IVR_CTI_ACD.md §B.7: AMI's MD5 challenge forced plaintext secrets).
* Rule 2 -- the queue scope is stored as a JSON list of queue names, or ``["*"]`` for every
  queue; roles are the five of :class:`cti.roles.Role`.
* Rule 3 -- :class:`CtiUserRepository` implements :class:`cti.auth.UserDirectory`
  (``get_user``), so the CTI server reaches storage only through that Protocol.

The table is a new section on the shared :class:`~storage.models.Base`: importing this
module before :meth:`storage.db.Database.start` is enough for ``create_all`` to create it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Boolean, DateTime, Integer, String, Text, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from cti.auth import CtiUser, hash_password, verify_password
from cti.roles import Role
from storage.db import Database, StorageConflictError
from storage.models import Base, utc_now
from storage.repositories import DuplicateUserError, InvalidUserError, UnknownUserError

logger = logging.getLogger(__name__)

__all__ = ["CtiUserInfo", "CtiUserRepository", "CtiUserRow"]

_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_QUEUE = re.compile(r"[\w.-]{1,64}")
"""Letters of any script (the demo's queues are 客服组, 报修组...), digits, ``_.-``."""
ALL_QUEUES = "*"


class CtiUserRow(Base):
    """One CTI account (agent desktop, supervisor, wallboard, admin or integration)."""

    __tablename__ = "cti_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    """``scrypt$<log2 n>$<r>$<p>$<salt hex>$<key hex>`` (Rule 1)."""
    queues: Mapped[str] = mapped_column(Text, default="[]")
    """JSON list of queue names, ``["*"]`` for all (Rule 2)."""
    agent_id: Mapped[str | None] = mapped_column(String(64), default=None)
    """The ACD agent this user acts as (agents, supervisors who also take calls)."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


@dataclass(frozen=True, slots=True)
class CtiUserInfo:
    """What ``cti-user list`` shows (never the hash)."""

    name: str
    role: str
    queues: list[str]
    agent_id: str | None
    enabled: bool


def _info(row: CtiUserRow) -> CtiUserInfo:
    return CtiUserInfo(row.name, row.role, json.loads(row.queues), row.agent_id, row.enabled)


def _user(row: CtiUserRow) -> CtiUser:
    queues = json.loads(row.queues)
    return CtiUser(row.name, Role(row.role), row.password_hash,
                   frozenset(q for q in queues if q != ALL_QUEUES), ALL_QUEUES in queues,
                   row.agent_id, row.enabled)


def _check(name: str, role: str, password: str, queues: list[str]) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidUserError(f"invalid CTI user name {name!r}: use 1-64 letters, digits "
                               "or _ . @ -")
    if role not in {r.value for r in Role}:
        raise InvalidUserError(f"unknown role {role!r}: use one of "
                               f"{', '.join(r.value for r in Role)}")
    if not password:
        raise InvalidUserError("the password must not be empty")
    for queue in queues:
        if queue != ALL_QUEUES and not _QUEUE.fullmatch(queue):
            raise InvalidUserError(f"invalid queue name {queue!r}")


class CtiUserRepository:
    """CTI accounts in the database; a :class:`cti.auth.UserDirectory` (Rule 3).

    Args:
        db: the database.
        log2_n: scrypt cost for new hashes (tests lower it; production keeps the default).
    """

    def __init__(self, db: Database, *, log2_n: int | None = None) -> None:
        self._db = db
        self._log2_n = log2_n

    def _hash(self, password: str) -> str:
        if self._log2_n is None:
            return hash_password(password)
        return hash_password(password, log2_n=self._log2_n)

    async def add(self, name: str, role: str, password: str, queues: Iterable[str] = (),
                  agent_id: str | None = None) -> CtiUserInfo:
        """Create a user.

        Raises:
            InvalidUserError: bad name, role, queue or empty password.
            DuplicateUserError: the name exists.
        """
        queue_list = sorted(set(queues))
        _check(name, role, password, queue_list)
        password_hash = await asyncio.to_thread(self._hash, password)
        row = CtiUserRow(name=name, role=role, password_hash=password_hash,
                         queues=json.dumps(queue_list), agent_id=agent_id, enabled=True)
        try:
            async with self._db.transaction() as session:
                if await session.scalar(select(CtiUserRow.id).where(CtiUserRow.name == name)):
                    raise DuplicateUserError(f"CTI user {name} already exists")
                session.add(row)
        except DuplicateUserError:
            raise
        except StorageConflictError as exc:
            raise DuplicateUserError(f"CTI user {name} already exists") from exc
        logger.info("CTI user %s added (role %s)", name, role)
        return _info(row)

    async def list(self) -> list[CtiUserInfo]:
        async with self._db.transaction() as session:
            rows = await session.scalars(select(CtiUserRow).order_by(CtiUserRow.name))
            return [_info(r) for r in rows]

    async def remove(self, name: str) -> None:
        """Raises: UnknownUserError."""
        async with self._db.transaction() as session:
            result = await session.execute(delete(CtiUserRow).where(CtiUserRow.name == name))
            if not getattr(result, "rowcount", 0):
                raise UnknownUserError(f"no CTI user {name}")
        logger.info("CTI user %s removed", name)

    async def get_user(self, name: str) -> CtiUser | None:
        """:class:`cti.auth.UserDirectory`."""
        async with self._db.transaction() as session:
            row = await session.scalar(select(CtiUserRow).where(CtiUserRow.name == name))
            return _user(row) if row is not None else None

    async def verify(self, name: str, password: str) -> bool:
        """True when the user exists, is enabled and the password matches."""
        user = await self.get_user(name)
        if user is None or not user.enabled:
            return False
        return await asyncio.to_thread(verify_password, password, user.password_hash)
