"""Shared fixtures of the CTI tests: users, a FakeBackend, a live server on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from cti_helpers import PASSWORD, RESIDENTS, ServerFactory, make_users

from cti.audit import MemoryAuditSink
from cti.auth import Authenticator, LoginThrottle
from cti.client import CtiClient
from cti.fake import FakeBackend, MemoryResidentDirectory
from cti.server import CtiConfig, CtiServer


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(["billing", "repair"], MemoryResidentDirectory(RESIDENTS))


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


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


