"""The interpreter: walks a checked Program against one call, through the CallHandle Protocol.

The same code runs in the simulator (FakeCall, fake clock, mocked data sources) and, later,
on live channels (a CallHandle implemented by the switch). It is pure apart from awaiting
the handle and the injected lookup function: it reads no clock (the handle gives the call's
local time for calendars), opens no socket and enforces no timeout itself -- the lookup
function passed in enforces the data-source timeout (runtime.py uses asyncio.wait_for).

Rules:

* Rule 1 -- every call ends in a person or a goodbye, never in silence: a runtime error
  (bad data, a type error in an expression, the step budget exhausted) goes to the flow's
  ``on error`` handler once; if there is none, or it fails too, the caller hears an apology
  and is queued to the flow's ``operator`` queue, or hears a goodbye and is hung up.
* Rule 2 -- a step budget bounds the statements one call may run (the checker rejects
  loops without input, the budget catches anything that slips through at run time).
* Rule 3 -- input steps count bad attempts (no input and wrong input alike); after
  ``retries + 1`` of them the ``failure`` branch runs (the step's, else the flow's).
* Rule 4 -- hotkeys work everywhere the caller can press a key: in menus, during prompts
  (barge-in), and in ``ask`` when the whole entry is that one key and the ask needs more
  than one digit (so "0#" reaches the operator, while the 0 in account "100201" is data).
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from . import ast as A
from . import spec as S
from .calendars import Calendar, compile_calendar
from .expr import EvalContext, IvrRuntimeError, evaluate, normalize, truthy
from .render import render_template

logger = logging.getLogger(__name__)

__all__ = [
    "CallHandle",
    "CallResult",
    "CallerHungUp",
    "DataSourceError",
    "Interpreter",
    "LookupFn",
    "TraceEvent",
]

DEFAULT_BUDGET = 10_000
DEFAULT_INTERDIGIT_S = 3.0
APOLOGY_ZH = "对不起，系统暂时无法处理您的请求。"
APOLOGY_EN = "Sorry, we cannot handle your request right now."
GOODBYE_ZH = "感谢您的来电，再见。"
GOODBYE_EN = "Thank you for calling. Goodbye."


class DataSourceError(Exception):
    """A data source failed or timed out; the interpreter takes the ``on error`` branch."""


class CallerHungUp(Exception):
    """Raised by a CallHandle method when the caller has gone; the walk stops quietly."""


class CallHandle(Protocol):
    """What the interpreter needs from a call (the switch implements it for live channels).

    Every method may take time; each returns only when the action is finished. When the
    caller hangs up, the pending (and every later) method raises :class:`CallerHungUp`.
    """

    caller: str
    called: str

    def local_time(self) -> _dt.datetime:
        """The call's local wall time (for calendars); the handle owns the clock."""
        ...

    async def say(self, text: str, *, bargein: bool) -> str:
        """Speak text; with barge-in, return the keys pressed during it ("" if none)."""
        ...

    async def play(self, file: str, *, bargein: bool) -> str:
        """Play a prompt file; same barge-in contract as :meth:`say`."""
        ...

    async def collect(self, *, max_digits: int, timeout_s: float, interdigit_s: float,
                      end_keys: str, first: str = "") -> str:
        """Collect up to ``max_digits`` keys (``first`` already pressed during the prompt).

        Returns the keys without the end key; "" when nothing was pressed in time.
        """
        ...

    async def transfer(self, target: str, *, mode: str, timeout_s: float) -> str:
        """Transfer; returns "connected", "busy", "noanswer" or "fail"."""
        ...

    async def enqueue(self, queue: str, *, skill: str | None, priority: int,
                      maxwait_s: float | None, tags: dict[str, Any]) -> str:
        """Hand the call to the ACD; returns "answered", "timeout", "full" or "closed"."""
        ...

    async def record(self, *, maxlen_s: float, beep: bool, end_keys: str,
                     mailbox: str | None) -> str | None:
        """Record the caller; returns a recording id, or None when nothing was said."""
        ...

    async def tag(self, key: str, value: Any) -> None:
        """Attach data to the call (agent screen pop, CDR)."""
        ...

    async def hangup(self) -> None:
        ...


