"""Wiring of the campaign dialer into a running node (called once by ``switch/app.py``).

Kept here rather than in the composition root so that ``app.py`` only needs a few lines:
the dialer is built from what the node already has -- its SIP channel driver (originated
legs), its media service (prompts, digits, TTS), its dial plan and trunks (where numbers
go), its calendars (calling windows), its IVR service and its database.
"""

from __future__ import annotations

import logging
from typing import Any

from storage.campaign_repository import CampaignRepository
from switch.campaigns.dialer import Dialer
from switch.originate import DestinationResolver, Originator

logger = logging.getLogger(__name__)

__all__ = ["start_dialer"]


async def start_dialer(node: Any) -> Dialer | None:
    """Build and start the dialer of ``node`` (a ``switch.app.Node`` after its SIP driver,
    call manager and IVR service are up); None when the node has no SIP channels."""
    if node.channels is None or node.media is None:
        return None
    cfg = node.config
    routing = cfg.routing
    dialplan = node.calls.dialplan if node.calls is not None else None
    trunk_calls = getattr(node.calls, "trunks", None)
    resolver = DestinationResolver(node.channels, cfg.trunks, dialplan,
                                   trunk_calls=trunk_calls, wall=node.channels.wall)
    originator = Originator(node.channels, trunks=cfg.trunks, trunk_calls=trunk_calls)
    dialer = Dialer(
        CampaignRepository(node.db), originator, resolver, node.media,
        calendars=routing.calendars if routing is not None else None, ivr=node.ivr,
        wall=node.channels.wall, ring_timeout_s=cfg.calls.no_answer_timeout_s,
        bus=node.bus, tagger=node.cdr_collector.tag if node.cdr_collector else None)
    await dialer.start()
    logger.info("campaign dialer started")
    cti = getattr(node, "cti", None)  # the node's CTI server, when it runs one
    if cti is not None:
        from cti.campaign_commands import install
        from cti.campaign_events import install_progress

        install(cti.server, dialer.repo, dialer.wake)
        install_progress(cti.server, dialer)
    return dialer
