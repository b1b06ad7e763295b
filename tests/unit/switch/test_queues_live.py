"""The live ACD (switch.queues) on real calls: the node's SipCore, SIP driver and call manager
with scripted phones (the b2bua harness) and the real media service on loopback.

The races of ISSUE 6 on live legs: two agents answering a ring-all offer, the caller hanging
up while an agent's phone rings, an agent logging out while reserved; plus the dial-plan
queue target, a device that cannot be rung, and the queue log a KPI is computed from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from random import Random

import pytest
from _b2bua_harness import Net, Phone, Switch

from cti.acd_events import acd_events
from signaling.events import CancelReceived
from switch.acd import (
    AcdError,
    AgentState,
    AgentStateError,
    EmptyRule,
    MemoryLogSink,
    OverflowTarget,
    QueueConfig,
    QueueEvent,
    Strategy,
)
from switch.acd.kpi import queue_kpis
from switch.events import AgentStateChanged, CallBridged, CallDequeued, CallQueued
from switch.queue_config import QueueSettings
from switch.queues import QueueService, announcement_text
from switch.router import DialPlan
from switch.routing_config import parse_routing

ROUTING = {"dialplan": {"rules": [
    {"name": "support", "match": "7000", "target": "queue", "queue": "support"},
    {"name": "extensions", "match": "_10XX", "target": "extension"},
]}}


def _acd(switch: Switch, *, extra: tuple[QueueConfig, ...] = (),
         **queue: object) -> tuple[QueueService, MemoryLogSink]:
    options = {"strategy": Strategy.RING_ALL, "ring_timeout_s": 3.0, "wrapup_s": 0.2,
               **queue}
    log = MemoryLogSink()
    configs = [QueueConfig("support", **options), *extra]  # type: ignore[arg-type]
    service = QueueService({c.name: QueueSettings(c) for c in configs},
                           log=log, bus=switch.bus, rng=Random(7))
    switch.calls.dialplan = DialPlan.from_config(parse_routing(ROUTING))
    service.attach(switch.calls)
    return service, log


@pytest.fixture
async def net() -> Net:
    return Net()


@pytest.fixture
async def switch(net: Net, tmp_path: Path) -> AsyncIterator[Switch]:
    sw = Switch(net, tmp_path, no_answer_timeout_s=5.0)
    await sw.start()
    yield sw
    await sw.stop()


def _events(log: MemoryLogSink, event: QueueEvent) -> list[tuple[str, tuple[str, ...]]]:
    return [(e.agent, e.data) for e in log.entries if e.event is event]


def _cancelled(phone: Phone) -> bool:
    return any(isinstance(e, CancelReceived) for e in phone.events) \
        or bool(phone.requests("BYE"))


async def test_ring_all_two_agents_answer_one_is_bridged_the_other_cancelled(
        net: Net, switch: Switch) -> None:
    acd, log = _acd(switch)
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="ring")
    carol = Phone(net, "1003", 5073, on_invite="ring")
    switch.register(bob)
    switch.register(carol)
    acd.login("a-bob", "1002", ["support"])
    acd.login("a-carol", "1003", ["support"])
    seen: list[object] = []
    acd.add_observer(seen.append)
    txn = alice.call("7000")
    await switch.settle(lambda: 200 in alice.responses(txn))  # the switch answers to queue
    await switch.settle(lambda: bool(bob.requests("INVITE") and carol.requests("INVITE")))
    assert {a["state"] for a in acd.agents()} == {"reserved"}
    net._pumping = True  # both 200s are on the wire before the node reads either
    bob.accept()
    carol.accept()
    net._pumping = False
    net.pump()
    await switch.settle(lambda: len(switch.of_type(CallBridged)) == 2)
    await switch.settle(lambda: _cancelled(carol))
    assert not _cancelled(bob)
    to_carol = [line.split()[0] for _, dest, line in net.trace if dest == 5073]
    assert "ACK" in to_carol and "BYE" in to_carol  # carol did answer: her leg gets a BYE
    assert acd.engine.agent("a-bob").state is AgentState.BUSY
    assert acd.engine.agent("a-carol").state is AgentState.READY
    assert [a for a, _ in _events(log, QueueEvent.CONNECT)] == ["a-bob"]
    canceled = _events(log, QueueEvent.RINGCANCELED)
    assert [(a, d[1]) for a, d in canceled] == [("a-carol", "answered-elsewhere")]
    bridged = {e.channel for e in switch.of_type(CallBridged)}
    assert len(bridged) == 2 and len(switch.calls.calls) == 1
    dequeued = switch.of_type(CallDequeued)
    assert [(d.reason, d.agent_id) for d in dequeued] == [("answered", "a-bob")]
    cti = [e for a in seen for e in acd_events(a, queues_of=acd.queues_of,  # type: ignore[arg-type]
                                               device_of=acd.device_of)]
    names = [e.name for e in cti]
    assert names.count("call.queued") == 1 and names.count("call.established") == 1
    established = next(e for e in cti if e.name == "call.established")
    assert established.data["agent_id"] == "a-bob" and established.queues == {"support"}
    assert names.count("agent.reserved") == 2 and names.count("agent.busy") == 1
    alice.send_in_dialog("BYE")
    await switch.settle(lambda: bool(bob.requests("BYE")) and bool(switch.cdrs))
    await switch.settle(lambda: acd.engine.agent("a-bob").state is AgentState.READY)
    assert [e.event for e in log.entries if e.agent == "a-bob" and e.queue == "support"] == [
        QueueEvent.CONNECT, QueueEvent.COMPLETECALLER, QueueEvent.WRAPUP]
    kpi = queue_kpis(log.entries, queue="support")
    assert (kpi.offered, kpi.answered, kpi.abandoned) == (1, 1, 0)
    assert acd.live_kpis("support") == kpi
    assert switch.cdrs[0].disposition.value == "answered"
    assert (switch.cdrs[0].queue, switch.cdrs[0].agent_id) == ("support", "a-bob")
    assert any(isinstance(e, AgentStateChanged) and e.new == "busy" for e in switch.published)


async def test_caller_hangs_up_while_offered_agent_leg_cancelled_abandon_logged(
        net: Net, switch: Switch) -> None:
    acd, log = _acd(switch)
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="ring")
    switch.register(bob)
    acd.login("a-bob", "1002", ["support"])
    txn = alice.call("7000")
    await switch.settle(lambda: 200 in alice.responses(txn))
    await switch.settle(lambda: bool(bob.requests("INVITE")))
    assert acd.waiting_callers("support")[0]["ringing"] == ["a-bob"]
    alice.send_in_dialog("BYE")
    await switch.settle(lambda: _cancelled(bob))
    await switch.settle(lambda: not switch.calls.calls)
    assert acd.engine.agent("a-bob").state is AgentState.READY
    assert [(a, d[1]) for a, d in _events(log, QueueEvent.RINGCANCELED)] == [
        ("a-bob", "caller-abandoned")]
    assert len(_events(log, QueueEvent.ABANDON)) == 1
    assert not _events(log, QueueEvent.CONNECT)
    kpi = queue_kpis(log.entries, queue="support")
    assert (kpi.offered, kpi.answered, kpi.abandoned) == (1, 0, 1)
    assert switch.of_type(CallQueued)[0].queue == "support"
    await switch.settle(lambda: switch.media.backends[0].load == 0)


async def test_agent_logs_out_while_reserved_caller_keeps_place_and_reaches_next(
        net: Net, switch: Switch) -> None:
    acd, log = _acd(switch, strategy=Strategy.LONGEST_IDLE)
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="ring")
    carol = Phone(net, "1003", 5073, on_invite="answer")
    switch.register(bob)
    switch.register(carol)
    acd.login("a-bob", "1002", ["support"])
    txn = alice.call("7000")
    await switch.settle(lambda: 200 in alice.responses(txn))
    await switch.settle(lambda: bool(bob.requests("INVITE")))
    assert acd.agent_snapshot("a-bob")["state"] == "reserved"
    acd.logout("a-bob")
    await switch.settle(lambda: _cancelled(bob))
    assert acd.engine.agent("a-bob").state is AgentState.LOGGED_OFF
    assert [c["position"] for c in acd.waiting_callers("support")] == [1]
    assert [(a, d[1]) for a, d in _events(log, QueueEvent.RINGCANCELED)] == [
        ("a-bob", "agent-logged-out")]
    acd.login("a-carol", "1003", ["support"])  # answers at once
    await switch.settle(lambda: len(switch.of_type(CallBridged)) == 2)
    assert [a for a, _ in _events(log, QueueEvent.CONNECT)] == ["a-carol"]
    assert acd.engine.agent("a-carol").state is AgentState.BUSY
    carol.send_in_dialog("BYE")  # the agent hangs up: COMPLETEAGENT, then wrap-up
    await switch.settle(lambda: bool(alice.requests("BYE")))
    assert _events(log, QueueEvent.COMPLETEAGENT)
    assert acd.engine.agent("a-carol").state is AgentState.WRAP_UP
    await switch.settle(lambda: acd.engine.agent("a-carol").state is AgentState.READY)


async def test_unreachable_device_agent_goes_not_ready_and_caller_leaves_closed(
        net: Net, switch: Switch) -> None:
    acd, log = _acd(switch, max_no_answer=2, leave_empty=EmptyRule.NO_AGENT_AVAILABLE)
    alice = Phone(net, "1001", 5071)
    acd.login("a-ghost", "1009", ["support"])  # nobody registered as 1009
    txn = alice.call("7000")
    await switch.settle(lambda: 200 in alice.responses(txn))
    await switch.settle(lambda: bool(alice.requests("BYE")))  # apology skipped: no TTS
    assert acd.engine.agent("a-ghost").state is AgentState.NOT_READY
    assert acd.engine.agent("a-ghost").reason == "no-answer"
    assert len(_events(log, QueueEvent.RINGNOANSWER)) == 2
    assert len(_events(log, QueueEvent.EXITEMPTY)) == 1
    assert [d.reason for d in switch.of_type(CallDequeued)] == ["closed"]


async def test_ring_timeout_moves_to_the_next_agent(net: Net, switch: Switch) -> None:
    acd, log = _acd(switch, strategy=Strategy.LINEAR, ring_timeout_s=0.4)
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="ring")
    carol = Phone(net, "1003", 5073, on_invite="answer")
    switch.register(bob)
    switch.register(carol)
    acd.login("a-bob", "1002", ["support"])
    acd.login("a-carol", "1003", ["support"])
    txn = alice.call("7000")
    await switch.settle(lambda: 200 in alice.responses(txn))
    await switch.settle(lambda: len(switch.of_type(CallBridged)) == 2, timeout=3.0)
    assert _cancelled(bob)
    assert [a for a, _ in _events(log, QueueEvent.RINGNOANSWER)] == ["a-bob"]
    assert [a for a, _ in _events(log, QueueEvent.CONNECT)] == ["a-carol"]
    alice.send_in_dialog("BYE")
    await switch.settle(lambda: not switch.calls.calls)


def test_announcement_text_in_chinese() -> None:
    assert announcement_text(4, 95.0) == "您前面还有3位，预计等待2分钟。"
    assert announcement_text(1, None) == "您是下一位。"
    assert announcement_text(None, 10.0) == "预计等待1分钟。"
    assert announcement_text(None, None) == ""
    assert announcement_text(2, None, "1") == "您前面还有1位。如需回电，请按1。"


class _QueueStepIvr:
    """An IVR runner whose program is one statement, ``queue support maxwait 0.5s``, run by
    the real LiveCall over the call manager's real call control."""

    def __init__(self, media: object, tmp: Path) -> None:
        self.media = media
        self.tmp = tmp
        self.outcomes: list[str] = []

    def has(self, name: str) -> bool:
        return name == "hotline"

    async def run(self, name: str, cid: int, control: object, *, caller: str, called: str,
                  call_id: str) -> None:
        from ivr_lang.live import LiveCall

        live = LiveCall(self.media, cid, control, caller=caller, called=called,  # type: ignore[arg-type]
                        call_id=call_id, recordings_dir=self.tmp)
        self.outcomes.append(await live.enqueue("support", skill=None, priority=5,
                                                maxwait_s=0.5, tags={"类别": "报修"}))


