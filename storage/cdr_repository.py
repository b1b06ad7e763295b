"""CDR storage: implements ``switch.cdr.CdrSink`` and the queries reports and the CTI need.

Rules:

* Rule 1 -- :meth:`CdrRepository.insert_many` is idempotent: CDRs whose ``uuid`` is already
  stored are skipped, so the writer may replay its spool after a crash (``switch/cdr.py``).
* Rule 2 -- every timestamp is stored in UTC; values read back from SQLite (which keeps no
  zone) are marked UTC again. Query bounds may be given in any zone.
* Rule 3 -- the tables are created on first use if the node started before this module was
  imported (``ensure_tables``), so a repository works on any :class:`~storage.db.Database`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Sequence

from sqlalchemy import Table, func, insert, select

from storage.cdr_models import Cdr as CdrRow
from storage.cdr_models import CdrLeg as CdrLegRow
from storage.db import Database
from storage.models import Base
from switch.cdr import Cdr, CdrLeg, Disposition

logger = logging.getLogger(__name__)

__all__ = ["CdrRepository", "ensure_tables"]

_CHUNK = 500
"""uuids per IN (...) list (SQLite's historic 999-parameter limit)."""


async def ensure_tables(db: Database, tables: Iterable[Table]) -> None:
    """Create the given tables if they are missing (Rule 3); idempotent.

    Raises:
        StorageUnavailableError: the database failed.
    """
    wanted = list(tables)
    async with db.transaction() as session:
        conn = await session.connection()
        await conn.run_sync(lambda sync: Base.metadata.create_all(sync, tables=wanted))


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _values(cdr: Cdr) -> dict[str, object]:
    """The ``cdrs`` row of a CDR as column values, for a Core executemany insert."""
    return {
        "uuid": cdr.uuid, "call_id": cdr.call_id, "caller": cdr.caller, "callee": cdr.callee,
        "start_at": _aware(cdr.start_at), "answer_at": _aware(cdr.answer_at),
        "end_at": _aware(cdr.end_at), "disposition": cdr.disposition.value,
        "route": cdr.route, "target": cdr.target, "source": cdr.source,
        "hangup_cause": cdr.hangup_cause, "hangup_side": cdr.hangup_side,
        "sip_status": cdr.sip_status, "codec": cdr.codec, "recording_ref": cdr.recording_ref,
        "queue": cdr.queue, "agent_id": cdr.agent_id,
        "tags": json.dumps(dict(cdr.tags), ensure_ascii=False),
        "duration_s": cdr.duration_s, "billsec": cdr.billsec,
    }


def _leg_values(cdr_id: int, leg: CdrLeg) -> dict[str, object]:
    return {"cdr_id": cdr_id, "channel": leg.channel, "role": leg.role, "codec": leg.codec,
            "remote": leg.remote, "packets_received": leg.packets_received,
            "packets_lost": leg.packets_lost, "loss_pct": leg.loss_pct,
            "jitter_ms": leg.jitter_ms, "rtt_ms": leg.rtt_ms, "mos": leg.mos}


def _tags(text: str) -> dict[str, str]:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _cdr(row: CdrRow) -> Cdr:
    start, end = _aware(row.start_at), _aware(row.end_at)
    assert start is not None and end is not None
    return Cdr(
        uuid=row.uuid, call_id=row.call_id, caller=row.caller, callee=row.callee,
        start_at=start, end_at=end, answer_at=_aware(row.answer_at),
        disposition=Disposition(row.disposition), route=row.route, target=row.target,
        source=row.source, hangup_cause=row.hangup_cause, hangup_side=row.hangup_side,
        sip_status=row.sip_status, codec=row.codec, recording_ref=row.recording_ref,
        queue=row.queue, agent_id=row.agent_id, tags=_tags(row.tags),
        legs=tuple(CdrLeg(channel=leg.channel, role=leg.role, codec=leg.codec,
                          remote=leg.remote, packets_received=leg.packets_received,
                          packets_lost=leg.packets_lost, jitter_ms=leg.jitter_ms,
                          rtt_ms=leg.rtt_ms, mos=leg.mos) for leg in row.legs),
    )


class CdrRepository:
    """CDRs in the database. Implements ``switch.cdr.CdrSink``."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._ready = False

    async def ensure_schema(self) -> None:
        """Create the CDR tables if missing (Rule 3)."""
        if not self._ready:
            await ensure_tables(self._db, [CdrRow.__table__, CdrLegRow.__table__])  # type: ignore[list-item]
            self._ready = True

    async def insert_many(self, cdrs: Sequence[Cdr]) -> int:
        """Store the CDRs not stored yet, in one transaction; returns how many were new.

        Raises:
            StorageUnavailableError: nothing was written; retry with the same batch.
            StorageConflictError: a row was refused (the writer isolates it).
        """
        await self.ensure_schema()
        if not cdrs:
            return 0
        unique = list({c.uuid: c for c in cdrs}.values())
        async with self._db.transaction() as session:
            known: set[str] = set()
            for start in range(0, len(unique), _CHUNK):
                chunk = [c.uuid for c in unique[start:start + _CHUNK]]
                known.update(await session.scalars(
                    select(CdrRow.uuid).where(CdrRow.uuid.in_(chunk))))
            fresh = [c for c in unique if c.uuid not in known]
            if fresh:
                # Core executemany, not ORM objects: a busy node writes hundreds of CDRs a
                # second and the ORM's unit of work costs ~10x more CPU per row.
                await session.execute(insert(CdrRow.__table__), [_values(c) for c in fresh])
                ids: dict[str, int] = {}
                for start in range(0, len(fresh), _CHUNK):
                    chunk = [c.uuid for c in fresh[start:start + _CHUNK]]
                    rows = await session.execute(
                        select(CdrRow.uuid, CdrRow.id).where(CdrRow.uuid.in_(chunk)))
                    ids.update((u, i) for u, i in rows)
                legs = [_leg_values(ids[c.uuid], leg) for c in fresh for leg in c.legs]
                if legs:
                    await session.execute(insert(CdrLegRow.__table__), legs)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("stored %d CDR(s), %d already present", len(fresh), len(known))
        return len(fresh)

    async def between(self, start: dt.datetime, end: dt.datetime, *, caller: str | None = None,
                      limit: int = 1000) -> list[Cdr]:
        """CDRs that started in ``[start, end)``, oldest first, optionally of one caller."""
        await self.ensure_schema()
        query = select(CdrRow).where(CdrRow.start_at >= _aware(start),
                                     CdrRow.start_at < _aware(end))
        if caller is not None:
            query = query.where(CdrRow.caller == caller)
        async with self._db.transaction() as session:
            rows = await session.scalars(query.order_by(CdrRow.start_at, CdrRow.id).limit(limit))
            return [_cdr(r) for r in rows]

    async def recent_for_caller(self, caller: str, limit: int = 5) -> list[Cdr]:
        """The caller's latest calls, newest first (CTI screen pop: "called 3 times today")."""
        await self.ensure_schema()
        async with self._db.transaction() as session:
            rows = await session.scalars(
                select(CdrRow).where(CdrRow.caller == caller)
                .order_by(CdrRow.start_at.desc(), CdrRow.id.desc()).limit(limit))
            return [_cdr(r) for r in rows]

    async def get(self, uuid: str) -> Cdr | None:
        await self.ensure_schema()
        async with self._db.transaction() as session:
            row = await session.scalar(select(CdrRow).where(CdrRow.uuid == uuid))
            return None if row is None else _cdr(row)

    async def count(self) -> int:
        await self.ensure_schema()
        async with self._db.transaction() as session:
            return int(await session.scalar(select(func.count()).select_from(CdrRow)) or 0)
