"""QueueLogWriter: the ACD's :class:`~switch.acd.log.LogSink`, written behind to storage.

The engine returns a ``LogEntry`` for every transition (``switch.acd.log`` Rule 1); the
live shell (``switch.queues``) appends each one here, synchronously and without waiting for
the database. Rules:

* Rule 1 -- never block the call path: :meth:`append` only buffers; a background task writes
  batches of up to ``batch_size`` entries every ``flush_interval_s`` (write-behind), in
  append order.
* Rule 2 -- never drop silently: when the database is unavailable the pending entries are
  appended (fsync'ed) to a spool file ``<data_dir>/queue-log-spool.txt`` and stay pending;
  the writer retries every ``retry_interval_s``. A spool left by a crash is replayed on
  :meth:`start`. Each entry carries a unique ``uid`` and the store skips known uids, so a
  replay never writes an entry twice. An entry the database refuses outright is kept in
  ``<spool>.rejected`` and logged as an error.
* Rule 3 -- :meth:`close` writes what is pending, or leaves it in the spool.
* Rule 4 -- live figures: the last ``memory_entries`` entries are also kept in memory
  (:attr:`recent`) for live KPIs without a database round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from storage.db import StorageError, StorageUnavailableError
from switch.acd.log import QueueLogEntry

logger = logging.getLogger(__name__)

__all__ = ["QueueLogStore", "QueueLogWriter", "read_spool"]

SPOOL_NAME = "queue-log-spool.txt"
"""The spool file's name in the node's data directory."""


def read_spool(path: Path) -> list[tuple[str, QueueLogEntry]]:
    """The ``(uid, entry)`` pairs of a spool file (none if it does not exist); damaged
    lines are skipped with a warning."""
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for n, line in enumerate(lines, 1):
        uid, _, rest = line.partition(" ")
        if not rest:
            continue
        try:
            out.append((uid, QueueLogEntry.from_line(rest)))
        except ValueError as exc:
            logger.warning("%s:%d: skipping a damaged queue log line: %s", path, n, exc)
    return out


class QueueLogStore(Protocol):
    """Where entries are stored (``storage.acd_log_repository.QueueLogRepository``)."""

    async def insert_many(self, batch: Sequence[tuple[str, QueueLogEntry]]) -> int:
        """Store ``(uid, entry)`` pairs whose uid is new; raise StorageError on failure."""
        ...


class QueueLogWriter:
    """Write-behind queue log with an outage spool (see the module docstring).

    Args:
        store: the queue log table.
        spool_path: the outage spool file.
        batch_size: entries per database transaction.
        flush_interval_s: how long entries may wait before a write (batching window).
        retry_interval_s: wait between attempts while the database is unavailable.
        memory_entries: how many recent entries :attr:`recent` keeps.
    """

    def __init__(self, store: QueueLogStore, spool_path: Path, *, batch_size: int = 500,
                 flush_interval_s: float = 0.2, retry_interval_s: float = 5.0,
                 memory_entries: int = 100_000) -> None:
        self._store = store
        self.spool_path = Path(spool_path)
        self.rejected_path = self.spool_path.with_name(self.spool_path.name + ".rejected")
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_interval_s = retry_interval_s
        self._pending: list[tuple[str, QueueLogEntry]] = []
        self._spooled: set[str] = set()
        self.recent: deque[QueueLogEntry] = deque(maxlen=memory_entries)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.outage = False
        """True while the last write attempt failed with StorageUnavailableError."""
        self.written = 0
        self.rejected = 0

    @property
    def pending(self) -> int:
        """Entries not yet confirmed in the database."""
        return len(self._pending)

    async def start(self) -> None:
        """Replay a spool left behind (Rule 2) and start the background writer."""
        self._replay()
        if self._pending:
            await self.flush()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="queue-log")

    def _replay(self) -> None:
        for uid, entry in read_spool(self.spool_path):
            if uid not in self._spooled:
                self._pending.append((uid, entry))
                self._spooled.add(uid)
        if not self._spooled:
            return
        logger.info("replaying %d spooled queue log entries from %s", len(self._spooled),
                    self.spool_path)

    def append(self, entry: QueueLogEntry) -> None:
        """Queue one entry for writing; never waits for the database (Rule 1)."""
        self._pending.append((uuid.uuid4().hex, entry))
        self.recent.append(entry)
        if self.outage:
            self._spool()
        elif len(self._pending) >= self.batch_size:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            if self.outage:
                await asyncio.sleep(self.retry_interval_s)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            self._wake.clear()
            if self._pending:
                await self.flush()

    async def flush(self) -> bool:
        """Write everything pending now; True when nothing is left pending."""
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
                logger.info("queue log database back: spooled entries written")
            self.outage = False
            self._clear_spool()
            return True

    def _enter_outage(self, exc: StorageError) -> None:
        if not self.outage:
            logger.warning("queue log database unavailable, spooling to %s: %s",
                           self.spool_path, exc)
        self.outage = True
        self._spool()

    async def _one_by_one(self, batch: Sequence[tuple[str, QueueLogEntry]],
                          exc: StorageError) -> None:
        logger.warning("queue log batch refused (%s); writing one by one", exc)
        for item in batch:
            try:
                await self._store.insert_many([item])
            except StorageUnavailableError:
                raise
            except StorageError as one:
                self._write_lines(self.rejected_path, [item])
                self.rejected += 1
                self.written -= 1
                logger.error("queue log entry %s refused by the database (%s); kept in %s",
                             item[1].to_line(), one, self.rejected_path)

    def _spool(self) -> None:
        fresh = [item for item in self._pending if item[0] not in self._spooled]
        if not fresh:
            return
        try:
            self._write_lines(self.spool_path, fresh)
        except OSError as exc:
            logger.error("cannot spool %d queue log entries to %s: %s (kept in memory only)",
                         len(fresh), self.spool_path, exc)
            return
        self._spooled.update(uid for uid, _ in fresh)

    @staticmethod
    def _write_lines(path: Path, items: Sequence[tuple[str, QueueLogEntry]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write("".join(f"{uid} {entry.to_line()}\n" for uid, entry in items))
            f.flush()
            os.fsync(f.fileno())

    def _clear_spool(self) -> None:
        if not self._spooled and not self.spool_path.exists():
            return
        try:
            self.spool_path.unlink(missing_ok=True)
        except OSError as exc:
            logger.error("cannot remove queue log spool %s: %s", self.spool_path, exc)
            return
        self._spooled.clear()

    async def close(self, attempts: int = 3, pause_s: float = 0.5) -> bool:
        """Stop the background task; write everything pending, trying ``attempts`` times
        (a database busy with the other writers at shutdown), else leave it in the spool
        (Rule 3)."""
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
