"""Outbound campaigns: outage notices, arrears reminders, repair callback surveys.

The pure core is exported here: the model and state machine (``model``), the calling window
(``window``), the sans-IO :class:`CampaignScheduler` (``scheduler``), what is played on
answer (``messages``) and the CSV import (``csv_import``). The storage side lives in
``storage/campaign_repository.py``; the contact-list queries over the hotline tables in
:mod:`switch.campaigns.sources`, the ``softswitch campaign`` command in
:mod:`switch.campaigns.cli`, the node's dialer (:mod:`switch.campaigns.dialer`, the asyncio
shell that places the calls through :mod:`switch.originate`) and its wiring
(:mod:`switch.campaigns.node`) are imported explicitly (they reach the database or the
network).
"""

from __future__ import annotations

from switch.campaigns.csv_import import CsvImport, CsvImportError, RowError, parse_contacts_csv
from switch.campaigns.messages import (
    PlayMessage,
    RunIvr,
    interpret_key,
    on_answer,
    render,
)
from switch.campaigns.model import (
    FINAL_OUTCOMES,
    TRANSITIONS,
    Attempt,
    CallingWindow,
    Campaign,
    CampaignCommand,
    CampaignError,
    CampaignKind,
    CampaignState,
    CampaignStateError,
    Contact,
    Limits,
    NewContact,
    Outcome,
    Progress,
    ResumeState,
    RetryPolicy,
    RetryRule,
    phone_key,
    transition,
)
from switch.campaigns.scheduler import CampaignScheduler, DialContact, OutcomeDecision, retry_at
from switch.campaigns.window import CompiledWindow, compile_window, is_inside, next_opening

__all__ = [
    "FINAL_OUTCOMES",
    "TRANSITIONS",
    "Attempt",
    "CallingWindow",
    "Campaign",
    "CampaignCommand",
    "CampaignError",
    "CampaignKind",
    "CampaignScheduler",
    "CampaignState",
    "CampaignStateError",
    "CompiledWindow",
    "Contact",
    "CsvImport",
    "CsvImportError",
    "DialContact",
    "Limits",
    "NewContact",
    "Outcome",
    "OutcomeDecision",
    "PlayMessage",
    "Progress",
    "ResumeState",
    "RetryPolicy",
    "RetryRule",
    "RowError",
    "RunIvr",
    "compile_window",
    "interpret_key",
    "is_inside",
    "next_opening",
    "on_answer",
    "parse_contacts_csv",
    "phone_key",
    "render",
    "retry_at",
    "transition",
]
