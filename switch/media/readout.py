"""Readout helpers: turn numbers, amounts, dates and times into the words a prompt speaks.

Pure functions over values, no I/O: the IVR language (`say ... as amount/date/digits`) and the
TTS front end (:func:`normalize_zh`) call them before text reaches the synthesizer, because
espeak-ng reads Arabic numerals inside Chinese text poorly and the cmn-latn-pinyin voice only
sees pinyin, never digits.

Chinese rules (standard Mandarin readings, 现代汉语 number reading conventions):

* Rule 1 -- digit strings (phone, account, order numbers) are read digit by digit, 0 as 零,
  optionally 1 as 幺 (``yao=True``, the telephone/military habit that avoids 一/七 confusion).
* Rule 2 -- cardinal numbers group by 万 (10^4) and 亿 (10^8). One 零 stands for any run of
  zeros between non-zero digits (1001 -> 一千零一, 10500 -> 一万零五百). A leading 一十 is
  shortened to 十 only at the very start of the number (10 -> 十, 1010 -> 一千零一十).
* Rule 3 -- 两 vs 二: with ``liang=True`` (the default) the digit 2 is read 两 directly
  before 百/千/万/亿 (200 -> 两百, 2000 -> 两千, 20000 -> 两万, 2亿 -> 两亿), which is how
  amounts are spoken aloud; 2 before 十 and in the units place is always 二 (20 -> 二十,
  12 -> 十二). ``liang=False`` gives the formal written reading (二百, 二万).
* Rule 4 -- money is read in 元/角/分, never the colloquial 块/毛: amounts are rounded to the
  fen with ROUND_HALF_UP (0.005 -> 一分), whole amounts end in 整 (100.00 -> 一百元整), a zero
  jiao between yuan and fen is read 零 (10.05 -> 十元零五分), amounts under one yuan omit
  元 (0.05 -> 五分), negative amounts are prefixed 负.
* Rule 5 -- years are read digit by digit (2026 -> 二零二六年), months and days as cardinals.

English helpers mirror these for the English prompts (US style, no "and" by default).
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

logger = logging.getLogger(__name__)

__all__ = [
    "CNY",
    "USD",
    "Currency",
    "amount_en",
    "amount_zh",
    "contains_cjk",
    "date_en",
    "date_zh",
    "digits_en",
    "digits_zh",
    "normalize_zh",
    "number_en",
    "number_zh",
    "time_en",
    "time_zh",
    "to_fen",
]

_ZH_DIGITS = "零一二三四五六七八九"
_ZH_WEEKDAYS = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")
#: Telephone keypad symbols and separators, read when spelling a digit string.
_ZH_SYMBOLS = {"*": "星", "#": "井", "+": "加", ".": "点"}
_EN_SYMBOLS = {"*": "star", "#": "pound", "+": "plus", ".": "point"}
#: Separators that carry no sound when a number is spelled ("138-0000 0000").
_SILENT = frozenset(" -\t/()_")

_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def contains_cjk(text: str) -> bool:
    """True when ``text`` holds at least one CJK unified ideograph (so it is Chinese)."""
    return _CJK_RE.search(text) is not None


# ---------------------------------------------------------------------------------- Chinese


def digits_zh(s: str, *, yao: bool = False) -> str:
    """Read a digit string digit by digit (Rule 1).

    Args:
        s: phone/account number; may contain spaces or dashes (silent), keypad ``*`` ``#``,
            ``+`` and ``.``, and Latin letters (spelled as upper-case letters).
        yao: read 1 as 幺 instead of 一.

    Returns:
        e.g. ``"13800000000"`` -> ``"一三八零零零零零零零零"``.

    Raises:
        ValueError: for any other character.
    """
    out: list[str] = []
    for ch in s:
        if "0" <= ch <= "9":
            out.append("幺" if (yao and ch == "1") else _ZH_DIGITS[ord(ch) - 48])
        elif ch in _ZH_SYMBOLS:
            out.append(_ZH_SYMBOLS[ch])
        elif ch.isascii() and ch.isalpha():
            out.append(f" {ch.upper()} ")
        elif ch in _SILENT:
            continue
        else:
            raise ValueError(f"cannot read {ch!r} in digit string {s!r}")
    return re.sub(r" +", " ", "".join(out)).strip()


def _section_zh(n: int, *, leading: bool, liang: bool) -> str:
    """Read 0 < n < 10000 (one 万-group) with 零 for interior zero runs (Rule 2)."""
    out: list[str] = []
    pending_zero = False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d = (n // value) % 10
        if d == 0:
            pending_zero = bool(out)
            continue
        if pending_zero:
            out.append("零")
            pending_zero = False
        if unit == "十" and d == 1 and leading and not out:
            out.append("十")
        elif d == 2 and unit in ("千", "百") and liang:
            out.append("两" + unit)
        else:
            out.append(_ZH_DIGITS[d] + unit)
    return "".join(out)


def _cardinal_zh(n: int, *, leading: bool, liang: bool) -> str:
    """Read n > 0 recursively over 亿 and 万 groups (Rules 2 and 3)."""
    for scale, unit in ((100_000_000, "亿"), (10_000, "万")):
        if n >= scale:
            high, low = divmod(n, scale)
            sub = _cardinal_zh(high, leading=leading, liang=liang)
            head = "两" if (high == 2 and liang) else sub
            if low == 0:
                return head + unit
            gap = "零" if low < scale // 10 else ""
            return head + unit + gap + _cardinal_zh(low, leading=False, liang=liang)
    return _section_zh(n, leading=leading, liang=liang)


def number_zh(n: int, *, liang: bool = True) -> str:
    """Read an integer as a Chinese cardinal (Rules 2 and 3).

    ``10`` -> 十, ``105`` -> 一百零五, ``1010`` -> 一千零一十, ``20000`` -> 两万,
    ``100000000`` -> 一亿, ``-5`` -> 负五.

    Args:
        n: any integer (bool is rejected).
        liang: read 2 as 两 before 百/千/万/亿 (spoken form) instead of 二 (formal form).
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"number_zh needs an int, got {type(n).__name__}")
    if n == 0:
        return "零"
    if n < 0:
        return "负" + _cardinal_zh(-n, leading=True, liang=liang)
    return _cardinal_zh(n, leading=True, liang=liang)


