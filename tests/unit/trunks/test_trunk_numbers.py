"""Number normalization, E.164 conversion for China (+86) and caller-ID presentation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch.trunks.numbers import (
    CallerIdMode,
    CallerIdPolicy,
    NumberError,
    NumberFormat,
    NumberRule,
    clean_number,
    format_number,
    from_e164,
    is_emergency,
    normalize,
    present_caller_id,
    to_e164,
)


@pytest.mark.parametrize("raw, clean", [
    ("138 1234 5678", "13812345678"), ("(021) 6123-4567", "02161234567"),
    ("+86.21.6123.4567", "+862161234567"), ("*72#", "*72#"),
])
def test_clean_removes_visual_separators(raw: str, clean: str) -> None:
    assert clean_number(raw) == clean


@pytest.mark.parametrize("bad", ["", "+", "12a4", "sip:1001", "1+2", "++86"])
def test_clean_rejects_non_numbers(bad: str) -> None:
    with pytest.raises(NumberError):
        clean_number(bad)


def test_first_matching_rule_wins() -> None:
    rules = (NumberRule(prefix="9", strip=1), NumberRule(prefix="0", prepend="X"))
    assert normalize("9013812345678", rules) == "013812345678"  # only the first rule
    assert normalize("02161234567", rules) == "X02161234567"
    assert normalize("13812345678", rules) == "13812345678"  # no rule: unchanged


def test_pattern_rule_and_catch_all() -> None:
    rules = (NumberRule(pattern=r"1[3-9]\d{9}", prepend="+86"), NumberRule(prepend="021"))
    assert normalize("13812345678", rules) == "+8613812345678"
    assert normalize("61234567", rules) == "02161234567"


def test_rule_that_strips_everything_is_an_error() -> None:
    with pytest.raises(NumberError):
        normalize("9", (NumberRule(prefix="9", strip=1),))
    with pytest.raises(ValueError):
        NumberRule(pattern="(")


@pytest.mark.parametrize("dialed, e164", [
    ("13812345678", "+8613812345678"),        # mobile: no trunk prefix
    ("02161234567", "+862161234567"),         # Shanghai landline with trunk prefix 0
    ("010 8765 4321", "+861087654321"),       # Beijing
    ("075512345678", "+8675512345678"),       # Shenzhen, 3-digit area code
    ("0014155550100", "+14155550100"),        # international prefix 00
    ("+852 2345 6789", "+85223456789"),       # already E.164
])
def test_to_e164_china(dialed: str, e164: str) -> None:
    assert to_e164(dialed) == e164


def test_local_number_needs_area_code() -> None:
    assert to_e164("61234567", area_code="21") == "+862161234567"
    with pytest.raises(NumberError, match="area code"):
        to_e164("61234567")


@pytest.mark.parametrize("code", ["110", "95555", "10086", "*72", "+1234567890123456"])
def test_service_codes_and_oversize_have_no_e164(code: str) -> None:
    with pytest.raises(NumberError):
        to_e164(code)


@pytest.mark.parametrize("e164, national", [
    ("+8613812345678", "13812345678"), ("+862161234567", "02161234567"),
    ("+14155550100", "0014155550100"), ("02161234567", "02161234567"),
])
def test_from_e164(e164: str, national: str) -> None:
    assert from_e164(e164) == national


@given(st.one_of(
    st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),
    st.from_regex(r"0(10|2[0-9]|[3-9][0-9]{2})[2-8][0-9]{6,7}", fullmatch=True),
))
def test_e164_round_trip(national: str) -> None:
    assert from_e164(to_e164(national)) == national


def test_formats() -> None:
    assert format_number("013812345678"[1:], NumberFormat.E164_DIGITS) == "8613812345678"
    assert format_number("+862161234567", NumberFormat.NATIONAL) == "02161234567"
    assert format_number("021-6123-4567", NumberFormat.AS_IS) == "02161234567"
    assert format_number("02161234567", NumberFormat.E164) == "+862161234567"


def test_emergency_numbers() -> None:
    assert is_emergency("110") and is_emergency("1 2 0")
    assert not is_emergency("1100") and not is_emergency("abc")


def test_caller_id_fixed_and_per_user() -> None:
    fixed = CallerIdPolicy(CallerIdMode.FIXED, "02161234567", fmt=NumberFormat.E164)
    assert present_caller_id(fixed, user="1001", caller_number="1001").number == "+862161234567"
    per_user = CallerIdPolicy(CallerIdMode.PER_USER, "02161234567",
                              per_user={"1001": "02161234501"})
    assert present_caller_id(per_user, user="1001", caller_number=None).number == "02161234501"
    assert present_caller_id(per_user, user="1002", caller_number=None).number == "02161234567"


def test_caller_id_pass_through_hides_extensions() -> None:
    policy = CallerIdPolicy(CallerIdMode.PASS_THROUGH, "02161234567")
    forwarded = present_caller_id(policy, user=None, caller_number="+8613812345678")
    assert forwarded.number == "+8613812345678"
    internal = present_caller_id(policy, user="1001", caller_number="1001")
    assert internal.number == "02161234567"
    bare = present_caller_id(CallerIdPolicy(), user="1001", caller_number="1001")
    assert bare.number is None


def test_caller_id_privacy_and_unformattable_fallback() -> None:
    policy = CallerIdPolicy(CallerIdMode.PASS_THROUGH, "02161234567", fmt=NumberFormat.E164)
    cid = present_caller_id(policy, user=None, caller_number="95555123", private=True)
    assert cid.private
    assert cid.number == "+862161234567"  # 95555123 is local without area code: fallback
