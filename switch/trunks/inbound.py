"""Calls in from trunks: recognition, the caller's identity, DID routing.

The SIP channel driver asks :meth:`TrunkInbound.identify` about every new INVITE before
digest authentication; the call manager asks :meth:`TrunkInbound.route` (through
:class:`~.outbound.TrunkCalls`) where a trunk call goes.

Rules:

* Rule 1 -- recognition: a new INVITE whose source address belongs to an enabled trunk
  (:class:`~.policy.TrunkPolicy` Rule 1) is a trunk call and is not challenged (carriers
  do not answer challenges). Every other INVITE is a user call and must pass digest
  authentication (the driver's Rule 1), whatever number it dials: an unauthenticated
  request never reaches a DID target or a trunk.
* Rule 2 -- identity (RFC 3325 §5, §9.1): the caller is the From user part.
  P-Asserted-Identity, or the older Remote-Party-ID, is believed only from a ``trusted``
  trunk; from any other source it is ignored. The B2BUA builds every outgoing request
  afresh, so an identity header that was not believed is never passed on (stripped).
  Phones are identified by their digest user name, never by what they put in From or PAI.
* Rule 3 -- the called number is the Request-URI user, or the To user when only that one
  is a DID of the trunk (carriers that send calls to our registered Contact, §10.2.4).
* Rule 4 -- routing: a ``did_map`` entry ``ivr:P``, ``queue:Q``, ``user:N`` /
  ``extension:N`` or ``voicemail:B`` names the target directly; any other entry (a number
  such as an extension or the hotline number) is routed by the dial plan, as is a DID
  without entry, always with source ``"trunk"`` -- so ``source = "user"`` rules (the
  ``9.`` exit) never match a carrier's call, and transit needs an explicit rule *and*
  the policy's ``transit_trunks``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from signaling.errors import SipParseError
from signaling.events import Address
from signaling.headers import NameAddr
from signaling.message import Request
from switch.router import (
    DialPlan,
    Extension,
    Ivr,
    Queue,
    Reject,
    RouteDecision,
    Target,
    Voicemail,
)

from .config import TrunkConfig
from .policy import TrunkPolicy

__all__ = ["TrunkCaller", "TrunkInbound", "asserted_number", "did_target"]

logger = logging.getLogger(__name__)

_TEL_RE = re.compile(r"<?\s*tel:([^;>\s]+)", re.I)


@dataclass(frozen=True, slots=True)
class TrunkCaller:
    """A new INVITE recognised as coming from ``trunk`` (Rules 1-3)."""

    trunk: TrunkConfig
    number: str
    """The caller's number ("" when the carrier sent none)."""
    called: str
    """The called number (Rule 3)."""
    asserted: bool = False
    """``number`` came from P-Asserted-Identity / Remote-Party-ID of a trusted trunk."""


def _user_of(value: str) -> str | None:
    """The number in one identity header value (a sip:/sips: user part or a tel: URI)."""
    tel = _TEL_RE.search(value)
    if tel is not None:
        return tel.group(1)
    try:
        uri = NameAddr.parse(value).uri
    except SipParseError:
        return None
    return uri.user if uri is not None and uri.user else None


def asserted_number(request: Request) -> str | None:
    """The caller's number asserted in P-Asserted-Identity (first usable value; a tel URI
    is taken as well, RFC 3325 §9.1) or, failing that, Remote-Party-ID."""
    for header in ("P-Asserted-Identity", "Remote-Party-ID"):
        for raw in request.headers.get_all(header):
            for value in raw.split(","):
                number = _user_of(value)
                if number:
                    return number
    return None


def did_target(entry: str) -> Target | None:
    """Rule 4: the target a ``did_map`` entry names, None for "route this number"."""
    kind, sep, name = entry.partition(":")
    if not sep or not name:
        return None
    match kind.strip().lower():
        case "ivr":
            return Ivr(name)
        case "queue":
            return Queue(name)
        case "user" | "extension":
            return Extension(name)
        case "voicemail":
            return Voicemail(name)
    return None


class TrunkInbound:
    """Rules 1-4 over one :class:`~.policy.TrunkPolicy`."""

    def __init__(self, policy: TrunkPolicy) -> None:
        self.policy = policy

    def identify(self, request: Request, source: Address) -> TrunkCaller | None:
        """Rule 1-3 for a new INVITE; None: not from a trunk (digest applies)."""
        if self.policy.identify_trunk(source) is None:
            return None  # the common case (a phone): no header is looked at
        try:
            r_user = request.uri_parsed.user or ""
        except SipParseError:
            r_user = ""
        try:
            to_user = (request.to.uri.user or "") if request.to.uri is not None else ""
            from_user = (request.from_.uri.user or "") if request.from_.uri is not None else ""
        except SipParseError:
            to_user, from_user = "", ""
        trunk = self.policy.identify_trunk(source, r_user or to_user)
        if trunk is None:
            return None
        called = r_user
        if to_user and trunk.route_did(r_user) is None and trunk.route_did(to_user) is not None:
            called = to_user
        number, asserted = from_user, False
        if trunk.trusted:
            pai = asserted_number(request)
            if pai:
                number, asserted = pai, True
        elif asserted_number(request) is not None:
            logger.info("trunk %s is not trusted: its asserted identity is ignored",
                        trunk.name)
        if number.lower() == "anonymous":
            number = ""
        logger.info("INVITE from trunk %s (%s): caller %r%s, called %r", trunk.name, source,
                    number, " (asserted)" if asserted else "", called)
        return TrunkCaller(trunk, number, called, asserted)

    @staticmethod
    def refuse(dialed: str, status: int, reason: str) -> RouteDecision:
        """A decision refusing a trunk call (capacity, unknown trunk)."""
        return RouteDecision(dialed, dialed, Reject(status, reason), None, f"trunk-{status}")

    def route(self, trunk_name: str, dialed: str, caller: str, dialplan: DialPlan,
              now_local: dt.datetime,
              lists: Mapping[str, Collection[str]] | None = None) -> RouteDecision:
        """Rule 4: where a call from trunk ``trunk_name`` to ``dialed`` goes."""
        trunk = self.policy.trunks.get(trunk_name)
        if trunk is None or not trunk.enabled:
            return self.refuse(dialed, 403, "not from a configured trunk")
        entry = trunk.route_did(dialed)
        if entry is not None:
            target = did_target(entry)
            blocked = lists and any(caller in lists.get(name, ())
                                    for name in dialplan.blocked_lists)
            if target is not None and blocked:
                return RouteDecision(dialed, dialed, Reject(403, "caller blocked"), None,
                                     "blocked-caller")
            if target is not None:
                return RouteDecision(dialed, dialed, target, None, f"did:{trunk.name}")
            return dialplan.route(entry, caller, "trunk", now_local, lists)
        return dialplan.route(dialed, caller, "trunk", now_local, lists)
