"""SipCore: the sans-IO SIP user-agent core (RFC 3261 §8, §12–§17; RFC 3581; RFC 6026).

Drive it the aioquic way: feed ``handle_datagram(data, source, now)`` (or
``handle_message`` for stream transports), ``handle_timer(now)`` when ``next_deadline()``
passes, and the application's ``send_request``/``send_response`` calls; after each, drain
``datagrams_to_send()`` and ``events()``. No sockets, no clock, no asyncio.

What the core does before the application sees a request (§8.2, in this order):

1. Transaction matching (§17.2.3): retransmissions are answered with the last response and
   never reported twice; the ACK for a non-2xx stops its transaction there.
2. Validation (:mod:`signaling.validate`): 400/416/505 with a reason naming the problem,
   answered statelessly (no transaction is created for a malformed request).
3. Via ``received``/``rport`` stamping (§18.2.1, RFC 3581) and response routing (§18.2.2).
4. Loop checks: our own branch in a Via (482), Max-Forwards 0 (483, OPTIONS excepted).
5. Method (§8.2.1): 501 for methods we do not know, 405 for known ones not in ``allow``.
6. Dialog (§12.2.2): 481 for unknown To tags, 500 for CSeq out of order, 491 on glare;
   merged requests without To tag (§8.2.2.2): 482.
7. Require (§8.2.2.3): 420 with Unsupported. Content (§8.2.3): 415 with Accept /
   Accept-Encoding.
8. CANCEL (§9.2) and OPTIONS (§11.2) are answered here; everything else becomes a
   :class:`~signaling.events.RequestReceived` the application answers with
   :meth:`SipCore.send_response`.

Layers (aioquic style, each sans-IO): :class:`~signaling.transaction_layer.TransactionLayer`
(transactions, the one timer heap, the outbox) -> :class:`~signaling.dialog_layer.DialogLayer`
(dialogs: created from 1xx/2xx on both sides, every 2xx ACKed with the ACK re-sent for
retransmissions, our 2xx re-sent until its ACK, ``AckTimedOut`` after 64*T1) -> this core
(the §8.2 pipeline, CANCEL §9, OPTIONS, and the application API).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random

from .dialog import Dialog, DialogId
from .dialog_layer import DialogLayer
from .errors import LocalSipError, SipParseError
from .events import (
    Address,
    CancelReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportError,
)
from .ids import IdGenerator
from .message import Headers, Request, Response, make_response
from .parser import parse_message
from .server_transaction import ServerInviteTransaction
from .timers import TimerConfig
from .transaction import (
    ClientInviteTransaction,
    Effect,
    Transaction,
    TransactionState,
    build_cancel,
    client_key,
    server_key,
)
from .transaction_layer import ServerTransaction, TransactionLayer
from .transport import response_destination, stamp_received
from .uas_checks import (
    KNOWN_METHODS,
    Rejection,
    answer_unparsable,
    check_content,
    check_method,
    check_require,
    options_headers,
    warning,
)
from .validate import validate_request, validate_response

__all__ = ["DEFAULT_ALLOW", "KNOWN_METHODS", "CoreConfig", "SipCore"]

logger = logging.getLogger(__name__)

_ALWAYS = frozenset({"ACK", "CANCEL"})
_ALWAYS_WITH_OPTIONS = _ALWAYS | {"OPTIONS"}
DEFAULT_ALLOW = frozenset({
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO", "REGISTER", "REFER",
    "NOTIFY", "MESSAGE",
})


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Settings of one SIP core (STYLE §4.7: a docstring per field)."""

    host: str = "127.0.0.1"
    """Our sent-by host (Via) and Contact host."""
    port: int = 5060
    """Our sent-by port."""
    transport: str = "udp"
    """Transport named in our Via and used for next hops without a transport param."""
    timers: TimerConfig = field(default_factory=TimerConfig)
    """T1/T2/T4 and the 100 Trying delay."""
    supported: tuple[str, ...] = ()
    """Option tags we implement (Supported; anything else in Require gets 420)."""
    accept: tuple[str, ...] = (
        "application/sdp", "application/dtmf-relay", "application/dtmf", "text/plain",
        "message/sipfrag",
    )
    """Body types we take (415 otherwise, §8.2.3)."""
    accept_encoding: tuple[str, ...] = ("identity",)
    """Content codings we take (415 with Accept-Encoding otherwise, §8.2.3)."""
    relayed_body_methods: tuple[str, ...] = ()
    """Methods whose bodies the application passes on unread (a MESSAGE relay: RFC 3428
    lets a MESSAGE carry any MIME type): no 415 for them, the recipient judges the body."""
    user_agent: str | None = "softswitch"
    """User-Agent/Server header value; None sends none."""
    answer_options: bool = True
    """Answer OPTIONS with 200 + capabilities (§11.2); False passes them up."""
    auto_ack: bool = True
    """ACK each 2xx as soon as it arrives (§13.2.2.4); False: call ``send_ack``."""


