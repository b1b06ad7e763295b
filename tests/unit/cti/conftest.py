"""Shared fixtures of the CTI tests: users, a FakeBackend, a live server on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from cti.audit import MemoryAuditSink
from cti.auth import Authenticator, CtiUser, LoginThrottle, MemoryUserDirectory, hash_password
from cti.client import CtiClient
from cti.fake import FakeBackend, MemoryResidentDirectory
from cti.roles import Role
from cti.server import CtiConfig, CtiServer

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


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(["billing", "repair"], MemoryResidentDirectory(RESIDENTS))


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


ServerFactory = Callable[..., Awaitable[CtiServer]]


@pytest.fixture
async def make_server(backend: FakeBackend,
                      audit: MemoryAuditSink) -> AsyncIterator[ServerFactory]:
    servers: list[CtiServer] = []

    async def factory(**config: Any) -> CtiServer:
        config.setdefault("stats_interval_s", 0.0)
        server = CtiServer(backend, Authenticator(make_users(), LoginThrottle()),
                           CtiConfig(**config), audit)
        await server.start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.close()


@pytest.fixture
async def server(make_server: ServerFactory) -> CtiServer:
    return await make_server()


@pytest.fixture
async def connect(server: CtiServer) -> AsyncIterator[Callable[..., Awaitable[CtiClient]]]:
    clients: list[CtiClient] = []

    async def factory(user: str | None = None, *, subscribe: bool = True,
                      **options: Any) -> CtiClient:
        client = await CtiClient.connect("127.0.0.1", server.port, **options)
        clients.append(client)
        if user is not None:
            await client.login(user, PASSWORD)
            if subscribe:
                await client.subscribe()
        return client

    yield factory
    for client in clients:
        await client.close()


async def drain_until(client: CtiClient, name: str, timeout_s: float = 3.0) -> list[Any]:
    """Events up to and including the first ``name`` (fails by timeout otherwise)."""
    seen = []
    while True:
        event = await client.next_event(timeout_s)
        seen.append(event)
        if event.event == name:
            return seen
