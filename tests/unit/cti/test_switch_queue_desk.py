"""The desk's queue commands on the live switch (cti/switch_agents.py QueueCommands over
switch/queue_views.py and switch/acd/engine_ops.py): ``queue.pickup``,
``queue.set_priority`` and ``callback.schedule``, with the real call manager, SIP driver,
media engine and live ACD, and scripted SIP phones on an in-memory network."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from random import Random

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "switch"))

from _b2bua_harness import Net, Phone, Switch

from cti.backend import BackendEvent
from cti.fake import MemoryResidentDirectory
from cti.messages import CtiRequestError, ErrorCode
from cti.switch_backend import SwitchBackend
from switch.acd import MemoryLogSink, QueueConfig, QueueEvent, Strategy
from switch.queue_config import QueueSettings
from switch.queues import QueueService
from switch.router import DialPlan
from switch.routing_config import parse_routing


class Rig:
    def __init__(self, net: Net, switch: Switch, backend: SwitchBackend) -> None:
        self.net, self.switch, self.backend = net, switch, backend
        self.events: list[BackendEvent] = []
        backend.set_event_sink(self.events.append)
        self.log = MemoryLogSink()
        settings = QueueSettings(QueueConfig("support", strategy=Strategy.LONGEST_IDLE,
                                             ring_timeout_s=3.0, wrapup_s=30.0,
                                             priority_weight=0.0))
        self.acd = QueueService({"support": settings}, log=self.log, bus=switch.bus,
                                rng=Random(7))
        switch.calls.dialplan = DialPlan.from_config(parse_routing({"dialplan": {"rules": [
            {"name": "support", "match": "7000", "target": "queue", "queue": "support"},
            {"name": "extensions", "match": "_10XX", "target": "extension"}]}}))
        self.acd.attach(switch.calls)
        backend.desk.attach()

    def named(self, name: str) -> list[BackendEvent]:
        return [e for e in self.events if e.name == name]

    async def until(self, name: str, count: int = 1, timeout: float = 3.0) -> BackendEvent:
        await self.switch.settle(lambda: len(self.named(name)) >= count, timeout)
        return self.named(name)[count - 1]

    def phone(self, user: str, port: int) -> Phone:
        phone = Phone(self.net, user, port)
        self.switch.register(phone)
        return phone


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    net = Net()
    switch = Switch(net, tmp_path, no_answer_timeout_s=3.0)
    await switch.start()
    backend = SwitchBackend(switch.calls, MemoryResidentDirectory({}),
                            recordings_dir=tmp_path / "rec", ring_timeout_s=3.0)
    backend.attach()
    yield Rig(net, switch, backend)
    await backend.close()
    await switch.stop()


async def _two_waiting(rig: Rig) -> tuple[str, str]:
    """1001 then 1003 call the queue, nobody ready: two waiting callers."""
    Phone(rig.net, "1001", 5071).call("7000")
    first = (await rig.until("call.queued")).data["call_id"]
    Phone(rig.net, "1003", 5073).call("7000")
    second = (await rig.until("call.queued", 2)).data["call_id"]
    return first, second


async def test_pickup_rings_the_agent_with_that_caller_and_bridges(rig: Rig) -> None:
    backend = rig.backend
    first, second = await _two_waiting(rig)
    rig.phone("1004", 5074)
    await backend.agent_login(agent_id="b1", device="1004", queues=[])  # serves no queue
    with pytest.raises(CtiRequestError) as exc:       # not ready yet
        await backend.pickup_call(agent_id="b1", queue="support", call_id=second)
    assert exc.value.code is ErrorCode.INVALID_STATE
    await backend.agent_set_state(agent_id="b1", state="ready", reason="")
    with pytest.raises(CtiRequestError) as exc:
        await backend.pickup_call(agent_id="b1", queue="support", call_id="nope")
    assert exc.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(CtiRequestError) as exc:
        await backend.pickup_call(agent_id="ghost", queue="support", call_id=second)
    assert exc.value.code is ErrorCode.NOT_FOUND
    result = await backend.pickup_call(agent_id="b1", queue="support", call_id=second)
    assert result["state"] == "reserved"
    delivered = await rig.until("call.delivered")
    assert delivered.data["call_id"] == second and delivered.agent_id == "b1"
    established = await rig.until("call.established")
    assert established.data["call_id"] == second and established.agent_id == "b1"
    waiting = await backend.queue_callers(queue="support")
    assert [c["call_id"] for c in waiting] == [first]
    pickup = [e for e in rig.log.entries if e.event is QueueEvent.PICKUP]
    assert [(e.call_id, e.agent, e.data[0]) for e in pickup] == [(second, "b1", "2")]
    connect = [e for e in rig.log.entries if e.event is QueueEvent.CONNECT]
    assert [(e.call_id, e.agent) for e in connect] == [(second, "b1")]


async def test_set_priority_reorders_the_waiting_callers(rig: Rig) -> None:
    backend = rig.backend
    first, second = await _two_waiting(rig)
    result = await backend.set_priority(queue="support", call_id=second, priority=10)
    assert result["position"] == 1
    rows = await backend.queue_callers(queue="support")
    assert [(c["call_id"], c["priority"]) for c in rows] == [(second, 10), (first, 0)]
    with pytest.raises(CtiRequestError) as exc:
        await backend.set_priority(queue="support", call_id="nope", priority=1)
    assert exc.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(CtiRequestError) as exc:
        await backend.set_priority(queue="nope", call_id=second, priority=1)
    assert exc.value.code is ErrorCode.NOT_FOUND
    # the next ready agent gets the re-prioritised caller
    rig.phone("1002", 5072)
    await backend.agent_login(agent_id="a1", device="1002", queues=["support"])
    await backend.agent_set_state(agent_id="a1", state="ready", reason="")
    established = await rig.until("call.established")
    assert established.data["call_id"] == second


async def test_scheduled_callback_rings_the_agent_then_the_number(rig: Rig) -> None:
    backend = rig.backend
    rig.phone("1005", 5075)
    result = await backend.schedule_callback(queue="support", number="1005", at=None,
                                             data={"reason": "账单疑问"})
    assert result["position"] == 1 and result["call_id"].startswith("cb-")
    rows = await backend.queue_callers(queue="support")
    assert rows[0]["callback"] is True and rows[0]["caller"] == "1005"
    later = await backend.schedule_callback(queue="support", number="1006",
                                            at=rig.acd.wall() + 3600.0, data=None)
    assert later["position"] is None and later["at"] is not None
    assert [c.call_id for c in rig.acd.engine.scheduled_callbacks()] == [later["call_id"]]
    with pytest.raises(CtiRequestError) as exc:
        await backend.schedule_callback(queue="support", number=" ", at=None, data=None)
    assert exc.value.code is ErrorCode.INVALID_ARGS
    rig.phone("1002", 5072)
    await backend.agent_login(agent_id="a1", device="1002", queues=["support"])
    await backend.agent_set_state(agent_id="a1", state="ready", reason="")
    await rig.switch.settle(lambda: rig.acd.callbacks.connected >= 1, 4.0)
    assert rig.acd.callbacks.connected == 1
    kinds = [e.event for e in rig.log.entries
             if e.call_id == result["call_id"] and e.queue == "support"]
    assert kinds[:3] == [QueueEvent.ENTERQUEUE, QueueEvent.CALLBACK, QueueEvent.CONNECT]


# ---- a CTI transfer of a queue call is TRANSFER in the queue log (issue 6 point 3) ------


async def _queue_call_at_a1(rig: Rig) -> tuple[Phone, Phone, str]:
    caller, desk = Phone(rig.net, "1001", 5071), rig.phone("1002", 5072)
    await rig.backend.agent_login(agent_id="a1", device="1002", queues=["support"])
    await rig.backend.agent_set_state(agent_id="a1", state="ready", reason="")
    caller.call("7000")
    call_id = (await rig.until("call.established")).data["call_id"]
    assert rig.acd.engine.connected_agent(call_id) == "a1"
    return caller, desk, call_id


def _ends(rig: Rig, call_id: str) -> list[tuple[QueueEvent, tuple[str, ...]]]:
    closing = (QueueEvent.TRANSFER, QueueEvent.COMPLETEAGENT, QueueEvent.COMPLETECALLER)
    return [(e.event, e.data) for e in rig.log.entries
            if e.call_id == call_id and e.event in closing]


async def test_blind_transfer_of_a_queue_call_logs_transfer(rig: Rig) -> None:
    caller, desk, call_id = await _queue_call_at_a1(rig)
    rig.phone("1003", 5073)
    await rig.backend.single_step_transfer(agent_id="a1", call_id=call_id, destination="1003")
    await rig.until("call.established", 2)
    await rig.switch.settle(lambda: bool(desk.requests("BYE")))
    ends = _ends(rig, call_id)
    assert [e for e, _ in ends] == [QueueEvent.TRANSFER]
    assert ends[0][1][0] == "1003"
    assert rig.acd.agent_snapshot("a1")["state"] == "wrap_up"
    caller.send_in_dialog("BYE")                  # the call's end adds nothing more
    await rig.until("call.cleared")
    assert [e for e, _ in _ends(rig, call_id)] == [QueueEvent.TRANSFER]


async def test_consulted_transfer_of_a_queue_call_logs_transfer(rig: Rig) -> None:
    _caller, desk, call_id = await _queue_call_at_a1(rig)
    rig.phone("1003", 5073)
    result = await rig.backend.consultation_call(agent_id="a1", call_id=call_id,
                                                 destination="1003")
    await rig.until("call.established", 2)
    assert _ends(rig, call_id) == []                # consulting is not the end
    await rig.backend.transfer_call(agent_id="a1", call_id=call_id,
                                    consult_call_id=result["consult_call_id"])
    await rig.until("call.transferred")
    await rig.switch.settle(lambda: bool(desk.requests("BYE")))
    assert [(e, d[0]) for e, d in _ends(rig, call_id)] == [(QueueEvent.TRANSFER, "1003")]


async def test_hanging_up_a_queue_call_still_logs_completeagent(rig: Rig) -> None:
    _caller, _desk, call_id = await _queue_call_at_a1(rig)
    await rig.backend.clear_connection(agent_id="a1", call_id=call_id)
    await rig.until("call.cleared")
    assert [e for e, _ in _ends(rig, call_id)] == [QueueEvent.COMPLETEAGENT]
    assert rig.acd.call_transferred(call_id, "1003") is False
