"""SIP MESSAGE (RFC 3428) between registered users, relayed by the switch.

Issue 4 point 8. The switch relays as a B2BUA, not as a proxy: each MESSAGE it accepts
from a user becomes a new request per registered contact of the recipient (its own
Call-ID, From ``sip:<sender>@<domain>``, To ``sip:<recipient>@<domain>``), sent on its own
client transaction, and the recipient's answer goes back to the sender as the final
response of the sender's transaction. Like the INVITEs of ``switch.drivers.sip``, the
sender's identity is the authenticated digest user, never what the From header claims.

Rules:

* Rule 1 -- authentication: a MESSAGE outside a dialog needs digest credentials of a local
  user (``Authorization``, or ``Proxy-Authorization`` from clients that answer 407); without
  valid ones the answer is 401 with a challenge (RFC 3261 §22.2), or 403 while the source is
  locked out. The digest ``uri`` must be the Request-URI (RFC 2617 §3.2.2.5).
* Rule 2 -- the recipient is the Request-URI user: an unknown user gets 404, a known user
  with no registered contact 480, as a proxy answers an empty target set (RFC 3261
  §16.5); the switch does not store messages for later.
* Rule 3 -- size: RFC 3428 §8 limits a MESSAGE outside a media session to 1300 bytes
  unless the transport is congestion controlled; a request that arrives over UDP above
  that, or whose relayed copy to a UDP contact would be above it, gets 513 Message Too
  Large.
* Rule 4 -- the body and its Content-Type (and Content-Encoding, Content-Language) are
  passed on untouched, text or not (RFC 3428 lets a MESSAGE carry any MIME type).
* Rule 5 -- forking and the answer: every contact gets a copy (RFC 3261 §16.7 parallel
  search); the first 2xx is sent back with its own status (200 or 202, both final answers
  for RFC 3428); when every copy failed the sender gets the best failure (a 6xx first,
  else the lowest status class, RFC 3261 §16.7 step 6), a timeout counting as 480; a
  recipient that has not answered after ``timeout_s`` gives 480 too, well before the
  sender's own Timer F (32 s).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from signaling.core import SipCore
from signaling.errors import LocalSipError, SipParseError
from signaling.events import (
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportError,
)
from signaling.message import Request, make_response
from signaling.transport import uri_address
from signaling.uri import SipUri

logger = logging.getLogger(__name__)

__all__ = ["MAX_UDP_MESSAGE_BYTES", "MessageRelay", "best_failure"]

MAX_UDP_MESSAGE_BYTES = 1300
"""RFC 3428 §8: the most a MESSAGE may weigh on a transport without congestion control."""
_PASSED_HEADERS = ("Content-Encoding", "Content-Language", "Expires", "Date")


def best_failure(statuses: list[int]) -> int:
    """Rule 5 (RFC 3261 §16.7 step 6): a 6xx wins, else the lowest class, first seen;
    408 (no answer) is reported as 480."""
    if not statuses:
        return 480
    mapped = [480 if s == 408 else s for s in statuses]
    six = [s for s in mapped if s >= 600]
    if six:
        return six[0]
    low = min(s // 100 for s in mapped)
    return next(s for s in mapped if s // 100 == low)


@dataclass(slots=True)
class _Relay:
    """One MESSAGE from a user, waiting for its copies' answers."""

    request: Request
    server_txn: str
    sender: str
    recipient: str
    pending: set[str] = field(default_factory=set)
    failures: list[int] = field(default_factory=list)
    answered: bool = False
    timer: asyncio.TimerHandle | None = None


