"""Contact-centre KPIs computed from the queue log alone (IVR_CTI_ACD.md §C.5).

Nothing here looks at the engine: every figure is derived from a sequence of
:class:`~switch.acd.log.QueueLogEntry` (Rule 2 of :mod:`switch.acd.log`), so live figures,
interval reports and simulator checks all share one definition.

Definitions (each stated, the variant configurable where the industry disagrees):

* **Offered**: calls that entered the queue (ENTERQUEUE); refused joins (FULL, JOINEMPTY) are
  counted apart as ``refused``. Calls are attributed to the interval of their queue entry.
* **Service level** (threshold T from queue entry, IVR time excluded). Default
  :attr:`SlVariant.ABANDONS_AFTER_T`: ``answered ≤ T / (answered + abandoned after T)`` — calls
  abandoned within T neither help nor hurt. Options: ``ANSWERED`` (Asterisk SL: answered ≤ T /
  answered), ``OFFERED`` (answered ≤ T / calls that ended their wait: answered, abandoned,
  timed out, left empty), ``SL2`` (Asterisk SL2: (answered ≤ T + abandoned ≤ T) / (answered +
  abandoned)). Callback entries are excluded from SL, ASA and P(wait) (they are "not abandons"
  and did not wait on the line; §C.4). Abandons shorter than ``short_abandon_s`` are removed
  from numerator and denominator of SL and abandonment rate when that option is > 0.
* **ASA**: mean queue wait of answered live calls. **P(wait)**: share of them that waited > 0.
* **AHT**: mean of talk + wrap-up over answered calls whose talk has ended (hold is inside talk).
* **Abandonment rate**: abandoned / offered (both without short abandons when configured).
* **Occupancy** (per agent): (busy + wrap-up) / (busy + wrap-up + ready + reserved) time;
  not-ready and logged-off time are excluded (reporting-toolbox definition).
* **Longest wait**: the longest queue wait among the period's calls, including, when ``now``
  is given (live figures), the calls still waiting.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from switch.acd.log import QueueEvent, QueueLogEntry

logger = logging.getLogger(__name__)

__all__ = [
    "AgentKpi",
    "CallOutcome",
    "CallRecord",
    "QueueKpi",
    "SlVariant",
    "agent_interval_kpis",
    "agent_kpis",
    "build_calls",
    "interval_kpis",
    "queue_kpis",
    "queue_kpis_by_queue",
    "team_occupancy",
]

_EPS_S = 0.0005  # log durations have millisecond precision


class SlVariant(Enum):
    """Service-level formula variants (IVR_CTI_ACD.md §C.5)."""

    ABANDONS_AFTER_T = "answered-within / (answered + abandoned-after)"
    ANSWERED = "answered-within / answered"
    OFFERED = "answered-within / ended"
    SL2 = "(answered-within + abandoned-within) / (answered + abandoned)"


class CallOutcome(Enum):
    """How a call's stay in a queue ended."""

    WAITING = "waiting"
    ANSWERED = "answered"
    ABANDONED = "abandoned"
    TIMEOUT = "timeout"
    EMPTY = "empty"
    REFUSED = "refused"


@dataclass(slots=True)
class CallRecord:
    """One call's stay in one queue, rebuilt from the log."""

    queue: str
    call_id: str
    enter_time: float
    outcome: CallOutcome = CallOutcome.WAITING
    wait_s: float = 0.0
    agent: str = ""
    connect_time: float | None = None
    talk_s: float | None = None
    wrapup_s: float = 0.0
    callback: bool = False
    transferred: bool = False
    missed_offers: int = 0


@dataclass(frozen=True, slots=True)
class QueueKpi:
    """Queue figures for one queue (or all) over one period."""

    offered: int
    answered: int
    abandoned: int
    short_abandoned: int
    timed_out: int
    exited_empty: int
    refused: int
    callbacks: int
    waiting: int
    answered_within: int
    abandoned_within: int
    waited: int
    service_level: float | None
    sl_variant: SlVariant
    sl_threshold_s: float
    p_wait: float | None
    asa_s: float | None
    aht_s: float | None
    avg_talk_s: float | None
    abandon_rate: float | None
    longest_wait_s: float


