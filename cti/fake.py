"""FakeBackend: an in-memory call centre that implements :class:`cti.backend.CtiBackend`.

It keeps agents, queues, calls and residents in dictionaries and emits the events the real
switch will emit (``call.queued`` -> ``call.delivered`` with the screen pop ->
``call.established`` -> ``call.cleared``, ``agent.*``...). Agent transitions use the ACD's
own table (:func:`switch.acd.agent.transition`), so a request the ACD would refuse is refused
here with ``invalid_state``. Tests, the console demo and the benchmark run against it.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cti.backend import AGENT_STATE_EVENTS, BackendEvent, CallScope, EventSink, ResidentDirectory
from cti.messages import CtiRequestError, ErrorCode
from switch.acd.agent import AgentInput, AgentState, AgentStateError, transition

logger = logging.getLogger(__name__)

__all__ = ["FakeBackend", "MemoryResidentDirectory"]


class MemoryResidentDirectory:
    """Residents keyed by phone number, each a dict with name, unit, vip, open_work_orders,
    unpaid_bills and recent_calls (the screen pop of the issue text)."""

    def __init__(self, residents: Mapping[str, dict[str, Any]] | None = None) -> None:
        self._by_number = dict(residents or {})

    async def lookup(self, caller_number: str) -> dict[str, Any] | None:
        return self._by_number.get(caller_number)



def _err(code: ErrorCode, message: str, field_: str | None = None) -> CtiRequestError:
    return CtiRequestError(code, message, field_)


@dataclass(slots=True)
class _Agent:
    agent_id: str
    device: str
    queues: frozenset[str]
    state: AgentState = AgentState.LOGGED_OFF
    reason: str = ""
    call_id: str | None = None


@dataclass(slots=True)
class _Call:
    call_id: str
    caller: str
    called: str
    queue: str | None
    state: str = "queued"            # CSTA connection states: queued/alerting/connected/hold
    agent_id: str | None = None
    priority: int = 0
    enter_s: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    recording: str = "stopped"


class FakeBackend:
    """An in-memory call centre implementing :class:`CtiBackend`.

    Args:
        queues: queue names.
        residents: screen-pop directory.
        clock: monotonic seconds (waiting times); injectable for tests.
        manual_answer_devices: devices without remote answer (``call.answer`` is refused
            with ``invalid_state``, as on phones without CSTA/uaCSTA answer support).
    """

    def __init__(self, queues: list[str], residents: ResidentDirectory | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 manual_answer_devices: frozenset[str] = frozenset()) -> None:
        self.queues: dict[str, list[str]] = {q: [] for q in queues}
        self.agents: dict[str, _Agent] = {}
        self.calls: dict[str, _Call] = {}
        self.monitors: dict[str, tuple[str, str, str]] = {}
        self.callbacks: list[dict[str, Any]] = []
        self.residents = residents or MemoryResidentDirectory()
        self.manual_answer_devices = manual_answer_devices
        self._clock = clock
        self._ids = itertools.count(1)
        self._sink: EventSink = lambda event: None

    # -------------------------------------------------------------- plumbing

    def set_event_sink(self, sink: EventSink) -> None:
        self._sink = sink

    def emit(self, name: str, data: Mapping[str, Any], queues: frozenset[str] = frozenset(),
             agent_id: str | None = None) -> None:
        """Publish one event (also used directly by the benchmark)."""
        self._sink(BackendEvent(name, data, queues, agent_id))

    def _agent(self, agent_id: str) -> _Agent:
        agent = self.agents.get(agent_id)
        if agent is None or agent.state is AgentState.LOGGED_OFF:
            raise _err(ErrorCode.NOT_FOUND, f"agent {agent_id} is not logged in", "agent_id")
        return agent

    def _call(self, call_id: str, agent_id: str | None = None) -> _Call:
        call = self.calls.get(call_id)
        if call is None:
            raise _err(ErrorCode.NOT_FOUND, f"no call {call_id}", "call_id")
        if agent_id is not None and call.agent_id != agent_id:
            raise _err(ErrorCode.NOT_FOUND, f"call {call_id} is not at agent {agent_id}",
                       "call_id")
        return call

    def _scope(self, call: _Call) -> frozenset[str]:
        return frozenset((call.queue,)) if call.queue else frozenset()

    def _move(self, agent: _Agent, agent_input: AgentInput, reason: str = "") -> None:
        try:
            _, new = transition(agent.state, agent_input)
        except AgentStateError as exc:
            raise _err(ErrorCode.INVALID_STATE, str(exc), "state") from None
        old = agent.state
        if new is old and (new is not AgentState.NOT_READY or reason == agent.reason):
            return
        agent.state, agent.reason = new, reason if new is AgentState.NOT_READY else ""
        data = {"agent_id": agent.agent_id, "state": new.value, "previous": old.value,
                "reason": agent.reason, "device": agent.device}
        self.emit(AGENT_STATE_EVENTS[new], data, agent.queues, agent.agent_id)

    # -------------------------------------------------------------- scope queries

    async def agent_queues(self, agent_id: str) -> frozenset[str]:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise _err(ErrorCode.NOT_FOUND, f"unknown agent {agent_id}", "agent_id")
        return agent.queues

    async def call_scope(self, call_id: str) -> CallScope:
        call = self._call(call_id)
        return CallScope(call.queue, call.agent_id)

    async def snapshot(self) -> dict[str, Any]:
        return {
            "agents": [{"agent_id": a.agent_id, "state": a.state.value, "reason": a.reason,
                        "device": a.device, "queues": sorted(a.queues), "call_id": a.call_id}
                       for a in self.agents.values()],
            "queues": await self.queue_stats(queues=None),
            "calls": [{"call_id": c.call_id, "state": c.state, "queue": c.queue,
                       "agent_id": c.agent_id, "caller": c.caller} for c in self.calls.values()],
        }

    # -------------------------------------------------------------- agents

    async def agent_login(self, *, agent_id: str, device: str,
                          queues: list[str] | None) -> dict[str, Any]:
        names = frozenset(queues if queues is not None else self.queues)
        unknown = names - set(self.queues)
        if unknown:
            raise _err(ErrorCode.NOT_FOUND, f"unknown queue {sorted(unknown)[0]}", "queues")
        agent = self.agents.get(agent_id)
        if agent is not None and agent.state is not AgentState.LOGGED_OFF:
            raise _err(ErrorCode.INVALID_STATE, f"agent {agent_id} is already logged in",
                       "agent_id")
        agent = self.agents[agent_id] = _Agent(agent_id, device, names)
        self.emit("agent.logged_on", {"agent_id": agent_id, "state": "logged_on",
                                      "device": device, "queues": sorted(names)},
                  names, agent_id)
        self._move(agent, AgentInput.LOGIN, "login")
        return {"agent_id": agent_id}

    async def agent_logout(self, *, agent_id: str, reason: str,
                           forced: bool = False) -> dict[str, Any]:
        agent = self._agent(agent_id)
        if forced and agent.state in (AgentState.BUSY, AgentState.RESERVED):
            raise _err(ErrorCode.INVALID_STATE, f"agent {agent_id} is on a call", "agent_id")
        self._move(agent, AgentInput.LOGOUT)
        return {"agent_id": agent_id, "pending": agent.state is not AgentState.LOGGED_OFF}

    async def agent_set_state(self, *, agent_id: str, state: str, reason: str,
                              forced: bool = False) -> dict[str, Any]:
        agent = self._agent(agent_id)
        if state == "ready":
            self._move(agent, AgentInput.SET_READY)
            await self.offer_waiting()
        else:
            self._move(agent, AgentInput.SET_NOT_READY, reason or "not ready")
        return {"agent_id": agent_id, "state": agent.state.value}

    async def agent_end_wrapup(self, *, agent_id: str) -> dict[str, Any]:
        agent = self._agent(agent_id)
        if agent.state is not AgentState.WRAP_UP:
            raise _err(ErrorCode.INVALID_STATE, f"agent {agent_id} is not in wrap-up", "agent_id")
        agent.call_id = None
        self._move(agent, AgentInput.WRAPUP_END)
        await self.offer_waiting()
        return {"agent_id": agent_id}

    # -------------------------------------------------------------- inbound (simulation)

    async def inbound_call(self, caller: str, queue: str, *, called: str = "hotline",
                           tags: Mapping[str, Any] | None = None, priority: int = 0) -> str:
        """A caller leaves the IVR for ``queue`` (what the switch will report); offered at
        once to a ready agent of the queue, with the screen pop."""
        call_id = f"call-{next(self._ids)}"
        call = _Call(call_id, caller, called, queue, priority=priority,
                     enter_s=self._clock(), tags=dict(tags or {}))
        self.calls[call_id] = call
        waiting = self.queues[queue]
        waiting.append(call_id)
        waiting.sort(key=lambda c: -self.calls[c].priority)
        self.emit("call.queued", {"call_id": call_id, "queue": queue, "caller": caller,
                                  "position": waiting.index(call_id) + 1,
                                  "priority": priority}, frozenset((queue,)))
        await self.offer_waiting()
        return call_id

    async def offer_waiting(self) -> int:
        """Offer waiting callers (priority order) to ready agents; return how many."""
        offered = 0
        for queue, waiting in self.queues.items():
            for call_id in list(waiting):
                call = self.calls[call_id]
                if call.agent_id is not None:
                    continue
                agent = next((a for a in self.agents.values() if a.state is AgentState.READY
                              and queue in a.queues), None)
                if agent is None:
                    break
                await self._deliver(call, agent)
                offered += 1
        return offered

    async def _deliver(self, call: _Call, agent: _Agent) -> None:
        resident = await self.residents.lookup(call.caller)
        call.agent_id, call.state = agent.agent_id, "alerting"
        agent.call_id = call.call_id
        self._move(agent, AgentInput.OFFER)
        pop = {"caller_number": call.caller, "resident": resident, "ivr_tags": call.tags}
        self.emit("call.delivered", {"call_id": call.call_id, "agent_id": agent.agent_id,
                                     "device": agent.device, "queue": call.queue,
                                     "caller": call.caller, "called": call.called,
                                     "screen_pop": pop}, self._scope(call), agent.agent_id)

    def caller_hangup(self, call_id: str) -> None:
        """The caller hangs up (abandon while queued, or end of a connected call)."""
        call = self._call(call_id)
        self._end(call, "normal" if call.state in ("connected", "hold") else "abandoned")

    def _end(self, call: _Call, cause: str) -> None:
        if call.queue and call.call_id in self.queues[call.queue]:
            self.queues[call.queue].remove(call.call_id)
            self.emit("call.dequeued", {"call_id": call.call_id, "queue": call.queue,
                                        "reason": "abandoned"}, self._scope(call))
        agent = self.agents.get(call.agent_id or "")
        self.calls.pop(call.call_id, None)
        self.emit("call.cleared", {"call_id": call.call_id, "agent_id": call.agent_id,
                                   "cause": cause}, self._scope(call), call.agent_id)
        if agent is not None and agent.call_id == call.call_id:
            if agent.state is AgentState.RESERVED:
                agent.call_id = None
                self._move(agent, AgentInput.WITHDRAW)
            elif agent.state is AgentState.BUSY:
                self._move(agent, AgentInput.CALL_END)

    # -------------------------------------------------------------- call control

    def _connected(self, agent_id: str, call_id: str, *states: str) -> _Call:
        self._agent(agent_id)
        call = self._call(call_id, agent_id)
        if call.state not in (states or ("connected",)):
            raise _err(ErrorCode.INVALID_STATE, f"call {call_id} is {call.state}", "call_id")
        return call

    def _finish_agent_call(self, call: _Call) -> None:
        """The agent's part of ``call`` ended (transfer, clear): wrap-up as in the ACD."""
        self.calls.pop(call.call_id, None)
        agent = self.agents.get(call.agent_id or "")
        if agent is not None and agent.call_id == call.call_id and \
                agent.state is AgentState.BUSY:
            self._move(agent, AgentInput.CALL_END)

    async def make_call(self, *, agent_id: str, destination: str,
                        data: dict[str, Any] | None) -> dict[str, Any]:
        """Click-to-dial (CSTA MakeCall): ring the agent's device, then the number."""
        agent = self._agent(agent_id)
        if agent.state in (AgentState.BUSY, AgentState.RESERVED):
            raise _err(ErrorCode.INVALID_STATE, f"agent {agent_id} is on a call", "agent_id")
        call = _Call(f"call-{next(self._ids)}", agent.device, destination, None,
                     state="connected", agent_id=agent_id, data=dict(data or {}))
        self.calls[call.call_id] = call
        base = {"call_id": call.call_id, "agent_id": agent_id, "device": agent.device}
        self.emit("call.originated", {**base, "destination": destination},
                  agent.queues, agent_id)
        self.emit("call.established", {**base, "destination": destination},
                  agent.queues, agent_id)
        return {"call_id": call.call_id}

    async def answer_call(self, *, agent_id: str, call_id: str) -> dict[str, Any]:
        agent = self._agent(agent_id)
        call = self._connected(agent_id, call_id, "alerting")
        if agent.device in self.manual_answer_devices:  # CSTA: AnswerCall is device-dependent
            raise _err(ErrorCode.INVALID_STATE, f"device {agent.device} cannot be answered "
                       "remotely; answer on the phone", "call_id")
        self._answer(agent, call)
        return {}

    def device_answered(self, call_id: str) -> None:
        """The agent picked up the ringing phone (what the switch reports)."""
        call = self._call(call_id)
        if call.state != "alerting" or call.agent_id is None:
            raise _err(ErrorCode.INVALID_STATE, f"call {call_id} is {call.state}", "call_id")
        self._answer(self.agents[call.agent_id], call)

    def _answer(self, agent: _Agent, call: _Call) -> None:
        call_id, agent_id = call.call_id, agent.agent_id
        if call.queue and call_id in self.queues[call.queue]:
            self.queues[call.queue].remove(call_id)
            self.emit("call.dequeued", {"call_id": call_id, "queue": call.queue,
                                        "reason": "answered", "agent_id": agent_id},
                      self._scope(call))
        call.state = "connected"
        self._move(agent, AgentInput.ANSWER)
        self.emit("call.established", {"call_id": call_id, "agent_id": agent_id,
                                       "caller": call.caller}, self._scope(call), agent_id)

    async def clear_connection(self, *, agent_id: str, call_id: str) -> dict[str, Any]:
        self._agent(agent_id)
        self._end(self._call(call_id, agent_id), "normal")
        return {}

    async def hold_call(self, *, agent_id: str, call_id: str) -> dict[str, Any]:
        call = self._connected(agent_id, call_id)
        call.state = "hold"
        self.emit("call.held", {"call_id": call_id, "agent_id": agent_id},
                  self._scope(call), agent_id)
        return {}

    async def retrieve_call(self, *, agent_id: str, call_id: str) -> dict[str, Any]:
        call = self._connected(agent_id, call_id, "hold")
        call.state = "connected"
        self.emit("call.retrieved", {"call_id": call_id, "agent_id": agent_id},
                  self._scope(call), agent_id)
        return {}

    async def single_step_transfer(self, *, agent_id: str, call_id: str,
                                   destination: str) -> dict[str, Any]:
        call = self._connected(agent_id, call_id, "connected", "hold")
        self.emit("call.transferred", {"call_id": call_id, "agent_id": agent_id,
                                       "destination": destination, "kind": "blind"},
                  self._scope(call), agent_id)
        self._finish_agent_call(call)
        return {}

    async def consultation_call(self, *, agent_id: str, call_id: str,
                                destination: str) -> dict[str, Any]:
        call = self._connected(agent_id, call_id)
        agent = self.agents[agent_id]
        call.state = "hold"
        self.emit("call.held", {"call_id": call_id, "agent_id": agent_id},
                  self._scope(call), agent_id)
        consult = _Call(f"call-{next(self._ids)}", agent.device, destination, call.queue,
                        state="connected", agent_id=agent_id)
        self.calls[consult.call_id] = consult
        base = {"call_id": consult.call_id, "agent_id": agent_id, "consult_of": call_id}
        self.emit("call.originated", {**base, "destination": destination},
                  self._scope(call), agent_id)
        self.emit("call.established", base, self._scope(call), agent_id)
        return {"consult_call_id": consult.call_id}

    def _pair(self, agent_id: str, call_id: str, consult_call_id: str) -> tuple[_Call, _Call]:
        call = self._connected(agent_id, call_id, "hold", "connected")
        consult = self._call(consult_call_id, agent_id)
        if consult is call:
            raise _err(ErrorCode.INVALID_ARGS, "consult_call_id is the same call",
                       "consult_call_id")
        return call, consult

    async def transfer_call(self, *, agent_id: str, call_id: str,
                            consult_call_id: str) -> dict[str, Any]:
        call, consult = self._pair(agent_id, call_id, consult_call_id)
        self.calls.pop(consult.call_id, None)
        self.emit("call.transferred", {"call_id": call_id, "agent_id": agent_id,
                                       "destination": consult.called, "kind": "consult",
                                       "consult_call_id": consult.call_id},
                  self._scope(call), agent_id)
        self._finish_agent_call(call)
        return {}

    async def conference_call(self, *, agent_id: str, call_id: str,
                              consult_call_id: str) -> dict[str, Any]:
        call, consult = self._pair(agent_id, call_id, consult_call_id)
        self.calls.pop(consult.call_id, None)
        call.state = "connected"
        parties = [call.caller, self.agents[agent_id].device, consult.called]
        self.emit("call.conferenced", {"call_id": call_id, "agent_id": agent_id,
                                       "parties": parties}, self._scope(call), agent_id)
        return {"parties": parties}

    async def reconnect_call(self, *, agent_id: str, call_id: str,
                             consult_call_id: str) -> dict[str, Any]:
        call, consult = self._pair(agent_id, call_id, consult_call_id)
        self.calls.pop(consult.call_id, None)
        self.emit("call.cleared", {"call_id": consult.call_id, "agent_id": agent_id,
                                   "cause": "reconnect"}, self._scope(call), agent_id)
        call.state = "connected"
        self.emit("call.retrieved", {"call_id": call_id, "agent_id": agent_id},
                  self._scope(call), agent_id)
        return {}

    async def send_dtmf(self, *, agent_id: str, call_id: str, digits: str) -> dict[str, Any]:
        self._connected(agent_id, call_id)
        if not digits or any(d not in "0123456789*#ABCD" for d in digits):
            raise _err(ErrorCode.INVALID_ARGS, "digits must be 0-9, *, #, A-D", "digits")
        return {"digits": digits}

    async def set_call_data(self, *, call_id: str, data: dict[str, Any]) -> dict[str, Any]:
        call = self._call(call_id)
        call.data.update(data)
        self.emit("call.data_updated", {"call_id": call_id, "data": dict(call.data)},
                  self._scope(call), call.agent_id)
        return {}

    async def get_call_data(self, *, call_id: str) -> dict[str, Any]:
        call = self._call(call_id)
        return {"call_id": call_id, "data": dict(call.data), "ivr_tags": dict(call.tags)}

    async def record_call(self, *, call_id: str, action: str) -> dict[str, Any]:
        call = self._call(call_id)
        allowed = {"start": ("stopped",), "stop": ("recording", "paused"),
                   "pause": ("recording",), "resume": ("paused",)}
        if call.recording not in allowed[action]:
            raise _err(ErrorCode.INVALID_STATE, f"recording is {call.recording}", "action")
        call.recording = {"start": "recording", "stop": "stopped", "pause": "paused",
                          "resume": "recording"}[action]
        self.emit("call.recording", {"call_id": call_id, "action": action,
                                     "agent_id": call.agent_id}, self._scope(call),
                  call.agent_id)
        return {"recording": call.recording}

    # -------------------------------------------------------------- queues

    def _queue(self, queue: str, field_: str = "queue") -> list[str]:
        waiting = self.queues.get(queue)
        if waiting is None:
            raise _err(ErrorCode.NOT_FOUND, f"unknown queue {queue}", field_)
        return waiting

    async def list_queues(self) -> list[dict[str, Any]]:
        return [{"queue": q, "waiting": len(w),
                 "agents_logged_in": sum(q in a.queues and a.state is not AgentState.LOGGED_OFF
                                         for a in self.agents.values())}
                for q, w in self.queues.items()]

    async def queue_stats(self, *, queues: list[str] | None) -> list[dict[str, Any]]:
        now = self._clock()
        rows = []
        for name in queues if queues is not None else list(self.queues):
            waiting = self._queue(name, "queues")
            members = [a for a in self.agents.values() if name in a.queues]
            count = {s: sum(a.state is s for a in members) for s in AgentState}
            rows.append({
                "queue": name, "waiting": len(waiting),
                "longest_wait_s": round(max((now - self.calls[c].enter_s for c in waiting),
                                            default=0.0), 3),
                "agents_ready": count[AgentState.READY],
                "agents_busy": count[AgentState.BUSY] + count[AgentState.RESERVED],
                "agents_wrapup": count[AgentState.WRAP_UP],
                "agents_not_ready": count[AgentState.NOT_READY],
            })
        return rows

    async def queue_callers(self, *, queue: str) -> list[dict[str, Any]]:
        now = self._clock()
        return [{"call_id": c, "caller": self.calls[c].caller, "position": i + 1,
                 "priority": self.calls[c].priority,
                 "wait_s": round(now - self.calls[c].enter_s, 3),
                 "ivr_tags": dict(self.calls[c].tags)}
                for i, c in enumerate(self._queue(queue))]

    async def pickup_call(self, *, agent_id: str, queue: str, call_id: str) -> dict[str, Any]:
        agent = self._agent(agent_id)
        if call_id not in self._queue(queue) or self.calls[call_id].agent_id is not None:
            raise _err(ErrorCode.NOT_FOUND, f"call {call_id} is not waiting in {queue}",
                       "call_id")
        if agent.state is not AgentState.READY:
            raise _err(ErrorCode.INVALID_STATE, "pick up needs a ready agent", "agent_id")
        await self._deliver(self.calls[call_id], agent)
        return await self.answer_call(agent_id=agent_id, call_id=call_id)

    async def set_priority(self, *, queue: str, call_id: str, priority: int) -> dict[str, Any]:
        waiting = self._queue(queue)
        if call_id not in waiting:
            raise _err(ErrorCode.NOT_FOUND, f"call {call_id} is not waiting in {queue}",
                       "call_id")
        self.calls[call_id].priority = priority
        waiting.sort(key=lambda c: -self.calls[c].priority)
        return {"position": waiting.index(call_id) + 1}

    async def schedule_callback(self, *, queue: str, number: str, at: float | None,
                                data: dict[str, Any] | None) -> dict[str, Any]:
        self._queue(queue)
        callback = {"callback_id": f"cb-{next(self._ids)}", "queue": queue, "number": number,
                    "at": at, "data": dict(data or {})}
        self.callbacks.append(callback)
        return {"callback_id": callback["callback_id"]}

    # -------------------------------------------------------------- supervisor

    async def monitor_start(self, *, supervisor: str, agent_id: str, mode: str,
                            device: str | None = None,
                            supervisor_agent: str | None = None) -> dict[str, Any]:
        agent = self._agent(agent_id)
        monitor_id = f"mon-{next(self._ids)}"
        self.monitors[monitor_id] = (supervisor, agent_id, mode)
        # agent_id=None on purpose: the monitored agent is not told (silent monitoring)
        self.emit("monitor.started", {"monitor_id": monitor_id, "agent_id": agent_id,
                                      "mode": mode, "supervisor": supervisor,
                                      "call_id": agent.call_id}, agent.queues)
        return {"monitor_id": monitor_id}

    def _monitor(self, monitor_id: str) -> tuple[str, str, str]:
        entry = self.monitors.get(monitor_id)
        if entry is None:
            raise _err(ErrorCode.NOT_FOUND, f"no monitor {monitor_id}", "monitor_id")
        return entry

    async def monitor_switch(self, *, monitor_id: str, mode: str) -> dict[str, Any]:
        supervisor, agent_id, _ = self._monitor(monitor_id)
        self.monitors[monitor_id] = (supervisor, agent_id, mode)
        self.emit("monitor.started", {"monitor_id": monitor_id, "agent_id": agent_id,
                                      "mode": mode, "supervisor": supervisor},
                  await self.agent_queues(agent_id))
        return {"mode": mode}

    async def monitor_stop(self, *, monitor_id: str) -> dict[str, Any]:
        supervisor, agent_id, _ = self._monitor(monitor_id)
        del self.monitors[monitor_id]
        self.emit("monitor.stopped", {"monitor_id": monitor_id, "agent_id": agent_id,
                                      "supervisor": supervisor},
                  await self.agent_queues(agent_id))
        return {}

    async def clear_call(self, *, call_id: str) -> dict[str, Any]:
        self._end(self._call(call_id), "forced")
        return {}

    async def take_over(self, *, call_id: str, agent_id: str) -> dict[str, Any]:
        call = self._call(call_id)
        taker = self._agent(agent_id)
        if call.state not in ("connected", "hold") or call.agent_id is None:
            raise _err(ErrorCode.INVALID_STATE, f"call {call_id} is {call.state}", "call_id")
        self.emit("call.transferred", {"call_id": call_id, "agent_id": call.agent_id,
                                       "destination": taker.device, "kind": "take_over"},
                  self._scope(call), call.agent_id)
        self._finish_agent_call(call)
        call.agent_id, call.state = agent_id, "connected"
        self.calls[call_id] = call
        self.emit("call.established", {"call_id": call_id, "agent_id": agent_id,
                                       "caller": call.caller}, self._scope(call), agent_id)
        return {}
