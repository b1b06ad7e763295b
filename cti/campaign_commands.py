"""CTI admin commands for outbound campaigns: list, status, start, pause, resume, stop.

The campaign commands of issue 7, added to a :class:`~cti.server.CtiServer` by
:func:`install` (the node does it when it runs both a CTI server and the dialer). Like
``softswitch campaign ...`` they only read and write the stored campaigns
(``storage/campaign_repository.py``); the node's dialer follows the stored state
(``switch/campaigns/dialer.py`` Rule 1) and is woken at once.

Rules:

* Rule 1 -- admin role only (deny by default, IVR_CTI_ACD.md §B.8): the permission table
  gets these commands for ``admin`` and nobody else; every state change is audited.
* Rule 2 -- business verbs only: no command creates a campaign or dials a number (that is
  ``softswitch campaign create`` with its checks); the arguments are a closed schema.
* Rule 3 -- errors are data: an unknown campaign is ``not_found``, a command its state does
  not allow (``pause`` a stopped campaign) is ``invalid_state``, a database outage
  ``internal``.
* Rule 4 -- the command and permission tables are the protocol's static tables: installing
  adds the same six entries every time (idempotent), and the handlers, which hold the
  repository, are per server.

Wire examples (JSON lines)::

    {"v":1,"type":"req","id":"7","cmd":"campaign.start","args":{"name":"催缴-12月"}}
    {"v":1,"type":"res","id":"7","ok":true,"result":{"name":"催缴-12月","state":"running"}}
    {"v":1,"type":"req","id":"8","cmd":"campaign.status","args":{"name":"催缴-12月"}}
    {"v":1,"type":"res","id":"8","ok":true,"result":{"name":"催缴-12月",
     "kind":"arrears_reminder","state":"running","progress":{"total":120,"pending":80,
     "dialing":4,"done":36,"skipped":0,"fraction_done":0.3,
     "attempts":{"answered":20,"busy":9,...},"finals":{"answered":20,...}}}}
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any

from cti.messages import COMMANDS, Arg, CommandSpec, CtiRequestError, ErrorCode, Request
from cti.roles import PERMISSIONS, Role
from storage.campaign_repository import CampaignRepository, UnknownCampaignError
from storage.db import StorageError
from switch.campaigns.model import (
    Campaign,
    CampaignCommand,
    CampaignStateError,
    Outcome,
    Progress,
)

logger = logging.getLogger(__name__)

__all__ = ["CAMPAIGN_COMMANDS", "CampaignCommands", "install", "progress_dict",
           "register_commands"]

_NAME = {"name": Arg("str", True, max_len=128)}
_STATE_COMMANDS = {"campaign.start": CampaignCommand.START,
                   "campaign.pause": CampaignCommand.PAUSE,
                   "campaign.resume": CampaignCommand.RESUME,
                   "campaign.stop": CampaignCommand.STOP}

CAMPAIGN_COMMANDS: dict[str, CommandSpec] = {
    "campaign.list": CommandSpec("campaign.list", "campaign", ""),
    "campaign.status": CommandSpec("campaign.status", "campaign", "", _NAME),
    **{name: CommandSpec(name, "campaign", "", _NAME, mutating=True, audited=True)
       for name in _STATE_COMMANDS},
}
"""The six commands (no CSTA service corresponds to an outbound campaign)."""


def progress_dict(progress: Progress) -> dict[str, Any]:
    """A campaign's progress as a flat JSON object (counts per outcome)."""
    return {"total": progress.total, "pending": progress.pending,
            "dialing": progress.dialing, "done": progress.done, "skipped": progress.skipped,
            "fraction_done": round(progress.fraction_done, 4),
            "attempts": {o.value: progress.attempts.get(o, 0) for o in Outcome},
            "finals": {o.value: progress.finals.get(o, 0) for o in Outcome}}


def _summary(campaign: Campaign) -> dict[str, Any]:
    return {"name": campaign.name, "kind": campaign.kind.value,
            "state": campaign.state.value, "source": campaign.source,
            "trunk": campaign.trunk}


class CampaignCommands:
    """The handlers (Rules 2 and 3).

    Args:
        repo: the campaign repository of the node's database.
        wake: called after a state change (``Dialer.wake``), so the dialer reads it now.
    """

    def __init__(self, repo: CampaignRepository,
                 wake: Callable[[], None] | None = None) -> None:
        self.repo = repo
        self.wake = wake

    async def execute(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run one campaign command with validated ``args``.

        Raises:
            CtiRequestError: ``not_found``, ``invalid_state`` or ``internal`` (Rule 3).
        """
        try:
            if cmd == "campaign.list":
                campaigns = await self.repo.list_campaigns()
                return {"campaigns": [_summary(c) for c in campaigns]}
            if cmd == "campaign.status":
                campaign = await self.repo.get(args["name"])
                progress = await self.repo.progress(campaign)
                return {**_summary(campaign), "progress": progress_dict(progress)}
            state = await self.repo.command(args["name"], _STATE_COMMANDS[cmd])
        except UnknownCampaignError as exc:
            raise CtiRequestError(ErrorCode.NOT_FOUND, str(exc), "name") from None
        except CampaignStateError as exc:
            raise CtiRequestError(ErrorCode.INVALID_STATE, str(exc), "name") from None
        except StorageError as exc:
            logger.warning("CTI %s: storage error: %s", cmd, exc)
            raise CtiRequestError(ErrorCode.INTERNAL, "campaign storage unavailable"
                                  ) from None
        if self.wake is not None:
            self.wake()
        return {"name": args["name"], "state": state.value}


def register_commands(commands: MutableMapping[str, CommandSpec] | None = None) -> None:
    """Add the six commands to the command table (default :data:`cti.messages.COMMANDS`)
    without handlers: what a CLIENT process needs before ``CtiClient.request`` sends one
    (the client checks commands against the same table as the server)."""
    table = COMMANDS if commands is None else commands
    table.update(CAMPAIGN_COMMANDS)


def install(server: Any, repo: CampaignRepository,
            wake: Callable[[], None] | None = None, *,
            commands: MutableMapping[str, CommandSpec] | None = None,
            permissions: MutableMapping[str, frozenset[Role]] | None = None
            ) -> CampaignCommands:
    """Add the campaign commands to ``server`` (a ``CtiServer``), admin only (Rule 1).

    ``commands`` and ``permissions`` default to the protocol's tables
    (:data:`cti.messages.COMMANDS`, :data:`cti.roles.PERMISSIONS`), Rule 4.
    """
    register_commands(commands)
    allowed = PERMISSIONS if permissions is None else permissions
    for name in CAMPAIGN_COMMANDS:
        allowed[name] = frozenset({Role.ADMIN})
    handlers = CampaignCommands(repo, wake)

    async def handle(_server: Any, _conn: Any, request: Request) -> dict[str, Any]:
        return await handlers.execute(request.cmd, dict(request.args))

    for name in CAMPAIGN_COMMANDS:
        server.extra_handlers[name] = handle
    logger.info("CTI: campaign commands installed (admin role)")
    return handlers
