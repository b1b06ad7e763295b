"""Server transactions: RFC 3261 §17.2 Figures 7 and 8, with RFC 6026's Accepted state.

Split from :mod:`signaling.transaction` (which re-exports both classes and holds the rules,
the base class and the client machines); the same two rules apply here: every transition
is in a table, and the machines do no I/O and read no clock.
"""

from __future__ import annotations

from typing import ClassVar

from .message import Request, Response, make_response
from .transaction import (
    Effect,
    Transaction,
    TransactionState,
    TxInput,
    _EffectFn,
    _send_input,
    _Table,
    _TimerMap,
)

__all__ = ["ServerInviteTransaction", "ServerNonInviteTransaction"]

S = TransactionState
I = TxInput  # noqa: E741
E = Effect


class _ServerTransaction(Transaction):
    __slots__ = ()
    SERVER = True

    def receive_request(self, request: Request, now: float) -> None:
        """A retransmission (or, for INVITE, the ACK) that matched this transaction."""
        event = TxInput.RECV_ACK if request.method == "ACK" else TxInput.RECV_REQUEST
        self.step(event, now, request)

    def send_response(self, response: Response, now: float) -> None:
        """The TU's response; raises TransactionStateError after a final response."""
        self.step(_send_input(response.status), now, response)

    def _eff_send_response(self, now: float, message: Request | Response | None) -> None:
        assert message is not None
        self._wire = message.serialize()
        self._sink.send_datagram(self._wire, self.dest)


