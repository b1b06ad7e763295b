"""Agents on an outside number: ACD offers rung through a trunk (issue 6 point 2).

An agent may log in on a device that is not a registered extension but a telephone number
outside (``external:13900001111``: a mobile, a home phone). Part of the live ACD
(``switch.queues`` Rule 2): for an ``OfferCall`` to such a device this module places one
outbound leg through a trunk with :func:`switch.trunks.outbound.originate_via_trunk`; the
leg is an offer leg like an extension's, so its answer is the agent's answer, it is bridged
to the caller on ``BridgeCall`` and cancelled on ``WithdrawOffer``.

Rules:

* Rule 1 -- authorisation: the switch itself places these calls (no user dialled them), so
  only trunks with ``agent_devices = true`` carry them; the trunk policy still checks the
  number (``deny_prefixes``, international, ``max_calls``:
  :meth:`~switch.trunks.policy.TrunkPolicy.may_ring_agent`) and the leg counts against
  ``max_calls``. The first such trunk (by name) that accepts the number is used.
* Rule 2 -- no trunk for the number (none allows agent devices, the policy refuses, the node
  has no trunks): the offer fails at once (``OfferRejected``), like an extension with no
  contact; the engine's miss counting then makes the agent not ready (engine Rule 5).
* Rule 3 -- identity and media: the agent sees the caller's number (the trunk's caller-ID
  policy applies); the leg's media channel is opened next to the caller's (``near``), and a
  callback entry's agent leg (no live caller yet) shows the number to be called back.
"""

from __future__ import annotations

import logging
from typing import Any

from switch.acd import OfferCall
from switch.trunks.config import TrunkConfig
from switch.trunks.outbound import originate_via_trunk

logger = logging.getLogger(__name__)

__all__ = ["agent_trunk", "ring_external"]


def agent_trunk(trunk_calls: Any, number: str) -> tuple[TrunkConfig, str] | None:
    """Rule 1: the trunk and the number as written for it, or None (Rule 2)."""
    policy = trunk_calls.policy
    for name in sorted(policy.trunks):
        trunk = policy.trunks[name]
        if not trunk.agent_devices or not trunk.enabled:
            continue
        decision = policy.may_ring_agent(trunk, number,
                                         active_calls=trunk_calls.active_calls(name))
        if decision.allowed and decision.number is not None:
            return trunk, decision.number
    return None


def ring_external(service: Any, action: OfferCall, waiter: Any) -> bool:
    """Ring the agent's outside number for ``action`` (a ``QueueService`` offer); False
    when no trunk may carry it (the caller then rejects the offer, Rule 2)."""
    trunk_calls = getattr(service.calls, "trunks", None)
    number = action.device.address
    found = agent_trunk(trunk_calls, number) if trunk_calls is not None else None
    if found is None:
        logger.warning("ACD: no trunk may ring agent %s at %s (agent_devices)",
                       action.agent_id, number)
        return False
    if waiter is not None and waiter.call.a.media_id is not None:
        a = waiter.call.a
        caller, codec, near = waiter.call.caller, a.codec or "PCMU", a.media_id
    elif action.callback_number is not None:
        caller, codec, near = action.callback_number, "PCMU", None
    else:
        return False
    trunk, dialed = found
    offer = service.new_offer(action)
    leg = service.offer_leg(offer, dialed)
    trunk_calls.track(trunk.name, leg)
    service._spawn(originate_via_trunk(service.calls.driver, leg, trunk, dialed,
                                       caller=caller, codec=codec, near=near,
                                       digest=trunk_calls.digest), f"offer-{leg.name}")
    logger.info("ACD: call %s rings agent %s at %s via trunk %s", action.call_id,
                action.agent_id, dialed, trunk.name)
    return True