@dataclass(slots=True)
class AgentKpi:
    """Agent figures over one period."""

    agent: str
    answered: int = 0
    talk_s: float = 0.0
    wrapup_s: float = 0.0
    handled: int = 0
    missed: int = 0
    state_s: dict[str, float] = field(default_factory=dict)
    not_ready_s: dict[str, float] = field(default_factory=dict)

    @property
    def aht_s(self) -> float | None:
        """Mean talk + wrap-up over handled calls."""
        return (self.talk_s + self.wrapup_s) / self.handled if self.handled else None

    @property
    def occupancy(self) -> float | None:
        """(busy + wrap-up) / (busy + wrap-up + ready + reserved)."""
        work = self.state_s.get("busy", 0.0) + self.state_s.get("wrap_up", 0.0)
        avail = self.state_s.get("ready", 0.0) + self.state_s.get("reserved", 0.0)
        return work / (work + avail) if work + avail > 0 else None


_CLOSING = {
    QueueEvent.ABANDON: CallOutcome.ABANDONED,
    QueueEvent.EXITWITHTIMEOUT: CallOutcome.TIMEOUT,
    QueueEvent.EXITEMPTY: CallOutcome.EMPTY,
}


def build_calls(entries: Iterable[QueueLogEntry]) -> list[CallRecord]:
    """Rebuild per-call records (in entry order) from the queue log."""
    records: list[CallRecord] = []
    open_: dict[tuple[str, str], CallRecord] = {}
    talking: dict[tuple[str, str], CallRecord] = {}
    ended: dict[tuple[str, str], CallRecord] = {}
    for e in entries:
        key = (e.queue, e.call_id)
        ev = e.event
        if ev is QueueEvent.ENTERQUEUE:
            rec = CallRecord(e.queue, e.call_id, e.time)
            records.append(rec)
            open_[key] = rec
        elif ev in (QueueEvent.FULL, QueueEvent.JOINEMPTY):
            records.append(CallRecord(e.queue, e.call_id, e.time, CallOutcome.REFUSED))
        elif ev is QueueEvent.CONNECT and key in open_:
            rec = open_.pop(key)
            rec.outcome, rec.wait_s, rec.agent = CallOutcome.ANSWERED, float(e.data[0]), e.agent
            rec.connect_time = e.time
            rec.callback = rec.callback or (len(e.data) > 3 and e.data[3] == "callback")
            talking[(e.call_id, e.agent)] = rec
        elif ev in (QueueEvent.COMPLETECALLER, QueueEvent.COMPLETEAGENT, QueueEvent.TRANSFER):
            rec_t = talking.pop((e.call_id, e.agent), None)
            if rec_t is not None:
                rec_t.transferred = ev is QueueEvent.TRANSFER
                rec_t.talk_s = float(e.data[2] if rec_t.transferred else e.data[1])
                ended[(e.call_id, e.agent)] = rec_t
        elif ev is QueueEvent.WRAPUP:
            rec_w = ended.pop((e.call_id, e.agent), None)
            if rec_w is not None:
                rec_w.wrapup_s = float(e.data[0])
        elif ev in _CLOSING and key in open_:
            rec = open_.pop(key)
            rec.outcome, rec.wait_s = _CLOSING[ev], float(e.data[2])
        elif ev is QueueEvent.CALLBACK and key in open_:
            open_[key].callback = True
        elif ev is QueueEvent.RINGNOANSWER and key in open_:
            open_[key].missed_offers += 1
    return records


