"""Callback in queue on live calls: the caller leaves and keeps its place; when its turn
comes an agent is rung first, then the caller is dialled back (IVR_CTI_ACD.md §C.4,
"agent-first" callback; ``switch.acd.engine`` Rule 7).

Part of the live ACD (``switch.queues``). The engine decides everything; this module carries
out the two ends of a callback:

* Rule 0 -- asking: the queue's ``callback_key`` pressed while waiting (or
  ``QueueService.request_callback``) is ``CallbackRequested``; on ``CallbackScheduled`` the
  caller hears a confirmation and its wait ends with outcome "callback" (the dial plan then
  hangs up; the IVR's queue statement sees "answered"). The entry keeps the caller's place
  without a live leg, and the hang-up that follows is not an abandon.

For a ``PlaceCallback`` (the agent already answered its offer leg):

* Rule 1 -- the customer's number is dialled like an extension (every registered contact
  at once, first answer wins); the agent hears ringback meanwhile. A number that is not a
  registered extension goes through the dial plan as a local user's call would
  (``switch.originate.DestinationResolver``, user ``acd-callback``): a ``trunk`` target
  is sent out by ``originate_via_trunk`` after the trunk policy's checks (its caller-ID
  policy presents the site's number) and counts against ``max_calls``; anything else
  (no route, refused) ends the callback at once (logged), like an unanswered one.
* Rule 2 -- the first customer leg that answers is bridged to the agent's leg (media
  service bridge); the other contacts are cancelled.
* Rule 3 -- the call ends when either side hangs up, or when no customer contact answers
  (rejected, or ``answer_timeout_s``): both legs are ended and released and the engine gets
  ``CallEnded`` (``by_agent`` when the agent's side ended it), so the agent goes to wrap-up.
  A callback that reached nobody is not queued again (logged as a warning).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from switch.acd import CallbackScheduled, CallEnded, PlaceCallback
from switch.channel import Channel
from switch.drivers.base import LegAnswered, LegEvent, LegHungUp, LegRejected

logger = logging.getLogger(__name__)

__all__ = ["CALLBACK_ZH", "CallbackCall", "Callbacks"]

CALLBACK_ZH = "好的，我们会按您的排队顺序给您回电，再见。"
"""The confirmation a caller hears after asking to be called back."""


@dataclass(eq=False, slots=True)
class CallbackCall:
    """One callback being placed: the agent's answered leg and the customer's legs."""

    call_id: str
    queue: str
    agent_id: str
    number: str
    agent: Channel
    customer_legs: list[Channel] = field(default_factory=list)
    customer: Channel | None = None
    timer: asyncio.TimerHandle | None = None
    ended: bool = False


class Callbacks:
    """Places the callbacks of one :class:`~switch.queues.QueueService` (Rules 1-3).

    Args:
        service: the owning queue service (its call manager, engine input and tasks).
        answer_timeout_s: how long the customer's phone may ring.
    """

    def __init__(self, service: Any, *, answer_timeout_s: float = 30.0) -> None:
        self.service = service
        self.answer_timeout_s = answer_timeout_s
        self._by_leg: dict[str, CallbackCall] = {}
        self.entries: set[str] = set()
        """Call ids of callback entries waiting in a queue (no live leg)."""
        self.placed = 0
        self.connected = 0

    @property
    def active(self) -> int:
        """Callbacks being placed or talking."""
        return len({id(cb) for cb in self._by_leg.values()})

    async def watch_keys(self, held: Any, key: str) -> None:
        """Rule 0: ``key`` pressed by a waiting caller (``HeldCaller``) asks for a callback."""
        service = self.service
        try:
            digits = service.calls.media.digits(held.call.a.media_id)
        except service.media_errors:
            return
        while held.active:
            event = await digits.get()
            if str(event.digit) == key and held.active \
                    and service.engine.position(held.call.id) is not None:
                service.request_callback(held.call.id)
                return

    def scheduled(self, action: CallbackScheduled) -> None:
        """Rule 0: confirm to the caller, then end its wait with "callback"."""
        from switch.events import CallDequeued

        self.entries.add(action.call_id)
        service = self.service
        held = service._waiters.get(action.call_id)
        if held is None:
            return
        held.active = False
        service._publish(CallDequeued, held.call, held.call.a, queue=action.queue,
                         reason="callback", waited_s=round(service.wall() - held.since, 3))
        service._spawn(self._confirm(held, action.queue), f"cb-ok-{action.call_id}")

    async def _confirm(self, held: Any, queue: str) -> None:
        from switch.queues import QueueOutcome

        service = self.service
        media, cid = service.calls.media, held.call.a.media_id
        try:
            async with held.lock:
                if cid is not None and getattr(media, "tts", None) is not None:
                    with contextlib.suppress(*service.media_errors):
                        await media.stop(cid)
                        await (await media.say(cid, CALLBACK_ZH, voice=service.voice,
                                               rate=service.rate))
        finally:
            if not held.done.done():
                held.done.set_result(QueueOutcome("callback", queue))

    def place(self, action: PlaceCallback, agent_leg: Channel) -> None:
        """Rule 1: ring the customer for an agent who answered a callback offer."""
        manager = self.service.calls
        driver = manager.driver
        cb = CallbackCall(action.call_id, action.queue, action.agent_id, action.number,
                          agent_leg)
        self._by_leg[agent_leg.name] = cb
        self.placed += 1
        contacts = driver.lookup(action.number)
        if agent_leg.media_id is not None and not contacts and self._via_trunk(cb):
            return
        if not contacts or agent_leg.media_id is None:
            logger.warning("callback %s: cannot dial %s (not a registered extension, "
                           "no trunk route)", action.call_id, action.number)
            self._end(cb, by_agent=False)
            return
        for contact in contacts:
            leg = driver.new_outbound(action.number)
            leg.call_id = action.call_id
            cb.customer_legs.append(leg)
            self._by_leg[leg.name] = cb
            self.service._spawn(driver.originate(leg, contact, caller=action.queue,
                                                 codec=agent_leg.codec or "PCMU",
                                                 near=agent_leg.media_id),
                                f"callback-{leg.name}")
        self._start_ringing(cb)
        logger.info("callback %s: agent %s calls %s back", cb.call_id, cb.agent_id,
                    cb.number)

    def _via_trunk(self, cb: CallbackCall) -> bool:
        """Rule 1 for outside numbers: True when a trunk leg was placed."""
        from switch.originate import DestinationResolver
        from switch.trunks.outbound import originate_via_trunk

        manager = self.service.calls
        trunk_calls = getattr(manager, "trunks", None)
        if trunk_calls is None:
            return False
        resolver = DestinationResolver(manager.driver, trunk_calls.policy.trunks,
                                       getattr(manager, "dialplan", None),
                                       trunk_calls=trunk_calls, user="acd-callback",
                                       wall=self.service.wall)
        destination = resolver.resolve(cb.number)
        if isinstance(destination, str) or not destination.trunk:
            logger.info("callback %s: %s has no trunk route: %s", cb.call_id, cb.number,
                        destination if isinstance(destination, str) else "an extension")
            return False
        trunk = trunk_calls.policy.trunks[destination.trunk]
        leg = manager.driver.new_outbound(destination.number)
        leg.call_id = cb.call_id
        cb.customer_legs.append(leg)
        self._by_leg[leg.name] = cb
        trunk_calls.track(trunk.name, leg)
        agent = cb.agent
        self.service._spawn(originate_via_trunk(
            manager.driver, leg, trunk, destination.number, caller="",
            codec=agent.codec or "PCMU", near=agent.media_id, digest=trunk_calls.digest),
            f"callback-{leg.name}")
        self._start_ringing(cb)
        logger.info("callback %s: agent %s calls %s back via trunk %s", cb.call_id,
                    cb.agent_id, destination.number, trunk.name)
        return True

    def _start_ringing(self, cb: CallbackCall) -> None:
        """Ringback to the agent and the answer timeout (both ways of dialling)."""
        assert cb.agent.media_id is not None
        self.service._spawn(self._ringback(cb.agent.media_id), f"callback-rb-{cb.call_id}")
        cb.timer = asyncio.get_running_loop().call_later(self.answer_timeout_s, self._timeout,
                                                         cb)

    async def _ringback(self, cid: int) -> None:
        with contextlib.suppress(*self.service.media_errors):
            await self.service.calls.media.tone(cid, "ringback")

    def _timeout(self, cb: CallbackCall) -> None:
        if cb.customer is None and not cb.ended:
            logger.warning("callback %s: %s did not answer", cb.call_id, cb.number)
            self._end(cb, by_agent=False)

    def handle_leg(self, event: LegEvent) -> bool:
        """Rules 2 and 3 for the legs of callbacks; False for every other leg."""
        cb = self._by_leg.get(event.channel.name)
        if cb is None:
            return False
        ch = event.channel
        if ch is cb.agent:
            if isinstance(event, LegHungUp | LegRejected):
                self._end(cb, by_agent=True)
            return True
        if isinstance(event, LegAnswered) and cb.customer is None and not cb.ended:
            cb.customer = ch
            for leg in cb.customer_legs:
                if leg is not ch:
                    self._drop(leg)
            cb.customer_legs = [ch]
            self.service._spawn(self._bridge(cb), f"callback-bridge-{cb.call_id}")
        elif isinstance(event, LegAnswered):
            self._drop(ch)  # a second contact answered: keep the first
        elif isinstance(event, LegHungUp | LegRejected):
            if ch is cb.customer:
                self._end(cb, by_agent=False)
            else:
                self._drop(ch)
                cb.customer_legs = [leg for leg in cb.customer_legs if leg is not ch]
                if not cb.customer_legs and cb.customer is None:
                    self._end(cb, by_agent=False)
        return True

    async def _bridge(self, cb: CallbackCall) -> None:
        media = self.service.calls.media
        a, b = cb.agent.media_id, cb.customer.media_id if cb.customer else None
        if a is None or b is None or cb.ended:
            return
        if cb.timer is not None:
            cb.timer.cancel()
        try:
            await media.stop(a)
            await media.bridge(a, b)
        except self.service.media_errors as exc:
            logger.error("callback %s: bridge failed: %s", cb.call_id, exc)
            self._end(cb, by_agent=False)
            return
        self.connected += 1
        logger.info("callback %s: agent %s connected to %s", cb.call_id, cb.agent_id,
                    cb.number)

    def _drop(self, leg: Channel) -> None:
        self._by_leg.pop(leg.name, None)
        driver = self.service.calls.driver
        driver.hangup(leg)
        self.service._spawn(driver.release(leg), f"release-{leg.name}")

    def _end(self, cb: CallbackCall, *, by_agent: bool) -> None:
        """Rule 3: end both sides and tell the engine."""
        if cb.ended:
            return
        cb.ended = True
        if cb.timer is not None:
            cb.timer.cancel()
        for leg in [cb.agent, *cb.customer_legs]:
            self._drop(leg)
        self.service._apply(CallEnded(cb.call_id, by_agent=by_agent))

    def end_all(self) -> None:
        """Shutdown: end every callback in progress."""
        for cb in {id(c): c for c in self._by_leg.values()}.values():
            self._end(cb, by_agent=False)
