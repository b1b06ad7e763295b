"""Toll-fraud policy for trunks: who may reach a trunk, and how trunks are recognised.

Pure decisions over configuration; the router and the B2BUA call them and act on the
:class:`Decision`. The rules, in the order they are checked:

* Rule 1 -- recognition by address. A request comes *from a trunk* only when its source IP
  is inside an enabled trunk's ``allowed_sources`` (or its IP-literal host / outbound
  proxy, or the addresses its host name resolved to, see :meth:`TrunkPolicy.add_resolved`).
  Carriers do not answer digest challenges, so nothing in the request itself
  (From, P-Asserted-Identity, a DID in the Request-URI) ever makes it a trunk request.
  When several trunks match, the most specific network wins; on a tie, the trunk whose
  ``did_map`` holds the called number, else the first in the configuration.
* Rule 2 -- DIDs only from trunks. DID routing (``did_map``) applies only to requests
  recognised by Rule 1. A request from an unknown address is a *user* request: it must
  pass digest authentication like any phone, and a DID it dials is never routed out
  through a trunk on its behalf.
* Rule 3 -- who may use a trunk outbound:
  - an authenticated user (digest-verified by the registrar's authenticator), when the
    trunk's ``allowed_users`` is empty or lists them;
  - a call that came in from trunk A may leave through trunk B only when B lists A in
    ``transit_trunks`` (call forwarding to a mobile); by default trunk-to-trunk transit
    is refused, because it is how stolen minutes are resold;
  - anything else (unauthenticated, unknown source) is refused with 403.
* Rule 4 -- what may be dialed: the number is rewritten by the trunk's rules; feature
  codes and unparsable strings get 484; emergency numbers (110, 112, 119, 120, 122) are
  always allowed to authenticated users; numbers outside the trunk's country need
  ``allow_international``; E.164 prefixes in ``deny_prefixes`` are refused.
* Rule 5 -- capacity: at ``max_calls`` concurrent calls the trunk refuses more (503), so a
  compromised account cannot run up more than a bounded number of parallel calls.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from signaling.events import Address

from .config import TrunkConfig
from .numbers import NumberError, format_number, is_emergency, normalize, to_e164

__all__ = ["Decision", "InboundRoute", "Source", "TrunkPolicy"]

logger = logging.getLogger(__name__)


class Source(enum.Enum):
    """Where the request that wants a trunk came from."""

    USER = "user"
    """A phone or softphone whose request passed digest authentication."""
    TRUNK = "trunk"
    """A carrier, recognised by source address (Rule 1)."""
    UNKNOWN = "unknown"
    """Neither: never allowed to reach a trunk."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of :meth:`TrunkPolicy.may_use_trunk`."""

    allowed: bool
    reason: str
    """Short text for logs and CDRs ("ok", "not authenticated", "international" ...)."""
    status_code: int = 200
    """The SIP status to refuse with: 403, 484 or 503; 200 when allowed."""
    number: str | None = None
    """When allowed: the called number as the trunk wants it (rules, then format)."""


@dataclass(frozen=True, slots=True)
class InboundRoute:
    """A request recognised as coming from ``trunk``; ``target`` None = unknown DID."""

    trunk: TrunkConfig
    target: str | None


def _refuse(reason: str, status: int = 403) -> Decision:
    return Decision(False, reason, status)


