"""Overload control (``switch.overload``): new INVITEs get 503 + Retry-After while too
many calls are in setup or while the event loop lags; calls already admitted go on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _b2bua_harness import Net, Phone, Switch

from switch.overload import OverloadGuard


@pytest.fixture
async def net() -> Net:
    return Net()


@pytest.fixture
async def switch(net: Net, tmp_path: Path) -> AsyncIterator[Switch]:
    sw = Switch(net, tmp_path, no_answer_timeout_s=5.0)
    await sw.start()
    yield sw
    sw.driver.overload.stop()
    await sw.stop()


async def test_inflight_bound_sheds_new_calls_with_503_and_retry_after(
        net: Net, switch: Switch) -> None:
    switch.driver.overload = OverloadGuard(max_inflight=1, retry_after_s=7)
    alice = Phone(net, "1001", 5071)
    carol = Phone(net, "1003", 5073)
    bob = Phone(net, "1002", 5072, on_invite="ring")
    switch.register(bob)
    first = alice.call("1002")
    await switch.settle(lambda: bool(bob.requests("INVITE")))
    assert switch.driver.overload.inflight == 1
    shed = carol.invite("1002")  # refused before authentication: no 407 first
    assert carol.responses(shed) == [503]
    assert carol.last_response(503).headers.get("Retry-After") == "7"
    assert switch.driver.overload.stats["shed_inflight"] == 1
    bob.accept()
    await switch.settle(lambda: 200 in alice.responses(first))
    assert switch.driver.overload.inflight == 0  # the answer ended its setup
    again = carol.call("1002")
    await switch.settle(lambda: len(bob.requests("INVITE")) == 2)
    assert 503 not in carol.responses(again)
    carol.cancel(again)  # a cancelled setup is counted out too
    await switch.settle(lambda: switch.driver.overload.inflight == 0)
    alice.send_in_dialog("BYE")
    await switch.settle(lambda: len(switch.cdrs) == 2)


async def test_loop_lag_sheds_until_the_loop_keeps_up(net: Net, switch: Switch) -> None:
    guard = OverloadGuard(max_loop_lag_s=0.1, interval_s=0.02)
    switch.driver.overload = guard
    guard.start()
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    await asyncio.sleep(0.05)
    assert guard.reason() is None
    time.sleep(0.3)  # one long stall is not saturation
    await asyncio.sleep(0.03)
    assert guard.reason() is None
    for _ in range(3):  # late every time: saturated
        time.sleep(0.15)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert guard.lag_s > 0.1 and guard.reason() == "lag"
    txn = alice.invite("1002")
    assert alice.responses(txn) == [503]
    await asyncio.sleep(0.1)  # punctual samples: the node keeps up again
    assert guard.reason() is None
    txn = alice.call("1002")
    await switch.settle(lambda: 200 in alice.responses(txn))
    assert guard.stats["shed_lag"] == 1


def test_no_bounds_never_sheds() -> None:
    guard = OverloadGuard()
    for _ in range(10_000):
        assert not guard.shed()


async def test_stateless_invite_challenge_and_shedding(net: Net, switch: Switch) -> None:
    from switch.invite_challenge import chain_invite_challenge

    switch.core.stateless_hook = chain_invite_challenge(switch.driver, None)
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    txn = alice.call("1002")  # 407 without a transaction, then the credentialed INVITE
    await switch.settle(lambda: 200 in alice.responses(txn))
    assert switch.core.stats["stateless"] == 1 and switch.core.stats["stray_acks"] == 1
    assert switch.driver.stats["challenged"] == 1
    alice.send_in_dialog("BYE")  # in-dialog requests are never answered statelessly
    await switch.settle(lambda: bool(switch.cdrs))
    switch.driver.overload = OverloadGuard(max_inflight=1)
    switch.driver.overload.inflight = 1  # a call in setup elsewhere
    shed = alice.invite("1002")
    assert alice.responses(shed) == [503] and switch.core.stats["stateless"] == 2
