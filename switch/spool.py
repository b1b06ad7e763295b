"""SpooledWriter: write-behind to storage that never loses a record to a database outage.

CDRs (:mod:`switch.cdr`) and the ACD's queue log (:mod:`switch.queue_log`) are records the
call path produces and must never wait for, and that an operator must never lose. Both
follow the same rules, kept here once:

* Rule 1 -- never block the caller: :meth:`SpooledWriter._enqueue` only buffers; a
  background task writes batches of up to ``batch_size`` records in order.
* Rule 2 -- never drop silently: when the database is unavailable
  (``StorageUnavailableError``) the pending records stay in memory AND are appended
  (fsync'ed, one line each) to a spool file; the writer retries every
  ``retry_interval_s`` and empties the spool once everything pending is written.
* Rule 3 -- replay: a spool left behind by a crash is read back at :meth:`start`. Every
  record has a unique key and the store skips keys it has, so a crash between the commit
  and the spool truncation writes no duplicate.
* Rule 4 -- a batch the database refuses for another reason (a constraint, bad data) is
  retried record by record; a record refused on its own is kept in ``<spool>.rejected``
  and logged as an error, and the others are written.
* Rule 5 -- :meth:`close` stops the task and writes what is pending, trying a few times (the
  database may be busy with the other writers at shutdown), else leaves it in the spool.

A subclass says how a record is keyed, encoded as one spool line and decoded back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from storage.db import StorageError, StorageUnavailableError

logger = logging.getLogger(__name__)

__all__ = ["RecordStore", "SpooledWriter"]

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class RecordStore(Protocol[T_contra]):
    """Where records are stored (a repository)."""

    async def insert_many(self, batch: Sequence[T_contra]) -> int:
        """Store the records whose key is new; return how many were new.

        Raises:
            StorageUnavailableError: nothing was written; retry later.
            StorageError: the batch was refused for another reason.
        """
        ...


class SpooledWriter(Generic[T]):
    """Batches records to a :class:`RecordStore` with an outage spool (module Rules 1-5).

    Args:
        store: the table's repository.
        spool_path: the spool file (one encoded record per line).
        what: what the records are called in log lines ("CDR", "queue log entry").
        batch_size: records per database transaction.
        flush_interval_s: how long records may wait to be batched; 0 writes as soon as the
            task runs.
        retry_interval_s: wait between attempts while the database is unavailable.
        linger_s: with ``flush_interval_s`` 0, how long to wait after a record arrives for
            more before writing, so that a busy node writes one transaction per batch and
            not one per record (each costs the event loop milliseconds of CPU).
    """

    def __init__(self, store: RecordStore[T], spool_path: Path, *, what: str,
                 batch_size: int, flush_interval_s: float = 0.0,
                 retry_interval_s: float = 5.0, linger_s: float = 0.0) -> None:
        self._store = store
        self.spool_path = Path(spool_path)
        self.rejected_path = self.spool_path.with_name(self.spool_path.name + ".rejected")
        self.what = what
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_interval_s = retry_interval_s
        self.linger_s = linger_s
        self._pending: list[T] = []
        self._spooled: set[str] = set()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.outage = False
        """True while the last write attempt failed with StorageUnavailableError."""
        self.written = 0
        self.rejected = 0

    # -- what a subclass defines -------------------------------------------------------
    def key(self, record: T) -> str:
        """The record's unique key (the store skips keys it has)."""
        raise NotImplementedError

    def encode(self, record: T) -> str:
        """One spool line, without the newline."""
        raise NotImplementedError

    def decode(self, line: str) -> T:
        """The record of a spool line; ValueError (or KeyError/TypeError) when damaged."""
        raise NotImplementedError

    # -- public ------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Records not yet confirmed in the database."""
        return len(self._pending)

    @property
    def spooled(self) -> int:
        """Pending records that are safe in the spool file."""
        return len(self._spooled)

    async def start(self) -> None:
        """Replay the spool (Rule 3) and start the background writer."""
        self._replay()
        if self._pending:
            await self.flush()
        name = f"{self.what.replace(' ', '-').lower()}-writer"
        self._task = asyncio.get_running_loop().create_task(self._run(), name=name)

    async def flush(self) -> bool:
        """Write everything pending now; True when nothing is left pending. On an outage
        the pending records are spooled (Rule 2) and False is returned."""
        async with self._lock:
            while self._pending:
                batch = self._pending[:self.batch_size]
                try:
                    await self._store.insert_many(batch)
                except StorageUnavailableError as exc:
                    self._enter_outage(exc)
                    return False
                except StorageError as exc:
                    try:
                        await self._one_by_one(batch, exc)
                    except StorageUnavailableError as again:
                        self._enter_outage(again)
                        return False
                del self._pending[:len(batch)]
                self.written += len(batch)
            if self.outage:
                logger.info("%s database back: spooled records written", self.what)
            self.outage = False
            self._clear_spool()
            return True

    async def close(self, attempts: int = 3, pause_s: float = 0.5) -> bool:
        """Stop the background task; write everything pending, else leave it in the spool
        (Rule 5). True when nothing is left pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for attempt in range(attempts):
            if await self.flush():
                return True
            if attempt + 1 < attempts:
                await asyncio.sleep(pause_s)
        return False

    # -- internals ---------------------------------------------------------------------
    def _enqueue(self, record: T, *, wake: bool = True) -> None:
        """Rule 1: buffer ``record``; during an outage it goes to the spool at once."""
        self._pending.append(record)
        if self.outage:
            self._spool()
        elif wake:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            if self.outage:  # retry on the timer only, not once per new record
                await asyncio.sleep(self.retry_interval_s)
            elif self.flush_interval_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            else:
                await self._wake.wait()
                if self.linger_s > 0 and len(self._pending) < self.batch_size:
                    await asyncio.sleep(self.linger_s)
            self._wake.clear()
            if self._pending:
                await self.flush()

    def _replay(self) -> None:
        try:
            lines = self.spool_path.read_text("utf-8").splitlines()
        except FileNotFoundError:
            return
        known = {self.key(r) for r in self._pending}
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = self.decode(line)
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("%s:%d: skipping a damaged %s line: %s", self.spool_path, n,
                               self.what, exc)
                continue
            key = self.key(record)
            if key not in known:
                known.add(key)
                self._pending.append(record)
            self._spooled.add(key)
        if self._spooled:
            logger.info("replaying %d spooled %s record(s) from %s", len(self._spooled),
                        self.what, self.spool_path)

    def _enter_outage(self, exc: StorageError) -> None:
        if not self.outage:
            logger.warning("%s database unavailable, spooling to %s: %s", self.what,
                           self.spool_path, exc)
        self.outage = True
        self._spool()

    async def _one_by_one(self, batch: Sequence[T], exc: StorageError) -> None:
        """Rule 4."""
        logger.warning("%s batch refused (%s); writing one by one", self.what, exc)
        for record in batch:
            try:
                await self._store.insert_many([record])
            except StorageUnavailableError:
                raise
            except StorageError as one:
                self._append(self.rejected_path, [record])
                self.rejected += 1
                self.written -= 1
                logger.error("%s %s refused by the database (%s); kept in %s", self.what,
                             self.encode(record)[:200], one, self.rejected_path)

    def _spool(self) -> None:
        fresh = [r for r in self._pending if self.key(r) not in self._spooled]
        if not fresh:
            return
        try:
            self._append(self.spool_path, fresh)
        except OSError as exc:
            logger.error("cannot spool %d %s record(s) to %s: %s (kept in memory only)",
                         len(fresh), self.what, self.spool_path, exc)
            return
        self._spooled.update(self.key(r) for r in fresh)

    def _append(self, path: Path, records: Sequence[T]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write("".join(self.encode(r) + "\n" for r in records))
            f.flush()
            os.fsync(f.fileno())

    def _clear_spool(self) -> None:
        if not self._spooled and not self.spool_path.exists():
            return
        try:
            self.spool_path.unlink(missing_ok=True)
        except OSError as exc:
            logger.error("cannot remove the %s spool %s: %s", self.what, self.spool_path, exc)
            return
        self._spooled.clear()
