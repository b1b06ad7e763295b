"""Stateless answers to new INVITEs that carry no credentials: the 407 challenge, and the
503 of overload control.

Every call from a phone starts with an INVITE without credentials that can only get a 407
(RFC 3261 §22.3); under overload every new INVITE gets 503 (``switch.overload``). Both
answers cost nothing to repeat, so -- as a proxy's ``sl_send_reply`` challenge does --
they are sent without an INVITE server transaction (:attr:`SipCore.stateless_hook`): no
transaction state, no Timer G/H retransmissions, and the ACK of the 407 is dropped as a
stray (RFC 3261 §17.1.1.3 lets the client's transaction retransmit the INVITE instead,
which just gets a fresh 407). On a busy node this takes the cheapest half of each call
setup off the transaction layer.

Rules:

* Rule 1 -- only out-of-dialog INVITEs (no To tag) without ``Proxy-Authorization`` are
  challenged here; everything else goes on to its transaction and the channel driver
  (which also challenges stale or wrong credentials, statefully).
* Rule 2 -- requests a trunk identifies (``trunk_inbound``: a carrier's INVITEs are not
  challenged) are left alone.
* Rule 3 -- the 407, or the 403 of a brute-force lockout, comes from the node's one
  :class:`~signaling.auth.DigestAuthenticator`, as the stateful path's would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from signaling.events import Address
from signaling.message import Request, Response, make_response

logger = logging.getLogger(__name__)

__all__ = ["StatelessHook", "chain_invite_challenge"]

StatelessHook = Callable[[Request, Address, float], Response | None]


def chain_invite_challenge(driver: Any, then: StatelessHook | None) -> StatelessHook:
    """A stateless hook answering new uncredentialed INVITEs for ``driver`` (the SIP
    channel driver), passing every other request on to ``then`` (e.g. the registrar's)."""

    def hook(request: Request, source: Address, now: float) -> Response | None:
        if request.method != "INVITE" or request.to_tag is not None:
            return then(request, source, now) if then is not None else None
        if driver.overload.shed():  # switch.overload Rule 3
            return make_response(request, 503, to_tag=driver.core.ids.tag(),
                                 extra=driver.overload.headers())
        if "Proxy-Authorization" in request.headers:
            return None
        trunks = getattr(driver, "trunk_inbound", None)
        if trunks is not None and trunks.identify(request, source) is not None:
            return None  # Rule 2
        status, headers = driver.auth.rejection(None, driver.wall(), source.host, proxy=True)
        driver.stats["challenged"] += 1
        return make_response(request, status, to_tag=driver.core.ids.tag(), extra=headers)

    return hook
