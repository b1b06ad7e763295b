"""SIP transactions: RFC 3261 §17 Figures 5–8, with RFC 6026's Accepted state.

This module holds the rules, the base class, the client machines (Figures 5, 6), the
matching keys and the ACK/CANCEL builders; the server machines (Figures 7, 8) live in
:mod:`signaling.server_transaction` and are re-exported here lazily.

Rule 1 (h11 ``_state.py``): everything that moves a transaction from one state to another
lives in the four transition tables below, in the h2 shape
``(state, input) -> (side effect | None, next state)``. A pair that is not in a table is the
single error path: :class:`TransactionStateError` (a :class:`LocalSipError`). Inputs caused
by the peer (a late response, an ACK at the wrong time) that the RFC says to drop are in the
tables with the ``ABSORB`` effect, so the error really means "the caller misused us".

Rule 2: a transaction does no I/O and reads no clock. It talks to its owner through a
:class:`TransactionSink` (the transaction layer), which collects datagrams, passes messages
up and keeps the single timer heap. Timers are deadlines: each transaction has at most a
retransmit timer (A, E, G, or the 200 ms 100-Trying timer) and a timeout/wait timer
(B, D, F, H, I, J, K, L, M); ``deadline`` is the nearer of the two.

Matching keys (§17.1.3, §17.2.3) are plain strings so table lookup is one dict probe:
client ``branch|CSeq-method``; server ``branch|sent-by|method`` (ACK matches as INVITE) when
the branch carries the ``z9hG4bK`` cookie, else the RFC 2543 fallback built from the
Request-URI, From tag, Call-ID, CSeq number and top Via. (The 2543 rule also compares the
To tag; we leave it out, so an INVITE retransmission and its ACK both match — the only
difference is for forked 2543 INVITEs reaching the same UAS, which we accept.)
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .errors import LocalSipError
from .message import Headers, Request, Response
from .timers import TimerConfig

if TYPE_CHECKING:
    from .events import Address

__all__ = [
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "Effect",
    "Transaction",
    "TransactionSink",
    "TransactionState",
    "TransactionStateError",
    "TxInput",
    "build_ack_for_non2xx",
    "build_cancel",
    "client_key",
    "response_input",
    "server_key",
]

logger = logging.getLogger(__name__)

MAGIC_COOKIE = "z9hG4bK"


class TransactionStateError(LocalSipError):
    """An input that the transaction's table has no transition for."""


class TransactionState(enum.Enum):
    """The states of Figures 5–8 plus RFC 6026 Accepted."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class TxInput(enum.Enum):
    """Everything that can drive a transaction: messages, TU calls, timers, transport."""

    RECV_REQUEST = "request retransmission"
    RECV_ACK = "ACK"
    RECV_1XX = "1xx"
    RECV_2XX = "2xx"
    RECV_3XX_6XX = "300-699"
    SEND_1XX = "TU 1xx"
    SEND_2XX = "TU 2xx"
    SEND_3XX_6XX = "TU 300-699"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TIMER_TRYING = "200 ms Trying timer"
    TRANSPORT_ERROR = "transport error"


class Effect(enum.Enum):
    """Side effects named after the arrows' labels in Figures 5–8."""

    ABSORB = "absorb"
    RETRANSMIT = "retransmit request"
    PASS_UP = "response to TU"
    ACK_AND_PASS_UP = "send ACK, response to TU"
    SEND_ACK = "send ACK"
    TIMEOUT = "inform TU of timeout"
    TRANSPORT_ERR = "inform TU of transport error"
    SEND_RESPONSE = "send response"
    RESEND_RESPONSE = "resend last response"
    SEND_TRYING = "send 100 Trying"
    PASS_UP_ACK = "ACK to TU"


def response_input(status: int) -> TxInput:
    """Classify a received status code for the client tables."""
    if status < 200:
        return TxInput.RECV_1XX
    if status < 300:
        return TxInput.RECV_2XX
    return TxInput.RECV_3XX_6XX


def _send_input(status: int) -> TxInput:
    if status < 200:
        return TxInput.SEND_1XX
    if status < 300:
        return TxInput.SEND_2XX
    return TxInput.SEND_3XX_6XX


