"""``campaign.progress`` CTI events: a running campaign's counts per outcome, throttled.

The node's dialer tells :meth:`ProgressEvents.notify` every time a campaign moves (a call
placed, an outcome concluded, a state change); this module turns that stream into few
events for the CTI clients (issue 7 point 4: progress visible while it runs).

Rules:

* Rule 1 -- throttle: at most one event per campaign per ``interval_s`` (1 s by default).
  Changes inside the interval are folded into ONE event sent when it ends (trailing edge),
  with the counts computed at send time: a client always ends up holding the latest counts
  without the switch sending one event per call.
* Rule 2 -- a state change (running, paused, stopped, completed) is sent at once, whatever
  the throttle, so the last event of a finished campaign carries its final counts.
* Rule 3 -- admin only: ``campaign.*`` events reach the admin role and nobody else
  (``cti/roles.py`` ``can_see_event``), like the campaign commands
  (``cti/campaign_commands.py`` Rule 1). A client subscribes with ``"events":
  ["campaign.*"]``.
* Rule 4 -- the counts are computed lazily (``progress`` is a callable): the dialer's
  hot path only records that something changed.

Wire example::

    {"v":1,"type":"evt","seq":9,"ts":1767000000.5,"event":"campaign.progress",
     "data":{"name":"催缴-12月","kind":"arrears_reminder","state":"running",
     "progress":{"total":120,"pending":80,"dialing":4,"done":36,"skipped":0,
     "fraction_done":0.3,"attempts":{"answered":20,"busy":9,...},"finals":{...}}}}
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cti.backend import BackendEvent
from cti.campaign_commands import progress_dict
from switch.campaigns.model import Campaign, CampaignState, Progress

logger = logging.getLogger(__name__)

__all__ = ["EVENT", "ProgressEvents", "install_progress"]

EVENT = "campaign.progress"
_FINISHED = (CampaignState.STOPPED, CampaignState.COMPLETED)


@dataclass(slots=True)
class _Latest:
    campaign: Campaign
    state: CampaignState
    progress: Callable[[], Progress]


class ProgressEvents:
    """Throttled ``campaign.progress`` events (see the module rules).

    Args:
        publish: where events go (``CtiServer.publish``).
        interval_s: the throttle of Rule 1.
    """

    def __init__(self, publish: Callable[[BackendEvent], None], *,
                 interval_s: float = 1.0) -> None:
        self.publish = publish
        self.interval_s = interval_s
        self.sent = 0
        self._latest: dict[str, _Latest] = {}
        self._last: dict[str, tuple[float, CampaignState]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def notify(self, campaign: Campaign, state: CampaignState,
               progress: Callable[[], Progress]) -> None:
        """The campaign moved: send now, or fold into the event at the interval's end."""
        key = campaign.name
        self._latest[key] = _Latest(campaign, state, progress)
        loop = asyncio.get_running_loop()
        last = self._last.get(key)
        now = loop.time()
        if last is None or last[1] is not state or now - last[0] >= self.interval_s:
            self._send(key)  # Rules 1 and 2
        elif key not in self._timers:
            self._timers[key] = loop.call_later(self.interval_s - (now - last[0]),
                                                self._send, key)

    def _send(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        latest = self._latest.pop(key, None)
        if latest is None:
            return
        campaign = latest.campaign
        data: dict[str, Any] = {"name": campaign.name, "kind": campaign.kind.value,
                                "state": latest.state.value,
                                "progress": progress_dict(latest.progress())}
        self.publish(BackendEvent(EVENT, data))
        self.sent += 1
        if latest.state in _FINISHED:
            self._last.pop(key, None)  # nothing more to throttle: forget it
        else:
            self._last[key] = (asyncio.get_running_loop().time(), latest.state)

    def close(self) -> None:
        """Send what is pending now (the node stops) and cancel the timers."""
        for key in list(self._latest):
            self._send(key)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


def install_progress(server: Any, dialer: Any, *, interval_s: float = 1.0
                     ) -> ProgressEvents:
    """Send ``dialer``'s progress (a ``switch.campaigns.dialer.Dialer``) to ``server``'s
    admin subscribers (a ``CtiServer``)."""
    events = ProgressEvents(server.publish, interval_s=interval_s)
    dialer.on_progress = events.notify
    dialer.on_stopped = events.close  # the last throttled counts go out at shutdown
    logger.info("CTI: campaign progress events every %.1f s at most", interval_s)
    return events
