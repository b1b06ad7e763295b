"""CDR tables: one ``cdrs`` row per call attempt, one ``cdr_legs`` row per leg.

Same rules as ``storage/models.py`` (portable column types, UTC timestamps, declared on the
shared :class:`~storage.models.Base` so ``Base.metadata`` holds the whole schema). The
``uuid`` column is unique: the CDR writer's spool replay relies on it to write each CDR once
(``switch/cdr.py`` Rule 3).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models import Base

__all__ = ["Cdr", "CdrLeg"]


class Cdr(Base):
    """One call attempt (see ``switch.cdr.Cdr`` for the meaning of each field)."""

    __tablename__ = "cdrs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    call_id: Mapped[str] = mapped_column(String(128), index=True)
    caller: Mapped[str] = mapped_column(String(64), index=True)
    callee: Mapped[str] = mapped_column(String(64), index=True)
    start_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    answer_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    disposition: Mapped[str] = mapped_column(String(16))
    """answered, busy, no_answer, failed, cancelled."""
    route: Mapped[str] = mapped_column(String(128), default="")
    target: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16), default="")
    hangup_cause: Mapped[str] = mapped_column(String(64), default="")
    hangup_side: Mapped[str] = mapped_column(String(16), default="")
    sip_status: Mapped[int | None] = mapped_column(Integer)
    codec: Mapped[str] = mapped_column(String(32), default="")
    recording_ref: Mapped[str] = mapped_column(Text, default="")
    queue: Mapped[str] = mapped_column(String(64), default="")
    agent_id: Mapped[str] = mapped_column(String(64), default="")
    tags: Mapped[str] = mapped_column(Text, default="{}")
    """IVR tags as a JSON object."""
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    billsec: Mapped[float] = mapped_column(Float, default=0.0)

    legs: Mapped[list[CdrLeg]] = relationship(
        back_populates="cdr", cascade="all, delete-orphan", order_by="CdrLeg.id",
        lazy="selectin")


class CdrLeg(Base):
    """RTP statistics of one leg of a CDR (RFC 3550 §6.4) with its estimated MOS."""

    __tablename__ = "cdr_legs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cdr_id: Mapped[int] = mapped_column(ForeignKey("cdrs.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    codec: Mapped[str] = mapped_column(String(32), default="")
    remote: Mapped[str] = mapped_column(String(64), default="")
    packets_received: Mapped[int] = mapped_column(Integer, default=0)
    packets_lost: Mapped[int] = mapped_column(Integer, default=0)
    loss_pct: Mapped[float] = mapped_column(Float, default=0.0)
    jitter_ms: Mapped[float] = mapped_column(Float, default=0.0)
    rtt_ms: Mapped[float | None] = mapped_column(Float)
    mos: Mapped[float | None] = mapped_column(Float)

    cdr: Mapped[Cdr] = relationship(back_populates="legs")
