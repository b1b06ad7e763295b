"""The CTI backend of the live switch over the real call manager, SIP driver and media
engine, with scripted SIP phones on an in-memory network (``_b2bua_harness``): screen pop,
agent states, hold, data, recording, DTMF, blind transfer, click-to-dial, supervision."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from random import Random
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "switch"))

from _b2bua_harness import Net, Phone, Switch

from cti.backend import BackendEvent
from cti.fake import MemoryResidentDirectory
from cti.messages import CtiRequestError, ErrorCode
from cti.switch_backend import SwitchBackend
from switch.acd import MemoryLogSink, QueueConfig, Strategy
from switch.events import CallHungUp
from switch.queue_config import QueueSettings
from switch.queues import QueueService
from switch.router import DialPlan
from switch.routing_config import parse_routing

RESIDENT = {"name": "张伟", "unit": "3栋2单元501", "vip": True, "open_work_orders": [],
            "unpaid_bills": [{"kind": "property", "amount": "350.50"}], "recent_calls": []}


class Rig:
    def __init__(self, net: Net, switch: Switch, backend: SwitchBackend) -> None:
        self.net, self.switch, self.backend = net, switch, backend
        self.events: list[BackendEvent] = []
        backend.set_event_sink(self.events.append)

    def names(self) -> list[str]:
        return [e.name for e in self.events]

    def named(self, name: str) -> list[BackendEvent]:
        return [e for e in self.events if e.name == name]

    async def until(self, name: str, count: int = 1, timeout: float = 3.0) -> BackendEvent:
        await self.switch.settle(lambda: len(self.named(name)) >= count, timeout)
        return self.named(name)[count - 1]

    def trios(self) -> dict[int, Any]:
        return self.switch.media.backends[0].host.engine.mix.trios


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    net = Net()
    switch = Switch(net, tmp_path, no_answer_timeout_s=3.0)
    await switch.start()
    backend = SwitchBackend(switch.calls, MemoryResidentDirectory({"1001": RESIDENT}),
                            recordings_dir=tmp_path / "rec", ring_timeout_s=3.0)
    backend.attach()
    yield Rig(net, switch, backend)
    await backend.close()
    await switch.stop()


async def _agent_on(rig: Rig, agent_id: str, device: str) -> None:
    result = await rig.backend.agent_login(agent_id=agent_id, device=device, queues=None)
    assert result["registered"] is True
    await rig.backend.agent_set_state(agent_id=agent_id, state="ready", reason="")


async def _connected_call(rig: Rig) -> tuple[Phone, Phone, str]:
    """1001 (a resident) calls 1002, where agent a1 is logged in and ready."""
    alice, desk = Phone(rig.net, "1001", 5071), Phone(rig.net, "1002", 5072)
    rig.switch.register(desk)
    await _agent_on(rig, "a1", "1002")
    alice.call("1002")
    established = await rig.until("call.established")
    return alice, desk, established.data["call_id"]


async def test_inbound_call_screen_pop_agent_states_and_clear(rig: Rig) -> None:
    alice, desk, call_id = await _connected_call(rig)
    delivered = rig.named("call.delivered")[0]
    assert delivered.agent_id == "a1" and delivered.data["device"] == "1002"
    pop = delivered.data["screen_pop"]
    assert pop["caller_number"] == "1001" and pop["resident"]["name"] == "张伟"
    assert pop["resident"]["vip"] is True and pop["ivr_tags"] == {}
    names = rig.names()
    assert names.index("call.delivered") < names.index("call.established")
    assert [n for n in names if n.startswith("agent.")] == [
        "agent.logged_on", "agent.not_ready", "agent.ready", "agent.reserved", "agent.busy"]
    snap = await rig.backend.snapshot()
    assert snap["calls"][0]["agent_id"] == "a1" and snap["calls"][0]["state"] == "connected"
    scope = await rig.backend.call_scope(call_id)
    assert scope.agent_id == "a1"

    with pytest.raises(CtiRequestError) as exc:  # SIP phones cannot be answered remotely
        await rig.backend.answer_call(agent_id="a1", call_id=call_id)
    assert exc.value.code is ErrorCode.INVALID_STATE  # and it is answered already
    with pytest.raises(CtiRequestError) as exc:
        await rig.backend.clear_connection(agent_id="a2", call_id=call_id)
    assert exc.value.code is ErrorCode.NOT_FOUND

    await rig.backend.clear_connection(agent_id="a1", call_id=call_id)
    cleared = await rig.until("call.cleared")
    assert cleared.data["cause"] == "normal_clearing" and cleared.data["side"] == "callee"
    assert rig.named("agent.wrapup")[0].agent_id == "a1"
    await rig.switch.settle(lambda: bool(alice.requests("BYE")) and bool(desk.requests("BYE")))
    await rig.backend.agent_end_wrapup(agent_id="a1")
    assert rig.names()[-1] == "agent.ready"


async def test_hold_data_recording_dtmf_on_a_live_call(rig: Rig, tmp_path: Path) -> None:
    _alice, _desk, call_id = await _connected_call(rig)
    backend = rig.backend
    with pytest.raises(CtiRequestError) as exc:
        await backend.retrieve_call(agent_id="a1", call_id=call_id)
    assert exc.value.code is ErrorCode.INVALID_STATE
    await backend.hold_call(agent_id="a1", call_id=call_id)
    assert (await rig.until("call.held")).data["call_id"] == call_id
    with pytest.raises(CtiRequestError):  # DTMF needs the connected call
        await backend.send_dtmf(agent_id="a1", call_id=call_id, digits="1")
    await backend.retrieve_call(agent_id="a1", call_id=call_id)
    await rig.until("call.retrieved")
    assert (await backend.send_dtmf(agent_id="a1", call_id=call_id, digits="12#")) == {
        "digits": "12#"}
    with pytest.raises(CtiRequestError) as exc:
        await backend.send_dtmf(agent_id="a1", call_id=call_id, digits="x")
    assert exc.value.code is ErrorCode.INVALID_ARGS

    await backend.set_call_data(call_id=call_id, data={"ticket": "WO-1"})
    assert (await backend.get_call_data(call_id=call_id))["data"] == {"ticket": "WO-1"}
    assert rig.named("call.data_updated")[0].data["data"] == {"ticket": "WO-1"}

    started = await backend.record_call(call_id=call_id, action="start")
    assert started["recording"] == "recording"
    await rig.switch.settle(timeout=0.3)
    await backend.record_call(call_id=call_id, action="pause")
    await backend.record_call(call_id=call_id, action="resume")
    with pytest.raises(CtiRequestError):
        await backend.record_call(call_id=call_id, action="start")
    await backend.record_call(call_id=call_id, action="stop")
    actions = [e.data["action"] for e in rig.named("call.recording")]
    assert actions == ["start", "pause", "resume", "stop"]
    assert Path(started["ref"]).is_file() and Path(started["ref"]).stat().st_size > 44

    with pytest.raises(CtiRequestError) as exc:
        await backend.take_over(call_id=call_id, agent_id="a1")
    assert exc.value.code is ErrorCode.INVALID_ARGS  # a1 has the call already


async def test_supervisor_whisper_switch_and_stop(rig: Rig) -> None:
    _alice, _desk, call_id = await _connected_call(rig)
    boss = Phone(rig.net, "1003", 5073)
    rig.switch.register(boss)
    backend = rig.backend
    with pytest.raises(CtiRequestError) as exc:
        await backend.monitor_start(supervisor="sup", agent_id="a1", mode="whisper")
    assert exc.value.code is ErrorCode.INVALID_ARGS  # no device and no agent login
    result = await backend.monitor_start(supervisor="sup", agent_id="a1", mode="whisper",
                                         device="1003")
    started = await rig.until("monitor.started")
    assert started.data["mode"] == "whisper" and started.data["call_id"] == call_id
    assert started.agent_id is None  # the agent is not told
    assert [mode for (_c, _a, mode) in rig.trios().values()] == ["whisper"]
    await backend.monitor_switch(monitor_id=result["monitor_id"], mode="barge")
    assert [mode for (_c, _a, mode) in rig.trios().values()] == ["barge"]
    await backend.monitor_stop(monitor_id=result["monitor_id"])
    assert rig.trios() == {}
    assert (await rig.until("monitor.stopped")).data["reason"] == "stopped"
    await rig.switch.settle(lambda: bool(boss.requests("BYE")))


async def test_monitor_ends_with_the_call(rig: Rig) -> None:
    alice, _desk, _call_id = await _connected_call(rig)
    boss = Phone(rig.net, "1003", 5073)
    rig.switch.register(boss)
    await rig.backend.monitor_start(supervisor="sup", agent_id="a1", mode="listen",
                                    device="1003")
    await rig.until("monitor.started")
    alice.send_in_dialog("BYE")
    assert (await rig.until("monitor.stopped")).data["reason"] == "call_ended"
    await rig.switch.settle(lambda: bool(boss.requests("BYE")))
    assert rig.backend.monitors == {}


async def test_blind_transfer_rings_the_destination(rig: Rig) -> None:
    alice, desk, call_id = await _connected_call(rig)
    other = Phone(rig.net, "1003", 5073)
    rig.switch.register(other)
    with pytest.raises(CtiRequestError) as exc:
        await rig.backend.single_step_transfer(agent_id="a1", call_id=call_id,
                                               destination="1999")
    assert exc.value.code is ErrorCode.NOT_FOUND
    await rig.backend.single_step_transfer(agent_id="a1", call_id=call_id, destination="1003")
    transferred = await rig.until("call.transferred")
    assert transferred.data["destination"] == "1003" and transferred.agent_id == "a1"
    second = await rig.until("call.established", 2)
    assert second.data["device"] == "1003" and second.data["call_id"] == call_id
    await rig.switch.settle(lambda: bool(desk.requests("BYE")))
    assert "agent.wrapup" in rig.names()
    alice.send_in_dialog("BYE")
    await rig.until("call.cleared")
    hung = [e for e in rig.switch.of_type(CallHungUp) if e.cause == "transferred"]
    assert len(hung) == 1


async def test_click_to_dial_rings_the_agent_then_the_number(rig: Rig) -> None:
    desk, other = Phone(rig.net, "1002", 5072), Phone(rig.net, "1003", 5073)
    rig.switch.register(desk)
    rig.switch.register(other)
    await _agent_on(rig, "a1", "1002")
    result = await rig.backend.make_call(agent_id="a1", destination="1003", data={"k": "v"})
    call_id = result["call_id"]
    assert rig.named("call.originated")[0].data["destination"] == "1003"
    established = await rig.until("call.established")
    assert established.data["call_id"] == call_id and established.agent_id == "a1"
    assert desk.requests("INVITE") and other.requests("INVITE")
    assert (await rig.backend.get_call_data(call_id=call_id))["data"] == {"k": "v"}
    await rig.backend.clear_connection(agent_id="a1", call_id=call_id)
    cleared = await rig.until("call.cleared")
    assert cleared.data["side"] == "caller"


async def test_click_to_dial_unanswered_agent_phone_clears(rig: Rig) -> None:
    desk = Phone(rig.net, "1002", 5072, on_invite="busy")
    rig.switch.register(desk)
    await _agent_on(rig, "a1", "1002")
    with pytest.raises(CtiRequestError) as exc:
        await rig.backend.make_call(agent_id="nobody", destination="1003", data=None)
    assert exc.value.code is ErrorCode.NOT_FOUND
    await rig.backend.make_call(agent_id="a1", destination="1003", data=None)
    cleared = await rig.until("call.cleared")
    assert cleared.data["cause"] == "user_busy"
    assert rig.backend.state.calls == {}


async def test_agent_login_rules(rig: Rig) -> None:
    backend = rig.backend
    result = await backend.agent_login(agent_id="a1", device="1002", queues=["billing"])
    assert result["registered"] is False  # nobody registered 1002: allowed, reported
    assert await backend.agent_queues("a1") == frozenset({"billing"})
    with pytest.raises(CtiRequestError) as exc:
        await backend.agent_login(agent_id="a2", device="1002", queues=None)
    assert exc.value.code is ErrorCode.INVALID_STATE
    with pytest.raises(CtiRequestError) as exc:
        await backend.agent_end_wrapup(agent_id="a1")
    assert exc.value.code is ErrorCode.INVALID_STATE
    with pytest.raises(CtiRequestError) as exc:
        await backend.queue_callers(queue="billing")
    assert exc.value.code is ErrorCode.NOT_FOUND
    assert await backend.list_queues() == [] and await backend.queue_stats(queues=None) == []
    await backend.agent_logout(agent_id="a1", reason="")
    assert rig.names()[-1] == "agent.logged_off"
    await backend.agent_login(agent_id="a2", device="1002", queues=None)  # device free again


# ---- with the live ACD (switch.queues): agents and offers are the ACD's -------------------


def _with_acd(rig: Rig) -> QueueService:
    settings = QueueSettings(QueueConfig("support", strategy=Strategy.LONGEST_IDLE,
                                         ring_timeout_s=3.0, wrapup_s=30.0))
    service = QueueService({"support": settings}, log=MemoryLogSink(), bus=rig.switch.bus,
                           rng=Random(7))
    rig.switch.calls.dialplan = DialPlan.from_config(parse_routing({"dialplan": {"rules": [
        {"name": "support", "match": "7000", "target": "queue", "queue": "support"},
        {"name": "extensions", "match": "_10XX", "target": "extension"}]}}))
    service.attach(rig.switch.calls)
    rig.backend.desk.attach()
    return service


async def test_queue_call_through_the_live_acd_pops_and_follows_agent_states(
        rig: Rig) -> None:
    acd = _with_acd(rig)
    alice, desk = Phone(rig.net, "1001", 5071), Phone(rig.net, "1002", 5072)
    rig.switch.register(desk)
    backend = rig.backend
    with pytest.raises(CtiRequestError) as exc:
        await backend.agent_login(agent_id="a1", device="1002", queues=["nope"])
    assert exc.value.code is ErrorCode.NOT_FOUND
    nowhere = await backend.agent_login(agent_id="a9", device="1009", queues=[])
    assert nowhere["queues"] == []   # a user scoped to no queue serves none
    await backend.agent_logout(agent_id="a9", reason="")
    login = await backend.agent_login(agent_id="a1", device="1002", queues=["support"])
    assert login["state"] == "not_ready" and login["queues"] == ["support"]
    assert await backend.agent_queues("a1") == frozenset({"support"})
    await backend.agent_set_state(agent_id="a1", state="ready", reason="")
    alice.call("7000")
    delivered = await rig.until("call.delivered")
    assert delivered.data["queue"] == "support" and delivered.agent_id == "a1"
    assert delivered.data["screen_pop"]["resident"]["name"] == "张伟"
    established = await rig.until("call.established")
    call_id = established.data["call_id"]
    assert established.agent_id == "a1" and established.data["device"] == "1002"
    assert len(rig.named("call.delivered")) == 1
    names = rig.names()
    assert names.index("call.queued") < names.index("call.delivered") < names.index(
        "call.established")
    assert [e.name for e in rig.events if e.name.startswith("agent.")
            and e.agent_id == "a1"] == [
        "agent.logged_on", "agent.not_ready", "agent.ready", "agent.reserved", "agent.busy"]
    stats = await backend.queue_stats(queues=["support"])
    assert stats[0]["agents_busy"] == 1
    assert (await backend.list_queues())[0]["queue"] == "support"
    snap = await backend.snapshot()
    assert snap["agents"][0]["device"] == "1002" and snap["agents"][0]["state"] == "busy"
    await backend.hold_call(agent_id="a1", call_id=call_id)
    await backend.retrieve_call(agent_id="a1", call_id=call_id)
    await backend.clear_connection(agent_id="a1", call_id=call_id)
    await rig.until("call.cleared")
    await rig.until("agent.wrapup")
    await backend.agent_end_wrapup(agent_id="a1")
    assert acd.agent_snapshot("a1")["state"] == "ready"
    with pytest.raises(CtiRequestError) as exc:
        await backend.pickup_call(agent_id="a1", queue="support", call_id="x")
    assert exc.value.code is ErrorCode.NOT_FOUND   # no such waiting caller


# ---- consultation (media-level) ----------------------------------------------------------


async def _consulting(rig: Rig) -> tuple[Phone, Phone, Phone, str, str]:
    alice, desk, call_id = await _connected_call(rig)
    other = Phone(rig.net, "1003", 5073)
    rig.switch.register(other)
    result = await rig.backend.consultation_call(agent_id="a1", call_id=call_id,
                                                 destination="1003")
    consult_id = result["consult_call_id"]
    assert (await rig.until("call.held")).data["call_id"] == call_id
    established = await rig.until("call.established", 2)
    assert established.data["call_id"] == consult_id
    assert established.data["consult_of"] == call_id
    with pytest.raises(CtiRequestError) as exc:  # one consultation at a time
        await rig.backend.consultation_call(agent_id="a1", call_id=call_id,
                                            destination="1003")
    assert exc.value.code is ErrorCode.INVALID_STATE
    with pytest.raises(CtiRequestError) as exc:
        await rig.backend.retrieve_call(agent_id="a1", call_id=call_id)
    assert exc.value.code is ErrorCode.INVALID_STATE
    return alice, desk, other, call_id, consult_id


async def test_consult_then_complete_the_transfer(rig: Rig) -> None:
    alice, desk, other, call_id, consult_id = await _consulting(rig)
    await rig.backend.transfer_call(agent_id="a1", call_id=call_id,
                                    consult_call_id=consult_id)
    assert (await rig.until("call.transferred")).data["kind"] == "attended"
    third = await rig.until("call.established", 3)
    assert third.data["call_id"] == call_id and third.data["device"] == "1003"
    cleared = await rig.until("call.cleared")
    assert cleared.data["call_id"] == consult_id and cleared.data["cause"] == "transferred"
    await rig.switch.settle(lambda: bool(desk.requests("BYE")))
    assert "agent.wrapup" in rig.names()
    call = rig.switch.calls.calls[call_id]
    assert call.b is not None and call.b.peer == "1003"
    other.send_in_dialog("BYE")   # the new party hangs up: the call ends
    await rig.until("call.cleared", 2)
    await rig.switch.settle(lambda: bool(alice.requests("BYE")))


async def test_consult_conference_then_the_caller_leaves(rig: Rig) -> None:
    alice, _desk, other, call_id, consult_id = await _consulting(rig)
    result = await rig.backend.conference_call(agent_id="a1", call_id=call_id,
                                               consult_call_id=consult_id)
    assert result["parties"] == ["1001", "1002", "1003"]
    assert (await rig.until("call.conferenced")).data["call_id"] == call_id
    with pytest.raises(CtiRequestError) as exc:  # no hold inside a conference
        await rig.backend.hold_call(agent_id="a1", call_id=call_id)
    assert exc.value.code is ErrorCode.INVALID_STATE
    alice.send_in_dialog("BYE")
    await rig.until("call.cleared")
    await rig.switch.settle(lambda: bool(other.requests("BYE")))
    assert rig.backend.consults == {}


async def test_consult_then_reconnect_to_the_caller(rig: Rig) -> None:
    _alice, _desk, other, call_id, consult_id = await _consulting(rig)
    with pytest.raises(CtiRequestError) as exc:
        await rig.backend.reconnect_call(agent_id="a1", call_id=call_id,
                                         consult_call_id="nope")
    assert exc.value.code is ErrorCode.NOT_FOUND
    await rig.backend.reconnect_call(agent_id="a1", call_id=call_id,
                                     consult_call_id=consult_id)
    cleared = await rig.until("call.cleared")
    assert cleared.data["call_id"] == consult_id
    assert (await rig.until("call.retrieved")).data["call_id"] == call_id
    await rig.switch.settle(lambda: bool(other.requests("BYE")))
    assert (await rig.backend.send_dtmf(agent_id="a1", call_id=call_id, digits="5")) == {
        "digits": "5"}   # connected again


async def test_supervisor_takes_over_the_call(rig: Rig) -> None:
    alice, desk, call_id = await _connected_call(rig)
    boss = Phone(rig.net, "1003", 5073)
    rig.switch.register(boss)
    with pytest.raises(CtiRequestError) as exc:  # the supervisor has no agent login yet
        await rig.backend.take_over(call_id=call_id, agent_id="sup")
    assert exc.value.code is ErrorCode.NOT_FOUND
    await rig.backend.agent_login(agent_id="sup", device="1003", queues=None)
    assert (await rig.backend.take_over(call_id=call_id, agent_id="sup"))["device"] == "1003"
    assert (await rig.until("call.transferred")).data["kind"] == "take_over"
    second = await rig.until("call.established", 2)
    assert second.agent_id == "sup" and second.data["device"] == "1003"
    await rig.switch.settle(lambda: bool(desk.requests("BYE")))
    boss.send_in_dialog("BYE")
    await rig.until("call.cleared")
    await rig.switch.settle(lambda: bool(alice.requests("BYE")))
