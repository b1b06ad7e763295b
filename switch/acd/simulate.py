"""Discrete-event simulator that drives the real :class:`AcdEngine` (IVR_CTI_ACD.md §C.6).

Poisson arrivals (rate ``calls_per_s``), exponential handle times (mean ``aht_s``), optional
exponential patience (abandonment, Erlang A regime), ``agents`` identical agents with one
skill. The simulator owns a fake clock and an event heap; it feeds the engine inputs exactly
as the live shell would (``CallerArrived``, ``OfferAnswered``, ``CallEnded``,
``CallerAbandoned``, ``handle_timer`` at ``next_deadline``) and appends every ``LogEntry``
action to a :class:`MemoryLogSink`. The KPIs are then computed from that log by
:mod:`switch.acd.kpi`, so a match with Erlang C validates engine, log and KPI code together.

Erlang-C mode (the validation recipe of §C.6): no wrap-up, zero answer delay, no abandonment,
unlimited queue, a work-conserving strategy. Calls entering before ``warmup_s`` are excluded
from the figures; arrivals stop at ``duration_s`` and the system then drains.

Two independent seeded generators are used: one for the traffic, one injected into the engine
(random strategies), so a run is reproducible from ``seed`` alone.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from random import Random

from switch.acd.agent import Device
from switch.acd.engine import AcdEngine
from switch.acd.events import (
    AcdAction,
    AcdInput,
    AgentLoggedIn,
    BridgeCall,
    CallEnded,
    CallerAbandoned,
    CallerArrived,
    LogEntry,
    OfferAnswered,
    OfferCall,
)
from switch.acd.kpi import QueueKpi, SlVariant, queue_kpis
from switch.acd.log import MemoryLogSink, QueueLogEntry
from switch.acd.queue import QueueConfig, Strategy

logger = logging.getLogger(__name__)

__all__ = ["SimConfig", "SimResult", "simulate"]

QUEUE = "sim"


@dataclass(frozen=True, slots=True)
class SimConfig:
    """One simulation run. Units are in the names."""

    calls_per_s: float
    aht_s: float
    agents: int
    duration_s: float
    warmup_s: float = 0.0
    seed: int = 1
    strategy: Strategy = Strategy.LONGEST_IDLE
    patience_s: float | None = None      # mean exponential patience; None = never abandon
    wrapup_s: float = 0.0
    answer_delay_s: float = 0.0
    ring_timeout_s: float = 15.0
    threshold_s: float = 20.0

    def __post_init__(self) -> None:
        if self.calls_per_s <= 0 or self.aht_s <= 0 or self.agents <= 0:
            raise ValueError("calls_per_s, aht_s and agents must be > 0")
        if not 0 <= self.warmup_s < self.duration_s:
            raise ValueError("need 0 <= warmup_s < duration_s")
        if self.answer_delay_s >= self.ring_timeout_s:
            raise ValueError("answer_delay_s must be shorter than ring_timeout_s")


@dataclass(frozen=True, slots=True)
class SimResult:
    """The log of the run and the KPIs of the calls that entered after warm-up."""

    entries: list[QueueLogEntry]
    kpi: QueueKpi
    arrivals: int


class _Sim:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.traffic = Random(cfg.seed)
        queue = QueueConfig(QUEUE, strategy=cfg.strategy, ring_timeout_s=cfg.ring_timeout_s,
                            wrapup_s=cfg.wrapup_s, max_no_answer=0,
                            default_aht_s=cfg.aht_s)
        self.engine = AcdEngine([queue], Random(cfg.seed * 7919 + 1))
        self.sink = MemoryLogSink()
        self.heap: list[tuple[float, int, AcdInput | None]] = []
        self.seq = 0
        self.connected: set[str] = set()
        self.arrivals = 0

    def push(self, when: float, event: AcdInput | None) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (when, self.seq, event))

    def apply(self, now: float, actions: list[AcdAction]) -> None:
        for action in actions:
            if isinstance(action, LogEntry):
                self.sink.append(action.entry)
            elif isinstance(action, OfferCall):
                self.push(now + self.cfg.answer_delay_s,
                          OfferAnswered(action.call_id, action.agent_id))
            elif isinstance(action, BridgeCall):
                self.connected.add(action.call_id)
                self.push(now + self.traffic.expovariate(1.0 / self.cfg.aht_s),
                          CallEnded(action.call_id))

    def arrival(self, now: float) -> None:
        self.arrivals += 1
        call_id = f"c{self.arrivals}"
        self.apply(now, self.engine.handle(now, CallerArrived(QUEUE, call_id)))
        if self.cfg.patience_s is not None:
            self.push(now + self.traffic.expovariate(1.0 / self.cfg.patience_s),
                      CallerAbandoned(call_id))
        nxt = now + self.traffic.expovariate(self.cfg.calls_per_s)
        if nxt < self.cfg.duration_s:
            self.push(nxt, None)

    def run(self) -> SimResult:
        for i in range(self.cfg.agents):
            self.apply(0.0, self.engine.handle(
                0.0, AgentLoggedIn(f"a{i + 1}", Device("extension", str(1000 + i)),
                                   {QUEUE: 1})))
        self.push(self.traffic.expovariate(self.cfg.calls_per_s), None)
        while True:
            deadline = self.engine.next_deadline()
            if deadline is not None and (not self.heap or deadline <= self.heap[0][0]):
                self.apply(deadline, self.engine.handle_timer(deadline))
                continue
            if not self.heap:
                break
            now, _, event = heapq.heappop(self.heap)
            if event is None:
                self.arrival(now)
            elif isinstance(event, CallerAbandoned) and event.call_id in self.connected:
                continue
            else:
                if isinstance(event, CallEnded):
                    self.connected.discard(event.call_id)
                self.apply(now, self.engine.handle(now, event))
        kpi = queue_kpis(self.sink.entries, queue=QUEUE, start=self.cfg.warmup_s,
                         end=self.cfg.duration_s, threshold_s=self.cfg.threshold_s,
                         variant=SlVariant.ABANDONS_AFTER_T)
        return SimResult(self.sink.entries, kpi, self.arrivals)


def simulate(config: SimConfig) -> SimResult:
    """Run one simulation through the real engine and return its log and KPIs."""
    return _Sim(config).run()
