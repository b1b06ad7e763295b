"""LiveState alone: switch bus events in, CTI events out (order, screen pop, IVR tags)."""

from __future__ import annotations

import asyncio
from typing import Any

from cti.backend import BackendEvent
from cti.live_calls import LiveAgent, LiveState
from switch.acd.agent import AgentState
from switch.b2bua import Call
from switch.call_services import _IvrControl
from switch.channel import Channel
from switch.events import (
    CallAnswered,
    CallBridged,
    CallHeld,
    CallHungUp,
    CallOffered,
    CallResumed,
    CallRinging,
    CallTransferred,
)


class SlowDirectory:
    """A resident directory that answers when told to."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def lookup(self, caller_number: str) -> dict[str, Any] | None:
        await self.release.wait()
        return {"name": "李娜", "number": caller_number}


def _offer(state: LiveState, call_id: str = "c1") -> None:
    state.handle(CallOffered(at=1.0, call_id=call_id, channel="a", caller="13900001111",
                             callee="1002"))
    state.handle(CallOffered(at=1.0, call_id=call_id, channel="b", caller="13900001111",
                             callee="1002", source="internal"))


async def test_events_wait_behind_a_slow_screen_pop_and_keep_their_order() -> None:
    directory = SlowDirectory()
    tags = {"c1": {"intent": "repair"}}
    state = LiveState(directory, tags_of=lambda cid: tags.get(cid, {}))
    events: list[BackendEvent] = []
    state.set_sink(events.append)
    state.agents["a1"] = LiveAgent("a1", "1002", frozenset({"repair"}), AgentState.READY)
    state.agent_of_device["1002"] = "a1"
    _offer(state)
    state.handle(CallRinging(at=1.1, call_id="c1", channel="b"))
    state.handle(CallAnswered(at=1.2, call_id="c1", channel="b"))
    state.handle(CallBridged(at=1.2, call_id="c1", channel="a", other_channel="b"))
    state.handle(CallHeld(at=1.3, call_id="c1", channel="a"))
    state.handle(CallResumed(at=1.4, call_id="c1", channel="a"))
    assert [e.name for e in events] == ["agent.reserved", "agent.busy"]  # calls wait
    directory.release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    names = [e.name for e in events if e.name.startswith("call.")]
    assert names == ["call.delivered", "call.established", "call.held", "call.retrieved"]
    pop = events[[e.name for e in events].index("call.delivered")].data["screen_pop"]
    assert pop == {"caller_number": "13900001111",
                   "resident": {"name": "李娜", "number": "13900001111"},
                   "ivr_tags": {"intent": "repair"}}
    assert all(e.queues == frozenset({"repair"}) for e in events)
    state.handle(CallTransferred(at=2.0, call_id="c1", channel="a", target="1003"))
    assert events[-2].name == "call.transferred" and events[-1].name == "agent.wrapup"
    state.handle(CallHungUp(at=3.0, call_id="c1", channel="a", cause="normal_clearing",
                            side="caller"))
    assert events[-1].name == "call.cleared" and events[-1].data["cause"] == "normal_clearing"
    assert state.calls == {}


async def test_a_lookup_that_never_ends_pops_without_the_record() -> None:
    state = LiveState(SlowDirectory(), lookup_timeout_s=0.05)
    events: list[BackendEvent] = []
    state.set_sink(events.append)
    _offer(state)
    state.handle(CallRinging(at=1.1, call_id="c1", channel="b"))
    state.handle(CallHungUp(at=1.2, call_id="c1", channel="a", cause="originator_cancel",
                            side="caller"))
    assert events == []
    await asyncio.sleep(0.2)
    assert [e.name for e in events] == ["call.delivered", "call.cleared"]
    assert events[0].data["screen_pop"]["resident"] is None
    assert events[0].agent_id is None  # nobody logged in on 1002: supervisors see it


def test_the_ivr_tag_statement_records_tags_on_the_call() -> None:
    call = Call("c9", Channel("sip/a", "caller", "1001"), "1001", "12345")
    control = _IvrControl(manager=None, call=call)  # type: ignore[arg-type]
    control.tag("intent", "bill")
    control.tag("account", "100001")
    assert call.tags == {"intent": "bill", "account": "100001"}


async def test_an_acd_offer_pops_once_and_a_withdrawn_offer_frees_the_call() -> None:
    state = LiveState(None, tags_of=lambda cid: {"菜单": "0"})
    events: list[BackendEvent] = []
    state.set_sink(events.append)
    state.handle(CallOffered(at=1.0, call_id="c1", channel="a", caller="13900001111",
                             callee="12345"))
    state.deliver_offer("c1", "a7", "1007", "客服组", {"贵宾": "true"})
    (delivered,) = events
    assert delivered.name == "call.delivered" and delivered.agent_id == "a7"
    assert delivered.queues == frozenset({"客服组"})
    assert delivered.data["screen_pop"]["ivr_tags"] == {"贵宾": "true", "菜单": "0"}
    assert state.calls["c1"].state == "alerting"
    state.withdraw_offer("c1", "a7")   # ring timeout: nobody else is free
    assert (state.calls["c1"].agent_id, state.calls["c1"].state) == (None, "queued")
    state.deliver_offer("c1", "a8", "1008", "客服组")
    assert [e.agent_id for e in events] == ["a7", "a8"]
