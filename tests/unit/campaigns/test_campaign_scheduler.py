"""CampaignScheduler: line limit, pacing, retries per outcome, opt-out, window, states."""

from __future__ import annotations

import datetime as dt
import itertools
from random import Random
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.campaigns import (
    TRANSITIONS,
    CallingWindow,
    Campaign,
    CampaignCommand,
    CampaignError,
    CampaignKind,
    CampaignScheduler,
    CampaignState,
    CampaignStateError,
    Contact,
    Limits,
    Outcome,
    RetryPolicy,
    RetryRule,
    compile_window,
    phone_key,
    transition,
)

CN = ZoneInfo("Asia/Shanghai")
ALWAYS = CallingWindow(("daily 00:00-24:00",))
MONDAY_10 = dt.datetime(2026, 11, 30, 10, 0, tzinfo=CN).timestamp()


def contacts(n: int, first: int = 13800000000) -> list[Contact]:
    return [Contact(i + 1, f"住户{i}", str(first + i), phone_key(str(first + i)))
            for i in range(n)]


def scheduler(n: int = 5, *, lines: int = 100, cps: float = 1000.0, burst: int = 1000,
              retry: RetryPolicy | None = None, window: CallingWindow = ALWAYS,
              kind: CampaignKind = CampaignKind.ARREARS_REMINDER,
              opted_out: frozenset[str] = frozenset(), start: bool = True
              ) -> CampaignScheduler:
    campaign = Campaign("c", kind, window=window, limits=Limits(lines, cps, burst),
                        retry=retry or RetryPolicy(), id=1)
    sched = CampaignScheduler(campaign, contacts(n), opted_out=opted_out)
    if start:
        sched.handle(CampaignCommand.START)
    return sched


# --- line limit and pacing --------------------------------------------------------------


def test_never_more_than_max_lines() -> None:
    s = scheduler(10, lines=3)
    first = s.next_actions(MONDAY_10)
    assert [d.contact.id for d in first] == [1, 2, 3]
    assert s.next_actions(MONDAY_10 + 1) == []
    s.record_outcome(2, Outcome.ACKNOWLEDGED, MONDAY_10 + 2)
    assert [d.contact.id for d in s.next_actions(MONDAY_10 + 3)] == [4]


def test_active_calls_reported_by_dialer_count_against_limit() -> None:
    s = scheduler(10, lines=3)
    assert len(s.next_actions(MONDAY_10, active_calls=2)) == 1
    # The dialer's count may lag behind: the scheduler's own count (1 handed out) still holds.
    assert len(s.next_actions(MONDAY_10, active_calls=0)) == 2
    assert s.next_actions(MONDAY_10, active_calls=0) == []
    assert s.progress().dialing == 3


def test_token_bucket_paces_calls() -> None:
    s = scheduler(50, cps=2.0, burst=1)
    t = MONDAY_10
    assert len(s.next_actions(t)) == 1
    assert s.next_actions(t + 0.4) == []
    assert s.next_deadline() == pytest.approx(t + 0.5)
    assert len(s.next_actions(t + 0.5)) == 1
    assert len(s.next_actions(t + 10.0)) == 1       # a quiet spell refills only `burst`


def test_burst_after_quiet_spell() -> None:
    s = scheduler(50, cps=1.0, burst=5)
    assert len(s.next_actions(MONDAY_10)) == 5
    assert s.next_actions(MONDAY_10 + 0.5) == []
    assert len(s.next_actions(MONDAY_10 + 3.0)) == 3
    assert len(s.next_actions(MONDAY_10 + 100.0)) == 5


def test_pacing_over_a_minute_is_exact() -> None:
    s = scheduler(1000, lines=1000, cps=2.0, burst=1)
    times = []
    for step in range(240):                       # every 0.25 s for 60 s
        now = MONDAY_10 + step * 0.25
        times += [now] * len(s.next_actions(now))
    assert len(times) == 120                      # 2 calls per second, no more
    assert all(b - a == 0.5 for a, b in itertools.pairwise(times))


# --- retries -----------------------------------------------------------------------------


POLICY = RetryPolicy(busy=RetryRule(60.0, 3), no_answer=RetryRule(120.0, 2),
                     failed=RetryRule(30.0, 1))


def dial_one(s: CampaignScheduler, now: float) -> int:
    [dial] = s.next_actions(now)
    return dial.attempt_no