class TrunkPolicy:
    """The rules of the module docstring over one set of configured trunks."""

    def __init__(self, trunks: Mapping[str, TrunkConfig] | Iterable[TrunkConfig]) -> None:
        items = trunks.values() if isinstance(trunks, Mapping) else trunks
        self.trunks: dict[str, TrunkConfig] = {t.name: t for t in items}
        self._nets = [
            (net, t) for t in self.trunks.values() if t.enabled for net in t.source_networks()
        ]

    def add_resolved(self, name: str, addresses: Iterable[str]) -> int:
        """Rule 1 for a trunk named by host name without ``allowed_sources``: the addresses
        its name resolved to (the async shell resolves them) are recognised as that trunk.
        Explicit ``allowed_sources`` always win. Returns how many addresses were added."""
        trunk = self.trunks.get(name)
        if trunk is None or not trunk.enabled or trunk.allowed_sources:
            return 0
        known = {net for net, t in self._nets if t is trunk}
        added = 0
        for address in addresses:
            try:
                net = ipaddress.ip_network(address.split("%")[0])
            except ValueError:
                continue
            if net not in known:
                known.add(net)
                self._nets.append((net, trunk))
                added += 1
        return added

    # -- Rule 1 / Rule 2 -------------------------------------------------------------------
    def identify_trunk(self, source: Address | str, did: str | None = None) -> TrunkConfig | None:
        """The enabled trunk ``source`` (an Address or an IP string) belongs to, or None."""
        host = source.host if isinstance(source, Address) else source
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        best = -1
        found: list[TrunkConfig] = []
        for net, trunk in self._nets:
            if ip.version != net.version or ip not in net:
                continue
            if net.prefixlen > best:
                best, found = net.prefixlen, [trunk]
            elif net.prefixlen == best and trunk not in found:
                found.append(trunk)
        if not found:
            return None
        if did is not None and len(found) > 1:
            for trunk in found:
                if trunk.route_did(did) is not None:
                    return trunk
        return found[0]

    def route_inbound(self, source: Address | str, called: str) -> InboundRoute | None:
        """Rule 2: the DID target of a request from a trunk; None when ``source`` is not a
        trunk (the request is then a user request that needs digest authentication)."""
        trunk = self.identify_trunk(source, called)
        if trunk is None:
            return None
        return InboundRoute(trunk, trunk.route_did(called))

    # -- Rule 3 .. Rule 5 ---------------------------------------------------------------------
    def may_use_trunk(
        self,
        source: Source | str,
        authenticated_user: str | None,
        trunk: TrunkConfig,
        dialed: str,
        *,
        from_trunk: TrunkConfig | None = None,
        active_calls: int = 0,
    ) -> Decision:
        """Whether a call may leave through ``trunk`` to ``dialed``.

        Args:
            source: "user" (digest-authenticated) or "trunk" (recognised by address).
            authenticated_user: the digest user name for "user" (None/"" = not
                authenticated, refused).
            trunk: the trunk the dial plan picked.
            dialed: the number as the dial plan hands it over (exit digit removed).
            from_trunk: for "trunk": the trunk the call came in on (from
                :meth:`identify_trunk`; None = not recognised, refused).
            active_calls: calls currently up or being set up through ``trunk``.
        """
        try:
            src = Source(source)
        except ValueError:
            src = Source.UNKNOWN
        decision = self._check_caller(src, authenticated_user, trunk, from_trunk)
        if decision is None:
            decision = self._check_number(src, trunk, dialed, active_calls)
        log = logger.info if decision.allowed else logger.warning
        log("trunk %s: %s call to %r by %s: %s", trunk.name, src.value, dialed,
            authenticated_user or (from_trunk.name if from_trunk else "?"), decision.reason)
        return decision

    def may_ring_agent(self, trunk: TrunkConfig, number: str, *,
                       active_calls: int = 0) -> Decision:
        """Whether the ACD may offer a call to an agent's outside number through ``trunk``
        (``switch/queue_external.py``): the switch itself places it, so the caller check is
        the trunk's ``agent_devices`` switch; the number is checked as for a user's call."""
        if not trunk.enabled or self.trunks.get(trunk.name) is not trunk:
            decision = _refuse("trunk disabled or not configured")
        elif not trunk.agent_devices:
            decision = _refuse("agent devices not allowed on this trunk")
        else:
            # not a user's call: no emergency exemption from deny_prefixes
            decision = self._check_number(Source.UNKNOWN, trunk, number, active_calls)
        log = logger.info if decision.allowed else logger.warning
        log("trunk %s: agent device call to %r: %s", trunk.name, number, decision.reason)
        return decision

    def _check_caller(
        self, src: Source, user: str | None, trunk: TrunkConfig, from_trunk: TrunkConfig | None
    ) -> Decision | None:
        if not trunk.enabled or self.trunks.get(trunk.name) is not trunk:
            return _refuse("trunk disabled or not configured")
        if src is Source.USER:
            if not user:
                return _refuse("not authenticated")
            if trunk.allowed_users and user not in trunk.allowed_users:
                return _refuse("user not allowed on this trunk")
            return None
        if src is Source.TRUNK:
            if from_trunk is None or self.trunks.get(from_trunk.name) is not from_trunk:
                return _refuse("source is not a configured trunk")
            if not from_trunk.enabled:
                return _refuse("source trunk disabled")
            if from_trunk.name not in trunk.transit_trunks:
                return _refuse("trunk-to-trunk transit not allowed")
            return None
        return _refuse("unknown source")

    def _check_number(
        self, src: Source, trunk: TrunkConfig, dialed: str, active_calls: int
    ) -> Decision:
        try:
            number = normalize(dialed, trunk.outbound_rules)
        except NumberError as exc:
            return _refuse(f"bad number: {exc}", 484)
        if "*" in number or "#" in number:
            return _refuse("feature codes are not dialed out", 484)
        emergency = src is Source.USER and is_emergency(number)
        if not emergency:
            try:
                e164: str | None = to_e164(number, trunk.country_code, area_code=trunk.area_code)
            except NumberError:
                e164 = None  # a national service code (95555, 10086): never international
            if e164 is None and number.startswith("+"):
                return _refuse("bad number", 484)
            if (e164 is not None and not e164.startswith("+" + trunk.country_code)
                    and not trunk.allow_international):
                return _refuse("international calls not allowed on this trunk")
            for prefix in trunk.deny_prefixes:
                subject = e164 if prefix.startswith("+") else number
                if subject is not None and subject.startswith(prefix):
                    return _refuse(f"denied prefix {prefix}")
        if active_calls >= trunk.max_calls:
            return _refuse("trunk at max_calls", 503)
        try:
            out = format_number(number, trunk.number_format, trunk.country_code,
                                area_code=trunk.area_code)
        except NumberError:
            out = number  # short and service codes have no E.164 form: sent as dialed
        return Decision(True, "emergency" if emergency else "ok", 200, out)
