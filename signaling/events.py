"""What the sans-IO SIP core reports upward, and the address type it exchanges with the shell.

Past-tense names for things that happened (h11 ``_events.py``, aioquic ``quic/events.py``).
All are frozen dataclasses with ``__slots__``: the core creates one per received request,
so they must be cheap, and the application must not be able to edit them behind the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .dialog import DialogId
    from .message import Request, Response

__all__ = [
    "AckReceived",
    "AckTimedOut",
    "Address",
    "CancelReceived",
    "DialogTerminated",
    "Event",
    "RequestReceived",
    "ResponseReceived",
    "TransactionTimedOut",
    "TransportError",
]


@dataclass(frozen=True, slots=True)
class Address:
    """Where a datagram came from or goes to.

    ``connection_id`` names a stream connection owned by the shell (TCP/TLS): a response
    goes back over the connection the request came in on (RFC 3261 §18.2.2); ``None`` for
    UDP or when the shell may open a new connection.
    """

    transport: str
    host: str
    port: int
    connection_id: int | None = None

    @property
    def reliable(self) -> bool:
        """True when the transport retransmits by itself (TCP, TLS, SCTP, WS)."""
        return self.transport.lower() not in ("udp", "dtls")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport.lower()}:{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request the application must answer with ``core.send_response``.

    Retransmissions never produce a second event (the server transaction absorbs them).
    ``dialog_id`` is set for requests that matched an existing dialog (§12.2.2).
    """

    request: Request
    transaction_id: str
    source: Address
    dialog_id: DialogId | None = None


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response passed up by a client transaction (§17.1.1.2, §17.1.2.2).

    For an INVITE, 2xx retransmissions absorbed by the core (which re-sends the ACK) do
    not produce further events; each distinct dialog (fork) gives one event.
    """

    response: Response
    transaction_id: str
    dialog_id: DialogId | None = None


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK for a 2xx (its own transaction, §17.1.1.3) matched to a dialog; it stops
    the 2xx retransmissions of §13.3.1.4. ``request`` may carry the answer SDP."""

    request: Request
    dialog_id: DialogId
    source: Address


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A CANCEL matched a pending INVITE server transaction (§9.2).

    The core has already answered the CANCEL with 200 and the INVITE with 487;
    ``transaction_id`` is the INVITE's server transaction.
    """

    request: Request
    transaction_id: str
    source: Address


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """Timer B or F fired on a client transaction (the TU treats it as a 408, §8.1.3.1),
    or Timer H on a server INVITE transaction (the ACK for a non-2xx never came)."""

    transaction_id: str
    method: str
    server: bool = False


@dataclass(frozen=True, slots=True)
class TransportError:
    """The shell reported that a message of this transaction could not be sent (§17.1.4)."""

    transaction_id: str
    method: str
    server: bool = False


@dataclass(frozen=True, slots=True)
class AckTimedOut:
    """§13.3.1.4: our 2xx to an INVITE was retransmitted for 64*T1 without an ACK. The
    dialog stays confirmed but the session SHOULD be ended with a BYE by the application."""

    dialog_id: DialogId


@dataclass(frozen=True, slots=True)
class DialogTerminated:
    """A dialog ended: BYE sent or received, a 481/408 to an in-dialog request (§12.2.1.2),
    or an early dialog whose INVITE failed. ``reason`` is a short machine-readable word."""

    dialog_id: DialogId
    reason: str


Event = (
    RequestReceived
    | ResponseReceived
    | AckReceived
    | CancelReceived
    | TransactionTimedOut
    | TransportError
    | AckTimedOut
    | DialogTerminated
)