def test_busy_retried_exactly_as_configured() -> None:
    s = scheduler(1, retry=POLICY)
    t = MONDAY_10
    assert dial_one(s, t) == 1
    d = s.record_outcome(1, Outcome.BUSY, t + 5)
    assert d.retry_at == t + 65
    assert s.next_actions(t + 64.9) == []
    assert s.next_deadline() == t + 65
    assert dial_one(s, t + 65) == 2
    assert s.record_outcome(1, Outcome.BUSY, t + 70).retry_at == t + 130
    assert dial_one(s, t + 130) == 3
    d = s.record_outcome(1, Outcome.BUSY, t + 140)
    assert d.retry_at is None and d.campaign_state is CampaignState.COMPLETED
    assert s.next_actions(t + 10_000) == []
    assert s.progress().attempts == {Outcome.BUSY: 3}
    assert s.progress().finals == {Outcome.BUSY: 1}


def test_no_answer_and_failed_rules() -> None:
    s = scheduler(2, retry=POLICY)
    t = MONDAY_10
    s.next_actions(t)
    assert s.record_outcome(1, Outcome.NO_ANSWER, t).retry_at == t + 120
    assert s.record_outcome(2, Outcome.FAILED, t).retry_at is None   # max 1: never retried
    assert [d.contact.id for d in s.next_actions(t + 120)] == [1]
    assert s.record_outcome(1, Outcome.NO_ANSWER, t + 150).retry_at is None
    assert s.state is CampaignState.COMPLETED


def test_rule_counts_all_attempts_of_the_contact() -> None:
    s = scheduler(1, retry=POLICY)
    t = MONDAY_10
    s.next_actions(t)
    s.record_outcome(1, Outcome.BUSY, t)            # attempt 1, busy max 3: retry
    s.next_actions(t + 60)
    d = s.record_outcome(1, Outcome.NO_ANSWER, t + 60)  # attempt 2, no_answer max 2: final
    assert d.retry_at is None


@pytest.mark.parametrize("outcome", [Outcome.ANSWERED, Outcome.ACKNOWLEDGED,
                                     Outcome.OPTED_OUT])
def test_final_outcomes_not_retried(outcome: Outcome) -> None:
    s = scheduler(1, retry=POLICY)
    s.next_actions(MONDAY_10)
    assert s.record_outcome(1, outcome, MONDAY_10 + 1).retry_at is None
    assert s.state is CampaignState.COMPLETED


def test_outcome_for_contact_not_dialing_is_an_error() -> None:
    s = scheduler(2)
    with pytest.raises(CampaignStateError):
        s.record_outcome(1, Outcome.BUSY, MONDAY_10)
    s.next_actions(MONDAY_10)
    with pytest.raises(CampaignStateError):
        s.record_outcome(1, Outcome.BUSY, MONDAY_10, attempt_no=2)
    s.record_outcome(1, Outcome.BUSY, MONDAY_10, attempt_no=1)
    with pytest.raises(CampaignStateError):
        s.record_outcome(1, Outcome.BUSY, MONDAY_10)     # twice


def test_attempt_keeps_its_start_time_and_checks_rating() -> None:
    s = scheduler(1, kind=CampaignKind.REPAIR_SURVEY)
    s.next_actions(MONDAY_10)
    with pytest.raises(CampaignError, match="1 to 5"):
        s.record_outcome(1, Outcome.ACKNOWLEDGED, MONDAY_10 + 9, rating=6)
    d = s.record_outcome(1, Outcome.ACKNOWLEDGED, MONDAY_10 + 9, rating=5)
    assert (d.attempt.started_at, d.attempt.ended_at, d.attempt.rating) == (
        MONDAY_10, MONDAY_10 + 9, 5)


def test_cancel_gives_the_dial_back_uncounted() -> None:
    s = scheduler(1)
    [dial] = s.next_actions(MONDAY_10)
    s.cancel(dial, MONDAY_10)
    [again] = s.next_actions(MONDAY_10 + 1)
    assert again.attempt_no == 1


# --- opt-out ------------------------------------------------------------------------------


def test_opt_out_skips_contact_in_later_campaign_of_same_kind() -> None:
    first = scheduler(2)
    first.next_actions(MONDAY_10)
    decision = first.record_outcome(1, Outcome.OPTED_OUT, MONDAY_10 + 5)
    assert decision.opted_out == "+8613800000000"
    opted = frozenset({decision.opted_out})
    second = scheduler(3, opted_out=opted)
    assert [d.contact.id for d in second.next_actions(MONDAY_10)] == [2, 3]
    assert second.progress().skipped == 1
    other_kind = scheduler(3, kind=CampaignKind.OUTAGE_NOTICE)
    assert len(other_kind.next_actions(MONDAY_10)) == 3


def test_opt_out_formats_compare_equal() -> None:
    assert phone_key("138-0000-0000") == phone_key("+86 138 0000 0000") == "+8613800000000"
    assert phone_key("1001") == "1001"


# --- window -------------------------------------------------------------------------------


def at(day: str, hhmm: str) -> float:
    h, m = map(int, hhmm.split(":"))
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(h, m), tzinfo=CN).timestamp()


