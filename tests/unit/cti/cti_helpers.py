"""Helpers shared by the CTI tests (a uniquely named module: no clash with other conftests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cti.auth import CtiUser, MemoryUserDirectory, hash_password
from cti.client import CtiClient
from cti.roles import Role
from cti.server import CtiServer

PASSWORD = "pw-1234"
_HASH = hash_password(PASSWORD, log2_n=4)  # cheap on purpose: tests, not production

RESIDENTS = {
    "13800000001": {"name": "Wang Wei", "unit": "3-1202", "vip": True,
                    "open_work_orders": [{"id": "WO-1", "kind": "leak"}],
                    "unpaid_bills": [{"period": "2026-10", "amount": "356.00"}],
                    "recent_calls": [{"queue": "repair"}]},
}


def make_users() -> MemoryUserDirectory:
    def user(name: str, role: Role, queues: set[str], agent: str | None = None,
             all_queues: bool = False) -> CtiUser:
        return CtiUser(name, role, _HASH, frozenset(queues), all_queues, agent)

    return MemoryUserDirectory([
        user("alice", Role.AGENT, {"billing"}, "a1"),
        user("bob", Role.AGENT, {"repair"}, "a2"),
        user("carol", Role.AGENT, {"billing"}, "a3"),
        user("sup", Role.SUPERVISOR, {"billing"}, "s1"),
        user("rsup", Role.SUPERVISOR, {"repair"}),
        user("wall", Role.WALLBOARD, {"billing"}),
        user("root", Role.ADMIN, set()),
        user("crm", Role.INTEGRATION, {"billing"}),
    ])


ServerFactory = Callable[..., Awaitable[CtiServer]]


async def drain_until(client: CtiClient, name: str, timeout_s: float = 3.0) -> list[Any]:
    """Events up to and including the first ``name`` (fails by timeout otherwise)."""
    seen = []
    while True:
        event = await client.next_event(timeout_s)
        seen.append(event)
        if event.event == name:
            return seen
