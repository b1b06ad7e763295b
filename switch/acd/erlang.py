"""Erlang B and Erlang C formulas for staffing and simulator validation (IVR_CTI_ACD.md §C.6).

Model M/M/N: Poisson arrivals, exponential handle times with mean ``aht_s``, ``n`` identical
agents, FCFS, infinite queue, no abandonment. Offered load ``a = λ · aht_s`` Erlangs; the
queue is stable only when ``a < n``.

* Erlang B by the stable recursion ``B₀ = 1, B_k = a·B_{k−1} / (k + a·B_{k−1})``;
* Erlang C (probability of waiting) ``C = n·B / (n − a·(1 − B))``;
* ``ASA = C · aht_s / (n − a)``;
* service level ``SL(T) = 1 − C · exp(−(n − a) · T / aht_s)`` (share answered within T);
* occupancy ``a / n``; staffing = the smallest n meeting a service-level target.

Fixtures from §C.6: a = 10, aht 180 s, n = 13 gives C = 0.2853, ASA 17.12 s, SL20 79.56 %.
"""

from __future__ import annotations

import logging
import math

logger = logging.getLogger(__name__)

__all__ = [
    "agents_needed",
    "asa_s",
    "erlang_b",
    "erlang_c",
    "occupancy",
    "offered_load",
    "service_level",
]


def offered_load(calls_per_s: float, aht_s: float) -> float:
    """Offered traffic in Erlangs: arrival rate × mean handle time."""
    return calls_per_s * aht_s


def erlang_b(a: float, n: int) -> float:
    """Blocking probability of an M/M/n/n system (Erlang B).

    Raises:
        ValueError: negative load or agent count.
    """
    if a < 0 or n < 0:
        raise ValueError("load and agents must be >= 0")
    b = 1.0
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(a: float, n: int) -> float:
    """Probability that a call waits (Erlang C); 1.0 when ``a >= n`` (unstable queue)."""
    if a < 0 or n < 0:
        raise ValueError("load and agents must be >= 0")
    if a == 0:
        return 0.0
    if a >= n:
        return 1.0
    b = erlang_b(a, n)
    return n * b / (n - a * (1.0 - b))


def asa_s(a: float, n: int, aht_s: float) -> float:
    """Average speed of answer over all calls (waiting or not); ``inf`` if unstable."""
    if a >= n:
        return math.inf
    return erlang_c(a, n) * aht_s / (n - a)


def service_level(a: float, n: int, aht_s: float, threshold_s: float) -> float:
    """Share of calls answered within ``threshold_s`` of queue entry (0.0 if unstable)."""
    if a >= n:
        return 0.0
    return 1.0 - erlang_c(a, n) * math.exp(-(n - a) * threshold_s / aht_s)


def occupancy(a: float, n: int) -> float:
    """Agent occupancy ``a / n`` (capped at 1)."""
    if n <= 0:
        raise ValueError("need at least one agent")
    return min(1.0, a / n)


def agents_needed(a: float, aht_s: float, threshold_s: float, target_sl: float,
                  max_agents: int = 10_000) -> int:
    """Smallest agent count whose service level reaches ``target_sl`` (before shrinkage).

    Raises:
        ValueError: target not in (0, 1) or unreachable within ``max_agents``.
    """
    if not 0.0 < target_sl < 1.0:
        raise ValueError("target_sl must be in (0, 1)")
    n = max(1, math.floor(a) + 1)
    while n <= max_agents:
        if service_level(a, n, aht_s, threshold_s) >= target_sl:
            return n
        n += 1
    raise ValueError(f"service level {target_sl} needs more than {max_agents} agents")
