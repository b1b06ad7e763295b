"""The call manager: a back-to-back user agent between phones, with anchored media.

DESIGN.md "Call model". A call is one inbound leg (A, the caller) and the outbound legs
(B, forks) created for the target the dial plan chose; the manager sees legs only through
a :class:`~switch.drivers.base.ChannelDriver` and media only through
:class:`~switch.media.service.MediaService`, and it publishes every step on the
:class:`~switch.bus.EventBus` (the CDR collector, CTI and wallboards listen there).

Rules:

* Rule 1 -- routing: ``DialPlan.route`` picks the target. An extension rings every
  registered contact at once (forking, RFC 3261 §16.7 parallel search); the first 2xx wins
  and the other forks are cancelled (``_fork``). An unregistered extension goes to its
  forward or mailbox, else 480; no route 404; a dial-plan reject its own status. IVR,
  voicemail and queue targets are answered and served by :mod:`switch.call_services`;
  trunk targets and calls from trunks go through ``trunks``
  (``switch.trunks.outbound.TrunkCalls``: DID routing, toll-fraud policy, the INVITE out).
  A target whose service the node does not run gets 480.
* Rule 2 -- failures: when every fork failed, the caller gets 486 if any fork was busy
  (600/603 passed as they are), else 480. No answer within ``no_answer_timeout_s``: 480.
  Before either, ``forwarding`` (``switch.forwarding``) may send the call on: to the
  extension's forward target or its mailbox (603 is never forwarded). The caller's
  CANCEL cancels every fork (the core already answered 487).
* Rule 3 -- media: one media channel per leg; when the callee alerts without SDP the caller
  gets 183 with our SDP and a local ringback tone; early media from the callee, and the
  answer, bridge the legs (PCMU<->PCMA is the engine's job).
* Rule 4 -- ending: BYE on either side ends both legs; so do ``max_call_duration_s``, RTP
  inactivity on an answered, not held leg (``RtpTimedOut``) and shutdown. Each leg's RTP
  statistics are published (``LegMediaStats``) before the caller leg's ``CallHungUp``,
  which is what closes the CDR (``switch.cdr.CdrCollector``); the callee legs' hang-ups
  come first.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from storage.db import StorageError
from switch import router
from switch.bus import EventBus
from switch.call_services import CallServices
from switch.channel import Channel
from switch.drivers.base import (
    ChannelDriver,
    LegAnswered,
    LegEvent,
    LegHeld,
    LegHungUp,
    LegOffered,
    LegReferred,
    LegRejected,
    LegRinging,
)
from switch.events import (
    CallAnswered,
    CallBridged,
    CallHeld,
    CallHungUp,
    CallOffered,
    CallResumed,
    CallRinging,
    CallRouted,
    DigitReceived,
    LegMediaStats,
)
from switch.media.errors import MediaError
from switch.media.service import DigitReceived as MediaDigit
from switch.media.service import MediaService, RtpTimedOut
from switch.moh import MusicOnHold
from switch.router import DialPlan, Extension, Ivr, Reject, Trunk, describe_target
from switch.transfer import Transfers

logger = logging.getLogger(__name__)

__all__ = ["Call", "CallManager"]

CallerLists = Mapping[str, Collection[str]]

_CAUSES = {486: "user_busy", 600: "user_busy", 603: "call_rejected", 404: "unallocated_number",
           480: "no_answer", 408: "no_answer", 403: "call_rejected"}


@dataclass(eq=False, slots=True)
class Call:
    """One call attempt: the caller's leg and the legs created for it."""

    id: str
    a: Channel
    caller: str
    dialed: str
    forks: list[Channel] = field(default_factory=list)
    b: Channel | None = None
    ringing: bool = False
    ringback: bool = False
    early_from: Channel | None = None
    ending: bool = False
    final_status: int | None = None
    fork_statuses: list[int] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)
    """Per-call state of feature modules (``switch.forwarding``), by module."""
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    ivr_task: asyncio.Task[Any] | None = None
    transfer: asyncio.Future[str] | None = None
    source: str = "user"
    caller_name: str = ""
    trunk: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    """The IVR's ``tag`` values (the CTI screen pop reads them)."""

    def legs(self) -> list[Channel]:
        return [self.a, *self.forks]

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()


