"""Flow checks over the step graph (internal to check.py).

* Reachability from the entry step (hotkey, error and failure targets count as roots: a
  caller can press a hotkey during any prompt or input).
* Termination: every path through a step must end in ``->``, ``hangup``, a successful
  ``transfer``/``queue``, or ``return`` inside a sub; key, ``ok`` and ``failure`` blocks of
  input steps likewise. ``noinput``/``nomatch`` blocks may fall through (then the prompt is
  repeated).
* Loops with no input: a cycle of steps on which the caller is never asked anything and
  nothing waits (no menu, ask, record, voicemail, queue or transfer) spins forever.
* Definite assignment (the classic data-flow analysis, as in Java's "definitely assigned"
  rule): the set of variables set on *every* path into a step is the intersection over all
  its incoming jumps, iterated to a fixed point; reading a variable outside that set is an
  error.
"""

from __future__ import annotations

from collections.abc import Iterator

from . import ast as A
from . import spec as S
from .diagnostics import Diagnostic, Severity, did_you_mean
from .expr import free_vars

__all__ = ["BUILTIN_VARS", "FlowAnalysis", "terminates"]

BUILTIN_VARS = frozenset({"caller", "called"})
_Set = frozenset[str]


def _can_continue_outcomes(st: A.Lookup | A.Transfer | A.Enqueue | A.Record | A.Voicemail
                           ) -> bool:
    handled = S.clause_map(st.clauses, type(st))
    if isinstance(st, A.Transfer | A.Enqueue):
        # success leaves the IVR; each failure outcome continues unless its block ends
        return any(ev not in handled or not terminates(handled[ev].body)
                   for ev in S.OUTCOMES[type(st)])
    return True  # lookup/record/voicemail success continues with the next statement


def stmt_terminates(st: A.Stmt) -> bool:
    if isinstance(st, A.Goto | A.Hangup | A.Return):
        return True
    if isinstance(st, A.If):
        return st.orelse is not None and terminates(st.orelse) and all(
            terminates(body) for _, body in st.branches)
    if isinstance(st, A.WithOutcomes):
        return not _can_continue_outcomes(st)
    return False


def terminates(body: tuple[A.Stmt, ...]) -> bool:
    """True when no path through ``body`` reaches its end."""
    return any(stmt_terminates(st) for st in body)


def _nested_bodies(st: A.Stmt) -> Iterator[tuple[A.Stmt, ...]]:
    if isinstance(st, A.If):
        for _, body in st.branches:
            yield body
        if st.orelse is not None:
            yield st.orelse
    elif isinstance(st, A.WithOutcomes):
        for c in st.clauses:
            yield c.body


def all_stmts(body: tuple[A.Stmt, ...]) -> Iterator[A.Stmt]:
    for st in body:
        yield st
        for inner in _nested_bodies(st):
            yield from all_stmts(inner)


def step_bodies(node: A.StepNode | A.Sub) -> list[tuple[A.Stmt, ...]]:
    if isinstance(node, A.Step | A.Sub):
        return [node.body]
    bodies = [c.body for c in node.clauses]
    if isinstance(node, A.Menu):
        bodies.extend(e.body for e in node.entries)
    return bodies


