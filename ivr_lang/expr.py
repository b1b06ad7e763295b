"""The safe expression language: evaluation and static facts about expressions.

Rules (why it is safe to run scripts written by hotline staff):

* Rule 1 -- no loops, no assignment inside expressions, no attribute access on Python
  objects: values are only ``None``, ``bool``, ``Decimal``, ``str``, ``list`` and ``dict``
  (the shape of JSON and SQL rows), and ``a.b`` only reads a dict key.
* Rule 2 -- a missing key or ``null.x`` gives ``null`` (a data source that returns fewer
  fields must not crash a call); any other misuse (``"a" < 1``, ``len(3)``) raises
  :class:`IvrRuntimeError`, which the interpreter sends to the flow's error handler.
* Rule 3 -- the only functions are the ones in :data:`FUNCTIONS`: ``open(calendar)``,
  ``len(x)``, ``startswith(text, prefix)``; the checker rejects any other name.
* Numbers are ``Decimal`` everywhere (money is read aloud to the fen, floats would not do).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from . import ast as A
from .diagnostics import IvrError

__all__ = [
    "FUNCTIONS",
    "EvalContext",
    "IvrRuntimeError",
    "evaluate",
    "free_vars",
    "normalize",
    "truthy",
    "walk",
]

#: name -> number of arguments.
FUNCTIONS: dict[str, int] = {"open": 1, "len": 1, "startswith": 2}


class IvrRuntimeError(IvrError):
    """An expression or statement failed at run time; carries the span for the log."""

    def __init__(self, message: str, span: A.Span | None = None) -> None:
        super().__init__(f"{span}: {message}" if span else message)
        self.message = message
        self.span = span

    def short(self) -> str:
        """``line:col: message`` without the file name (for transcripts)."""
        return (f"{self.span.line}:{self.span.col}: {self.message}" if self.span
                else self.message)


@dataclass(slots=True)
class EvalContext:
    """What an expression can see: variables, and a calendar test at the call's local time."""

    variables: Mapping[str, Any]
    is_open: Callable[[str], bool]


def normalize(value: Any) -> Any:
    """Turn a data source result into expression values (Rule 1), recursively.

    ints and floats become Decimal (floats through repr, so 0.1 stays 0.1); dates and times
    become ISO strings; tuples become lists. Anything else raises IvrRuntimeError.
    """
    if value is None or isinstance(value, bool | str | Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        try:
            return Decimal(repr(value))
        except InvalidOperation as exc:
            raise IvrRuntimeError(f"not a finite number: {value!r}") from exc
    if isinstance(value, _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    raise IvrRuntimeError(f"unsupported value of type {type(value).__name__}")


def truthy(value: Any) -> bool:
    """Python truthiness restricted to expression values (0, "", [], {}, null are false)."""
    return bool(value)


def _type_name(v: Any) -> str:
    return {type(None): "null", bool: "boolean", Decimal: "number", str: "text",
            list: "list", dict: "record"}.get(type(v), type(v).__name__)


def _compare(op: str, a: Any, b: Any, span: A.Span) -> bool:
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    ok = (isinstance(a, Decimal) and isinstance(b, Decimal)) or (
        isinstance(a, str) and isinstance(b, str))
    if not ok:
        raise IvrRuntimeError(f"cannot compare {_type_name(a)} {op} {_type_name(b)}", span)
    return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])


def _arith(op: str, a: Any, b: Any, span: A.Span) -> Any:
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a + b if op == "+" else a - b
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    raise IvrRuntimeError(f"cannot compute {_type_name(a)} {op} {_type_name(b)}", span)


def _member(a: Any, b: Any, span: A.Span) -> bool:
    if isinstance(b, list):
        return a in b
    if isinstance(b, dict):
        if not isinstance(a, str):
            raise IvrRuntimeError(f"a record's keys are texts, not {_type_name(a)}", span)
        return a in b
    if isinstance(b, str) and isinstance(a, str):
        return a in b
    raise IvrRuntimeError(f"'in' needs a list or a text, got {_type_name(b)}", span)


def _call(node: A.FuncCall, ctx: EvalContext) -> Any:
    name = node.func.text
    if name == "open":
        arg = node.args[0]
        if not isinstance(arg, A.Var):
            raise IvrRuntimeError("open() takes a calendar name", node.span)
        return ctx.is_open(arg.name)
    args = [evaluate(a, ctx) for a in node.args]
    if name == "len":
        if not isinstance(args[0], str | list | dict):
            raise IvrRuntimeError(f"len() of {_type_name(args[0])}", node.span)
        return Decimal(len(args[0]))
    if name == "startswith":
        if not (isinstance(args[0], str) and isinstance(args[1], str)):
            raise IvrRuntimeError("startswith() takes two texts", node.span)
        return args[0].startswith(args[1])
    raise IvrRuntimeError(f"unknown function {name}()", node.span)


def evaluate(node: A.Expr, ctx: EvalContext) -> Any:
    """Evaluate an expression; raises IvrRuntimeError on misuse (Rule 2)."""
    if isinstance(node, A.Literal):
        return node.value
    if isinstance(node, A.Var):
        if node.name not in ctx.variables:
            raise IvrRuntimeError(f"variable '{node.name}' is not set", node.span)
        return ctx.variables[node.name]
    if isinstance(node, A.Attr):
        obj = evaluate(node.obj, ctx)
        if obj is None:
            return None
        if isinstance(obj, dict):
            return obj.get(node.name)
        raise IvrRuntimeError(f"{_type_name(obj)} has no field '{node.name}'", node.span)
    if isinstance(node, A.Unary):
        return not truthy(evaluate(node.operand, ctx))
    if isinstance(node, A.Binary):
        if node.op == "and":
            left = evaluate(node.left, ctx)
            return evaluate(node.right, ctx) if truthy(left) else left
        if node.op == "or":
            left = evaluate(node.left, ctx)
            return left if truthy(left) else evaluate(node.right, ctx)
        a, b = evaluate(node.left, ctx), evaluate(node.right, ctx)
        if node.op in ("+", "-"):
            return _arith(node.op, a, b, node.span)
        if node.op == "in":
            return _member(a, b, node.span)
        if node.op == "not in":
            return not _member(a, b, node.span)
        return _compare(node.op, a, b, node.span)
    if isinstance(node, A.FuncCall):
        return _call(node, ctx)
    if isinstance(node, A.ListExpr):
        return [evaluate(i, ctx) for i in node.items]
    raise IvrRuntimeError(f"cannot evaluate {type(node).__name__}")


def walk(node: A.Expr) -> Iterator[A.Expr]:
    """Every sub-expression, depth first (the node itself first)."""
    yield node
    if isinstance(node, A.Attr):
        yield from walk(node.obj)
    elif isinstance(node, A.Unary):
        yield from walk(node.operand)
    elif isinstance(node, A.Binary):
        yield from walk(node.left)
        yield from walk(node.right)
    elif isinstance(node, A.FuncCall):
        if node.func.text != "open":  # open(cal) names a calendar, not a variable
            for a in node.args:
                yield from walk(a)
    elif isinstance(node, A.ListExpr):
        for i in node.items:
            yield from walk(i)


def free_vars(node: A.Expr) -> list[A.Var]:
    """Variables an expression reads (for the used-before-set check)."""
    return [n for n in walk(node) if isinstance(n, A.Var)]