def _with_ivr(switch: Switch, tmp: Path) -> _QueueStepIvr:
    ivr = _QueueStepIvr(switch.media, tmp)
    switch.calls.ivr = ivr
    switch.calls.dialplan = DialPlan.from_config(parse_routing({"dialplan": {"rules": [
        {"name": "hotline", "match": "12345", "target": "ivr", "program": "hotline"}]}}))
    return ivr


async def test_ivr_queue_statement_answered_keeps_the_bridge(net: Net, switch: Switch,
                                                             tmp_path: Path) -> None:
    acd, log = _acd(switch)
    ivr = _with_ivr(switch, tmp_path)
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="ring")
    switch.register(bob)
    acd.login("a-bob", "1002", ["support"])
    txn = alice.call("12345")
    await switch.settle(lambda: bool(bob.requests("INVITE")))
    call_id = next(iter(switch.calls.calls))
    info = acd.caller_info(call_id)
    assert info is not None and info["caller"] == "1001" and info["tags"] == {"类别": "报修"}
    bob.accept()
    await switch.settle(lambda: ivr.outcomes == ["answered"])
    await switch.settle(lambda: len(switch.of_type(CallBridged)) == 2)
    assert 200 in alice.responses(txn) and not alice.requests("BYE")
    assert _events(log, QueueEvent.ENTERQUEUE)[0][1][0] == "5"  # the statement's priority
    bob.send_in_dialog("BYE")
    await switch.settle(lambda: bool(alice.requests("BYE")))
    assert _events(log, QueueEvent.COMPLETEAGENT)