#: ``await lookup(source, args, timeout_s)`` -> result; raises DataSourceError on failure
#: or timeout (the runtime enforces the timeout with asyncio.wait_for).
LookupFn = Callable[[A.SourceDecl, list[Any], float], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One thing the interpreter did, for transcripts, coverage and logs."""

    kind: str  # enter, branch, goto, lookup, set, tag, error, end
    step: str
    detail: str
    span: A.Span | None = None


@dataclass(slots=True)
class CallResult:
    """How the call left the IVR: reason is hangup, transferred, queued or error."""

    reason: str
    step: str
    variables: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    statements: int = 0


@dataclass(frozen=True, slots=True)
class _Goto:
    target: str


@dataclass(frozen=True, slots=True)
class _End:
    reason: str


class _Return:
    pass


_Jump = _Goto | _End | _Return | None
_RETURN = _Return()


class Interpreter:
    """Runs one call through one (checked) program version."""

    def __init__(self, program: A.Program, call: CallHandle, lookup: LookupFn, *,
                 budget: int = DEFAULT_BUDGET,
                 trace: Callable[[TraceEvent], None] | None = None,
                 variables: Mapping[str, Any] | None = None) -> None:
        self.p = program
        self.call = call
        self.lookup_fn = lookup
        self.budget = budget
        self.trace_fn = trace
        # The flow's ``input`` variables come from whoever starts the call (a campaign's
        # contact fields); one not given is null, never undefined. caller/called win.
        given = variables or {}
        self.vars: dict[str, Any] = {name: given.get(name) for name in
                                     S.flow_inputs(program)}
        self.vars.update(caller=call.caller, called=call.called)
        self.tags: dict[str, Any] = {}
        self.statements = 0
        self.step = ""
        lang = S.flow_setting(program, "language")
        self.lang = "en" if lang is not None and lang.raw.lower().startswith("en") else "zh"
        self.calendars: dict[str, Calendar] = {c.name.text: compile_calendar(c)
                                               for c in program.calendars}
        self.hotkeys = {h.key: h for h in (program.flow.hotkeys if program.flow else ())}
        self.flow_clauses = (S.clause_map(program.flow.clauses, A.Flow) if program.flow
                             else {})
        op = S.flow_setting(program, "operator")
        self.operator_queue = op.raw if op is not None else None
        self._specs: dict[int, S.InputSpec] = {}

    def spec(self, node: A.Menu | A.Ask) -> S.InputSpec:
        """The node's resolved input parameters (cached: the program is immutable)."""
        found = self._specs.get(id(node))
        if found is None:
            found = self._specs[id(node)] = S.input_spec(self.p, node)
        return found

    # ------------------------------------------------------------------ plumbing
    def _trace(self, kind: str, detail: str, span: A.Span | None = None) -> None:
        if self.trace_fn is not None:
            self.trace_fn(TraceEvent(kind, self.step, detail, span))

    def branch(self, span: A.Span, label: str) -> None:
        self._trace("branch", label, span)

    def _tick(self, span: A.Span) -> None:
        self.statements += 1
        if self.statements > self.budget:
            raise IvrRuntimeError(f"step budget of {self.budget} statements exhausted", span)

    def _ctx(self) -> EvalContext:
        return EvalContext(self.vars, self._is_open)

    def _is_open(self, name: str) -> bool:
        cal = self.calendars.get(name)
        if cal is None:
            raise IvrRuntimeError(f"undefined calendar '{name}'")
        return cal.is_open(self.call.local_time())

    def eval(self, e: A.Expr) -> Any:
        return evaluate(e, self._ctx())

    def render(self, t: A.Template) -> str:
        return render_template(t, self._ctx(), self.lang)

    def _result(self, reason: str) -> CallResult:
        self._trace("end", reason)
        return CallResult(reason, self.step, dict(self.vars), dict(self.tags), self.statements)

    # ------------------------------------------------------------------ main loop
    async def run(self) -> CallResult:
        """Run the call from the entry step until it leaves the IVR."""
        try:
            return await self._run()
        except CallerHungUp:
            self._trace("end", "caller hung up")
            return CallResult("caller_hangup", self.step, dict(self.vars), dict(self.tags),
                              self.statements)

    async def _run(self) -> CallResult:
        node: A.StepNode | None = self.p.entry
        handled_error = False
        while node is not None:
            try:
                jump = await self._enter(node)
            except IvrRuntimeError as exc:
                logger.warning("ivr runtime error in %s step %s: %s", self.p.file, self.step,
                               exc)
                self._trace("error", exc.short(), exc.span)
                jump = await self._on_error(handled_error)
                handled_error = True
            if isinstance(jump, _Goto):
                node = self.p.step_index.get(jump.target)
                if node is None:
                    return self._result(await self._fallback())
                continue
            if isinstance(jump, _End):
                return self._result(jump.reason)
            return self._result(await self._fallback())  # fell off (checker forbids it)
        return self._result(await self._fallback())

    async def _on_error(self, already: bool) -> _Jump:
        clause = self.flow_clauses.get("error")
        if clause is None or already:
            return _End(await self._fallback())
        self.branch(clause.span, "error")
        self.budget = self.statements + 500  # room for the handler itself
        try:
            return await self.block(clause.body)
        except IvrRuntimeError as exc:
            self._trace("error", exc.short(), exc.span)
            return _End(await self._fallback())

    async def _fallback(self) -> str:
        """Rule 1: an apology and the operator queue, else a goodbye; never silence.

        Returns how the call ended ("queued" or "error").
        """
        zh = self.lang == "zh"
        if self.operator_queue is not None:
            await self.call.say(APOLOGY_ZH if zh else APOLOGY_EN, bargein=False)
            outcome = await self.call.enqueue(self.operator_queue, skill=None, priority=0,
                                              maxwait_s=None, tags=dict(self.tags))
            if outcome == "answered":
                return "queued"
        await self.call.say(GOODBYE_ZH if zh else GOODBYE_EN, bargein=False)
        await self.call.hangup()
        return "error"

    async def _enter(self, node: A.StepNode) -> _Jump:
        self.step = node.name.text
        self._trace("enter", self.step, node.span)
        self._tick(node.span)
        if isinstance(node, A.Step):
            return await self.block(node.body)
        if isinstance(node, A.Menu):
            return await self._menu(node)
        return await self._ask(node)

    # ------------------------------------------------------------------ input steps
    async def _prompt(self, spec: S.InputSpec, attempt: int, bargein: bool) -> str:
        if not spec.prompts:
            return ""
        t = spec.prompts[min(attempt, len(spec.prompts) - 1)]
        return await self.call.say(self.render(t), bargein=bargein)

    async def _failed(self, node: A.Menu | A.Ask, kind: str, failures: int,
                      spec: S.InputSpec) -> _Jump | bool:
        """Count a bad attempt; returns a jump, or True to prompt again (Rule 3)."""
        clauses = S.clause_map(node.clauses, type(node))
        if failures > (spec.retries or 0):
            clause = clauses.get("failure") or self.flow_clauses.get("failure")
            self.branch(node.span, "failure")
            if clause is None:
                raise IvrRuntimeError("input failed and there is no 'on failure'", node.span)
            jump = await self.block(clause.body)
            if jump is None:
                raise IvrRuntimeError("'on failure' fell off its end", clause.span)
            return jump
        if kind in clauses:
            self.branch(node.span, kind)
            jump = await self.block(clauses[kind].body)
            if jump is not None:
                return jump
        return True

    async def _menu(self, menu: A.Menu) -> _Jump:
        spec = self.spec(menu)
        entries = {e.key: e for e in menu.entries}
        timeout = float(spec.timeout_s or 5)
        inter = float(spec.interdigit_s or DEFAULT_INTERDIGIT_S)
        failures = 0
        while True:
            first = await self._prompt(spec, failures, bargein=True)
            keys = await self.call.collect(max_digits=spec.max_digits, timeout_s=timeout,
                                           interdigit_s=inter, end_keys="", first=first)
            self._tick(menu.span)
            if keys in entries:
                entry = entries[keys]
                self.branch(menu.span, f"key {keys}")
                return await self.block(entry.body)
            if keys[:1] in self.hotkeys:
                hk = self.hotkeys[keys[:1]]
                self.branch(hk.span, "hotkey")
                self._trace("goto", hk.target.text, hk.span)
                return _Goto(hk.target.text)
            failures += 1
            res = await self._failed(menu, "noinput" if keys == "" else "nomatch", failures,
                                     spec)
            if res is not True:
                return res  # type: ignore[return-value]

    async def _ask(self, ask: A.Ask) -> _Jump:
        spec = self.spec(ask)
        timeout = float(spec.timeout_s or 5)
        inter = float(spec.interdigit_s or DEFAULT_INTERDIGIT_S)
        rx = re.compile(spec.pattern) if spec.pattern else None
        clauses = S.clause_map(ask.clauses, A.Ask)
        failures = 0
        while True:
            first = await self._prompt(spec, failures, bargein=True)
            digits = await self.call.collect(max_digits=spec.max_digits, timeout_s=timeout,
                                             interdigit_s=inter, end_keys=spec.end_keys,
                                             first=first)
            self._tick(ask.span)
            if len(digits) == 1 and digits in self.hotkeys and spec.min_digits > 1:
                hk = self.hotkeys[digits]  # Rule 4: a lone hotkey cannot be data here
                self.branch(hk.span, "hotkey")
                self._trace("goto", hk.target.text, hk.span)
                return _Goto(hk.target.text)
            good = (spec.min_digits <= len(digits) <= spec.max_digits and digits.isdigit()
                    and (rx is None or rx.fullmatch(digits) is not None))
            if digits and good:
                self.vars[spec.into or ask.name.text] = digits
                self.branch(ask.span, "ok")
                clause = clauses.get("ok")
                if clause is None:
                    raise IvrRuntimeError("ask without 'on ok'", ask.span)
                return await self.block(clause.body)
            failures += 1
            res = await self._failed(ask, "noinput" if digits == "" else "nomatch", failures,
                                     spec)
            if res is not True:
                return res  # type: ignore[return-value]

    # ------------------------------------------------------------------ statements
    async def block(self, body: tuple[A.Stmt, ...]) -> _Jump:
        for st in body:
            self._tick(st.span)
            jump = await self.stmt(st)
            if jump is not None:
                return jump
        return None

    async def stmt(self, st: A.Stmt) -> _Jump:
        handler = _HANDLERS.get(type(st))
        if handler is None:
            raise IvrRuntimeError(f"cannot run {type(st).__name__}", st.span)
        return await handler(self, st)

    async def _say(self, st: A.Say) -> _Jump:
        keys = await self.call.say(self.render(st.template), bargein=bool(self.hotkeys))
        return self._hotkey_jump(keys)

    async def _play(self, st: A.Play) -> _Jump:
        keys = await self.call.play(st.file, bargein=bool(self.hotkeys))
        return self._hotkey_jump(keys)

    def _hotkey_jump(self, keys: str) -> _Jump:
        hk = self.hotkeys.get(keys[:1]) if keys else None
        if hk is None:
            return None
        self.branch(hk.span, "hotkey")
        self._trace("goto", hk.target.text, hk.span)
        return _Goto(hk.target.text)

    async def _set(self, st: A.SetVar) -> _Jump:
        value = self.eval(st.expr)
        self.vars[st.name.text] = value
        self._trace("set", f"{st.name.text} = {_show(value)}", st.span)
        return None

    async def _tag(self, st: A.Tag) -> _Jump:
        value = self.eval(st.expr)
        self.tags[st.key.text] = value
        await self.call.tag(st.key.text, value)
        return None

    async def _goto(self, st: A.Goto) -> _Jump:
        self._trace("goto", st.target.text, st.span)
        return _Goto(st.target.text)

    async def _call_sub(self, st: A.CallSub) -> _Jump:
        sub = self.p.sub_index.get(st.name.text)
        if sub is None:
            raise IvrRuntimeError(f"undefined sub '{st.name.text}'", st.span)
        args = [self.eval(a) for a in st.args]
        for p, v in zip(sub.params, args, strict=True):
            self.vars[p.text] = v
        jump = await self.block(sub.body)
        return None if isinstance(jump, _Return) else jump

    async def _return(self, st: A.Return) -> _Jump:
        return _RETURN

    async def _hangup(self, st: A.Hangup) -> _Jump:
        await self.call.hangup()
        return _End("hangup")

    async def _if(self, st: A.If) -> _Jump:
        for i, (cond, body) in enumerate(st.branches):
            if truthy(self.eval(cond)):
                self.branch(st.span, f"if {i + 1}")
                return await self.block(body)
        self.branch(st.span, "else")
        return await self.block(st.orelse) if st.orelse is not None else None

    async def _outcome(self, st: A.Lookup | A.Transfer | A.Enqueue | A.Record | A.Voicemail,
                       outcome: str) -> _Jump:
        self.branch(st.span, outcome)
        clause = S.clause_map(st.clauses, type(st)).get(outcome)
        return await self.block(clause.body) if clause is not None else None

    async def _lookup(self, st: A.Lookup) -> _Jump:
        src = next((s for s in self.p.sources if s.name.text == st.source.text), None)
        if src is None:
            raise IvrRuntimeError(f"undefined data source '{st.source.text}'", st.span)
        args = [self.eval(a) for a in st.args]
        timeout = S.option_map(st.options, A.Lookup).get("timeout")
        timeout_s = float(timeout.number) if timeout is not None and timeout.number else 3.0
        try:
            raw = await self.lookup_fn(src, args, timeout_s)
            value = normalize(raw)
        except (DataSourceError, IvrRuntimeError) as exc:
            self._trace("lookup", f"{st.source.text}({_args(args)}) failed: {exc}", st.span)
            self.vars.pop(st.var.text, None)
            return await self._outcome(st, "error")
        self._trace("lookup", f"{st.source.text}({_args(args)}) = {_show(value)}", st.span)
        self.vars[st.var.text] = value if value not in ({}, []) else None
        if self.vars[st.var.text] is None:
            return await self._outcome(st, "empty")
        self.branch(st.span, "ok")
        return None

    async def _transfer(self, st: A.Transfer) -> _Jump:
        target = self.eval(st.target)
        if not isinstance(target, str | Decimal) or not str(target):
            raise IvrRuntimeError(f"transfer target is {_show(target)}", st.span)
        opts = S.option_map(st.options, A.Transfer)
        mode = opts["mode"].raw if "mode" in opts else "blind"
        timeout = float(opts["timeout"].number or 30) if "timeout" in opts else 30.0
        outcome = await self.call.transfer(str(target), mode=mode, timeout_s=timeout)
        if outcome == "connected":
            self.branch(st.span, "connected")
            return _End("transferred")
        return await self._outcome(st, outcome if outcome in S.OUTCOMES[A.Transfer]
                                   else "fail")

    async def _enqueue(self, st: A.Enqueue) -> _Jump:
        opts = S.option_map(st.options, A.Enqueue)
        prio = opts.get("priority")
        priority: Any = 0
        if prio is not None:
            priority = self.vars.get(prio.raw) if prio.kind == "name" else prio.number
        if not isinstance(priority, Decimal | int):
            raise IvrRuntimeError(f"priority is {_show(priority)}, not a number", st.span)
        maxwait = opts.get("maxwait")
        skill = opts["skill"].raw if "skill" in opts else None
        outcome = await self.call.enqueue(
            st.queue.text, skill=skill, priority=int(priority),
            maxwait_s=float(maxwait.number) if maxwait is not None and maxwait.number else None,
            tags=dict(self.tags))
        if outcome == "answered":
            self.branch(st.span, "answered")
            return _End("queued")
        return await self._outcome(st, outcome if outcome in S.OUTCOMES[A.Enqueue]
                                   else "closed")

    async def _record(self, st: A.Record | A.Voicemail) -> _Jump:
        opts = S.option_map(st.options, type(st))
        maxlen = float(opts["maxlen"].number or 60) if "maxlen" in opts else 60.0
        beep = S.ON_OFF.get(opts["beep"].raw, True) if "beep" in opts else True
        end = opts["end"].raw if "end" in opts else "#"
        mailbox = st.box.text if isinstance(st, A.Voicemail) else None
        rec = await self.call.record(maxlen_s=maxlen, beep=beep, end_keys=end, mailbox=mailbox)
        if isinstance(st, A.Record) and rec is not None:
            self.vars[st.var.text] = rec
        return await self._outcome(st, "done" if rec is not None else "empty")


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _args(args: list[Any]) -> str:
    return ", ".join(_show(a) for a in args)


_HANDLERS: dict[type, Callable[[Interpreter, Any], Awaitable[_Jump]]] = {
    A.Say: Interpreter._say, A.Play: Interpreter._play, A.SetVar: Interpreter._set,
    A.Tag: Interpreter._tag, A.Goto: Interpreter._goto, A.CallSub: Interpreter._call_sub,
    A.Return: Interpreter._return, A.Hangup: Interpreter._hangup, A.If: Interpreter._if,
    A.Lookup: Interpreter._lookup, A.Transfer: Interpreter._transfer,
    A.Enqueue: Interpreter._enqueue, A.Record: Interpreter._record,
    A.Voicemail: Interpreter._record,
}
