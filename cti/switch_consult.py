"""Consultation on live calls: consult, complete the transfer, conference, reconnect.

CSTA ConsultationCall / TransferCall / ConferenceCall / ReconnectCall (ECMA-269 §17), done in
the media engine, so any phone works (no REFER, no re-INVITE to the phones):

* Rule 1 -- ``call.consult`` puts the caller on media-level hold (music) and places a new
  leg to the destination next to the agent's media channel; when it answers, the agent's
  channel is bridged to it. The consultation has its own call id (``consult_call_id``),
  with ``call.originated`` / ``call.established`` / ``call.cleared`` of its own.
* Rule 2 -- ``call.transfer_complete`` releases the agent's leg
  (``CallManager.release_callee``: ``call.transferred``, the agent's wrap-up) and makes the
  consultation leg the call's B leg (``CallManager.bridge_agent``): ``call.established``
  shows the new party, and the consultation id is cleared.
* Rule 3 -- ``call.conference`` joins caller, agent and consulted party in a media-engine
  conference (state ``conference``: hold and DTMF are refused then); the consulted leg is
  hung up when the call ends.
* Rule 4 -- ``call.reconnect`` (or the consulted party hanging up, or ``call.hangup`` on the
  consultation id) ends the consultation; reconnect then re-bridges agent and caller.
* Rule 5 -- ``call.take_over`` (接管) calls the supervisor's device; when it answers, the
  agent's leg is released and the supervisor's becomes the B leg, as in Rule 2
  (``call.transferred`` kind ``take_over``, then ``call.established`` at the supervisor).

The mixin works on :class:`cti.switch_backend.SwitchBackend`'s state and placed legs.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from cti.live_calls import LiveCall
from cti.messages import CtiRequestError, ErrorCode
from switch.channel import Channel
from switch.events import CallHeld, CallOffered, CallResumed

logger = logging.getLogger(__name__)

__all__ = ["ConsultCommands", "Consultation"]


def _err(code: ErrorCode, message: str, field_: str | None = None) -> CtiRequestError:
    return CtiRequestError(code, message, field_)


@dataclass(slots=True, eq=False)
class Consultation:
    consult_id: str
    call_id: str
    agent_id: str
    destination: str
    channel: Channel
    answered: bool = False
    conferenced: bool = False


class ConsultCommands:
    """``call.consult``, ``call.transfer_complete``, ``call.conference``,
    ``call.reconnect`` (module rules). Expects the attributes of ``SwitchBackend``."""

    consults: dict[str, Consultation]
    calls: Any
    driver: Any
    media: Any
    bus: Any
    state: Any
    wall: Any
    _legs: dict[str, Any]

    # provided by SwitchBackend
    def _live(self, call_id: str, agent_id: str | None = None) -> LiveCall: ...
    def _legs_of(self, live: LiveCall, *states: str) -> tuple[Any, Channel, Channel]: ...
    def _place(self, device: str, kind: str, key: str, *, caller: str,
               near: int | None) -> Channel: ...
    def _music(self) -> list[Any]: ...
    desk: Any
    def _spawn(self, coro: Any, name: str) -> None: ...
    async def _placed_ended(self, placed: Any, cause: str) -> None: ...
    def _queue_transfer(self, call_id: str, target: str) -> None: ...  # QueueCommands

    def consult_of(self, call_id: str) -> Consultation | None:
        return next((c for c in self.consults.values() if c.call_id == call_id), None)

    def _consultation(self, agent_id: str, call_id: str, consult_call_id: str,
                      answered: bool = True) -> Consultation:
        consult = self.consults.get(consult_call_id)
        if consult is None or consult.call_id != call_id or consult.agent_id != agent_id:
            raise _err(ErrorCode.NOT_FOUND, f"no consultation {consult_call_id} of call "
                       f"{call_id}", "consult_call_id")
        if answered and not consult.answered:
            raise _err(ErrorCode.INVALID_STATE, f"{consult.destination} has not answered yet",
                       "consult_call_id")
        return consult

    async def consultation_call(self, *, agent_id: str, call_id: str,
                                destination: str) -> dict[str, Any]:
        """Rule 1."""
        live = self._live(call_id, agent_id)
        call, agent_leg, other = self._legs_of(live)
        if agent_leg is call.a:
            raise _err(ErrorCode.NOT_SUPPORTED, "consultation from a call the agent placed "
                       "is not supported", "call_id")
        if self.consult_of(call_id) is not None:
            raise _err(ErrorCode.INVALID_STATE, f"call {call_id} has a consultation already",
                       "call_id")
        if not self.driver.lookup(destination):
            raise _err(ErrorCode.NOT_FOUND, f"{destination} is not reachable", "destination")
        await self.media.unbridge(agent_leg.media_id)
        await self.media.play(other.media_id, self._music(), loop=True)
        self.bus.publish(CallHeld(at=self.wall(), call_id=call.id, channel=other.name))
        consult_id = uuid.uuid4().hex[:20]
        device = live.device or ""
        channel = self._place(destination, "consult", consult_id, caller=device,
                              near=agent_leg.media_id)
        self.consults[consult_id] = Consultation(consult_id, call_id, agent_id, destination,
                                                 channel)
        consult_live = LiveCall(consult_id, device, destination, channel.name,
                                placed_by=agent_id, agent_id=agent_id, device=device,
                                agent_leg=channel.name, queue=live.queue)
        self.state.calls[consult_id] = consult_live
        self.state.emit_call(consult_live, "call.originated", {
            "device": device, "destination": destination, "consult_of": call_id})
        return {"consult_call_id": consult_id}

    async def _consult_answered(self, placed: Any) -> None:
        consult = self.consults.get(placed.key)
        live = self.state.calls.get(consult.call_id) if consult is not None else None
        consult_live = self.state.calls.get(placed.key)
        try:
            if consult is None or live is None or consult_live is None:
                raise _err(ErrorCode.INVALID_STATE, "the consulted call is gone")
            _, agent_leg, _ = self._legs_of(live, "hold")
            await self.media.bridge(agent_leg.media_id, placed.channel.media_id)
        except CtiRequestError as exc:
            logger.info("consultation %s: %s", placed.key, exc.message)
            self.driver.hangup(placed.channel)
            await self._placed_ended(placed, "call_ended")
            return
        consult.answered = True
        consult_live.state = "connected"
        self.state.emit_call(consult_live, "call.established", {
            "device": consult_live.device, "destination": consult.destination,
            "consult_of": consult.call_id})

    def _consult_gone(self, consult_id: str) -> None:
        """A consultation leg ended (called from ``_placed_ended``)."""
        self.consults.pop(consult_id, None)

    async def transfer_call(self, *, agent_id: str, call_id: str,
                            consult_call_id: str) -> dict[str, Any]:
        """Rule 2."""
        consult = self._consultation(agent_id, call_id, consult_call_id)
        live = self._live(call_id, agent_id)
        call, _agent_leg, other = self._legs_of(live, "hold")
        del self.consults[consult_call_id]
        self._legs.pop(consult.channel.name, None)
        consult_live = self.state.calls.pop(consult_call_id, None)
        await self.media.stop(other.media_id)
        self._queue_transfer(call.id, consult.destination)
        await self.calls.release_callee(call, consult.destination, "attended")
        leg = consult.channel
        self.bus.publish(CallOffered(at=self.wall(), call_id=call.id, channel=leg.name,
                                     caller=call.caller, callee=consult.destination,
                                     source="internal"))
        self.calls.bridge_agent(call, leg)
        if consult_live is not None:
            self.state.emit_call(consult_live, "call.cleared", {"cause": "transferred",
                                                                "side": "caller"})
        return {}

    async def conference_call(self, *, agent_id: str, call_id: str,
                              consult_call_id: str) -> dict[str, Any]:
        """Rule 3."""
        consult = self._consultation(agent_id, call_id, consult_call_id)
        live = self._live(call_id, agent_id)
        call, agent_leg, other = self._legs_of(live, "hold")
        await self.media.stop(other.media_id)
        name = f"cti-{call.id}"
        for channel in (other, agent_leg, consult.channel):
            await self.media.conference(name, channel.media_id)
        consult.conferenced = True
        self.state.calls.pop(consult_call_id, None)
        live.state = "conference"
        parties = [call.caller, live.device, consult.destination]
        self.state.emit_call(live, "call.conferenced", {"parties": parties,
                                                        "consult_call_id": consult_call_id})
        return {"parties": parties}

    async def reconnect_call(self, *, agent_id: str, call_id: str,
                             consult_call_id: str) -> dict[str, Any]:
        """Rule 4: end the consultation, back to the caller."""
        consult = self._consultation(agent_id, call_id, consult_call_id, answered=False)
        live = self._live(call_id, agent_id)
        call, agent_leg, other = self._legs_of(live, "hold")
        await self.end_consultation(consult, "reconnect")
        await self.media.stop(other.media_id)
        await self.media.bridge(agent_leg.media_id, other.media_id)
        self.bus.publish(CallResumed(at=self.wall(), call_id=call.id, channel=other.name))
        return {}

    async def end_consultation(self, consult: Consultation, cause: str) -> None:
        """Hang up the consulted leg (its ``call.cleared`` follows)."""
        placed = self._legs.get(consult.channel.name)
        self.consults.pop(consult.consult_id, None)
        self.driver.hangup(consult.channel)
        if placed is not None:
            await self._placed_ended(placed, cause)
        else:
            await self.driver.release(consult.channel)

    async def take_over(self, *, call_id: str, agent_id: str) -> dict[str, Any]:
        """Rule 5: ``agent_id`` is the supervisor's own agent (its device is called)."""
        live = self._live(call_id)
        call, agent_leg, _ = self._legs_of(live, "connected", "hold")
        if agent_leg is call.a:
            raise _err(ErrorCode.NOT_SUPPORTED, "take-over of a call the agent placed is not "
                       "supported", "call_id")
        if self.consult_of(call_id) is not None:
            raise _err(ErrorCode.INVALID_STATE, f"call {call_id} has a consultation",
                       "call_id")
        device = self.desk.device(agent_id)
        if device == live.device:
            raise _err(ErrorCode.INVALID_ARGS, "that agent has the call already", "agent_id")
        self._place(device, "takeover", call_id, caller=call.caller, near=agent_leg.media_id)
        return {"device": device, "state": "ringing"}

    async def _take_over_answered(self, placed: Any) -> None:
        live = self.state.calls.get(placed.key)
        try:
            if live is None:
                raise _err(ErrorCode.INVALID_STATE, "the call is gone")
            call, _agent_leg, other = self._legs_of(live, "connected", "hold")
        except CtiRequestError as exc:
            logger.info("take-over of %s: %s", placed.key, exc.message)
            self.driver.hangup(placed.channel)
            await self._placed_ended(placed, "call_ended")
            return
        self._legs.pop(placed.channel.name, None)
        if live.state == "hold":
            await self.media.stop(other.media_id)
        leg = placed.channel
        await self.calls.release_callee(call, leg.peer, "take_over")
        self.bus.publish(CallOffered(at=self.wall(), call_id=call.id, channel=leg.name,
                                     caller=call.caller, callee=leg.peer, source="internal"))
        self.calls.bridge_agent(call, leg)
