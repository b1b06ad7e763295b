"""The event bus: every call, agent and queue event goes to every interested subscriber.

DESIGN.md "Call model": "Bounded queues per subscriber: a slow client never stalls calls."

Rules:

* Rule 1 -- :meth:`EventBus.publish` never blocks and never awaits: it appends the event to
  each matching subscriber's queue and returns. It is called from the event loop's thread.
* Rule 2 -- each subscriber has its own bounded queue (``maxsize`` events). When it is full,
  the OLDEST queued event is dropped to make room for the new one, the subscription's
  ``dropped`` counter grows and it is marked **lagged**. A lagged subscriber has lost
  events and must resynchronise (the CTI server sends its client a snapshot, a wallboard
  recomputes); it calls :meth:`Subscription.ack_lag`, which returns how many were lost and
  clears the flag. Dropping the oldest keeps the newest state, which is what a late reader
  needs.
* Rule 3 -- a subscriber's filter that raises is that subscriber's bug: the event is not
  delivered to it, the error is logged and counted, and publishing goes on for the others.
* Rule 4 -- a **tap** (:meth:`EventBus.tap`) is a synchronous listener called inside
  ``publish`` for every event, in order, without a queue and so without loss. It is for the
  few consumers that must see every event and cost microseconds, such as the CDR collector
  (``switch/cdr.py``); anything that does I/O or may be slow subscribes instead. A tap that
  raises is logged and counted like a failing filter (Rule 3).
* Rule 5 -- iterating a subscription (``async for event in sub``) ends after
  :meth:`Subscription.close` / :meth:`EventBus.close`, once the events queued before the
  close have been read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from switch.events import Event

logger = logging.getLogger(__name__)

__all__ = ["BusMetrics", "EventBus", "EventFilter", "Subscription", "SubscriptionMetrics"]

EventFilter = Callable[[Event], bool] | type[Event] | tuple[type[Event], ...] | None
"""Which events a subscriber wants: a predicate, an event class, a tuple of classes, or None
for everything."""

DEFAULT_MAXSIZE = 1000
"""Events a subscriber may fall behind by: at a few events per call per second this is
minutes of a busy site, far beyond any healthy consumer's delay."""

_CLOSED = object()


@dataclass(frozen=True, slots=True)
class SubscriptionMetrics:
    """One subscriber's counters."""

    name: str
    depth: int
    maxsize: int
    delivered: int
    dropped: int
    lagged: bool


@dataclass(frozen=True, slots=True)
class BusMetrics:
    """The bus's counters (for the status page and the CTI ``system`` view)."""

    published: int
    subscribers: int
    dropped: int
    filter_errors: int
    per_subscriber: tuple[SubscriptionMetrics, ...]


def _predicate(flt: EventFilter) -> Callable[[Event], bool] | None:
    if flt is None:
        return None
    if isinstance(flt, type):
        kind = flt
        return lambda e: isinstance(e, kind)
    if isinstance(flt, tuple):
        kinds = flt
        return lambda e: isinstance(e, kinds)
    return flt


