"""SQLAlchemy 2.x declarative models (``Mapped[...]``) for everything the node persists.

Rules of this module:

* Rule 1 -- rows hold no secrets in clear: a SIP user has one HA1 per digest algorithm
  (RFC 7616 §3.4.2), never the password.
* Rule 2 -- portable column types only (no SQLite or PostgreSQL specific types), so that the
  same models run on both. Free-form SIP text (URIs, User-Agent) is ``Text``: a VARCHAR
  limit on PostgreSQL would fail a whole write-behind batch over one long Contact.
* Rule 3 -- one section per feature below. Later issues add their tables (CDRs, recordings,
  queue log, agents, customers, bills, work orders, campaigns) as new sections on the same
  :class:`Base`, so ``Base.metadata`` keeps the whole schema.

The constraint naming convention gives every index and constraint a stable name, which
Alembic autogenerate needs once migrations take over from ``create_all``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "RegistrationBinding", "SipUser", "utc_now"]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> dt.datetime:
    """Creation timestamps are UTC, timezone-aware."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of every softswitch table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# --- users: the digest directory (RFC 3261 §22) -------------------------------------------


class SipUser(Base):
    """A SIP user (phone or soft client) that may register and place calls."""

    __tablename__ = "sip_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    """The digest username and user part of the AOR (``sip:1001@domain``)."""
    realm: Mapped[str] = mapped_column(String(128))
    """The realm the HA1s were computed for; a changed realm needs new passwords."""
    ha1_md5: Mapped[str] = mapped_column(String(32))
    """MD5(username ":" realm ":" password) as lowercase hex (RFC 2617 §3.2.2.2)."""
    ha1_sha256: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the same string (RFC 7616 §3.4.2)."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    display_name: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utc_now, onupdate=utc_now)
    """Last change of any column; lets a running node notice CLI edits cheaply."""


# --- location service: registrar bindings (RFC 3261 §10) ----------------------------------


class RegistrationBinding(Base):
    """One stored contact of an AOR; mirrors :class:`signaling.location.Binding`.

    ``expires_at`` is wall-clock epoch seconds so a binding survives a restart; the registrar
    discards the expired ones when it loads them.
    """

    __tablename__ = "registration_bindings"
    __table_args__ = (UniqueConstraint("aor", "contact"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    aor: Mapped[str] = mapped_column(String(255), index=True)
    contact: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[float] = mapped_column(Float)
    q: Mapped[float] = mapped_column(Float, default=1.0)
    call_id: Mapped[str] = mapped_column(Text, default="")
    cseq: Mapped[int] = mapped_column(Integer, default=0)
    transport: Mapped[str] = mapped_column(String(8), default="udp")
    source_host: Mapped[str] = mapped_column(String(64), default="")
    source_port: Mapped[int] = mapped_column(Integer, default=0)
    registered_contact: Mapped[str] = mapped_column(Text, default="")
    user_agent: Mapped[str] = mapped_column(Text, default="")
    instance_id: Mapped[str] = mapped_column(Text, default="")
    """``+sip.instance`` (RFC 5626 §4.1)."""
    reg_id: Mapped[int] = mapped_column(Integer, default=0)
    """``reg-id`` (RFC 5626 §4.2); 0 when absent."""
    params: Mapped[str] = mapped_column(Text, default="[]")
    """Other Contact parameters as a JSON list of [name, value] pairs, in order."""

