"""Prompt rendering: ``{expr as FORMAT}`` -> words, through switch/media/readout.py.

The readout module owns the reading rules (元/角/分, 两 vs 二, digit-by-digit numbers);
this module only picks the function for the format and the flow's language and converts
expression values (Decimal, ISO date strings) into what those functions take.
"""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal, InvalidOperation
from typing import Any

from switch.media import readout

from . import ast as A
from . import spec as S
from .expr import EvalContext, IvrRuntimeError, evaluate

__all__ = ["format_value", "render_template"]


def _as_date(value: Any, span: A.Span) -> _dt.date:
    if isinstance(value, str):
        try:
            return _dt.date.fromisoformat(value[:10])
        except ValueError:
            pass
    raise IvrRuntimeError(f"cannot read {value!r} as a date", span)


def _as_time(value: Any, span: A.Span) -> _dt.time:
    if isinstance(value, str):
        text = value[11:] if len(value) > 10 and value[10] in "T " else value
        try:
            return _dt.time.fromisoformat(text)
        except ValueError:
            pass
    raise IvrRuntimeError(f"cannot read {value!r} as a time", span)


def _as_number(value: Any, span: A.Span) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise IvrRuntimeError(f"cannot read {value!r} as a number", span)
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise IvrRuntimeError(f"cannot read {value!r} as a number", span) from exc


def _number_words(n: Decimal, lang: str) -> str:
    whole = int(n)
    words = readout.number_zh(whole) if lang == "zh" else readout.number_en(whole)
    frac = format(abs(n), "f").partition(".")[2].rstrip("0")
    if frac:
        words += ("点" + readout.digits_zh(frac)) if lang == "zh" else (
            " point " + readout.digits_en(frac))
    if n < 0 and whole == 0:
        words = ("负" if lang == "zh" else "minus ") + words
    return words


def format_value(value: Any, fmt: str | None, lang: str, span: A.Span) -> str:
    """Words for one interpolated value; ``fmt`` is a canonical format or None."""
    try:
        if fmt is None:
            if value is None:
                return ""
            if isinstance(value, bool):
                return ("是" if value else "否") if lang == "zh" else (
                    "yes" if value else "no")
            return str(value)
        if fmt == "amount":
            n = _as_number(value, span)
            return readout.amount_zh(n) if lang == "zh" else readout.amount_en(n)
        if fmt == "digits":
            text = str(value)
            return readout.digits_zh(text) if lang == "zh" else readout.digits_en(text)
        if fmt == "number":
            return _number_words(_as_number(value, span), lang)
        if fmt == "date":
            d = _as_date(value, span)
            return readout.date_zh(d) if lang == "zh" else readout.date_en(d)
        if fmt == "time":
            t = _as_time(value, span)
            return readout.time_zh(t) if lang == "zh" else readout.time_en(t)
    except (ValueError, TypeError) as exc:
        raise IvrRuntimeError(f"cannot read {value!r} as {fmt}: {exc}", span) from exc
    raise IvrRuntimeError(f"unknown format {fmt}", span)


def render_template(t: A.Template, ctx: EvalContext, lang: str) -> str:
    """The text to speak for a prompt, with every interpolation read out."""
    out: list[str] = []
    for part in t.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = evaluate(part.expr, ctx)
        fmt = S.FORMATS.get(part.fmt.text) if part.fmt is not None else None
        if part.fmt is not None and fmt is None:
            raise IvrRuntimeError(f"unknown format '{part.fmt.text}'", part.fmt.span)
        out.append(format_value(value, fmt, lang, part.span))
    return "".join(out)
