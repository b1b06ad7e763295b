"""OPTIONS keep-alive for registered contacts, with reachability hysteresis.

Why: a phone behind NAT is only reachable while its NAT binding lives (often 30-60 s for
UDP). Pinging it with OPTIONS from the registrar's address keeps the pinhole open (the
RFC 5626 §3.5 idea, done the way most switches do it without outbound support) and tells
us whether the phone is still there, so call routing can skip dead contacts.

Rules of this module:

* Rule 1 -- pure: :class:`KeepAliveTracker` decides *when* to ping and what the answers
  mean; the shell sends the requests (built with :func:`build_options`) through the
  transaction layer and reports responses and failures back. Time is ``now``.
* Rule 2 -- hysteresis: a contact becomes UNREACHABLE after ``down_after`` consecutive
  failures and REACHABLE after ``up_after`` consecutive answers; a new contact is UNKNOWN.
  Any response, even 4xx/5xx, proves the phone is there (many phones answer OPTIONS 405).
* Rule 3 -- pings are spread over the interval (a stable per-contact offset), so 10,000
  phones registered in the same second do not get 10,000 OPTIONS in the same second.
"""

from __future__ import annotations

import enum
import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import SipParseError
from .events import Address
from .headers import NameAddr
from .ids import IdGenerator
from .location import Binding
from .message import Headers, Request
from .uri import SipUri

__all__ = [
    "KeepAlivePing",
    "KeepAliveTracker",
    "Reachability",
    "ReachabilityChanged",
    "build_options",
]

logger = logging.getLogger(__name__)


class Reachability(enum.Enum):
    UNKNOWN = "unknown"
    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class KeepAlivePing:
    """One OPTIONS to send: to ``target`` with Request-URI ``request_uri``."""

    aor: str
    contact: str
    request_uri: str
    target: Address


@dataclass(frozen=True, slots=True)
class ReachabilityChanged:
    aor: str
    contact: str
    state: Reachability


@dataclass(slots=True)
class _Target:
    ping: KeepAlivePing
    next_at: float
    state: Reachability = Reachability.UNKNOWN
    outstanding_since: float | None = None
    failures: int = 0
    successes: int = 0


