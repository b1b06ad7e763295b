"""The transaction layer: tables of live transactions and one timer heap (RFC 3261 §17).

Rules:

1. Lookup is one dict probe on the string keys of :mod:`signaling.transaction`
   (§17.1.3 client ``branch|method``, §17.2.3 server ``branch|sent-by|method``). A registrar
   answering 2,000 REGISTER/s over UDP keeps 64,000 server transactions alive for Timer J
   (32 s): nothing here walks the tables.
2. One heap of ``(deadline, seq, timed object)`` serves every timer of every transaction and
   anything else the core schedules (2xx retransmission, §13.3.1.4). Deleting or moving a
   timer does not touch the heap: a stale entry is recognised when popped because the
   object's current ``deadline`` differs (lazy deletion), and the heap is rebuilt when
   stale entries outnumber live ones.
3. The layer does no I/O: datagrams accumulate in :attr:`outbox`, and what a transaction
   passes up goes to the :class:`TransactionUser` (the UA core), with ``now``.
"""

from __future__ import annotations

import heapq
import logging
from itertools import count
from typing import Protocol

from .errors import LocalSipError
from .events import Address
from .message import Request, Response
from .server_transaction import ServerInviteTransaction, ServerNonInviteTransaction
from .timers import TimerConfig
from .transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Effect,
    Transaction,
    TransactionState,
    TransactionStateError,
    client_key,
    server_key,
)

__all__ = ["ClientTransaction", "ServerTransaction", "Timed", "TransactionLayer",
           "TransactionUser"]

logger = logging.getLogger(__name__)

ClientTransaction = ClientInviteTransaction | ClientNonInviteTransaction
ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction


class Timed(Protocol):
    """Anything the heap can hold: a current deadline and a callback to fire it."""

    deadline: float | None

    def handle_timer(self, now: float) -> None: ...


class TransactionUser(Protocol):
    """The TU side of the layer (RFC 3261 §17: "the transaction user")."""

    def on_response(self, txn: Transaction, response: Response, now: float) -> None:
        """A client transaction passed a response up."""

    def on_server_ack(self, txn: Transaction, ack: Request, now: float) -> None:
        """An ACK matched an INVITE server transaction in the Accepted state."""

    def on_failure(self, txn: Transaction, effect: Effect, now: float) -> None:
        """Effect.TIMEOUT (Timer B/F/H) or Effect.TRANSPORT_ERR."""

    def on_terminated(self, txn: Transaction, now: float) -> None:
        """The transaction left its table."""


