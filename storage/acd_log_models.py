"""The queue log table: one ``queue_log`` row per ACD transition (append-only).

``switch.acd.log`` defines the record (Asterisk ``queue_log`` shape); this is its storage.
Rows are only ever inserted (Rule 3 of ``switch.acd.log``); ``uid`` is unique so that the
writer's outage spool can be replayed after a crash without writing an entry twice
(``switch/queue_log.py``). ``time`` is the engine's time: Unix seconds (UTC), float.
"""

from __future__ import annotations

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base

__all__ = ["QueueLogRow"]


class QueueLogRow(Base):
    """One queue log entry (see ``switch.acd.log.QueueLogEntry``)."""

    __tablename__ = "queue_log"
    __table_args__ = (Index("ix_queue_log_queue_time", "queue", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    time: Mapped[float] = mapped_column(Float, index=True)
    queue: Mapped[str] = mapped_column(String(128))
    call_id: Mapped[str] = mapped_column(String(128), index=True)
    agent: Mapped[str] = mapped_column(String(64), index=True)
    event: Mapped[str] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(Text, default="")
    """The event's data fields as a JSON list of strings."""
