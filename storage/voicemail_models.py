"""Voicemail and call-forwarding tables.

Same rules as ``storage/models.py`` (portable column types, UTC timestamps, declared on the
shared :class:`~storage.models.Base`). The repository creates them on first use
(``storage.cdr_repository.ensure_tables``), so they exist on any database a node or the CLI
opens, without a schema step.

* ``voicemail_messages``: one row per kept message; ``path`` is the WAV file (stereo, caller
  on the left channel, see ``switch.media.recorder``). Deleting a row deletes its file
  (``switch.voicemail`` does both).
* ``call_forwards``: at most one row per extension; an empty target means "not set".
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base, utc_now

__all__ = ["CallForward", "VoicemailMessage"]


class VoicemailMessage(Base):
    """One message left in a mailbox."""

    __tablename__ = "voicemail_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    box: Mapped[str] = mapped_column(String(64), index=True)
    caller: Mapped[str] = mapped_column(String(64), default="")
    call_id: Mapped[str] = mapped_column(String(128), default="")
    """The switch call id (``cdrs.call_id``), to find the call's CDR."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now,
                                                    index=True)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    path: Mapped[str] = mapped_column(Text)
    ended_by: Mapped[str] = mapped_column(String(16), default="")
    """How the recording ended: "key" (#), "max_length" or "hangup"."""


class CallForward(Base):
    """Call forwarding of one extension (unconditional, on busy, on no answer)."""

    __tablename__ = "call_forwards"

    extension: Mapped[str] = mapped_column(String(64), primary_key=True)
    always: Mapped[str] = mapped_column(String(64), default="")
    busy: Mapped[str] = mapped_column(String(64), default="")
    no_answer: Mapped[str] = mapped_column(String(64), default="")
    ring_s: Mapped[float | None] = mapped_column(Float, default=None)
    """Ring time before the no-answer forward; None: the node's ``no_answer_timeout_s``."""
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now,
                                                    onupdate=utc_now)
