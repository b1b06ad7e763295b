"""CallServices: what the call manager does for a caller it answered itself, and the call
control it offers to the IVR, the ACD and the CTI.

Part of :class:`switch.b2bua.CallManager` (a mixin, kept apart so that the B2BUA module
holds the leg-event rules and this one the services built on them). Rules:

* Rule 1 -- one way to serve an answered caller: the IVR, voicemail and queues all go
  through :meth:`CallServices._answer_and_run`: 200 to the caller, then one task bound to
  the call; the caller's hang-up cancels the task, and the task's end hangs the call up
  unless a B leg was bridged meanwhile (a transfer or an agent).
* Rule 2 -- transfers from a service (``ivr_transfer``, ``blind_transfer``) fork to the
  target's contacts like a dialed extension (``_fork``) while the caller hears ringback;
  the first answer is bridged by the B2BUA's ``_connect``.
* Rule 3 -- the public verbs (``bridge_agent``, ``hang_up``, ``release_callee``,
  ``blind_transfer``) are what the ACD shell and the CTI backend use; they never touch SIP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from switch.channel import Channel
from switch.events import (
    CallAnswered,
    CallHungUp,
    CallTransferred,
    LegMediaStats,
    RecordingStarted,
)

if TYPE_CHECKING:
    from switch.b2bua import Call
    from switch.drivers.base import ChannelDriver
    from switch.media.service import MediaService

logger = logging.getLogger(__name__)

__all__ = ["CallServices"]


class CallServices:
    """Mixin of :class:`switch.b2bua.CallManager` (see the module docstring)."""

    if TYPE_CHECKING:
        driver: ChannelDriver
        media: MediaService
        stats: dict[str, int]
        ivr: Any
        voicemail: Any
        queues: Any
        _tasks: set[asyncio.Task[Any]]
        _call_of: dict[str, Call]

        def _fail(self, call: Call, status: int, cause: str, side: str) -> None: ...
        def _end(self, call: Call, cause: str, side: str) -> None: ...
        def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None: ...
        def _publish(self, cls: type, call: Call, channel: Channel, **fields: Any) -> None: ...
        def _fork(self, call: Call, number: str, contacts: list[Any]) -> None: ...
        async def _connect(self, call: Call, b: Channel) -> None: ...

    def _start_ivr(self, call: Call, program: str) -> None:
        """Answer the caller and run the IVR ``program`` on its media channel.

        When the program ends the call is hung up, unless it was transferred (then the
        bridged call goes on); the caller's hang-up cancels the program (``_end``)."""
        self._answer_and_run(call, "ivr", lambda cid: self.ivr.run(
            program, cid, _IvrControl(self, call), caller=call.caller, called=call.dialed,
            call_id=call.id))

    def start_voicemail(self, call: Call, box: str) -> None:
        """Answer the caller and record a message for ``box`` (``switch.voicemail``)."""
        a = call.a
        self._answer_and_run(call, "voicemail", lambda cid: self.voicemail.record(
            call.id, cid, box=box, caller=call.caller,
            on_recording=lambda ref: self._publish(RecordingStarted, call, a, ref=ref)))

    def _ivr_done(self, call: Call, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            logger.error("call %s: IVR failed", call.id, exc_info=task.exception())
        if not call.ending and call.b is None:
            self._end(call, "normal_clearing", "system")

    async def ivr_transfer(self, call: Call, number: str, timeout_s: float) -> str:
        """Blind transfer from the IVR: fork to ``number``'s contacts and bridge the first
        answer (``_connect``). Returns "connected", "busy", "noanswer" or "fail"."""
        a = call.a
        contacts = self.driver.lookup(number)
        if call.ending or a.media_id is None or not contacts:
            return "fail"
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        call.transfer = fut
        call.fork_statuses.clear()
        self._fork(call, number, contacts)
        call.ringback = True
        self._spawn(self.media.tone(a.media_id, "ringback"), f"ringback-{call.id}")
        try:
            outcome = await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except TimeoutError:
            outcome = "noanswer"
        finally:
            call.transfer = None
        if outcome != "connected":
            for fork in call.forks:
                if fork is not call.b:
                    self.driver.cancel(fork)
            if call.ringback and a.media_id is not None and not call.ending:
                call.ringback = False
                await self.media.stop(a.media_id)
        return outcome

    def _start_queue(self, call: Call, target: Any) -> None:
        """Answer the caller and queue it in ``target`` (a ``switch.router.Queue`` served by
        ``switch.queues``): the caller's hang-up cancels the wait, and the call ends unless
        an agent was bridged."""
        self._answer_and_run(call, "queue", lambda cid: self.queues.serve(
            self, call, target.name, target.priority))

    def _answer_and_run(self, call: Call, kind: str,
                        service: Callable[[int], Coroutine[Any, Any, Any]]) -> None:
        """Answer the caller (200 with our SDP; its media channel is open) and run
        ``service(media_id)`` as the call's task: the caller's hang-up cancels it (``_end``)
        and its end hangs up the call unless a B leg was bridged (``_ivr_done``)."""
        a = call.a
        if a.media_id is None:
            self._fail(call, 503, "network_failure", "system")
            return
        call.final_status = 200
        call.ringback = False
        self.driver.answer(a)
        self.stats["answered"] += 1
        self._publish(CallAnswered, call, a, codec=a.codec)
        task = asyncio.get_running_loop().create_task(service(a.media_id),
                                                      name=f"{kind}-{call.id}")
        call.ivr_task = task
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._ivr_done(call, t))

    def bridge_agent(self, call: Call, leg: Channel) -> None:
        """Connect the answered caller of ``call`` to ``leg``, an agent's answered leg made
        by the ACD (``switch.queues``); from now on ``leg`` is the call's B leg."""
        leg.call_id = call.id
        call.forks.append(leg)
        self._call_of[leg.name] = call
        if call.ending:
            self.driver.hangup(leg)
            self._spawn(self.driver.release(leg), f"release-{leg.name}")
            return
        call.b = leg
        call.cancel_timers()
        self._spawn(self._connect(call, leg), f"connect-{call.id}")

    def ivr_control(self, call: Call) -> _IvrControl:
        """The call control an IVR program running on ``call`` gets."""
        return _IvrControl(self, call)

    def ivr_hangup(self, call: Call) -> None:
        """The IVR hangs up: end the call (BYE to the caller)."""
        self._end(call, "normal_clearing", "system")

    def hang_up(self, call: Call, cause: str, side: str) -> None:
        """End ``call`` on request (CTI ClearConnection/ClearCall): BYE/CANCEL every leg."""
        self._end(call, cause, side)

    async def release_callee(self, call: Call, target: str, mode: str) -> None:
        """The answered callee leg leaves the call (a CTI transfer to ``target``): it is
        unbridged, hung up and released; the caller leg stays, without a B leg."""
        old, a = call.b, call.a
        if old is None:
            return
        call.b, call.early_from, call.ringing = None, None, False
        call.forks.remove(old)
        self._call_of.pop(old.name, None)
        if self.queues is not None:
            self.queues.call_ended(call, "callee")  # the agent's part of an ACD call ends
        self._publish(CallTransferred, call, a, target=target, mode=mode)
        if a.media_id is not None:
            await self.media.unbridge(a.media_id)
        self.driver.hangup(old)
        stats = await self.driver.release(old)
        if stats is not None and old.codec:
            self._publish(LegMediaStats, call, old, codec=old.codec,
                          packets_received=int(stats.get("packets_received", 0)),
                          packets_lost=max(0, int(stats.get("lost", 0))),
                          jitter_ms=float(stats.get("jitter_ms", 0.0)))
        self._publish(CallHungUp, call, old, cause="transferred", side="callee")

    async def blind_transfer(self, call: Call, number: str, timeout_s: float) -> str:
        """Single-step transfer of an answered call (CSTA SingleStepTransferCall): the
        callee leg is released and the caller is sent on to ``number`` as in an IVR
        transfer; when nobody there answers the call ends. Returns the transfer outcome."""
        if call.b is None or call.ending or call.a.media_id is None:
            return "fail"
        await self.release_callee(call, number, "blind")
        outcome = await self.ivr_transfer(call, number, timeout_s)
        if outcome != "connected" and call.b is None:
            self._end(call, "transfer_failed", "system")
        return outcome


class _IvrControl:
    """The call control an IVR call gets (``ivr_lang.live.CallControl``)."""

    def __init__(self, manager: CallServices, call: Call) -> None:
        self.manager = manager
        self.call = call

    async def transfer(self, target: str, timeout_s: float) -> str:
        return await self.manager.ivr_transfer(self.call, target, timeout_s)

    def tag(self, key: str, value: str) -> None:
        logger.info("call %s: tag %s = %s", self.call.id, key, value)
        self.call.tags[key] = value

    async def queue(self, name: str, *, skill: str | None, priority: int,
                    maxwait_s: float | None, tags: dict[str, Any]) -> str | None:
        """The IVR's ``queue`` statement: the live ACD's outcome, None without that queue."""
        queues = self.manager.queues
        if queues is None or not queues.has(name):
            return None
        return str(await queues.wait_for_ivr(self.call, name, priority=priority, skill=skill,
                                             maxwait_s=maxwait_s, tags=tags))

    def hangup(self) -> None:
        self.manager.ivr_hangup(self.call)
