"""The channel state machine (switch.channel): the explicit transition table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.channel import TRANSITIONS, Channel, ChannelInput, ChannelState, ChannelStateError

S, In = ChannelState, ChannelInput


def test_a_call_that_rings_then_answers_then_hangs_up() -> None:
    ch = Channel("sip/1001-000001", "caller", "1001")
    assert ch.state is S.DOWN and not ch.answered
    assert ch.fire(In.RING, 1.0) is S.RINGING
    assert ch.fire(In.PROGRESS, 2.0) is S.EARLY
    assert ch.fire(In.RING, 2.5) is S.EARLY  # a 180 after a 183 keeps the early media
    assert ch.fire(In.ANSWER, 3.0) is S.UP
    assert ch.answered and not ch.ended
    assert ch.fire(In.HANGUP, 9.0) is S.HANGUP
    assert ch.ended
    assert ch.state_at == {S.RINGING: 1.0, S.EARLY: 2.0, S.UP: 3.0, S.HANGUP: 9.0}


@pytest.mark.parametrize("event", [In.RING, In.PROGRESS, In.ANSWER])
def test_provisional_or_second_answer_after_up_is_refused(event: ChannelInput) -> None:
    ch = Channel("c", "callee", "1002")
    ch.fire(In.ANSWER, 0.0)
    assert not ch.can(event)
    with pytest.raises(ChannelStateError, match="not allowed in state up"):
        ch.fire(event, 1.0)
    assert ch.state is S.UP


def test_hangup_is_final() -> None:
    ch = Channel("c", "callee", "1002")
    ch.fire(In.HANGUP, 0.0)
    for event in ChannelInput:
        assert not ch.can(event)
        with pytest.raises(ChannelStateError):
            ch.fire(event, 1.0)


def test_every_live_state_can_hang_up_and_the_table_is_closed() -> None:
    live = [s for s in ChannelState if s is not S.HANGUP]
    assert all(TRANSITIONS[(s, In.HANGUP)] is S.HANGUP for s in live)
    assert set(TRANSITIONS.values()) <= set(ChannelState)
    assert not any(state is S.HANGUP for state, _ in TRANSITIONS)


@given(st.lists(st.sampled_from(list(ChannelInput)), max_size=12))
def test_any_input_sequence_lands_in_a_state_or_raises(events: list[ChannelInput]) -> None:
    ch = Channel("c", "caller", "1001")
    for n, event in enumerate(events):
        before = ch.state
        if (before, event) in TRANSITIONS:
            assert ch.fire(event, float(n)) is TRANSITIONS[(before, event)]
        else:
            with pytest.raises(ChannelStateError):
                ch.fire(event, float(n))
            assert ch.state is before
        # UP is only reachable through ANSWER, and never left except by HANGUP.
        if before is S.UP:
            assert ch.state in (S.UP, S.HANGUP)