class Subscription:
    """One subscriber's bounded queue; an async iterator of events (Rule 5)."""

    def __init__(self, bus: EventBus, name: str, accept: Callable[[Event], bool] | None,
                 maxsize: int) -> None:
        self._bus = bus
        self.name = name
        self.maxsize = maxsize
        self._accept = accept
        self._queue: asyncio.Queue[Any] = asyncio.Queue()  # bounded by _offer (Rule 2)
        self._closed = False
        self.delivered = 0
        """Events put in this subscriber's queue."""
        self.dropped = 0
        """Events dropped because the queue was full (total)."""
        self._lost_since_ack = 0

    @property
    def lagged(self) -> bool:
        """True when events were dropped since the last :meth:`ack_lag` (Rule 2)."""
        return self._lost_since_ack > 0

    @property
    def closed(self) -> bool:
        return self._closed

    def qsize(self) -> int:
        """Events waiting to be read."""
        return self._queue.qsize() - (1 if self._closed and self._queue.qsize() else 0)

    def ack_lag(self) -> int:
        """The number of events lost since the previous call; clears :attr:`lagged`."""
        lost, self._lost_since_ack = self._lost_since_ack, 0
        return lost

    def _offer(self, event: Event) -> None:
        if self._closed:
            return
        if self._accept is not None:
            try:
                wanted = self._accept(event)
            except Exception:  # a subscriber's bug must not stop publishing (Rule 3)
                self._bus.filter_errors += 1
                logger.exception("event filter of subscriber %s failed on %s",
                                 self.name, type(event).__name__)
                return
            if not wanted:
                return
        if self._queue.qsize() >= self.maxsize:
            self._queue.get_nowait()
            self.dropped += 1
            self._lost_since_ack += 1
            if self._lost_since_ack == 1:
                logger.warning("subscriber %s is lagging: dropped oldest event (queue of %d)",
                               self.name, self.maxsize)
        self._queue.put_nowait(event)
        self.delivered += 1

    def get_nowait(self) -> Event | None:
        """The next queued event, or None when none is waiting."""
        if self._queue.empty():
            return None
        item = self._queue.get_nowait()
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)
            return None
        return item  # type: ignore[no-any-return]

    async def get(self) -> Event:
        """Wait for the next event.

        Raises:
            StopAsyncIteration: the subscription was closed and its queue is empty.
        """
        item = await self._queue.get()
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # later get() calls end too
            raise StopAsyncIteration
        return item  # type: ignore[no-any-return]

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def close(self) -> None:
        """Stop receiving; iteration ends after the already queued events."""
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(_CLOSED)
        self._bus._remove(self)

    def metrics(self) -> SubscriptionMetrics:
        return SubscriptionMetrics(self.name, self.qsize(), self.maxsize, self.delivered,
                                   self.dropped, self.lagged)


class EventBus:
    """Fan-out of events to taps and bounded per-subscriber queues (Rules 1-5)."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._taps: list[Callable[[Event], None]] = []
        self.published = 0
        self.filter_errors = 0
        self._dropped_by_closed = 0

    def subscribe(self, flt: EventFilter = None, maxsize: int = DEFAULT_MAXSIZE, *,
                  name: str = "") -> Subscription:
        """A new subscription receiving the events accepted by ``flt`` from now on.

        Raises:
            ValueError: ``maxsize`` is below 1.
        """
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        sub = Subscription(self, name or f"sub-{len(self._subs) + 1}", _predicate(flt),
                           maxsize)
        self._subs.append(sub)
        return sub

    def tap(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``listener(event)`` synchronously for every event (Rule 4); returns a
        function that removes it."""
        self._taps.append(listener)
        return lambda: self._taps.remove(listener) if listener in self._taps else None

    def unsubscribe(self, sub: Subscription) -> None:
        """Same as ``sub.close()``."""
        sub.close()

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
            self._dropped_by_closed += sub.dropped

    def publish(self, event: Event) -> None:
        """Give ``event`` to every matching subscriber; never blocks (Rule 1)."""
        self.published += 1
        for listener in tuple(self._taps):
            try:
                listener(event)
            except Exception:  # a consumer's bug must not stop publishing (Rule 4)
                self.filter_errors += 1
                logger.exception("event tap %r failed on %s", listener, type(event).__name__)
        for sub in tuple(self._subs):
            sub._offer(event)

    def close(self) -> None:
        """Close every subscription (node shutdown)."""
        for sub in tuple(self._subs):
            sub.close()

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subs)

    def metrics(self) -> BusMetrics:
        per = tuple(s.metrics() for s in self._subs)
        return BusMetrics(
            published=self.published,
            subscribers=len(per),
            dropped=self._dropped_by_closed + sum(m.dropped for m in per),
            filter_errors=self.filter_errors,
            per_subscriber=per,
        )
