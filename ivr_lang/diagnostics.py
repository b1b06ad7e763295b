"""Diagnostics: one problem in a script, bilingual, with a source excerpt and a caret.

Format (the shape of gcc/rustc/AEL messages, so that editors can jump to the position)::

    hotline.ivr:12:10: error E201: undefined step 'biil' / 未定义的步骤 'biil'
       12 |   1 -> biil
          |        ^^^^
       = did you mean 'bill'? / 您是不是要写 'bill'？

Every message has an English and a Chinese text; hotline staff read one or the other.
``render`` output is what ``softswitch ivr check`` prints and what the golden ``.diag``
files under tests/golden/ivr/ hold.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from .ast import Span

__all__ = [
    "Diagnostic",
    "IvrError",
    "IvrSyntaxError",
    "Severity",
    "did_you_mean",
    "render",
    "render_all",
]


class IvrError(Exception):
    """Root of the ivr_lang exception hierarchy (STYLE.md 4.5)."""


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem: a code (E… blocks loading, W… does not), where, and what, twice."""

    code: str
    severity: Severity
    span: Span
    message_en: str
    message_zh: str
    hint: str | None = None  # "did you mean 'x'?" pairs are already bilingual

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.span.file, self.span.line, self.span.col, self.code)


class IvrSyntaxError(IvrError):
    """The script does not parse; carries the diagnostic (with source line and caret)."""

    def __init__(self, diagnostic: Diagnostic, source: str) -> None:
        super().__init__(render(diagnostic, source))
        self.diagnostic = diagnostic
        self.source = source


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A bilingual "did you mean" hint for the closest candidate, or None."""
    pool = sorted(set(candidates))
    close = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not close and len(word) <= 3:
        close = difflib.get_close_matches(word, pool, n=1, cutoff=0.5)
    if not close:
        return None
    return f"did you mean '{close[0]}'? / 您是不是要写 '{close[0]}'？"


def _display_width(text: str) -> int:
    """Terminal columns: CJK and full-width forms take two, so carets line up."""
    width = 0
    for ch in text:
        code = ord(ch)
        wide = (0x1100 <= code <= 0x115F or 0x2E80 <= code <= 0xA4CF or
                0xAC00 <= code <= 0xD7A3 or 0xF900 <= code <= 0xFAFF or
                0xFE30 <= code <= 0xFE4F or 0xFF00 <= code <= 0xFF60 or
                0xFFE0 <= code <= 0xFFE6 or 0x20000 <= code <= 0x3FFFD)
        width += 2 if wide else 1
    return width


def render(diag: Diagnostic, source: str | None) -> str:
    """Render one diagnostic with its source line and a caret under the span."""
    head = (f"{diag.span}: {diag.severity.value} {diag.code}: "
            f"{diag.message_en} / {diag.message_zh}")
    lines = [head]
    src_lines = source.splitlines() if source is not None else []
    if 1 <= diag.span.line <= len(src_lines):
        text = src_lines[diag.span.line - 1].replace("\t", " ")
        gutter = f"{diag.span.line:>5} | "
        lines.append(gutter + text)
        start = max(diag.span.col - 1, 0)
        if diag.span.end_line == diag.span.line and diag.span.end_col > diag.span.col:
            end = diag.span.end_col - 1
        else:
            end = start + 1
        end = min(max(end, start + 1), max(len(text), start + 1))
        pad = _display_width(text[:start])
        width = max(_display_width(text[start:end]), 1)
        lines.append(" " * (len(gutter) - 2) + "| " + " " * pad + "^" * width)
    if diag.hint:
        lines.append("      = " + diag.hint)
    return "\n".join(lines)


def render_all(diags: Iterable[Diagnostic], sources: dict[str, str]) -> str:
    """Render diagnostics (already sorted) followed by a bilingual summary line."""
    diags = list(diags)
    parts = [render(d, sources.get(d.span.file)) for d in diags]
    errors = sum(d.is_error for d in diags)
    warnings = len(diags) - errors
    parts.append(f"{errors} error(s), {warnings} warning(s) / "
                 f"{errors} 个错误，{warnings} 个警告")
    return "\n".join(parts) + "\n"
