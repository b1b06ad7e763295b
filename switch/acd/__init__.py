"""The ACD: queues, agents, strategies, queue log and KPIs (DESIGN.md "Call model").

A pure, sans-IO core: :class:`AcdEngine` takes inputs with ``now`` and returns actions plus a
next deadline; randomness comes from an injected ``random.Random``. Every transition is a
:class:`QueueLogEntry` from which :mod:`switch.acd.kpi` computes all KPIs. See
IVR_CTI_ACD.md §C for the app_queue / mod_callcenter models this follows.
"""

from __future__ import annotations

from switch.acd.agent import (
    AcdError,
    Agent,
    AgentEffect,
    AgentInput,
    AgentState,
    AgentStateError,
    Device,
)
from switch.acd.engine import AcdEngine
from switch.acd.events import (
    AcdAction,
    AcdInput,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentNotReady,
    AgentReady,
    AgentStateChanged,
    Announce,
    BridgeCall,
    CallbackQueued,
    CallbackRequested,
    CallbackScheduled,
    CallEnded,
    CallerAbandoned,
    CallerArrived,
    CallPickedUp,
    CallTransferred,
    LogEntry,
    OfferAnswered,
    OfferCall,
    OfferRejected,
    Overflow,
    PlaceCallback,
    PlayMusic,
    PriorityChanged,
    StopMusic,
    WithdrawOffer,
    WrapUpEnded,
)
from switch.acd.kpi import AgentKpi, QueueKpi, SlVariant
from switch.acd.log import LogSink, MemoryLogSink, QueueEvent, QueueLogEntry
from switch.acd.queue import EmptyRule, OverflowTarget, QueueConfig, Strategy

__all__ = [
    "AcdAction",
    "AcdEngine",
    "AcdError",
    "AcdInput",
    "Agent",
    "AgentEffect",
    "AgentInput",
    "AgentKpi",
    "AgentLoggedIn",
    "AgentLoggedOut",
    "AgentNotReady",
    "AgentReady",
    "AgentState",
    "AgentStateChanged",
    "AgentStateError",
    "Announce",
    "BridgeCall",
    "CallEnded",
    "CallPickedUp",
    "CallTransferred",
    "CallbackQueued",
    "CallbackRequested",
    "CallbackScheduled",
    "CallerAbandoned",
    "CallerArrived",
    "Device",
    "EmptyRule",
    "LogEntry",
    "LogSink",
    "MemoryLogSink",
    "OfferAnswered",
    "OfferCall",
    "OfferRejected",
    "Overflow",
    "OverflowTarget",
    "PlaceCallback",
    "PlayMusic",
    "PriorityChanged",
    "QueueConfig",
    "QueueEvent",
    "QueueKpi",
    "QueueLogEntry",
    "SlVariant",
    "StopMusic",
    "Strategy",
    "WithdrawOffer",
    "WrapUpEnded",
]