def _in(t: float, start: float | None, end: float | None) -> bool:
    return (start is None or t >= start) and (end is None or t < end)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _aggregate(records: Sequence[CallRecord], threshold_s: float, variant: SlVariant,
               short_abandon_s: float, now: float | None) -> QueueKpi:
    live = [r for r in records if r.outcome is not CallOutcome.REFUSED]
    answered = [r for r in live if r.outcome is CallOutcome.ANSWERED and not r.callback]
    abandoned = [r for r in live if r.outcome is CallOutcome.ABANDONED]
    short = [r for r in abandoned if r.wait_s < short_abandon_s]
    counted_ab = [r for r in abandoned if r.wait_s >= short_abandon_s]
    timed_out = sum(r.outcome is CallOutcome.TIMEOUT for r in live)
    empty = sum(r.outcome is CallOutcome.EMPTY for r in live)
    waiting = [r for r in live if r.outcome is CallOutcome.WAITING]
    ans_in = sum(r.wait_s <= threshold_s + _EPS_S for r in answered)
    ab_in = sum(r.wait_s <= threshold_s + _EPS_S for r in counted_ab)
    if variant is SlVariant.ABANDONS_AFTER_T:
        sl = _ratio(ans_in, len(answered) + len(counted_ab) - ab_in)
    elif variant is SlVariant.ANSWERED:
        sl = _ratio(ans_in, len(answered))
    elif variant is SlVariant.OFFERED:
        sl = _ratio(ans_in, len(answered) + len(counted_ab) + timed_out + empty)
    else:
        sl = _ratio(ans_in + ab_in, len(answered) + len(counted_ab))
    handled = [r for r in live if r.talk_s is not None]
    waits = [r.wait_s for r in live if r.outcome is not CallOutcome.WAITING]
    if now is not None:
        waits += [now - r.enter_time for r in waiting]
    offered = len(live) - len(short)
    return QueueKpi(
        offered=len(live), answered=len(answered), abandoned=len(counted_ab),
        short_abandoned=len(short), timed_out=timed_out, exited_empty=empty,
        refused=len(records) - len(live), callbacks=sum(r.callback for r in live),
        waiting=len(waiting), answered_within=ans_in, abandoned_within=ab_in,
        waited=sum(r.wait_s > _EPS_S for r in answered), service_level=sl, sl_variant=variant,
        sl_threshold_s=threshold_s,
        p_wait=_ratio(sum(r.wait_s > _EPS_S for r in answered), len(answered)),
        asa_s=_ratio(math.fsum(r.wait_s for r in answered), len(answered)),
        aht_s=_ratio(math.fsum((r.talk_s or 0.0) + r.wrapup_s for r in handled), len(handled)),
        avg_talk_s=_ratio(math.fsum(r.talk_s or 0.0 for r in handled), len(handled)),
        abandon_rate=_ratio(len(counted_ab), offered),
        longest_wait_s=max(waits, default=0.0),
    )


def queue_kpis(entries: Iterable[QueueLogEntry], *, queue: str | None = None,
               start: float | None = None, end: float | None = None, now: float | None = None,
               threshold_s: float = 20.0, variant: SlVariant = SlVariant.ABANDONS_AFTER_T,
               short_abandon_s: float = 0.0) -> QueueKpi:
    """Queue KPIs for calls that entered ``queue`` (all queues if None) in ``[start, end)``.

    ``now`` makes the figures live: calls still waiting count in ``waiting`` and in the
    longest wait.
    """
    records = [r for r in build_calls(entries)
               if (queue is None or r.queue == queue) and _in(r.enter_time, start, end)]
    return _aggregate(records, threshold_s, variant, short_abandon_s, now)


def queue_kpis_by_queue(entries: Iterable[QueueLogEntry], **options: object) -> dict[str, QueueKpi]:
    """:func:`queue_kpis` for each queue seen in the log (same keyword options)."""
    entries = list(entries)
    names = sorted({e.queue for e in entries if e.event is QueueEvent.ENTERQUEUE})
    return {name: queue_kpis(entries, queue=name, **options) for name in names}  # type: ignore[arg-type]