async def test_ivr_queue_statement_maxwait_returns_timeout(net: Net, switch: Switch,
                                                           tmp_path: Path) -> None:
    _, log = _acd(switch)  # join_empty "never": the caller waits for agents that never come
    ivr = _with_ivr(switch, tmp_path)
    alice = Phone(net, "1001", 5071)
    alice.call("12345")
    await switch.settle(lambda: ivr.outcomes == ["timeout"])
    await switch.settle(lambda: bool(alice.requests("BYE")))  # the program ended: hang up
    (_, data), = _events(log, QueueEvent.EXITWITHTIMEOUT)
    assert 0.45 <= float(data[2]) < 1.5  # waited about the statement's maxwait


async def test_agent_api_refuses_misuse(switch: Switch) -> None:
    acd, log = _acd(switch)
    with pytest.raises(AcdError):
        acd.login("a1", "1002", ["nowhere"])
    snap = acd.login("a1", "1002", ["support"], ready=False)
    assert (snap["state"], snap["device"], snap["queues"]) == ("not_ready", "extension:1002",
                                                               ["support"])
    with pytest.raises(AgentStateError):
        acd.login("a1", "1002")
    with pytest.raises(AgentStateError):
        acd.end_wrapup("a1")
    with pytest.raises(AcdError):
        acd.set_state("a1", "busy")
    with pytest.raises(AcdError):
        acd.logout("nobody")
    assert acd.set_state("a1", "ready")["state"] == "ready"
    assert acd.set_state("a1", "not_ready", "lunch")["reason"] == "lunch"
    assert acd.logout("a1")["state"] == "logged_off"
    assert [e.event for e in log.entries if e.event is QueueEvent.PAUSE] == [QueueEvent.PAUSE]
    assert acd.queues_of("a1") == {"support"} and acd.device_of("a1") == "1002"


