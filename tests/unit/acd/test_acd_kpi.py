"""KPIs from a hand-written queue log with known answers (IVR_CTI_ACD.md §C.5)."""

from __future__ import annotations

import pytest

from switch.acd.kpi import (
    SlVariant,
    agent_interval_kpis,
    agent_kpis,
    build_calls,
    interval_kpis,
    queue_kpis,
    queue_kpis_by_queue,
    team_occupancy,
)
from switch.acd.log import MemoryLogSink, QueueEvent, QueueLogEntry

# time|callid|queue|agent|EVENT|data...   (the format QueueLogEntry.to_line writes)
LOG = """\
0.000|NONE|NONE|a1|AGENTSTATE|not_ready|ready|
0.000|NONE|NONE|a2|AGENTSTATE|not_ready|ready|
0.000|c1|q|NONE|ENTERQUEUE|0|1
5.000|c2|q|NONE|ENTERQUEUE|0|2
8.000|c1|NONE|a1|AGENTSTATE|ready|reserved|
10.000|c3|q|NONE|ENTERQUEUE|0|3
10.000|c1|NONE|a1|AGENTSTATE|reserved|busy|
10.000|c1|q|a1|CONNECT|10.000|2.000|extension:1|live
13.000|c3|q|NONE|ABANDON|2|3|3.000
20.000|c4|q|NONE|ENTERQUEUE|0|2
30.000|c5|q|NONE|ENTERQUEUE|0|3
35.000|c2|q|a2|CONNECT|30.000|1.000|extension:2|live
40.000|c6|q|NONE|FULL|voicemail:vm
50.000|c7|q|NONE|ENTERQUEUE|5|2
60.000|c4|q|NONE|ABANDON|1|2|40.000
90.000|c5|q|NONE|EXITWITHTIMEOUT|1|3|60.000|voicemail:vm
95.000|c2|q|a2|COMPLETEAGENT|30.000|60.000|2
95.000|c2|q|a2|WRAPUP|0.000
110.000|c1|q|a1|COMPLETECALLER|10.000|100.000|1
110.000|c1|NONE|a1|AGENTSTATE|busy|wrap_up|
120.000|r1|r|NONE|ENTERQUEUE|0|1
121.000|r1|r|a2|CONNECT|1.000|1.000|extension:2|live
130.000|c1|q|a1|WRAPUP|20.000
130.000|NONE|NONE|a1|AGENTSTATE|wrap_up|ready|
131.000|r1|r|a2|TRANSFER|5000|1.000|10.000|1
200.000|NONE|NONE|a1|AGENTSTATE|ready|not_ready|lunch
200.000|NONE|NONE|a1|PAUSE|lunch
300.000|NONE|NONE|a1|AGENTSTATE|not_ready|ready|
300.000|NONE|NONE|a1|UNPAUSE
1000.000|c8|q|NONE|ENTERQUEUE|0|2
1005.000|c8|q|a2|CONNECT|5.000|0.000|extension:2|live
1065.000|c8|q|a2|COMPLETECALLER|5.000|60.000|2
1075.000|c8|q|a2|WRAPUP|10.000
"""


@pytest.fixture
def entries() -> list[QueueLogEntry]:
    sink = MemoryLogSink()
    for line in LOG.splitlines():
        entry = QueueLogEntry.from_line(line)
        assert entry.to_line() == line            # lossless round trip
        sink.append(entry)
    return sink.entries


def test_counts_asa_aht(entries: list[QueueLogEntry]) -> None:
    k = queue_kpis(entries, queue="q")
    assert (k.offered, k.answered, k.abandoned, k.timed_out, k.refused, k.waiting) == \
        (7, 3, 2, 1, 1, 1)
    assert k.answered_within == 2 and k.abandoned_within == 1
    assert k.asa_s == pytest.approx((10 + 30 + 5) / 3)
    assert k.p_wait == 1.0
    assert k.aht_s == pytest.approx(((100 + 20) + (60 + 0) + (60 + 10)) / 3)
    assert k.avg_talk_s == pytest.approx(220 / 3)
    assert k.abandon_rate == pytest.approx(2 / 7)
    assert k.longest_wait_s == 60.0


