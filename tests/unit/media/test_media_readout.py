"""Table tests for switch.media.readout (Chinese and English readouts)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from switch.media.readout import (
    USD,
    amount_en,
    amount_zh,
    contains_cjk,
    date_en,
    date_zh,
    digits_en,
    digits_zh,
    normalize_zh,
    number_en,
    number_zh,
    time_en,
    time_zh,
    to_fen,
)

NUMBER_ZH = [
    (0, "零"),
    (1, "一"),
    (2, "二"),
    (10, "十"),
    (11, "十一"),
    (15, "十五"),
    (20, "二十"),
    (22, "二十二"),
    (100, "一百"),
    (101, "一百零一"),
    (105, "一百零五"),
    (110, "一百一十"),
    (111, "一百一十一"),
    (200, "两百"),
    (999, "九百九十九"),
    (1000, "一千"),
    (1001, "一千零一"),
    (1010, "一千零一十"),
    (1100, "一千一百"),
    (2000, "两千"),
    (10000, "一万"),
    (10001, "一万零一"),
    (10500, "一万零五百"),
    (12000, "一万两千"),
    (20000, "两万"),
    (100000, "十万"),
    (100010, "十万零一十"),
    (105000, "十万五千"),
    (200000, "二十万"),
    (1000500, "一百万零五百"),
    (10010012, "一千零一万零一十二"),
    (100000000, "一亿"),
    (100100000, "一亿零一十万"),
    (120000000, "一亿两千万"),
    (200000000, "两亿"),
    (10**12, "一万亿"),
    (-5, "负五"),
    (-10, "负十"),
]


@pytest.mark.parametrize(("n", "expected"), NUMBER_ZH)
def test_number_zh(n: int, expected: str) -> None:
    assert number_zh(n) == expected


@pytest.mark.parametrize(
    ("n", "expected"),
    [(200, "二百"), (2000, "二千"), (20000, "二万"), (222, "二百二十二"), (200000000, "二亿")],
)
def test_number_zh_formal_er(n: int, expected: str) -> None:
    assert number_zh(n, liang=False) == expected


def test_number_zh_rejects_non_int() -> None:
    with pytest.raises(TypeError):
        number_zh(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        number_zh(True)


AMOUNT_ZH = [
    ("123.45", "一百二十三元四角五分"),
    ("100.00", "一百元整"),
    ("0.05", "五分"),
    ("12.30", "十二元三角"),
    ("10.05", "十元零五分"),
    ("0.50", "五角"),
    ("0.55", "五角五分"),
    ("0", "零元整"),
    ("1005.05", "一千零五元零五分"),
    ("200", "两百元整"),
    ("20000.10", "两万元一角"),
    (7, "七元整"),
    (Decimal("3.456"), "三元四角六分"),  # ROUND_HALF_UP to the fen
    ("0.005", "一分"),
    ("0.004", "零元整"),
    (0.1, "一角"),  # float via repr, not binary expansion
    ("-3.5", "负三元五角"),
]


@pytest.mark.parametrize(("amount", "expected"), AMOUNT_ZH)
def test_amount_zh(amount: object, expected: str) -> None:
    assert amount_zh(amount) == expected  # type: ignore[arg-type]
    assert "块" not in expected and "毛" not in expected


@pytest.mark.parametrize("bad", ["abc", "", "NaN", "Infinity", None])
def test_amount_rejects_garbage(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        amount_zh(bad)  # type: ignore[arg-type]


def test_to_fen_rounding() -> None:
    assert to_fen("2.675") == 268
    assert to_fen("-2.675") == -268
    assert to_fen(12) == 1200


DIGITS_ZH = [
    ("13800000000", "一三八零零零零零零零零"),
    ("138-0000 0000", "一三八零零零零零零零零"),
    ("0", "零"),
    ("*86#", "星八六井"),
    ("A12", "A 一二"),
]


@pytest.mark.parametrize(("s", "expected"), DIGITS_ZH)
def test_digits_zh(s: str, expected: str) -> None:
    assert digits_zh(s) == expected


def test_digits_zh_yao_and_errors() -> None:
    assert digits_zh("10086", yao=True) == "幺零零八六"
    assert digits_zh("10086") == "一零零八六"
    with pytest.raises(ValueError):
        digits_zh("12€")


@pytest.mark.parametrize(
    ("d", "weekday", "expected"),
    [
        (dt.date(2026, 11, 30), False, "二零二六年十一月三十日"),
        (dt.date(2026, 11, 30), True, "二零二六年十一月三十日，星期一"),
        (dt.date(2000, 1, 1), False, "二零零零年一月一日"),
        (dt.date(2026, 2, 22), True, "二零二六年二月二十二日，星期日"),
    ],
)
def test_date_zh(d: dt.date, weekday: bool, expected: str) -> None:
    assert date_zh(d, weekday=weekday) == expected


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (dt.time(15, 15), "下午三点十五分"),
        (dt.time(14, 5), "下午两点零五分"),
        (dt.time(9, 0), "上午九点整"),
        (dt.time(0, 0), "凌晨零点整"),
        (dt.time(12, 30), "中午十二点三十分"),
        (dt.time(7, 10), "早上七点十分"),
        (dt.time(20, 45), "晚上八点四十五分"),
    ],
)
def test_time_zh(t: dt.time, expected: str) -> None:
    assert time_zh(t) == expected


def test_time_zh_24h_and_seconds() -> None:
    assert time_zh(dt.time(15, 15), period=False) == "十五点十五分"
    assert time_zh(dt.time(15, 15, 7), seconds=True) == "下午三点十五分七秒"


def test_normalize_zh() -> None:
    text = "您的账号0012345，欠费120元，电话13800000000，用量3.5吨，完成50%，共12户"
    assert normalize_zh(text) == (
        "您的账号零零一二三四五，欠费一百二十元整，电话一三八零零零零零零零零，"
        "用量三点五吨，完成百分之五十，共十二户"
    )
    assert normalize_zh("没有数字") == "没有数字"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("应缴¥12.30", "应缴十二元三角"),
        ("应缴12.05元", "应缴十二元零五分"),
        ("￥0.5元", "五角"),
        ("2026年11月30日", "二零二六年十一月三十日"),
        ("下午15:05前", "下午十五点零五分前"),
        ("9:00开门", "九点整开门"),
        ("编号A-0012", "编号A-零零一二"),
    ],
)
def test_normalize_zh_money_dates_times(text: str, expected: str) -> None:
    assert normalize_zh(text) == expected


def test_contains_cjk() -> None:
    assert contains_cjk("hello 你好")
    assert not contains_cjk("hello, world 123")


NUMBER_EN = [
    (0, "zero"),
    (10, "ten"),
    (15, "fifteen"),
    (21, "twenty-one"),
    (100, "one hundred"),
    (101, "one hundred one"),
    (110, "one hundred ten"),
    (1000, "one thousand"),
    (1001, "one thousand one"),
    (10000, "ten thousand"),
    (100000000, "one hundred million"),
    (1234567, "one million two hundred thirty-four thousand five hundred sixty-seven"),
    (-7, "minus seven"),
]


@pytest.mark.parametrize(("n", "expected"), NUMBER_EN)
def test_number_en(n: int, expected: str) -> None:
    assert number_en(n) == expected


def test_number_en_british_and() -> None:
    assert number_en(115, and_=True) == "one hundred and fifteen"


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("123.45", "one hundred twenty-three yuan forty-five fen"),
        ("100.00", "one hundred yuan"),
        ("0.05", "five fen"),
        ("0", "zero yuan"),
        ("-1.01", "minus one yuan one fen"),
    ],
)
def test_amount_en(amount: str, expected: str) -> None:
    assert amount_en(amount) == expected


def test_amount_en_usd() -> None:
    assert amount_en("1.01", currency=USD) == "one dollar one cent"
    assert amount_en("12.50", currency=USD) == "twelve dollars fifty cents"


def test_digits_en() -> None:
    assert digits_en("10 86#") == "one zero eight six pound"


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        (dt.date(2026, 11, 30), "November thirtieth, twenty twenty-six"),
        (dt.date(2001, 1, 22), "January twenty-second, two thousand one"),
        (dt.date(1999, 3, 3), "March third, nineteen ninety-nine"),
        (dt.date(1900, 5, 1), "May first, nineteen hundred"),
        (dt.date(2105, 6, 12), "June twelfth, twenty-one oh five"),
    ],
)
def test_date_en(d: dt.date, expected: str) -> None:
    assert date_en(d) == expected


def test_date_en_weekday() -> None:
    assert date_en(dt.date(2026, 11, 30), weekday=True).startswith("Monday, November")


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (dt.time(15, 15), "three fifteen PM"),
        (dt.time(9, 5), "nine oh five AM"),
        (dt.time(12, 0), "twelve noon"),
        (dt.time(0, 0), "twelve midnight"),
        (dt.time(18, 0), "six o'clock PM"),
    ],
)
def test_time_en(t: dt.time, expected: str) -> None:
    assert time_en(t) == expected
