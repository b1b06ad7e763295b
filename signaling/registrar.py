"""The registrar (RFC 3261 §10.3) and the in-memory location table it owns.

Rules of this module:

* Rule 1 -- pure and authoritative: :class:`Registrar` holds every binding in memory; the
  async shell persists write-behind with :meth:`Registrar.pop_dirty` (every ~200 ms, one
  ``LocationStore.replace_bindings`` call per batch) and restores with
  :meth:`Registrar.load` at start. A REGISTER never waits for the database.
* Rule 2 -- all or nothing: every Contact of a REGISTER is checked (expiry, Call-ID/CSeq
  order, limits) before any binding changes (§10.3 step 7: "the update MUST be aborted and
  the request fails").
* Rule 3 -- time is the wall clock passed in (``now_wall``, epoch seconds): expiry instants
  are stored as wall time so bindings survive a restart.

Choices the RFCs leave open (documented):

* Out-of-order refresh: same Call-ID with a CSeq lower than or equal to the stored one is
  answered **500 Server Internal Error** (§10.3 step 7 says only that the request fails;
  500 is what §12.2.2 uses for an out-of-order CSeq).
* NAT (RFC 3581, no RFC 5626 outbound): with ``nat_mode="udp"`` (default) a binding
  registered over UDP routes to the observed source address and port instead of the
  Contact's host:port, because nearly every phone behind NAT puts its private address in
  the Contact; ``"always"`` does this for every transport (with ``;transport=`` set to it),
  ``"never"`` keeps the Contact. ``Binding.registered_contact`` keeps what the phone sent,
  and that is what the 200 OK lists, so the phone recognises its own binding.
* A user may register the AOR whose user part is his authentication username (default
  ``authorize``); anything else gets 403.
* Too many contacts for one AOR (``max_contacts``): 403, nothing changed.
"""

from __future__ import annotations

import email.utils
import heapq
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace

from .errors import SipParseError
from .events import Address
from .headers import NameAddr
from .location import Binding
from .message import REASON_PHRASES, Request, Response, make_response
from .uri import SipUri

__all__ = ["RegisterOutcome", "Registrar", "default_authorize"]

logger = logging.getLogger(__name__)

_MAX_EXPIRES_PARSE = 2**32 - 1


def default_authorize(authenticated_user: str | None, aor: SipUri) -> bool:
    """§10.3 step 4 policy: a user may register ``sip:<his username>@<our domain>`` only."""
    return authenticated_user is not None and aor.unescaped_user() == authenticated_user


@dataclass(frozen=True, slots=True)
class RegisterOutcome:
    """The registrar's answer to one REGISTER: the status, the headers to add to the
    response (Contact list with expires, Min-Expires on 423, Date), and the AORs whose
    bindings changed (for the persister and for anyone watching registrations)."""

    response_status: int
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    changed_aors: frozenset[str] = frozenset()
    reason: str = ""
    aor: str | None = None

    def to_response(self, request: Request, to_tag: str | None = None) -> Response:
        """Build the response (§8.2.6.2 copying rules via :func:`make_response`)."""
        phrase = self.reason or REASON_PHRASES.get(self.response_status, "")
        return make_response(request, self.response_status, phrase, to_tag=to_tag,
                             extra=self.extra_headers)


