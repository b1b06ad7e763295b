"""Overload control: shed new calls with 503 + Retry-After before the node falls behind.

A saturated asyncio node does not fail cleanly on its own: every datagram still gets
parsed, but responses leave late, peers retransmit (RFC 3261 §17.1.1.2, Timer A), the
retransmissions add load, and calls start to time out -- the failure spreads to calls
that were already up. The guard refuses *new* INVITEs early and cheaply instead, so that
the calls already admitted complete (RFC 3261 §21.5.4: 503 Service Unavailable with
Retry-After tells a client, or a proxy in front of us, to try another server or later;
RFC 7339/6357 describe the same principle for SIP server overload).

Rules:

* Rule 1 -- in-flight bound: at most ``max_inflight`` inbound INVITEs may be in setup at
  once (admitted and without a final response yet). Setup is where a call costs the most
  state and timers; answered calls cost nothing until they hang up.
* Rule 2 -- loop lag: a timer fires every ``interval_s`` and measures how late it ran;
  while the lag stays above ``max_loop_lag_s`` (the best of the last three samples: one
  long stall -- a GC pass, a big database batch -- is not saturation, a loop that is late
  every time is) the event loop is saturated and new INVITEs are refused.
* Rule 3 -- refusing is cheap: it happens before authentication and routing (no HMAC,
  no database, no media), with ``Retry-After`` (seconds). In-dialog requests, ACK,
  CANCEL, BYE and REGISTER are never shed: they finish work already accepted.
* Rule 4 -- 0 disables a bound. Counters (``stats``) show what was shed and why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["OverloadGuard"]


class OverloadGuard:
    """Admission control for new inbound calls (see the module docstring).

    Args:
        max_inflight: inbound INVITEs in setup at once (0: unbounded).
        max_loop_lag_s: event-loop lag above which new calls are shed (0: not measured).
        retry_after_s: the ``Retry-After`` value of the 503.
        interval_s: how often the loop lag is sampled.
        clock: monotonic clock (tests).
    """

    def __init__(self, *, max_inflight: int = 0, max_loop_lag_s: float = 0.0,
                 retry_after_s: int = 5, interval_s: float = 0.05,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_inflight = max_inflight
        self.max_loop_lag_s = max_loop_lag_s
        self.retry_after_s = retry_after_s
        self.interval_s = interval_s
        self._clock = clock
        self.inflight = 0
        self.lag_s = 0.0
        self._samples = [0.0, 0.0, 0.0]
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._shedding = False
        self.stats = {"admitted": 0, "shed_inflight": 0, "shed_lag": 0}

    def configure(self, *, max_inflight: int, max_loop_lag_s: float,
                  retry_after_s: int) -> None:
        """Set the bounds (the node's ``[calls]`` keys) and start measuring the lag."""
        self.max_inflight = max_inflight
        self.max_loop_lag_s = max_loop_lag_s
        self.retry_after_s = retry_after_s
        self.start()

    # -- loop lag (Rule 2) ------------------------------------------------------------------
    def start(self) -> None:
        """Start sampling the loop lag (only when a lag bound is set)."""
        if self.max_loop_lag_s > 0 and self._timer is None:
            self._arm()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self._due = self._clock() + self.interval_s
        self._timer = asyncio.get_running_loop().call_later(self.interval_s, self._sample)

    def _sample(self) -> None:
        lag = max(0.0, self._clock() - self._due)
        self._samples = [*self._samples[1:], lag]
        self.lag_s = min(self._samples)
        self._arm()

    # -- admission (Rules 1, 3) -------------------------------------------------------------
    def reason(self) -> str | None:
        """Why a new call would be refused now, or None when it may come in."""
        if self.max_inflight and self.inflight >= self.max_inflight:
            return "inflight"
        if self.max_loop_lag_s and self.lag_s > self.max_loop_lag_s:
            return "lag"
        return None

    def shed(self) -> bool:
        """Whether a new INVITE must be refused now (Rules 1-3); counted and logged."""
        why = self.reason()
        if why is None:
            if self._shedding:
                logger.warning("overload over: admitting new calls again (%d shed so far)",
                               self.stats["shed_inflight"] + self.stats["shed_lag"])
                self._shedding = False
            return False
        self.stats[f"shed_{why}"] += 1
        if not self._shedding:
            logger.warning("overload: shedding new calls (%s: %d in setup, loop lag %.0f ms)",
                           why, self.inflight, 1000 * self.lag_s)
            self._shedding = True
        return True

    def count_in(self, leg: Any) -> None:
        """A new inbound leg is in setup (Rule 1); :meth:`finish` counts it out once."""
        self.inflight += 1
        self.stats["admitted"] += 1
        leg.overload_counted = True

    def finish(self, leg: Any) -> None:
        """The leg's setup is over (final response sent, cancelled or released)."""
        if getattr(leg, "overload_counted", False):
            leg.overload_counted = False
            self.inflight -= 1

    def headers(self) -> list[tuple[str, str]]:
        return [("Retry-After", str(self.retry_after_s))]
