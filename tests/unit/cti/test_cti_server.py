"""The real asyncio server: bad input, roles and scopes, audit, subscriptions, screen pop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from cti_helpers import PASSWORD, ServerFactory, drain_until

from cti.audit import MemoryAuditSink
from cti.client import CtiClient, CtiCommandError
from cti.fake import FakeBackend
from cti.server import CtiConfig, CtiServer

Connect = Callable[..., Awaitable[CtiClient]]


class Raw:
    """A bare line client, to send what the library never would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def req(self, cmd: str, args: dict[str, Any] | None = None,
                  req_id: str = "r") -> dict[str, Any]:
        await self.send(json.dumps({"v": 1, "type": "req", "id": req_id, "cmd": cmd,
                                    "args": args or {}}).encode() + b"\n")
        return await self.reply()

    async def reply(self) -> dict[str, Any]:
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 5.0)
            assert line, "connection closed"
            obj = json.loads(line)
            if obj["type"] == "res":
                return obj

    async def login(self, user: str = "alice") -> None:
        assert (await self.req("hello"))["ok"]
        assert (await self.req("auth.login", {"user": user, "password": PASSWORD}))["ok"]

    def close(self) -> None:
        self.writer.close()


def err(reply: dict[str, Any]) -> str:
    assert reply["ok"] is False, reply
    return str(reply["error"]["code"])


async def test_bad_input_is_answered_and_the_session_survives(server: CtiServer) -> None:
    raw = await Raw.open(server.port)
    await raw.login()
    await raw.send(b'{"v":1,"type":"req","id":"a",\n')
    assert err(await raw.reply()) == "bad_json"
    await raw.send(b"\xff\xfe\n")
    assert err(await raw.reply()) == "bad_json"
    await raw.send(b"[1,2,3]\n")
    assert err(await raw.reply()) == "bad_request"
    await raw.send(b"[" * 40_000 + b"\n")   # deep nesting under the limit: RecursionError
    assert err(await raw.reply()) == "bad_json"
    await raw.send(b'"just a string"\n')
    assert err(await raw.reply()) == "bad_request"
    assert (await raw.req("ping"))["ok"]
    await raw.send(b"[" * 100_000 + b"\n")   # deep nesting, over the line limit: closes
    reply = await raw.reply()
    assert err(reply) == "line_too_long"
    assert await asyncio.wait_for(raw.reader.read(), 5.0) == b""
    raw.close()


async def test_unknown_command_and_bad_args(server: CtiServer) -> None:
    raw = await Raw.open(server.port)
    await raw.login()
    reply = await raw.req("system.exec", {"cmd": "rm -rf /"}, req_id="u1")
    assert err(reply) == "unknown_command" and reply["id"] == "u1"
    reply = await raw.req("agent.set_state", {"state": 3})
    assert err(reply) == "invalid_args" and reply["error"]["field"] == "state"
    reply = await raw.req("agent.set_state", {})
    assert err(reply) == "invalid_args" and reply["error"]["field"] == "state"
    assert (await raw.req("ping"))["ok"]
    raw.close()


async def test_ten_megabyte_line_closes_only_that_client(server: CtiServer) -> None:
    other = await Raw.open(server.port)
    await other.login("bob")
    big = await Raw.open(server.port)
    await big.login()
    big.writer.write(b'{"v":1,"type":"req","id":"x","cmd":"ping","args":{"pad":"' +
                     b"a" * (10 * 1024 * 1024))
    line = await asyncio.wait_for(big.reader.readline(), 5.0)
    assert json.loads(line)["error"]["code"] == "line_too_long"
    assert await asyncio.wait_for(big.reader.read(), 5.0) == b""     # then closed
    assert (await other.req("ping"))["ok"]          # the server still serves the others
    fresh = await Raw.open(server.port)
    await fresh.login("carol")
    assert (await fresh.req("queue.list"))["ok"]
    for c in (other, big, fresh):
        c.close()


async def test_forbidden_command_is_audited(server: CtiServer, audit: MemoryAuditSink,
                                            connect: Connect) -> None:
    agent = await connect("alice")
    with pytest.raises(CtiCommandError) as info:
        await agent.force_logout("a2")
    assert info.value.code == "forbidden"
    wall = await connect("wall")
    with pytest.raises(CtiCommandError):
        await wall.make_call("123", agent_id="a1")
    denied = [(e.user, e.cmd, e.outcome) for e in audit.entries]
    assert ("alice", "agent.force_logout", "denied") in denied
    assert ("wall", "call.make", "denied") in denied