@pytest.mark.parametrize(("variant", "expected"), [
    (SlVariant.ABANDONS_AFTER_T, 2 / 4),   # 2 answered <= 20 s / (3 answered + 1 late abandon)
    (SlVariant.ANSWERED, 2 / 3),
    (SlVariant.OFFERED, 2 / 6),            # answered + abandoned + timed out
    (SlVariant.SL2, 3 / 5),
])
def test_service_level_variants(entries: list[QueueLogEntry], variant: SlVariant,
                                expected: float) -> None:
    k = queue_kpis(entries, queue="q", threshold_s=20, variant=variant)
    assert k.service_level == pytest.approx(expected) and k.sl_variant is variant


def test_short_abandons_excluded(entries: list[QueueLogEntry]) -> None:
    k = queue_kpis(entries, queue="q", short_abandon_s=5)
    assert (k.abandoned, k.short_abandoned) == (1, 1)
    assert k.service_level == pytest.approx(2 / 4)
    assert k.abandon_rate == pytest.approx(1 / 6)


def test_live_longest_wait_includes_callers_still_waiting(entries: list[QueueLogEntry]) -> None:
    assert queue_kpis(entries, queue="q", now=200.0).longest_wait_s == 150.0
    early = queue_kpis(entries[:9], queue="q", now=18.0)   # c2 has waited 13 s so far
    assert (early.waiting, early.longest_wait_s) == (1, 13.0)


def test_per_queue_and_per_interval(entries: list[QueueLogEntry]) -> None:
    by_queue = queue_kpis_by_queue(entries)
    assert set(by_queue) == {"q", "r"}
    assert by_queue["r"].answered == 1 and by_queue["r"].aht_s == 10.0
    assert queue_kpis(entries).offered == 8
    buckets = interval_kpis(entries, 900.0, queue="q")
    assert list(buckets) == [0.0, 900.0]
    assert (buckets[0.0].answered, buckets[0.0].asa_s) == (2, 20.0)
    assert (buckets[900.0].offered, buckets[900.0].asa_s, buckets[900.0].aht_s) == (1, 5.0, 70.0)
    window = queue_kpis(entries, queue="q", start=900.0, end=1800.0)
    assert window == buckets[900.0]


def test_agent_occupancy_and_handle_times(entries: list[QueueLogEntry]) -> None:
    a1 = agent_kpis(entries, end=400.0)["a1"]
    assert a1.state_s == {"ready": 178.0, "reserved": 2.0, "busy": 100.0, "wrap_up": 20.0,
                          "not_ready": 100.0}
    assert a1.not_ready_s == {"lunch": 100.0}
    assert a1.occupancy == pytest.approx(120 / 300)
    assert (a1.answered, a1.handled, a1.aht_s) == (1, 1, 120.0)
    window = agent_kpis(entries, start=100.0, end=200.0)["a1"]
    assert window.occupancy == pytest.approx(30 / 100)
    # a2's log only says "ready" from 0 (its calls carry no AGENTSTATE here): 400 s idle
    assert team_occupancy(agent_kpis(entries, end=400.0).values()) == \
        pytest.approx(120 / (120 + 180 + 400))
    a2 = agent_kpis(entries)["a2"]
    assert (a2.answered, a2.talk_s, a2.wrapup_s) == (3, 130.0, 10.0)
    buckets = agent_interval_kpis(entries, 900.0)
    assert list(buckets) == [0.0, 900.0]
    assert buckets[900.0]["a2"].answered == 1


def test_build_calls_tolerates_a_log_that_starts_mid_call(entries: list[QueueLogEntry]) -> None:
    records = build_calls(entries[9:])        # c1 and c2 entered before the log starts
    assert [r.call_id for r in records] == ["c4", "c5", "c6", "c7", "r1", "c8"]
    assert queue_kpis(entries[9:], queue="q").answered == 1


def test_log_rejects_bad_fields_and_time_travel() -> None:
    with pytest.raises(ValueError):
        QueueLogEntry(0.0, "q|x", "c", "a", QueueEvent.ENTERQUEUE).to_line()
    with pytest.raises(ValueError):
        QueueLogEntry.from_line("1.0|c|q")
    sink = MemoryLogSink()
    sink.append(QueueLogEntry(5.0, "q", "c", "NONE", QueueEvent.ENTERQUEUE))
    with pytest.raises(ValueError):
        sink.append(QueueLogEntry(4.0, "q", "c", "NONE", QueueEvent.ABANDON))
