"""Queue log storage: implements the writer's sink (``switch.queue_log.QueueLogStore``) and
the reads the KPI report needs (``softswitch queue stats``).

Rules:

* Rule 1 -- :meth:`QueueLogRepository.insert_many` is idempotent on ``uid``: entries already
  stored are skipped, so a spool replayed after a crash writes each entry once.
* Rule 2 -- reads return :class:`~switch.acd.log.QueueLogEntry` values in append order
  (time, then row id), the order :mod:`switch.acd.kpi` expects.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from storage.acd_log_models import QueueLogRow
from storage.cdr_repository import ensure_tables
from storage.db import Database
from switch.acd.log import QueueEvent, QueueLogEntry

logger = logging.getLogger(__name__)

__all__ = ["QueueLogRepository"]

_CHUNK = 500
"""uids per IN (...) list (SQLite's historic 999-parameter limit)."""


class QueueLogRepository:
    """The ``queue_log`` table on a :class:`~storage.db.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure_schema(self) -> None:
        """Create the table if missing (a database created before this feature)."""
        await ensure_tables(self.db, [QueueLogRow.__table__])  # type: ignore[list-item]

    async def insert_many(self, batch: Sequence[tuple[str, QueueLogEntry]]) -> int:
        """Store ``(uid, entry)`` pairs not stored yet (Rule 1); return how many were new.

        Raises:
            StorageUnavailableError: nothing was written; retry later.
            StorageError: the batch was refused.
        """
        if not batch:
            return 0
        async with self.db.transaction() as session:
            known = await self._known(session, [uid for uid, _ in batch])
            fresh = [QueueLogRow(uid=uid, time=e.time, queue=e.queue, call_id=e.call_id,
                                 agent=e.agent, event=e.event.value,
                                 data=json.dumps(list(e.data), ensure_ascii=False))
                     for uid, e in batch if uid not in known]
            session.add_all(fresh)
        return len(fresh)

    @staticmethod
    async def _known(session: Any, uids: list[str]) -> set[str]:
        known: set[str] = set()
        for i in range(0, len(uids), _CHUNK):
            rows = await session.execute(
                select(QueueLogRow.uid).where(QueueLogRow.uid.in_(uids[i:i + _CHUNK])))
            known.update(rows.scalars())
        return known

    async def stored(self, uids: list[str]) -> set[str]:
        """Which of ``uids`` are stored (to merge a writer's spool without duplicates)."""
        async with self.db.transaction() as session:
            return await self._known(session, uids)

    async def entries(self, *, since: float | None = None, until: float | None = None,
                      queue: str | None = None) -> list[QueueLogEntry]:
        """Entries with ``since <= time < until`` (Rule 2). With ``queue``, that queue's
        entries plus the agent-only ones (queue "NONE"), which agent KPIs need."""
        stmt = select(QueueLogRow).order_by(QueueLogRow.time, QueueLogRow.id)
        if since is not None:
            stmt = stmt.where(QueueLogRow.time >= since)
        if until is not None:
            stmt = stmt.where(QueueLogRow.time < until)
        if queue is not None:
            stmt = stmt.where(QueueLogRow.queue.in_((queue, "NONE")))
        async with self.db.transaction() as session:
            rows = (await session.execute(stmt)).scalars().all()
        return [QueueLogEntry(r.time, r.queue, r.call_id, r.agent, QueueEvent(r.event),
                              tuple(json.loads(r.data)) if r.data else ())
                for r in rows]