async def test_supervisor_actions_are_audited(server: CtiServer, audit: MemoryAuditSink,
                                              connect: Connect, backend: FakeBackend) -> None:
    agent = await connect("alice")
    await agent.agent_login("1001")
    bob = await connect("bob")
    await bob.agent_login("2001")
    sup = await connect("sup")
    monitor_id = await sup.monitor("a1", "whisper")
    await sup.monitor_switch(monitor_id, "barge")
    await sup.monitor_stop(monitor_id)
    await sup.force_state("a1", "ready")
    with pytest.raises(CtiCommandError) as info:        # repair agent: outside sup's queues
        await sup.force_state("a2", "ready")
    assert info.value.code == "forbidden"
    entries = [(e.user, e.cmd, e.outcome) for e in audit.entries if e.user == "sup"]
    assert entries == [("sup", "monitor.whisper", "ok"), ("sup", "monitor.switch", "ok"),
                       ("sup", "monitor.stop", "ok"), ("sup", "agent.force_state", "ok"),
                       ("sup", "agent.force_state", "denied")]
    assert audit.entries[-1].args == {"agent_id": "a2", "state": "ready", "reason": ""}
    assert all("password" not in e.args for e in audit.entries)


async def test_scopes(server: CtiServer, connect: Connect, backend: FakeBackend) -> None:
    bob = await connect("bob")
    await bob.agent_login("2001")
    alice = await connect("alice")
    with pytest.raises(CtiCommandError) as info:
        await alice.set_state("ready", agent_id="a2")
    assert info.value.code == "forbidden" and info.value.field == "agent_id"
    with pytest.raises(CtiCommandError) as info:
        await alice.agent_login("1001", queues=["repair"])
    assert info.value.code == "forbidden"
    with pytest.raises(CtiCommandError) as info:
        await alice.queue_callers("repair")
    assert info.value.code == "forbidden"
    assert [r["queue"] for r in await alice.queue_list()] == ["billing"]
    assert [r["queue"] for r in await alice.queue_stats()] == ["billing"]
    sup = await connect("sup")
    with pytest.raises(CtiCommandError) as info:
        await sup.monitor("a2")
    assert info.value.code == "forbidden"
    rsup = await connect("rsup")
    monitor_id = await rsup.monitor("a2")
    with pytest.raises(CtiCommandError) as info:        # someone else's monitor
        await sup.monitor_stop(monitor_id)
    assert info.value.code == "forbidden"
    root = await connect("root")
    assert {r["queue"] for r in await root.queue_list()} == {"billing", "repair"}


async def test_screen_pop_and_call_flow(server: CtiServer, connect: Connect,
                                        backend: FakeBackend) -> None:
    alice = await connect("alice")
    await alice.agent_login("1001")
    await alice.set_state("ready")
    call_id = await backend.inbound_call("13800000001", "billing", tags={"intent": "bill"})
    events = await drain_until(alice, "call.delivered")
    pop = events[-1].data["screen_pop"]
    assert pop["caller_number"] == "13800000001"
    assert pop["resident"]["name"] == "Wang Wei" and pop["resident"]["vip"] is True
    assert pop["resident"]["unpaid_bills"] and pop["ivr_tags"] == {"intent": "bill"}
    await alice.answer(call_id)
    await drain_until(alice, "call.established")
    await alice.hangup(call_id)
    events = await drain_until(alice, "agent.wrapup")
    assert any(e.event == "call.cleared" and e.data["cause"] == "normal" for e in events)
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_subscription_filters(server: CtiServer, connect: Connect,
                                    backend: FakeBackend) -> None:
    calls_only = await connect("sup", subscribe=False)
    await calls_only.subscribe(events=["call.queued"])
    repair_only = await connect("root", subscribe=False)
    await repair_only.subscribe(queues=["repair"])
    wall = await connect("wall")
    agent_a1 = await connect("root", subscribe=False)
    await agent_a1.subscribe(events=["agent.*"], agents=["a1"])
    alice = await connect("alice")
    await alice.agent_login("1001")
    await backend.inbound_call("13800000001", "billing")
    await backend.inbound_call("13900000000", "repair")
    first = await calls_only.next_event()
    assert (first.event, first.data["queue"]) == ("call.queued", "billing")
    with pytest.raises(TimeoutError):                    # the repair call is out of scope
        await calls_only.next_event(0.2)
    got = await repair_only.next_event()
    assert got.data.get("queue") == "repair" and got.seq == 1
    assert (await agent_a1.next_event()).event == "agent.logged_on"
    wall_events = [await wall.next_event() for _ in range(3)]
    assert [e.event for e in wall_events] == ["agent.logged_on", "agent.not_ready",
                                              "call.queued"]
    with pytest.raises(CtiCommandError) as info:
        await calls_only.subscribe(events=["nonsense.event"])
    assert info.value.field == "events"
    with pytest.raises(CtiCommandError) as info:
        await calls_only.subscribe(queues=["repair"])
    assert info.value.code == "forbidden"


