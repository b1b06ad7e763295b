"""Typed AST of the IVR language: frozen dataclasses, every node carries its :class:`Span`.

The parser (parser.py) builds these from the lark tree; the checker, the interpreter and the
simulator only ever see these classes, never lark trees. Nodes are immutable so one parsed
:class:`Program` can be shared by every call that started on that version of the script
(version pinning: a reload builds a new Program, running calls keep theirs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

__all__ = [
    "Ask",
    "Attr",
    "Binary",
    "CalRule",
    "CalendarDecl",
    "CallSub",
    "Enqueue",
    "Expr",
    "Flow",
    "FuncCall",
    "Goto",
    "Hangup",
    "Hotkey",
    "If",
    "Interp",
    "KeyEntry",
    "ListExpr",
    "Literal",
    "Lookup",
    "Menu",
    "Name",
    "OnClause",
    "Option",
    "Play",
    "Program",
    "QueueDecl",
    "Record",
    "Return",
    "Say",
    "SetVar",
    "Setting",
    "SourceDecl",
    "Span",
    "Step",
    "StepNode",
    "Stmt",
    "Sub",
    "Tag",
    "Template",
    "Transfer",
    "Unary",
    "Value",
    "Var",
    "Voicemail",
]


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """Where a node starts and ends in its source file (1-based line and column)."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Name:
    """An identifier as written (step, queue, variable, source, setting names)."""

    text: str
    span: Span


# ------------------------------------------------------------------------------ expressions


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | Decimal | int | bool | None
    span: Span


@dataclass(frozen=True, slots=True)
class Var:
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Attr:
    obj: Expr
    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class FuncCall:
    func: Name
    args: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "not"
    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # and or == != < <= > >= in "not in" + -
    left: Expr
    right: Expr
    span: Span


Expr = Literal | Var | Attr | FuncCall | ListExpr | Unary | Binary


@dataclass(frozen=True, slots=True)
class Interp:
    """``{expr as format}`` inside a prompt; ``fmt`` is None for plain interpolation."""

    expr: Expr
    fmt: Name | None
    span: Span


@dataclass(frozen=True, slots=True)
class Template:
    """A prompt: literal text and interpolations, in order."""

    parts: tuple[str | Interp, ...]
    span: Span

    @property
    def text(self) -> str:
        """The literal text only (what the key-announcement check reads)."""
        return "".join(p for p in self.parts if isinstance(p, str))


# ------------------------------------------------------------------------------ values, options


@dataclass(frozen=True, slots=True)
class Value:
    """A setting/option value: kind is string, number, duration, name or range."""

    kind: str
    raw: str
    span: Span
    number: Decimal | None = None  # number, duration (in seconds)
    high: Decimal | None = None  # range upper bound (number holds the lower)
    template: Template | None = None  # prompt strings, with their interpolations parsed


@dataclass(frozen=True, slots=True)
class Option:
    name: Name
    value: Value
    span: Span


@dataclass(frozen=True, slots=True)
class Setting:
    name: Name
    values: tuple[Value, ...]
    span: Span


# ------------------------------------------------------------------------------ statements


@dataclass(frozen=True, slots=True)
class Say:
    template: Template
    span: Span


@dataclass(frozen=True, slots=True)
class Play:
    file: str
    span: Span


@dataclass(frozen=True, slots=True)
class SetVar:
    name: Name
    expr: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Tag:
    key: Name
    expr: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Goto:
    target: Name
    span: Span


@dataclass(frozen=True, slots=True)
class CallSub:
    name: Name
    args: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Return:
    span: Span


@dataclass(frozen=True, slots=True)
class Hangup:
    span: Span


@dataclass(frozen=True, slots=True)
class If:
    branches: tuple[tuple[Expr, tuple[Stmt, ...]], ...]
    orelse: tuple[Stmt, ...] | None
    span: Span


@dataclass(frozen=True, slots=True)
class OnClause:
    """``on busy, noanswer -> x`` or ``on error:`` + block."""

    events: tuple[Name, ...]
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Lookup:
    var: Name
    source: Name
    args: tuple[Expr, ...]
    options: tuple[Option, ...]
    clauses: tuple[OnClause, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Transfer:
    target: Expr
    options: tuple[Option, ...]
    clauses: tuple[OnClause, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Enqueue:
    queue: Name
    options: tuple[Option, ...]
    clauses: tuple[OnClause, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Record:
    var: Name
    options: tuple[Option, ...]
    clauses: tuple[OnClause, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Voicemail:
    box: Name
    options: tuple[Option, ...]
    clauses: tuple[OnClause, ...]
    span: Span


Stmt = (Say | Play | SetVar | Tag | Goto | CallSub | Return | Hangup | If | Lookup | Transfer
        | Enqueue | Record | Voicemail)
#: Statements whose "on" clauses are outcome branches.
WithOutcomes = (Lookup, Transfer, Enqueue, Record, Voicemail)


# ------------------------------------------------------------------------------ steps


@dataclass(frozen=True, slots=True)
class Step:
    name: Name
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class KeyEntry:
    key: str
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Menu:
    name: Name
    settings: tuple[Setting, ...]
    entries: tuple[KeyEntry, ...]
    clauses: tuple[OnClause, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Ask:
    name: Name
    settings: tuple[Setting, ...]
    clauses: tuple[OnClause, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Sub:
    name: Name
    params: tuple[Name, ...]
    body: tuple[Stmt, ...]
    span: Span


StepNode = Step | Menu | Ask


# ------------------------------------------------------------------------------ declarations


@dataclass(frozen=True, slots=True)
class Hotkey:
    key: str
    target: Name
    span: Span


@dataclass(frozen=True, slots=True)
class Flow:
    name: Name
    settings: tuple[Setting, ...]
    hotkeys: tuple[Hotkey, ...]
    clauses: tuple[OnClause, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class QueueDecl:
    name: Name
    span: Span


@dataclass(frozen=True, slots=True)
class CalRule:
    """``mon-fri 08:30-18:00`` / ``closed 2026-10-01..2026-10-07``: raw parts, checked later."""

    kind: Name
    times: tuple[tuple[str, str], ...]
    dates: tuple[tuple[str, str], ...]
    span: Span


@dataclass(frozen=True, slots=True)
class CalendarDecl:
    name: Name
    rules: tuple[CalRule, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class SourceDecl:
    """``source bills(account) sql "SELECT ..."``: kind is sql, python or http."""

    name: Name
    params: tuple[Name, ...]
    kind: Name
    target: str
    span: Span


@dataclass(frozen=True, slots=True)
class Program:
    """One parsed script. ``steps`` keeps source order; the first step is the entry."""

    file: str
    source: str
    flow: Flow | None
    queues: tuple[QueueDecl, ...]
    calendars: tuple[CalendarDecl, ...]
    sources: tuple[SourceDecl, ...]
    steps: tuple[StepNode, ...]
    subs: tuple[Sub, ...]
    flows: tuple[Flow, ...] = ()
    step_index: dict[str, StepNode] = field(default_factory=dict, compare=False)
    sub_index: dict[str, Sub] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        # First definition wins; duplicates are reported by the checker.
        for s in self.steps:
            self.step_index.setdefault(s.name.text, s)
        for sub in self.subs:
            self.sub_index.setdefault(sub.name.text, sub)

    @property
    def entry(self) -> StepNode | None:
        return self.steps[0] if self.steps else None
