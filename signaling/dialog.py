"""SIP dialogs (RFC 3261 §12, §13.2.2.4, §14; RFC 3311 UPDATE; RFC 6141 target refresh).

A dialog is the state two UAs share between an INVITE's 2xx (or a 1xx with a To tag: an
early dialog) and the BYE: its id (Call-ID + both tags), both CSeq spaces, the remote
target and the route set. This module builds in-dialog requests from that state
(§12.2.1.1, including strict-routing peers) and checks incoming ones (§12.2.2: CSeq order,
target refresh, glare). It knows nothing of transactions or sockets; :mod:`signaling.core`
wires it to them.

Rules:

1. Route sets are lists of header values (``<sip:p1.example.com;lr>``) exactly as they
   appeared in Record-Route: the UAS keeps the request's order, the UAC reverses the
   response's order (§12.1.1, §12.1.2).
2. The remote target only changes with a target refresh (INVITE, UPDATE): when a 2xx is
   sent or received for it (RFC 6141 §3), and from the dialog-creating 1xx/2xx.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .errors import LocalSipError
from .headers import NameAddr
from .message import Headers, Request, Response
from .uri import SipUri

if TYPE_CHECKING:
    from .events import Address
    from .timers import TimerConfig

__all__ = [
    "TARGET_REFRESH_METHODS",
    "Dialog",
    "DialogId",
    "DialogState",
    "Uas2xxRetransmitter",
    "next_hop_uri",
]

logger = logging.getLogger(__name__)

#: Methods whose Contact replaces the remote target (§12.2, RFC 3311 §5.1, RFC 6665).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


@dataclass(frozen=True, slots=True)
class DialogId:
    """§12: Call-ID, local tag and remote tag identify a dialog at each end."""

    call_id: str
    local_tag: str
    remote_tag: str

    def __str__(self) -> str:
        return f"{self.call_id};local={self.local_tag};remote={self.remote_tag}"


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def _uri_of(value: str) -> str:
    """The URI inside a name-addr or addr-spec header value, as text."""
    na = NameAddr.parse(value)
    return str(na.uri)


def _first_contact_uri(message: Request | Response) -> str | None:
    values = message.headers.get_all("Contact")
    if not values:
        return None
    return _uri_of(values[0])


class Dialog:
    """The state of one dialog at one end (§12.1: "the dialog state").

    Attributes:
        id: the :class:`DialogId`.
        local_party / remote_party: From/To header values (with tags) for our requests.
        remote_target: URI requests are sent to (the peer's Contact).
        route_set: Record-Route derived route set, in the order requests carry it.
        local_seq / remote_seq: CSeq spaces; ``None`` until first used (§12.1.1).
        secure: True when the dialog was created over sips/TLS (§12.1.1).
    """

    __slots__ = (
        "ack_cseq",
        "ack_dest",
        "ack_in_cseq",
        "ack_wire",
        "id",
        "invite_in_pending",
        "invite_out_pending",
        "local_contact",
        "local_party",
        "local_seq",
        "remote_party",
        "remote_seq",
        "remote_target",
        "role",
        "route_set",
        "secure",
        "state",
        "uas_2xx",
        "update_out_pending",
    )

    def __init__(
        self,
        dialog_id: DialogId,
        *,
        role: str,
        local_party: str,
        remote_party: str,
        remote_target: str,
        route_set: list[str],
        local_seq: int | None,
        remote_seq: int | None,
        local_contact: str | None = None,
        secure: bool = False,
        state: DialogState = DialogState.EARLY,
    ) -> None:
        self.id = dialog_id
        self.role = role
        self.local_party = local_party
        self.remote_party = remote_party
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.local_contact = local_contact
        self.secure = secure
        self.state = state
        self.invite_out_pending: int | None = None
        self.invite_in_pending: int | None = None
        self.update_out_pending: int | None = None
        self.ack_cseq: int | None = None
        """CSeq of the last ACK we sent (UAC side; §13.2.2.4)."""
        self.ack_in_cseq: int | None = None
        """CSeq of the last ACK we received (UAS side): the peer's CSeq space, kept apart
        from ours (§12.2.1.1), or our own re-INVITE's 200 would look like a retransmission."""
        self.ack_wire: bytes = b""
        self.ack_dest: Address | None = None
        self.uas_2xx: object = None

    def __repr__(self) -> str:
        return f"<Dialog {self.id} {self.state.value} {self.role}>"

    # -- creation ---------------------------------------------------------------------
    @classmethod
    def from_uac(
        cls, request: Request, response: Response, *, local_contact: str | None = None
    ) -> Dialog:
        """§12.1.2: the UAC's view after a 1xx (with To tag) or 2xx to ``request``."""
        to_tag = response.to_tag
        from_tag = request.from_tag
        if not to_tag or not from_tag:
            raise LocalSipError("a dialog needs both tags (§12.1.2)")
        route_set = list(reversed(response.headers.get_all("Record-Route")))
        target = _first_contact_uri(response) or request.uri
        dialog = cls(
            DialogId(request.call_id, from_tag, to_tag),
            role="uac",
            local_party=request.headers.get("From") or "",
            remote_party=response.headers.get("To") or "",
            remote_target=target,
            route_set=route_set,
            local_seq=request.cseq.seq,
            remote_seq=None,
            local_contact=local_contact or _header_or_none(request, "Contact"),
            secure=request.uri.lower().startswith("sips:"),
            state=DialogState.CONFIRMED if 200 <= response.status < 300 else DialogState.EARLY,
        )
        return dialog

    @classmethod
    def from_uas(cls, request: Request, response: Response) -> Dialog:
        """§12.1.1: the UAS's view when it sends a 1xx (with To tag) or 2xx."""
        to_tag = response.to_tag
        from_tag = request.from_tag
        if not to_tag:
            raise LocalSipError("a dialog-creating response needs a To tag (§12.1.1)")
        return cls(
            DialogId(request.call_id, to_tag, from_tag or ""),
            role="uas",
            local_party=response.headers.get("To") or "",
            remote_party=request.headers.get("From") or "",
            remote_target=_first_contact_uri(request) or "",
            route_set=list(request.headers.get_all("Record-Route")),
            local_seq=None,
            remote_seq=request.cseq.seq,
            local_contact=_header_or_none(response, "Contact"),
            secure=request.uri.lower().startswith("sips:"),
            state=DialogState.CONFIRMED if 200 <= response.status < 300 else DialogState.EARLY,
        )

    # -- updates from responses (UAC) --------------------------------------------------
    def update_from_response(self, request: Request, response: Response) -> None:
        """Apply a 1xx/2xx received for one of our requests in this dialog.

        §12.1.2/§13.2.2.4: while the dialog is early, each 1xx/2xx of the initial INVITE
        refreshes the remote target, and the 2xx recomputes the route set and confirms.
        RFC 6141: a 2xx to a target refresh replaces the remote target.
        """
        status = response.status
        if self.state is DialogState.EARLY and request.method == "INVITE":
            self.route_set = list(reversed(response.headers.get_all("Record-Route")))
            target = _first_contact_uri(response)
            if target:
                self.remote_target = target
            if 200 <= status < 300:
                self.state = DialogState.CONFIRMED
                self.remote_party = response.headers.get("To") or self.remote_party
            return
        if 200 <= status < 300 and request.method in TARGET_REFRESH_METHODS:
            target = _first_contact_uri(response)
            if target:
                self.remote_target = target

    def confirm_uas(self, response: Response) -> None:
        """Our 2xx to the initial INVITE confirms the early dialog."""
        if self.state is DialogState.EARLY and 200 <= response.status < 300:
            self.state = DialogState.CONFIRMED

    def refresh_target_from_request(self, request: Request) -> None:
        """RFC 6141 §3.2: the UAS applies a target refresh's Contact when it sends a 2xx."""
        if request.method in TARGET_REFRESH_METHODS:
            target = _first_contact_uri(request)
            if target:
                self.remote_target = target

    # -- incoming requests (UAS side of an existing dialog) -----------------------------
    def check_request(self, request: Request) -> tuple[int, str] | None:
        """§12.2.2 and §14.2 checks for a request inside this dialog.

        Returns ``(status, reason)`` to reject with, or None after updating the remote
        CSeq. ACK and CANCEL are not subject to CSeq ordering (they reuse the INVITE's).
        """
        method = request.method
        if method in ("ACK", "CANCEL"):
            return None
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return 500, "Server Internal Error - CSeq out of order"
        if method == "INVITE":
            if self.invite_out_pending is not None:
                return 491, "Request Pending"  # §14.2 glare
            if self.invite_in_pending is not None:
                return 500, "Server Internal Error - previous INVITE pending"
        elif method == "UPDATE" and self.update_out_pending is not None:
            return 491, "Request Pending"  # RFC 3311 §5.2
        self.remote_seq = seq
        if method == "INVITE":
            self.invite_in_pending = seq
        return None

    # -- outgoing requests (§12.2.1.1) ------------------------------------------------
    def next_cseq(self) -> int:
        """Increment the local sequence number (§12.2.1.1); start at 1 when empty."""
        self.local_seq = 1 if self.local_seq is None else self.local_seq + 1
        return self.local_seq

    def _request_uri_and_routes(self) -> tuple[str, list[str]]:
        """§12.2.1.1: loose routing keeps the target in the Request-URI; a strict router
        (first route without ``lr``) takes the Request-URI and the target goes last."""
        if not self.route_set:
            return self.remote_target, []
        first = NameAddr.parse(self.route_set[0])
        if first.uri is not None and first.uri.has_param("lr"):
            return self.remote_target, list(self.route_set)
        assert first.uri is not None
        ruri = _strip_for_request_uri(first.uri)
        return ruri, [*self.route_set[1:], f"<{self.remote_target}>"]

    def create_request(
        self,
        method: str,
        via: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        cseq: int | None = None,
    ) -> Request:
        """Build an in-dialog request (BYE, re-INVITE, UPDATE, INFO, REFER, ...).

        Args:
            method: the method; ACK must use :meth:`create_ack`.
            via: the complete Via value (sent-by and a fresh branch) from the core.
            cseq: override the sequence number (tests); otherwise :meth:`next_cseq`.
        """
        if method == "ACK":
            raise LocalSipError("use create_ack for ACK (§13.2.2.4)")
        if method == "CANCEL":
            raise LocalSipError("CANCEL is built from the request it cancels (§9.1)")
        seq = cseq if cseq is not None else self.next_cseq()
        request = self._build(method, seq, via, body, content_type, extra)
        if method == "INVITE":
            self.invite_out_pending = seq
        elif method == "UPDATE":
            self.update_out_pending = seq
        return request

    def create_ack(self, invite_seq: int, via: str, *, body: bytes = b"",
                   content_type: str | None = None) -> Request:
        """§13.2.2.4: the ACK for a 2xx: same CSeq number as the INVITE, method ACK,
        built like any in-dialog request (route set, remote target), new branch."""
        return self._build("ACK", invite_seq, via, body, content_type, None)

    def _build(
        self,
        method: str,
        seq: int,
        via: str,
        body: bytes,
        content_type: str | None,
        extra: list[tuple[str, str]] | None,
    ) -> Request:
        ruri, routes = self._request_uri_and_routes()
        items: list[list[str]] = [["Via", via], ["Max-Forwards", "70"]]
        items.extend(["Route", r] for r in routes)
        items.append(["From", self.local_party])
        items.append(["To", self.remote_party])
        items.append(["Call-ID", self.id.call_id])
        items.append(["CSeq", f"{seq} {method}"])
        if self.local_contact and method in TARGET_REFRESH_METHODS:
            items.append(["Contact", self.local_contact])
        if body and content_type:
            items.append(["Content-Type", content_type])
        headers = Headers._from_canonical(items)
        if extra:
            for name, value in extra:
                headers.add(name, value)
        return Request(method, ruri, headers, body)

    def request_finished(self, method: str, seq: int) -> None:
        """A request we sent (INVITE/UPDATE) got its final response: glare window over."""
        if method == "INVITE" and self.invite_out_pending == seq:
            self.invite_out_pending = None
        elif method == "UPDATE" and self.update_out_pending == seq:
            self.update_out_pending = None

    def incoming_invite_finished(self, seq: int) -> None:
        """We sent the final response to a re-INVITE (§14.2)."""
        if self.invite_in_pending == seq:
            self.invite_in_pending = None

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED


def _header_or_none(message: Request | Response, name: str) -> str | None:
    values = message.headers.get_all(name)
    return values[0] if values else None


def _strip_for_request_uri(uri: SipUri) -> str:
    """§19.1.1 Table 1: method, ttl, maddr-less forms... a Request-URI may not carry the
    ``method`` parameter nor URI headers; everything else is kept."""
    params = tuple(p for p in uri.params if p[0].lower() != "method")
    return str(uri.replace(params=params, headers=()))


def next_hop_uri(request: Request) -> SipUri:
    """§8.1.2: the first Route's URI if there is a route set, else the Request-URI."""
    routes = request.headers.get_all("Route")
    if routes:
        na = NameAddr.parse(routes[0])
        if na.uri is None:
            raise LocalSipError("wildcard Route")
        return na.uri
    return request.uri_parsed


class RetransmitOwner(Protocol):
    """What :class:`Uas2xxRetransmitter` needs from the core."""

    def send_datagram(self, data: bytes, dest: Address) -> None: ...

    def schedule(self, obj: Uas2xxRetransmitter) -> None: ...

    def ack_timed_out(self, dialog: Dialog) -> None: ...


class Uas2xxRetransmitter:
    """§13.3.1.4: the UAS core re-sends its 2xx to an INVITE until the ACK arrives.

    The 2xx is passed to the transport at T1, then at intervals doubling up to T2
    (Timer G's schedule), for at most 64*T1 (Timer H's span); then the owner is told so
    the session can be ended with a BYE. This happens over reliable transports too:
    2xx retransmission is end to end and a later hop may be UDP (§13.3.1.4). It lives in
    the core's timer heap like a transaction (``deadline`` + ``handle_timer``);
    :meth:`stop` is lazy deletion.
    """

    __slots__ = ("_give_up_at", "_interval", "_owner", "_t2_cap", "_wire", "deadline", "dest",
                 "dialog", "seq")

    def __init__(
        self,
        owner: RetransmitOwner,
        dialog: Dialog,
        seq: int,
        wire: bytes,
        dest: Address,
        config: TimerConfig,
        now: float,
    ) -> None:
        self._owner = owner
        self.dialog = dialog
        self.seq = seq
        self._wire = wire
        self.dest = dest
        self._give_up_at = now + config.timer_h()
        self._interval = config.timer_g()
        self._t2_cap = config.t2
        self.deadline: float | None = now + self._interval
        owner.schedule(self)

    def handle_timer(self, now: float) -> None:
        if self.deadline is None or now < self.deadline:
            return
        if now >= self._give_up_at:
            self.deadline = None
            self._owner.ack_timed_out(self.dialog)
            return
        self._owner.send_datagram(self._wire, self.dest)
        self._interval = min(self._interval * 2, self._t2_cap)
        self.deadline = min(now + self._interval, self._give_up_at)
        self._owner.schedule(self)

    def stop(self) -> None:
        """The ACK arrived (or the dialog ended): the heap entry becomes stale."""
        self.deadline = None

    @property
    def active(self) -> bool:
        return self.deadline is not None
