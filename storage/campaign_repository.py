"""Campaign persistence: configuration and state, contacts, attempts, opt-outs, progress.

What ``softswitch campaign ...`` and the node's dialer share through the database: the CLI
creates campaigns and changes their state; the dialer loads a campaign's
:class:`~switch.campaigns.model.ResumeState`, rebuilds its scheduler, and writes every
attempt as it happens.

Rules:

* Rule 1 -- :meth:`CampaignRepository.begin_attempts` writes the DIALING rows of a batch of
  dials in ONE transaction, before the calls are placed; a unique (contact, attempt number)
  rejects a dial that was already written, so the dialer cannot place it twice
  (``storage/campaign_models.py`` Rule 1, ``switch/campaigns/scheduler.py`` Rule 5).
* Rule 2 -- an outcome is written in one transaction with everything it implies: the
  attempt, the contact's progress, the opt-out of the number for the campaign's kind, a
  survey rating on the work order, and the campaign's state when it completed.
* Rule 3 -- the tables are created on first use if missing (as in
  ``storage/hotline_repository.py``).
* Rule 4 -- state commands check the transition table of ``switch/campaigns/model.py``
  inside the transaction that writes the new state.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.campaign_models import (
    CampaignAttemptRow,
    CampaignContactRow,
    CampaignMarkRow,
    CampaignOptOutRow,
    CampaignRow,
)
from storage.cdr_repository import ensure_tables
from storage.db import Database, StorageConflictError, StorageError
from storage.hotline_models import WorkOrder
from storage.hotline_repository import HotlineRepository
from switch.campaigns.model import (
    Attempt,
    Campaign,
    CampaignCommand,
    CampaignError,
    CampaignKind,
    CampaignState,
    Contact,
    NewContact,
    Outcome,
    Progress,
    ResumeState,
    phone_key,
    transition,
)
from switch.campaigns.scheduler import DialContact, OutcomeDecision

logger = logging.getLogger(__name__)

__all__ = [
    "CampaignRepository",
    "ContactReport",
    "DuplicateAttemptError",
    "DuplicateCampaignError",
    "UnknownCampaignError",
]

_CHUNK = 500


class UnknownCampaignError(StorageError):
    """No campaign of that name or id."""


class DuplicateCampaignError(StorageConflictError):
    """A campaign of that name exists."""


class DuplicateAttemptError(StorageConflictError):
    """The attempt was already written (Rule 1): do NOT place the call."""


@dataclass(frozen=True, slots=True)
class ContactReport:
    """One line of ``campaign report``."""

    name: str
    phone: str
    status: str
    attempts: int
    last_outcome: str
    rating: int | None
    fields: dict[str, str]


def _rowcount(result: object) -> int:
    """Rows an UPDATE touched (its result is a CursorResult)."""
    return int(cast(CursorResult[Any], result).rowcount)


def _campaign(row: CampaignRow) -> Campaign:
    return Campaign.from_config_json(row.name, row.kind, row.state, row.config, id=row.id)


def _contact(row: CampaignContactRow) -> Contact:
    return Contact(row.id, row.name, row.phone, row.phone_key, json.loads(row.fields or "{}"))


def _attempt(row: CampaignAttemptRow) -> Attempt:
    return Attempt(row.contact_id, row.attempt_no, row.started_at, row.ended_at,
                   None if row.outcome is None else Outcome(row.outcome), row.detail,
                   row.rating)


class CampaignRepository:
    """Campaign tables over :class:`~storage.db.Database`.

    Args:
        db: the database.
        hotline: the hotline repository (survey ratings land on its work orders).
    """

    def __init__(self, db: Database, hotline: HotlineRepository | None = None) -> None:
        self._db = db
        self.db = db
        """The database (contact-list queries run on it too)."""
        self.hotline = hotline or HotlineRepository(db)
        self._ready = False

    async def ensure_schema(self) -> None:
        """Create the campaign (and hotline) tables if missing (Rule 3)."""
        if not self._ready:
            await self.hotline.ensure_schema()
            tables = [m.__table__ for m in (CampaignRow, CampaignContactRow,
                                            CampaignAttemptRow, CampaignOptOutRow,
                                            CampaignMarkRow)]
            await ensure_tables(self._db, tables)  # type: ignore[arg-type]
            self._ready = True

    # --- campaigns ---------------------------------------------------------------------

    async def create(self, campaign: Campaign, contacts: Sequence[NewContact]) -> Campaign:
        """Store a new DRAFT campaign with its contacts, in one transaction.

        Raises:
            CampaignError: a contact's phone is not a number, or appears twice.
            DuplicateCampaignError: the name is taken.
        """
        await self.ensure_schema()
        rows, seen = [], set()
        for seq, c in enumerate(contacts):
            key = phone_key(c.phone)
            if key in seen:
                raise CampaignError(f"phone {c.phone} appears twice in the contact list")
            seen.add(key)
            rows.append({"seq": seq, "name": c.name, "phone": c.phone, "phone_key": key,
                         "fields": json.dumps(dict(c.fields), ensure_ascii=False),
                         "status": "pending", "attempts": 0})
        try:
            async with self._db.transaction() as session:
                if await session.scalar(select(CampaignRow.id).where(
                        CampaignRow.name == campaign.name)) is not None:
                    raise DuplicateCampaignError(f"campaign {campaign.name!r} exists")
                row = CampaignRow(name=campaign.name, kind=campaign.kind.value,
                                  state=CampaignState.DRAFT.value,
                                  config=campaign.config_json())
                session.add(row)
                await session.flush()
                for start in range(0, len(rows), _CHUNK):
                    chunk = [{**r, "campaign_id": row.id} for r in rows[start:start + _CHUNK]]
                    await session.execute(insert(CampaignContactRow), chunk)
                created = _campaign(row)
        except DuplicateCampaignError:
            raise
        except StorageConflictError as exc:
            raise DuplicateCampaignError(f"campaign {campaign.name!r} exists") from exc
        logger.info("campaign %s (%s) created with %d contact(s)", campaign.name,
                    campaign.kind.value, len(rows))
        return created

    async def get(self, name: str) -> Campaign:
        """The campaign called ``name``.

        Raises:
            UnknownCampaignError: no such campaign.
        """
        await self.ensure_schema()
        async with self._db.transaction() as session:
            row = await session.scalar(select(CampaignRow).where(CampaignRow.name == name))
            if row is None:
                raise UnknownCampaignError(f"no campaign called {name!r}")
            return _campaign(row)

    async def list_campaigns(self) -> list[Campaign]:
        """Every campaign, oldest first."""
        await self.ensure_schema()
        async with self._db.transaction() as session:
            rows = await session.scalars(select(CampaignRow).order_by(CampaignRow.id))
            return [_campaign(r) for r in rows]

    async def live_campaigns(self, ids: Sequence[int] = ()) -> list[Campaign]:
        """The RUNNING and PAUSED campaigns, plus those of ``ids`` whatever their state
        (what a dialer polls: finished campaigns pile up, one per 报修回访)."""
        await self.ensure_schema()
        live = [CampaignState.RUNNING.value, CampaignState.PAUSED.value]
        async with self._db.transaction() as session:
            query = select(CampaignRow).where(
                CampaignRow.state.in_(live) | CampaignRow.id.in_(list(ids)))
            rows = await session.scalars(query.order_by(CampaignRow.id))
            return [_campaign(r) for r in rows]

    async def command(self, name: str, command: CampaignCommand) -> CampaignState:
        """Apply start/pause/resume/stop to the stored state (Rule 4).

        Raises:
            UnknownCampaignError: no such campaign.
            CampaignStateError: the command is not allowed in the current state.
        """
        await self.ensure_schema()
        async with self._db.transaction() as session:
            row = await session.scalar(select(CampaignRow).where(CampaignRow.name == name))
            if row is None:
                raise UnknownCampaignError(f"no campaign called {name!r}")
            new = transition(CampaignState(row.state), command)
            row.state = new.value
        logger.info("campaign %s: %s -> %s", name, command.value, new.value)
        return new

    async def set_state(self, campaign_id: int, state: CampaignState) -> None:
        """Store the state a scheduler reached by itself (COMPLETED)."""
        async with self._db.transaction() as session:
            await session.execute(update(CampaignRow).where(CampaignRow.id == campaign_id)
                                  .values(state=state.value))

    async def delete(self, name: str) -> None:
        """Delete a campaign with its contacts and attempts (opt-outs stay).

        Raises:
            UnknownCampaignError: no such campaign.
        """
        campaign = await self.get(name)
        async with self._db.transaction() as session:
            for table in (CampaignAttemptRow, CampaignContactRow):
                await session.execute(delete(table).where(table.campaign_id == campaign.id))
            await session.execute(delete(CampaignRow).where(CampaignRow.id == campaign.id))

    async def get_mark(self, name: str) -> float | None:
        """The dialer's high-water mark ``name`` (models Rule 4); None: never set."""
        await self.ensure_schema()
        async with self._db.transaction() as session:
            row = await session.get(CampaignMarkRow, name)
            return None if row is None else float(row.value)

    async def set_mark(self, name: str, value: float) -> None:
        """Store the high-water mark ``name``."""
        await self.ensure_schema()
        async with self._db.transaction() as session:
            row = await session.get(CampaignMarkRow, name)
            if row is None:
                session.add(CampaignMarkRow(name=name, value=value))
            else:
                row.value = value

    # --- contacts and resume -------------------------------------------------------------

    async def contacts(self, campaign_id: int) -> list[Contact]:
        """The campaign's contacts in calling order."""
        await self.ensure_schema()
        async with self._db.transaction() as session:
            rows = await session.scalars(select(CampaignContactRow).where(
                CampaignContactRow.campaign_id == campaign_id).order_by(CampaignContactRow.seq))
            return [_contact(r) for r in rows]

    async def opted_out(self, kind: CampaignKind) -> frozenset[str]:
        """Phone keys that opted out of ``kind``."""
        await self.ensure_schema()
        async with self._db.transaction() as session:
            keys = await session.scalars(select(CampaignOptOutRow.phone_key).where(
                CampaignOptOutRow.kind == kind.value))
            return frozenset(keys)

    async def load_resume_state(self, name: str) -> ResumeState:
        """Everything a scheduler is rebuilt from (``CampaignScheduler.restore``).

        Raises:
            UnknownCampaignError: no such campaign.
        """
        campaign = await self.get(name)
        assert campaign.id is not None
        contacts = await self.contacts(campaign.id)
        async with self._db.transaction() as session:
            rows = await session.scalars(select(CampaignAttemptRow).where(
                CampaignAttemptRow.campaign_id == campaign.id).order_by(CampaignAttemptRow.id))
            attempts = tuple(_attempt(r) for r in rows)
        return ResumeState(campaign, tuple(contacts), attempts,
                           await self.opted_out(campaign.kind))

    # --- attempts ------------------------------------------------------------------------

    async def begin_attempts(self, dials: Sequence[DialContact]) -> None:
        """Write the DIALING attempts of ``dials`` (Rule 1) -- call BEFORE placing them.

        Raises:
            DuplicateAttemptError: one was already written; none of the batch was.
            StorageUnavailableError: nothing written; give the dials back
                (``CampaignScheduler.cancel``) and do not place them.
        """
        if not dials:
            return
        rows = [{"campaign_id": d.campaign_id, "contact_id": d.contact.id,
                 "attempt_no": d.attempt_no, "started_at": d.started_at, "detail": ""}
                for d in dials]
        try:
            async with self._db.transaction() as session:
                await session.execute(insert(CampaignAttemptRow), rows)
                for d in dials:
                    await session.execute(
                        update(CampaignContactRow).where(CampaignContactRow.id == d.contact.id)
                        .values(status="dialing", attempts=d.attempt_no, next_due_at=None))
        except StorageConflictError as exc:
            raise DuplicateAttemptError(
                f"attempt already stored for one of {len(dials)} dial(s): {exc}") from exc

    async def record_outcomes(self, campaign: Campaign,
                              decisions: Sequence[OutcomeDecision]) -> None:
        """Write finished attempts and all they imply (Rule 2), in one transaction.

        Raises:
            CampaignError: a rating outside 1-5.
        """
        if not decisions:
            return
        assert campaign.id is not None
        async with self._db.transaction() as session:
            for decision in decisions:
                await self._write_outcome(session, campaign, decision)
            last = decisions[-1].campaign_state
            if last is CampaignState.COMPLETED:  # never over an operator's STOP
                await session.execute(update(CampaignRow).where(
                    CampaignRow.id == campaign.id,
                    CampaignRow.state.in_([CampaignState.RUNNING.value,
                                           CampaignState.PAUSED.value]))
                    .values(state=last.value))

    async def _write_outcome(self, session: AsyncSession, campaign: Campaign,
                             decision: OutcomeDecision) -> None:
        a = decision.attempt
        if a.rating is not None and not 1 <= a.rating <= 5:
            raise CampaignError(f"rating must be 1-5, got {a.rating}")
        values = {"ended_at": a.ended_at, "outcome": a.outcome.value if a.outcome else None,
                  "detail": a.detail, "rating": a.rating}
        result = await session.execute(
            update(CampaignAttemptRow).where(CampaignAttemptRow.contact_id == a.contact_id,
                                             CampaignAttemptRow.attempt_no == a.attempt_no)
            .values(**values))
        if _rowcount(result) == 0:  # never began (an outcome without a dial)
            await session.execute(insert(CampaignAttemptRow), [{
                "campaign_id": campaign.id, "contact_id": a.contact_id,
                "attempt_no": a.attempt_no, "started_at": a.started_at, **values}])
        contact = await session.get(CampaignContactRow, a.contact_id)
        if contact is None:
            raise CampaignError(f"no contact {a.contact_id} in campaign {campaign.name!r}")
        contact.status = "pending" if decision.retry_at is not None else "done"
        contact.attempts = max(contact.attempts, a.attempt_no)
        contact.last_outcome = a.outcome.value if a.outcome else None
        contact.next_due_at = decision.retry_at
        if decision.opted_out is not None:
            exists = await session.scalar(select(CampaignOptOutRow.id).where(
                CampaignOptOutRow.kind == campaign.kind.value,
                CampaignOptOutRow.phone_key == decision.opted_out))
            if exists is None:
                session.add(CampaignOptOutRow(kind=campaign.kind.value,
                                              phone_key=decision.opted_out,
                                              campaign_id=campaign.id))
        if campaign.kind is CampaignKind.REPAIR_SURVEY and a.rating is not None:
            await self._store_rating(session, contact, a.rating)

    async def _store_rating(self, session: AsyncSession, contact: CampaignContactRow,
                            rating: int) -> None:
        number = json.loads(contact.fields or "{}").get("work_order")
        if not number:
            logger.warning("survey rating %d of %s has no work order", rating, contact.phone)
            return
        result = await session.execute(update(WorkOrder).where(WorkOrder.number == number)
                                       .values(rating=rating))
        if _rowcount(result) == 0:
            logger.warning("survey rating %d for unknown work order %s", rating, number)

    # --- progress and report ---------------------------------------------------------------

    async def progress(self, campaign: Campaign) -> Progress:
        """Counts by contact status and attempt outcome, from the stored rows."""
        await self.ensure_schema()
        opted = await self.opted_out(campaign.kind)
        async with self._db.transaction() as session:
            rows = (await session.execute(
                select(CampaignContactRow.status, CampaignContactRow.phone_key,
                       CampaignContactRow.last_outcome)
                .where(CampaignContactRow.campaign_id == campaign.id))).all()
            by_outcome = (await session.execute(
                select(CampaignAttemptRow.outcome, func.count())
                .where(CampaignAttemptRow.campaign_id == campaign.id)
                .group_by(CampaignAttemptRow.outcome))).all()
        pending = dialing = done = skipped = 0
        finals: Counter[Outcome] = Counter()
        for status, key, last in rows:
            if status == "dialing":
                dialing += 1
            elif status == "done":
                done += 1
                if last:
                    finals[Outcome(last)] += 1
            elif key in opted:
                skipped += 1
                done += 1
            else:
                pending += 1
        attempts = {Outcome(o): int(n) for o, n in by_outcome if o is not None}
        return Progress(len(rows), pending, dialing, done, skipped, attempts, dict(finals))

    async def report(self, campaign: Campaign) -> list[ContactReport]:
        """One line per contact in calling order, with its last rating if any."""
        await self.ensure_schema()
        async with self._db.transaction() as session:
            contacts = await session.scalars(select(CampaignContactRow).where(
                CampaignContactRow.campaign_id == campaign.id).order_by(CampaignContactRow.seq))
            rated = (await session.execute(
                select(CampaignAttemptRow.contact_id, CampaignAttemptRow.rating)
                .where(CampaignAttemptRow.campaign_id == campaign.id,
                       CampaignAttemptRow.rating.is_not(None))
                .order_by(CampaignAttemptRow.attempt_no))).all()
            ratings: dict[int, int | None] = {cid: rating for cid, rating in rated}
            return [ContactReport(c.name, c.phone, c.status, c.attempts, c.last_outcome or "",
                                  ratings.get(c.id), json.loads(c.fields or "{}"))
                    for c in contacts]