async def test_overflow_to_another_queue_reaches_its_agent(net: Net, switch: Switch) -> None:
    backup = QueueConfig("backup", ring_timeout_s=3.0)
    acd, log = _acd(switch, extra=(backup,), max_wait_s=0.3,
                    overflow=OverflowTarget("queue", "backup"))
    alice = Phone(net, "1001", 5071)
    carol = Phone(net, "1003", 5073, on_invite="answer")
    switch.register(carol)
    acd.login("a-carol", "1003", ["backup"])  # nobody serves "support"
    txn = alice.call("7000")
    await switch.settle(lambda: 200 in alice.responses(txn))
    await switch.settle(lambda: len(switch.of_type(CallBridged)) == 2)
    assert [e.queue for e in log.entries if e.event is QueueEvent.ENTERQUEUE] == [
        "support", "backup"]
    assert _events(log, QueueEvent.EXITWITHTIMEOUT)[0][1][3] == "queue:backup"
    assert [(e.queue, e.agent) for e in log.entries if e.event is QueueEvent.CONNECT] == [
        ("backup", "a-carol")]
    alice.send_in_dialog("BYE")
    await switch.settle(lambda: not switch.calls.calls)


async def test_dial_plan_caller_overflows_to_an_ivr_program(net: Net, switch: Switch,
                                                            tmp_path: Path) -> None:
    _, log = _acd(switch, join_empty=EmptyRule.NO_AGENT_LOGGED_IN,
                  overflow=OverflowTarget("ivr", "hotline"))
    runs: list[tuple[str, str]] = []

    class Ivr:
        def has(self, name: str) -> bool:
            return name == "hotline"

        async def run(self, name: str, cid: int, control: object, *, caller: str,
                      called: str, call_id: str) -> None:
            runs.append((name, caller))
            control.hangup()  # type: ignore[attr-defined]

    switch.calls.ivr = Ivr()
    alice = Phone(net, "1001", 5071)
    alice.call("7000")
    await switch.settle(lambda: bool(alice.requests("BYE")))
    assert runs == [("hotline", "1001")]
    assert [(a, d) for a, d in _events(log, QueueEvent.JOINEMPTY)] == [("NONE", ("ivr:hotline",))]
    assert [d.reason for d in switch.of_type(CallDequeued)] == ["closed"]