def to_fen(amount: Decimal | str | int | float) -> int:
    """Convert an amount in yuan to an integer number of fen, ROUND_HALF_UP (Rule 4).

    Floats are accepted through their shortest ``repr`` so 0.1 stays 0.1.

    Raises:
        ValueError: if ``amount`` is not a finite number.
    """
    if isinstance(amount, bool):
        raise TypeError("amount must be a number, not bool")
    try:
        value = Decimal(repr(amount)) if isinstance(amount, float) else Decimal(amount)
    except (InvalidOperation, TypeError) as exc:
        raise ValueError(f"not an amount: {amount!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {amount!r}")
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def amount_zh(amount: Decimal | str | int | float, *, liang: bool = True) -> str:
    """Read a money amount in 元/角/分 (Rule 4).

    ``"123.45"`` -> 一百二十三元四角五分, ``"100.00"`` -> 一百元整, ``"0.05"`` -> 五分,
    ``"12.30"`` -> 十二元三角, ``"10.05"`` -> 十元零五分, ``0`` -> 零元整,
    ``"-3.5"`` -> 负三元五角.

    Raises:
        ValueError: if ``amount`` is not a finite number.
    """
    fen_total = to_fen(amount)
    sign = "负" if fen_total < 0 else ""
    yuan, rest = divmod(abs(fen_total), 100)
    jiao, fen = divmod(rest, 10)
    if rest == 0:
        return f"{sign}{number_zh(yuan, liang=liang)}元整"
    parts: list[str] = []
    if yuan:
        parts.append(number_zh(yuan, liang=liang) + "元")
    if jiao:
        parts.append(_ZH_DIGITS[jiao] + "角")
    elif yuan:
        parts.append("零")
    if fen:
        parts.append(_ZH_DIGITS[fen] + "分")
    return sign + "".join(parts)


def date_zh(d: _dt.date, *, weekday: bool = False) -> str:
    """Read a date (Rule 5): 2026-11-30 -> 二零二六年十一月三十日 (+ "，星期一")."""
    text = f"{digits_zh(str(d.year))}年{number_zh(d.month)}月{number_zh(d.day)}日"
    if weekday:
        text += "，" + _ZH_WEEKDAYS[d.weekday()]
    return text