class _Reject(Exception):
    """Internal: abort a REGISTER with a status (never leaves this module)."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or []


@dataclass(slots=True)
class _Slot:
    """One stored binding plus its parsed registered Contact URI (for §19.1.4 compare)."""

    binding: Binding
    uri: SipUri


class Registrar:
    """Add, refresh, remove and query bindings (RFC 3261 §10.3); expire them on time."""

    def __init__(
        self,
        domains: Collection[str] = (),
        *,
        min_expires_s: int = 60,
        max_expires_s: int = 3600,
        default_expires_s: int = 3600,
        max_contacts: int = 10,
        nat_mode: str = "udp",
        authorize: Callable[[str | None, SipUri], bool] = default_authorize,
    ) -> None:
        """``domains``: hosts we are the registrar for (empty: any, e.g. a lab box that
        phones reach by IP). ``authorize(user, aor)`` is the §10.3 step 4 policy."""
        if not 0 < min_expires_s <= default_expires_s <= max_expires_s:
            raise ValueError("need 0 < min_expires_s <= default_expires_s <= max_expires_s")
        if nat_mode not in ("udp", "always", "never"):
            raise ValueError(f"bad nat_mode {nat_mode!r}")
        if isinstance(domains, str):
            domains = (domains,)
        self.domains = frozenset(d.lower() for d in domains)
        self.min_expires_s = min_expires_s
        self.max_expires_s = max_expires_s
        self.default_expires_s = default_expires_s
        self.max_contacts = max_contacts
        self.nat_mode = nat_mode
        self.authorize = authorize
        self._table: dict[str, list[_Slot]] = {}
        self._dirty: set[str] = set()
        self._expiry_heap: list[tuple[float, str]] = []

    # -- REGISTER ---------------------------------------------------------------------
    def handle_register(
        self,
        request: Request,
        source: Address | tuple[str, str, int],
        authenticated_user: str | None,
        now_wall: float,
    ) -> RegisterOutcome:
        """Process one (already authenticated) REGISTER per §10.3 steps 1-8."""
        if not isinstance(source, Address):
            source = Address(*source)
        try:
            aor_uri = self._check_target(request, authenticated_user)
            aor = aor_uri.canonical_aor()
            contacts = request.contacts
            changed = self._apply(request, aor, contacts, source, now_wall)
        except _Reject as rej:
            return RegisterOutcome(rej.status, rej.headers, reason=rej.reason)
        except SipParseError as exc:
            return RegisterOutcome(exc.status_code, reason=exc.reason)
        if changed:
            self._dirty.add(aor)
        headers = [("Contact", c) for c in self._contact_values(aor, now_wall)]
        headers.append(("Date", email.utils.formatdate(now_wall, usegmt=True)))
        return RegisterOutcome(200, headers, frozenset({aor}) if changed else frozenset(),
                               "OK", aor)

    def _check_target(self, request: Request, user: str | None) -> SipUri:
        """§10.3 steps 3-5: the AOR is in one of our domains and the user may register it.

        The Request-URI is not compared with ``domains``: phones put the registrar's host
        name or address there (RFC 3665 §2.1 uses ``sips:ss2.biloxi.example.com``), and
        step 1's forwarding to another domain is a proxy's job, not ours.
        """
        request.uri_parsed  # noqa: B018 -- a malformed Request-URI is a 400 here
        to_uri = request.to.uri
        if to_uri is None or to_uri.scheme not in ("sip", "sips"):
            raise _Reject(404, "Not Found")
        if self.domains and to_uri.host.lower() not in self.domains:
            raise _Reject(404, "Not Found")
        if not self.authorize(user, to_uri):
            logger.info("registrar: %r may not register %s", user, to_uri.canonical_aor())
            raise _Reject(403, "Forbidden")
        return to_uri

    def _header_expires(self, request: Request) -> int | None:
        value = request.headers.get("Expires")
        if value is None:
            return None
        value = value.strip()
        if not value.isascii() or not value.isdigit():
            raise _Reject(400, "Bad Expires")
        return min(int(value[:12]), _MAX_EXPIRES_PARSE)

    def _apply(
        self, request: Request, aor: str, contacts: list[NameAddr], source: Address,
        now_wall: float,
    ) -> bool:
        """§10.3 steps 6-7; returns True if the table changed."""
        if not contacts:
            return False  # a query: §10.3 step 8 answers with the current bindings
        header_expires = self._header_expires(request)
        call_id = request.call_id
        cseq = request.cseq.seq
        slots = self._live(aor, now_wall)
        if any(c.is_wildcard for c in contacts):
            if len(contacts) != 1 or header_expires != 0:
                raise _Reject(400, "Invalid Wildcard")
            for slot in slots:
                self._check_order(slot.binding, call_id, cseq)
            return self._store(aor, [])
        new_slots = list(slots)
        added: list[_Slot] = []
        for contact in contacts:
            uri = contact.uri
            if uri is None:
                raise _Reject(400, "Bad Contact")
            expires = contact.expires
            if expires is None:
                expires = header_expires if header_expires is not None else (
                    self.default_expires_s)
            if 0 < expires < self.min_expires_s:
                raise _Reject(423, "Interval Too Brief",
                              [("Min-Expires", str(self.min_expires_s))])
            expires = min(expires, self.max_expires_s)
            existing = next((s for s in new_slots if s.uri.equivalent(uri)), None)
            if existing is not None:
                if existing not in added:  # a repeat inside this request is no reorder
                    self._check_order(existing.binding, call_id, cseq)
                new_slots.remove(existing)
            if expires == 0:
                continue
            binding = self._make_binding(request, aor, contact, uri, expires, source, now_wall)
            new_slots.append(_Slot(binding, uri))
            added.append(new_slots[-1])
        if len(new_slots) > self.max_contacts:
            raise _Reject(403, "Too Many Contacts")
        return self._store(aor, new_slots)

    @staticmethod
    def _check_order(binding: Binding, call_id: str, cseq: int) -> None:
        if binding.call_id == call_id and cseq <= binding.cseq:
            raise _Reject(500, "Out Of Order CSeq")

    def _make_binding(
        self, request: Request, aor: str, contact: NameAddr, uri: SipUri, expires: int,
        source: Address, now_wall: float,
    ) -> Binding:
        q = contact.q
        transport = source.transport.lower()
        rewrite = uri.scheme in ("sip", "sips") and (
            self.nat_mode == "always" or (self.nat_mode == "udp" and transport == "udp"))
        route_uri = uri
        if rewrite:
            host = f"[{source.host}]" if ":" in source.host and not source.host.startswith(
                "[") else source.host
            route_uri = uri.replace(host=host, port=source.port).with_params(
                maddr=False, transport=False if transport == "udp" else transport
            )
        params = tuple((k, v or "") for k, v in contact.params
                       if k.lower() not in ("expires", "q"))
        instance = contact.param("+sip.instance") or ""
        reg_id = contact.param("reg-id") or "0"
        return Binding(
            aor=aor, contact=str(route_uri), expires_at=now_wall + expires,
            q=1.0 if q is None else q, call_id=request.call_id, cseq=request.cseq.seq,
            transport=transport, source_host=source.host, source_port=source.port,
            registered_contact=str(uri),
            user_agent=(request.headers.get("User-Agent") or "")[:256],
            instance_id=instance.strip('"'), reg_id=int(reg_id) if reg_id.isdigit() else 0,
            params=params,
        )

    def _store(self, aor: str, slots: list[_Slot]) -> bool:
        before = [s.binding for s in self._table.get(aor, [])]
        if slots:
            self._table[aor] = slots
            for s in slots:
                heapq.heappush(self._expiry_heap, (s.binding.expires_at, aor))
        else:
            self._table.pop(aor, None)
        return before != [s.binding for s in slots]

    def _contact_values(self, aor: str, now_wall: float) -> list[str]:
        """§10.3 step 8: every current binding with its remaining ``expires``."""
        out = []
        for b in self.lookup(aor, now_wall):
            left = max(0, int(b.expires_at - now_wall + 0.5))
            q = f";q={b.q:.3f}".rstrip("0").rstrip(".") if b.q != 1.0 else ""
            out.append(f"<{b.registered_contact or b.contact}>;expires={left}{q}")
        return out

    # -- location service --------------------------------------------------------------
    def _live(self, aor: str, now_wall: float) -> list[_Slot]:
        slots = self._table.get(aor)
        if not slots:
            return []
        live = [s for s in slots if s.binding.expires_at > now_wall]
        if len(live) != len(slots):
            self._store(aor, live)
            self._dirty.add(aor)
        return live

    def lookup(
        self, aor: str, now_wall: float, skip: Callable[[Binding], bool] | None = None
    ) -> list[Binding]:
        """Current bindings of ``aor``, highest q first.

        ``aor`` is the canonical form of §10.3 step 5, ``SipUri.canonical_aor()`` of the
        Request-URI or To URI (parameters dropped, user unescaped, host lower-cased).

        Expired bindings are purged on the way. ``skip`` (e.g. "the keep-alive says this
        contact is unreachable") filters bindings out, unless it would filter out all of
        them: trying an unreachable phone is better than failing the call outright.
        """
        live = [s.binding for s in self._live(aor, now_wall)]
        live.sort(key=lambda b: -b.q)  # stable: equal q keep registration order
        if skip is not None:
            kept = [b for b in live if not skip(b)]
            if kept:
                return kept
        return live

    def aors(self) -> list[str]:
        return list(self._table)

    def __len__(self) -> int:
        """Number of bindings held (expired ones included until purged)."""
        return sum(len(v) for v in self._table.values())

    def expire(self, now_wall: float) -> set[str]:
        """Remove bindings whose time is up; returns the AORs that changed."""
        changed: set[str] = set()
        heap = self._expiry_heap
        while heap and heap[0][0] <= now_wall:
            _, aor = heapq.heappop(heap)
            if aor in changed:
                continue
            slots = self._table.get(aor)
            if slots and any(s.binding.expires_at <= now_wall for s in slots):
                self._live(aor, now_wall)
                changed.add(aor)
        if changed:
            logger.debug("registrar: %d AORs expired bindings", len(changed))
        return changed

    def next_expiry(self) -> float | None:
        """Earliest instant a binding may expire (may be early: entries are lazy)."""
        return self._expiry_heap[0][0] if self._expiry_heap else None

    def load(self, bindings: Iterable[Binding], now_wall: float) -> int:
        """Restore stored bindings at start; expired ones are dropped (and marked dirty so
        the store forgets them too). Returns how many were loaded."""
        count = 0
        for b in bindings:
            if b.expires_at <= now_wall:
                self._dirty.add(b.aor)
                continue
            try:
                uri = SipUri.parse(b.registered_contact or b.contact, allow_other=True)
            except SipParseError:
                logger.warning("registrar: dropping stored binding of %s with a bad contact",
                               b.aor)
                self._dirty.add(b.aor)
                continue
            self._table.setdefault(b.aor, []).append(_Slot(b, uri))
            heapq.heappush(self._expiry_heap, (b.expires_at, b.aor))
            count += 1
        return count

    def pop_dirty(self) -> dict[str, list[Binding]]:
        """AOR -> its complete current binding list (empty: remove all), since last call."""
        out = {aor: [s.binding for s in self._table.get(aor, [])] for aor in self._dirty}
        self._dirty.clear()
        return out

    def remove_contact(self, aor: str, contact: str) -> bool:
        """Administrative removal of one binding by routing or registered contact."""
        slots = self._table.get(aor, [])
        kept = [s for s in slots
                if contact not in (s.binding.contact, s.binding.registered_contact)]
        if len(kept) == len(slots):
            return False
        self._store(aor, kept)
        self._dirty.add(aor)
        return True

    def refresh_source(self, aor: str, binding: Binding, **changes: object) -> None:
        """Replace fields of one stored binding (used by keep-alive NAT re-learning)."""
        for s in self._table.get(aor, []):
            if s.binding == binding:
                s.binding = replace(binding, **changes)  # type: ignore[arg-type]
                self._dirty.add(aor)
                return
