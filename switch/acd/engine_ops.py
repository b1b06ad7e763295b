"""Desk operations on waiting callers: pick up, change priority, schedule a callback.

The inputs a supervisor's or an agent's desk sends about one waiting caller
(IVR_CTI_ACD.md §B.8 ``queue.pickup``, ``queue.set_priority``, ``callback.schedule``),
kept out of ``engine.py`` so that file stays about routing. :class:`QueueOps` is a mixin
of :class:`~switch.acd.engine.AcdEngine` and works on its state; it is pure like the engine.

Rules:

* Rule 1 (pickup = an offer to one agent) -- ``CallPickedUp`` withdraws whatever the
  caller rings at (those agents return to ready, ``RINGCANCELED`` reason ``picked-up``),
  logs ``PICKUP`` and offers the call to the picking agent alone with the queue's ring
  timeout. It then follows the engine's rules unchanged: the answer bridges (Rule 1 of the
  engine: one winner), a miss leaves the caller at its place (Rule 2) and counts against the
  agent (Rule 5). Skills and levels are not checked (the agent chose the caller); the agent
  must be ready, or already ringing with that call (then nothing changes).
* Rule 2 (priority) -- ``PriorityChanged`` re-inserts the caller under its new key (queue
  Rule 1: ``enter × weight − priority``): its entry time, its timers and its ringing offer
  stay; only its place among the others moves. Logged ``PRIORITY`` (old, new, position).
* Rule 3 (scheduled callback) -- ``CallbackQueued`` with ``at`` in the future is held until
  ``at`` (an engine timer, so a fake clock drives it); at ``at`` the entry joins the queue as
  a callback entry (engine Rule 7): ``ENTERQUEUE`` then ``CALLBACK`` in the log, no music, no
  maximum wait, and ``CallbackScheduled`` for the shell. A scheduled callback is the
  customer's request already accepted, so ``max_len`` and the join-empty rule do not refuse
  it; it waits until an agent takes it (the agent is rung first, then the number).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from switch.acd.agent import AcdError, AgentInput, AgentState, AgentStateError
from switch.acd.events import CallbackQueued, CallbackScheduled, CallPickedUp, PriorityChanged
from switch.acd.log import NONE, QueueEvent, fmt_s
from switch.acd.queue import Caller

if TYPE_CHECKING:
    from switch.acd.engine import AcdEngine

__all__ = ["QueueOps"]

_SCHEDULED = "scheduled"
"""Timer kind of a callback held until its time (Rule 3)."""


class QueueOps:
    """Handlers of the desk inputs (mixed into ``AcdEngine``; ``self`` is the engine)."""

    _scheduled: dict[str, CallbackQueued]

    def _waiting_caller(self: AcdEngine, queue: str, call_id: str) -> Caller:
        caller = self._queue(queue).get(call_id)
        if caller is None:
            raise AcdError(f"call {call_id} is not waiting in queue {queue}")
        return caller

    def _on_pickup(self: AcdEngine, now: float, ev: CallPickedUp, work: Any) -> None:
        """Rule 1."""
        caller = self._waiting_caller(ev.queue, ev.call_id)
        agent = self.agent(ev.agent_id)
        if agent.agent_id in caller.offered_to:
            return
        if agent.state is not AgentState.READY:
            raise AgentStateError(agent.state, AgentInput.OFFER)
        self._withdraw_all(now, caller, "picked-up", work)
        queue = self.queues[caller.queue]
        self._log(work, now, queue.name, caller.call_id, agent.agent_id, QueueEvent.PICKUP,
                  str(queue.position(caller.call_id)), fmt_s(now - caller.enter_time))
        self._offer(now, queue, caller, [agent], work)

    def _on_priority(self: AcdEngine, now: float, ev: PriorityChanged, work: Any) -> None:
        """Rule 2."""
        caller = self._waiting_caller(ev.queue, ev.call_id)
        old = caller.priority
        if old == ev.priority:
            return
        queue = self.queues[caller.queue]
        queue.remove(caller.call_id)
        caller.priority = ev.priority
        position = queue.insert(caller)
        self._log(work, now, queue.name, caller.call_id, NONE, QueueEvent.PRIORITY,
                  str(old), str(ev.priority), str(position))
        work.fresh.append(caller)

    def _on_callback_queued(self: AcdEngine, now: float, ev: CallbackQueued,
                            work: Any) -> None:
        """Rule 3: hold it until ``at``, or enter now."""
        self._queue(ev.queue)
        if ev.call_id in self._callers or ev.call_id in self._connected or \
                ev.call_id in self._scheduled:
            raise AcdError(f"call {ev.call_id} is already queued, connected or scheduled")
        if not ev.number:
            raise AcdError("a callback needs a number")
        if ev.at is not None and ev.at > now:
            self._scheduled[ev.call_id] = ev
            self._push_timer(ev.at, _SCHEDULED, (ev.call_id, ev.at))
            return
        self._enter_callback(now, ev, work)

    def _scheduled_valid(self: AcdEngine, key: tuple[str, float]) -> bool:
        held = self._scheduled.get(key[0])
        return held is not None and held.at == key[1]

    def _fire_scheduled(self: AcdEngine, now: float, key: tuple[str, float],
                        work: Any) -> None:
        self._enter_callback(now, self._scheduled.pop(key[0]), work)

    def scheduled_callbacks(self: AcdEngine) -> list[CallbackQueued]:
        """Callbacks held until their time (Rule 3), earliest first."""
        return sorted(self._scheduled.values(), key=lambda c: (c.at or 0.0, c.call_id))

    def _enter_callback(self: AcdEngine, now: float, ev: CallbackQueued, work: Any) -> None:
        queue = self.queues[ev.queue]
        cfg = queue.config
        self._seq += 1
        caller = Caller(ev.call_id, queue.name, ev.priority, now, self._seq,
                        skill=cfg.required_skill, initial_level=cfg.initial_level,
                        callback_number=ev.number)
        caller.level = queue.allowed_level(caller, now)
        caller.orig_position = queue.insert(caller)
        self._callers[caller.call_id] = caller
        work.fresh.append(caller)
        self._log(work, now, queue.name, caller.call_id, NONE, QueueEvent.ENTERQUEUE,
                  str(ev.priority), str(caller.orig_position))
        self._log(work, now, queue.name, caller.call_id, NONE, QueueEvent.CALLBACK,
                  str(caller.orig_position), fmt_s(0.0), ev.number)
        work.actions.append(CallbackScheduled(caller.call_id, queue.name, ev.number,
                                              caller.orig_position))
