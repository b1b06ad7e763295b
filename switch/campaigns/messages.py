"""What a campaign plays on answer, and what the callee's keys mean (pure).

Each demo kind has a Chinese message template with fields in braces, rendered to the words
the TTS speaks by :mod:`switch.media.readout` (espeak-ng's Mandarin voice reads Arabic
numerals poorly, so every number is turned into words here):

* ``{name}`` -- the contact's name, as written;
* ``{amount}`` -- money in 元/角/分 (:func:`~switch.media.readout.amount_zh`: 350.50 ->
  三百五十元五角);
* ``{due_date}``, ``{date}`` -- ISO dates read as 二零二六年十二月三十一日;
* ``{start}``, ``{end}`` -- clock times (``09:00`` -> 上午九点整);
* ``{area}`` (the building of an outage), ``{unit}`` -- numbers read digit by digit
  (3栋2单元501 -> 三栋二单元五零一);
* ``{work_order}`` -- read digit by digit; ``{what}`` -- text with numerals
  read as words.

Keys (Rule 1): ``1`` acknowledges a notice or reminder; a survey takes ``1``-``5`` as the
rating (stored on the work order); ``9`` opts out of this kind of campaign for good. Any
other key repeats the message (the dialer's business, bounded by ``MAX_REPEATS``).

A campaign may instead run an IVR program on answer (``Campaign.ivr_program``): the program
then decides, and reports the outcome through its tags (``campaign_outcome``,
``campaign_rating``).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

from switch.campaigns.model import Campaign, CampaignError, CampaignKind, Contact, Outcome
from switch.media.readout import amount_zh, date_zh, digits_zh, normalize_zh, time_zh

logger = logging.getLogger(__name__)

__all__ = [
    "ACK_KEY",
    "CAMPAIGN_FIELDS",
    "MAX_REPEATS",
    "OPT_OUT_KEY",
    "RATING_KEYS",
    "REQUIRED_FIELDS",
    "TEMPLATES",
    "KeyResult",
    "PlayMessage",
    "RunIvr",
    "check_campaign_fields",
    "interpret_key",
    "on_answer",
    "render",
    "template_fields",
]

ACK_KEY = "1"
OPT_OUT_KEY = "9"
RATING_KEYS = "12345"
MAX_REPEATS = 2
"""How often the message is repeated after a wrong key or silence before hanging up."""

TEMPLATES: dict[CampaignKind, str] = {
    CampaignKind.OUTAGE_NOTICE: (
        "{name}您好，这里是物业服务中心。因设施检修，{area}将于{date}{start}至{end}停{what}，"
        "请提前做好准备。确认收到请按一，不再接收此类通知请按九。"),
    CampaignKind.ARREARS_REMINDER: (
        "{name}您好，这里是物业服务中心。您的账户尚有欠费{amount}，缴费截止日期为{due_date}，"
        "请尽快缴纳。确认收到请按一，不再接收此类提醒请按九。"),
    CampaignKind.REPAIR_SURVEY: (
        "{name}您好，您报修的{work_order}号工单已经完成。请为本次服务打分：非常满意请按五，"
        "满意请按四，一般请按三，不满意请按二，非常不满意请按一。不再接收回访请按九。"),
}

REQUIRED_FIELDS: dict[CampaignKind, tuple[str, ...]] = {
    CampaignKind.OUTAGE_NOTICE: (),
    CampaignKind.ARREARS_REMINDER: ("amount", "due_date"),
    CampaignKind.REPAIR_SURVEY: ("work_order",),
}
"""Per-contact fields a kind cannot do without (the CSV import checks them row by row)."""

CAMPAIGN_FIELDS: dict[CampaignKind, tuple[str, ...]] = {
    CampaignKind.OUTAGE_NOTICE: ("area", "what", "date", "start", "end"),
    CampaignKind.ARREARS_REMINDER: (),
    CampaignKind.REPAIR_SURVEY: (),
}
"""Campaign-wide fields (``Campaign.params``) a kind needs."""

_DIGIT_RUN = re.compile(r"\d+")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def template_fields(template: str) -> list[str]:
    """The field names used in ``template``."""
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def _read(field: str, value: str) -> str:
    """One field's value as spoken words.

    Raises:
        CampaignError: a value that cannot be read (bad amount, date or time).
    """
    try:
        if field == "amount":
            return amount_zh(value)
        if field in ("due_date", "date"):
            return date_zh(dt.date.fromisoformat(value))
        if field in ("start", "end"):
            m = _TIME.match(value)
            if m is None:
                raise ValueError(f"expected HH:MM, got {value!r}")
            return time_zh(dt.time(int(m.group(1)), int(m.group(2))))
        if field == "work_order":
            return digits_zh(value)
        if field == "name":
            return value
        if field in ("unit", "area"):  # flat numbers are read digit by digit: 501 -> 五零一
            return _DIGIT_RUN.sub(lambda m: digits_zh(m.group(0)), value)
        return normalize_zh(value)
    except ValueError as exc:
        raise CampaignError(f"cannot read field {field}={value!r}: {exc}") from None


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill ``template`` with the spoken form of each field.

    Raises:
        CampaignError: a field is missing or unreadable.
    """
    spoken: dict[str, str] = {}
    for field in template_fields(template):
        value = values.get(field)
        if value is None or value == "":
            raise CampaignError(f"the message needs field {field!r}")
        spoken[field] = _read(field, str(value))
    return template.format_map(spoken)