def interval_kpis(entries: Iterable[QueueLogEntry], interval_s: float = 900.0, *,
                  queue: str | None = None, threshold_s: float = 20.0,
                  variant: SlVariant = SlVariant.ABANDONS_AFTER_T,
                  short_abandon_s: float = 0.0) -> dict[float, QueueKpi]:
    """Queue KPIs per interval (default 15-minute buckets aligned to multiples of
    ``interval_s``), keyed by bucket start; calls count in the bucket of their entry."""
    buckets: dict[float, list[CallRecord]] = {}
    for rec in build_calls(entries):
        if queue is None or rec.queue == queue:
            start = math.floor(rec.enter_time / interval_s) * interval_s
            buckets.setdefault(start, []).append(rec)
    return {start: _aggregate(recs, threshold_s, variant, short_abandon_s, None)
            for start, recs in sorted(buckets.items())}


def agent_kpis(entries: Iterable[QueueLogEntry], *, start: float | None = None,
               end: float | None = None, now: float | None = None) -> dict[str, AgentKpi]:
    """Per-agent figures over ``[start, end)``.

    State time comes from AGENTSTATE records clipped to the period; an open state runs to
    ``end``, else ``now``, else the last log time. Calls count when connected in the period.
    """
    entries = list(entries)
    if not entries:
        return {}
    stop = end if end is not None else (now if now is not None else entries[-1].time)
    out: dict[str, AgentKpi] = {}
    current: dict[str, tuple[float, str, str]] = {}

    def close(agent: str, until: float) -> None:
        if agent not in current:
            return
        since, state, reason = current.pop(agent)
        lo, hi = max(since, start if start is not None else since), min(until, stop)
        if hi > lo:
            kpi = out.setdefault(agent, AgentKpi(agent))
            kpi.state_s[state] = kpi.state_s.get(state, 0.0) + hi - lo
            if state == "not_ready":
                kpi.not_ready_s[reason] = kpi.not_ready_s.get(reason, 0.0) + hi - lo

    for e in entries:
        if e.event is QueueEvent.AGENTSTATE:
            close(e.agent, e.time)
            current[e.agent] = (e.time, e.data[1], e.data[2])
            out.setdefault(e.agent, AgentKpi(e.agent))
        elif e.event is QueueEvent.RINGNOANSWER and _in(e.time, start, end):
            out.setdefault(e.agent, AgentKpi(e.agent)).missed += 1
    for agent in list(current):
        close(agent, stop)
    for rec in build_calls(entries):
        if rec.connect_time is None or not _in(rec.connect_time, start, end):
            continue
        kpi = out.setdefault(rec.agent, AgentKpi(rec.agent))
        kpi.answered += 1
        if rec.talk_s is not None:
            kpi.handled += 1
            kpi.talk_s += rec.talk_s
            kpi.wrapup_s += rec.wrapup_s
    return out


def team_occupancy(agents: Iterable[AgentKpi]) -> float | None:
    """Occupancy of a group of agents: their summed work time over summed staffed time."""
    work = avail = 0.0
    for kpi in agents:
        work += kpi.state_s.get("busy", 0.0) + kpi.state_s.get("wrap_up", 0.0)
        avail += kpi.state_s.get("ready", 0.0) + kpi.state_s.get("reserved", 0.0)
    return _ratio(work, work + avail)


def agent_interval_kpis(entries: Iterable[QueueLogEntry],
                        interval_s: float = 900.0) -> dict[float, dict[str, AgentKpi]]:
    """:func:`agent_kpis` for each interval bucket from the first to the last log time."""
    entries = list(entries)
    if not entries:
        return {}
    first = math.floor(entries[0].time / interval_s) * interval_s
    result: dict[float, dict[str, AgentKpi]] = {}
    t = first
    while t <= entries[-1].time:
        result[t] = agent_kpis(entries, start=t, end=t + interval_s)
        t += interval_s
    return result
