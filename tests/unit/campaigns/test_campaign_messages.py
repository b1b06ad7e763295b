"""Messages of the three demo kinds, rendered to spoken Chinese; key meanings."""

from __future__ import annotations

import pytest

from switch.campaigns import (
    Campaign,
    CampaignError,
    CampaignKind,
    Contact,
    Outcome,
    PlayMessage,
    RunIvr,
    interpret_key,
    on_answer,
    render,
)
from switch.campaigns.messages import TEMPLATES, check_campaign_fields, template_fields

ZHANG = Contact(1, "张伟", "13800000000", "+8613800000000",
                {"amount": "350.50", "due_date": "2026-12-31", "unit": "3栋2单元501",
                 "work_order": "202611280007"})


def test_arrears_reminder_reads_amount_in_yuan_jiao_fen_and_date() -> None:
    msg = on_answer(Campaign("c", CampaignKind.ARREARS_REMINDER), ZHANG)
    assert isinstance(msg, PlayMessage)
    assert "张伟您好" in msg.text
    assert "欠费三百五十元五角" in msg.text
    assert "缴费截止日期为二零二六年十二月三十一日" in msg.text
    assert not any(ch.isdigit() for ch in msg.text)     # every number is spoken as words
    assert msg.keys == "19"


def test_outage_notice_uses_campaign_fields() -> None:
    campaign = Campaign("c", CampaignKind.OUTAGE_NOTICE, params={
        "area": "3栋", "what": "水", "date": "2026-12-02", "start": "09:00", "end": "17:30"})
    msg = on_answer(campaign, ZHANG)
    assert isinstance(msg, PlayMessage)
    assert "三栋将于二零二六年十二月二日上午九点整至下午五点三十分停水" in msg.text


def test_repair_survey_asks_for_a_rating() -> None:
    msg = on_answer(Campaign("c", CampaignKind.REPAIR_SURVEY), ZHANG)
    assert isinstance(msg, PlayMessage)
    assert "二零二六一一二八零零零七号工单" in msg.text and "请按五" in msg.text
    assert msg.keys == "123459"


def test_ivr_program_on_answer() -> None:
    campaign = Campaign("c", CampaignKind.ARREARS_REMINDER, ivr_program="/x/remind.ivr")
    action = on_answer(campaign, ZHANG)
    assert isinstance(action, RunIvr)
    assert action.path == "/x/remind.ivr" and action.variables["amount"] == "350.50"


def test_unit_numbers_read_digit_by_digit() -> None:
    assert render("{unit}", {"unit": "3栋2单元501"}) == "三栋二单元五零一"


@pytest.mark.parametrize(("values", "message"), [
    ({"name": "x"}, "needs field 'amount'"),
    ({"name": "x", "amount": "abc", "due_date": "2026-12-31"}, "cannot read field amount"),
    ({"name": "x", "amount": "1", "due_date": "31/12/2026"}, "cannot read field due_date"),
])
def test_missing_or_unreadable_fields(values: dict[str, str], message: str) -> None:
    with pytest.raises(CampaignError, match=message):
        render(TEMPLATES[CampaignKind.ARREARS_REMINDER], values)


def test_campaign_fields_checked() -> None:
    with pytest.raises(CampaignError, match="--area"):
        check_campaign_fields(CampaignKind.OUTAGE_NOTICE, {})
    with pytest.raises(CampaignError, match="start"):
        check_campaign_fields(CampaignKind.OUTAGE_NOTICE, {
            "area": "3栋", "what": "电", "date": "2026-12-02", "start": "9点", "end": "17:00"})
    check_campaign_fields(CampaignKind.ARREARS_REMINDER, {})


def test_templates_use_known_fields_only() -> None:
    known = {"name", "amount", "due_date", "date", "start", "end", "area", "unit", "what",
             "work_order"}
    for template in TEMPLATES.values():
        assert set(template_fields(template)) <= known


@pytest.mark.parametrize(("kind", "key", "outcome", "rating"), [
    (CampaignKind.ARREARS_REMINDER, "1", Outcome.ACKNOWLEDGED, None),
    (CampaignKind.OUTAGE_NOTICE, "9", Outcome.OPTED_OUT, None),
    (CampaignKind.OUTAGE_NOTICE, None, Outcome.ANSWERED, None),
    (CampaignKind.REPAIR_SURVEY, "1", Outcome.ACKNOWLEDGED, 1),
    (CampaignKind.REPAIR_SURVEY, "5", Outcome.ACKNOWLEDGED, 5),
    (CampaignKind.REPAIR_SURVEY, "9", Outcome.OPTED_OUT, None),
])
def test_keys(kind: CampaignKind, key: str | None, outcome: Outcome,
              rating: int | None) -> None:
    result = interpret_key(kind, key)
    assert result is not None and (result.outcome, result.rating) == (outcome, rating)


@pytest.mark.parametrize(("kind", "key"), [
    (CampaignKind.ARREARS_REMINDER, "2"), (CampaignKind.REPAIR_SURVEY, "6"),
    (CampaignKind.REPAIR_SURVEY, "0"), (CampaignKind.REPAIR_SURVEY, "12"),
])
def test_meaningless_keys_repeat(kind: CampaignKind, key: str) -> None:
    assert interpret_key(kind, key) is None