def _period_zh(hour: int) -> str:
    """Spoken day period for a 24 h hour.

    凌晨 0-4, 早上 5-8, 上午 9-11, 中午 12, 下午 13-17, 晚上 18-23.
    """
    if hour < 5:
        return "凌晨"
    if hour < 9:
        return "早上"
    if hour < 12:
        return "上午"
    if hour < 13:
        return "中午"
    if hour < 18:
        return "下午"
    return "晚上"


def time_zh(t: _dt.time | _dt.datetime, *, period: bool = True, seconds: bool = False) -> str:
    """Read a clock time: 15:15 -> 下午三点十五分, 14:05 -> 下午两点零五分, 9:00 -> 上午九点整.

    The hour is read 两 for 2 (两点, never 二点). With ``period=False`` the 24 h hour is
    read (十五点十五分). Minutes under ten get a 零 (零五分).
    """
    hour = t.hour
    shown = hour
    if period:
        shown = hour % 12 if hour % 12 else (12 if hour == 12 else 0)
    hour_word = "两" if shown == 2 else number_zh(shown)
    text = (_period_zh(hour) if period else "") + hour_word + "点"
    if t.minute == 0 and not (seconds and t.second):
        return text + "整"
    text += ("零" if t.minute < 10 else "") + number_zh(t.minute) + "分"
    if seconds and t.second:
        text += number_zh(t.second) + "秒"
    return text


_NUM_RE = re.compile(r"(\d+(?:\.\d+)?)(%?)")
_MONEY_RE = re.compile(r"[¥￥](\d+(?:\.\d{1,2})?)元?|(\d+(?:\.\d{1,2})?)元")
_YEAR_RE = re.compile(r"(\d{4})年")
_CLOCK_RE = re.compile(r"(?<![\d:])([01]?\d|2[0-3])[:：]([0-5]\d)(?![\d:])")


def normalize_zh(text: str, *, spell_min_digits: int = 5) -> str:
    """Replace Arabic numerals in Chinese text by Chinese words, for TTS.

    Heuristics, in order:

    1. money: ``120元``, ``¥12.30``, ``12.30元`` -> :func:`amount_zh` (一百二十元整,
       十二元三角);
    2. years: four digits before 年 are read digit by digit (2026年 -> 二零二六年);
    3. clock times ``15:30`` -> 十五点三十分 (24 h, no day period: the text may already
       say 下午);
    4. a run of ``spell_min_digits`` or more digits, or one with a leading zero, is a
       phone/account/order number and is read digit by digit;
    5. ``50%`` -> 百分之五十; a decimal ``12.5`` -> 十二点五; other integers are cardinals.

    Values the IVR knows the type of should still be formatted by :func:`amount_zh`,
    :func:`date_zh`, :func:`digits_zh` before they are put into text.
    """

    def money(m: re.Match[str]) -> str:
        return amount_zh(m.group(1) or m.group(2))

    def clock(m: re.Match[str]) -> str:
        hour, minute = int(m.group(1)), int(m.group(2))
        if minute == 0:
            return number_zh(hour) + "点整"
        return number_zh(hour) + "点" + ("零" if minute < 10 else "") + number_zh(minute) + "分"

    def number(m: re.Match[str]) -> str:
        value, percent = m.group(1), m.group(2)
        whole, _, frac = value.partition(".")
        if not frac and not percent and (len(whole) >= spell_min_digits or
                                         (len(whole) > 1 and whole[0] == "0")):
            return digits_zh(whole)
        words = number_zh(int(whole))
        if frac:
            words += "点" + digits_zh(frac)
        return ("百分之" + words) if percent else words

    text = _MONEY_RE.sub(money, text)
    text = _YEAR_RE.sub(lambda m: digits_zh(m.group(1)) + "年", text)
    text = _CLOCK_RE.sub(clock, text)
    return _NUM_RE.sub(number, text)


# ---------------------------------------------------------------------------------- English

_EN_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)
_EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_EN_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_EN_ORD_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}
_EN_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)
_EN_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True, slots=True)
class Currency:
    """Names of a currency's major and minor units for :func:`amount_en`."""

    major: str
    major_plural: str
    minor: str
    minor_plural: str


CNY = Currency("yuan", "yuan", "fen", "fen")
USD = Currency("dollar", "dollars", "cent", "cents")