@dataclass(frozen=True, slots=True)
class PlayMessage:
    """Play ``text`` (TTS), then collect one key: see :func:`interpret_key`."""

    text: str
    keys: str
    """The keys that end the message (anything else repeats it)."""


@dataclass(frozen=True, slots=True)
class RunIvr:
    """Run the IVR program at ``path`` with ``variables`` preset."""

    path: str
    variables: Mapping[str, str]


def on_answer(campaign: Campaign, contact: Contact) -> PlayMessage | RunIvr:
    """What the dialer does when ``contact`` answers.

    Raises:
        CampaignError: the message cannot be rendered for this contact.
    """
    values = {**campaign.params, **contact.fields, "name": contact.name}
    if campaign.ivr_program:
        return RunIvr(campaign.ivr_program, values)
    keys = (RATING_KEYS if campaign.kind is CampaignKind.REPAIR_SURVEY else ACK_KEY)
    return PlayMessage(render(TEMPLATES[campaign.kind], values), keys + OPT_OUT_KEY)


@dataclass(frozen=True, slots=True)
class KeyResult:
    outcome: Outcome
    rating: int | None = None


def interpret_key(kind: CampaignKind, key: str | None) -> KeyResult | None:
    """The outcome of an answered call after the callee pressed ``key`` (None: hung up
    without a key, which is ANSWERED). Returns None for a key that means nothing here (the
    dialer repeats the message)."""
    if key is None:
        return KeyResult(Outcome.ANSWERED)
    if key == OPT_OUT_KEY:
        return KeyResult(Outcome.OPTED_OUT)
    if kind is CampaignKind.REPAIR_SURVEY:
        if len(key) == 1 and key in RATING_KEYS:
            return KeyResult(Outcome.ACKNOWLEDGED, int(key))
        return None
    return KeyResult(Outcome.ACKNOWLEDGED) if key == ACK_KEY else None


def check_campaign_fields(kind: CampaignKind, params: Mapping[str, str]) -> None:
    """Check the campaign-wide fields of ``kind`` are present and readable.

    Raises:
        CampaignError: naming the first missing or unreadable field.
    """
    for field in CAMPAIGN_FIELDS[kind]:
        value = params.get(field)
        if not value:
            raise CampaignError(f"{kind.value} campaigns need --{field.replace('_', '-')}")
        _read(field, value)