class FlowAnalysis:
    def __init__(self, program: A.Program) -> None:
        self.p = program
        self.out: list[Diagnostic] = []
        self.nodes: dict[str, A.StepNode] = dict(program.step_index)
        self.subs = dict(program.sub_index)
        self.hotkeys = program.flow.hotkeys if program.flow else ()
        self.flow_clauses = program.flow.clauses if program.flow else ()
        self.sub_defs: dict[str, _Set] = {}
        # Set before the first statement: caller/called and the flow's ``input`` variables.
        self.builtin: _Set = BUILTIN_VARS | frozenset(S.flow_inputs(program))
        self.known_vars = set(self.builtin)
        self._report = False
        self._reported: set[tuple[A.Span, str]] = set()
        self._contrib: dict[str, _Set] = {}
        self._sub_entry: dict[str, _Set] = {}

    def emit(self, code: str, span: A.Span, en: str, zh: str, hint: str | None = None,
             warning: bool = False) -> None:
        sev = Severity.WARNING if warning else Severity.ERROR
        self.out.append(Diagnostic(code, sev, span, en, zh, hint))

    def run(self) -> list[Diagnostic]:
        if not self.p.steps:
            return []
        self.termination()
        self.reachability_and_loops()
        self.assignment()
        return self.out

    # ------------------------------------------------------------ termination
    def _must_end(self, body: tuple[A.Stmt, ...], span: A.Span, what_en: str, what_zh: str
                  ) -> None:
        self._dead_code(body)
        if not terminates(body):
            last = body[-1].span if body else span
            self.emit("E142", last, f"{what_en} can fall off the end: finish with '->', "
                      "'hangup', 'transfer' or 'queue'", f"{what_zh}可能执行到末尾而没有去向："
                      "请以 '->'、'hangup'、'transfer' 或 'queue' 结束")

    def _dead_code(self, body: tuple[A.Stmt, ...]) -> None:
        for i, st in enumerate(body[:-1]):
            if stmt_terminates(st):
                nxt = body[i + 1]
                self.emit("W144", nxt.span, "this line is never run (the line before always "
                          "leaves)", "这一行永远不会执行（上一行总会跳走）", warning=True)
                break
        for st in body:
            for inner in _nested_bodies(st):
                self._dead_code(inner)

    def termination(self) -> None:
        for node in self.p.steps:
            name = node.name.text
            if isinstance(node, A.Step):
                self._must_end(node.body, node.span, f"step '{name}'", f"步骤 '{name}' ")
                continue
            if isinstance(node, A.Menu):
                for e in node.entries:
                    self._must_end(e.body, e.span, f"key {e.key} of '{name}'",
                                   f"'{name}' 的按键 {e.key} ")
            for c in node.clauses:
                events = {S.canonical(ev.text, S.OUTCOMES[type(node)]) for ev in c.events}
                if events & {"ok", "failure"}:
                    self._must_end(c.body, c.span, f"'on {c.events[0].text}' of '{name}'",
                                   f"'{name}' 的 'on {c.events[0].text}' ")
                else:
                    self._dead_code(c.body)
        for c in self.flow_clauses:
            self._must_end(c.body, c.span, f"flow 'on {c.events[0].text}'",
                           f"流程的 'on {c.events[0].text}' ")
        for sub in self.p.subs:
            self._dead_code(sub.body)

    # ------------------------------------------------------------ graph
    def _targets(self, node: A.StepNode | A.Sub, seen_subs: set[str] | None = None
                 ) -> set[str]:
        seen_subs = set() if seen_subs is None else seen_subs
        out: set[str] = set()
        for body in step_bodies(node):
            for st in all_stmts(body):
                if isinstance(st, A.Goto):
                    out.add(st.target.text)
                elif isinstance(st, A.CallSub) and st.name.text in self.subs and (
                        st.name.text not in seen_subs):
                    seen_subs.add(st.name.text)
                    out |= self._targets(self.subs[st.name.text], seen_subs)
        return out & set(self.nodes)

    def _waits(self, node: A.StepNode) -> bool:
        if isinstance(node, A.Menu | A.Ask):
            return True
        bodies = list(step_bodies(node))
        for st in (s for b in bodies for s in all_stmts(b)):
            if isinstance(st, A.Record | A.Voicemail | A.Enqueue | A.Transfer):
                return True
        return False

    def reachability_and_loops(self) -> None:
        edges = {name: self._targets(node) for name, node in self.nodes.items()}
        entry = self.p.steps[0].name.text
        roots = [entry]
        reach: set[str] = set()

        def visit(start: list[str]) -> None:
            stack = list(start)
            while stack:
                n = stack.pop()
                if n in reach or n not in self.nodes:
                    continue
                reach.add(n)
                stack.extend(edges[n])

        visit(roots)
        extra = [c for cl in self.flow_clauses for st in all_stmts(cl.body)
                 if isinstance(st, A.Goto) for c in [st.target.text]]
        extra += [h.target.text for h in self.hotkeys]  # a caller can press one anytime
        visit(extra)
        for node in self.p.steps:
            if node.name.text not in reach and self.nodes.get(node.name.text) is node:
                self.emit("E140", node.name.span, f"step '{node.name.text}' can never be "
                          "reached", f"步骤 '{node.name.text}' 永远不会被执行到")
        called = {st.name.text for n in [*self.p.steps, *self.p.subs] for b in step_bodies(n)
                  for st in all_stmts(b) if isinstance(st, A.CallSub)}
        for sub in self.p.subs:
            if sub.name.text not in called:
                self.emit("W141", sub.name.span, f"sub '{sub.name.text}' is never called",
                          f"子流程 '{sub.name.text}' 从未被调用", warning=True)
        self._loops(edges)

    def _loops(self, edges: dict[str, set[str]]) -> None:
        """Tarjan's strongly connected components; flag cycles where nothing waits."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        counter = [0]
        sccs: list[list[str]] = []

        def strong(v: str) -> None:
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on_stack.add(v)
            for w in edges[v]:
                if w not in index:
                    strong(w)
                    low[v] = min(low[v], low[w])
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                sccs.append(comp)

        for v in edges:
            if v not in index:
                strong(v)
        order = {s.name.text: i for i, s in enumerate(self.p.steps)}
        for comp in sccs:
            cyclic = len(comp) > 1 or comp[0] in edges[comp[0]]
            if cyclic and not any(self._waits(self.nodes[n]) for n in comp):
                comp.sort(key=lambda n: order.get(n, 0))
                names = " -> ".join([*comp, comp[0]])
                self.emit("E153", self.nodes[comp[0]].name.span, f"loop with no input: "
                          f"{names} never waits for the caller", f"没有输入的循环：{names} "
                          "从不等待来电者操作，会无限循环")

    # ------------------------------------------------------------ definite assignment
    def assignment(self) -> None:
        for node in [*self.p.steps, *self.p.subs]:
            for b in step_bodies(node):
                for st in all_stmts(b):
                    if isinstance(st, A.SetVar):
                        self.known_vars.add(st.name.text)
                    elif isinstance(st, A.Lookup | A.Record):
                        self.known_vars.add(st.var.text)
            if isinstance(node, A.Ask):
                into = S.input_spec(self.p, node).into
                if into:
                    self.known_vars.add(into)
            if isinstance(node, A.Sub):
                self.known_vars.update(p.text for p in node.params)
        for _ in range(3):  # subs calling subs: a few rounds reach the fixed point
            for sub in self.p.subs:
                entry = self.builtin | {p.text for p in sub.params}
                outs = self._returns(sub.body, entry)
                self.sub_defs[sub.name.text] = frozenset.intersection(*outs) - entry if (
                    outs) else frozenset(self.known_vars)
        entry_name = self.p.steps[0].name.text
        entries: dict[str, _Set] = {entry_name: self.builtin}
        for c in self.flow_clauses:  # error/failure handlers: only builtins are sure
            for st in all_stmts(c.body):
                if isinstance(st, A.Goto):
                    entries[st.target.text] = self.builtin
        for _ in range(4 * len(self.nodes) + 4):
            changed = False
            self._contrib = {}
            self._sub_entry = {}
            for name, node in self.nodes.items():
                if name in entries:
                    self._node(node, entries[name])
            for tgt, s in self._contrib.items():
                new = s if tgt not in entries else entries[tgt] & s
                if entries.get(tgt) != new:
                    entries[tgt] = new
                    changed = True
            if not changed:
                break
        self._report = True
        for name, node in self.nodes.items():
            if name in entries:
                self._node(node, entries[name])
        for sub in self.p.subs:
            seen = self._sub_entry.get(sub.name.text)
            if seen is not None:
                self._block(sub.body, seen | {p.text for p in sub.params})
        for c in self.flow_clauses:
            self._block(c.body, self.builtin)

    def _returns(self, body: tuple[A.Stmt, ...], entry: _Set) -> list[_Set]:
        saved = self._report
        self._report = False
        rets: list[_Set] = []
        out = self._block(body, entry, rets)
        if out is not None:
            rets.append(out)
        self._report = saved
        return rets

    def _use(self, e: A.Expr | None, cur: _Set) -> None:
        if e is None or not self._report:
            return
        for v in free_vars(e):
            if v.name in cur or (v.span, v.name) in self._reported:
                continue
            self._reported.add((v.span, v.name))
            if v.name in self.known_vars:
                self.emit("E170", v.span, f"variable '{v.name}' may be used before it is set",
                          f"变量 '{v.name}' 可能在赋值之前被使用")
            else:
                self.emit("E170", v.span, f"variable '{v.name}' is never set",
                          f"变量 '{v.name}' 从未赋值",
                          did_you_mean(v.name, self.known_vars))

    def _jump(self, target: str, cur: _Set) -> None:
        prev = self._contrib.get(target)
        self._contrib[target] = cur if prev is None else prev & cur

    def _node(self, node: A.StepNode, cur: _Set) -> None:
        if isinstance(node, A.Step):
            self._block(node.body, cur)
            return
        spec = S.input_spec(self.p, node)
        for t in spec.prompts:
            self._template(t, cur)
        self._hotkey_jumps(cur)
        for c in self.flow_clauses:
            if "failure" in {S.canonical(e.text, S.OUTCOMES[A.Flow]) for e in c.events}:
                self._block(c.body, cur)
        if isinstance(node, A.Menu):
            for e in node.entries:
                self._block(e.body, cur)
        for c in node.clauses:
            events = {S.canonical(ev.text, S.OUTCOMES[type(node)]) for ev in c.events}
            self._block(c.body, cur | {spec.into} if "ok" in events and spec.into else cur)

    def _hotkey_jumps(self, cur: _Set) -> None:
        """Hotkeys work during menus, asks and prompts (barge-in): a jump from here."""
        for h in self.hotkeys:
            self._jump(h.target.text, cur)

    def _template(self, t: A.Template, cur: _Set) -> None:
        for part in t.parts:
            if isinstance(part, A.Interp):
                self._use(part.expr, cur)

    def _block(self, body: tuple[A.Stmt, ...], cur: _Set | None,
               rets: list[_Set] | None = None) -> _Set | None:
        for st in body:
            if cur is None:
                return None
            cur = self._stmt(st, cur, rets)
        return cur

    @staticmethod
    def _meet(sets: list[_Set | None]) -> _Set | None:
        live = [s for s in sets if s is not None]
        return frozenset.intersection(*live) if live else None

    def _stmt(self, st: A.Stmt, cur: _Set, rets: list[_Set] | None) -> _Set | None:
        if isinstance(st, A.Say):
            self._template(st.template, cur)
            self._hotkey_jumps(cur)
        elif isinstance(st, A.Play):
            self._hotkey_jumps(cur)
        elif isinstance(st, A.SetVar):
            self._use(st.expr, cur)
            return cur | {st.name.text}
        elif isinstance(st, A.Tag):
            self._use(st.expr, cur)
        elif isinstance(st, A.Goto):
            self._jump(st.target.text, cur)
            return None
        elif isinstance(st, A.Return):
            if rets is not None:
                rets.append(cur)
            return None
        elif isinstance(st, A.Hangup):
            return None
        elif isinstance(st, A.CallSub):
            for a in st.args:
                self._use(a, cur)
            name = st.name.text
            prev = self._sub_entry.get(name)
            self._sub_entry[name] = cur if prev is None else prev & cur
            if name in self.subs:
                sub = self.subs[name]
                self._returns_jumps(sub, cur)
                return cur | self.sub_defs.get(name, frozenset())
        elif isinstance(st, A.If):
            results: list[_Set | None] = []
            for cond, body in st.branches:
                self._use(cond, cur)
                results.append(self._block(body, cur, rets))
            results.append(self._block(st.orelse, cur, rets) if st.orelse is not None else cur)
            return self._meet(results)
        elif isinstance(st, A.WithOutcomes):
            return self._outcomes(st, cur, rets)
        return cur

    def _returns_jumps(self, sub: A.Sub, cur: _Set) -> None:
        """Gotos inside a sub jump with the caller's variables plus the parameters."""
        saved = self._report
        self._report = False
        self._block(sub.body, cur | {p.text for p in sub.params}, [])
        self._report = saved

    def _outcomes(self, st: A.Lookup | A.Transfer | A.Enqueue | A.Record | A.Voicemail,
                  cur: _Set, rets: list[_Set] | None) -> _Set | None:
        handled = S.clause_map(st.clauses, type(st))
        opts = S.option_map(st.options, type(st))
        var: str | None = None
        if isinstance(st, A.Lookup):
            for a in st.args:
                self._use(a, cur)
            var = st.var.text
        elif isinstance(st, A.Transfer):
            self._use(st.target, cur)
        elif isinstance(st, A.Record):
            var = st.var.text
        prio = opts.get("priority")
        if prio is not None and prio.kind == "name":
            self._use(A.Var(prio.raw, prio.span), cur)
        results: list[_Set | None] = []
        for ev in S.OUTCOMES[type(st)]:
            sets_var = var is not None and ev in ("empty", "done") and not (
                isinstance(st, A.Record) and ev == "empty")
            start = cur | {var} if sets_var and var else cur
            if ev in handled:
                results.append(self._block(handled[ev].body, start, rets))
            else:
                results.append(start)
        if isinstance(st, A.Lookup | A.Record | A.Voicemail) and "done" not in handled:
            results.append(cur | {var} if var else cur)  # success continues
        return self._meet(results)
