"""JSON-ready views of the live ACD's state, for the CTI server and wallboards.

Part of the live ACD (``switch.queues``): functions of the engine's state and ``now`` that
build the dicts :class:`~switch.queues.QueueService` returns (agent snapshots, the callers
of a queue), kept apart so the shell stays about calls. Agent records are read, never
changed (the engine owns them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from switch.acd import AcdEngine

logger = logging.getLogger(__name__)

__all__ = ["agent_queues", "agent_row", "waiting_rows"]


def agent_queues(engine: AcdEngine, agent_id: str) -> frozenset[str]:
    """The queues whose required skill the agent has (empty if unknown)."""
    agent = engine.agents.get(agent_id)
    if agent is None:
        return frozenset()
    return frozenset(q.name for q in engine.queues.values()
                     if q.config.required_skill in agent.skills)


def agent_row(engine: AcdEngine, agent_id: str) -> dict[str, Any]:
    """One agent: device, state (CSTA names), reason, skills, call, pending state.

    Raises:
        AcdError: unknown agent.
    """
    a = engine.agent(agent_id)
    return {"agent_id": a.agent_id, "device": f"{a.device.kind}:{a.device.address}",
            "state": a.state.value, "reason": a.reason, "since": a.state_since,
            "skills": dict(a.skills), "call_id": a.call_id, "queue": a.call_queue,
            "pending": a.pending.value if a.pending else None,
            "queues": sorted(agent_queues(engine, agent_id))}


def waiting_rows(engine: AcdEngine, queue: str, now: float,
                 caller_of: Callable[[str], str]) -> list[dict[str, Any]]:
    """The callers of ``queue`` in service order, with the agents their call rings at."""
    return [{"call_id": c.call_id, "position": position, "priority": c.priority,
             "waited_s": round(now - c.enter_time, 3), "caller": caller_of(c.call_id),
             "ringing": sorted(c.offered_to)}
            for position, c in enumerate(engine.waiting(queue), 1)]
