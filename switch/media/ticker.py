"""Absolute-deadline 20 ms pacing of the media tick on an asyncio loop.

Rule 1 -- deadlines are absolute: tick ``k`` is due at ``t0 + k * period``, armed with one
``loop.call_at`` (STYLE.md 4.3: one timer per core), never ``sleep(period)`` after the work,
so the work's duration and timer lateness do not accumulate into drift. Over an hour the
RTP clock we send and the wall clock stay in step.

Rule 2 -- a tick that starts more than ``late_threshold_s`` after its deadline is counted
``late`` (and logged, at most once per ``log_every_s``, with the count since the last log).

Rule 3 -- skip-ahead policy: when the loop falls behind by less than ``max_catchup_s``, the
missed ticks run back to back (catch up), so every channel still sends one packet per 20 ms
on average and no audio is dropped. When it falls further behind (the process was stopped,
the machine swapped), catching up would only burst stale audio: the ticker skips to the
current period, counts the skipped ticks, and goes on from there.

The callback gets ``(deadline, now)``; ``deadline`` is what a tick should treat as its time
(e.g. for "added delay" accounting), ``now`` is when it actually started.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

logger = logging.getLogger(__name__)

__all__ = ["Ticker"]


class Ticker:
    """Calls ``callback(deadline, now)`` every ``period_s`` on absolute deadlines.

    Args:
        loop: the event loop (its ``time()`` is the clock; tests pass a fake loop).
        callback: the tick function; exceptions propagate to the loop's handler and stop
            nothing else: the next tick is armed before the callback runs.
        period_s: tick period (0.020).
        late_threshold_s: lateness above which a tick counts as late.
        max_catchup_s: lateness above which missed ticks are skipped (rule 3).
        log_every_s: minimum interval between "late ticks" warnings.
        clock: reads the time lateness is measured with; default ``loop.time``. Pass
            ``time.monotonic`` with uvloop, whose ``loop.time()`` is cached per loop
            iteration at millisecond resolution (same clock, coarser reading).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 callback: Callable[[float, float], None], *, period_s: float = 0.020,
                 late_threshold_s: float = 0.002, max_catchup_s: float = 0.100,
                 log_every_s: float = 10.0, clock: Callable[[], float] | None = None) -> None:
        if period_s <= 0:
            raise ValueError("period_s must be positive")
        self._loop = loop
        self._clock = clock or loop.time
        self._callback = callback
        self.period_s = period_s
        self.late_threshold_s = late_threshold_s
        self.max_catchup_s = max(max_catchup_s, period_s)
        self.log_every_s = log_every_s
        self.t0 = 0.0
        self.index = 0
        self.ticks = 0
        self.late_ticks = 0
        self.skipped_ticks = 0
        self.max_lateness_s = 0.0
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._late_since_log = 0
        self._last_log = -math.inf
        self.running = False

    def start(self, t0: float | None = None) -> None:
        """Start ticking; the first deadline is ``t0`` (default: one period from now).

        Several workers given the same ``t0`` tick on the same grid (the monotonic clock is
        shared by the processes of one machine).
        """
        if self.running:
            raise RuntimeError("ticker already running")
        now = self._clock()
        self.t0 = now + self.period_s if t0 is None else t0
        self.index = 0
        if self.t0 < now:  # join an existing grid at its next deadline
            self.index = math.ceil((now - self.t0) / self.period_s)
        self.running = True
        self._handle = self._loop.call_at(self.deadline(self.index), self._run)

    def stop(self) -> None:
        """Stop ticking (idempotent)."""
        self.running = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def deadline(self, index: int) -> float:
        """Absolute deadline of tick ``index``."""
        return self.t0 + index * self.period_s

    def _run(self) -> None:
        if not self.running:
            return
        now = self._clock()
        deadline = self.deadline(self.index)
        lateness = now - deadline
        if lateness > self.max_catchup_s:
            behind = int((now - self.t0) // self.period_s)
            self.skipped_ticks += behind - self.index
            logger.warning("media ticker %.1f ms behind: skipping %d ticks",
                           lateness * 1000.0, behind - self.index)
            self.index = behind
            deadline = self.deadline(self.index)
            lateness = now - deadline
        if lateness > self.late_threshold_s:
            self._note_late(now, lateness)
        self.max_lateness_s = max(self.max_lateness_s, lateness)
        self.index += 1
        nxt = self.deadline(self.index)
        if nxt <= now:
            self._handle = self._loop.call_soon(self._run)  # catch up (rule 3)
        else:
            self._handle = self._loop.call_at(nxt, self._run)
        self.ticks += 1
        self._callback(deadline, now)

    def _note_late(self, now: float, lateness: float) -> None:
        self.late_ticks += 1
        self._late_since_log += 1
        if now - self._last_log >= self.log_every_s:
            logger.warning("media ticks late: %d since last report (this one %.1f ms, "
                           "%d of %d in total)", self._late_since_log, lateness * 1000.0,
                           self.late_ticks, self.ticks + 1)
            self._last_log = now
            self._late_since_log = 0

    def stats(self) -> dict[str, float]:
        """Counters for health checks and the benchmark."""
        return {
            "ticks": self.ticks,
            "late_ticks": self.late_ticks,
            "skipped_ticks": self.skipped_ticks,
            "max_lateness_ms": self.max_lateness_s * 1000.0,
        }