class MessageRelay:
    """Relays MESSAGE requests (see the module docstring for the rules).

    Args:
        core: the node's SIP core.
        flush: sends what the core produced.
        now: the core's monotonic clock.
        auth: the node's digest authenticator (shared nonces and lockout).
        lookup_user: username -> credentials (the registration service's cache).
        lookup: number -> registered contacts (``SipChannelDriver.lookup``).
        domain: our SIP domain (From/To of relayed requests).
        wall: wall clock for nonces.
        timeout_s: Rule 5's answer deadline.
    """

    def __init__(self, core: SipCore, flush: Callable[[], None], now: Callable[[], float],
                 auth: Any, lookup_user: Callable[[str], Any], lookup: Callable[[str], list[Any]],
                 domain: str, wall: Callable[[], float], *, timeout_s: float = 16.0) -> None:
        self.core = core
        self._flush = flush
        self._now = now
        self.auth = auth
        self.lookup_user = lookup_user
        self.lookup = lookup
        self.domain = domain
        self.wall = wall
        self.timeout_s = timeout_s
        self._by_txn: dict[str, _Relay] = {}
        self.stats = {"received": 0, "challenged": 0, "relayed": 0, "delivered": 0,
                      "failed": 0, "too_large": 0}

    # ------------------------------------------------------------------ in
    def handle_request(self, event: RequestReceived) -> bool:
        """Take an out-of-dialog MESSAGE; False for anything else."""
        request = event.request
        if request.method != "MESSAGE" or event.dialog_id is not None:
            return False
        self.stats["received"] += 1
        sender = self._authenticate(event)
        if sender is None:
            return True
        if event.source.transport == "udp" and len(bytes(request)) > MAX_UDP_MESSAGE_BYTES:
            self._too_large(event, "request")
            return True
        try:
            recipient = request.uri_parsed.user or ""
        except SipParseError:
            recipient = ""
        contacts = self.lookup(recipient) if recipient else []
        if not contacts:
            status = 480 if recipient and self.lookup_user(recipient) is not None else 404
            self._answer(request, event.transaction_id, status)
            self.stats["failed"] += 1
            return True
        copies = []
        for binding in contacts:
            try:
                uri = SipUri.parse(binding.contact)
            except SipParseError as exc:
                logger.warning("MESSAGE to %s: bad contact %r: %s", recipient,
                               binding.contact, exc)
                continue
            copy = self._copy(request, sender, recipient, str(uri))
            dest = uri_address(uri)
            if dest.transport == "udp" and len(bytes(copy)) > MAX_UDP_MESSAGE_BYTES:
                self._too_large(event, f"copy to {binding.contact}")
                return True
            copies.append((copy, dest))
        if not copies:
            self._answer(request, event.transaction_id, 480)
            return True
        relay = _Relay(request, event.transaction_id, sender, recipient)
        for copy, dest in copies:
            txn = self.core.send_request(copy, dest, self._now())
            relay.pending.add(txn)
            self._by_txn[txn] = relay
        self._flush()
        relay.timer = asyncio.get_running_loop().call_later(self.timeout_s, self._expire,
                                                            relay)
        self.stats["relayed"] += 1
        logger.info("MESSAGE %s -> %s relayed to %d contact(s)", sender, recipient,
                    len(copies))
        return True

    def _authenticate(self, event: RequestReceived) -> str | None:
        """Rule 1: the digest user, or None after answering 401/403."""
        request = event.request
        wall = self.wall()
        source_ip = event.source.host
        result = None
        for header in ("Authorization", "Proxy-Authorization"):
            authz = request.headers.get(header)
            if authz is None:
                continue
            result = self.auth.verify("MESSAGE", authz, self.lookup_user, wall, source_ip,
                                      request.body, request_uri=request.uri)
            if result.ok and result.username:
                return str(result.username)
            if not result.stale:
                logger.info("MESSAGE from %s refused: %s", event.source, result.reason)
            break
        status, headers = self.auth.rejection(result, wall, source_ip, proxy=False)
        self.stats["challenged"] += 1
        self._answer(request, event.transaction_id, status, extra=headers)
        return None

    def _copy(self, request: Request, sender: str, recipient: str, target: str) -> Request:
        """Rule 4: a new MESSAGE with the same body and content headers."""
        try:
            display = (request.from_.display or "").replace('"', "")
        except SipParseError:
            display = ""
        name = f'"{display}" ' if display else ""
        extra = [(h, v) for h in _PASSED_HEADERS if (v := request.headers.get(h)) is not None]
        return self.core.create_request(
            "MESSAGE", target, from_=f"{name}<sip:{sender}@{self.domain}>",
            to=f"<sip:{recipient}@{self.domain}>", body=request.body,
            content_type=request.headers.get("Content-Type") or "text/plain", extra=extra)

    def _too_large(self, event: RequestReceived, what: str) -> None:
        self.stats["too_large"] += 1
        logger.info("MESSAGE from %s: %s over %d bytes on UDP; 513", event.source, what,
                    MAX_UDP_MESSAGE_BYTES)
        self._answer(event.request, event.transaction_id, 513)

    def _answer(self, request: Request, txn: str, status: int,
                extra: list[tuple[str, str]] | None = None) -> None:
        response = make_response(request, status, to_tag=self.core.ids.tag(),
                                 extra=extra or [])
        try:
            self.core.send_response(response, txn, self._now())
        except LocalSipError as exc:
            logger.info("MESSAGE: could not send %d: %s", status, exc)
            return
        self._flush()

    # ------------------------------------------------------------------ answers
    def handle_event(self, event: object) -> bool:
        """Take the responses and failures of our relayed copies; False for others."""
        if not isinstance(event, (ResponseReceived, TransactionTimedOut, TransportError)):
            return False
        relay = self._by_txn.get(event.transaction_id)
        if relay is None:
            return False
        if isinstance(event, ResponseReceived):
            status = event.response.status
            if status < 200:
                return True
        else:
            status = 408 if isinstance(event, TransactionTimedOut) else 503
        del self._by_txn[event.transaction_id]
        relay.pending.discard(event.transaction_id)
        if relay.answered:
            return True
        if status < 300:
            self._finish(relay, status)
        else:
            relay.failures.append(status)
            if not relay.pending:
                self._finish(relay, best_failure(relay.failures))
        return True

    def _expire(self, relay: _Relay) -> None:
        if not relay.answered:
            logger.info("MESSAGE %s -> %s: no answer in %.0f s", relay.sender,
                        relay.recipient, self.timeout_s)
            self._finish(relay, 480)

    def _finish(self, relay: _Relay, status: int) -> None:
        relay.answered = True
        if relay.timer is not None:
            relay.timer.cancel()
        # The other copies stay in _by_txn until their own final answer or timeout, which
        # handle_event then swallows.
        self.stats["delivered" if status < 300 else "failed"] += 1
        logger.info("MESSAGE %s -> %s: %d", relay.sender, relay.recipient, status)
        self._answer(relay.request, relay.server_txn, status)
