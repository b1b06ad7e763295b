"""The client library end to end against the server and the FakeBackend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from cti_helpers import drain_until

from cti.client import CtiClient, CtiCommandError, CtiConnectionLost
from cti.fake import FakeBackend
from cti.server import CtiServer

Connect = Callable[..., Awaitable[CtiClient]]


async def test_agent_day(server: CtiServer, connect: Connect, backend: FakeBackend) -> None:
    alice = await connect("alice")
    assert alice.server_info["version"] == 1 and "resume" in alice.server_info["capabilities"]
    assert alice.login_info is not None and alice.login_info.agent_id == "a1"
    await alice.agent_login("1001")
    await alice.set_state("not_ready", "training")
    await drain_until(alice, "agent.not_ready")       # the login's own not-ready
    events = await drain_until(alice, "agent.not_ready")
    assert events[-1].data["reason"] == "training"
    await alice.set_state("ready")
    call_id = await backend.inbound_call("13800000001", "billing")
    await drain_until(alice, "call.delivered")
    await alice.answer(call_id)
    await alice.hold(call_id)
    await drain_until(alice, "call.held")
    await alice.retrieve(call_id)
    await drain_until(alice, "call.retrieved")
    await alice.set_data(call_id, {"account": "A-1002"})
    data = await alice.get_data(call_id)
    assert data["data"] == {"account": "A-1002"}
    assert (await alice.record(call_id, "start"))["recording"] == "recording"
    await alice.send_dtmf(call_id, "12#")
    with pytest.raises(CtiCommandError) as info:
        await alice.send_dtmf(call_id, "12x")
    assert info.value.field == "digits"
    consult = await alice.consult(call_id, "8002")
    await alice.reconnect_call(call_id, consult)
    consult = await alice.consult(call_id, "8003")
    parties = (await alice.conference(call_id, consult))["parties"]
    assert parties == ["13800000001", "1001", "8003"]
    consult = await alice.consult(call_id, "8004")
    await alice.transfer_complete(call_id, consult)
    events = await drain_until(alice, "agent.wrapup")
    assert any(e.event == "call.transferred" and e.data["destination"] == "8004"
               for e in events)
    await alice.end_wrapup()
    await drain_until(alice, "agent.ready")
    outbound = await alice.make_call("13900000000", {"ticket": "WO-1"})
    await alice.transfer_blind(outbound, "8001")
    with pytest.raises(CtiCommandError) as info:
        await alice.hold(outbound)
    assert info.value.code == "not_found"
    await alice.agent_logout("end of shift")
    await drain_until(alice, "agent.logged_off")


async def test_queue_and_supervisor_commands(server: CtiServer, connect: Connect,
                                             backend: FakeBackend) -> None:
    alice = await connect("alice")
    await alice.agent_login("1001")
    first = await backend.inbound_call("13800000001", "billing")
    second = await backend.inbound_call("13800000002", "billing")
    sup = await connect("sup")
    callers = await sup.queue_callers("billing")
    assert [c["call_id"] for c in callers] == [first, second]
    assert (await sup.set_priority("billing", second, 5))["position"] == 1
    assert (await alice.queue_callers("billing"))[0]["call_id"] == second
    callback = await sup.schedule_callback("billing", "13800000003", at=1767003600.0)
    assert callback.startswith("cb-") and backend.callbacks[0]["number"] == "13800000003"
    await alice.set_state("ready")            # the first caller in order goes to alice
    await drain_until(alice, "call.delivered")
    await alice.answer(second)
    stats = await sup.queue_stats(["billing"])
    assert stats[0]["waiting"] == 1 and stats[0]["agents_busy"] == 1
    monitor = await sup.monitor("a1", "listen")
    await sup.monitor_stop(monitor)
    with pytest.raises(CtiCommandError) as info:
        await sup.take_over(second)            # s1 is not logged in as an agent
    assert info.value.code == "not_found"
    await sup.force_hangup(first)
    snap = (await sup.snapshot())["snapshot"]
    assert {c["call_id"] for c in snap["calls"]} <= {second}


async def test_take_over_and_force_logout(server: CtiServer, connect: Connect,
                                          backend: FakeBackend) -> None:
    alice = await connect("alice")
    await alice.agent_login("1001")
    await alice.set_state("ready")
    sup = await connect("sup")
    await sup.agent_login("1900", queues=["billing"])
    call_id = await backend.inbound_call("13800000001", "billing")
    await alice.answer(call_id)
    with pytest.raises(CtiCommandError) as info:
        await sup.force_logout("a1")                 # busy: the switch refuses
    assert info.value.code == "invalid_state"
    await sup.take_over(call_id)
    events = await drain_until(alice, "agent.wrapup")
    assert any(e.event == "call.transferred" and e.data["kind"] == "take_over"
               for e in events)
    await sup.force_logout("a1", "end of shift")
    await drain_until(alice, "agent.logged_off")


async def test_errors_are_typed(server: CtiServer, connect: Connect) -> None:
    client = await connect()
    with pytest.raises(CtiCommandError) as info:
        await client.queue_list()
    assert info.value.code == "not_authenticated"
    with pytest.raises(CtiCommandError) as info:
        await client.login("alice", "wrong")
    assert info.value.code == "auth_failed" and info.value.field == "password"
    with pytest.raises(ValueError):
        await client.request("system.exec")
    await client.close()
    with pytest.raises(CtiConnectionLost):
        await client.ping()


async def test_logout_revokes_token(server: CtiServer, connect: Connect) -> None:
    client = await connect("alice")
    assert client.login_info is not None
    token = client.login_info.token
    await client.logout()
    with pytest.raises(CtiCommandError) as info:
        await client.login(token=token)
    assert info.value.code == "auth_failed"


async def test_answer_only_where_the_device_allows_it(server: CtiServer, connect: Connect,
                                                      backend: FakeBackend) -> None:
    backend.manual_answer_devices = frozenset({"1001"})
    alice = await connect("alice")
    await alice.agent_login("1001")
    await alice.set_state("ready")
    call_id = await backend.inbound_call("13800000001", "billing")
    with pytest.raises(CtiCommandError) as info:
        await alice.answer(call_id)
    assert info.value.code == "invalid_state" and "answer on the phone" in info.value.message
    backend.device_answered(call_id)               # the agent picks up the handset
    await drain_until(alice, "call.established")
    await alice.hold(call_id)                       # the rest is remote as usual
    await drain_until(alice, "call.held")