class CallManager(CallServices):
    """Switches calls between legs (see the module docstring for the rules).

    Args:
        driver: the channel driver of the legs (SIP).
        media: the media service the driver opened the legs' channels on.
        bus: where call events are published.
        dialplan: the compiled dial plan.
        no_answer_timeout_s: ring time before the caller gets 480.
        max_call_duration_s: an answered call is ended after this long (0: never).
        caller_lists: loads the dial plan's caller lists (vip, blocked...) from storage.
        lists_refresh_s: how often the caller lists are reloaded.
        wall: wall clock for event times (``switch.events`` Rule 2).
    """

    def __init__(self, driver: ChannelDriver, media: MediaService, bus: EventBus,
                 dialplan: DialPlan, *, no_answer_timeout_s: float = 30.0,
                 max_call_duration_s: float = 0.0,
                 caller_lists: Callable[[], Awaitable[CallerLists]] | None = None,
                 lists_refresh_s: float = 5.0, wall: Callable[[], float] = time.time) -> None:
        self.driver = driver
        self.media = media
        self.bus = bus
        self.dialplan = dialplan
        self.no_answer_timeout_s = no_answer_timeout_s
        self.max_call_duration_s = max_call_duration_s
        self._load_lists = caller_lists
        self.lists_refresh_s = lists_refresh_s
        self.wall = wall
        self.voicemail: Any = None
        """``switch.voicemail.VoicemailService``; None: voicemail targets get 480."""
        self.forwarding: Any = None
        """``switch.forwarding.Forwarding``: asked before an extension rings (unconditional
        forward), for its ring time, and when it is busy, does not answer or is not
        registered (forward or voicemail); None: 486/480 as in Rule 2."""
        self.lists: CallerLists = {}
        self.calls: dict[str, Call] = {}
        self._call_of: dict[str, Call] = {}
        self.queues: Any = None
        """The live ACD (``switch.queues.QueueService``); None: queue targets get 480."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._handlers: dict[type, Callable[[Any], None]] = {
            LegOffered: self._offered, LegRinging: self._ringing, LegAnswered: self._answered,
            LegRejected: self._rejected, LegHungUp: self._hung_up, LegHeld: self._held,
        }
        self.transfers = Transfers(self)
        """REFER handling: blind and attended transfers (``switch.transfer``)."""
        self._handlers[LegReferred] = self.transfers.referred
        self._handlers[LegOffered] = self.transfers.offered  # INVITE with Replaces first
        self.moh: MusicOnHold | None = None
        """Music for held parties (``switch.moh``); None: a held party hears silence."""
        self.stats = {"calls": 0, "answered": 0, "failed": 0}
        if hasattr(driver, "direct_media_for"):  # switch.direct_media, switch.late_offer
            driver.direct_media_for = self._direct_media_for
            driver.media_peer = self._media_peer
        self.ivr: Any = None
        """The IVR runner (``switch.ivr_service.IvrService``); None: IVR targets get 480."""
        self.trunks: Any = None
        """Trunk calls (``switch.trunks.outbound.TrunkCalls``); None: trunk targets get 480."""
        self.leg_hook: Callable[[LegEvent], bool] | None = None
        """Sees every leg event first and returns True for the legs it placed itself (the
        CTI's supervisor and click-to-dial legs, ``cti.switch_backend``)."""

    # ====================================================================================
    # Lifecycle
    # ====================================================================================
    async def start(self) -> None:
        await self._refresh_lists()
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._media_events(), name="call-media-events")]
        if self._load_lists is not None:
            self._loops.append(loop.create_task(self._lists_loop(), name="caller-lists"))

    async def stop(self) -> None:
        """Graceful shutdown: end every call (BYE/CANCEL/480), publish their events."""
        for call in list(self.calls.values()):
            self._end(call, "shutdown", "system")
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()

    async def _refresh_lists(self) -> None:
        if self._load_lists is None:
            return
        try:
            self.lists = await self._load_lists()
        except StorageError as exc:  # a database outage: keep the old lists
            logger.warning("caller lists not refreshed: %s", exc)

    async def _lists_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lists_refresh_s)
            await self._refresh_lists()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("call task %s failed", task.get_name(), exc_info=task.exception())

    def _publish(self, cls: type, call: Call, channel: Channel, **fields: Any) -> None:
        self.bus.publish(cls(at=self.wall(), call_id=call.id, channel=channel.name, **fields))

    # ====================================================================================
    # Leg events
    # ====================================================================================
    def handle(self, event: LegEvent) -> None:
        """Entry point for the driver's leg events."""
        if self.leg_hook is not None and self.leg_hook(event):
            return
        if self.queues is not None and self.queues.handle_leg(event):
            return  # an agent's offer leg (switch.queues Rule 2)
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _offered(self, ev: LegOffered) -> None:
        a = ev.channel
        call = Call(a.call_id or uuid.uuid4().hex[:20], a, ev.caller, ev.dialed,
                    source=ev.source, caller_name=ev.caller_name, trunk=ev.trunk)
        a.call_id = call.id
        self.calls[call.id] = call
        self._call_of[a.name] = call
        self.stats["calls"] += 1
        self._publish(CallOffered, call, a, caller=ev.caller, callee=ev.dialed,
                      source=ev.source, caller_name=ev.caller_name)
        now_local = dt.datetime.fromtimestamp(self.wall(), dt.UTC)
        if ev.source == "trunk" and self.trunks is not None:
            decision = self.trunks.route_inbound(call, self.dialplan, now_local, self.lists)
        else:
            decision = self.dialplan.route(ev.dialed, ev.caller, ev.source, now_local,
                                           self.lists)
        self._publish(CallRouted, call, a, rule=decision.rule_name,
                      target=describe_target(decision.target))
        logger.info("call %s from %s: %s", call.id, ev.caller, decision.describe())
        target = decision.target
        if isinstance(target, Reject):
            self._fail(call, target.status, _CAUSES.get(target.status, "call_rejected"),
                       "system")
        elif (isinstance(target, router.Voicemail) and self.voicemail is not None
              and self.voicemail.has_box(target.box)):
            self.start_voicemail(call, target.box)
        elif isinstance(target, Extension):
            self._dial_extension(call, target.number)
        elif self.queues is not None and self.queues.serves(target):
            self._start_queue(call, target)
        elif isinstance(target, Ivr) and self.ivr is not None and self.ivr.has(target.program):
            self._start_ivr(call, target.program)
        elif isinstance(target, Trunk) and self.trunks is not None:
            self.trunks.dial(self, call, target)
        else:
            logger.info("call %s: target %s is not served yet", call.id,
                        describe_target(target))
            self._fail(call, 480, "not_implemented", "system")

    def _direct_media_for(self, dialed: str, caller: str) -> bool:
        """Whether the route of this call says ``media = "direct"`` (asked by the driver
        before it opens any media for the caller's leg)."""
        now_local = dt.datetime.fromtimestamp(self.wall(), dt.UTC)
        rule = self.dialplan.route(dialed, caller, "user", now_local, self.lists).rule
        return rule is not None and rule.config.media == "direct"

    def _media_peer(self, leg: Channel) -> int | None:
        call = self._call_of.get(leg.name)
        if call is None or call.b is None:
            return None
        return call.b.media_id if leg is call.a else call.a.media_id

    def _dial_extension(self, call: Call, number: str) -> None:
        """Rule 1: fork to every registered contact of ``number``."""
        fwd = self.forwarding
        if fwd is not None and fwd.before_dial(self, call, number):
            return  # forwarded unconditionally
        contacts = self.driver.lookup(number)
        if not contacts:
            if fwd is not None and fwd.on_failure(self, call, "no_answer"):
                return
            self._fail(call, 480, "subscriber_absent", "system")
            return
        self._fork(call, number, contacts)
        loop = asyncio.get_running_loop()
        ring_s = self.no_answer_timeout_s if fwd is None else fwd.ring_time(
            number, self.no_answer_timeout_s)
        call.timers.append(loop.call_later(ring_s, self._no_answer, call))

    def _fork(self, call: Call, number: str, contacts: list[Any]) -> None:
        """One outbound leg per registered contact of ``number``, all at once (Rule 1)."""
        a = call.a
        for contact in contacts:
            b = self.driver.new_outbound(number)
            b.call_id = call.id
            call.forks.append(b)
            self._call_of[b.name] = call
            self._publish(CallOffered, call, b, caller=call.caller, callee=number,
                          source="internal")
            if a.direct_media:  # switch.direct_media: no media to open, no task
                self.driver.originate_direct(b, contact, a, caller=call.caller)
                continue
            self._spawn(self.driver.originate(b, contact, caller=call.caller,
                                              caller_name=call.caller_name,
                                              codec=a.codec or "PCMU", near=a.media_id),
                        f"originate-{b.name}")

    def _ringing(self, ev: LegRinging) -> None:
        b = ev.channel
        call = self._call_of.get(b.name)
        if call is None or call.ending or call.b is not None:
            return
        if not call.ringing:
            call.ringing = True
            self._publish(CallRinging, call, b)
        a = call.a
        if a.direct_media:
            if call.early_from is None:
                call.early_from = b if ev.early_media else None
                self.driver.relay_progress(a, b)
            return
        if a.media_id is None or b.media_id is None:
            return
        if ev.early_media and call.early_from is None:
            call.early_from = b
            self.driver.progress(a)
            self._spawn(self._early_bridge(call, b), f"early-{call.id}")
        elif not ev.early_media and not call.ringback and call.early_from is None:
            call.ringback = True
            self.driver.progress(a)
            self._spawn(self.media.tone(a.media_id, "ringback"), f"ringback-{call.id}")

    async def _early_bridge(self, call: Call, b: Channel) -> None:
        """Rule 3: the callee's early media goes to the caller instead of our ringback."""
        a = call.a
        if a.media_id is None or b.media_id is None:
            return
        if call.ringback:
            call.ringback = False
            await self.media.stop(a.media_id)
        await self.media.bridge(a.media_id, b.media_id)

    def _answered(self, ev: LegAnswered) -> None:
        b = ev.channel
        call = self._call_of.get(b.name)
        if call is None:
            return
        if call.ending or call.b is not None:
            self.driver.hangup(b)  # a second fork answered: keep the first
            return
        call.b = b
        call.cancel_timers()
        for fork in call.forks:
            if fork is not b:
                self.driver.cancel(fork)
        if call.a.direct_media:
            if self.driver.connect_direct(call.a, b):
                self._connected(call, b)
            else:
                self._end(call, "network_failure", "system")
            return
        self._spawn(self._connect(call, b), f"connect-{call.id}")

    async def _connect(self, call: Call, b: Channel) -> None:
        a = call.a
        if a.media_id is None or b.media_id is None:
            self._end(call, "network_failure", "system")
            return
        try:
            if call.ringback:
                call.ringback = False
                await self.media.stop(a.media_id)
            if call.early_from is not None and call.early_from is not b:
                await self.media.unbridge(a.media_id)
            await self.media.bridge(a.media_id, b.media_id)
        except MediaError as exc:
            logger.error("call %s: bridge failed: %s", call.id, exc)
            self._end(call, "network_failure", "system")
            return
        if call.ending:
            return
        self._connected(call, b)

    def _connected(self, call: Call, b: Channel) -> None:
        """The media is set up: answer the caller and publish the answer."""
        a = call.a
        self.driver.answer(a)
        self.stats["answered"] += 1
        if call.transfer is not None and not call.transfer.done():
            call.transfer.set_result("connected")
        self._publish(CallAnswered, call, b, codec=b.codec)
        self._publish(CallAnswered, call, a, codec=a.codec)
        self._publish(CallBridged, call, a, other_channel=b.name)
        self._publish(CallBridged, call, b, other_channel=a.name)
        if self.max_call_duration_s > 0:
            loop = asyncio.get_running_loop()
            call.timers.append(loop.call_later(self.max_call_duration_s, self._end, call,
                                               "max_duration", "system"))

    def _rejected(self, ev: LegRejected) -> None:
        b = ev.channel
        call = self._call_of.get(b.name)
        if call is None or call.ending or call.b is not None:
            return
        call.fork_statuses.append(ev.status)
        if any(not fork.ended for fork in call.forks):
            return
        if call.transfer is not None:  # an IVR transfer failed: the IVR goes on
            if not call.transfer.done():
                busy = any(s in (486, 600) for s in call.fork_statuses)
                call.transfer.set_result("busy" if busy else "fail")
            return
        status = self._caller_status(call.fork_statuses)
        if self.forwarding is not None and status != 603 and self.forwarding.on_failure(
                self, call, "busy" if status in (486, 600) else "no_answer"):
            return
        self._fail(call, status, _CAUSES.get(status, "call_rejected"), "callee")

    @staticmethod
    def _caller_status(statuses: list[int]) -> int:
        """Rule 2: busy wins, then a global decline, else 480."""
        for wanted in (486, 600, 603):
            if wanted in statuses:
                return wanted
        return 480

    def _hung_up(self, ev: LegHungUp) -> None:
        ch = ev.channel
        call = self._call_of.get(ch.name)
        if call is None or call.ending:
            return
        if ch is call.a:
            if ev.cancelled:
                call.final_status = 487
                self._end(call, "originator_cancel", "caller")
            else:
                self._end(call, "normal_clearing", "caller")
        elif ch is call.b:
            self._end(call, "normal_clearing", "callee")
        else:  # a fork that ended before it won (dialog died)
            self._rejected(LegRejected(ch, 480))

    def _held(self, ev: LegHeld) -> None:
        call = self._call_of.get(ev.channel.name)
        if call is not None:
            self._publish(CallHeld if ev.held else CallResumed, call, ev.channel)
            if self.moh is not None:
                self.moh.hold_changed(call, ev.channel, ev.held)

    # ====================================================================================
    # Ending calls
    # ====================================================================================
    def _no_answer(self, call: Call) -> None:
        if not call.ending and call.b is None:
            if self.forwarding is not None and self.forwarding.on_failure(self, call,
                                                                          "no_answer"):
                return
            self._fail(call, 480, "no_answer", "system")

    def _fail(self, call: Call, status: int, cause: str, side: str) -> None:
        """The call cannot be connected: final ``status`` to the caller."""
        if call.ending:
            return
        self.stats["failed"] += 1
        call.final_status = status
        self.driver.reject(call.a, status)
        self._end(call, cause, side)

    def _end(self, call: Call, cause: str, side: str) -> None:
        """Rule 4: end every leg, then publish stats and hang-ups (in a task)."""
        if call.ending:
            return
        call.ending = True
        call.cancel_timers()
        if self.queues is not None:
            self.queues.call_ended(call, side)  # abandon, or end of an agent call
        if call.ivr_task is not None and call.ivr_task is not asyncio.current_task():
            call.ivr_task.cancel()  # the caller hung up during the IVR
        if call.transfer is not None and not call.transfer.done():
            call.transfer.set_result("fail")
        for leg in call.forks:
            self.driver.hangup(leg)
        if call.b is None and call.final_status is None:
            call.final_status = 480
            self.driver.reject(call.a, 480)
        self.driver.hangup(call.a)
        self._spawn(self._finish(call, cause, side), f"finish-{call.id}")

    async def _finish(self, call: Call, cause: str, side: str) -> None:
        for leg in [*call.forks, call.a]:
            stats = await self.driver.release(leg)
            if stats is not None and leg.codec:
                remote = stats.get("remote")
                self._publish(
                    LegMediaStats, call, leg, codec=leg.codec,
                    packets_received=int(stats.get("packets_received", 0)),
                    packets_lost=max(0, int(stats.get("lost", 0))),
                    jitter_ms=float(stats.get("jitter_ms", 0.0)),
                    rtt_ms=stats.get("rtt_ms"),
                    remote=f"{remote[0]}:{remote[1]}" if remote else "")
        answered = call.b is not None
        for leg in call.forks:
            status = None if leg is call.b else (487 if answered else call.final_status)
            self._publish(CallHungUp, call, leg, cause=cause, side=side, sip_status=status)
        self._publish(CallHungUp, call, call.a, cause=cause, side=side,
                      sip_status=None if answered else call.final_status)
        for leg in call.legs():
            self._call_of.pop(leg.name, None)
        self.calls.pop(call.id, None)
        logger.info("call %s ended: %s (%s)", call.id, cause, side)

    # ====================================================================================
    # Media events: digits and RTP inactivity
    # ====================================================================================
    def _leg_of_media(self, cid: int) -> tuple[Call, Channel] | None:
        for call in self.calls.values():
            for leg in call.legs():
                if leg.media_id == cid:
                    return call, leg
        return None

    async def _media_events(self) -> None:
        while True:
            event = await self.media.events.get()
            found = self._leg_of_media(event.channel_id)
            if found is None:
                continue
            call, leg = found
            if isinstance(event, MediaDigit):
                digit = event.event
                logger.info("call %s: digit %s on %s (%s)", call.id, digit.digit, leg.name,
                            digit.source)
                self._publish(DigitReceived, call, leg, digit=digit.digit,
                              duration_ms=digit.duration_ms or 0)
            elif isinstance(event, RtpTimedOut) and call.b is not None and not leg.held:
                logger.info("call %s: no RTP on %s; ending the call", call.id, leg.name)
                self._end(call, "media_timeout", "system")
