"""The pure rules of call forwarding (switch.forwarding): targets, decisions, the loop
limit, and the cached table surviving a database outage."""

from __future__ import annotations

import pytest

from storage.db import StorageUnavailableError
from switch.forwarding import (
    ForwardDecision,
    ForwardingTable,
    ForwardSettings,
    Reason,
    forward_for,
    validate_target,
)


@pytest.mark.parametrize("good", ["1002", "9013800000000", "+8613800000000", "*72",
                                  "voicemail:1001", "voicemail:operator"])
def test_valid_targets(good: str) -> None:
    assert validate_target(f" {good} ") == good


@pytest.mark.parametrize("bad", ["", "10 02", "sip:1002@x", "voicemail:", "voicemail:a b",
                                 "1" * 33])
def test_invalid_targets(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_target(bad)


def _decide(settings: ForwardSettings | None, reason: Reason, *, hops: int = 0,
            fallback: bool = True, boxes: tuple[str, ...] = ("1002",)) -> ForwardDecision:
    return forward_for(settings, reason, extension="1002", hops=hops, limit=3,
                       voicemail_fallback=fallback, box_exists=boxes.__contains__)


def test_a_set_forward_wins_over_voicemail() -> None:
    s = ForwardSettings("1002", busy="1003", no_answer="9013800")
    assert _decide(s, Reason.BUSY) == ForwardDecision("forward", "1003")
    assert _decide(s, Reason.NO_ANSWER) == ForwardDecision("forward", "9013800")
    assert _decide(s, Reason.ALWAYS) == ForwardDecision("none")


def test_without_forward_voicemail_when_enabled_and_the_box_exists() -> None:
    assert _decide(None, Reason.BUSY) == ForwardDecision("voicemail", "1002")
    assert _decide(None, Reason.NO_ANSWER, fallback=False) == ForwardDecision("none")
    assert _decide(None, Reason.NO_ANSWER, boxes=()) == ForwardDecision("none")
    assert _decide(None, Reason.ALWAYS) == ForwardDecision("none")  # never before ringing


def test_the_forward_beyond_the_limit_is_a_loop() -> None:
    s = ForwardSettings("1002", always="1003")
    assert _decide(s, Reason.ALWAYS, hops=2) == ForwardDecision("forward", "1003")
    assert _decide(s, Reason.ALWAYS, hops=3) == ForwardDecision("loop")


def test_describe() -> None:
    assert ForwardSettings("1").describe() == "no forwarding"
    assert ForwardSettings("1", always="2", no_answer="3", ring_s=12).describe() == (
        "always -> 2, no-answer -> 3 after 12 s")


async def test_table_keeps_its_settings_through_a_database_outage() -> None:
    answers: list[object] = [{"1001": ForwardSettings("1001", busy="1002")},
                             StorageUnavailableError("down")]

    async def load() -> dict[str, ForwardSettings]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    table = ForwardingTable(load, refresh_s=0)
    await table.start()
    assert table.get("1001") == ForwardSettings("1001", busy="1002")
    await table.refresh()
    assert table.get("1001") == ForwardSettings("1001", busy="1002") and not answers
    await table.stop()