def client_key(branch: str, method: str) -> str:
    """§17.1.3: a response matches the client transaction with its top-Via branch and
    CSeq method (CANCEL has its own transaction with the INVITE's branch)."""
    return f"{branch}|{method}"


def server_key(request: Request, method: str | None = None) -> str:
    """§17.2.3 key of the server transaction ``request`` belongs to (ACK → its INVITE).

    ``method`` overrides the request's method: CANCEL looks up ``method="INVITE"`` (§9.2).
    Must be computed before the core adds ``received``/``rport`` to the top Via.
    """
    if method is None:
        method = request.method
        if method == "ACK":
            method = "INVITE"
    via = request.vias[0]  # all Vias: the validator needs them next, parsed once
    branch = via.branch
    if branch and branch.startswith(MAGIC_COOKIE):
        return f"{branch}|{via.host.lower()}:{via.port or ''}|{method}"
    # RFC 2543 fallback: no cookie, so branch uniqueness cannot be trusted.
    top = request.headers.get_all("Via")[0]
    return (
        f"2543|{request.uri}|{request.from_tag or ''}|{request.call_id}|"
        f"{request.cseq.seq}|{top}|{method}"
    )


class TransactionSink(Protocol):
    """What a transaction needs from its owner (implemented by the transaction layer)."""

    config: TimerConfig

    def send_datagram(self, data: bytes, dest: Address) -> None: ...

    def schedule(self, txn: Transaction) -> None:
        """``txn.deadline`` changed (it may be None); re-arm the heap."""

    def transaction_message(self, txn: Transaction, message: Request | Response) -> None:
        """Pass a response (client) or an ACK (server, Accepted state) up to the TU."""

    def transaction_failed(self, txn: Transaction, effect: Effect) -> None:
        """Report Effect.TIMEOUT or Effect.TRANSPORT_ERR to the TU."""

    def transaction_terminated(self, txn: Transaction) -> None: ...


# Effects are unbound methods of the concrete machine class: typed loosely on purpose.
_EffectFn = Callable[[Any, float, "Request | Response | None"], None]
_Table = dict[tuple[TransactionState, TxInput], tuple[Effect | None, TransactionState]]
_TimerMap = dict[TransactionState, TxInput]