# RFC 3261 Figure 7 (server INVITE), with RFC 6026 Figure 5's Accepted state.
#   Proceeding --INVITE: send last response--> Proceeding; --1xx from TU: send--> Proceeding
#   Proceeding --300-699 from TU: send--> Completed   --2xx from TU: send--> Accepted
#   Completed --INVITE: send response; Timer G: send response--> Completed
#   Completed --ACK--> Confirmed --Timer I--> Terminated
#   Completed --Timer H or transport error: inform TU--> Terminated
#   Accepted --2xx from TU: send; INVITE: absorb; ACK: to TU--> Accepted --Timer L--> Terminated
_SERVER_INVITE_TABLE: _Table = {
    (S.PROCEEDING, I.RECV_REQUEST): (E.RESEND_RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.TIMER_TRYING): (E.SEND_TRYING, S.PROCEEDING),
    (S.PROCEEDING, I.SEND_1XX): (E.SEND_RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.SEND_2XX): (E.SEND_RESPONSE, S.ACCEPTED),
    (S.PROCEEDING, I.SEND_3XX_6XX): (E.SEND_RESPONSE, S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (E.TRANSPORT_ERR, S.TERMINATED),
    (S.COMPLETED, I.RECV_REQUEST): (E.RESEND_RESPONSE, S.COMPLETED),
    (S.COMPLETED, I.TIMER_G): (E.RESEND_RESPONSE, S.COMPLETED),
    (S.COMPLETED, I.TIMER_H): (E.TIMEOUT, S.TERMINATED),
    (S.COMPLETED, I.RECV_ACK): (None, S.CONFIRMED),
    (S.COMPLETED, I.TRANSPORT_ERROR): (E.TRANSPORT_ERR, S.TERMINATED),
    (S.CONFIRMED, I.RECV_REQUEST): (E.ABSORB, S.CONFIRMED),
    (S.CONFIRMED, I.RECV_ACK): (E.ABSORB, S.CONFIRMED),
    (S.CONFIRMED, I.TIMER_I): (None, S.TERMINATED),
    (S.ACCEPTED, I.RECV_REQUEST): (E.ABSORB, S.ACCEPTED),
    (S.ACCEPTED, I.RECV_ACK): (E.PASS_UP_ACK, S.ACCEPTED),
    (S.ACCEPTED, I.SEND_2XX): (E.SEND_RESPONSE, S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_L): (None, S.TERMINATED),
    (S.ACCEPTED, I.TRANSPORT_ERROR): (E.TRANSPORT_ERR, S.TERMINATED),
}


class ServerInviteTransaction(_ServerTransaction):
    """Figure 7 + RFC 6026: 100 Trying after 200 ms (§17.2.1), non-2xx finals retransmitted
    with Timer G until the ACK (Timer H gives up), ACK retransmissions absorbed for Timer I.
    After a 2xx the transaction sits in Accepted for Timer L absorbing INVITE
    retransmissions; the 2xx's own retransmission is the UAS core's job (§13.3.1.4)."""

    __slots__ = ()
    TABLE = _SERVER_INVITE_TABLE
    INITIAL = S.PROCEEDING
    RETX_TIMER: ClassVar[_TimerMap] = {
        S.PROCEEDING: I.TIMER_TRYING,
        S.COMPLETED: I.TIMER_G,
    }
    TIMEOUT_TIMER: ClassVar[_TimerMap] = {
        S.COMPLETED: I.TIMER_H,
        S.CONFIRMED: I.TIMER_I,
        S.ACCEPTED: I.TIMER_L,
    }

    def start(self, now: float) -> None:
        """Arm the 100 Trying timer (or send 100 at once when ``trying_delay`` is 0)."""
        delay = self._sink.config.trying_delay
        if delay is None:
            return
        if delay <= 0:
            self.step(TxInput.TIMER_TRYING, now)
        else:
            self._arm_retx(now, delay)

    def _eff_send_trying(self, now: float, message: Request | Response | None) -> None:
        if self._wire or self.request is None:
            return  # the TU already sent a provisional response
        self._wire = make_response(self.request, 100).serialize()
        self._sink.send_datagram(self._wire, self.dest)

    def _eff_pass_up_ack(self, now: float, message: Request | Response | None) -> None:
        assert message is not None
        self._sink.transaction_message(self, message)

    def _enter(self, state: TransactionState, now: float) -> None:
        cfg = self._sink.config
        if state is not S.PROCEEDING:
            self.request = None  # only needed for 100 Trying and a CANCEL's 487
        if state is S.COMPLETED:
            if self.reliable:
                self._retx_at = None
            else:
                self._retx_interval = cfg.timer_g()
                self._retx_at = now + self._retx_interval
            self._arm_timeout(now, cfg.timer_h())
        elif state is S.CONFIRMED:
            self._retx_at = None
            self._arm_timeout(now, cfg.timer_i(self.reliable))
        elif state is S.ACCEPTED:
            self._retx_at = None
            self._arm_timeout(now, cfg.timer_l())
        else:
            super()._enter(state, now)

    def _eff_resend_and_backoff(self, now: float, message: Request | Response | None) -> None:
        self._resend(now, message)
        if message is None and self.state is S.COMPLETED:  # Timer G fired: double, cap T2
            self._arm_retx(now, self._sink.config.next_interval(self._retx_interval))

    def send_response(self, response: Response, now: float) -> None:
        if response.status < 200 and self.state is S.PROCEEDING:
            self.step(TxInput.SEND_1XX, now, response)
            self._retx_at = None
            self._set_deadline()
            return
        super().send_response(response, now)

    _EFFECTS: ClassVar[dict[Effect, _EffectFn]] = {
        E.RESEND_RESPONSE: _eff_resend_and_backoff,
        E.SEND_TRYING: _eff_send_trying,
        E.SEND_RESPONSE: _ServerTransaction._eff_send_response,
        E.TIMEOUT: Transaction._eff_timeout,
        E.TRANSPORT_ERR: Transaction._eff_transport_err,
        E.PASS_UP_ACK: _eff_pass_up_ack,
    }


# RFC 3261 Figure 8 (server non-INVITE).
#   Trying --request: absorb--> Trying; --1xx from TU: send--> Proceeding
#   Trying/Proceeding --200-699 from TU: send--> Completed --Timer J--> Terminated
#   Proceeding/Completed --request: send last response--> same state
_SERVER_NON_INVITE_TABLE: _Table = {
    (S.TRYING, I.RECV_REQUEST): (E.ABSORB, S.TRYING),
    (S.TRYING, I.SEND_1XX): (E.SEND_RESPONSE, S.PROCEEDING),
    (S.TRYING, I.SEND_2XX): (E.SEND_RESPONSE, S.COMPLETED),
    (S.TRYING, I.SEND_3XX_6XX): (E.SEND_RESPONSE, S.COMPLETED),
    (S.TRYING, I.TRANSPORT_ERROR): (E.TRANSPORT_ERR, S.TERMINATED),
    (S.PROCEEDING, I.RECV_REQUEST): (E.RESEND_RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.SEND_1XX): (E.SEND_RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.SEND_2XX): (E.SEND_RESPONSE, S.COMPLETED),
    (S.PROCEEDING, I.SEND_3XX_6XX): (E.SEND_RESPONSE, S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (E.TRANSPORT_ERR, S.TERMINATED),
    (S.COMPLETED, I.RECV_REQUEST): (E.RESEND_RESPONSE, S.COMPLETED),
    (S.COMPLETED, I.TIMER_J): (None, S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): (E.TRANSPORT_ERR, S.TERMINATED),
}


class ServerNonInviteTransaction(_ServerTransaction):
    """Figure 8: absorbs retransmissions, answers them with the last response, lingers
    for Timer J (64*T1 on UDP, 0 on TCP) once a final response was sent."""

    __slots__ = ()
    TABLE = _SERVER_NON_INVITE_TABLE
    INITIAL = S.TRYING
    TIMEOUT_TIMER: ClassVar[_TimerMap] = {
        S.COMPLETED: I.TIMER_J,
    }

    def _enter(self, state: TransactionState, now: float) -> None:
        if state is S.COMPLETED:
            self.request = None  # only the response bytes are needed from here on
            self._arm_timeout(now, self._sink.config.timer_j(self.reliable))
        else:
            super()._enter(state, now)

    _EFFECTS: ClassVar[dict[Effect, _EffectFn]] = {
        E.RESEND_RESPONSE: Transaction._resend,
        E.SEND_RESPONSE: _ServerTransaction._eff_send_response,
        E.TRANSPORT_ERR: Transaction._eff_transport_err,
        E.TIMEOUT: Transaction._eff_timeout,
    }
