"""The discrete-event simulator, driving the real AcdEngine, reproduces Erlang C
(IVR_CTI_ACD.md §C.6).

Tolerances are stated against the sampling error of the run, not tuned to one seed. Waits are
strongly autocorrelated, so ASA converges slowly (§C.6 reports 15.9-17.6 s over 200 000-call
runs). The slow test runs 100 000 calls (about 6-9 s of CPU) and asserts P(wait) 0.285 ± 0.03,
ASA 17.1 ± 3 s and SL20 79.6 ± 3 %. Seeds 1-6 at that length gave P(wait) 0.269-0.297,
ASA 15.5-18.6 s and SL20 78.6-80.8 %: the widest deviations are about half the tolerance.
"""

from __future__ import annotations

import pytest

from switch.acd import QueueEvent, QueueLogEntry, Strategy
from switch.acd.erlang import asa_s, erlang_c, service_level
from switch.acd.kpi import agent_kpis, queue_kpis, team_occupancy
from switch.acd.simulate import SimConfig, simulate

LAMBDA = 10 / 180   # 10 Erlangs at AHT 180 s


@pytest.mark.slow
def test_simulator_reproduces_erlang_c_10_erlangs_13_agents() -> None:
    calls = 100_000
    result = simulate(SimConfig(LAMBDA, 180.0, 13, duration_s=calls / LAMBDA, warmup_s=3600.0,
                                seed=1, strategy=Strategy.LONGEST_IDLE))
    k = result.kpi
    assert result.arrivals == pytest.approx(calls, rel=0.02)
    assert k.abandoned == 0 and k.timed_out == 0 and k.waiting == 0
    assert k.p_wait == pytest.approx(erlang_c(10, 13), abs=0.03)          # 0.2853
    assert k.asa_s == pytest.approx(asa_s(10, 13, 180), abs=3.0)           # 17.12 s
    assert k.service_level == pytest.approx(service_level(10, 13, 180, 20), abs=0.03)  # 79.56 %
    assert k.aht_s == pytest.approx(180.0, rel=0.02)
    agents = agent_kpis(result.entries, start=3600.0, end=calls / LAMBDA)
    assert len(agents) == 13
    assert team_occupancy(agents.values()) == pytest.approx(10 / 13, abs=0.02)


def test_short_run_matches_erlang_c_loosely_12_agents() -> None:
    # 10 Erl on 12 agents: P(wait) 0.4494, ASA 40.4 s, SL20 64.0 %; 8 000 calls.
    result = simulate(SimConfig(LAMBDA, 180.0, 12, duration_s=8000 / LAMBDA, warmup_s=3600.0,
                                seed=2, strategy=Strategy.RANDOM))
    k = result.kpi
    assert k.p_wait == pytest.approx(erlang_c(10, 12), abs=0.08)
    assert k.service_level == pytest.approx(service_level(10, 12, 180, 20), abs=0.08)
    assert k.asa_s == pytest.approx(asa_s(10, 12, 180), rel=0.4)


def test_same_seed_same_log() -> None:
    cfg = SimConfig(LAMBDA, 180.0, 13, duration_s=3600.0, seed=5, strategy=Strategy.RANDOM,
                    patience_s=60.0, wrapup_s=5.0, answer_delay_s=2.0)
    a, b = simulate(cfg), simulate(cfg)
    assert [e.to_line() for e in a.entries] == [e.to_line() for e in b.entries]
    assert a.entries != simulate(SimConfig(LAMBDA, 180.0, 13, duration_s=3600.0, seed=6)).entries


def test_kpis_survive_a_round_trip_through_log_lines() -> None:
    # What storage keeps is the text line; the KPIs from it must be the same.
    result = simulate(SimConfig(LAMBDA, 180.0, 12, duration_s=7200.0, seed=4, patience_s=90.0))
    parsed = [QueueLogEntry.from_line(e.to_line()) for e in result.entries]
    assert queue_kpis(parsed, queue="sim", end=7200.0) == result.kpi
    before, after = agent_kpis(result.entries), agent_kpis(parsed)
    assert before.keys() == after.keys()
    for agent_id, kpi in before.items():          # times are kept to the millisecond
        assert (after[agent_id].answered, after[agent_id].talk_s) == (kpi.answered, kpi.talk_s)
        assert after[agent_id].occupancy == pytest.approx(kpi.occupancy, abs=1e-5)


def test_abandonment_and_wrap_up_show_in_the_log() -> None:
    # Overloaded (12 Erl on 10 agents) with 60 s mean patience: callers abandon, the queue
    # stays bounded, every call ends one way or the other, and wrap-up enters AHT.
    lam = 12 / 180
    result = simulate(SimConfig(lam, 180.0, 10, duration_s=3000 / lam, warmup_s=1800.0,
                                seed=3, patience_s=60.0, wrapup_s=10.0, answer_delay_s=1.0))
    k = result.kpi
    assert k.abandoned > 0.1 * k.offered
    assert k.answered + k.abandoned == k.offered and k.waiting == 0
    assert k.aht_s == pytest.approx(190.0, rel=0.06)
    assert k.asa_s < 60.0
    rings = [e for e in result.entries if e.event is QueueEvent.CONNECT]
    assert all(e.data[1] == "1.000" for e in rings)          # the 1 s answer delay


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SimConfig(0.0, 180.0, 13, duration_s=100.0)
    with pytest.raises(ValueError):
        SimConfig(1.0, 180.0, 13, duration_s=100.0, warmup_s=100.0)
    with pytest.raises(ValueError):
        SimConfig(1.0, 180.0, 13, duration_s=100.0, answer_delay_s=20.0)