class Transaction:
    """Common machinery: the table step, two timers, the wire bytes to retransmit.

    Attributes are slots: a registrar keeps ~64,000 completed server transactions alive
    for Timer J, so each must stay small (the request is dropped once it is no longer
    needed; only the last response's bytes are kept).
    """

    __slots__ = (
        "_retx_at",
        "_retx_interval",
        "_sink",
        "_timeout_at",
        "_wire",
        "deadline",
        "dest",
        "id",
        "method",
        "request",
        "state",
        "tu",
    )

    TABLE: ClassVar[_Table]
    INITIAL: ClassVar[TransactionState]
    SERVER: ClassVar[bool]
    #: Which input a due timer produces, by state (retransmit slot / timeout slot).
    RETX_TIMER: ClassVar[_TimerMap] = {}
    TIMEOUT_TIMER: ClassVar[_TimerMap] = {}

    def __init__(self, txn_id: str, request: Request, dest: Address, sink: TransactionSink):
        self.id = txn_id
        self.request: Request | None = request
        self.method = request.method
        self.dest = dest
        self.state = self.INITIAL
        self._sink = sink
        self._retx_at: float | None = None
        self._retx_interval = 0.0
        self._timeout_at: float | None = None
        self.deadline: float | None = None
        self._wire = b""
        #: Opaque data owned by the transaction user (the core keeps the dialog id or the
        #: §8.2.2.2 merge key here, so it needs no side table per transaction).
        self.tu: object = None

    @property
    def reliable(self) -> bool:
        return self.dest.reliable

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.state.value}>"

    # -- the single transition function ---------------------------------------------
    def step(self, event: TxInput, now: float, message: Request | Response | None = None) -> None:
        """Apply one input. Raises :class:`TransactionStateError` for pairs not in TABLE."""
        try:
            effect, new_state = self.TABLE[(self.state, event)]
        except KeyError:
            raise TransactionStateError(
                f"{type(self).__name__} cannot handle {event.value} in state {self.state.value}"
            ) from None
        old = self.state
        self.state = new_state
        if effect is not None and effect is not Effect.ABSORB:
            self._EFFECTS[effect](self, now, message)
        if new_state is not old:
            self._enter(new_state, now)

    _EFFECTS: ClassVar[dict[Effect, _EffectFn]]

    def _enter(self, state: TransactionState, now: float) -> None:
        if state is TransactionState.TERMINATED:
            self._retx_at = self._timeout_at = None
            self._set_deadline()
            self._sink.transaction_terminated(self)

    # -- timers ------------------------------------------------------------------------
    def _set_deadline(self) -> None:
        r, t = self._retx_at, self._timeout_at
        if r is None:
            d = t
        elif t is None or r < t:
            d = r
        else:
            d = t
        if d != self.deadline:
            self.deadline = d
            self._sink.schedule(self)

    def _arm_retx(self, now: float, interval: float) -> None:
        """Arm the retransmit slot; a zero interval (nothing armed before, e.g. over a
        reliable transport) arms nothing, so a timer can never re-fire at the same now."""
        self._retx_interval = interval
        self._retx_at = now + interval if interval > 0 else None
        self._set_deadline()

    def _arm_timeout(self, now: float, duration: float) -> None:
        """Arm the timeout/wait slot; a zero duration (reliable transport) fires at once."""
        self._timeout_at = now + duration
        self._set_deadline()
        if duration <= 0:
            self.step(self.TIMEOUT_TIMER[self.state], now)

    def _cancel_timers(self) -> None:
        self._retx_at = self._timeout_at = None
        self._set_deadline()

    def handle_timer(self, now: float) -> None:
        """Fire every timer of this transaction that is due at ``now``, earliest first
        (timeouts before retransmits on a tie: nothing is sent by a dying transaction)."""
        while self.state is not TransactionState.TERMINATED:
            r, t = self._retx_at, self._timeout_at
            if t is not None and t <= now and (r is None or t <= r):
                self._timeout_at = None
                self.step(self.TIMEOUT_TIMER[self.state], now)
            elif r is not None and r <= now:
                self._retx_at = None
                self.step(self.RETX_TIMER[self.state], now)
            else:
                break
        self._set_deadline()

    def transport_error(self, now: float) -> None:
        """The shell could not send one of our messages (§17.1.4, §17.2.4)."""
        self.step(TxInput.TRANSPORT_ERROR, now)

    # -- shared effects ---------------------------------------------------------------
    def _eff_timeout(self, now: float, message: Request | Response | None) -> None:
        self._sink.transaction_failed(self, Effect.TIMEOUT)

    def _eff_transport_err(self, now: float, message: Request | Response | None) -> None:
        self._sink.transaction_failed(self, Effect.TRANSPORT_ERR)

    def _resend(self, now: float, message: Request | Response | None) -> None:
        if self._wire:
            self._sink.send_datagram(self._wire, self.dest)


# ======================================================================================
# Client transactions
# ======================================================================================

S = TransactionState
I = TxInput  # noqa: E741
E = Effect


class _ClientTransaction(Transaction):
    __slots__ = ()
    SERVER = False

    def start(self, now: float) -> None:
        """Send the request for the first time and arm the state's timers."""
        assert self.request is not None
        self._wire = self.request.serialize()
        self._sink.send_datagram(self._wire, self.dest)
        self._start_timers(now)

    def _start_timers(self, now: float) -> None:
        raise NotImplementedError

    def receive_response(self, response: Response, now: float) -> None:
        """Feed a response whose key matched this transaction."""
        self.step(response_input(response.status), now, response)

    def _eff_retransmit(self, now: float, message: Request | Response | None) -> None:
        self._sink.send_datagram(self._wire, self.dest)
        self._arm_retx(now, self._sink.config.next_interval(
            self._retx_interval, capped=self.method != "INVITE"))

    def _eff_pass_up(self, now: float, message: Request | Response | None) -> None:
        assert message is not None
        self._sink.transaction_message(self, message)