class SipCore:
    """The sans-IO UA core. See the module docstring for the processing rules.

    Args:
        config: addresses, timers and capabilities.
        rng: random source for branches, tags and Call-IDs (seeded in tests).
    """

    def __init__(self, config: CoreConfig | None = None, *, rng: Random | None = None) -> None:
        self.config = config or CoreConfig()
        self.ids = IdGenerator(rng)
        self.layer = TransactionLayer(self.config.timers, self)
        self.allow: set[str] = set(DEFAULT_ALLOW)
        self._events: deque[Event] = deque()
        self.dialog_layer = DialogLayer(
            self.layer, self._events, self.ids, via=self.via, contact=self.contact,
            transport=self.config.transport, auto_ack=self.config.auto_ack)
        #: The dialogs by id (the dialog layer's table).
        self.dialogs: dict[DialogId, Dialog] = self.dialog_layer.dialogs
        self._merged: dict[tuple[str, str, int, str], str] = {}
        self._pending_cancel: set[str] = set()
        self._transport_upper = self.config.transport.upper()
        self._host_lower = self.config.host.lower()
        self._supported = frozenset(t.lower() for t in self.config.supported)
        self._accept = frozenset(a.lower() for a in self.config.accept)
        self._accept_encoding = frozenset(a.lower() for a in self.config.accept_encoding)
        self.stats: dict[str, int] = {
            "parse_errors": 0, "dropped": 0, "bad_responses": 0, "stray_acks": 0,
            "stray_responses": 0, "rejected": 0, "stateless": 0,
        }
        self.stateless_hook: Callable[[Request, Address, float], Response | None] | None = None
        """Called for each new, valid request before a transaction is made for it; a
        response it returns is sent statelessly and the request goes no further. For
        answers that cost nothing to repeat, such as a digest challenge under load."""
        self._special = {
            "CANCEL": self._recv_cancel,
            "OPTIONS": self._recv_options,
        }

    # ====================================================================================
    # Driving the core
    # ====================================================================================
    def handle_datagram(self, data: bytes, source: Address, now: float) -> None:
        """One UDP datagram (or one framed stream message) from ``source``."""
        try:
            message = parse_message(data, datagram=not source.reliable)
        except SipParseError as err:
            self.stats["parse_errors"] += 1
            self._answer_unparsable(data, source, err)
            return
        self.handle_message(message, source, now)

    def handle_message(self, message: Request | Response, source: Address, now: float) -> None:
        """A parsed message (stream transports frame and parse before calling this)."""
        try:
            if isinstance(message, Request):
                self._receive_request(message, source, now)
            else:
                self._receive_response(message, now)
        except SipParseError as err:
            # Typed header views parse lazily; a bad field the validator does not cover
            # (e.g. in a retransmission or an ACK) is the peer's fault: drop the message.
            self.stats["dropped"] += 1
            logger.debug("dropped %r from %s: %s", message, source, err.detail)

    def handle_timer(self, now: float) -> None:
        """Fire every transaction and 2xx-retransmission timer due at ``now``."""
        self.layer.handle_timer(now)

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must next be called; None when nothing is pending."""
        return self.layer.next_deadline()

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Everything produced since the last call, in order."""
        out = self.layer.outbox
        if not out:
            return []
        self.layer.outbox = []
        return out

    def next_event(self) -> Event | None:
        """The oldest pending event, or None."""
        return self._events.popleft() if self._events else None

    def events(self) -> list[Event]:
        """All pending events, oldest first."""
        out = list(self._events)
        self._events.clear()
        return out

    # ====================================================================================
    # Receiving requests
    # ====================================================================================
    def _receive_request(self, request: Request, source: Address, now: float) -> None:
        try:
            key = server_key(request)
        except SipParseError as err:
            self._answer_stateless(request, source, err)
            return
        txn = self.layer.server.get(key)
        if txn is not None or request.method == "ACK":
            self._absorb_or_ack(request, key, txn, source, now)
            return
        try:
            # A request that fails validation gets no transaction: its answer is
            # stateless, and so is the answer to each retransmission of it.
            validate_request(request)
            dest = response_destination(stamp_received(request, source), source)
        except SipParseError as err:
            self._answer_stateless(request, source, err)
            return
        hook = self.stateless_hook
        if hook is not None:
            answer = hook(request, source, now)
            if answer is not None:
                # Answered without a transaction (a digest challenge, like a proxy's
                # sl_send_reply): a retransmission just gets a fresh answer.
                self.stats["stateless"] += 1
                self.layer.outbox.append((answer.serialize(), dest))
                return
        new = self.layer.create_server(key, request, dest, now)
        try:
            rejection = self._check_request(request, new)
        except SipParseError as err:  # a field the validator let through (defensive)
            rejection = (err.status_code, err.reason, [("Warning", warning(err.detail))])
        if rejection is not None:
            self.stats["rejected"] += 1
            self._reject(new, request, *rejection, now=now)
            return
        special = self._special.get(request.method)
        if special is not None and special(request, new, source, now):
            return
        dialog_id = new.tu if isinstance(new.tu, DialogId) else None
        self._events.append(RequestReceived(request, new.id, source, dialog_id))

    def _absorb_or_ack(
        self, request: Request, key: str, txn: ServerTransaction | None, source: Address,
        now: float,
    ) -> None:
        if txn is not None:
            found, _ = self.layer.receive_request(request, txn.dest, now, key)
            if found is not None:
                return
        if request.method == "ACK":
            try:
                self._recv_ack_2xx(request, source, now)
            except SipParseError as err:
                self.stats["stray_acks"] += 1
                logger.debug("dropped malformed ACK: %s", err.detail)

    def _check_request(self, request: Request, txn: ServerTransaction) -> Rejection | None:
        """Steps 4–7 of the module docstring; returns (status, reason, extra headers)."""
        method = request.method
        if self._via_loop(request):
            return 482, "Loop Detected", []
        if request.max_forwards == 0 and method != "OPTIONS":
            return 483, "Too Many Hops", []
        bad = check_method(method, self.allowed_methods())
        if bad is not None:
            return bad
        to_tag = request.to_tag
        if to_tag is not None:
            bad = self.dialog_layer.check_in_dialog(request, txn, to_tag)
            if bad is not None:
                return bad
        elif method != "CANCEL":
            mkey = (request.from_tag or "", request.call_id, request.cseq.seq, method)
            other = self._merged.get(mkey)
            if other is not None and other != txn.id:
                return 482, "Loop Detected - merged request", []
            self._merged[mkey] = txn.id
            txn.tu = mkey
        bad = check_require(request, self._supported)
        if bad is not None or not request.body or method in self.config.relayed_body_methods:
            return bad
        cfg = self.config
        return check_content(request, self._accept, self._accept_encoding,
                             ", ".join(cfg.accept), ", ".join(cfg.accept_encoding))

    def _via_loop(self, request: Request) -> bool:
        """§16.3 item 4 applied to a UA: a request carrying, below its top, a Via with our
        sent-by and the branch of one of our live client transactions, and still the
        Request-URI we sent, has come back to us unchanged: a loop. With a new
        Request-URI (retargeted by a proxy) it is a spiral, which is legitimate."""
        vias = request.vias  # parsed (and cached) by the transaction key already
        if len(vias) == 1:
            return False  # one hop: its only Via is the sender's
        for via in vias[1:]:
            branch = via.branch
            if (not branch or via.host.lower() != self._host_lower
                    or (via.port or 5060) != self.config.port):
                continue
            ours = self.layer.client.get(client_key(branch, request.method))
            if ours is not None and ours.request is not None and ours.request.uri == request.uri:
                return True
        return False

    def _reject(self, txn: ServerTransaction, request: Request, status: int, reason: str,
                extra: list[tuple[str, str]], *, now: float) -> None:
        tag = None if request.to_tag else self.ids.tag()
        response = make_response(request, status, reason, to_tag=tag, extra=extra)
        self._decorate(response)
        self.send_response(response, txn.id, now)  # the full path: dialog bookkeeping too

    # -- special methods (return True when fully handled) --------------------------------
    def _recv_cancel(self, request: Request, txn: ServerTransaction, source: Address,
                     now: float) -> bool:
        """§9.2: a CANCEL matching a pending INVITE gets 200 and the INVITE gets 487."""
        invite_key = txn.id[: txn.id.rindex("|")] + "|INVITE"
        invite = self.layer.server.get(invite_key)
        if not isinstance(invite, ServerInviteTransaction):
            self._reject(txn, request, 481, "Call/Transaction Does Not Exist", [], now=now)
            return True
        tag = self.dialog_layer.invite_tag(invite.id) or self.ids.tag()
        ok = make_response(request, 200, to_tag=tag)
        self._decorate(ok)
        self.layer.send_response(txn, ok, now)
        if invite.state is TransactionState.PROCEEDING and invite.request is not None:
            terminated = make_response(invite.request, 487, to_tag=tag)
            self._decorate(terminated)
            self.send_response(terminated, invite.id, now)
            self._events.append(CancelReceived(request, invite.id, source))
        return True

    def _recv_options(self, request: Request, txn: ServerTransaction, source: Address,
                      now: float) -> bool:
        """§11.2: answer OPTIONS with our capabilities unless the application wants them."""
        if not self.config.answer_options:
            return False
        cfg = self.config
        extra = options_headers(self.allowed_methods(), cfg.accept, cfg.accept_encoding,
                                cfg.supported)
        tag = None if request.to_tag else self.ids.tag()
        response = make_response(request, 200, to_tag=tag, extra=extra)
        self._decorate(response)
        self.layer.send_response(txn, response, now)
        return True

    def _recv_ack_2xx(self, request: Request, source: Address, now: float) -> None:
        """An ACK no transaction matched belongs to a dialog (§17.1.1.3, §13.3.1.4)."""
        if not self.dialog_layer.recv_ack(request, source):
            self.stats["stray_acks"] += 1

    # ====================================================================================
    # Receiving responses
    # ====================================================================================
    def _receive_response(self, response: Response, now: float) -> None:
        try:
            validate_response(response)
        except SipParseError as err:
            self.stats["bad_responses"] += 1
            logger.debug("dropped malformed response: %s", err.detail)
            return
        if self.layer.receive_response(response, now) is None:
            self._stray_response(response)

    def _stray_response(self, response: Response) -> None:
        """No client transaction matched (§17.1.3): drop it, unless it is a 2xx to an
        INVITE whose dialog still wants the same ACK again (§13.2.2.4)."""
        self.stats["stray_responses"] += 1
        if response.cseq.method == "INVITE" and 200 <= response.status < 300:
            self.dialog_layer.stray_2xx(response)

    # -- TransactionUser callbacks ------------------------------------------------------
    def on_response(self, txn: Transaction, response: Response, now: float) -> None:
        request = txn.request
        if request is None:
            return
        # The response is reported before any DialogTerminated it causes.
        mark = len(self._events)
        if txn.method == "INVITE":
            self._cancel_if_pending(txn, response.status, now)
            absorbed, did = self.dialog_layer.uac_invite_response(txn, request, response)
            if absorbed:
                return
        else:
            did = self.dialog_layer.uac_non_invite_response(request, response)
        event = ResponseReceived(response, txn.id, did)
        if len(self._events) == mark:
            self._events.append(event)
        else:
            self._events.insert(mark, event)

    def _cancel_if_pending(self, txn: Transaction, status: int, now: float) -> None:
        """§9.1: a CANCEL requested before any provisional response goes out with the
        first one; a final response makes it moot."""
        if txn.id not in self._pending_cancel:
            return
        self._pending_cancel.discard(txn.id)
        if status < 200:
            self._send_cancel(txn, now)

    def on_server_ack(self, txn: Transaction, ack: Request, now: float) -> None:
        """An ACK reusing the INVITE's branch reached the Accepted state: a 2xx ACK."""
        self._recv_ack_2xx(ack, txn.dest, now)

    def on_failure(self, txn: Transaction, effect: Effect, now: float) -> None:
        request = txn.request
        if not txn.SERVER and request is not None:
            self.dialog_layer.uac_failure(txn, request, effect)
        if effect is Effect.TIMEOUT:
            self._events.append(TransactionTimedOut(txn.id, txn.method, txn.SERVER))
        else:
            self._events.append(TransportError(txn.id, txn.method, txn.SERVER))

    def on_terminated(self, txn: Transaction, now: float) -> None:
        if txn.SERVER:
            mkey = txn.tu
            if isinstance(mkey, tuple) and self._merged.get(mkey) == txn.id:
                del self._merged[mkey]
            self.dialog_layer.server_terminated(txn)
            return
        self._pending_cancel.discard(txn.id)
        self.dialog_layer.client_terminated(txn)

    # ====================================================================================
    # Application API: responses
    # ====================================================================================
    def send_response(self, response: Response, transaction_id: str, now: float) -> None:
        """Answer a request reported by :class:`RequestReceived`.

        Raises:
            LocalSipError: unknown transaction, or it already sent a final response.
        """
        txn = self.layer.server.get(transaction_id)
        if txn is None:
            raise LocalSipError(f"no server transaction {transaction_id!r}")
        request = txn.request
        if (txn.method == "INVITE" and 100 < response.status < 300
                and "Contact" not in response.headers):
            response.headers.add("Contact", self.contact())  # §12.1.1: needed for a dialog
        self.layer.send_response(txn, response, now)
        if request is not None:
            self.dialog_layer.uas_response(txn, request, response, now)

    # ====================================================================================
    # Application API: requests
    # ====================================================================================
    def via(self, branch: str | None = None) -> str:
        """A Via value for a request we originate (§8.1.1.7), with rport (RFC 3581)."""
        b = branch or self.ids.branch()
        host, port = self.config.host, self.config.port
        return f"SIP/2.0/{self._transport_upper} {host}:{port};rport;branch={b}"

    def contact(self, user: str | None = None) -> str:
        """Our Contact value."""
        at = f"{user}@" if user else ""
        t = "" if self.config.transport.lower() == "udp" else f";transport={self.config.transport}"
        return f"<sip:{at}{self.config.host}:{self.config.port}{t}>"

    def create_request(
        self,
        method: str,
        request_uri: str,
        *,
        from_: str,
        to: str,
        call_id: str | None = None,
        cseq: int = 1,
        contact: str | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> Request:
        """An out-of-dialog request per §8.1.1: fresh branch, From tag and Call-ID."""
        if ";tag=" not in from_.replace(" ", "").lower():
            from_ = f"{from_};tag={self.ids.tag()}"
        items = [
            ["Via", self.via()],
            ["Max-Forwards", "70"],
            ["From", from_],
            ["To", to],
            ["Call-ID", call_id or self.ids.call_id(self.config.host)],
            ["CSeq", f"{cseq} {method}"],
        ]
        if contact is not None or method in ("INVITE", "REGISTER", "SUBSCRIBE", "REFER"):
            items.append(["Contact", contact or self.contact()])
        if self.config.user_agent:
            items.append(["User-Agent", self.config.user_agent])
        if body and content_type:
            items.append(["Content-Type", content_type])
        headers = Headers._from_canonical(items)
        for name, value in extra or ():
            headers.add(name, value)
        return Request(method, request_uri, headers, body)

    def send_request(self, request: Request, destination: Address, now: float) -> str:
        """Start a client transaction for ``request`` towards ``destination``; returns its id.

        Raises:
            LocalSipError: ACK (use :meth:`send_ack`), or a reused branch.
        """
        return self.layer.send_request(request, destination, now).id

    def send_in_dialog(
        self,
        dialog_id: DialogId,
        method: str,
        now: float,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> str:
        """Build (§12.2.1.1) and send a request inside a dialog; returns the transaction id."""
        dialog = self.dialog_layer.get(dialog_id)
        request = dialog.create_request(method, self.via(), body=body,
                                        content_type=content_type, extra=extra)
        return self.send_request(request, self.dialog_layer.next_hop(request), now)

    def send_ack(self, dialog_id: DialogId, invite_seq: int, now: float, *, body: bytes = b"",
                 content_type: str | None = None) -> None:
        """ACK a 2xx manually (``auto_ack=False``), e.g. to carry the SDP answer."""
        self.dialog_layer.send_ack(self.dialog_layer.get(dialog_id), invite_seq, body,
                                   content_type)

    def cancel(self, transaction_id: str, now: float) -> str | None:
        """§9.1: cancel our pending INVITE. Sent at once if a provisional response arrived,
        else as soon as one does. Returns the CANCEL's transaction id, or None when the
        INVITE already completed (nothing to cancel)."""
        txn = self.layer.client.get(transaction_id)
        if txn is None or txn.method != "INVITE" or txn.request is None:
            return None
        key = client_key(txn.request.top_via.branch or "", "CANCEL")
        if txn.state is TransactionState.PROCEEDING:
            self._send_cancel(txn, now)
        elif txn.state is TransactionState.CALLING:
            self._pending_cancel.add(txn.id)
        else:
            return None
        return key

    def transport_error(self, transaction_id: str, now: float, *, server: bool = False) -> None:
        """The shell reports that a message of this transaction could not be sent."""
        table = self.layer.server if server else self.layer.client
        txn = table.get(transaction_id)
        if txn is not None:
            self.layer._now = now
            txn.transport_error(now)

    def allowed_methods(self) -> set[str]:
        """``allow`` plus what the core itself always handles: ACK and CANCEL (every UA
        must, §9.2, §17), and OPTIONS when ``answer_options`` is set (§11.2)."""
        extra = _ALWAYS_WITH_OPTIONS if self.config.answer_options else _ALWAYS
        return self.allow | extra

    def dialog(self, dialog_id: DialogId) -> Dialog | None:
        return self.dialogs.get(dialog_id)

    # ====================================================================================
    # Internals
    # ====================================================================================
    def _send_cancel(self, txn: Transaction, now: float) -> None:
        assert txn.request is not None
        self.layer.send_request(build_cancel(txn.request), txn.dest, now)
        if isinstance(txn, ClientInviteTransaction):
            txn.cancel_sent(now)

    def _decorate(self, response: Response) -> None:
        if self.config.user_agent:
            response.headers.add("Server", self.config.user_agent)

    def _answer_stateless(self, request: Request, source: Address, err: SipParseError) -> None:
        """A request too broken for a transaction: answer it (to its source) with the
        error's status and reason when the fields a response copies are present."""
        self.stats["dropped"] += 1
        if request.method == "ACK":
            return
        if not all(n in request.headers for n in ("Via", "From", "To", "Call-ID", "CSeq")):
            return
        response = make_response(request, err.status_code, err.reason, to_tag=self.ids.tag(),
                                 extra=[("Warning", warning(err.detail))])
        self.layer.outbox.append((response.serialize(), source))

    def _answer_unparsable(self, data: bytes, source: Address, err: SipParseError) -> None:
        answer = answer_unparsable(data, err)
        if answer is None:
            self.stats["dropped"] += 1
        else:
            self.layer.outbox.append((answer, source))
