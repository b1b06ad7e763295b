"""The live switch's calls and agents as the CTI sees them: bus events in, CTI events out.

:class:`LiveState` is a synchronous tap on the switch's event bus (``switch.bus`` Rule 4:
lossless, in publish order). It keeps one :class:`LiveCall` per switch call and the agents
logged in on devices, and turns the switch's call events (``switch.events``) into the CTI
events of IVR_CTI_ACD.md §B.8, named after CSTA (ECMA-269 §17):

==============================  ===============================================
bus event                       CTI event
==============================  ===============================================
CallOffered (caller = a device  ``call.originated`` (the agent dialled out)
with an agent)
CallRinging / first CallAnswered ``call.delivered`` with the screen pop
of a leg toward a device
CallBridged of the caller leg   ``call.established``
CallHeld / CallResumed          ``call.held`` / ``call.retrieved``
CallTransferred                 ``call.transferred``
RecordingStarted / Stopped      ``call.recording``
CallQueued / CallDequeued       ``call.queued`` / ``call.dequeued``
CallHungUp of the caller leg    ``call.cleared`` with the cause
==============================  ===============================================

Rules:

* Rule 1 -- the screen pop (``call.delivered``) carries the caller number, the resident's
  record (looked up once per call, when the call is offered) and the IVR's tags. When the
  lookup has not finished at delivery, the call's later events wait behind it (``pending``)
  so a client never sees ``established`` before ``delivered``; the lookup is bounded by
  ``lookup_timeout_s`` and a storage error only empties the record.
* Rule 2 -- agent states move through the ACD's own table (``switch.acd.agent``): a delivery
  to a ready agent's device reserves the agent, the answer makes it busy, the end of the call
  starts wrap-up. Inputs the table refuses (a direct call to an agent who is not ready) leave
  the state alone: the call is still reported.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cti.backend import AGENT_STATE_EVENTS, BackendEvent, EventSink, ResidentDirectory
from switch.acd.agent import AgentInput, AgentState, AgentStateError, transition
from switch.events import (
    CallAnswered,
    CallBridged,
    CallDequeued,
    CallHeld,
    CallHungUp,
    CallOffered,
    CallQueued,
    CallResumed,
    CallRinging,
    CallTransferred,
    Event,
    RecordingStarted,
    RecordingStopped,
)

logger = logging.getLogger(__name__)

__all__ = ["LiveAgent", "LiveCall", "LiveState"]


@dataclass(slots=True)
class LiveAgent:
    """An agent logged in on a device (the CTI's table until the live ACD owns agents)."""

    agent_id: str
    device: str
    queues: frozenset[str]
    state: AgentState = AgentState.LOGGED_OFF
    reason: str = ""
    call_id: str | None = None


@dataclass(slots=True)
class LiveCall:
    """One switch call. ``a_leg`` is the caller's channel (for a click-to-dial call, the
    agent's); ``agent_leg`` the channel at the agent's device."""

    call_id: str
    caller: str
    dialed: str
    a_leg: str
    placed_by: str | None = None
    """The agent who placed it with ``call.make`` (its leg is the A leg)."""
    forks: dict[str, str] = field(default_factory=dict)
    """Channel name -> the device it rings."""
    delivered: set[str] = field(default_factory=set)
    agent_id: str | None = None
    device: str | None = None
    agent_leg: str | None = None
    peer_leg: str | None = None
    """The channel bridged to the A leg."""
    state: str = "offered"
    """CSTA connection state: offered, alerting, connected, hold."""
    queue: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    recording: str = "stopped"
    recording_path: str | None = None
    resident: asyncio.Future[dict[str, Any] | None] | None = None
    pending: list[BackendEvent] | None = None


class LiveState:
    """The CTI's view of the switch (module docstring). Call :meth:`handle` for every bus
    event (``bus.tap(state.handle)``).

    Args:
        residents: the screen-pop directory (None: no resident records).
        tags_of: the IVR tags of a call id (``switch.b2bua.Call.tags``).
        lookup_timeout_s: Rule 1's bound on the resident lookup.
    """

    def __init__(self, residents: ResidentDirectory | None,
                 tags_of: Callable[[str], Mapping[str, str]] = lambda call_id: {},
                 lookup_timeout_s: float = 3.0) -> None:
        self.residents = residents
        self.tags_of = tags_of
        self.lookup_timeout_s = lookup_timeout_s
        self.calls: dict[str, LiveCall] = {}
        self.agents: dict[str, LiveAgent] = {}
        self.agent_of_device: dict[str, str] = {}
        self.on_cleared: list[Callable[[LiveCall], None]] = []
        self.external_agent_at: Callable[[str], str | None] = lambda device: None
        """The agent logged in on a device in the live ACD (``cti.switch_agents``)."""
        self.external_queues_of: Callable[[str], frozenset[str]] = lambda agent: frozenset()
        self._sink: EventSink = lambda event: None
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: dict[type, Callable[[Any], None]] = {
            CallOffered: self._offered, CallRinging: self._ringing,
            CallAnswered: self._answered, CallBridged: self._bridged,
            CallHeld: self._held, CallResumed: self._resumed,
            CallTransferred: self._transferred, RecordingStarted: self._recording,
            RecordingStopped: self._recording, CallQueued: self._queued,
            CallDequeued: self._dequeued, CallHungUp: self._hung_up,
        }

    def set_sink(self, sink: EventSink) -> None:
        self._sink = sink

    # -------------------------------------------------------------- emitting

    def agent_at(self, device: str) -> str | None:
        """The agent logged in on ``device``: this table's, else the live ACD's."""
        return self.agent_of_device.get(device) or self.external_agent_at(device)

    def scope(self, call: LiveCall) -> frozenset[str]:
        """The queues a call's events concern: its queue, else its agent's queues."""
        if call.queue:
            return frozenset((call.queue,))
        agent = self.agents.get(call.agent_id or "")
        if agent is not None:
            return agent.queues
        return self.external_queues_of(call.agent_id) if call.agent_id else frozenset()

    def emit_call(self, call: LiveCall, name: str, data: dict[str, Any]) -> None:
        """A call event, in order behind a pending screen pop (Rule 1)."""
        event = BackendEvent(name, {"call_id": call.call_id, "agent_id": call.agent_id,
                                    **data}, self.scope(call), call.agent_id)
        if call.pending is not None:
            call.pending.append(event)
        else:
            self._sink(event)

    def emit(self, event: BackendEvent) -> None:
        self._sink(event)

    def move(self, agent: LiveAgent, agent_input: AgentInput, reason: str = "", *,
             strict: bool = False) -> bool:
        """Rule 2: apply ``agent_input``; emit the state event. ``strict``: raise
        :class:`AgentStateError` on a refused input instead of ignoring it."""
        try:
            _, new = transition(agent.state, agent_input)
        except AgentStateError:
            if strict:
                raise
            logger.debug("agent %s: %s ignored in %s", agent.agent_id, agent_input.name,
                         agent.state.name)
            return False
        old = agent.state
        if new is old and (new is not AgentState.NOT_READY or reason == agent.reason):
            return True
        agent.state, agent.reason = new, reason if new is AgentState.NOT_READY else ""
        if new is AgentState.LOGGED_OFF:
            self.agent_of_device.pop(agent.device, None)
        self._sink(BackendEvent(AGENT_STATE_EVENTS[new], {
            "agent_id": agent.agent_id, "state": new.value, "previous": old.value,
            "reason": agent.reason, "device": agent.device, "call_id": agent.call_id},
            agent.queues, agent.agent_id))
        return True

    # -------------------------------------------------------------- bus tap

    def handle(self, event: Event) -> None:
        """The bus tap: one switch event."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _offered(self, ev: CallOffered) -> None:
        call = self.calls.get(ev.call_id)
        if call is None:
            call = self.calls[ev.call_id] = LiveCall(ev.call_id, ev.caller, ev.callee,
                                                     ev.channel)
            self.start_lookup(call)
            agent_id = self.agent_at(ev.caller)
            if agent_id is not None and ev.source != "internal":
                call.agent_id, call.device, call.agent_leg = agent_id, ev.caller, ev.channel
                call.placed_by = agent_id
                self.emit_call(call, "call.originated", {"device": ev.caller,
                                                         "destination": ev.callee})
        elif ev.channel != call.a_leg:
            call.forks[ev.channel] = ev.callee

    def start_lookup(self, call: LiveCall) -> None:
        """Rule 1: look the caller up once, in the background."""
        if self.residents is None or call.resident is not None:
            return
        call.resident = asyncio.ensure_future(self._lookup(call.caller))

    async def _lookup(self, number: str) -> dict[str, Any] | None:
        assert self.residents is not None
        try:
            return await self.residents.lookup(number)
        except Exception:  # storage trouble must not lose the call's events (Rule 1)
            logger.exception("screen pop: resident lookup of %s failed", number)
            return None

    def _ringing(self, ev: CallRinging) -> None:
        call = self.calls.get(ev.call_id)
        if call is not None:
            self._deliver(call, ev.channel)

    def _answered(self, ev: CallAnswered) -> None:
        call = self.calls.get(ev.call_id)
        if call is not None and ev.channel in call.forks:
            self._deliver(call, ev.channel)

    def deliver_offer(self, call_id: str, agent_id: str, device: str, queue: str,
                      tags: Mapping[str, Any] | None = None) -> None:
        """The live ACD rings ``agent_id`` at ``device`` for a queued call: the screen pop
        (its offer legs are the ACD's, not forks of the call)."""
        call = self.calls.get(call_id)
        if call is None:
            return
        call.queue = queue or call.queue
        call.agent_id, call.device, call.state = agent_id, device, "alerting"
        call.delivered.add(f"offer:{agent_id}")
        self._pop(call, f"offer:{agent_id}", device, agent_id, tags)

    def withdraw_offer(self, call_id: str, agent_id: str) -> None:
        """The ACD stopped ringing ``agent_id`` (ring timeout, answered elsewhere...): the
        call is no longer that agent's (its commands on it answer ``not_found``)."""
        call = self.calls.get(call_id)
        if call is not None and call.agent_id == agent_id and call.peer_leg is None:
            call.agent_id = call.device = call.agent_leg = None
            call.state = "queued"
            call.delivered.discard(f"offer:{agent_id}")

    def _deliver(self, call: LiveCall, channel: str) -> None:
        device = call.forks.get(channel)
        if device is None or channel in call.delivered:
            return
        call.delivered.add(channel)
        agent_id = self.agent_at(device)
        if f"offer:{agent_id}" in call.delivered:
            return  # the ACD's offer to this agent was the delivery
        agent = self.agents.get(agent_id or "")
        if call.placed_by is None:
            call.agent_id, call.device, call.agent_leg = agent_id, device, channel
            call.state = "alerting"
        if agent is not None and call.placed_by is None and agent.state is AgentState.READY:
            agent.call_id = call.call_id
            self.move(agent, AgentInput.OFFER)
        self._pop(call, channel, device, agent_id, None)

    def _pop(self, call: LiveCall, channel: str, device: str, agent_id: str | None,
             tags: Mapping[str, Any] | None) -> None:
        fut = call.resident
        if fut is None or fut.done():
            self._emit_delivered(call, channel, device, agent_id, tags)
            return
        call.pending = call.pending or []
        task = asyncio.ensure_future(self._deliver_later(call, channel, device, agent_id,
                                                         tags))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_later(self, call: LiveCall, channel: str, device: str,
                             agent_id: str | None, tags: Mapping[str, Any] | None) -> None:
        assert call.resident is not None
        try:
            await asyncio.wait_for(asyncio.shield(call.resident), self.lookup_timeout_s)
        except TimeoutError:
            logger.warning("screen pop of call %s: resident lookup took over %.1f s",
                           call.call_id, self.lookup_timeout_s)
        pending, call.pending = call.pending or [], None
        self._emit_delivered(call, channel, device, agent_id, tags)
        for event in pending:
            self._sink(event)

    def _emit_delivered(self, call: LiveCall, channel: str, device: str,
                        agent_id: str | None, tags: Mapping[str, Any] | None) -> None:
        fut = call.resident
        resident = fut.result() if fut is not None and fut.done() and \
            not fut.cancelled() else None
        pop = {"caller_number": call.caller, "resident": resident,
               "ivr_tags": {**dict(tags or {}), **self.tags_of(call.call_id)}}
        event = BackendEvent("call.delivered", {
            "call_id": call.call_id, "agent_id": agent_id, "device": device,
            "queue": call.queue, "caller": call.caller, "called": call.dialed,
            "screen_pop": pop}, self.scope(call), agent_id)
        self._sink(event)

    def _bridged(self, ev: CallBridged) -> None:
        call = self.calls.get(ev.call_id)
        if call is None or ev.channel != call.a_leg or call.peer_leg == ev.other_channel:
            return
        call.peer_leg = ev.other_channel
        call.state = "connected"
        if call.placed_by is None:
            device = call.forks.get(ev.other_channel)
            call.agent_leg, call.device = ev.other_channel, device
            call.agent_id = self.agent_at(device or "")
        agent = self.agents.get(call.agent_id or "")
        if agent is not None:
            agent.call_id = call.call_id
            self.move(agent, AgentInput.ANSWER)
        self.emit_call(call, "call.established", {
            "device": call.device, "caller": call.caller, "called": call.dialed,
            "destination": call.dialed if call.placed_by else call.device})

    def _held(self, ev: CallHeld) -> None:
        call = self.calls.get(ev.call_id)
        if call is not None:
            call.state = "hold"
            self.emit_call(call, "call.held", {"channel": ev.channel})

    def _resumed(self, ev: CallResumed) -> None:
        call = self.calls.get(ev.call_id)
        if call is not None:
            call.state = "connected" if call.peer_leg else call.state
            self.emit_call(call, "call.retrieved", {"channel": ev.channel})

    def _transferred(self, ev: CallTransferred) -> None:
        call = self.calls.get(ev.call_id)
        if call is None:
            return
        self.emit_call(call, "call.transferred", {"destination": ev.target, "kind": ev.mode})
        self._release_agent(call)
        call.agent_id = call.device = call.agent_leg = call.peer_leg = None
        call.state = "offered"

    def _recording(self, ev: RecordingStarted | RecordingStopped) -> None:
        call = self.calls.get(ev.call_id)
        if call is not None:
            started = isinstance(ev, RecordingStarted)
            call.recording = "recording" if started else "stopped"
            self.emit_call(call, "call.recording", {"action": "start" if started else "stop",
                                                    "ref": ev.ref})

    def _queued(self, ev: CallQueued) -> None:
        call = self.calls.get(ev.call_id)
        if call is not None:
            call.queue = ev.queue
            self.emit_call(call, "call.queued", {"queue": ev.queue, "caller": call.caller,
                                                 "position": ev.position,
                                                 "priority": ev.priority})

    def _dequeued(self, ev: CallDequeued) -> None:
        call = self.calls.get(ev.call_id)
        if call is not None:
            self.emit_call(call, "call.dequeued", {"queue": ev.queue, "reason": ev.reason,
                                                   "waited_s": ev.waited_s})

    def _hung_up(self, ev: CallHungUp) -> None:
        call = self.calls.get(ev.call_id)
        if call is None:
            return
        if ev.channel == call.a_leg:
            del self.calls[ev.call_id]
            self.emit_call(call, "call.cleared", {"cause": ev.cause, "side": ev.side,
                                                  "sip_status": ev.sip_status})
            self._release_agent(call)
            for listener in tuple(self.on_cleared):
                listener(call)
        elif ev.channel == call.agent_leg and call.peer_leg is None:
            self._release_agent(call)  # the agent's phone never answered
            call.agent_id = call.device = call.agent_leg = None

    def _release_agent(self, call: LiveCall) -> None:
        agent = self.agents.get(call.agent_id or "")
        if agent is None or agent.call_id != call.call_id:
            return
        if agent.state is AgentState.RESERVED:
            agent.call_id = None
            self.move(agent, AgentInput.WITHDRAW)
        elif agent.state is AgentState.BUSY:
            self.move(agent, AgentInput.CALL_END)