class TransactionLayer:
    """Owns the client and server transaction tables and the shared timer heap.

    Args:
        config: base timers (T1, T2, T4) and the 100 Trying delay.
        user: receives responses, failures and terminations (the UA core).
    """

    def __init__(self, config: TimerConfig, user: TransactionUser) -> None:
        self.config = config
        self._user = user
        self.client: dict[str, ClientTransaction] = {}
        self.server: dict[str, ServerTransaction] = {}
        self.outbox: list[tuple[bytes, Address]] = []
        self._heap: list[tuple[float, int, Timed]] = []
        self._seq = count()
        self._now = 0.0
        self.stats = {"retransmissions_absorbed": 0, "stray_responses": 0, "state_errors": 0}

    # -- TransactionSink (called by the transactions) ------------------------------------
    def send_datagram(self, data: bytes, dest: Address) -> None:
        self.outbox.append((data, dest))

    def schedule(self, obj: Timed) -> None:
        """Push ``obj.deadline`` on the heap; older entries for ``obj`` become stale."""
        d = obj.deadline
        if d is not None:
            heapq.heappush(self._heap, (d, next(self._seq), obj))
            if len(self._heap) > 1024 and len(self._heap) > 4 * self.live_count():
                self._compact()

    def transaction_message(self, txn: Transaction, message: Request | Response) -> None:
        if isinstance(message, Response):
            self._user.on_response(txn, message, self._now)
        else:
            self._user.on_server_ack(txn, message, self._now)

    def transaction_failed(self, txn: Transaction, effect: Effect) -> None:
        self._user.on_failure(txn, effect, self._now)

    def transaction_terminated(self, txn: Transaction) -> None:
        table: dict[str, ClientTransaction] | dict[str, ServerTransaction]
        table = self.server if txn.SERVER else self.client
        if table.get(txn.id) is txn:
            del table[txn.id]
        self._user.on_terminated(txn, self._now)

    # -- client side -------------------------------------------------------------------
    def send_request(self, request: Request, dest: Address, now: float) -> ClientTransaction:
        """Create a client transaction for ``request`` and send it (§17.1).

        Raises:
            LocalSipError: ACK (never a transaction of its own, §17.1.1.3), a top Via
                without an RFC 3261 branch, or a branch already in use for this method.
        """
        self._now = now
        if request.method == "ACK":
            raise LocalSipError("ACK is sent without a client transaction (§17.1.1.3)")
        branch = request.top_via.branch
        if not branch or not branch.startswith("z9hG4bK"):
            raise LocalSipError("client requests need a z9hG4bK branch (§8.1.1.7)")
        key = client_key(branch, request.method)
        if key in self.client:
            raise LocalSipError(f"branch already in use: {key}")
        cls = ClientInviteTransaction if request.method == "INVITE" else ClientNonInviteTransaction
        txn = cls(key, request, dest, self)
        self.client[key] = txn
        txn.start(now)
        return txn

    def receive_response(self, response: Response, now: float) -> ClientTransaction | None:
        """Route a response to its client transaction (§17.1.3); None when none matches
        (the core then treats it as stray, e.g. a 2xx retransmission after Timer M)."""
        self._now = now
        branch = response.top_via.branch
        if branch is None:
            self.stats["stray_responses"] += 1
            return None
        txn = self.client.get(client_key(branch, response.cseq.method))
        if txn is None:
            self.stats["stray_responses"] += 1
            return None
        try:
            txn.receive_response(response, now)
        except TransactionStateError:
            self.stats["state_errors"] += 1
            logger.debug("dropped %s for %r", response, txn)
        return txn

    # -- server side -------------------------------------------------------------------
    def receive_request(
        self, request: Request, dest: Address, now: float, key: str | None = None
    ) -> tuple[ServerTransaction | None, bool]:
        """Route a request (§17.2.3).

        Returns ``(txn, True)`` for a new transaction the TU must answer; ``(txn, False)``
        when an existing transaction absorbed it (a retransmission, or the ACK of a
        non-2xx); ``(None, False)`` for an ACK no transaction matched: an ACK for a 2xx,
        which belongs to the dialog layer (§17.1.1.3, §13.3.1.4).

        ``dest`` is where responses go (§18.2.2, computed by the core); ``key`` may be
        given when the caller already computed :func:`server_key` before editing the Via.
        """
        self._now = now
        if key is None:
            key = server_key(request)
        txn = self.server.get(key)
        if txn is not None:
            if request.method == "ACK" and not isinstance(txn, ServerInviteTransaction):
                return None, False
            self.stats["retransmissions_absorbed"] += request.method != "ACK"
            try:
                txn.receive_request(request, now)
            except TransactionStateError:
                self.stats["state_errors"] += 1
                logger.debug("dropped %s for %r", request.method, txn)
            return txn, False
        if request.method == "ACK":
            return None, False
        return self.create_server(key, request, dest, now), True

    def create_server(
        self, key: str, request: Request, dest: Address, now: float
    ) -> ServerTransaction:
        """Create a server transaction without looking it up first."""
        self._now = now
        if request.method == "INVITE":
            inv = ServerInviteTransaction(key, request, dest, self)
            self.server[key] = inv
            inv.start(now)
            return inv
        txn = ServerNonInviteTransaction(key, request, dest, self)
        self.server[key] = txn
        return txn

    def send_response(self, txn: ServerTransaction, response: Response, now: float) -> None:
        """Send the TU's response through its server transaction.

        Raises:
            TransactionStateError: the transaction already sent a final response (or,
                for INVITE, a non-2xx final) and cannot send this one.
        """
        self._now = now
        txn.send_response(response, now)

    # -- timers -----------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """The earliest deadline of any live transaction or scheduled object."""
        heap = self._heap
        while heap:
            d, _, obj = heap[0]
            if obj.deadline == d:
                return d
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now`` (each object fires all of its due timers)."""
        self._now = now
        heap = self._heap
        while heap and heap[0][0] <= now:
            d, _, obj = heapq.heappop(heap)
            if obj.deadline != d:
                continue  # stale: the object was re-armed or stopped since
            obj.handle_timer(now)
            self._now = now

    def _compact(self) -> None:
        live = [e for e in self._heap if e[2].deadline == e[0]]
        heapq.heapify(live)
        self._heap = live

    # -- introspection ------------------------------------------------------------------
    def live_count(self) -> int:
        """Number of transactions in the tables (what a benchmark reports)."""
        return len(self.client) + len(self.server)

    def heap_size(self) -> int:
        return len(self._heap)

    def get_client(self, txn_id: str) -> ClientTransaction | None:
        return self.client.get(txn_id)

    def get_server(self, txn_id: str) -> ServerTransaction | None:
        return self.server.get(txn_id)

    def is_live(self, txn: Transaction) -> bool:
        return txn.state is not TransactionState.TERMINATED
