"""报修回访 started by closed work orders, including those closed while the node was down.

The dialer's Rule 7, split out of :mod:`switch.campaigns.dialer` (which calls
:meth:`SurveyStarter.start` once and :meth:`SurveyStarter.poll` every ``survey_poll_s``).

Rules:

* Rule 1 -- high-water mark: the close time up to which work orders have been looked at is
  stored (``campaign_marks``, name ``repair_survey``; storage/campaign_models.py Rule 4)
  and advanced as orders are handled, so an order closed while the node was down (or
  between two polls) is found at the next start. The very first start of a site stores
  "now": closing history from before the dialer ever ran starts no calls.
* Rule 2 -- never twice: a survey is the campaign ``报修回访-NUMBER`` (a unique name), so an
  order whose survey exists is skipped (``DuplicateCampaignError``), as is an order that
  already has a rating (rated by an agent, say). Orders closed at the same instant as the
  mark are looked at again (``>=``), never lost.
* Rule 3 -- a storage error stops the round at that order, the mark stays before it, and the
  next poll tries again; an order that cannot have a survey (no phone to call) is logged and
  passed over for good.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import select

from storage.campaign_repository import CampaignRepository, DuplicateCampaignError
from storage.db import StorageError
from storage.hotline_models import WorkOrder
from switch.campaigns.model import Campaign, CampaignCommand, CampaignState
from switch.campaigns.sources import SourceError, start_repair_survey

logger = logging.getLogger(__name__)

__all__ = ["MARK", "SurveyStarter"]

MARK = "repair_survey"
_BATCH = 200


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


class SurveyStarter:
    """Starts one survey campaign per closed work order (see the module rules).

    Args:
        repo: the campaign repository (its database holds the work orders).
        template: window, limits, retries (and IVR program) of the surveys.
        wall: the clock (epoch seconds): the mark of a first start.
    """

    def __init__(self, repo: CampaignRepository, *, template: Campaign | None,
                 wall: Callable[[], float]) -> None:
        self.repo = repo
        self.template = template
        self.wall = wall
        self.mark: float | None = None
        self.started: list[str] = []
        """Work order numbers whose survey this starter created (logs, tests)."""
        self._seen: set[str] = set()

    async def start(self) -> None:
        """Rule 1: read the stored mark, or store "now" on a site's first start."""
        self.mark = await self.repo.get_mark(MARK)
        if self.mark is None:
            self.mark = self.wall()
            await self.repo.set_mark(MARK, self.mark)
            logger.info("repair surveys: first start, orders closed from now on are surveyed")
        else:
            logger.info("repair surveys: looking at orders closed since %s",
                        dt.datetime.fromtimestamp(self.mark, dt.UTC).isoformat())

    async def poll(self) -> int:
        """Start the surveys of the orders closed since the mark; returns how many.

        Raises:
            StorageError: the orders could not be read (the mark is unchanged).
        """
        if self.mark is None:
            await self.start()
        assert self.mark is not None
        since = dt.datetime.fromtimestamp(self.mark, dt.UTC)
        async with self.repo.db.transaction() as session:
            rows = (await session.execute(
                select(WorkOrder.number, WorkOrder.closed_at, WorkOrder.rating)
                .where(WorkOrder.status == "closed", WorkOrder.closed_at.is_not(None),
                       WorkOrder.closed_at >= since)
                .order_by(WorkOrder.closed_at, WorkOrder.id).limit(_BATCH))).all()
        mark, created = self.mark, 0
        for number, closed_at, rating in rows:
            when = _aware(closed_at).timestamp()
            if when < self.mark:
                continue  # a database that compares datetimes loosely
            if number not in self._seen and rating is None:
                try:
                    created += await self._start_one(number)
                except StorageError as exc:  # Rule 3: try again from here next time
                    logger.warning("survey of work order %s not started yet: %s", number, exc)
                    break
                self._seen.add(number)
            mark = max(mark, when)
        if mark > self.mark:
            self.mark = mark
            await self.repo.set_mark(MARK, mark)
        return created

    async def _start_one(self, number: str) -> int:
        try:
            campaign = await start_repair_survey(self.repo, number, template=self.template)
        except DuplicateCampaignError:
            # Created but never started (the start was not written): start it now.
            existing = await self.repo.get(f"报修回访-{number}")
            if existing.state is not CampaignState.DRAFT:
                logger.debug("survey of work order %s exists", number)
                return 0
            await self.repo.command(existing.name, CampaignCommand.START)
            campaign = existing
        except SourceError as exc:
            logger.warning("no survey for work order %s: %s", number, exc)
            return 0
        self.started.append(number)
        logger.info("work order %s closed: survey %s started", number, campaign.name)
        return 1
