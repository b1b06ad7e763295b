"""Parse IVR scripts: lark LALR(1) + an indentation postlexer -> typed AST (ast.py).

``parse(text, filename)`` returns a :class:`~ivr_lang.ast.Program` or raises
:class:`~ivr_lang.diagnostics.IvrSyntaxError` whose diagnostic has the position, the source
line with a caret and, for the usual mistakes (missing colon, bad indentation, misspelt
keyword, unquoted prompt, ``=`` for ``==``), a bilingual explanation and a "did you mean".
The grammar lives in grammar.lark beside this file (lark's own advice: keep the grammar in
its file and turn the tree into AST dataclasses with a Transformer).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.indenter import Indenter

from . import ast as A
from .diagnostics import Diagnostic, IvrSyntaxError, Severity, did_you_mean

logger = logging.getLogger(__name__)

__all__ = ["keywords", "parse", "parse_expr", "syntax_errors"]

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|min|秒|分钟)$")
_DURATION_SCALE = {"ms": Decimal("0.001"), "s": Decimal(1), "秒": Decimal(1),
                   "min": Decimal(60), "分钟": Decimal(60)}
_INTERP_RE = re.compile(r"\{([^{}]*)\}")
#: Setting names whose string values are prompts (templates with interpolations).
PROMPT_WORDS = frozenset({"prompt", "提示"})
_AS_RE = re.compile(r"^(.*?)\s+as\s+(\S+)\s*$", re.S)


class _IndentError(Exception):
    def __init__(self, line: int, col: int) -> None:
        super().__init__(f"inconsistent dedent at {line}:{col}")
        self.line, self.col = line, col


class _Indenter(Indenter):
    """Python-style INDENT/DEDENT tokens, positioned on the indented line itself.

    Differs from lark's Indenter in two ways that matter for error messages: the synthetic
    tokens carry the position of the line they belong to (not of the preceding newline), and
    an inconsistent dedent raises with that position instead of a bare message.
    """

    NL_type = "_NL"
    OPEN_PAREN_types = ["_LPAR", "LSQB"]  # noqa: RUF012 (lark's interface)
    CLOSE_PAREN_types = ["_RPAR", "RSQB"]  # noqa: RUF012
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def handle_NL(self, token: Token) -> Iterator[Token]:
        if self.paren_level > 0:
            return
        yield token
        indent_str = token.rsplit("\n", 1)[1]
        indent = indent_str.count(" ") + indent_str.count("\t") * self.tab_len
        line = (token.end_line or token.line or 1)
        col = len(indent_str) + 1

        def synth(kind: str) -> Token:
            return Token(kind, indent_str, token.end_pos, line, col, line, col,
                         token.end_pos)

        if indent > self.indent_level[-1]:
            self.indent_level.append(indent)
            yield synth(self.INDENT_type)
            return
        while indent < self.indent_level[-1]:
            self.indent_level.pop()
            yield synth(self.DEDENT_type)
        if indent != self.indent_level[-1]:
            raise _IndentError(line, col)

    def _process(self, stream: Iterator[Token]) -> Iterator[Token]:
        token = None
        for token in stream:
            if token.type == self.NL_type:
                yield from self.handle_NL(token)
            else:
                yield token
            if token.type in self.OPEN_PAREN_types:
                self.paren_level += 1
            elif token.type in self.CLOSE_PAREN_types and self.paren_level > 0:
                self.paren_level -= 1
        while len(self.indent_level) > 1:
            self.indent_level.pop()
            yield Token(self.DEDENT_type, "", 0, token.end_line if token else 1, 1)


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark.open("grammar.lark", rel_to=__file__, parser="lalr", postlex=_Indenter(),
                     start=["start", "expr_start"], propagate_positions=True,
                     maybe_placeholders=True)


_KW_PATTERN = re.compile(r"^\(\?:(.*)\)\(\?!\\w\)$")


@lru_cache(maxsize=1)
def _keywords() -> dict[str, tuple[str, ...]]:
    """Terminal name -> its keyword spellings (English first, then the Chinese alias)."""
    out: dict[str, tuple[str, ...]] = {}
    for term in _lark().terminals:
        m = _KW_PATTERN.match(str(term.pattern.value))
        if term.name.startswith("_KW_") and m:
            out[term.name] = tuple(m.group(1).split("|"))
    return out


def keywords() -> frozenset[str]:
    """Every keyword of the language, English and Chinese (names cannot use them)."""
    return frozenset(w for words in _keywords().values() for w in words)


# --------------------------------------------------------------------------- tree -> AST


class _ToAst(Transformer[Token, Any]):
    """Turns the lark tree into ast.py nodes; spans are offset for expressions in prompts."""

    def __init__(self, file: str, line_offset: int = 0, col_offset: int = 0) -> None:
        super().__init__()
        self.file = file
        self.line_offset = line_offset
        self.col_offset = col_offset

    # -- positions
    def _span_tok(self, tok: Token) -> A.Span:
        line = (tok.line or 1) + self.line_offset
        end_line = (tok.end_line or tok.line or 1) + self.line_offset
        return A.Span(self.file, line, (tok.column or 1) + self.col_offset, end_line,
                      (tok.end_column or tok.column or 1) + self.col_offset)

    def _span(self, meta: Any) -> A.Span:
        if getattr(meta, "empty", True):
            return A.Span(self.file, 0, 0)
        return A.Span(self.file, meta.line + self.line_offset, meta.column + self.col_offset,
                      meta.end_line + self.line_offset, meta.end_column + self.col_offset)

    def _name(self, tok: Token) -> A.Name:
        return A.Name(str(tok), self._span_tok(tok))

    @staticmethod
    def _block(x: Any) -> tuple[A.Stmt, ...]:
        return (x,) if isinstance(x, A.Goto) else tuple(x)

    # -- program
    @v_args(meta=True)
    def start(self, meta: Any, items: list[Any]) -> list[Any]:
        return items

    @v_args(meta=True)
    def flow(self, meta: Any, c: list[Any]) -> A.Flow:
        items = c[1:]
        return A.Flow(self._name(c[0]), tuple(i for i in items if isinstance(i, A.Setting)),
                      tuple(i for i in items if isinstance(i, A.Hotkey)),
                      tuple(i for i in items if isinstance(i, A.OnClause)), self._span(meta))

    @v_args(meta=True)
    def hotkey(self, meta: Any, c: list[Any]) -> A.Hotkey:
        return A.Hotkey(c[0][0], self._name(c[1]), self._span(meta))

    @v_args(meta=True)
    def queue_decl(self, meta: Any, c: list[Any]) -> A.QueueDecl:
        return A.QueueDecl(self._name(c[0]), self._span(meta))

    @v_args(meta=True)
    def calendar(self, meta: Any, c: list[Any]) -> A.CalendarDecl:
        return A.CalendarDecl(self._name(c[0]), tuple(c[1:]), self._span(meta))

    @v_args(meta=True)
    def cal_rule(self, meta: Any, c: list[Any]) -> A.CalRule:
        times = tuple(p[1:] for p in c[1:] if p[0] == "time")
        dates = tuple(p[1:] for p in c[1:] if p[0] == "date")
        return A.CalRule(self._name(c[0]), times, dates, self._span(meta))

    def time_range(self, c: list[Token]) -> tuple[str, str, str]:
        return ("time", str(c[0]), str(c[2]))

    def date_range(self, c: list[Token]) -> tuple[str, str, str]:
        return ("date", str(c[0]), str(c[-1]))

    @v_args(meta=True)
    def source_decl(self, meta: Any, c: list[Any]) -> A.SourceDecl:
        return A.SourceDecl(self._name(c[0]), c[1] or (), self._name(c[2]), str(c[3])[1:-1],
                            self._span(meta))

    def params(self, c: list[Token]) -> tuple[A.Name, ...]:
        return tuple(self._name(t) for t in c)

    # -- steps
    @v_args(meta=True)
    def step(self, meta: Any, c: list[Any]) -> A.Step:
        return A.Step(self._name(c[0]), c[1], self._span(meta))

    @v_args(meta=True)
    def menu(self, meta: Any, c: list[Any]) -> A.Menu:
        items = c[1:]
        return A.Menu(self._name(c[0]), tuple(i for i in items if isinstance(i, A.Setting)),
                      tuple(i for i in items if isinstance(i, A.KeyEntry)),
                      tuple(i for i in items if isinstance(i, A.OnClause)), self._span(meta))

    @v_args(meta=True)
    def ask(self, meta: Any, c: list[Any]) -> A.Ask:
        items = c[1:]
        return A.Ask(self._name(c[0]), tuple(i for i in items if isinstance(i, A.Setting)),
                     tuple(i for i in items if isinstance(i, A.OnClause)), self._span(meta))

    @v_args(meta=True)
    def sub(self, meta: Any, c: list[Any]) -> A.Sub:
        return A.Sub(self._name(c[0]), c[1] or (), c[2], self._span(meta))

    @v_args(meta=True)
    def setting(self, meta: Any, c: list[Any]) -> A.Setting:
        values = tuple(c[1:])
        if str(c[0]) in PROMPT_WORDS:
            values = tuple(
                replace(v, template=self._template_at(v.raw, v.span)) if v.kind == "string"
                else v for v in values)
        return A.Setting(self._name(c[0]), values, self._span(meta))

    @v_args(meta=True)
    def key_entry(self, meta: Any, c: list[Any]) -> A.KeyEntry:
        return A.KeyEntry(c[0][0], self._block(c[1]), self._span(meta))

    def key(self, c: list[Token]) -> tuple[str, A.Span]:
        tok = c[0]
        text = str(tok)[1:-1] if tok.type == "STRING" else str(tok)
        return (text, self._span_tok(tok))

    @v_args(meta=True)
    def on_clause(self, meta: Any, c: list[Any]) -> A.OnClause:
        events = tuple(self._name(t) for t in c[:-1])
        return A.OnClause(events, self._block(c[-1]), self._span(meta))

    def body(self, c: list[Any]) -> tuple[A.Stmt, ...]:
        return tuple(c)

    # -- statements
    @v_args(meta=True)
    def say(self, meta: Any, c: list[Token]) -> A.Say:
        return A.Say(self._template(c[0]), self._span(meta))

    @v_args(meta=True)
    def play(self, meta: Any, c: list[Token]) -> A.Play:
        return A.Play(str(c[0])[1:-1], self._span(meta))

    @v_args(meta=True)
    def set_var(self, meta: Any, c: list[Any]) -> A.SetVar:
        return A.SetVar(self._name(c[0]), c[1], self._span(meta))

    @v_args(meta=True)
    def tag(self, meta: Any, c: list[Any]) -> A.Tag:
        return A.Tag(self._name(c[0]), c[1], self._span(meta))

    @v_args(meta=True)
    def goto(self, meta: Any, c: list[Token]) -> A.Goto:
        return A.Goto(self._name(c[0]), self._span(meta))

    @v_args(meta=True)
    def call(self, meta: Any, c: list[Any]) -> A.CallSub:
        return A.CallSub(self._name(c[0]), c[1] or (), self._span(meta))

    @v_args(meta=True)
    def return_stmt(self, meta: Any, c: list[Any]) -> A.Return:
        return A.Return(self._span(meta))

    @v_args(meta=True)
    def hangup(self, meta: Any, c: list[Any]) -> A.Hangup:
        return A.Hangup(self._span(meta))

    @v_args(meta=True)
    def if_stmt(self, meta: Any, c: list[Any]) -> A.If:
        branches = [(c[0], self._block(c[1]))]
        branches.extend(p for p in c[2:-1])
        orelse = c[-1]
        return A.If(tuple(branches), orelse, self._span(meta))

    def elif_part(self, c: list[Any]) -> tuple[A.Expr, tuple[A.Stmt, ...]]:
        return (c[0], self._block(c[1]))

    def else_part(self, c: list[Any]) -> tuple[A.Stmt, ...]:
        return self._block(c[0])

    @v_args(meta=True)
    def lookup(self, meta: Any, c: list[Any]) -> A.Lookup:
        return A.Lookup(self._name(c[0]), self._name(c[1]), c[2] or (), tuple(c[3:-1]), c[-1],
                        self._span(meta))

    @v_args(meta=True)
    def transfer(self, meta: Any, c: list[Any]) -> A.Transfer:
        return A.Transfer(c[0], tuple(c[1:-1]), c[-1], self._span(meta))

    @v_args(meta=True)
    def enqueue(self, meta: Any, c: list[Any]) -> A.Enqueue:
        return A.Enqueue(self._name(c[0]), tuple(c[1:-1]), c[-1], self._span(meta))

    @v_args(meta=True)
    def record(self, meta: Any, c: list[Any]) -> A.Record:
        return A.Record(self._name(c[0]), tuple(c[1:-1]), c[-1], self._span(meta))

    @v_args(meta=True)
    def voicemail(self, meta: Any, c: list[Any]) -> A.Voicemail:
        return A.Voicemail(self._name(c[0]), tuple(c[1:-1]), c[-1], self._span(meta))

    def outcomes(self, c: list[Any]) -> tuple[A.OnClause, ...]:
        return tuple(c)

    @v_args(meta=True)
    def option(self, meta: Any, c: list[Any]) -> A.Option:
        return A.Option(self._name(c[0]), c[1], self._span(meta))

    # -- values
    def v_string(self, c: list[Token]) -> A.Value:
        return A.Value("string", str(c[0])[1:-1], self._span_tok(c[0]))

    def v_number(self, c: list[Token]) -> A.Value:
        return A.Value("number", str(c[0]), self._span_tok(c[0]), Decimal(str(c[0])))

    def v_duration(self, c: list[Token]) -> A.Value:
        m = _DURATION_RE.match(str(c[0]))
        assert m is not None  # the terminal's regex guarantees it
        seconds = Decimal(m.group(1)) * _DURATION_SCALE[m.group(2)]
        return A.Value("duration", str(c[0]), self._span_tok(c[0]), seconds)

    def v_name(self, c: list[Token]) -> A.Value:
        return A.Value("name", str(c[0]), self._span_tok(c[0]))

    def v_range(self, c: list[Token]) -> A.Value:
        span = self._span_tok(c[0])
        end = self._span_tok(c[1])
        return A.Value("range", f"{c[0]}..{c[1]}",
                       A.Span(span.file, span.line, span.col, end.end_line, end.end_col),
                       Decimal(str(c[0])), Decimal(str(c[1])))

    # -- expressions
    def args(self, c: list[Any]) -> tuple[A.Expr, ...]:
        return tuple(c)

    def expr_start(self, c: list[Any]) -> A.Expr:
        return c[0]  # type: ignore[no-any-return]

    @v_args(meta=True)
    def or_(self, meta: Any, c: list[Any]) -> A.Binary:
        return A.Binary("or", c[0], c[1], self._span(meta))

    @v_args(meta=True)
    def and_(self, meta: Any, c: list[Any]) -> A.Binary:
        return A.Binary("and", c[0], c[1], self._span(meta))

    @v_args(meta=True)
    def not_(self, meta: Any, c: list[Any]) -> A.Unary:
        return A.Unary("not", c[0], self._span(meta))

    @v_args(meta=True)
    def compare(self, meta: Any, c: list[Any]) -> A.Binary:
        return A.Binary(str(c[1]), c[0], c[2], self._span(meta))

    @v_args(meta=True)
    def in_(self, meta: Any, c: list[Any]) -> A.Binary:
        return A.Binary("in", c[0], c[1], self._span(meta))

    @v_args(meta=True)
    def not_in(self, meta: Any, c: list[Any]) -> A.Binary:
        return A.Binary("not in", c[0], c[1], self._span(meta))

    @v_args(meta=True)
    def arith(self, meta: Any, c: list[Any]) -> A.Binary:
        return A.Binary(str(c[1]), c[0], c[2], self._span(meta))

    def number(self, c: list[Token]) -> A.Literal:
        return A.Literal(Decimal(str(c[0])), self._span_tok(c[0]))

    def string(self, c: list[Token]) -> A.Literal:
        return A.Literal(str(c[0])[1:-1], self._span_tok(c[0]))

    @v_args(meta=True)
    def true(self, meta: Any, c: list[Any]) -> A.Literal:
        return A.Literal(True, self._span(meta))

    @v_args(meta=True)
    def false(self, meta: Any, c: list[Any]) -> A.Literal:
        return A.Literal(False, self._span(meta))

    @v_args(meta=True)
    def null(self, meta: Any, c: list[Any]) -> A.Literal:
        return A.Literal(None, self._span(meta))

    def var(self, c: list[Token]) -> A.Var:
        return A.Var(str(c[0]), self._span_tok(c[0]))

    @v_args(meta=True)
    def attr(self, meta: Any, c: list[Any]) -> A.Attr:
        return A.Attr(c[0], str(c[1]), self._span(meta))

    @v_args(meta=True)
    def func(self, meta: Any, c: list[Any]) -> A.FuncCall:
        return A.FuncCall(self._name(c[0]), c[1] or (), self._span(meta))

    @v_args(meta=True)
    def list_(self, meta: Any, c: list[Any]) -> A.ListExpr:
        return A.ListExpr(c[0] or (), self._span(meta))

    # -- prompt templates
    def _template(self, tok: Token) -> A.Template:
        return self._template_at(str(tok)[1:-1], self._span_tok(tok))

    def _template_at(self, raw: str, span: A.Span) -> A.Template:
        parts: list[str | A.Interp] = []
        pos = 0
        for m in _INTERP_RE.finditer(raw):
            if m.start() > pos:
                parts.append(raw[pos:m.start()])
            inner = m.group(1)
            fmt: A.Name | None = None
            expr_text = inner
            inner_col = span.col + 1 + m.start(1)  # +1 for the opening quote
            am = _AS_RE.match(inner)
            if am:
                expr_text = am.group(1)
                fcol = inner_col + am.start(2)
                fmt = A.Name(am.group(2), A.Span(self.file, span.line, fcol, span.line,
                                                 fcol + len(am.group(2))))
            expr = _parse_expr_at(expr_text, self.file, span.line, inner_col)
            ispan = A.Span(self.file, span.line, inner_col - 1, span.line,
                           inner_col + len(inner) + 1)
            parts.append(A.Interp(expr, fmt, ispan))
            pos = m.end()
        if pos < len(raw):
            parts.append(raw[pos:])
        return A.Template(tuple(parts), span)


# --------------------------------------------------------------------------- errors

_EXAMPLES: dict[str, list[str]] = {
    "compare": ["step a:\n  if x = 1:\n    hangup\n"],
    "arrow": ["menu m:\n  1 a\n", "menu m:\n  prompt \"x\"\n  1 a\n",
              "menu m:\n  1 -> a\n  2 b\n"],
    "quote": ["step a:\n  say 您好\n", "step a:\n  say hello\n", "step a:\n  说 您好\n"],
    "elseif": ["step a:\n  if x:\n    hangup\n  else if y:\n    hangup\n"],
}
_EXAMPLE_TEXT = {
    "compare": ("'=' sets a value; compare with '=='", "'=' 用于赋值，比较请用 '=='"),
    "arrow": ("a key needs '->' before its target, e.g. 1 -> bill",
              "按键后面要写 '->' 和目标，例如 1 -> bill"),
    "quote": ("prompt text must be in double quotes", "提示语要放在双引号里"),
    "elseif": ("write 'elif', not 'else if'", "请写 'elif'，不要写 'else if'"),
}


def _describe(term: str, kw: dict[str, tuple[str, ...]]) -> str:
    if term in kw:
        return "/".join(f"'{w}'" for w in kw[term])
    if term.startswith("__ANON") or term.isupper():
        try:
            pat = _lark().get_terminal(term).pattern
        except KeyError:
            return term
        if pat.type == "str":
            return f"'{pat.value}'"
    return {"_NL": "end of line", "_INDENT": "indented block", "_DEDENT": "end of block",
            "NAME": "a name", "STRING": "a quoted text", "NUMBER": "a number",
            "DURATION": "a duration like 5s", "$END": "end of text", "_ARROW": "'->'",
            "_COLON": "':'", "STAR": "'*'", "_COMMA": "','",
            "_LPAR": "'('", "_RPAR": "')'"}.get(term, term)


def _starts_line(tok: Token, text: str) -> bool:
    """Whether ``tok`` is the first word of its line (where a statement keyword goes)."""
    lines = text.splitlines()
    if tok.line is None or not 1 <= tok.line <= len(lines):
        return False
    line = lines[tok.line - 1]
    return len(line) - len(line.lstrip()) + 1 == tok.column


def _syntax_diag(exc: UnexpectedInput, text: str, file: str) -> Diagnostic:
    kw = _keywords()
    line = getattr(exc, "line", 1) or 1
    col = getattr(exc, "column", 1) or 1
    width = 1
    code, en, zh, hint = "E001", "syntax error", "语法错误", None
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        ch = text[pos] if pos < len(text) else "?"
        if ch == "\u3000":
            en, zh = "full-width space; use ordinary spaces", "这里是全角空格，请用半角空格"
        else:
            en, zh = f"unexpected character '{ch}'", f"无法识别的字符 '{ch}'"
    elif isinstance(exc, UnexpectedToken):
        tok = exc.token
        expected = set(exc.expected) | set(getattr(exc, "accepts", ()) or ())
        tok_line = tok.line if tok.line is not None else line
        line, col = tok_line, tok.column or col
        width = max(len(str(tok)), 1) if tok.type not in ("_NL", "_INDENT", "_DEDENT") else 1
        example = None
        try:
            # Leading blank or comment lines give one _NL token at the bottom of the parser
            # stack; the examples need it too, or their parser states never compare equal.
            lead = "\n" if text.lstrip(" \t")[:1] in ("\n", "\r", "#") else ""
            examples = {k: [lead + e for e in v] for k, v in _EXAMPLES.items()}
            example = exc.match_examples(lambda s: _lark().parse(s, start="start"),
                                         examples, use_accepts=True)
        except (UnexpectedInput, _IndentError):
            example = None
        if tok.type == "_NL" and "_COLON" in expected:
            code, en, zh = "E002", "missing ':' at the end of the line", "行末缺少冒号 ':'"
            line_text = text.splitlines()[tok_line - 1] if tok_line - 1 < len(
                text.splitlines()) else ""
            col = len(line_text.rstrip()) + 1
        elif tok.type == "_INDENT":
            code, en, zh = "E003", "unexpected indentation", "缩进不正确（多余的缩进）"
        elif tok.type in ("_DEDENT", "$END") and "_INDENT" in expected:
            code, en, zh = "E003", "expected an indented block", "这里需要缩进的语句块"
        elif tok.type == "NAME" and any(t in kw for t in expected) and _starts_line(tok, text):
            word = str(tok)
            code = "E004"
            en, zh = f"unknown keyword '{word}'", f"未知的关键字 '{word}'"
            hint = did_you_mean(word, [w for t in expected if t in kw for w in kw[t]])
        elif example is not None:
            code = "E005"
            en, zh = _EXAMPLE_TEXT[example]
        elif tok.type in kw and "NAME" in expected:
            code = "E007"
            en = f"'{tok}' is a keyword and cannot be used as a name"
            zh = f"'{tok}' 是关键字，不能用作名字"
        elif tok.type == "NAME" and any(t in kw for t in expected):
            word = str(tok)
            code = "E004"
            en, zh = f"unknown keyword '{word}'", f"未知的关键字 '{word}'"
            hint = did_you_mean(word, [w for t in expected if t in kw for w in kw[t]])
        else:
            shown = sorted({_describe(t, kw) for t in expected})[:8]
            what = f"'{tok}'" if str(tok).strip() else _describe(tok.type, kw)
            en = f"unexpected {what}, expected {', '.join(shown)}"
            zh = f"此处不应出现 {str(tok).strip() or _describe(tok.type, kw)}"
    elif isinstance(exc, UnexpectedEOF):
        en, zh = "unexpected end of file", "文件意外结束"
    span = A.Span(file, line, col, line, col + width)
    return Diagnostic(code, Severity.ERROR, span, en, zh, hint)


def _parse_expr_at(text: str, file: str, line: int, col: int) -> A.Expr:
    try:
        tree = _lark().parse(text, start="expr_start")
    except UnexpectedInput as exc:
        d = _syntax_diag(exc, text, file)
        span = A.Span(file, line, col + d.span.col - 1, line, col + d.span.end_col - 1)
        raise _TemplateError(Diagnostic(
            "E006", Severity.ERROR, span, f"bad expression in prompt: {d.message_en}",
            f"提示语中的表达式有误：{d.message_zh}", d.hint)) from exc
    return _ToAst(file, line - 1, col - 1).transform(tree)  # type: ignore[no-any-return]


class _TemplateError(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message_en)
        self.diagnostic = diagnostic


def parse_expr(text: str, file: str = "<expr>") -> A.Expr:
    """Parse one expression (used by tests and the CLI ``--set``)."""
    try:
        return _parse_expr_at(text, file, 1, 1)
    except _TemplateError as exc:
        raise IvrSyntaxError(exc.diagnostic, text) from None


def parse(text: str, filename: str = "<script>") -> A.Program:
    """Parse a whole script.

    Raises:
        IvrSyntaxError: with one diagnostic for the first syntax error.
    """
    src = text if text.endswith("\n") else text + "\n"
    try:
        tree = _lark().parse(src, start="start")
        items = _ToAst(filename).transform(tree)
    except _IndentError as exc:
        span = A.Span(filename, exc.line, exc.col, exc.line, exc.col + 1)
        raise IvrSyntaxError(Diagnostic(
            "E003", Severity.ERROR, span, "indentation does not match any outer block",
            "缩进与外层语句块不对齐"), text) from None
    except _TemplateError as exc:
        raise IvrSyntaxError(exc.diagnostic, text) from None
    except UnexpectedInput as exc:
        raise IvrSyntaxError(_syntax_diag(exc, src, filename), text) from None
    except VisitError as exc:  # lark wraps errors raised inside the transformer
        if isinstance(exc.orig_exc, _TemplateError):
            raise IvrSyntaxError(exc.orig_exc.diagnostic, text) from None
        raise
    return A.Program(
        file=filename, source=text,
        flow=next((i for i in items if isinstance(i, A.Flow)), None),
        queues=tuple(i for i in items if isinstance(i, A.QueueDecl)),
        calendars=tuple(i for i in items if isinstance(i, A.CalendarDecl)),
        sources=tuple(i for i in items if isinstance(i, A.SourceDecl)),
        steps=tuple(i for i in items if isinstance(i, A.Step | A.Menu | A.Ask)),
        subs=tuple(i for i in items if isinstance(i, A.Sub)),
        flows=tuple(i for i in items if isinstance(i, A.Flow)),
    )


_TOP_RE = re.compile(r"^[^\s#]")


def syntax_errors(text: str, filename: str = "<script>") -> list[Diagnostic]:
    """The first syntax error of every top-level item (flow, step, menu, ...), sorted.

    An LALR parser stops at the first error; items are independent, so each is re-parsed
    alone (padded with blank lines to keep line numbers) to report one error per broken
    item instead of one per file.
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _TOP_RE.match(line)] or [0]
    if starts[0] != 0:
        starts.insert(0, 0)
    found: dict[tuple[int, int], Diagnostic] = {}
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        chunk = "\n" * start + "\n".join(lines[start:end]) + "\n"
        try:
            parse(chunk, filename)
        except IvrSyntaxError as exc:
            d = exc.diagnostic
            found.setdefault((d.span.line, d.span.col), d)
    if not found:
        try:
            parse(text, filename)
        except IvrSyntaxError as exc:
            return [exc.diagnostic]
    return sorted(found.values(), key=Diagnostic.sort_key)
