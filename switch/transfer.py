"""Call transfer: blind (REFER, RFC 3515) and attended (REFER with Replaces, RFC 3891).

RFC 5589 describes what phones expect of a transfer. Here the switch is the peer of every
phone in the call (a B2BUA with anchored media), so it carries the transfer out itself
instead of relaying the REFER: the transferee never sees a REFER, it simply finds itself
talking to someone else. The driver reports a REFER as
:class:`~switch.drivers.base.LegReferred`; this module decides and acts through the
call manager's verbs. Names: the *transferor* T sends the REFER; the *transferee* X is
the other party of T's call; the *target* is who X ends up with.

Rules:

* Rule 1 -- who may transfer: T's leg must be one of the two answered, bridged legs of a
  call that is not already ending or being transferred (else 403). The REFER itself comes
  in T's authenticated dialog (RFC 5589 §5), so no new challenge is needed.
* Rule 2 -- blind transfer, where the decision is made before answering the REFER: the
  target number goes through the dial plan *as if T dialed it* (T's user, source
  "user"): a dial-plan reject, no route, or a target that is not an extension (queue, IVR,
  voicemail, trunk: not transferable yet, so never a way around trunk permissions) gets
  403 and the call goes on untouched. An extension with no registered contact needs no
  routing beyond that: the REFER is accepted (202) and the NOTIFY reports 480.
* Rule 3 -- blind transfer, the call: 202 Accepted and NOTIFY ``100 Trying``; X is
  unbridged from T and hears ringback (``CallManager.ivr_transfer`` forks to the target's
  contacts); on answer X is bridged to the target, T gets NOTIFY ``200 OK`` and then BYE.
  On failure (busy, no answer within ``no_answer_timeout_s``, every contact failed), T
  gets the failure in the NOTIFY (486, 480) and X is *reconnected* to T (re-bridged, with
  music again if T still holds), as RFC 5589 §6.1 lets the transferor retrieve the call.
  If T hung up meanwhile (RFC 5589 allows it after the 202), a failed transfer ends X's
  call cleanly (BYE) instead.
* Rule 4 -- attended transfer: the Replaces must name another answered, bridged leg of
  ours whose user is T's (T's other call, RFC 5589 §7; the driver resolves the dialog,
  ``sip_refer`` Rule 2); anything else is 403. The two parties left (X1 from the REFER's
  call, X2 from the replaced one) are bridged, T's two legs get BYE, and T the NOTIFY 200.
  A REFER sent on either of T's two dialogs works (the Replaces names the other one).
  When the named call still rings (T called the target and pressed transfer before it
  answered, "semi-attended"), X1 takes T's place in that ringing call: it hears the
  ringback (or the target's early media) and is connected on answer; T's two legs end
  at once (BYE, and 487 for its unanswered INVITE); no answer within
  ``no_answer_timeout_s`` or a refusal ends X1's call cleanly, as T is gone.
* Rule 5 -- INVITE with Replaces (RFC 3891 §3): a phone of the *same user* as the leg it
  names takes that leg's place (call pickup from another phone, e.g. from hold): the new
  leg is answered and bridged to the named leg's partner, which never notices, and the
  named leg gets BYE. Another user's INVITE gets 403 (RFC 3891 §8: only a party of the
  dialog may replace it); a leg that is not an answered, bridged party (Rule 1) gets 481.
  The SIP checks (dialog unknown, early-only) are the driver's (``sip_refer`` Rule 4).
* Rule 6 -- CDRs (``switch.cdr``): each old call's CDR ends with cause ``transferred``
  (side: the transferor's) and is tagged with the target through ``CallTransferred``; the
  transferee's conversation with the target is a new call (source ``transfer``, caller the
  transferee's user, callee the target), whose CDR follows the usual rules. A failed
  blind transfer leaves that new CDR with the failure (busy, no_answer, cancelled when X
  hung up while the target rang).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING, Any

from switch.channel import Channel
from switch.drivers.base import LegOffered, LegReferred
from switch.events import (
    CallAnswered,
    CallBridged,
    CallHungUp,
    CallOffered,
    CallRouted,
    CallTransferred,
    LegMediaStats,
)
from switch.media.errors import MediaError
from switch.router import Extension, describe_target

if TYPE_CHECKING:
    from switch.b2bua import Call, CallManager

logger = logging.getLogger(__name__)

__all__ = ["Transfers"]

_OUTCOME_STATUS = {"busy": 486, "noanswer": 480, "fail": 480}


class Transfers:
    """Carries out REFERs for a :class:`~switch.b2bua.CallManager` (module rules)."""

    def __init__(self, manager: CallManager) -> None:
        self.m = manager
        self.stats = {"blind": 0, "attended": 0, "replaced": 0, "refused": 0, "failed": 0}

    # ====================================================================================
    # Entry point
    # ====================================================================================
    def referred(self, ev: LegReferred) -> None:
        """Answer the REFER on ``ev.channel`` now (the driver requires it)."""
        t = ev.channel
        call = self.m._call_of.get(t.name)
        x = self._partner(call, t) if call is not None else None
        if call is None or x is None:
            self._refuse(t, 403, "No Call To Transfer")
        elif ev.attended:
            self._attended(call, t, x, ev.replaces)
        else:
            self._blind(call, t, x, ev.number)

    def _refuse(self, t: Channel, status: int, reason: str) -> None:
        self.stats["refused"] += 1
        logger.info("%s: transfer refused: %d %s", t.name, status, reason)
        self.m.driver.refer_reject(t, status, reason)  # type: ignore[attr-defined]

    @staticmethod
    def _partner(call: Call, t: Channel) -> Channel | None:
        """Rule 1: the other bridged party of ``t``, or None when ``t`` may not transfer."""
        ivr_running = call.ivr_task is not None and not call.ivr_task.done()
        if call.ending or call.b is None or ivr_running or t.ended:
            return None
        x = call.b if t is call.a else call.a if t is call.b else None
        if x is None or x.ended or x.media_id is None:
            return None
        return x

    # ====================================================================================
    # Blind transfer (Rules 2, 3)
    # ====================================================================================
    def _blind(self, call: Call, t: Channel, x: Channel, number: str) -> None:
        m = self.m
        now_local = dt.datetime.fromtimestamp(m.wall(), dt.UTC)
        decision = m.dialplan.route(number, t.peer, "user", now_local, m.lists)
        if not number or not isinstance(decision.target, Extension):
            self._refuse(t, 403, f"Transfer To {describe_target(decision.target)} Refused")
            return
        driver: Any = m.driver
        driver.refer_accept(t)
        self.stats["blind"] += 1
        target = decision.target.number
        new = self._new_call(x, target, rule=decision.rule_name,
                             described=describe_target(decision.target))
        new.final_status = 487  # what X's CDR says if X hangs up while the target rings
        call.ending = True  # the manager leaves the old call to us until this ends
        logger.info("call %s: %s transfers %s to %s (call %s)", call.id, t.name, x.name,
                    target, new.id)
        m._spawn(self._run_blind(call, new, t, x, target), f"transfer-{call.id}")

    async def _run_blind(self, old: Call, new: Call, t: Channel, x: Channel,
                         target: str) -> None:
        m = self.m
        driver: Any = m.driver
        try:
            await self._quiet(x)
            if x.media_id is not None:
                await m.media.unbridge(x.media_id)
        except MediaError as exc:  # X's media closed: X hung up, ivr_transfer fails
            logger.info("call %s: %s left before the transfer: %s", old.id, x.name, exc)
        outcome = await m.ivr_transfer(new, target, m.no_answer_timeout_s)
        if outcome == "connected":
            driver.refer_notify(t, 200)
            self._publish_transferred(old, t, target, "blind")
            await self._retire(old, keep=x, cause="transferred", side=self._side(old, t))
            return
        self.stats["failed"] += 1
        status = 487 if x.ended else _OUTCOME_STATUS.get(outcome, 480)
        logger.info("call %s: transfer to %s failed (%s)", old.id, target, outcome)
        driver.refer_notify(t, status)
        if x.ended:  # X hung up (or shutdown ended it): the new call ended already
            old.ending = False
            m._end(old, "normal_clearing", self._side(old, x))
            return
        new.final_status = status
        await self._retire(new, keep=x, cause=_cause(status), side="callee")
        self._rejoin(old, x)
        await self._reconnect(old, t, x)

    async def _reconnect(self, old: Call, t: Channel, x: Channel) -> None:
        """Rule 3: bridge ``x`` back to ``t`` in ``old`` (music if ``t`` still holds); end
        the call when either has left meanwhile."""
        m = self.m
        if t.ended or x.ended or t.media_id is None or x.media_id is None:
            m._end(old, "normal_clearing", self._side(old, t if t.ended else x))
            return
        try:
            await m.media.bridge(t.media_id, x.media_id)
        except MediaError as exc:
            logger.error("call %s: cannot reconnect %s: %s", old.id, x.name, exc)
            m._end(old, "network_failure", "system")
            return
        if t.held and m.moh is not None:
            await m.moh.start(x.media_id)

    # ====================================================================================
    # Attended transfer (Rule 4)
    # ====================================================================================
    def _attended(self, call1: Call, t1: Channel, x1: Channel, t2: Channel | None) -> None:
        m = self.m
        call2 = m._call_of.get(t2.name) if t2 is not None else None
        if (t2 is not None and call2 is not None and call2 is not call1 and t2 is call2.a
                and self._ringing_out(call2) and t2.peer == t1.peer):
            self._semi_attended(call1, t1, x1, call2, t2)
            return
        x2 = self._partner(call2, t2) if call2 is not None and t2 is not None else None
        if t2 is None or call2 is None or x2 is None or call2 is call1:
            self._refuse(t1, 403, "Replaces Names No Transferable Call")
            return
        if t2.peer != t1.peer:
            self._refuse(t1, 403, "Replaces Names Another User's Call")
            return
        driver: Any = m.driver
        driver.refer_accept(t1)
        self.stats["attended"] += 1
        call1.ending = call2.ending = True
        new = self._new_call(x1, x2.peer, rule="transfer", described=f"extension:{x2.peer}")
        new.forks.append(x2)
        x2.call_id = new.id
        m._call_of[x2.name] = new
        m._publish(CallOffered, new, x2, caller=new.caller, callee=x2.peer,
                   source="internal")
        logger.info("calls %s + %s: %s joins %s and %s (call %s)", call1.id, call2.id,
                    t1.name, x1.name, x2.name, new.id)
        m._spawn(self._run_attended(call1, call2, new, t1, t2, x1, x2),
                 f"transfer-{call1.id}")

    @staticmethod
    def _ringing_out(call: Call) -> bool:
        """The call's target is still ringing (its caller leg is not answered yet)."""
        return (not call.ending and call.b is None and call.ivr_task is None
                and call.transfer is None and any(not f.ended for f in call.forks))

    def _semi_attended(self, call1: Call, t1: Channel, x1: Channel, call2: Call,
                       t2: Channel) -> None:
        """Rule 4, target still ringing (the Replaces names T's early dialog): X1 takes
        T's place in the ringing call, hears its ringback or early media, and is
        connected on answer; no answer or a refusal ends X1's call (T is gone)."""
        m = self.m
        driver: Any = m.driver
        driver.refer_accept(t1)
        self.stats["attended"] += 1
        call1.ending = call2.ending = True
        call2.cancel_timers()
        new = self._new_call(x1, call2.dialed, rule="transfer",
                             described=f"extension:{call2.dialed}")
        forks, call2.forks = [f for f in call2.forks if not f.ended], []
        for fork in forks:
            fork.call_id = new.id
            m._call_of[fork.name] = new
            new.forks.append(fork)
            m._publish(CallOffered, new, fork, caller=new.caller, callee=fork.peer,
                       source="internal")
        new.ringing, new.early_from = call2.ringing, call2.early_from
        loop = asyncio.get_running_loop()
        new.timers.append(loop.call_later(m.no_answer_timeout_s, m._no_answer, new))
        logger.info("calls %s + %s: %s gets %s's ringing call (call %s)", call1.id,
                    call2.id, x1.name, t1.name, new.id)
        m._spawn(self._run_semi_attended(call1, call2, new, t1, t2, x1),
                 f"transfer-{call1.id}")

    async def _run_semi_attended(self, call1: Call, call2: Call, new: Call, t1: Channel,
                                 t2: Channel, x1: Channel) -> None:
        m = self.m
        driver: Any = m.driver
        try:
            await self._quiet(x1)
            if x1.media_id is not None and new.early_from is not None \
                    and new.early_from.media_id is not None:
                await m.media.bridge(x1.media_id, new.early_from.media_id)
            elif x1.media_id is not None and new.b is None:
                new.ringback = True
                await m.media.tone(x1.media_id, "ringback")
        except MediaError as exc:  # X1 left meanwhile: its hang-up ends the new call
            logger.info("call %s: no ringback for %s: %s", new.id, x1.name, exc)
        driver.refer_notify(t1, 200)
        self._publish_transferred(call1, t1, call2.dialed, "attended")
        self._publish_transferred(call2, t2, x1.peer, "attended")
        call2.final_status = 487
        m.driver.reject(t2, 487)
        await self._retire(call1, keep=x1, cause="transferred", side=self._side(call1, t1))
        await self._retire(call2, keep=None, cause="transferred", side="caller")

    async def _run_attended(self, call1: Call, call2: Call, new: Call, t1: Channel,
                            t2: Channel, x1: Channel, x2: Channel) -> None:
        m = self.m
        driver: Any = m.driver
        try:
            if x1.media_id is None or x2.media_id is None:
                raise MediaError("a party left")
            await self._quiet(x1)
            await self._quiet(x2)
            await m.media.bridge(x1.media_id, x2.media_id)
        except MediaError as exc:
            self.stats["failed"] += 1
            logger.error("call %s: attended transfer failed: %s", call1.id, exc)
            driver.refer_notify(t1, 503)
            m._end(new, "network_failure", "system")
            for call in (call1, call2):
                call.ending = False
                m._end(call, "network_failure", "system")
            return
        new.b = x2
        m.stats["answered"] += 1
        for leg in (x2, x1):
            m._publish(CallAnswered, new, leg, codec=leg.codec)
        for leg, other in ((x1, x2), (x2, x1)):
            m._publish(CallBridged, new, leg, other_channel=other.name)
        driver.refer_notify(t1, 200)
        self._publish_transferred(call1, t1, x2.peer, "attended")
        self._publish_transferred(call2, t2, x1.peer, "attended")
        await self._retire(call1, keep=x1, cause="transferred", side=self._side(call1, t1))
        await self._retire(call2, keep=x2, cause="transferred", side=self._side(call2, t2))

    # ====================================================================================
    # INVITE with Replaces (Rule 5)
    # ====================================================================================
    def offered(self, ev: LegOffered) -> None:
        """A new inbound leg: the manager's routing, unless its INVITE had Replaces."""
        take = getattr(self.m.driver, "take_replaced", None)
        replaced = take(ev.channel) if take is not None else None
        if replaced is None:
            self.m._offered(ev)
            return
        m = self.m
        ch = ev.channel
        call = m._call_of.get(replaced.name)
        x = self._partner(call, replaced) if call is not None else None
        if call is None or x is None:
            self._refuse_leg(ch, 481, "")
            return
        if ev.caller != replaced.peer:
            logger.info("%s: %s may not replace %s", ch.name, ev.caller, replaced.name)
            self.stats["refused"] += 1
            self._refuse_leg(ch, 403, "Not Your Call")
            return
        self.stats["replaced"] += 1
        call.ending = True
        new = self._new_call(ch, x.peer, rule="replaces", described=f"extension:{x.peer}")
        new.forks.append(x)
        x.call_id = new.id
        m._call_of[x.name] = new
        m._publish(CallOffered, new, x, caller=ev.caller, callee=x.peer, source="internal")
        logger.info("call %s: %s replaces %s (call %s)", call.id, ch.name, replaced.name,
                    new.id)
        m._spawn(self._run_replace(call, new, replaced, ch, x), f"replace-{call.id}")

    def _refuse_leg(self, ch: Channel, status: int, reason: str) -> None:
        """Reject a new leg that never became a call, and close its media."""
        self.m.driver.reject(ch, status, reason)
        self.m._spawn(self.m.driver.release(ch), f"release-{ch.name}")

    async def _run_replace(self, old: Call, new: Call, replaced: Channel, ch: Channel,
                           x: Channel) -> None:
        m = self.m
        failed: int | None = None
        try:
            if ch.media_id is None or x.media_id is None:
                raise MediaError("a party left")
            await self._quiet(x)
            await m.media.bridge(ch.media_id, x.media_id)
        except MediaError as exc:
            logger.error("call %s: replacing failed: %s", old.id, exc)
            failed = 503
        if failed is None and ch.ended:
            failed = 487  # the new phone gave up meanwhile
        if failed is not None:
            new.final_status = failed
            m.driver.reject(ch, failed)
            await self._retire(new, keep=x, cause=_cause(failed), side="caller")
            self._rejoin(old, x)
            await self._reconnect(old, replaced, x)
            return
        new.b = x
        m.driver.answer(ch)
        m.stats["answered"] += 1
        for leg in (x, ch):
            m._publish(CallAnswered, new, leg, codec=leg.codec)
        for leg, other in ((ch, x), (x, ch)):
            m._publish(CallBridged, new, leg, other_channel=other.name)
        self._publish_transferred(old, replaced, ch.peer, "replaces")
        await self._retire(old, keep=x, cause="transferred", side=self._side(old, replaced))

    # ====================================================================================
    # Moving legs between calls
    # ====================================================================================
    def _new_call(self, x: Channel, dialed: str, *, rule: str, described: str) -> Call:
        """A call whose first leg is ``x`` (already answered): Rule 6's new CDR."""
        from switch.b2bua import Call  # the manager imports this module

        m = self.m
        new = Call(uuid.uuid4().hex[:20], x, x.peer, dialed)
        x.call_id = new.id
        m.calls[new.id] = new
        m._call_of[x.name] = new
        m.stats["calls"] += 1
        m._publish(CallOffered, new, x, caller=x.peer, callee=dialed, source="transfer")
        m._publish(CallRouted, new, x, rule=rule, target=described)
        return new

    def _rejoin(self, old: Call, x: Channel) -> None:
        """A failed blind transfer gives ``x`` back to its old call."""
        x.call_id = old.id
        self.m._call_of[x.name] = old
        old.ending = False

    async def _quiet(self, x: Channel) -> None:
        """Stop music or a tone on ``x`` before it is re-bridged."""
        if x.media_id is None:
            return
        moh = self.m.moh
        if moh is not None and x.media_id in moh.playing:
            await moh.stop(x.media_id)

    @staticmethod
    def _side(call: Call, leg: Channel) -> str:
        return "caller" if leg is call.a else "callee"

    def _publish_transferred(self, call: Call, t: Channel, target: str, mode: str) -> None:
        self.m._publish(CallTransferred, call, t, target=target, mode=mode)

    async def _retire(self, call: Call, *, keep: Channel | None, cause: str,
                      side: str) -> None:
        """End ``call`` except its leg ``keep`` (which lives on in another call): BYE and
        release the others, publish their statistics and every leg's hang-up (so the
        call's CDR closes), and forget the call. ``CallManager._finish`` for a call that
        is split rather than ended."""
        m = self.m
        driver: Any = m.driver
        call.ending = True
        call.cancel_timers()
        gone = [leg for leg in call.legs() if leg is not keep]
        for leg in gone:
            m.driver.hangup(leg)
            driver.refer_forget(leg)
            if m._call_of.get(leg.name) is call:
                del m._call_of[leg.name]
        for leg in gone:
            stats = await m.driver.release(leg)
            if stats is not None and leg.codec:
                self._publish_stats(call, leg, stats)
        answered = call.b is not None
        for leg in call.forks:
            status = None if leg is call.b else (487 if answered else call.final_status)
            m._publish(CallHungUp, call, leg, cause=cause, side=side, sip_status=status)
        m._publish(CallHungUp, call, call.a, cause=cause, side=side,
                   sip_status=None if answered else call.final_status)
        if keep is not None and m._call_of.get(keep.name) is call:
            del m._call_of[keep.name]
        m.calls.pop(call.id, None)
        logger.info("call %s ended: %s (%s)", call.id, cause, side)

    def _publish_stats(self, call: Call, leg: Channel, stats: dict[str, Any]) -> None:
        remote = stats.get("remote")
        self.m._publish(
            LegMediaStats, call, leg, codec=leg.codec,
            packets_received=int(stats.get("packets_received", 0)),
            packets_lost=max(0, int(stats.get("lost", 0))),
            jitter_ms=float(stats.get("jitter_ms", 0.0)), rtt_ms=stats.get("rtt_ms"),
            remote=f"{remote[0]}:{remote[1]}" if remote else "")


def _cause(status: int) -> str:
    return {486: "user_busy", 480: "no_answer", 487: "originator_cancel"}.get(
        status, "call_rejected")

