"""Resume after a reconnect, snapshot when too old, and slow clients (bounded queues)."""

from __future__ import annotations

import asyncio
import json

import pytest
from cti_helpers import PASSWORD, ServerFactory

from cti.client import CtiClient, CtiCommandError
from cti.fake import FakeBackend
from cti.server import CtiServer

Q = frozenset({"billing"})


def emit(backend: FakeBackend, n: int, start: int = 0, pad: int = 0) -> None:
    for i in range(start, start + n):
        backend.emit("call.queued", {"call_id": f"c{i}", "queue": "billing", "position": i,
                                     "pad": "x" * pad}, Q)


async def _login(port: int, user: str = "sup", **options: object) -> CtiClient:
    client = await CtiClient.connect("127.0.0.1", port, **options)  # type: ignore[arg-type]
    await client.login(user, PASSWORD)
    return client


async def test_resume_replays_missed_events(server: CtiServer, backend: FakeBackend) -> None:
    first = await _login(server.port, reconnect=False)
    await first.subscribe(events=["call.queued"])
    emit(backend, 3)
    got = [await first.next_event() for _ in range(3)]
    assert [e.seq for e in got] == [1, 2, 3]
    info = first.login_info
    assert info is not None
    first.abort_connection()
    await asyncio.sleep(0.05)   # let the server notice; events now go to the ring only
    emit(backend, 4, start=3)
    second = await CtiClient.connect("127.0.0.1", server.port, reconnect=False)
    await second.login(token=info.token)
    result = await second.resume(info.session_id, 3)
    assert result == {"session_id": info.session_id, "replayed": 4, "last_seq": 7}
    replayed = [await second.next_event() for _ in range(4)]
    assert [e.seq for e in replayed] == [4, 5, 6, 7]
    assert [e.data["call_id"] for e in replayed] == ["c3", "c4", "c5", "c6"]
    emit(backend, 1, start=7)                        # the stream (and its filter) continues
    assert (await second.next_event()).seq == 8
    for c in (first, second):
        await c.close()


async def test_resume_too_old_needs_snapshot(make_server: ServerFactory,
                                             backend: FakeBackend) -> None:
    server = await make_server(ring_size=16)
    first = await _login(server.port, reconnect=False)
    await first.subscribe(events=["call.queued"])
    info = first.login_info
    assert info is not None
    first.abort_connection()
    await asyncio.sleep(0.05)
    emit(backend, 40)
    second = await _login(server.port, reconnect=False)
    with pytest.raises(CtiCommandError) as exc:
        await second.resume(info.session_id, 0)
    assert exc.value.code == "resync_required" and exc.value.field == "last_seq"
    with pytest.raises(CtiCommandError) as exc:
        await second.resume("no-such-session", 0)
    assert exc.value.code == "resync_required"
    snap = await second.snapshot()
    assert snap["snapshot"]["queues"][0]["queue"] == "billing"
    for c in (first, second):
        await c.close()


async def test_other_users_session_cannot_be_resumed(server: CtiServer) -> None:
    sup = await _login(server.port, reconnect=False)
    info = sup.login_info
    assert info is not None
    other = await _login(server.port, "rsup", reconnect=False)
    with pytest.raises(CtiCommandError) as exc:
        await other.resume(info.session_id, 0)
    assert exc.value.code == "resync_required"
    for c in (sup, other):
        await c.close()


async def test_client_reconnects_and_resumes_by_itself(server: CtiServer,
                                                       backend: FakeBackend) -> None:
    client = await _login(server.port)
    await client.subscribe(events=["call.queued"])
    emit(backend, 2)
    assert [(await client.next_event()).seq for _ in range(2)] == [1, 2]
    client.abort_connection()
    emit(backend, 5, start=2)                 # the server may not know yet: ring has them
    got = [await client.next_event() for _ in range(5)]
    assert [e.seq for e in got] == [3, 4, 5, 6, 7]
    assert [e.data["call_id"] for e in got] == ["c2", "c3", "c4", "c5", "c6"]
    assert client.reconnects == 1
    emit(backend, 1, start=7)
    assert (await client.next_event()).seq == 8
    await client.close()


async def test_client_resync_when_ring_overflowed(make_server: ServerFactory,
                                                  backend: FakeBackend) -> None:
    server = await make_server(ring_size=16)
    client = await _login(server.port)
    await client.subscribe(events=["call.queued"])
    client.abort_connection()
    emit(backend, 40)
    marker = await client.next_event()
    assert (marker.event, marker.seq) == ("session.resync_required", 0)
    emit(backend, 1, start=40)                 # re-subscribed on the new stream
    event = await client.next_event()
    assert (event.seq, event.data["call_id"]) == (1, "c40")
    await client.close()


async def test_slow_client_is_dropped_and_does_not_stall_others(
        make_server: ServerFactory, backend: FakeBackend) -> None:
    server = await make_server(outbound_queue_max=16)
    fast = await _login(server.port)
    await fast.subscribe(events=["call.queued"])
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for i, (cmd, args) in enumerate([("hello", {}),
                                     ("auth.login", {"user": "sup", "password": PASSWORD}),
                                     ("subscribe", {"events": ["call.queued"]})]):
        writer.write(json.dumps({"v": 1, "type": "req", "id": str(i), "cmd": cmd,
                                 "args": args}).encode() + b"\n")
        assert json.loads(await reader.readline())["ok"]
    # the slow client never reads again; 300 events of 20 KB = 6 MB fill its socket
    for batch in range(30):
        emit(backend, 10, start=batch * 10, pad=20_000)
        await asyncio.sleep(0.002)   # the fast client keeps up between bursts
    got = [await fast.next_event() for _ in range(300)]
    assert [e.seq for e in got] == list(range(1, 301))
    assert server.dropped_slow == 1
    assert fast.reconnects == 0
    writer.close()
    await fast.close()