# RFC 3261 Figure 5 (client INVITE), with RFC 6026 Figure 3's Accepted state.
#
#                    |INVITE from TU
#  Timer A fires     |INVITE sent
#  Reset A,          V                      Timer B fires
#  INVITE sent +-----------+                or Transport Err.
#    +---------|           |---------------+inform TU
#    |         |  Calling  |               |
#    +-------->|           |-------------->|
#              +-----------+ 2xx           |
#                 |  |       2xx to TU     |
#                 |  |1xx    (-> Accepted) |
#  300-699 +------+  |1xx to TU            |
#  ACK sent|         V                     |
# resp. to TU  +-----------+               |
#      +-------|Proceeding |-> Accepted on 2xx (2xx to TU)
#      |       +-----------+
#      V 300-699: ACK sent, resp. to TU
#  +-----------+ 300-699 ACK sent ; Timer D fires -> Terminated
#  | Completed |
#  +-----------+
_CLIENT_INVITE_TABLE: _Table = {
    (S.CALLING, I.TIMER_A): (E.RETRANSMIT, S.CALLING),
    (S.CALLING, I.TIMER_B): (E.TIMEOUT, S.TERMINATED),
    (S.CALLING, I.TRANSPORT_ERROR): (E.TRANSPORT_ERR, S.TERMINATED),
    (S.CALLING, I.RECV_1XX): (E.PASS_UP, S.PROCEEDING),
    (S.CALLING, I.RECV_2XX): (E.PASS_UP, S.ACCEPTED),
    (S.CALLING, I.RECV_3XX_6XX): (E.ACK_AND_PASS_UP, S.COMPLETED),
    (S.PROCEEDING, I.RECV_1XX): (E.PASS_UP, S.PROCEEDING),
    (S.PROCEEDING, I.RECV_2XX): (E.PASS_UP, S.ACCEPTED),
    (S.PROCEEDING, I.RECV_3XX_6XX): (E.ACK_AND_PASS_UP, S.COMPLETED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (E.TRANSPORT_ERR, S.TERMINATED),
    (S.PROCEEDING, I.TIMER_B): (E.TIMEOUT, S.TERMINATED),  # only armed by a CANCEL (§9.1)
    (S.COMPLETED, I.RECV_1XX): (E.ABSORB, S.COMPLETED),
    (S.COMPLETED, I.RECV_2XX): (E.ABSORB, S.COMPLETED),
    (S.COMPLETED, I.RECV_3XX_6XX): (E.SEND_ACK, S.COMPLETED),
    (S.COMPLETED, I.TIMER_D): (None, S.TERMINATED),
    (S.COMPLETED, I.TRANSPORT_ERROR): (E.TRANSPORT_ERR, S.TERMINATED),
    (S.ACCEPTED, I.RECV_1XX): (E.ABSORB, S.ACCEPTED),
    (S.ACCEPTED, I.RECV_2XX): (E.PASS_UP, S.ACCEPTED),
    (S.ACCEPTED, I.RECV_3XX_6XX): (E.ABSORB, S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_M): (None, S.TERMINATED),
    (S.ACCEPTED, I.TRANSPORT_ERROR): (E.ABSORB, S.ACCEPTED),
}


class ClientInviteTransaction(_ClientTransaction):
    """Figure 5 + RFC 6026 Accepted: retransmits with Timer A (UDP), times out with B,
    ACKs non-2xx finals itself (§17.1.1.3), and in Accepted passes 2xx retransmissions to
    the TU for 64*T1 (Timer M) so the UAC core can re-send its ACK for the 2xx."""

    __slots__ = ("last_provisional",)
    TABLE = _CLIENT_INVITE_TABLE
    INITIAL = S.CALLING
    RETX_TIMER: ClassVar[_TimerMap] = {
        S.CALLING: I.TIMER_A,
    }
    TIMEOUT_TIMER: ClassVar[_TimerMap] = {
        S.CALLING: I.TIMER_B,
        S.PROCEEDING: I.TIMER_B,
        S.COMPLETED: I.TIMER_D,
        S.ACCEPTED: I.TIMER_M,
    }

    def __init__(self, txn_id: str, request: Request, dest: Address, sink: TransactionSink):
        super().__init__(txn_id, request, dest, sink)
        self.last_provisional: Response | None = None

    def _start_timers(self, now: float) -> None:
        cfg = self._sink.config
        if not self.reliable:
            self._retx_interval = cfg.timer_a()
            self._retx_at = now + self._retx_interval
        self._timeout_at = now + cfg.timer_b()
        self._set_deadline()

    def cancel_sent(self, now: float) -> None:
        """§9.1: with no final response 64*T1 after our CANCEL, the INVITE transaction is
        given up (reported as a timeout). Figure 5 has no timer in Proceeding otherwise."""
        if self.state is S.PROCEEDING and self._timeout_at is None:
            self._arm_timeout(now, self._sink.config.timer_b())

    def receive_response(self, response: Response, now: float) -> None:
        if response.status < 200 and self.state is not S.COMPLETED:
            self.last_provisional = response
        super().receive_response(response, now)

    def _enter(self, state: TransactionState, now: float) -> None:
        cfg = self._sink.config
        if state is S.PROCEEDING:
            self._cancel_timers()  # A and B stop on a provisional (Figure 5)
        elif state is S.COMPLETED:
            self._retx_at = None
            self._arm_timeout(now, cfg.timer_d(self.reliable))
        elif state is S.ACCEPTED:
            self._retx_at = None
            self._arm_timeout(now, cfg.timer_m())
        else:
            super()._enter(state, now)

    def _eff_ack_and_pass_up(self, now: float, message: Request | Response | None) -> None:
        assert isinstance(message, Response) and self.request is not None
        self._wire = build_ack_for_non2xx(self.request, message).serialize()
        self._sink.send_datagram(self._wire, self.dest)
        self._sink.transaction_message(self, message)

    _EFFECTS: ClassVar[dict[Effect, _EffectFn]] = {
        E.RETRANSMIT: _ClientTransaction._eff_retransmit,
        E.TIMEOUT: Transaction._eff_timeout,
        E.TRANSPORT_ERR: Transaction._eff_transport_err,
        E.PASS_UP: _ClientTransaction._eff_pass_up,
        E.ACK_AND_PASS_UP: _eff_ack_and_pass_up,
        E.SEND_ACK: Transaction._resend,
    }


# RFC 3261 Figure 6 (client non-INVITE).
#   Trying  --Timer E: send request-->  Trying      --1xx: resp. to TU--> Proceeding
#   Trying/Proceeding --200-699: resp. to TU--> Completed --Timer K--> Terminated
#   Trying/Proceeding --Timer F or transport error: inform TU--> Terminated
_CLIENT_NON_INVITE_TABLE: _Table = {
    (S.TRYING, I.TIMER_E): (E.RETRANSMIT, S.TRYING),
    (S.TRYING, I.TIMER_F): (E.TIMEOUT, S.TERMINATED),
    (S.TRYING, I.TRANSPORT_ERROR): (E.TRANSPORT_ERR, S.TERMINATED),
    (S.TRYING, I.RECV_1XX): (E.PASS_UP, S.PROCEEDING),
    (S.TRYING, I.RECV_2XX): (E.PASS_UP, S.COMPLETED),
    (S.TRYING, I.RECV_3XX_6XX): (E.PASS_UP, S.COMPLETED),
    (S.PROCEEDING, I.TIMER_E): (E.RETRANSMIT, S.PROCEEDING),
    (S.PROCEEDING, I.TIMER_F): (E.TIMEOUT, S.TERMINATED),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (E.TRANSPORT_ERR, S.TERMINATED),
    (S.PROCEEDING, I.RECV_1XX): (E.PASS_UP, S.PROCEEDING),
    (S.PROCEEDING, I.RECV_2XX): (E.PASS_UP, S.COMPLETED),
    (S.PROCEEDING, I.RECV_3XX_6XX): (E.PASS_UP, S.COMPLETED),
    (S.COMPLETED, I.RECV_1XX): (E.ABSORB, S.COMPLETED),
    (S.COMPLETED, I.RECV_2XX): (E.ABSORB, S.COMPLETED),
    (S.COMPLETED, I.RECV_3XX_6XX): (E.ABSORB, S.COMPLETED),
    (S.COMPLETED, I.TIMER_K): (None, S.TERMINATED),
}


class ClientNonInviteTransaction(_ClientTransaction):
    """Figure 6: retransmits with Timer E (doubling to T2, and at T2 once Proceeding),
    times out with F, absorbs response retransmissions for Timer K."""

    __slots__ = ()
    TABLE = _CLIENT_NON_INVITE_TABLE
    INITIAL = S.TRYING
    RETX_TIMER: ClassVar[_TimerMap] = {
        S.TRYING: I.TIMER_E,
        S.PROCEEDING: I.TIMER_E,
    }
    TIMEOUT_TIMER: ClassVar[_TimerMap] = {
        S.TRYING: I.TIMER_F,
        S.PROCEEDING: I.TIMER_F,
        S.COMPLETED: I.TIMER_K,
    }

    def _start_timers(self, now: float) -> None:
        cfg = self._sink.config
        if not self.reliable:
            self._retx_interval = cfg.timer_e()
            self._retx_at = now + self._retx_interval
        self._timeout_at = now + cfg.timer_f()
        self._set_deadline()

    def _eff_retransmit_proceeding(self, now: float, message: Request | Response | None) -> None:
        if self.state is S.PROCEEDING:
            # §17.1.2.2: in Proceeding, retransmissions continue every T2.
            self._sink.send_datagram(self._wire, self.dest)
            self._arm_retx(now, self._sink.config.t2)
        else:
            self._eff_retransmit(now, message)

    def _enter(self, state: TransactionState, now: float) -> None:
        if state is S.COMPLETED:
            self._retx_at = None
            self.request = None
            self._arm_timeout(now, self._sink.config.timer_k(self.reliable))
        else:
            super()._enter(state, now)

    _EFFECTS: ClassVar[dict[Effect, _EffectFn]] = {
        E.RETRANSMIT: _eff_retransmit_proceeding,
        E.TIMEOUT: Transaction._eff_timeout,
        E.TRANSPORT_ERR: Transaction._eff_transport_err,
        E.PASS_UP: _ClientTransaction._eff_pass_up,
    }


# ======================================================================================
# Building ACK (§17.1.1.3) and CANCEL (§9.1)
# ======================================================================================


def _copy_request_core(request: Request, method: str, to_value: str) -> Request:
    """Shared part of ACK-for-non-2xx and CANCEL: same Request-URI, Call-ID, From, CSeq
    number, one Via (the request's top Via), the same Route set."""
    h = request.headers
    items: list[list[str]] = []
    via = h.get_all("Via")
    if via:
        items.append(["Via", via[0]])
    items.append(["Max-Forwards", "70"])
    for name in ("From", "Call-ID"):
        value = h.get(name)
        if value is not None:
            items.append([name, value])
    items.append(["To", to_value])
    items.append(["CSeq", f"{request.cseq.seq} {method}"])
    for route in h.get_raw_all("Route"):
        items.append(["Route", route])
    return Request(method, request.uri, Headers._from_canonical(items))


def build_ack_for_non2xx(invite: Request, response: Response) -> Request:
    """§17.1.1.3: the ACK a client INVITE transaction sends for a 300-699 response; its To
    is the response's To (with the UAS's tag), everything else comes from the INVITE."""
    to_value = response.headers.get("To") or invite.headers.get("To") or ""
    return _copy_request_core(invite, "ACK", to_value)


def build_cancel(request: Request) -> Request:
    """§9.1: CANCEL for a pending request, matching it hop by hop (same branch)."""
    if request.method in ("ACK", "CANCEL"):
        raise LocalSipError(f"a {request.method} cannot be cancelled (§9.1)")
    return _copy_request_core(request, "CANCEL", request.headers.get("To") or "")


def __getattr__(name: str) -> object:
    """PEP 562: ``from signaling.transaction import ServerInviteTransaction`` keeps working
    although the server machines live in :mod:`signaling.server_transaction` (imported
    lazily, as that module builds on this one)."""
    if name in ("ServerInviteTransaction", "ServerNonInviteTransaction"):
        from . import server_transaction

        return getattr(server_transaction, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
