"""QueueService: the ACD on live calls -- the asyncio shell around :class:`AcdEngine`.

DESIGN.md "Call model", IVR_CTI_ACD.md §C. The engine (``switch.acd``, pure) decides; this
shell feeds it what happens on the calls and performs what it returns. It owns the engine,
one timer (armed at ``engine.next_deadline()``, STYLE.md §4.3) and the agents' offer legs.

Rules:

* Rule 1 -- entering: a dial-plan ``queue`` target (``CallManager`` answers the caller, then
  :meth:`serve`) and the IVR's ``queue`` statement (:meth:`wait`, through the IVR's call
  control) both become ``CallerArrived``. The caller hears music on hold (a call-progress
  tone or a looping prompt, ``moh``) and, when the queue announces, "您前面还有3位，预计等待2
  分钟" spoken by the TTS between stretches of music.
* Rule 2 -- offers: ``OfferCall`` rings the agent's device: every registered contact of the
  extension at once (forking, as ``CallManager._dial_extension``). A device with no contact
  is an immediate ``OfferRejected``. The first 2xx of the agent's contacts is the agent's
  answer (``OfferAnswered``); the engine alone decides whether it wins (its Rule 1): on
  ``BridgeCall`` the leg is handed to :meth:`CallManager.bridge_agent`, on ``WithdrawOffer``
  every leg of that offer is cancelled (or hung up, if it answered) and released. A
  rejected or vanished leg is ``OfferRejected`` once all the agent's contacts failed.
  An agent on an outside number (device ``external:<number>``) is rung through a trunk
  that allows it (``switch.queue_external``); its one leg is handled the same way.
* Rule 3 -- leaving: the caller's hang-up while queued or ringing is ``CallerAbandoned``
  (``CallManager._end`` calls :meth:`call_ended`); a connected call's end is ``CallEnded``
  (``by_agent`` when the agent's side hung up), after which the engine runs wrap-up.
  ``Overflow`` ends the wait with outcome "full", "timeout" or "closed" (join/leave empty)
  and the queue's overflow target; an overflow to another queue keeps the caller waiting.
  IVR callers go back to the script with that outcome (the script decides); dial-plan
  callers go to an ``ivr:`` overflow target, leave a message for a ``voicemail:`` one (when
  the node has a voicemail service), or hear an apology and are hung up. A caller
  who asks to be called back (``callback_key``) leaves with "callback" and keeps its place
  (``switch.queue_callback``).
* Rule 4 -- one input at a time: inputs produced while actions are performed (a device with
  no contact rejects at once) are queued and fed after the current batch, so the engine's
  action order is kept.
* Rule 5 -- every action is shown to the observers (:meth:`add_observer`; the CTI server maps
  them with ``cti.acd_events``), every ``LogEntry`` is appended to the log sink (storage,
  ``switch.queue_log``), and agent changes and queue entries/exits are published on the
  bus (``AgentStateChanged``, ``CallQueued``, ``CallDequeued``; the CDR reads the last two).
* Rule 6 -- time: the engine runs on the wall clock (Unix seconds), so queue log times are
  real dates for interval reports; the timer is re-armed after every batch.

The API for the CTI server is in :class:`QueueService`'s "agents" and "views" sections
(``login``, ``logout``, ``set_state``, ``end_wrapup``, ``agent_snapshot``, ``agents``,
``waiting_callers``, ``caller_info``, ``snapshot``, ``live_kpis``); it raises
:class:`~switch.acd.AcdError` (unknown agent or queue) and
:class:`~switch.acd.AgentStateError` (a request the agent state table refuses). Events::

    service.add_observer(lambda action: sink_all(cti.acd_events.acd_events(
        action, queues_of=service.queues_of, device_of=service.device_of)))

and for each ``OfferCall``, ``caller_info(call_id)`` gives the screen pop's inputs
(``cti.acd_events.delivered_event``). The node's service is ``Node.queues``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from random import Random
from typing import Any, ClassVar

from switch.acd import (
    AcdAction,
    AcdEngine,
    AcdError,
    AcdInput,
    AgentLoggedOut,
    AgentState,
    AgentStateChanged,
    Announce,
    BridgeCall,
    CallbackRequested,
    CallbackScheduled,
    CallEnded,
    CallerAbandoned,
    CallerArrived,
    LogEntry,
    LogSink,
    MemoryLogSink,
    OfferAnswered,
    OfferCall,
    OfferRejected,
    Overflow,
    OverflowTarget,
    PlaceCallback,
    PlayMusic,
    StopMusic,
    WithdrawOffer,
)
from switch.bus import EventBus
from switch.channel import Channel
from switch.drivers.base import LegAnswered, LegEvent, LegHungUp, LegRejected
from switch.events import AgentStateChanged as AgentStateEvent
from switch.events import CallDequeued, CallOffered, CallQueued, RecordingStarted
from switch.queue_callback import Callbacks
from switch.queue_config import QueueSettings
from switch.queue_external import ring_external
from switch.queue_media import HeldCaller, HoldMedia, announcement_text
from switch.queue_views import AgentDesk
from switch.router import Queue

logger = logging.getLogger(__name__)

__all__ = ["QueueOutcome", "QueueService", "announcement_text"]

SORRY_ZH = "对不起，现在没有坐席可以接听，请稍后再拨。"
"""What a dial-plan caller hears when the queue cannot take it and there is no overflow."""

_OUTCOMES = {"full": "full", "timeout": "timeout", "join-empty": "closed", "empty": "closed"}
"""Overflow reason -> the IVR ``queue`` statement's outcome."""

