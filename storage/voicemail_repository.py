"""Voicemail messages and call-forwarding settings in storage.

Rules:

* Rule 1 -- the tables are created on first use (``ensure_tables``), so the repositories
  work on any :class:`~storage.db.Database`, including one the CLI opened while the node
  runs (SQLite WAL lets both use the file).
* Rule 2 -- every timestamp is stored and returned in UTC (SQLite keeps no zone: values
  read back are marked UTC again).
* Rule 3 -- forwarding rows are read by the node in one query (:meth:`ForwardRepository.all`)
  and cached (``switch.forwarding.ForwardingTable``): the call path never waits for the
  database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select

from storage.cdr_repository import ensure_tables
from storage.db import Database
from storage.voicemail_models import CallForward, VoicemailMessage
from switch.forwarding import ForwardSettings

__all__ = ["ForwardRepository", "MessageInfo", "VoicemailRepository"]


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """One stored voicemail message."""

    id: int
    box: str
    caller: str
    call_id: str
    created_at: dt.datetime
    duration_s: float
    path: str
    ended_by: str


def _info(row: VoicemailMessage) -> MessageInfo:
    return MessageInfo(row.id, row.box, row.caller, row.call_id, _utc(row.created_at),
                       row.duration_s, row.path, row.ended_by)


class VoicemailRepository:
    """Mailbox messages (Rule 1)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._ready = False

    async def ensure_schema(self) -> None:
        if not self._ready:
            await ensure_tables(self._db, [VoicemailMessage.__table__])  # type: ignore[list-item]
            self._ready = True

    async def add(self, box: str, caller: str, call_id: str, duration_s: float, path: str,
                  ended_by: str, created_at: dt.datetime | None = None) -> MessageInfo:
        """Store a message; returns it with its id.

        Raises:
            StorageError: the database failed (nothing stored).
        """
        await self.ensure_schema()
        row = VoicemailMessage(box=box, caller=caller, call_id=call_id,
                               duration_s=round(duration_s, 3), path=path, ended_by=ended_by,
                               created_at=created_at or dt.datetime.now(dt.UTC))
        async with self._db.transaction() as session:
            session.add(row)
            await session.flush()
            return _info(row)

    async def list(self, box: str | None = None) -> list[MessageInfo]:
        """Messages, oldest first; only ``box``'s when given."""
        await self.ensure_schema()
        query = select(VoicemailMessage).order_by(VoicemailMessage.id)
        if box is not None:
            query = query.where(VoicemailMessage.box == box)
        async with self._db.transaction() as session:
            return [_info(row) for row in (await session.scalars(query)).all()]

    async def get(self, message_id: int) -> MessageInfo | None:
        await self.ensure_schema()
        async with self._db.transaction() as session:
            row = await session.get(VoicemailMessage, message_id)
            return _info(row) if row is not None else None

    async def delete(self, message_id: int) -> MessageInfo | None:
        """Delete the row; returns what was deleted (None: no such message)."""
        await self.ensure_schema()
        async with self._db.transaction() as session:
            row = await session.get(VoicemailMessage, message_id)
            if row is None:
                return None
            info = _info(row)
            await session.delete(row)
            return info


class ForwardRepository:
    """Per-extension call forwarding (Rules 1 and 3)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._ready = False

    async def ensure_schema(self) -> None:
        if not self._ready:
            await ensure_tables(self._db, [CallForward.__table__])  # type: ignore[list-item]
            self._ready = True

    async def get(self, extension: str) -> ForwardSettings | None:
        await self.ensure_schema()
        async with self._db.transaction() as session:
            row = await session.get(CallForward, extension)
            return _settings(row) if row is not None else None

    async def all(self) -> dict[str, ForwardSettings]:
        """Every extension with a forward set (Rule 3)."""
        await self.ensure_schema()
        async with self._db.transaction() as session:
            rows = (await session.scalars(select(CallForward))).all()
            return {row.extension: _settings(row) for row in rows}

    async def set(self, settings: ForwardSettings) -> None:
        """Store ``settings`` (replacing the extension's row); all-empty deletes it."""
        await self.ensure_schema()
        async with self._db.transaction() as session:
            row = await session.get(CallForward, settings.extension)
            if not settings.any():
                if row is not None:
                    await session.delete(row)
                return
            if row is None:
                row = CallForward(extension=settings.extension)
                session.add(row)
            row.always, row.busy, row.no_answer = (settings.always, settings.busy,
                                                   settings.no_answer)
            row.ring_s = settings.ring_s

    async def clear(self, extension: str) -> bool:
        """Remove every forward of ``extension``; False if none was set."""
        await self.ensure_schema()
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(CallForward).where(CallForward.extension == extension))
            return bool(result.rowcount)


def _settings(row: CallForward) -> ForwardSettings:
    return ForwardSettings(row.extension, row.always or "", row.busy or "",
                           row.no_answer or "", row.ring_s)