async def test_agent_answer_crossing_the_callers_bye_leaves_nothing_behind(
        net: Net, switch: Switch) -> None:
    acd, log = _acd(switch)
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="ring")
    switch.register(bob)
    acd.login("a-bob", "1002", ["support"])
    txn = alice.call("7000")
    await switch.settle(lambda: 200 in alice.responses(txn))
    await switch.settle(lambda: bool(bob.requests("INVITE")))
    net._pumping = True  # the caller's BYE and the agent's 200 cross on the wire
    alice.send_in_dialog("BYE")
    bob.accept()
    net._pumping = False
    net.pump()
    await switch.settle(lambda: not switch.calls.calls)
    await switch.settle(lambda: acd.engine.agent("a-bob").state is AgentState.READY)
    await switch.settle(lambda: bool(bob.requests("BYE")))  # the agent's leg is ended
    events = {e.event for e in log.entries if e.queue == "support"}
    assert not ({QueueEvent.CONNECT, QueueEvent.ABANDON} <= events)  # one story, not both
    assert QueueEvent.ABANDON in events or QueueEvent.COMPLETECALLER in events
    await acd.stop()  # the node stops: agents still logged in are logged off
    assert [e.agent for e in log.entries if e.event is QueueEvent.AGENTLOGOFF] == ["a-bob"]


async def test_callback_in_queue_keeps_the_place_then_agent_first_calls_back(
        net: Net, switch: Switch) -> None:
    from switch.queue_config import QueueSettings as Settings

    acd, log = _acd(switch)
    acd.settings["support"] = Settings(acd.settings["support"].acd, callback_key="1")
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="answer")
    switch.register(alice)
    switch.register(bob)
    acd.login("a-bob", "1002", ["support"], ready=False)
    txn = alice.call("7000")
    await switch.settle(lambda: 200 in alice.responses(txn))
    alice.send_in_dialog("INFO", b"Signal=1\r\nDuration=160\r\n", "application/dtmf-relay")
    await switch.settle(lambda: bool(alice.requests("BYE")))  # told, then hung up
    (_, data), = _events(log, QueueEvent.CALLBACK)
    assert data[0] == "1" and data[2] == "1001"  # position kept, number to call
    assert not _events(log, QueueEvent.ABANDON)
    assert [c["call_id"] for c in acd.waiting_callers("support")] == [log.entries[-1].call_id]
    acd.set_state("a-bob", "ready")  # the agent is rung first, then alice is called back
    await switch.settle(lambda: len(alice.requests("INVITE")) == 1)
    await switch.settle(lambda: acd.callbacks.connected == 1)
    (agent, connect), = _events(log, QueueEvent.CONNECT)
    assert agent == "a-bob" and connect[3] == "callback"
    assert acd.engine.agent("a-bob").state is AgentState.BUSY
    bob.send_in_dialog("BYE")
    await switch.settle(lambda: len(alice.requests("BYE")) == 2)
    assert _events(log, QueueEvent.COMPLETEAGENT)
    await switch.settle(lambda: acd.engine.agent("a-bob").state is AgentState.READY)
    assert acd.callbacks.active == 0
    kpi = queue_kpis(log.entries, queue="support")
    assert (kpi.offered, kpi.callbacks, kpi.abandoned) == (1, 1, 0)


async def test_dial_plan_caller_overflows_to_voicemail(net: Net, switch: Switch) -> None:
    _, log = _acd(switch, max_wait_s=0.2, overflow=OverflowTarget("voicemail", "support"))
    records: list[tuple[str, str]] = []

    class Voicemail:  # the switch.voicemail.VoicemailService call the shell makes
        async def record(self, call_id: str, cid: int, *, box: str, caller: str,
                         on_recording: object = None) -> None:
            records.append((box, caller))
            on_recording("vm/support/1.wav")  # type: ignore[operator]

    switch.calls.voicemail = Voicemail()  # type: ignore[attr-defined]
    alice = Phone(net, "1001", 5071)
    alice.call("7000")
    await switch.settle(lambda: bool(alice.requests("BYE")))
    assert records == [("support", "1001")]
    assert _events(log, QueueEvent.EXITWITHTIMEOUT)[0][1][3] == "voicemail:support"
    await switch.settle(lambda: bool(switch.cdrs))
    assert switch.cdrs[0].recording_ref == "vm/support/1.wav"
