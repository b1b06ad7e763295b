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

import logging
import uuid
from collections import deque
from pathlib import Path

from switch.acd.log import QueueLogEntry
from switch.spool import RecordStore, SpooledWriter

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


QueueLogStore = RecordStore[tuple[str, QueueLogEntry]]
"""Where entries are stored (``storage.acd_log_repository.QueueLogRepository``): ``(uid,
entry)`` pairs whose uid is new."""


class QueueLogWriter(SpooledWriter[tuple[str, QueueLogEntry]]):
    """Write-behind queue log with an outage spool (see the module docstring; the writing
    rules are :mod:`switch.spool`'s).

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
        super().__init__(store, spool_path, what="queue log", batch_size=batch_size,
                         flush_interval_s=flush_interval_s, retry_interval_s=retry_interval_s)
        self.recent: deque[QueueLogEntry] = deque(maxlen=memory_entries)

    def key(self, record: tuple[str, QueueLogEntry]) -> str:
        return record[0]

    def encode(self, record: tuple[str, QueueLogEntry]) -> str:
        uid, entry = record
        return f"{uid} {entry.to_line()}"

    def decode(self, line: str) -> tuple[str, QueueLogEntry]:
        uid, _, rest = line.partition(" ")
        if not rest:
            raise ValueError("no entry after the uid")
        return uid, QueueLogEntry.from_line(rest)

    def append(self, entry: QueueLogEntry) -> None:
        """Queue one entry for writing; never waits for the database (Rule 1). The task
        writes every ``flush_interval_s``; a full batch wakes it early."""
        self.recent.append(entry)
        self._enqueue((uuid.uuid4().hex, entry),
                      wake=len(self._pending) + 1 >= self.batch_size)
