"""The event bus: fan-out, filters, bounded queues that drop the oldest, never blocking."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from switch.bus import EventBus
from switch.events import (
    AgentStateChanged,
    CallAnswered,
    CallHungUp,
    CallOffered,
    DigitReceived,
    Event,
)


def _digit(i: int) -> DigitReceived:
    return DigitReceived(at=float(i), call_id="c1", channel="ch1", digit=str(i % 10))


def test_events_are_frozen_slotted_and_keyword_only() -> None:
    ev = CallHungUp(at=1.0, call_id="c", channel="a", cause="normal_clearing", side="caller")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.cause = "x"  # type: ignore[misc]
    assert not hasattr(ev, "__dict__")
    with pytest.raises(TypeError):
        CallHungUp(1.0, "c", "a", "normal_clearing", "caller")  # type: ignore[misc]


async def test_fan_out_and_filters() -> None:
    bus = EventBus()
    everything = bus.subscribe(name="all")
    calls = bus.subscribe((CallOffered, CallHungUp), name="cdr")
    answered = bus.subscribe(CallAnswered)
    agents = bus.subscribe(lambda e: isinstance(e, AgentStateChanged) and e.new == "ready")
    events: list[Event] = [
        CallOffered(at=1, call_id="c", channel="a", caller="138", callee="12345"),
        CallAnswered(at=2, call_id="c", channel="a", codec="PCMA"),
        AgentStateChanged(at=3, agent_id="7", old="logged_out", new="ready"),
        AgentStateChanged(at=4, agent_id="7", old="ready", new="busy"),
        CallHungUp(at=5, call_id="c", channel="a", cause="normal_clearing", side="caller"),
    ]
    for ev in events:
        bus.publish(ev)
    assert [everything.get_nowait() for _ in range(5)] == events
    assert await calls.get() == events[0] and await calls.get() == events[4]
    assert calls.get_nowait() is None
    assert await answered.get() == events[1]
    assert await agents.get() == events[2] and agents.get_nowait() is None
    assert bus.metrics().published == 5


async def test_slow_subscriber_drops_oldest_and_is_marked_lagged() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=3, name="slow")
    fast = bus.subscribe(maxsize=100, name="fast")
    for i in range(10):
        bus.publish(_digit(i))  # never blocks although nobody reads
    assert slow.qsize() == 3 and slow.dropped == 7 and slow.lagged
    assert [slow.get_nowait().at for _ in range(3)] == [7.0, 8.0, 9.0]  # type: ignore[union-attr]
    assert fast.qsize() == 10 and not fast.lagged
    assert slow.ack_lag() == 7 and not slow.lagged and slow.ack_lag() == 0
    m = bus.metrics()
    assert m.dropped == 7 and m.subscribers == 2
    assert {s.name: s.dropped for s in m.per_subscriber} == {"slow": 7, "fast": 0}


async def test_publisher_is_not_stalled_by_a_consumer_that_never_reads() -> None:
    bus = EventBus()
    bus.subscribe(maxsize=1, name="stuck")
    reader = bus.subscribe(maxsize=10_000)
    got: list[float] = []

    async def consume() -> None:
        async for ev in reader:
            got.append(ev.at)

    task = asyncio.create_task(consume())
    for i in range(5000):
        bus.publish(_digit(i))
        if i % 500 == 0:
            await asyncio.sleep(0)
    reader.close()
    await asyncio.wait_for(task, 5)
    assert got == [float(i) for i in range(5000)]


async def test_iteration_ends_after_close_with_queued_events_delivered() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(_digit(1))
    bus.publish(_digit(2))
    bus.close()
    bus.publish(_digit(3))  # after close: not delivered
    assert [ev.at async for ev in sub] == [1.0, 2.0]
    with pytest.raises(StopAsyncIteration):
        await sub.get()
    assert bus.subscriptions == ()


async def test_waiting_reader_wakes_on_publish_and_on_unsubscribe() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    bus.publish(_digit(4))
    assert (await asyncio.wait_for(waiter, 1)).at == 4.0
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    bus.unsubscribe(sub)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiter, 1)


async def test_a_failing_filter_only_affects_its_subscriber() -> None:
    bus = EventBus()

    def broken(ev: Event) -> bool:
        raise RuntimeError("bug")

    bad = bus.subscribe(broken)
    good = bus.subscribe()
    bus.publish(_digit(1))
    assert good.get_nowait() is not None and bad.get_nowait() is None
    assert bus.metrics().filter_errors == 1


def test_maxsize_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EventBus().subscribe(maxsize=0)


def test_taps_see_every_event_in_order_and_can_be_removed() -> None:
    bus = EventBus()
    seen: list[float] = []
    remove = bus.tap(lambda ev: seen.append(ev.at))

    def broken(ev: Event) -> None:
        raise RuntimeError("bug")

    bus.tap(broken)
    bus.subscribe(maxsize=1)  # a lagging subscriber does not affect taps
    for i in range(100):
        bus.publish(_digit(i))
    assert seen == [float(i) for i in range(100)]
    assert bus.metrics().filter_errors == 100
    remove()
    bus.publish(_digit(100))
    assert len(seen) == 100
