"""Outbound campaign tables: campaigns, their contacts, every attempt, opt-outs per kind.

Rules:

* Rule 1 -- an attempt row is written DIALING (``outcome`` NULL) before the call is placed
  and is unique per (contact, attempt number): two nodes, or a node and its restarted self,
  cannot both place attempt N of a contact (switch/campaigns/scheduler.py Rule 5).
* Rule 2 -- times of the schedule (``started_at``, ``ended_at``, ``next_due_at``) are epoch
  seconds as floats, the scheduler's ``now``; creation stamps are aware datetimes.
* Rule 3 -- the configuration of a campaign (window, limits, retry policy, message fields,
  trunk) is one JSON column written by ``Campaign.config_json``: it is read whole and never
  queried by parts.
* Rule 4 -- ``campaign_marks`` holds the dialer's named high-water marks (epoch seconds):
  ``repair_survey`` is the close time up to which work orders have been looked at for a
  报修回访, so the orders closed while the node was down are found at the next start.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base, utc_now

__all__ = ["CampaignAttemptRow", "CampaignContactRow", "CampaignMarkRow", "CampaignOptOutRow",
           "CampaignRow"]


class CampaignRow(Base):
    """One campaign and its persisted state (DRAFT, RUNNING, PAUSED, STOPPED, COMPLETED)."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16), default="draft")
    config: Mapped[str] = mapped_column(Text)
    """Rule 3."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utc_now, onupdate=utc_now)
    """Last state change: a running node notices CLI commands by polling this."""


class CampaignContactRow(Base):
    """A contact of a campaign, with its progress (kept in step with its attempts)."""

    __tablename__ = "campaign_contacts"
    __table_args__ = (UniqueConstraint("campaign_id", "phone_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    """Calling order within the campaign."""
    name: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(32))
    phone_key: Mapped[str] = mapped_column(String(32))
    fields: Mapped[str] = mapped_column(Text, default="{}")
    """Message fields as a JSON object (account, amount, due_date, unit, work_order)."""
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """pending, dialing or done."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    next_due_at: Mapped[float | None] = mapped_column(Float)
    """When a retry falls due (epoch seconds); NULL when not waiting for a retry."""


class CampaignAttemptRow(Base):
    """One call of one contact (Rule 1)."""

    __tablename__ = "campaign_attempts"
    __table_args__ = (UniqueConstraint("contact_id", "attempt_no"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("campaign_contacts.id", ondelete="CASCADE"), index=True)
    attempt_no: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str | None] = mapped_column(String(16))
    """answered, acknowledged, busy, no_answer, failed, opted_out; NULL while DIALING."""
    detail: Mapped[str] = mapped_column(Text, default="")
    """Free text: a SIP status, ``interrupted`` for an attempt cut by a restart."""
    rating: Mapped[int | None] = mapped_column(Integer)
    """1-5 for a survey answer."""


class CampaignOptOutRow(Base):
    """A number that asked not to be called again for one kind of campaign."""

    __tablename__ = "campaign_opt_outs"
    __table_args__ = (UniqueConstraint("kind", "phone_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    phone_key: Mapped[str] = mapped_column(String(32))
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"))
    """The campaign in which the key was pressed."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class CampaignMarkRow(Base):
    """A named high-water mark of the dialer (Rule 4)."""

    __tablename__ = "campaign_marks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