Observer = Callable[[AcdAction], None]


@dataclass(frozen=True, slots=True)
class QueueOutcome:
    """How a caller's wait ended: "answered", "callback", "timeout", "full" or "closed",
    with the queue's overflow target for the last three (None: none configured)."""

    result: str
    queue: str
    target: OverflowTarget | None = None
    agent_id: str = ""


@dataclass(eq=False, slots=True)
class _Offer:
    call_id: str
    agent_id: str
    queue: str
    legs: list[Channel] = field(default_factory=list)
    answered: Channel | None = None


class QueueService(AgentDesk):
    """The live ACD (see the module docstring for the rules).

    Args:
        queues: ``[queues.<name>]`` settings (``Config.queues``).
        log: where queue log entries go (``switch.queue_log.QueueLogWriter``; a memory sink
            by default).
        bus: the node's event bus (None: no bus events).
        wall: the clock the engine runs on (Unix seconds).
        rng: randomness for the random strategies (seeded in tests).
        voice, rate: the TTS voice and speed of announcements.
        media_errors: exceptions of a failed prompt or a closed channel (ignored: a caller
            who cannot hear an announcement keeps its place).
    """

    def __init__(self, queues: Mapping[str, QueueSettings], *, log: LogSink | None = None,
                 bus: EventBus | None = None, wall: Callable[[], float] = time.time,
                 rng: Random | None = None, voice: str = "zh", rate: int = 160,
                 media_errors: tuple[type[BaseException], ...] = (OSError,)) -> None:
        self.settings = dict(queues)
        self.engine = AcdEngine([s.acd for s in self.settings.values()], rng or Random())
        self.log: LogSink = log if log is not None else MemoryLogSink()
        self.bus = bus
        self.wall = wall
        self.voice = voice
        self.rate = rate
        self.media_errors = media_errors
        self.hold = HoldMedia(voice=voice, rate=rate, media_errors=media_errors)
        self.callbacks = Callbacks(self)
        self.calls: Any = None
        """The ``switch.b2bua.CallManager`` (set by :meth:`attach`)."""
        self._waiters: dict[str, HeldCaller] = {}
        self._offers: dict[tuple[str, str], _Offer] = {}
        self._leg_offer: dict[str, _Offer] = {}
        self._inputs: deque[AcdInput | None] = deque()
        self._running = False
        self._timer: asyncio.TimerHandle | None = None
        self._observers: list[Observer] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stats = {"queued": 0, "offers": 0, "bridged": 0, "abandoned": 0, "overflows": 0}

    # ====================================================================================
    # Lifecycle
    # ====================================================================================
    def attach(self, calls: Any) -> None:
        """Serve queue targets of ``calls`` (a CallManager) and ring agents through it."""
        self.calls = calls
        calls.queues = self

    async def start(self) -> None:
        """Log in the configured static agents (ready), each with the skill of every queue
        that lists it."""
        skills: dict[str, dict[str, int]] = {}
        devices: dict[str, str] = {}
        for settings in self.settings.values():
            for agent in settings.static_agents:
                devices.setdefault(agent.agent_id, agent.extension)
                skill = settings.acd.required_skill
                skills.setdefault(agent.agent_id, {})[skill] = agent.level
        for agent_id, extension in devices.items():
            self.login(agent_id, extension, skills=skills[agent_id])
        if devices:
            logger.info("ACD: %d static agent(s) logged in", len(devices))

    async def stop(self) -> None:
        """Cancel the timer; let the legs' releases finish (the calls were ended by the
        CallManager), then cancel what is left (music, announcements). Agents still logged
        in are logged out, so the queue log's agent time ends with the node."""
        self.callbacks.end_all()
        for agent in list(self.engine.agents.values()):
            if agent.state is not AgentState.LOGGED_OFF:
                with contextlib.suppress(AcdError):
                    self._apply(AgentLoggedOut(agent.agent_id))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def has(self, queue: str) -> bool:
        """Whether ``queue`` is a configured queue."""
        return queue in self.engine.queues

    def serves(self, target: object) -> bool:
        """Whether a dial-plan target is a queue of ours (``switch.router.Queue``)."""
        return isinstance(target, Queue) and self.has(target.name)

    # ====================================================================================
    # Observers (CTI)
    # ====================================================================================
    def add_observer(self, observer: Observer) -> None:
        """Call ``observer(action)`` for every ACD action, in engine order (Rule 5).

        The CTI server turns them into events with ``cti.acd_events.acd_events``; for an
        ``OfferCall`` it gets the screen-pop inputs from :meth:`caller_info`."""
        self._observers.append(observer)

    def remove_observer(self, observer: Observer) -> None:
        with contextlib.suppress(ValueError):
            self._observers.remove(observer)

    # ====================================================================================
    # Callers
    # ====================================================================================
    async def wait(self, call: Any, queue: str, *, priority: int = 0, skill: str | None = None,
                   maxwait_s: float | None = None,
                   tags: Mapping[str, Any] | None = None) -> QueueOutcome:
        """Rule 1: queue an answered caller; returns when it is bridged to an agent
        ("answered") or leaves ("timeout", "full", "closed"). Cancelling the awaiting task
        (the caller hung up) abandons the call."""
        if call.id in self._waiters:
            raise AcdError(f"call {call.id} is already queued")
        if queue not in self.settings:
            raise AcdError(f"unknown queue {queue}")
        loop = asyncio.get_running_loop()
        waiter = HeldCaller(call, queue, self.wall(), loop.create_future(),
                            self.settings[queue].moh, dict(tags or {}))
        self._waiters[call.id] = waiter
        self.stats["queued"] += 1
        key = self.settings[queue].callback_key
        if key and call.a.media_id is not None and self.calls is not None:
            self._spawn(self.callbacks.watch_keys(waiter, key), f"keys-{call.id}", waiter)
        try:
            self._apply(CallerArrived(queue, call.id, priority, skill or "", None, maxwait_s))
            return await asyncio.shield(waiter.done)
        except asyncio.CancelledError:
            if self.engine.position(call.id) is not None:
                self._apply(CallerAbandoned(call.id))
            raise
        finally:
            waiter.active = False
            for task in list(waiter.tasks):
                task.cancel()
            if self._waiters.get(call.id) is waiter:
                del self._waiters[call.id]

    async def wait_for_ivr(self, call: Any, queue: str, *, priority: int, skill: str | None,
                           maxwait_s: float | None, tags: Mapping[str, Any]) -> str:
        """:meth:`wait` for the IVR's ``queue`` statement: its outcome, with a scheduled
        callback reported as "answered" (the ACD took the call; the script ends)."""
        outcome = await self.wait(call, queue, priority=priority, skill=skill,
                                  maxwait_s=maxwait_s, tags=tags)
        return "answered" if outcome.result == "callback" else outcome.result

    def request_callback(self, call_id: str, number: str | None = None) -> None:
        """The waiting caller leaves and keeps its place; ``number`` (default: the caller's
        own) is called back when an agent takes it (``switch.queue_callback``).

        Raises:
            AcdError: the call is not waiting in a queue.
        """
        waiter = self._waiters.get(call_id)
        if number is None:
            if waiter is None:
                raise AcdError(f"call {call_id} is not waiting in a queue")
            number = waiter.call.caller
        self._apply(CallbackRequested(call_id, number))

    async def serve(self, manager: Any, call: Any, queue: str, priority: int) -> None:
        """Rule 3: a dial-plan queue target, run as the call's task after the answer."""
        outcome = await self.wait(call, queue, priority=priority)
        if outcome.result in ("answered", "callback"):
            return
        target = outcome.target
        cid = call.a.media_id
        logger.info("call %s left queue %s: %s (overflow %s)", call.id, outcome.queue,
                    outcome.result, target.label() if target else "none")
        ivr = getattr(manager, "ivr", None)
        if target is not None and target.kind == "ivr" and ivr is not None \
                and ivr.has(target.target) and cid is not None:
            await ivr.run(target.target, cid, manager.ivr_control(call), caller=call.caller,
                          called=call.dialed, call_id=call.id)
            return
        voicemail = getattr(manager, "voicemail", None)  # switch.voicemail, when present
        if target is not None and target.kind == "voicemail" and voicemail is not None \
                and cid is not None:
            await voicemail.record(call.id, cid, box=target.target, caller=call.caller,
                                   on_recording=lambda ref: self._publish(
                                       RecordingStarted, call, call.a, ref=ref))
            return
        if cid is not None and getattr(manager.media, "tts", None) is not None:
            with contextlib.suppress(*self.media_errors):
                await (await manager.media.say(cid, SORRY_ZH, voice=self.voice,
                                               rate=self.rate))

    def call_ended(self, call: Any, side: str) -> None:
        """Rule 3: the CallManager ends ``call`` (``side`` caller, callee or system)."""
        if call.id in self.callbacks.entries:
            return  # the caller asked to be called back: its place is kept
        if self.engine.position(call.id) is not None:
            self.stats["abandoned"] += 1
            self._apply(CallerAbandoned(call.id))
        elif self.engine.connected_agent(call.id) is not None:
            self._apply(CallEnded(call.id, by_agent=side == "callee"))

    # ====================================================================================
    # Agent legs (CallManager.handle passes them here first)
    # ====================================================================================
    def handle_leg(self, event: LegEvent) -> bool:
        """Rule 2: take the leg events of offer legs; False for every other leg."""
        if self.callbacks.handle_leg(event):
            return True
        offer = self._leg_offer.get(event.channel.name)
        if offer is None:
            return False
        ch = event.channel
        if isinstance(event, LegAnswered):
            if offer.answered is not None:  # a second contact of the same agent
                self._drop_leg(ch)
                return True
            offer.answered = ch
            for leg in offer.legs:
                if leg is not ch:
                    self._drop_leg(leg)
            offer.legs = [ch]
            self._apply(OfferAnswered(offer.call_id, offer.agent_id))
        elif isinstance(event, LegRejected | LegHungUp):
            if ch is offer.answered:  # hung up between answer and bridge
                self._apply(CallEnded(offer.call_id, by_agent=True))
                return True
            self._drop_leg(ch)
            offer.legs = [leg for leg in offer.legs if leg is not ch]
            if not offer.legs and self._offers.get((offer.call_id, offer.agent_id)) is offer:
                self._apply(OfferRejected(offer.call_id, offer.agent_id))
        return True

    def _drop_leg(self, leg: Channel) -> None:
        """Stop one offer leg (CANCEL, or BYE if it answered) and free its media."""
        self._leg_offer.pop(leg.name, None)
        if self.calls is None:
            return
        self.calls.driver.hangup(leg)
        self._spawn(self.calls.driver.release(leg), f"release-{leg.name}")

    # ====================================================================================
    # The engine loop (Rule 4) and its timer (Rule 6)
    # ====================================================================================
    def _apply(self, event: AcdInput | None) -> None:
        """Feed one input (None: the timer) and perform the actions. Errors of a direct
        call propagate to the caller; inputs queued meanwhile are fed after."""
        if self._running:
            self._inputs.append(event)
            return
        self._running = True
        try:
            self._perform(self._engine_step(event))
            while self._inputs:
                queued = self._inputs.popleft()
                try:
                    actions = self._engine_step(queued)
                except AcdError as exc:
                    logger.warning("ACD refused %r: %s", queued, exc)
                    continue
                self._perform(actions)
        finally:
            self._running = False
            self._arm()

    def _engine_step(self, event: AcdInput | None) -> list[AcdAction]:
        now = self.wall()
        return self.engine.handle_timer(now) if event is None else self.engine.handle(now, event)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.engine.next_deadline()
        if deadline is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(max(0.0, deadline - self.wall()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._apply(None)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str,
               waiter: HeldCaller | None = None) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        if waiter is not None:
            waiter.tasks.add(task)
            task.add_done_callback(waiter.tasks.discard)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("ACD task %s failed", task.get_name(), exc_info=task.exception())

    # ====================================================================================
    # Performing actions
    # ====================================================================================
    def _perform(self, actions: list[AcdAction]) -> None:
        for action in actions:
            handler = self._actions.get(type(action))
            if handler is not None:
                handler(self, action)
            for observer in list(self._observers):
                try:
                    observer(action)
                except Exception:  # an observer's bug must not stop the ACD
                    logger.exception("ACD observer %r failed on %r", observer, action)

    def _do_log(self, action: LogEntry) -> None:
        self.log.append(action.entry)

    def _do_offer(self, action: OfferCall) -> None:
        waiter = self._waiters.get(action.call_id)
        if action.device.kind == "external" and self.calls is not None:
            if ring_external(self, action, waiter):
                return
            self._inputs.append(OfferRejected(action.call_id, action.agent_id))
            return
        contacts = []
        if self.calls is not None and action.device.kind == "extension":
            contacts = self.calls.driver.lookup(action.device.address)
        if action.callback_number is not None and contacts:
            self._ring_agent(action, contacts, action.callback_number, "PCMU", None)
            return
        if waiter is None or not contacts or waiter.call.a.media_id is None:
            logger.info("ACD: cannot ring agent %s at %s:%s for call %s", action.agent_id,
                        action.device.kind, action.device.address, action.call_id)
            self._inputs.append(OfferRejected(action.call_id, action.agent_id))
            return
        a = waiter.call.a
        self._ring_agent(action, contacts, waiter.call.caller, a.codec or "PCMU", a.media_id)

    def _ring_agent(self, action: OfferCall, contacts: list[Any], caller: str, codec: str,
                    near: int | None) -> None:
        """Rule 2: fork the offer to every contact of the agent's extension."""
        driver = self.calls.driver
        offer = self.new_offer(action)
        for contact in contacts:
            leg = self.offer_leg(offer, action.device.address)
            self._spawn(driver.originate(leg, contact, caller=caller, codec=codec, near=near),
                        f"offer-{leg.name}")

    def new_offer(self, action: OfferCall) -> _Offer:
        """Track an offer whose legs ring the agent (Rule 2 handles their events)."""
        offer = _Offer(action.call_id, action.agent_id, action.queue)
        self._offers[(action.call_id, action.agent_id)] = offer
        self.stats["offers"] += 1
        return offer

    def offer_leg(self, offer: _Offer, number: str) -> Channel:
        """A new outbound leg of ``offer`` toward ``number`` (not yet originated)."""
        leg = self.calls.driver.new_outbound(number)
        leg.call_id = offer.call_id
        offer.legs.append(leg)
        self._leg_offer[leg.name] = offer
        return leg

    def _do_withdraw(self, action: WithdrawOffer) -> None:
        offer = self._offers.pop((action.call_id, action.agent_id), None)
        if offer is None:
            return
        for leg in offer.legs:
            self._drop_leg(leg)
        offer.legs = []

    def _do_bridge(self, action: BridgeCall) -> None:
        offer = self._offers.pop((action.call_id, action.agent_id), None)
        waiter = self._waiters.get(action.call_id)
        leg = offer.answered if offer is not None else None
        if leg is None or waiter is None:  # cannot happen: the answer came from that leg
            logger.error("ACD: bridge of %s to %s without a leg", action.call_id,
                         action.agent_id)
            self._inputs.append(CallEnded(action.call_id, by_agent=True))
            return
        self._leg_offer.pop(leg.name, None)
        waiter.active = False
        for task in list(waiter.tasks):
            task.cancel()
        self.stats["bridged"] += 1
        call = waiter.call
        self._publish(CallOffered, call, leg, caller=call.caller, callee=action.device.address,
                      source="internal")
        self._publish(CallDequeued, call, call.a, queue=action.queue, reason="answered",
                      agent_id=action.agent_id, waited_s=round(self.wall() - waiter.since, 3))
        call.ringback = True  # CallManager._connect stops the music before bridging
        self.calls.bridge_agent(call, leg)
        if not waiter.done.done():
            waiter.done.set_result(QueueOutcome("answered", action.queue,
                                                agent_id=action.agent_id))

    def _do_callback(self, action: PlaceCallback) -> None:
        self.callbacks.entries.discard(action.call_id)
        offer = self._offers.pop((action.call_id, action.agent_id), None)
        leg = offer.answered if offer is not None else None
        if leg is None or self.calls is None:
            self._inputs.append(CallEnded(action.call_id, by_agent=True))
            return
        self._leg_offer.pop(leg.name, None)
        self.callbacks.place(action, leg)

    def _do_overflow(self, action: Overflow) -> None:
        self.stats["overflows"] += 1
        waiter = self._waiters.get(action.call_id)
        if waiter is None:
            return
        target = action.target
        if target is not None and target.kind == "queue" and self.has(target.target) \
                and self.engine.position(action.call_id) is not None:
            waiter.queue = target.target  # the engine moved the caller (its Rule 2)
            return
        self._publish(CallDequeued, waiter.call, waiter.call.a, queue=action.queue,
                      reason=_OUTCOMES.get(action.reason, action.reason),
                      waited_s=round(self.wall() - waiter.since, 3))
        waiter.active = False
        if not waiter.done.done():
            waiter.done.set_result(QueueOutcome(_OUTCOMES.get(action.reason, "closed"),
                                                action.queue, target))

    def _do_music(self, action: PlayMusic) -> None:
        waiter = self._waiters.get(action.call_id)
        if waiter is not None:
            waiter.active = True  # (again, after an overflow into another queue)
            self._publish(CallQueued, waiter.call, waiter.call.a, queue=waiter.queue,
                          position=self.engine.position(action.call_id) or 0)
            self._spawn(self.hold.music(self.calls.media, waiter), f"moh-{action.call_id}",
                        waiter)

    def _do_stop_music(self, action: StopMusic) -> None:
        waiter = self._waiters.get(action.call_id)
        if waiter is not None and self.calls is not None and waiter.call.a.media_id is not None:
            waiter.active = False  # a BridgeCall that follows cancels this task before it runs
            self._spawn(self.hold.silence(self.calls.media, waiter.call.a.media_id),
                        f"moh-stop-{action.call_id}", waiter)

    def _do_announce(self, action: Announce) -> None:
        waiter = self._waiters.get(action.call_id)
        text = announcement_text(action.position, action.expected_wait_s,
                                 self.settings[action.queue].callback_key)
        if waiter is not None and text:
            self._spawn(self.hold.announce(self.calls.media, waiter, text),
                        f"announce-{action.call_id}", waiter)

    def _do_agent_state(self, action: AgentStateChanged) -> None:
        if self.bus is not None:
            agent = self.engine.agents.get(action.agent_id)
            self.bus.publish(AgentStateEvent(
                at=self.wall(), agent_id=action.agent_id, old=action.old.value,
                new=action.new.value, reason=action.reason,
                call_id=(agent.call_id or "") if agent is not None else ""))

    _actions: ClassVar[dict[type, Callable[[QueueService, Any], None]]] = {
        LogEntry: _do_log, OfferCall: _do_offer, WithdrawOffer: _do_withdraw,
        BridgeCall: _do_bridge, PlaceCallback: _do_callback, Overflow: _do_overflow,
        PlayMusic: _do_music, StopMusic: _do_stop_music, Announce: _do_announce,
        CallbackScheduled: lambda self, action: self.callbacks.scheduled(action),
        AgentStateChanged: _do_agent_state,
    }

    def _publish(self, cls: type, call: Any, channel: Channel, **fields: Any) -> None:
        if self.bus is not None:
            self.bus.publish(cls(at=self.wall(), call_id=call.id, channel=channel.name,
                                 **fields))