class KeepAliveTracker:
    """Schedules pings per contact and keeps each contact's reachability state."""

    def __init__(
        self,
        interval_s: float = 30.0,
        timeout_s: float = 8.0,
        down_after: int = 2,
        up_after: int = 1,
        udp_only: bool = True,
        nat_only: bool = True,
    ) -> None:
        if interval_s <= 0 or timeout_s <= 0 or timeout_s >= interval_s:
            raise ValueError("need 0 < timeout_s < interval_s")
        if down_after < 1 or up_after < 1:
            raise ValueError("down_after and up_after must be >= 1")
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.down_after = down_after
        self.up_after = up_after
        self.udp_only = udp_only
        self.nat_only = nat_only
        self._targets: dict[tuple[str, str], _Target] = {}
        self._by_aor: dict[str, set[str]] = {}  # aor -> contacts, so update() is O(own)

    def _offset(self, key: tuple[str, str]) -> float:
        spread_ms = int(self.interval_s * 1000)
        return (zlib.crc32(f"{key[0]}|{key[1]}".encode()) % spread_ms) / 1000.0

    def update(self, aor: str, bindings: Iterable[Binding], now: float) -> None:
        """Make the tracked contacts of ``aor`` match ``bindings`` (after a REGISTER, an
        expiry or a restart: feed it the registrar's ``pop_dirty`` or ``lookup``)."""
        wanted: dict[tuple[str, str], KeepAlivePing] = {}
        for b in bindings:
            if self.udp_only and b.transport.lower() != "udp":
                continue
            if not b.source_host or not b.source_port:
                continue
            if self.nat_only and not _behind_nat(b):
                continue
            ping = KeepAlivePing(aor, b.contact, b.registered_contact or b.contact,
                                 Address(b.transport.lower(), b.source_host, b.source_port))
            wanted[(aor, b.contact)] = ping
        known = self._by_aor.get(aor, set())
        for contact in [c for c in known if (aor, c) not in wanted]:
            del self._targets[(aor, contact)]
        if wanted:
            self._by_aor[aor] = {key[1] for key in wanted}
        else:
            self._by_aor.pop(aor, None)
        for key, ping in wanted.items():
            t = self._targets.get(key)
            if t is None:
                self._targets[key] = _Target(ping, now + self._offset(key))
            elif t.ping != ping:
                t.ping = ping

    def poll(self, now: float) -> tuple[list[KeepAlivePing], list[ReachabilityChanged]]:
        """Pings due now, and state changes caused by unanswered pings timing out."""
        pings: list[KeepAlivePing] = []
        changes: list[ReachabilityChanged] = []
        for t in self._targets.values():
            if t.outstanding_since is not None and now - t.outstanding_since >= self.timeout_s:
                t.outstanding_since = None
                change = self._record(t, ok=False)
                if change:
                    changes.append(change)
            if t.outstanding_since is None and now >= t.next_at:
                t.outstanding_since = now
                t.next_at = now + self.interval_s
                pings.append(t.ping)
        return pings, changes

    def on_response(self, aor: str, contact: str, now: float) -> ReachabilityChanged | None:
        """Any response to our OPTIONS (even late, even an error status) proves life."""
        t = self._targets.get((aor, contact))
        if t is None:
            return None
        t.outstanding_since = None
        return self._record(t, ok=True)

    def on_failure(self, aor: str, contact: str, now: float) -> ReachabilityChanged | None:
        """The transaction failed (timeout or transport error) before our own timeout."""
        t = self._targets.get((aor, contact))
        if t is None or t.outstanding_since is None:
            return None
        t.outstanding_since = None
        return self._record(t, ok=False)

    def _record(self, t: _Target, ok: bool) -> ReachabilityChanged | None:
        if ok:
            t.successes += 1
            t.failures = 0
            new = Reachability.REACHABLE if t.successes >= self.up_after else t.state
        else:
            t.failures += 1
            t.successes = 0
            new = Reachability.UNREACHABLE if t.failures >= self.down_after else t.state
        if new is t.state:
            return None
        t.state = new
        if new is Reachability.UNREACHABLE:
            logger.info("keep-alive: %s (%s) unreachable", t.ping.contact, t.ping.aor)
        return ReachabilityChanged(t.ping.aor, t.ping.contact, new)

    def state(self, aor: str, contact: str) -> Reachability:
        t = self._targets.get((aor, contact))
        return t.state if t is not None else Reachability.UNKNOWN

    def is_unreachable(self, binding: Binding) -> bool:
        """For ``Registrar.lookup(skip=...)``: skip contacts known to be dead."""
        return self.state(binding.aor, binding.contact) is Reachability.UNREACHABLE

    def next_deadline(self) -> float | None:
        """When :meth:`poll` next has something to do."""
        best: float | None = None
        for t in self._targets.values():
            at = (t.outstanding_since + self.timeout_s if t.outstanding_since is not None
                  else t.next_at)
            if best is None or at < best:
                best = at
        return best

    def __len__(self) -> int:
        return len(self._targets)


def _behind_nat(b: Binding) -> bool:
    """True when the phone's own Contact differs from where its REGISTER came from.

    Only such contacts need pings (the NAT binding would close); pinging every UDP phone
    would cost each dead one eleven retransmissions per interval for nothing (the approach
    of Kamailio's nathelper, which pings NATed contacts only).
    """
    try:
        uri = SipUri.parse(b.registered_contact or b.contact)
    except SipParseError:
        return True
    host = uri.host.strip("[]").lower()
    port = uri.port or 5060
    return host != b.source_host.strip("[]").lower() or port != b.source_port


def build_options(
    ping: KeepAlivePing,
    *,
    local: Address,
    from_uri: str,
    ids: IdGenerator,
    user_agent: str = "softswitch",
) -> Request:
    """An OPTIONS request for ``ping`` (RFC 3261 §11.1), with ``rport`` (RFC 3581) so the
    answer comes back through the same NAT binding."""
    host = f"[{local.host}]" if ":" in local.host else local.host
    to = str(NameAddr(None, SipUri.parse(ping.aor)))
    headers = Headers([
        ("Via", f"SIP/2.0/{local.transport.upper()} {host}:{local.port}"
                f";branch={ids.branch()};rport"),
        ("Max-Forwards", "70"),
        ("To", to),
        ("From", f"<{from_uri}>;tag={ids.tag()}"),
        ("Call-ID", ids.call_id()),
        ("CSeq", "1 OPTIONS"),
        ("User-Agent", user_agent),
        ("Accept", "application/sdp"),
    ])
    return Request("OPTIONS", ping.request_uri, headers)
