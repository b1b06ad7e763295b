"""The CTI backend of the live switch: :class:`cti.backend.CtiBackend` over the call manager.

The CTI server (:mod:`cti.server`) calls one method per command; this class carries it out
on live calls through :class:`switch.b2bua.CallManager`, the channel driver it uses and the
:class:`switch.media.service.MediaService`, and reports every change through
:class:`cti.live_calls.LiveState` (a tap on the event bus).

Rules:

* Rule 1 -- never a fake success: what the live switch cannot do answers a
  :class:`~cti.messages.CtiRequestError` -- ``not_supported`` (remote answer of a SIP phone;
  pickup, priority and callbacks of the live ACD), ``not_found`` (queue commands
  while the node runs no ACD queues, unknown calls) or ``invalid_state`` (hold a call that
  is not connected). Consultation and take-over are in :mod:`cti.switch_consult`.
* Rule 2 -- legs the CTI places itself (the agent's phone of a click-to-dial call, a
  supervisor's phone) are driven here: :meth:`SwitchBackend.handle_leg` is the call
  manager's ``leg_hook``. A click-to-dial leg, once answered, becomes the caller leg of an
  ordinary call routed to the destination (CSTA MakeCall: ring the agent, then the number).
* Rule 3 -- hold is media-level (the bridge is opened and the other party hears music on
  hold; the phones are not re-INVITEd), so it works with any phone; retrieve re-bridges.
* Rule 4 -- supervision (ECMA-269 single-step conference "silent"/intrude): the
  supervisor's device is called next to the agent's media channel; when it answers, the
  media engine's supervisor trio (``MediaService.supervise``: listen, whisper, barge) is set
  over the caller and agent legs. ``monitor.switch`` changes the matrix; the end of the
  call, the supervisor hanging up or ``monitor.stop`` end it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cti.backend import BackendEvent, CallScope, EventSink, ResidentDirectory
from cti.live_calls import LiveCall, LiveState
from cti.messages import CtiRequestError, ErrorCode
from cti.switch_agents import AgentDesk, QueueCommands
from cti.switch_consult import Consultation, ConsultCommands
from dsp.tones import beep
from switch.b2bua import Call, CallManager
from switch.channel import Channel
from switch.drivers.base import LegAnswered, LegEvent, LegHungUp, LegOffered, LegRejected
from switch.events import CallHeld, CallResumed, RecordingStarted, RecordingStopped
from switch.media.errors import MediaError

logger = logging.getLogger(__name__)

__all__ = ["SwitchBackend"]

_DIGITS = frozenset("0123456789*#ABCD")


def _err(code: ErrorCode, message: str, field_: str | None = None) -> CtiRequestError:
    return CtiRequestError(code, message, field_)


def music_on_hold() -> np.ndarray:
    """A soft four-note phrase and a pause (about 2.2 s, looped) at -22 dBm0."""
    notes = [beep(350.0, f, -22.0) for f in (523.25, 659.25, 783.99, 659.25)]
    return np.concatenate([*notes, np.zeros(8 * 800, dtype=np.int16)])


@dataclass(slots=True, eq=False)
class _Placed:
    """A leg the CTI placed (Rule 2): ``kind`` "dial" (click-to-dial) or "monitor"."""

    channel: Channel
    kind: str
    key: str
    """The call id (dial) or the monitor id (monitor)."""
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True, eq=False)
class _Monitor:
    monitor_id: str
    supervisor: str
    agent_id: str
    call_id: str
    mode: str
    device: str
    channel: Channel
    active: bool = False


class SwitchBackend(QueueCommands, ConsultCommands):
    """:class:`~cti.backend.CtiBackend` of a running node (see the module docstring).

    Args:
        calls: the node's call manager (its driver, media and bus are used too).
        residents: the screen-pop directory (None: pops without a resident record).
        recordings_dir: where ``call.record`` writes WAV files.
        ring_timeout_s: how long an agent's or supervisor's phone rings for a CTI-placed leg.
        transfer_timeout_s: ring time at a blind-transfer destination.
        screen_pop_timeout_s: how long ``call.delivered`` waits for the resident record.
        wall: wall clock for bus events.
    """

    def __init__(self, calls: CallManager, residents: ResidentDirectory | None, *,
                 recordings_dir: Path, ring_timeout_s: float = 30.0,
                 transfer_timeout_s: float = 30.0, screen_pop_timeout_s: float = 3.0,
                 wall: Callable[[], float] = time.time) -> None:
        self.calls = calls
        self.driver = calls.driver
        self.media = calls.media
        self.bus = calls.bus
        self.recordings_dir = Path(recordings_dir)
        self.ring_timeout_s = ring_timeout_s
        self.transfer_timeout_s = transfer_timeout_s
        self.wall = wall
        self.state = LiveState(residents, tags_of=self._tags_of,
                               lookup_timeout_s=screen_pop_timeout_s)
        self.state.on_cleared.append(self._call_cleared)
        self.desk = AgentDesk(self.state, calls)
        self.monitors: dict[str, _Monitor] = {}
        self.consults: dict[str, Consultation] = {}
        self._legs: dict[str, _Placed] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._untap: Callable[[], None] | None = None
        self._moh: np.ndarray | None = None

    # -------------------------------------------------------------- plumbing

    def attach(self) -> None:
        """Tap the bus and take the CTI-placed legs' events (call once, at start-up)."""
        self._untap = self.bus.tap(self.state.handle)
        self.calls.leg_hook = self.handle_leg
        self.desk.attach()

    async def close(self) -> None:
        """Hang up the legs the CTI placed and detach from the switch."""
        for monitor in list(self.monitors.values()):
            await self._end_monitor(monitor, "shutdown", hang_up=True)
        for placed in list(self._legs.values()):
            self.driver.hangup(placed.channel)
            await self._placed_ended(placed, "shutdown")
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self.desk.detach()
        if self._untap is not None:
            self._untap()
            self._untap = None
        if self.calls.leg_hook == self.handle_leg:
            self.calls.leg_hook = None

    def set_event_sink(self, sink: EventSink) -> None:
        self.state.set_sink(sink)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("CTI task %s failed", task.get_name(), exc_info=task.exception())

    def _tags_of(self, call_id: str) -> dict[str, str]:
        call = self.calls.calls.get(call_id)
        return dict(call.tags) if call is not None else {}

    # -------------------------------------------------------------- lookups

    def _live(self, call_id: str, agent_id: str | None = None) -> LiveCall:
        live = self.state.calls.get(call_id)
        if live is None:
            raise _err(ErrorCode.NOT_FOUND, f"no call {call_id}", "call_id")
        if agent_id is not None and live.agent_id != agent_id:
            raise _err(ErrorCode.NOT_FOUND, f"call {call_id} is not at agent {agent_id}",
                       "call_id")
        return live

    def _switch_call(self, live: LiveCall) -> Call:
        call = self.calls.calls.get(live.call_id)
        if call is None or call.ending:
            raise _err(ErrorCode.INVALID_STATE, f"call {live.call_id} is not connected yet",
                       "call_id")
        return call

    def _legs_of(self, live: LiveCall, *states: str) -> tuple[Call, Channel, Channel]:
        """(switch call, the agent's leg, the other party's leg) of a connected call."""
        if live.state not in (states or ("connected",)):
            raise _err(ErrorCode.INVALID_STATE, f"call {live.call_id} is {live.state}",
                       "call_id")
        call = self._switch_call(live)
        if call.b is None or call.a.media_id is None or call.b.media_id is None:
            raise _err(ErrorCode.INVALID_STATE, f"call {live.call_id} is not connected",
                       "call_id")
        if live.agent_leg == call.a.name:
            return call, call.a, call.b
        return call, call.b, call.a

    # -------------------------------------------------------------- scope queries

    async def agent_queues(self, agent_id: str) -> frozenset[str]:
        return self.desk.queues_of(agent_id)

    async def call_scope(self, call_id: str) -> CallScope:
        live = self._live(call_id)
        return CallScope(live.queue, live.agent_id)

    async def snapshot(self) -> dict[str, Any]:
        return {
            "agents": self.desk.snapshot(),
            "queues": await self.queue_stats(queues=None),
            "calls": [{"call_id": c.call_id, "state": c.state, "queue": c.queue,
                       "agent_id": c.agent_id, "caller": c.caller, "called": c.dialed,
                       "device": c.device} for c in self.state.calls.values()],
        }

    # -------------------------------------------------------------- agents

    async def agent_login(self, *, agent_id: str, device: str,
                          queues: list[str] | None) -> dict[str, Any]:
        """Log ``agent_id`` in on ``device`` (an extension); it starts not ready."""
        return self.desk.login(agent_id, device, queues)

    async def agent_logout(self, *, agent_id: str, reason: str,
                           forced: bool = False) -> dict[str, Any]:
        return self.desk.logout(agent_id, forced)

    async def agent_set_state(self, *, agent_id: str, state: str, reason: str,
                              forced: bool = False) -> dict[str, Any]:
        return self.desk.set_state(agent_id, state, reason)

    async def agent_end_wrapup(self, *, agent_id: str) -> dict[str, Any]:
        return self.desk.end_wrapup(agent_id)

    # -------------------------------------------------------------- CTI-placed legs (Rule 2)

    def _place(self, device: str, kind: str, key: str, *, caller: str,
               near: int | None) -> Channel:
        contacts = self.driver.lookup(device)
        if not contacts:
            raise _err(ErrorCode.NOT_FOUND, f"device {device} is not registered", "device")
        channel = self.driver.new_outbound(device)
        placed = _Placed(channel, kind, key)
        self._legs[channel.name] = placed
        placed.timer = asyncio.get_running_loop().call_later(
            self.ring_timeout_s, self._ring_timeout, placed)
        self._spawn(self.driver.originate(channel, contacts[0], caller=caller,
                                          codec="PCMU", near=near), f"cti-{channel.name}")
        return channel

    def _ring_timeout(self, placed: _Placed) -> None:
        if self._legs.get(placed.channel.name) is placed and not placed.channel.answered:
            self.driver.cancel(placed.channel)
            self._spawn(self._placed_ended(placed, "no_answer"), "cti-ring-timeout")

    def handle_leg(self, event: LegEvent) -> bool:
        """The call manager's ``leg_hook``: True for the legs placed here."""
        placed = self._legs.get(event.channel.name)
        if placed is None:
            return False
        if isinstance(event, LegAnswered):
            if placed.timer is not None:
                placed.timer.cancel()
            if placed.kind == "dial":
                self._dial_answered(placed)
            elif placed.kind == "consult":
                self._spawn(self._consult_answered(placed), f"cti-consult-{placed.key}")
            elif placed.kind == "takeover":
                self._spawn(self._take_over_answered(placed), f"cti-takeover-{placed.key}")
            else:
                self._spawn(self._monitor_answered(placed), f"cti-monitor-{placed.key}")
        elif isinstance(event, LegRejected):
            cause = {486: "user_busy", 600: "user_busy", 603: "call_rejected"}.get(
                event.status, "no_answer")
            self._spawn(self._placed_ended(placed, cause), f"cti-end-{placed.key}")
        elif isinstance(event, LegHungUp):
            self._spawn(self._placed_ended(placed, "normal_clearing"), f"cti-end-{placed.key}")
        return True

    async def _placed_ended(self, placed: _Placed, cause: str) -> None:
        if self._legs.pop(placed.channel.name, None) is None:
            return
        if placed.timer is not None:
            placed.timer.cancel()
        if placed.kind in ("monitor", "takeover"):
            monitor = self.monitors.get(placed.key)
            if monitor is not None:
                await self._end_monitor(monitor, cause, hang_up=False)
            await self.driver.release(placed.channel)
            return
        if placed.kind == "consult":
            self._consult_gone(placed.key)
        await self.driver.release(placed.channel)
        live = self.state.calls.pop(placed.key, None)
        if live is not None:
            self.state.emit_call(live, "call.cleared", {"cause": cause, "side": "callee"})

    # -------------------------------------------------------------- calls

    async def make_call(self, *, agent_id: str, destination: str,
                        data: dict[str, Any] | None) -> dict[str, Any]:
        """CSTA MakeCall: ring the agent's device; when it answers, call ``destination``
        from it and bridge (the switch's ringback meanwhile)."""
        device = self.desk.device(agent_id)
        if self.desk.busy(agent_id) or any(
                c.agent_id == agent_id for c in self.state.calls.values()):
            raise _err(ErrorCode.INVALID_STATE, f"agent {agent_id} is on a call", "agent_id")
        if not destination:
            raise _err(ErrorCode.INVALID_ARGS, "destination is empty", "destination")
        call_id = uuid.uuid4().hex[:20]
        channel = self._place(device, "dial", call_id, caller=destination, near=None)
        channel.call_id = call_id
        live = LiveCall(call_id, device, destination, channel.name, placed_by=agent_id,
                        agent_id=agent_id, device=device, agent_leg=channel.name,
                        data=dict(data or {}))
        self.state.calls[call_id] = live
        self.state.start_lookup(live)
        self.state.emit_call(live, "call.originated", {"device": device,
                                                       "destination": destination})
        return {"call_id": call_id}

    def _dial_answered(self, placed: _Placed) -> None:
        del self._legs[placed.channel.name]
        live = self.state.calls.get(placed.key)
        if live is None:
            self.driver.hangup(placed.channel)
            self._spawn(self.driver.release(placed.channel), "cti-release")
            return
        # The agent's phone answered: it is now the caller leg of an ordinary call.
        self.calls.handle(LegOffered(placed.channel, caller=live.caller, dialed=live.dialed,
                                     source="user"))

    async def answer_call(self, *, agent_id: str, call_id: str) -> dict[str, Any]:
        live = self._live(call_id, agent_id)
        if live.state != "alerting":
            raise _err(ErrorCode.INVALID_STATE, f"call {call_id} is {live.state}", "call_id")
        raise _err(ErrorCode.NOT_SUPPORTED, f"device {live.device} is a SIP phone without "
                   "remote answer (no auto-answer); answer on the phone", "call_id")

    async def clear_connection(self, *, agent_id: str, call_id: str) -> dict[str, Any]:
        live = self._live(call_id, agent_id)
        consult = self.consults.get(call_id)
        if consult is not None:  # the agent hangs up on the consulted party
            await self.end_consultation(consult, "normal_clearing")
            return {}
        placed = self._legs.get(live.a_leg)
        if placed is not None:  # click-to-dial, the agent's phone still ringing
            self.driver.cancel(placed.channel)
            await self._placed_ended(placed, "normal_clearing")
            return {}
        if live.state == "alerting" and live.queue is not None:
            raise _err(ErrorCode.INVALID_STATE, f"call {call_id} is ringing at your phone "
                       "for a queue: decline it there (the caller keeps the place)",
                       "call_id")
        call = self._switch_call(live)
        self.calls.hang_up(call, "normal_clearing",
                           "caller" if live.agent_leg == call.a.name else "callee")
        return {}

    async def clear_call(self, *, call_id: str) -> dict[str, Any]:
        live = self._live(call_id)
        placed = self._legs.get(live.a_leg)
        if placed is not None:
            self.driver.cancel(placed.channel)
            await self._placed_ended(placed, "forced")
            return {}
        self.calls.hang_up(self._switch_call(live), "forced", "system")
        return {}

    def _music(self) -> list[Any]:
        moh = Path(self.media.config.prompt_cache_dir) / "moh.wav"
        if moh.exists():
            return [moh]
        if self._moh is None:
            self._moh = music_on_hold()
        return [self._moh]

    async def hold_call(self, *, agent_id: str, call_id: str) -> dict[str, Any]:
        """Rule 3: open the bridge; the other party hears music on hold."""
        live = self._live(call_id, agent_id)
        call, agent_leg, other = self._legs_of(live)
        assert agent_leg.media_id is not None and other.media_id is not None
        await self.media.unbridge(agent_leg.media_id)
        await self.media.play(other.media_id, self._music(), loop=True)
        self.bus.publish(CallHeld(at=self.wall(), call_id=call.id, channel=other.name))
        return {}

    async def retrieve_call(self, *, agent_id: str, call_id: str) -> dict[str, Any]:
        live = self._live(call_id, agent_id)
        if self.consult_of(call_id) is not None:
            raise _err(ErrorCode.INVALID_STATE, f"call {call_id} has a consultation: "
                       "reconnect, transfer or conference", "call_id")
        call, agent_leg, other = self._legs_of(live, "hold")
        assert agent_leg.media_id is not None and other.media_id is not None
        await self.media.stop(other.media_id)
        await self.media.bridge(agent_leg.media_id, other.media_id)
        self.bus.publish(CallResumed(at=self.wall(), call_id=call.id, channel=other.name))
        return {}

    async def single_step_transfer(self, *, agent_id: str, call_id: str,
                                   destination: str) -> dict[str, Any]:
        """CSTA SingleStepTransferCall: the agent's leg is released and the caller rings
        ``destination`` (``CallManager.blind_transfer``)."""
        live = self._live(call_id, agent_id)
        call, agent_leg, other = self._legs_of(live, "connected", "hold")
        if agent_leg is call.a:
            raise _err(ErrorCode.NOT_SUPPORTED, "transfer of a call the agent placed is not "
                       "supported; hang up and dial instead", "call_id")
        if not self.driver.lookup(destination):
            raise _err(ErrorCode.NOT_FOUND, f"{destination} is not reachable", "destination")
        if live.state == "hold" and other.media_id is not None:
            await self.media.stop(other.media_id)
        self._queue_transfer(call.id, destination)
        self._spawn(self.calls.blind_transfer(call, destination, self.transfer_timeout_s),
                    f"cti-transfer-{call.id}")
        return {}

    async def send_dtmf(self, *, agent_id: str, call_id: str, digits: str) -> dict[str, Any]:
        """Digits to the other party (RFC 4733 events by default, the media config)."""
        if not digits or any(d not in _DIGITS for d in digits):
            raise _err(ErrorCode.INVALID_ARGS, "digits must be 0-9, *, #, A-D", "digits")
        live = self._live(call_id, agent_id)
        _, _, other = self._legs_of(live)
        assert other.media_id is not None
        await self.media.send_dtmf(other.media_id, digits)
        return {"digits": digits}

    async def set_call_data(self, *, call_id: str, data: dict[str, Any]) -> dict[str, Any]:
        live = self._live(call_id)
        live.data.update(data)
        self.state.emit_call(live, "call.data_updated", {"data": dict(live.data)})
        return {}

    async def get_call_data(self, *, call_id: str) -> dict[str, Any]:
        live = self._live(call_id)
        return {"call_id": call_id, "data": dict(live.data),
                "ivr_tags": self._tags_of(call_id)}

    async def record_call(self, *, call_id: str, action: str) -> dict[str, Any]:
        """Record both parties (the caller leg's channel: what it says and hears)."""
        live = self._live(call_id)
        allowed = {"start": ("stopped",), "stop": ("recording", "paused"),
                   "pause": ("recording",), "resume": ("paused",)}
        if live.recording not in allowed[action]:
            raise _err(ErrorCode.INVALID_STATE, f"recording is {live.recording}", "action")
        call = self._switch_call(live)
        cid = call.a.media_id
        if cid is None:
            raise _err(ErrorCode.INVALID_STATE, f"call {call_id} has no media", "call_id")
        try:
            if action == "start":
                self.recordings_dir.mkdir(parents=True, exist_ok=True)
                path = self.recordings_dir / f"cti-{call_id}-{next(self._ids)}.wav"
                live.recording_path = await self.media.record_start(cid, path)
                self.bus.publish(RecordingStarted(at=self.wall(), call_id=call.id,
                                                  channel=call.a.name,
                                                  ref=live.recording_path))
            elif action == "stop":
                ref = await self.media.record_stop(cid) or live.recording_path or ""
                self.bus.publish(RecordingStopped(at=self.wall(), call_id=call.id,
                                                  channel=call.a.name, ref=ref))
            else:
                if action == "pause":
                    await self.media.record_pause(cid)
                else:
                    await self.media.record_resume(cid)
                live.recording = "paused" if action == "pause" else "recording"
                self.state.emit_call(live, "call.recording", {"action": action,
                                                              "ref": live.recording_path})
        except (MediaError, OSError) as exc:
            raise _err(ErrorCode.INVALID_STATE, f"recording failed: {exc}", "action") from None
        return {"recording": live.recording, "ref": live.recording_path}

    # -------------------------------------------------------------- supervisor (Rule 4)

    async def monitor_start(self, *, supervisor: str, agent_id: str, mode: str,
                            device: str | None = None,
                            supervisor_agent: str | None = None) -> dict[str, Any]:
        agent_device = self.desk.device(agent_id)
        live = next((c for c in self.state.calls.values() if c.agent_id == agent_id
                     and c.state in ("connected", "hold")), None)
        if live is None:
            raise _err(ErrorCode.INVALID_STATE, f"agent {agent_id} is not on a connected call",
                       "agent_id")
        _, agent_leg, _ = self._legs_of(live, "connected", "hold")
        if device is None:
            try:
                device = self.desk.device(supervisor_agent or supervisor)
            except CtiRequestError:
                raise _err(ErrorCode.INVALID_ARGS, "no device to call: pass device, or log "
                           "in as an agent on your phone first", "device") from None
        if device == agent_device:
            raise _err(ErrorCode.INVALID_ARGS, "the supervisor's device is the agent's",
                       "device")
        monitor_id = f"mon-{uuid.uuid4().hex[:12]}"
        channel = self._place(device, "monitor", monitor_id, caller=agent_device,
                              near=agent_leg.media_id)
        self.monitors[monitor_id] = _Monitor(monitor_id, supervisor, agent_id, live.call_id,
                                             mode, device, channel)
        return {"monitor_id": monitor_id, "device": device, "state": "ringing"}

    async def _monitor_answered(self, placed: _Placed) -> None:
        monitor = self.monitors.get(placed.key)
        live = self.state.calls.get(monitor.call_id) if monitor is not None else None
        if monitor is None or live is None or placed.channel.media_id is None:
            self.driver.hangup(placed.channel)
            await self._placed_ended(placed, "call_ended")
            return
        try:
            _, agent_leg, other = self._legs_of(live, "connected", "hold")
            assert agent_leg.media_id is not None and other.media_id is not None
            await self.media.supervise(placed.channel.media_id, other.media_id,
                                       agent_leg.media_id, monitor.mode)
        except (CtiRequestError, MediaError) as exc:
            logger.warning("monitor %s: cannot join call %s: %s", monitor.monitor_id,
                           monitor.call_id, exc)
            self.driver.hangup(placed.channel)
            await self._placed_ended(placed, "call_ended")
            return
        monitor.active = True
        self.state.emit(BackendEvent("monitor.started", {
            "monitor_id": monitor.monitor_id, "agent_id": monitor.agent_id,
            "mode": monitor.mode, "supervisor": monitor.supervisor,
            "call_id": monitor.call_id, "device": monitor.device},
            await self.agent_queues(monitor.agent_id)))

    def _monitor(self, monitor_id: str) -> _Monitor:
        monitor = self.monitors.get(monitor_id)
        if monitor is None:
            raise _err(ErrorCode.NOT_FOUND, f"no monitor {monitor_id}", "monitor_id")
        return monitor

    async def monitor_switch(self, *, monitor_id: str, mode: str) -> dict[str, Any]:
        monitor = self._monitor(monitor_id)
        live = self.state.calls.get(monitor.call_id)
        if monitor.active and live is not None and monitor.channel.media_id is not None:
            _, agent_leg, other = self._legs_of(live, "connected", "hold")
            assert agent_leg.media_id is not None and other.media_id is not None
            await self.media.supervise(monitor.channel.media_id, other.media_id,
                                       agent_leg.media_id, mode)
        monitor.mode = mode
        if monitor.active:
            self.state.emit(BackendEvent("monitor.started", {
                "monitor_id": monitor_id, "agent_id": monitor.agent_id, "mode": mode,
                "supervisor": monitor.supervisor, "call_id": monitor.call_id,
                "device": monitor.device}, await self.agent_queues(monitor.agent_id)))
        return {"mode": mode, "active": monitor.active}

    async def monitor_stop(self, *, monitor_id: str) -> dict[str, Any]:
        await self._end_monitor(self._monitor(monitor_id), "stopped", hang_up=True)
        return {}

    async def _end_monitor(self, monitor: _Monitor, reason: str, *, hang_up: bool) -> None:
        if self.monitors.pop(monitor.monitor_id, None) is None:
            return
        channel = monitor.channel
        if monitor.active and channel.media_id is not None:
            try:
                await self.media.unsupervise(channel.media_id)
            except MediaError as exc:
                logger.debug("monitor %s: unsupervise: %s", monitor.monitor_id, exc)
        if hang_up:
            self.driver.hangup(channel)
            placed = self._legs.get(channel.name)
            if placed is not None:
                await self._placed_ended(placed, reason)
        self.state.emit(BackendEvent("monitor.stopped", {
            "monitor_id": monitor.monitor_id, "agent_id": monitor.agent_id,
            "supervisor": monitor.supervisor, "call_id": monitor.call_id, "reason": reason},
            await self.agent_queues(monitor.agent_id)))

    def _call_cleared(self, live: LiveCall) -> None:
        consult = self.consult_of(live.call_id)
        if consult is not None:
            self._spawn(self.end_consultation(consult, "call_ended"),
                        f"cti-consult-end-{consult.consult_id}")
        for monitor in list(self.monitors.values()):
            if monitor.call_id == live.call_id:
                self._spawn(self._end_monitor(monitor, "call_ended", hang_up=True),
                            f"cti-monitor-end-{monitor.monitor_id}")