async def test_wallboard_never_sees_call_data(server: CtiServer, connect: Connect,
                                              backend: FakeBackend) -> None:
    wall = await connect("wall")
    alice = await connect("alice")
    await alice.agent_login("1001")
    await alice.set_state("ready")
    await backend.inbound_call("13800000001", "billing")
    await drain_until(alice, "call.delivered")
    names = []
    with pytest.raises(TimeoutError):
        while True:
            names.append((await wall.next_event(0.2)).event)
    assert "call.delivered" not in names and "agent.reserved" in names
    snap = (await wall.snapshot())["snapshot"]
    assert snap["calls"] == [] and snap["agents"][0]["agent_id"] == "a1"


async def test_periodic_queue_stats(make_server: ServerFactory, backend: FakeBackend) -> None:
    server = await make_server(stats_interval_s=0.05)
    client = await CtiClient.connect("127.0.0.1", server.port)
    await client.login("wall", PASSWORD)
    await client.subscribe(events=["queue.stats"])
    event = await client.next_event(3.0)
    assert event.event == "queue.stats" and event.data["queue"] == "billing"
    await client.close()


async def test_idle_and_auth_timeouts(make_server: ServerFactory) -> None:
    server = await make_server(auth_timeout_s=0.2, idle_timeout_s=0.3)
    raw = await Raw.open(server.port)
    line = await asyncio.wait_for(raw.reader.readline(), 3.0)
    assert json.loads(line)["error"]["code"] == "timeout"
    assert await asyncio.wait_for(raw.reader.read(), 3.0) == b""
    raw.close()


async def test_unauthenticated_connection_limit(make_server: ServerFactory) -> None:
    server = await make_server(max_unauthenticated=2)
    first, second = await Raw.open(server.port), await Raw.open(server.port)
    assert (await first.req("hello"))["ok"] and (await second.req("hello"))["ok"]
    third = await Raw.open(server.port)
    assert err(await third.reply()) == "too_many_sessions"
    for c in (first, second, third):
        c.close()


async def test_failed_logins_close_and_lock(server: CtiServer) -> None:
    raw = await Raw.open(server.port)
    await raw.req("hello")
    codes = [err(await raw.req("auth.login", {"user": "alice", "password": "nope"}))
             for _ in range(3)]
    assert codes == ["auth_failed"] * 3
    assert await asyncio.wait_for(raw.reader.read(), 3.0) == b""   # closed after 3
    raw.close()
    raw = await Raw.open(server.port)
    await raw.req("hello")
    await raw.req("auth.login", {"user": "alice", "password": "nope"})
    reply = await raw.req("auth.login", {"user": "alice", "password": "nope"})
    assert err(reply) == "locked_out"                               # 5 failures: locked
    raw.close()


def test_config_refuses_plain_tcp_off_loopback() -> None:
    with pytest.raises(ValueError, match="allow_plaintext"):
        CtiConfig(host="0.0.0.0")
    assert CtiConfig(host="0.0.0.0", allow_plaintext=True).host == "0.0.0.0"
    with pytest.raises(ValueError):
        CtiConfig(certfile="a.pem")


async def test_user_store_failure_is_internal_and_session_recovers(
        server: CtiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(name: str) -> None:
        raise OSError("database down")

    monkeypatch.setattr(server.auth.directory, "get_user", broken)
    raw = await Raw.open(server.port)
    await raw.req("hello")
    assert err(await raw.req("auth.login", {"user": "alice", "password": "x"})) == "internal"
    monkeypatch.undo()
    assert (await raw.req("auth.login", {"user": "alice", "password": PASSWORD}))["ok"]
    raw.close()
