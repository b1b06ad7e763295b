"""Registration of one trunk to its carrier: a sans-IO client state machine (RFC 3261 §10.2).

The client builds REGISTER requests, reads the responses the shell hands it and stores its
timers as deadlines; the shell (:mod:`switch.trunks.service`) sends, matches transactions
and arms one timer at :meth:`RegistrationClient.next_deadline`. No clock, no sockets.

Rules of this module:

* Rule 1 -- one Call-ID and one From tag for the life of the client, CSeq +1 for every
  REGISTER, including the one answering a challenge (§10.2.4, §8.1.3.5, §22.2).
* Rule 2 -- credentials only when asked, and at most once per challenge: a 401/407 is
  answered with :class:`~signaling.auth.DigestClient`; a second non-stale challenge in
  the same registration cycle, or a challenge repeating a nonce we already answered,
  means the credentials are wrong -> FAILED (never a REGISTER storm). ``stale=true``
  (RFC 7616 §3.3) is answered silently, at most ``max_stale`` times per cycle. With a
  configured realm, a challenge for any other realm is refused (credentials would leak).
  After a success the challenge is kept and refreshes carry credentials at once (nc+1).
* Rule 3 -- the grant is what counts: the ``expires`` of our Contact in the 200, else the
  Expires header, else what we asked (§10.2.4). The refresh goes out at
  ``expires - min(refresh_margin_s, expires / 2)``. 423 raises the request to Min-Expires
  (§10.2.8) and retries at once, only if that is actually longer.
* Rule 4 -- failures back off: 403, 404, any other final error, a timeout or wrong
  credentials -> FAILED, retried after 30 s, 60 s, 120 s ... capped at 10 min, each
  stretched by up to ``retry_jitter`` (from the injected ``random.Random``) so trunks that
  failed together do not retry together; a Retry-After (§20.33) longer than that wins.
* Rule 5 -- deregistration removes only our own binding (Contact + Expires: 0, never
  ``*``, §10.2.2): other nodes registered to the same account keep theirs.

State machine (the transition table is :data:`TRANSITIONS`)::

    UNREGISTERED --start--> REGISTERING --2xx--> REGISTERED --refresh due--> (REGISTERED)
         ^                    |  ^ 401/407/423 (resend)   |  refresh fails
         |                    v  |                        v
         |                  FAILED <---------------------+
         |                    |  retry due -> REGISTERING
         +-- UNREGISTERING <--+-- stop (from REGISTERED/REGISTERING; FAILED stops at once)
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Protocol

from signaling.auth import DigestClient, parse_digest_params
from signaling.errors import SipParseError
from signaling.events import Address
from signaling.message import Request, Response
from signaling.uri import SipUri

from .config import TrunkConfig

__all__ = [
    "TRANSITIONS",
    "RegInput",
    "RegistrationClient",
    "RegistrationState",
    "RegistrationStateChanged",
    "RequestBuilder",
    "SendRegister",
    "SideEffect",
]

logger = logging.getLogger(__name__)


class RegistrationState(enum.Enum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"
    UNREGISTERING = "unregistering"


class RegInput(enum.Enum):
    START = "start"
    STOP = "stop"
    REFRESH_DUE = "refresh-due"
    RETRY_DUE = "retry-due"
    EXPIRED = "expired"
    OK = "2xx"
    CHALLENGE = "challenge"
    BAD_CREDENTIALS = "bad-credentials"
    TOO_BRIEF = "423"
    REJECTED = "rejected"
    TIMED_OUT = "timed-out"


class SideEffect(enum.Enum):
    SEND_REGISTER = "send-register"
    """A new cycle: fresh challenge counters, REGISTER with the configured Expires."""
    RESEND = "resend"
    """Same cycle: answer a challenge or a 423 (new CSeq)."""
    ARM_REFRESH = "arm-refresh"
    ARM_RETRY = "arm-retry"
    SEND_UNREGISTER = "send-unregister"
    DISARM = "disarm"


S, In, E = RegistrationState, RegInput, SideEffect
Transition = tuple[SideEffect | None, RegistrationState]
TRANSITIONS: dict[tuple[RegistrationState, RegInput], Transition] = {
    (S.UNREGISTERED, In.START): (E.SEND_REGISTER, S.REGISTERING),
    (S.UNREGISTERED, In.STOP): (None, S.UNREGISTERED),
    (S.REGISTERING, In.START): (None, S.REGISTERING),
    (S.REGISTERING, In.OK): (E.ARM_REFRESH, S.REGISTERED),
    (S.REGISTERING, In.CHALLENGE): (E.RESEND, S.REGISTERING),
    (S.REGISTERING, In.TOO_BRIEF): (E.RESEND, S.REGISTERING),
    (S.REGISTERING, In.BAD_CREDENTIALS): (E.ARM_RETRY, S.FAILED),
    (S.REGISTERING, In.REJECTED): (E.ARM_RETRY, S.FAILED),
    (S.REGISTERING, In.TIMED_OUT): (E.ARM_RETRY, S.FAILED),
    (S.REGISTERING, In.STOP): (E.SEND_UNREGISTER, S.UNREGISTERING),
    (S.REGISTERED, In.START): (None, S.REGISTERED),
    (S.REGISTERED, In.REFRESH_DUE): (E.SEND_REGISTER, S.REGISTERED),
    (S.REGISTERED, In.OK): (E.ARM_REFRESH, S.REGISTERED),
    (S.REGISTERED, In.CHALLENGE): (E.RESEND, S.REGISTERED),
    (S.REGISTERED, In.TOO_BRIEF): (E.RESEND, S.REGISTERED),
    (S.REGISTERED, In.BAD_CREDENTIALS): (E.ARM_RETRY, S.FAILED),
    (S.REGISTERED, In.REJECTED): (E.ARM_RETRY, S.FAILED),
    (S.REGISTERED, In.TIMED_OUT): (E.ARM_RETRY, S.FAILED),
    (S.REGISTERED, In.EXPIRED): (None, S.REGISTERING),
    (S.REGISTERED, In.STOP): (E.SEND_UNREGISTER, S.UNREGISTERING),
    (S.FAILED, In.START): (E.SEND_REGISTER, S.REGISTERING),
    (S.FAILED, In.RETRY_DUE): (E.SEND_REGISTER, S.REGISTERING),
    (S.FAILED, In.STOP): (E.DISARM, S.UNREGISTERED),
    (S.UNREGISTERING, In.START): (E.SEND_REGISTER, S.REGISTERING),
    (S.UNREGISTERING, In.STOP): (None, S.UNREGISTERING),
    (S.UNREGISTERING, In.CHALLENGE): (E.RESEND, S.UNREGISTERING),
    (S.UNREGISTERING, In.OK): (E.DISARM, S.UNREGISTERED),
    (S.UNREGISTERING, In.TOO_BRIEF): (E.DISARM, S.UNREGISTERED),
    (S.UNREGISTERING, In.BAD_CREDENTIALS): (E.DISARM, S.UNREGISTERED),
    (S.UNREGISTERING, In.REJECTED): (E.DISARM, S.UNREGISTERED),
    (S.UNREGISTERING, In.TIMED_OUT): (E.DISARM, S.UNREGISTERED),
}
"""(state, input) -> (side effect, next state); a missing key is a programming error."""
del S, In, E


class RequestBuilder(Protocol):
    """The shape of :meth:`signaling.core.SipCore.create_request`."""

    def __call__(
        self, method: str, request_uri: str, *, from_: str, to: str, call_id: str | None = ...,
        cseq: int = ..., contact: str | None = ..., extra: list[tuple[str, str]] | None = ...,
    ) -> Request: ...


@dataclass(frozen=True, slots=True)
class SendRegister:
    """Send ``request`` to ``destination`` (the outbound proxy, else the registrar)."""

    trunk: str
    request: Request
    destination: Address
    cseq: int


@dataclass(frozen=True, slots=True)
class RegistrationStateChanged:
    """For logs and CTI: the trunk's registration moved from ``old`` to ``new``."""

    trunk: str
    old: RegistrationState
    new: RegistrationState
    reason: str
    expires_at: float | None = None
    retry_at: float | None = None