def test_window_respected_with_fake_clock() -> None:
    window = CallingWindow(("mon-fri 09:00-20:00",))
    s = scheduler(3, lines=1, window=window, retry=POLICY)
    assert s.next_actions(at("2026-12-04", "08:59")) == []          # Friday, too early
    assert s.next_deadline() == at("2026-12-04", "09:00")
    [d] = s.next_actions(at("2026-12-04", "19:59"))
    s.record_outcome(d.contact.id, Outcome.BUSY, at("2026-12-04", "19:59") + 30)
    assert s.next_actions(at("2026-12-04", "20:00")) == []          # closed
    assert s.next_actions(at("2026-12-05", "10:00")) == []          # Saturday
    assert s.next_deadline() == at("2026-12-07", "09:00")
    # Contacts never called come first (due since the start), then the Friday retry.
    monday = at("2026-12-07", "09:00")
    for expected in (2, 3, 1):
        [x] = s.next_actions(monday)
        assert x.contact.id == expected
        s.record_outcome(x.contact.id, Outcome.ACKNOWLEDGED, monday)


def test_simulation_never_dials_outside_window_nor_above_limit() -> None:
    rng = Random(7)
    window = CallingWindow(("mon-fri 09:00-12:00", "sat 10:00-11:00"))
    s = scheduler(60, lines=4, cps=0.5, burst=2, window=window, retry=POLICY)
    compiled = compile_window(window)
    now = at("2026-12-04", "11:50")
    in_flight: dict[int, float] = {}
    attempts: dict[int, list[float]] = {}
    for _ in range(5000):
        for dial in s.next_actions(now, active_calls=len(in_flight)):
            assert compiled.is_inside_ts(now)
            in_flight[dial.contact.id] = now + rng.uniform(5, 90)
            attempts.setdefault(dial.contact.id, []).append(now)
        assert len(in_flight) <= 4
        ends = [(end, cid) for cid, end in in_flight.items()]
        deadline = s.next_deadline()
        candidates = [e for e, _ in ends] + ([deadline] if deadline is not None else [])
        if not candidates:
            break
        now = max(now, min(candidates))
        for end, cid in ends:
            if end <= now:
                del in_flight[cid]
                s.record_outcome(cid, rng.choice(list(Outcome)), now)
    assert s.state is CampaignState.COMPLETED
    assert sum(len(v) for v in attempts.values()) == sum(s.progress().attempts.values())
    assert all(len(v) <= 3 for v in attempts.values())


# --- state machine ------------------------------------------------------------------------


def test_pause_resume_stop() -> None:
    s = scheduler(5, lines=1, start=False)
    assert s.next_actions(MONDAY_10) == []                       # DRAFT
    s.handle(CampaignCommand.START)
    [a, *_] = s.next_actions(MONDAY_10)
    s.handle(CampaignCommand.PAUSE)
    assert s.next_actions(MONDAY_10 + 10) == [] and s.next_deadline() is None
    s.record_outcome(a.contact.id, Outcome.ANSWERED, MONDAY_10 + 11)   # in-flight call ends
    s.handle(CampaignCommand.RESUME)
    assert s.next_actions(MONDAY_10 + 12)
    s.handle(CampaignCommand.STOP)
    assert s.next_actions(MONDAY_10 + 20) == []
    with pytest.raises(CampaignStateError, match="cannot resume a campaign that is stopped"):
        s.handle(CampaignCommand.RESUME)


@given(st.sampled_from(CampaignState), st.sampled_from(CampaignCommand))
def test_transition_table_is_the_only_path(state: CampaignState,
                                           command: CampaignCommand) -> None:
    if (state, command) in TRANSITIONS:
        assert transition(state, command) is TRANSITIONS[(state, command)]
    else:
        with pytest.raises(CampaignStateError):
            transition(state, command)


def test_terminal_states_accept_nothing() -> None:
    for state in (CampaignState.STOPPED, CampaignState.COMPLETED):
        assert not any(s is state for s, _ in TRANSITIONS)


def test_empty_campaign_completes_on_start() -> None:
    s = scheduler(0)
    assert s.state is CampaignState.COMPLETED


def test_adopt_state_stored_by_operator() -> None:
    s = scheduler(3, lines=1)
    assert s.adopt(CampaignState.RUNNING) is CampaignState.RUNNING      # no-op
    assert s.adopt(CampaignState.PAUSED) is CampaignState.PAUSED
    assert s.next_actions(MONDAY_10) == []
    assert s.adopt(CampaignState.RUNNING) is CampaignState.RUNNING
    assert len(s.next_actions(MONDAY_10)) == 1
    with pytest.raises(CampaignStateError):
        s.adopt(CampaignState.DRAFT)
    assert s.adopt(CampaignState.STOPPED) is CampaignState.STOPPED
    with pytest.raises(CampaignStateError):
        s.adopt(CampaignState.COMPLETED)   # only the scheduler itself completes