def digits_en(s: str) -> str:
    """Read a digit string digit by digit: ``"105"`` -> ``"one zero five"``.

    Same character set as :func:`digits_zh` (``*`` star, ``#`` pound, letters spelled).
    """
    out: list[str] = []
    for ch in s:
        if "0" <= ch <= "9":
            out.append(_EN_ONES[ord(ch) - 48])
        elif ch in _EN_SYMBOLS:
            out.append(_EN_SYMBOLS[ch])
        elif ch.isascii() and ch.isalpha():
            out.append(ch.upper())
        elif ch in _SILENT:
            continue
        else:
            raise ValueError(f"cannot read {ch!r} in digit string {s!r}")
    return " ".join(out)


def _below_thousand_en(n: int, and_: bool) -> str:
    hundreds, rest = divmod(n, 100)
    words: list[str] = []
    if hundreds:
        words.append(f"{_EN_ONES[hundreds]} hundred")
        if rest and and_:
            words.append("and")
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_EN_TENS[tens] + (f"-{_EN_ONES[ones]}" if ones else ""))
    elif rest:
        words.append(_EN_ONES[rest])
    return " ".join(words)


def number_en(n: int, *, and_: bool = False) -> str:
    """Read an integer in English words (short scale): 105 -> "one hundred five".

    ``and_=True`` gives the British "one hundred and five". Negatives read "minus".
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"number_en needs an int, got {type(n).__name__}")
    if n == 0:
        return "zero"
    if n < 0:
        return "minus " + number_en(-n, and_=and_)
    words: list[str] = []
    for scale, name in _EN_SCALES:
        if n >= scale:
            high, n = divmod(n, scale)
            words.append(f"{number_en(high, and_=and_)} {name}")
    if n:
        words.append(_below_thousand_en(n, and_))
    return " ".join(words)


def _ordinal_en(n: int) -> str:
    """Ordinal words: 1 first, 22 twenty-second, 30 thirtieth."""
    words = number_en(n)
    cut = max(words.rfind(" "), words.rfind("-")) + 1
    head, last = words[:cut], words[cut:]
    if last in _EN_ORD_IRREGULAR:
        last = _EN_ORD_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + last


def amount_en(amount: Decimal | str | int | float, *, currency: Currency = CNY) -> str:
    """Read a money amount: "123.45" -> "one hundred twenty-three yuan forty-five fen".

    Rounded to the minor unit with ROUND_HALF_UP; zero minor units are not read; amounts
    below one major unit read only the minor part; negatives read "minus".
    """
    minor_total = to_fen(amount)
    sign = "minus " if minor_total < 0 else ""
    major, minor = divmod(abs(minor_total), 100)
    parts: list[str] = []
    if major or not minor:
        unit = currency.major if major == 1 else currency.major_plural
        parts.append(f"{number_en(major)} {unit}")
    if minor:
        unit = currency.minor if minor == 1 else currency.minor_plural
        parts.append(f"{number_en(minor)} {unit}")
    return sign + " ".join(parts)


def _year_en(year: int) -> str:
    """Years as spoken: 1999 nineteen ninety-nine, 2000 two thousand, 2026 twenty twenty-six."""
    if 2000 <= year <= 2009 or year < 1000 or year >= 10000:
        return number_en(year)
    high, low = divmod(year, 100)
    if low == 0:
        return f"{number_en(high)} hundred"
    return f"{number_en(high)} {'oh ' if low < 10 else ''}{number_en(low)}"


def date_en(d: _dt.date, *, weekday: bool = False) -> str:
    """Read a date: 2026-11-30 -> "November thirtieth, twenty twenty-six"."""
    text = f"{_EN_MONTHS[d.month - 1]} {_ordinal_en(d.day)}, {_year_en(d.year)}"
    return f"{_EN_WEEKDAYS[d.weekday()]}, {text}" if weekday else text


def time_en(t: _dt.time | _dt.datetime) -> str:
    """Read a clock time, 12 h: 15:15 "three fifteen PM", 9:05 "nine oh five AM"."""
    if t.hour == 12 and t.minute == 0:
        return "twelve noon"
    if t.hour == 0 and t.minute == 0:
        return "twelve midnight"
    hour12 = t.hour % 12 or 12
    suffix = "AM" if t.hour < 12 else "PM"
    if t.minute == 0:
        return f"{number_en(hour12)} o'clock {suffix}"
    minute = ("oh " if t.minute < 10 else "") + number_en(t.minute)
    return f"{number_en(hour12)} {minute} {suffix}"