Output = SendRegister | RegistrationStateChanged


class RegistrationClient:
    """REGISTER client for one trunk (see the module rules)."""

    def __init__(
        self,
        trunk: TrunkConfig,
        *,
        contact: str,
        builder: RequestBuilder,
        rng: Random,
        call_id: str | None = None,
        from_tag: str | None = None,
        refresh_margin_s: float = 30.0,
        retry_min_s: float = 30.0,
        retry_max_s: float = 600.0,
        retry_jitter: float = 0.25,
        max_stale: int = 3,
    ) -> None:
        self.trunk = trunk
        self.contact = contact
        self._builder = builder
        self._rng = rng
        self.call_id = call_id or f"{rng.getrandbits(96):024x}@{trunk.name}"
        self.from_tag = from_tag or f"{rng.getrandbits(48):012x}"
        self.refresh_margin_s = refresh_margin_s
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.retry_jitter = retry_jitter
        self.max_stale = max_stale
        self.state = RegistrationState.UNREGISTERED
        self.expires_s = trunk.register_expires_s
        self.failures = 0
        self.last_reason = ""
        self.expires_at: float | None = None
        self.refresh_at: float | None = None
        self.retry_at: float | None = None
        self._digest = DigestClient(lambda: f"{rng.getrandbits(64):016x}")
        self._cseq = 0
        self._pending: int | None = None
        self._pending_expires = 0
        self._challenges: dict[tuple[str, str], str] = {}
        self._cycle_realms: set[tuple[str, str]] = set()
        self._answered: set[str] = set()
        self._stale = 0
        self._retry_after: float | None = None
        self._last_ok: Response | None = None
        self._outputs: list[Output] = []
        self._effects: dict[SideEffect, Callable[[float], None]] = {
            SideEffect.SEND_REGISTER: self._send_register,
            SideEffect.RESEND: self._resend,
            SideEffect.ARM_REFRESH: self._arm_refresh,
            SideEffect.ARM_RETRY: self._arm_retry,
            SideEffect.SEND_UNREGISTER: self._send_unregister,
            SideEffect.DISARM: self._disarm,
        }

    # -- inputs -----------------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Register (again, when FAILED: an operator's "retry now")."""
        self._fire(RegInput.START, now, "started")

    def stop(self, now: float) -> None:
        """Deregister our binding (Expires: 0) if we may hold one; else just stop."""
        self._fire(RegInput.STOP, now, "stopping")

    def handle_response(self, response: Response, now: float) -> bool:
        """A response to one of our REGISTERs; False when it is not for the pending one."""
        try:
            cseq = response.cseq
            mine = (response.call_id == self.call_id and cseq.method == "REGISTER"
                    and cseq.seq == self._pending)
        except SipParseError:
            return False
        if not mine:
            return False
        if response.status < 200:
            return True
        self._pending = None
        event, reason = self._classify(response)
        if event is RegInput.OK:
            self._last_ok = response
        self._fire(event, now, reason)
        return True

    def handle_timeout(self, cseq: int, now: float, reason: str = "timeout") -> bool:
        """Timer F (or a transport error) for the REGISTER with this CSeq."""
        if cseq != self._pending:
            return False
        self._pending = None
        self._fire(RegInput.TIMED_OUT, now, reason)
        return True

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must run next; None when nothing is scheduled."""
        if self.state is RegistrationState.FAILED:
            return self.retry_at
        if self.state is RegistrationState.REGISTERED:
            return self.expires_at if self._pending is not None else self.refresh_at
        return None

    def handle_timer(self, now: float) -> None:
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return
        if self.state is RegistrationState.FAILED:
            self._fire(RegInput.RETRY_DUE, now, f"retry {self.failures}")
        elif self._pending is not None:
            self._fire(RegInput.EXPIRED, now, "binding expired while refreshing")
        else:
            self._fire(RegInput.REFRESH_DUE, now, "refresh")

    def outputs(self) -> list[Output]:
        """Everything to send and report since the last call, in order."""
        out, self._outputs = self._outputs, []
        return out

    @property
    def pending_cseq(self) -> int | None:
        return self._pending

    # -- the machine ---------------------------------------------------------------------------
    def _fire(self, event: RegInput, now: float, reason: str) -> None:
        try:
            effect, new = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise RuntimeError(f"trunk {self.trunk.name}: {event.value} in state "
                               f"{self.state.value}") from None
        old = self.state
        self.state = new
        self.last_reason = reason
        if effect is not None:
            self._effects[effect](now)
        if new is not old:
            log = logger.warning if new is RegistrationState.FAILED else logger.info
            log("trunk %s: registration %s -> %s (%s)", self.trunk.name, old.value, new.value,
                reason)
            self._outputs.append(RegistrationStateChanged(
                self.trunk.name, old, new, reason, self.expires_at,
                self.retry_at if new is RegistrationState.FAILED else None))

    def _classify(self, response: Response) -> tuple[RegInput, str]:
        status = response.status
        if 200 <= status < 300:
            if self._pending_expires and self._granted(response) <= 0:
                return RegInput.REJECTED, "registrar granted no time"
            return RegInput.OK, f"{status} {response.reason}"
        if status in (401, 407):
            return self._challenge(response)
        if status == 423:
            return self._too_brief(response)
        self._retry_after = _retry_after(response)
        return RegInput.REJECTED, f"{status} {response.reason}"

    def _challenge(self, response: Response) -> tuple[RegInput, str]:
        """Rule 2."""
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        try:
            value = DigestClient.select_challenge(response.headers.get_all(header))
            _, params = parse_digest_params(value)
        except SipParseError:
            return RegInput.REJECTED, f"{response.status} without a usable Digest challenge"
        realm, nonce = params.get("realm", ""), params.get("nonce", "")
        if self.trunk.realm and realm != self.trunk.realm:
            return RegInput.REJECTED, f"challenge for unexpected realm {realm!r}"
        key = (header, realm)
        if params.get("stale", "").lower() == "true":
            self._stale += 1
            if self._stale > self.max_stale:
                return RegInput.REJECTED, "too many stale nonces"
        elif nonce in self._answered or key in self._cycle_realms:
            return RegInput.BAD_CREDENTIALS, f"credentials refused by realm {realm!r}"
        self._cycle_realms.add(key)
        self._challenges[key] = value
        return RegInput.CHALLENGE, f"{response.status} challenge"

    def _too_brief(self, response: Response) -> tuple[RegInput, str]:
        raw = (response.headers.get("Min-Expires") or "").strip()
        if not raw.isdigit() or int(raw) <= self._pending_expires or int(raw) > 7 * 86400:
            return RegInput.REJECTED, f"423 with unusable Min-Expires {raw[:12]!r}"
        self.expires_s = int(raw)
        return RegInput.TOO_BRIEF, f"423: Expires raised to {raw}"

    def _granted(self, response: Response) -> int:
        """Rule 3."""
        try:
            contacts = response.contacts
            ours = _uri_key(self.contact)
            matching = [c for c in contacts if c.uri is not None and _key(c.uri) == ours]
            if not matching and len(contacts) == 1:
                matching = contacts
            for c in matching:
                if c.expires is not None:
                    return c.expires
        except SipParseError:
            pass  # a malformed Contact list: fall back to Expires, then to what we asked
        raw = (response.headers.get("Expires") or "").strip()
        if raw.isdigit():
            return int(raw)
        return self._pending_expires

    # -- side effects --------------------------------------------------------------------------
    def _new_cycle(self) -> None:
        self._cycle_realms.clear()
        self._answered.clear()
        self._stale = 0

    def _send_register(self, now: float) -> None:
        self._new_cycle()
        self.retry_at = None
        self._send(self.expires_s)

    def _resend(self, now: float) -> None:
        self._send(0 if self.state is RegistrationState.UNREGISTERING else self.expires_s)

    def _send_unregister(self, now: float) -> None:
        self._new_cycle()
        self.refresh_at = None
        self._send(0)

    def _arm_refresh(self, now: float) -> None:
        assert self._last_ok is not None
        granted = self._granted(self._last_ok)
        self._last_ok = None
        self.failures = 0
        self.expires_at = now + granted
        self.refresh_at = now + granted - min(self.refresh_margin_s, granted / 2)

    def _arm_retry(self, now: float) -> None:
        self.failures += 1
        self.expires_at = self.refresh_at = None
        self._challenges.clear()  # the next attempt starts without stale credentials
        delay = self.retry_min_s * 2 ** min(self.failures - 1, 16)
        delay = min(self.retry_max_s, delay * (1 + self.retry_jitter * self._rng.random()))
        if self._retry_after is not None:
            delay = max(delay, min(self._retry_after, self.retry_max_s))
            self._retry_after = None
        self.retry_at = now + delay

    def _disarm(self, now: float) -> None:
        self.expires_at = self.refresh_at = self.retry_at = None
        self._pending = None

    def _send(self, expires: int) -> None:
        trunk = self.trunk
        self._cseq += 1
        uri = trunk.registrar_uri
        extra: list[tuple[str, str]] = []
        if trunk.outbound_proxy:
            proxy = SipUri.parse(trunk.outbound_proxy.strip().strip("<>"))
            extra.append(("Route", f"<{proxy if proxy.lr else proxy.with_params(lr=True)}>"))
        for (header, _realm), challenge in self._challenges.items():
            name = "Authorization" if header == "WWW-Authenticate" else "Proxy-Authorization"
            extra.append((name, self._digest.authorize(
                challenge, "REGISTER", uri, trunk.auth_user, password=trunk.password)))
            self._answered.add(parse_digest_params(challenge)[1].get("nonce", ""))
        extra.append(("Expires", str(expires)))
        request = self._builder(
            "REGISTER", uri, from_=f"<{trunk.aor}>;tag={self.from_tag}", to=f"<{trunk.aor}>",
            call_id=self.call_id, cseq=self._cseq, contact=self.contact, extra=extra)
        _set_via_transport(request, trunk.transport)
        self._pending = self._cseq
        self._pending_expires = expires
        self._outputs.append(SendRegister(trunk.name, request, trunk.next_hop(), self._cseq))


def _key(uri: SipUri) -> tuple[str, str, int | None]:
    return ((uri.user or ""), uri.host.lower(), uri.port)


def _uri_key(contact: str) -> tuple[str, str, int | None]:
    text = contact.strip()
    if text.startswith("<"):
        text = text[1:text.index(">")]
    return _key(SipUri.parse(text))


def _retry_after(response: Response) -> float | None:
    """§20.33 Retry-After: delta-seconds, optionally followed by a comment/params."""
    raw = (response.headers.get("Retry-After") or "").split(";")[0].split("(")[0].strip()
    return float(raw) if raw.isdigit() else None


def _set_via_transport(request: Request, transport: str) -> None:
    """Our Via names the transport this trunk uses (§18.1.1), not the core's default."""
    via = request.headers.get("Via")
    want = f"SIP/2.0/{transport.upper()} "
    if via is None or via.upper().startswith(want):
        return
    _, sep, rest = via.partition(" ")
    if sep:
        request.headers.set("Via", want + rest)
