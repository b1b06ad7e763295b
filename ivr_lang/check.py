"""Static checks: every problem of a script at once, before it can be loaded.

``check(program)`` returns all diagnostics sorted by position; ``check_source(text, file)``
also turns a syntax error into a diagnostic. A script with any error (code E…) is never
loaded (see runtime.ScriptStore); warnings (W…) are printed but do not block.

What is checked (IVR_CTI_ACD.md §A.10 "Static checks worth doing"):

* names: duplicate or undefined steps, subs, queues, calendars, data sources; wrong number
  of arguments; unknown settings, options, outcomes, formats and functions ("did you mean");
* menus: duplicate keys, hotkeys that collide with menu keys, keys announced in a prompt but
  not handled (error) or handled but not announced (warning), keys that are prefixes of
  each other;
* flow: unreachable steps, paths that fall off the end of a step, loops with no input on
  them (a caller would be stuck in silence), ``return`` outside a sub;
* input: retries missing or unbounded, no ``failure`` exit (the VoiceXML silent-loop pitfall),
  impossible digit ranges, end key inside the pattern, patterns no allowed length can match;
* time: input and lookup timeouts missing or absurd, queue without maximum wait;
* data: variables read before they are set on some path (flow-sensitive, across steps);
  ``lookup`` without ``on error``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from . import ast as A
from . import spec as S
from .calendars import DAY_WORDS, day_set, rule_problems
from .check_flow import FlowAnalysis
from .diagnostics import Diagnostic, IvrSyntaxError, Severity, did_you_mean
from .expr import FUNCTIONS, walk
from .parser import parse, syntax_errors

logger = logging.getLogger(__name__)

__all__ = ["check", "check_source", "has_errors"]

#: Accepted ranges in seconds: (low, high) per timer.
LIMITS_S = {
    "input": (1, 60), "interdigit": (0.5, 30), "lookup": (0.1, 30), "transfer": (5, 180),
    "maxwait": (10, 3600), "maxlen": (1, 600),
}
_TIMER_ZH = {"input": "输入", "interdigit": "按键间隔", "lookup": "查询", "transfer": "转接",
             "maxwait": "最长等待", "maxlen": "录音时长"}
MAX_RETRIES = 9
#: Policy for W194: how long a silent caller may stay in one menu or ask, and the speaking
#: rate used to estimate prompt length (Mandarin TTS reads about 4-5 characters a second).
MAX_INPUT_STEP_S = 90
SPEECH_S_PER_CHAR = 0.2
MAX_DIGITS = 32
_ANNOUNCE_ZH = re.compile(r"按\s*([0-9*#]|星号|井号)")
_ANNOUNCE_EN = re.compile(r"\bpress\s+([0-9*#]|star|pound|hash)\b", re.I)
_KEY_WORDS = {"星号": "*", "井号": "#", "star": "*", "pound": "#", "hash": "#"}
_SOURCE_KINDS = ("sql", "python", "http")


def announced_keys(text: str) -> set[str]:
    """Keys a prompt tells the caller to press ("请按1", "press 2", "按井号键")."""
    found = {m.group(1) for m in _ANNOUNCE_ZH.finditer(text)}
    found |= {m.group(1).lower() for m in _ANNOUNCE_EN.finditer(text)}
    return {_KEY_WORDS.get(k, k) for k in found}


class _Checker:
    def __init__(self, program: A.Program) -> None:
        self.p = program
        self.out: list[Diagnostic] = []
        self.step_names = {s.name.text for s in program.steps}
        self.subs = {s.name.text: s for s in program.subs}
        self.queues = {q.name.text for q in program.queues}
        self.calendars = {c.name.text for c in program.calendars}
        self.sources = {s.name.text: s for s in program.sources}
        self.hotkeys = {h.key: h for h in (program.flow.hotkeys if program.flow else ())}

    # ---------------------------------------------------------------- helpers
    def emit(self, code: str, span: A.Span, en: str, zh: str, hint: str | None = None,
             warning: bool = False) -> None:
        sev = Severity.WARNING if warning else Severity.ERROR
        self.out.append(Diagnostic(code, sev, span, en, zh, hint))

    def _dups(self, names: Iterable[A.Name], code: str, what_en: str, what_zh: str) -> None:
        seen: dict[str, A.Name] = {}
        for n in names:
            if n.text in seen:
                first = seen[n.text].span
                self.emit(code, n.span, f"duplicate {what_en} '{n.text}' (first at line "
                          f"{first.line})", f"{what_zh} '{n.text}' 重复定义（第一次在第 "
                          f"{first.line} 行）")
            else:
                seen[n.text] = n

    def _timer(self, value: A.Value | None, kind: str, span: A.Span, required: bool) -> None:
        if value is None or value.number is None:
            if required:
                self.emit("E190", span, f"no {kind} timeout set here or in the flow header",
                          f"没有设置{_TIMER_ZH[kind]}超时（本步骤和流程头都没有）")
            return
        lo, hi = LIMITS_S[kind]
        secs = float(value.number)
        if not lo <= secs <= hi:
            self.emit("E191", value.span, f"{kind} time {value.raw} is outside {lo}-{hi} s",
                      f"{_TIMER_ZH[kind]}时间 {value.raw} 超出合理范围 {lo}-{hi} 秒")

    # ---------------------------------------------------------------- declarations
    def declarations(self) -> None:
        p = self.p
        if len(p.flows) > 1:
            for f in p.flows[1:]:
                self.emit("E105", f.span, "more than one flow header", "流程头重复")
        if p.flow is None:
            span = p.entry.span if p.entry else A.Span(p.file, 1, 1)
            self.emit("W106", span, "no flow header: no default timeouts, retries or hotkeys",
                      "没有流程头：没有默认超时、重试次数和热键", warning=True)
        self._dups([*(s.name for s in p.steps), *(s.name for s in p.subs)], "E101", "step",
                   "步骤")
        self._dups([q.name for q in p.queues], "E102", "queue", "队列")
        self._dups([c.name for c in p.calendars], "E103", "calendar", "日历")
        self._dups([s.name for s in p.sources], "E104", "data source", "数据源")
        if not p.steps:
            self.emit("E107", A.Span(p.file, 1, 1), "the script has no steps",
                      "脚本中没有任何步骤")
        for cal in p.calendars:
            for rule in cal.rules:
                self.calendar_rule(rule)
        for src in p.sources:
            self.source(src)
        if p.flow is not None:
            self.flow_header(p.flow)

    def calendar_rule(self, rule: A.CalRule) -> None:
        kind = rule.kind.text
        if kind not in ("closed", "open", "休息", "上班") and day_set(kind) is None:
            self.emit("E129", rule.kind.span, f"unknown day '{kind}'", f"无法识别的日期 '{kind}'",
                      did_you_mean(kind, DAY_WORDS))
            return
        for en, zh in rule_problems(rule):
            self.emit("E129", rule.span, en, zh)

    def source(self, src: A.SourceDecl) -> None:
        kind = src.kind.text
        if kind not in _SOURCE_KINDS:
            self.emit("E127", src.kind.span, f"unknown data source kind '{kind}' (sql, python, "
                      "http)", f"未知的数据源类型 '{kind}'（可用 sql、python、http）",
                      did_you_mean(kind, _SOURCE_KINDS))
            return
        params = {n.text for n in src.params}
        if kind == "sql":
            used = set(re.findall(r"(?<!:):([^\W\d]\w*)", src.target))
        elif kind == "http":
            used = set(re.findall(r"\{(\w+)\}", src.target))
            if not src.target.startswith(("http://", "https://")):
                self.emit("E128", src.span, "http source needs an http:// or https:// URL",
                          "http 数据源需要 http:// 或 https:// 地址")
        else:
            used = set()
            if not re.fullmatch(r"[A-Za-z_][\w.]*", src.target):
                self.emit("E128", src.span, f"'{src.target}' is not a function name",
                          f"'{src.target}' 不是函数名")
        for name in sorted(used - params):
            self.emit("E128", src.span, f"'{name}' is used in the {kind} text but is not a "
                      "parameter", f"{kind} 文本中用到的 '{name}' 不是参数",
                      did_you_mean(name, params))

    def flow_header(self, flow: A.Flow) -> None:
        self.settings(flow.settings, S.FLOW_SETTINGS, "flow")
        op = S.flow_setting(self.p, "operator")
        if op is not None and op.raw not in self.queues:
            self.undefined_queue(op.raw, op.span)
        seen: set[str] = set()
        for hk in flow.hotkeys:
            self.key_valid(hk.key, hk.span)
            if hk.key in seen:
                self.emit("E134", hk.span, f"hotkey {hk.key} is defined twice",
                          f"热键 {hk.key} 重复定义")
            seen.add(hk.key)
            self.target(hk.target)
        self.clauses(flow.clauses, A.Flow, flow.span)
        for c in flow.clauses:
            self.block(c.body, in_sub=False)
        errors = S.clause_map(flow.clauses, A.Flow)
        if "error" not in errors and op is None:
            self.emit("W196", flow.span, "no 'on error' handler and no operator queue: a "
                      "runtime error ends the call with a goodbye", "没有 'on error' 也没有人工"
                      "队列：运行出错时只能道别挂机", warning=True)

    def settings(self, settings: tuple[A.Setting, ...], table: dict[str, tuple[str, ...]],
                 where: str) -> None:
        seen: set[str] = set()
        for s in settings:
            name = S.canonical(s.name.text, table)
            if name is None:
                self.emit("E120", s.name.span, f"unknown {where} setting '{s.name.text}'",
                          f"未知的设置项 '{s.name.text}'",
                          did_you_mean(s.name.text, S.names_for(table)))
                continue
            kinds = table[name]
            if name in seen and "multi" not in kinds:
                self.emit("E122", s.name.span, f"'{name}' is set twice", f"'{name}' 设置了两次")
            seen.add(name)
            if len(s.values) != 1 or s.values[0].kind not in kinds:
                self.emit("E121", s.values[0].span if s.values else s.span,
                          f"'{name}' takes one {' or '.join(k for k in kinds if k != 'multi')}",
                          f"'{name}' 的取值类型不对")

    # ---------------------------------------------------------------- names
    def target(self, name: A.Name) -> None:
        if name.text in self.step_names:
            return
        if name.text in self.subs:
            self.emit("E110", name.span, f"'{name.text}' is a sub: use 'call {name.text}()'",
                      f"'{name.text}' 是子流程，请用 'call {name.text}()'")
            return
        self.emit("E110", name.span, f"undefined step '{name.text}'",
                  f"未定义的步骤 '{name.text}'", did_you_mean(name.text, self.step_names))

    def undefined_queue(self, text: str, span: A.Span) -> None:
        self.emit("E113", span, f"undefined queue '{text}'", f"未定义的队列 '{text}'",
                  did_you_mean(text, self.queues))

    def expr(self, e: A.Expr) -> None:
        for node in walk(e):
            if not isinstance(node, A.FuncCall):
                continue
            name = node.func.text
            if name not in FUNCTIONS:
                self.emit("E117", node.func.span, f"unknown function '{name}'",
                          f"未知的函数 '{name}'", did_you_mean(name, FUNCTIONS))
                continue
            if len(node.args) != FUNCTIONS[name]:
                self.emit("E117", node.span, f"{name}() takes {FUNCTIONS[name]} argument(s)",
                          f"{name}() 需要 {FUNCTIONS[name]} 个参数")
            elif name == "open":
                arg = node.args[0]
                if not isinstance(arg, A.Var):
                    self.emit("E114", arg.span, "open() takes a calendar name",
                              "open() 的参数应是日历名")
                elif arg.name not in self.calendars:
                    self.emit("E114", arg.span, f"undefined calendar '{arg.name}'",
                              f"未定义的日历 '{arg.name}'",
                              did_you_mean(arg.name, self.calendars))

    def template(self, t: A.Template) -> None:
        for part in t.parts:
            if isinstance(part, A.Interp):
                self.expr(part.expr)
                if part.fmt is not None and part.fmt.text not in S.FORMATS:
                    self.emit("E118", part.fmt.span, f"unknown format '{part.fmt.text}'",
                              f"未知的读法 '{part.fmt.text}'",
                              did_you_mean(part.fmt.text, S.FORMATS))

    def key_valid(self, key: str, span: A.Span) -> None:
        if not re.fullmatch(r"[0-9*#]|[0-9]{2,4}", key):
            self.emit("E132", span, f"'{key}' is not a phone key (0-9, * or #)",
                      f"'{key}' 不是电话按键（0-9、* 或 #）")

    # ---------------------------------------------------------------- statements
    def clauses(self, clauses: tuple[A.OnClause, ...], kind: type, span: A.Span) -> None:
        allowed = S.OUTCOMES[kind]
        seen: set[str] = set()
        for c in clauses:
            for ev in c.events:
                name = S.canonical(ev.text, allowed)
                if name is None:
                    self.emit("E125", ev.span, f"'{ev.text}' is not an outcome here "
                              f"({', '.join(allowed)})", f"这里没有 '{ev.text}' 这种结果"
                              f"（可用：{', '.join(allowed)}）",
                              did_you_mean(ev.text, S.names_for(allowed)))
                elif name in seen:
                    self.emit("E126", ev.span, f"'{name}' is handled twice",
                              f"'{name}' 处理了两次")
                seen.add(name or ev.text)

    def options(self, stmt: A.Lookup | A.Transfer | A.Enqueue | A.Record | A.Voicemail) -> None:
        table = S.OPTIONS[type(stmt)]
        seen: set[str] = set()
        for opt in stmt.options:
            name = S.canonical(opt.name.text, table)
            if name is None:
                self.emit("E123", opt.name.span, f"unknown option '{opt.name.text}'",
                          f"未知的选项 '{opt.name.text}'",
                          did_you_mean(opt.name.text, S.names_for(table)))
                continue
            if name in seen:
                self.emit("E122", opt.name.span, f"'{name}' is given twice", f"'{name}' 写了两次")
            seen.add(name)
            if opt.value.kind not in table[name]:
                self.emit("E124", opt.value.span, f"'{name}' takes a "
                          f"{' or '.join(table[name])}", f"'{name}' 的取值类型不对")
            elif name == "mode" and opt.value.raw not in S.TRANSFER_MODES:
                self.emit("E124", opt.value.span, f"mode is blind or attended, not "
                          f"'{opt.value.raw}'", "转接方式只能是 blind 或 attended",
                          did_you_mean(opt.value.raw, S.TRANSFER_MODES))
            elif name == "beep" and opt.value.raw not in S.ON_OFF:
                self.emit("E124", opt.value.span, "beep is on or off", "提示音只能是 on 或 off")

    def block(self, body: tuple[A.Stmt, ...], in_sub: bool) -> None:
        for st in body:
            self.stmt(st, in_sub)

    def stmt(self, st: A.Stmt, in_sub: bool) -> None:
        if isinstance(st, A.Say):
            self.template(st.template)
        elif isinstance(st, A.SetVar | A.Tag):
            self.expr(st.expr)
        elif isinstance(st, A.Goto):
            self.target(st.target)
        elif isinstance(st, A.CallSub):
            self.call(st)
        elif isinstance(st, A.Return):
            if not in_sub:
                self.emit("E143", st.span, "'return' outside a sub", "'return' 只能用在子流程里")
        elif isinstance(st, A.If):
            for cond, body in st.branches:
                self.expr(cond)
                self.block(body, in_sub)
            if st.orelse is not None:
                self.block(st.orelse, in_sub)
        elif isinstance(st, A.WithOutcomes):
            self.outcome_stmt(st, in_sub)

    def call(self, st: A.CallSub) -> None:
        for a in st.args:
            self.expr(a)
        sub = self.subs.get(st.name.text)
        if sub is None:
            self.emit("E111", st.name.span, f"undefined sub '{st.name.text}'",
                      f"未定义的子流程 '{st.name.text}'", did_you_mean(st.name.text, self.subs))
        elif len(sub.params) != len(st.args):
            self.emit("E112", st.span, f"'{sub.name.text}' takes {len(sub.params)} "
                      f"argument(s), {len(st.args)} given", f"'{sub.name.text}' 需要 "
                      f"{len(sub.params)} 个参数，这里给了 {len(st.args)} 个")

    def outcome_stmt(self, st: A.Lookup | A.Transfer | A.Enqueue | A.Record | A.Voicemail,
                     in_sub: bool) -> None:
        self.options(st)
        self.clauses(st.clauses, type(st), st.span)
        opts = S.option_map(st.options, type(st))
        if isinstance(st, A.Lookup):
            for a in st.args:
                self.expr(a)
            src = self.sources.get(st.source.text)
            if src is None:
                self.emit("E115", st.source.span, f"undefined data source '{st.source.text}'",
                          f"未定义的数据源 '{st.source.text}'",
                          did_you_mean(st.source.text, self.sources))
            elif len(src.params) != len(st.args):
                self.emit("E116", st.span, f"'{src.name.text}' takes {len(src.params)} "
                          f"argument(s), {len(st.args)} given", f"'{src.name.text}' 需要 "
                          f"{len(src.params)} 个参数，这里给了 {len(st.args)} 个")
            self._timer(opts.get("timeout"), "lookup", st.span, required=True)
            if "error" not in S.clause_map(st.clauses, A.Lookup):
                self.emit("E195", st.span, "lookup without 'on error' (a data source can fail "
                          "or time out)", "lookup 缺少 'on error' 分支（数据源可能出错或超时）")
        elif isinstance(st, A.Transfer):
            self.expr(st.target)
            self._timer(opts.get("timeout"), "transfer", st.span, required=False)
        elif isinstance(st, A.Enqueue):
            if st.queue.text not in self.queues:
                self.undefined_queue(st.queue.text, st.queue.span)
            if "maxwait" not in opts:
                self.emit("W192", st.span, "queue without maxwait: a caller may wait forever",
                          "排队没有设置最长等待时间：来电者可能无限等待", warning=True)
            self._timer(opts.get("maxwait"), "maxwait", st.span, required=False)
        else:
            if "maxlen" not in opts:
                self.emit("W193", st.span, "recording without maxlen", "录音没有设置最长时长",
                          warning=True)
            self._timer(opts.get("maxlen"), "maxlen", st.span, required=False)
        for c in st.clauses:
            self.block(c.body, in_sub)

    # ---------------------------------------------------------------- steps
    def all_steps(self) -> None:
        for node in self.p.steps:
            if isinstance(node, A.Step):
                self.block(node.body, in_sub=False)
            else:
                self.input_step(node)
        for sub in self.p.subs:
            self._dups(sub.params, "E108", "parameter", "参数")
            self.block(sub.body, in_sub=True)

    def input_step(self, node: A.Menu | A.Ask) -> None:
        is_menu = isinstance(node, A.Menu)
        table = S.MENU_SETTINGS if is_menu else S.ASK_SETTINGS
        self.settings(node.settings, table, "menu" if is_menu else "ask")
        self.clauses(node.clauses, type(node), node.span)
        for c in node.clauses:
            self.block(c.body, in_sub=False)
        spec = S.input_spec(self.p, node)
        for t in spec.prompts:
            self.template(t)
        if not spec.prompts:
            self.emit("E197", node.name.span, "no prompt: the caller would hear silence",
                      "没有提示语：来电者只会听到静音")
        self._timer(self._step_value(node, "timeout", S.flow_setting(self.p, "timeout")),
                    "input", node.name.span, required=True)
        inter = self._step_value(node, "interdigit", S.flow_setting(self.p, "interdigit"))
        self._timer(inter, "interdigit", node.name.span, required=False)
        clauses = S.clause_map(node.clauses, type(node))
        if spec.retries is None:
            self.emit("E150", node.name.span, "retries not set (here or in the flow header): "
                      "input must be retried a bounded number of times",
                      "没有设置重试次数：输入必须限定重试次数")
        elif spec.retries > MAX_RETRIES or spec.retries < 0:
            self.emit("E150", node.name.span, f"retries {spec.retries} is not between 0 and "
                      f"{MAX_RETRIES}", f"重试次数 {spec.retries} 不在 0 到 {MAX_RETRIES} 之间")
        flow_fail = self.p.flow is not None and "failure" in S.clause_map(self.p.flow.clauses,
                                                                          A.Flow)
        if "failure" not in clauses and not flow_fail:
            self.emit("E151", node.name.span, "no 'on failure' exit: a caller who presses "
                      "nothing or garbage must reach a person or a goodbye",
                      "缺少 'on failure' 出口：不按键或乱按的来电者必须转人工或礼貌道别")
        self.worst_case(node, spec)
        if isinstance(node, A.Menu):
            self.menu_keys(node, spec)
        else:
            self.ask_digits(node, spec)
            if "ok" not in clauses:
                self.emit("E152", node.name.span, "ask without 'on ok'", "询问缺少 'on ok' 分支")

    def worst_case(self, node: A.Menu | A.Ask, spec: S.InputSpec) -> None:
        """W194: a silent caller should not spend minutes in one input step."""
        if not spec.prompts or spec.retries is None or spec.timeout_s is None:
            return
        attempts = max(spec.retries, 0) + 1
        total = 0.0
        for i in range(attempts):
            prompt = spec.prompts[min(i, len(spec.prompts) - 1)]
            total += SPEECH_S_PER_CHAR * len(prompt.text) + float(spec.timeout_s)
        if total > MAX_INPUT_STEP_S:
            self.emit("W194", node.name.span, f"a caller who presses nothing spends about "
                      f"{total:.0f} s here before the failure branch (limit "
                      f"{MAX_INPUT_STEP_S} s)", f"不按键的来电者要在这里等约 {total:.0f} 秒才"
                      f"进入失败分支（上限 {MAX_INPUT_STEP_S} 秒）", warning=True)

    def _step_value(self, node: A.Menu | A.Ask, name: str, default: A.Value | None
                    ) -> A.Value | None:
        for s in node.settings:
            if S.canonical(s.name.text, S.ASK_SETTINGS) == name and s.values:
                return s.values[0]
        return default

    def menu_keys(self, menu: A.Menu, spec: S.InputSpec) -> None:
        seen: dict[str, A.KeyEntry] = {}
        for e in menu.entries:
            self.key_valid(e.key, e.span)
            if e.key in seen:
                self.emit("E130", e.span, f"key {e.key} is handled twice in menu "
                          f"'{menu.name.text}'", f"菜单 '{menu.name.text}' 中按键 {e.key} 重复")
            seen[e.key] = e
            if e.key in self.hotkeys:
                hk = self.hotkeys[e.key]
                self.emit("E131", e.span, f"key {e.key} is also the hotkey to "
                          f"'{hk.target.text}' (line {hk.span.line})", f"按键 {e.key} 与热键"
                          f"（转到 '{hk.target.text}'，第 {hk.span.line} 行）冲突")
            self.block(e.body, in_sub=False)
        keys = sorted(seen)
        for a in keys:
            for b in keys:
                if a != b and b.startswith(a):
                    self.emit("W133", seen[b].span, f"key {a} is a prefix of key {b}",
                              f"按键 {a} 是按键 {b} 的前缀", warning=True)
        if not menu.entries:
            self.emit("W199", menu.name.span, "menu without keys", "菜单没有任何按键选项",
                      warning=True)
        announced: set[str] = set()
        for t in spec.prompts:
            said = announced_keys(t.text)
            announced |= said
            for k in sorted(said - set(seen) - set(self.hotkeys)):
                self.emit("E180", t.span, f"the prompt announces key {k} but the menu does "
                          "not handle it", f"提示语中提到按 {k}，但菜单没有处理这个按键")
        if spec.prompts:
            for k in keys:
                if k not in announced:
                    self.emit("W181", seen[k].span, f"key {k} is handled but never announced",
                              f"按键 {k} 有处理，但提示语中没有提到", warning=True)

    def ask_digits(self, ask: A.Ask, spec: S.InputSpec) -> None:
        span = ask.name.span
        for s in ask.settings:
            if S.canonical(s.name.text, S.ASK_SETTINGS) == "digits" and s.values:
                span = s.values[0].span
        lo, hi = spec.min_digits, spec.max_digits
        if lo < 1 or hi < lo or hi > MAX_DIGITS:
            self.emit("E160", span, f"impossible digit count {lo}..{hi} (1 to {MAX_DIGITS}, "
                      "low <= high)", f"位数范围 {lo}..{hi} 不可能（1 到 {MAX_DIGITS}，且下限不"
                      "大于上限）")
            return
        if spec.end_keys and not re.fullmatch(r"[*#]", spec.end_keys):
            self.emit("E161", span, f"end key must be * or #, not '{spec.end_keys}'",
                      f"结束键只能是 * 或 #，不能是 '{spec.end_keys}'")
        if spec.pattern is None:
            return
        try:
            compiled = re.compile(spec.pattern)
        except re.error as exc:
            self.emit("E162", span, f"bad pattern: {exc}", f"格式写法有误：{exc}")
            return
        if spec.end_keys and spec.end_keys in spec.pattern:
            self.emit("E161", span, f"end key {spec.end_keys} appears in the pattern",
                      f"结束键 {spec.end_keys} 出现在格式中")
        if not _pattern_can_match(compiled, lo, hi):
            self.emit("E163", span, f"pattern '{spec.pattern}' matches no {lo}..{hi}-digit "
                      "input", f"格式 '{spec.pattern}' 不可能匹配 {lo}..{hi} 位的输入")


def _pattern_can_match(rx: re.Pattern[str], lo: int, hi: int) -> bool:
    """Whether some digit string of length lo..hi matches (bounded search, then width)."""
    try:
        import re._parser as sre_parse  # the stdlib's own regex parser (3.11+)

        wlo, whi = sre_parse.parse(rx.pattern).getwidth()
    except (ImportError, AttributeError, re.error):
        wlo, whi = 0, 1 << 30
    if whi < lo or wlo > hi:
        return False
    # Small search over strings made of one repeated digit and of ascending digits: cheap,
    # and catches literal mistakes such as a letter in the pattern.
    for n in range(lo, min(hi, 12) + 1):
        for d in "0123456789":
            if rx.fullmatch(d * n):
                return True
        if rx.fullmatch(("0123456789" * 4)[:n]) or rx.fullmatch(("1234567890" * 4)[:n]):
            return True
    return bool(re.search(r"[\\\[.(|]", rx.pattern))  # classes/alternation: assume possible


def check(program: A.Program) -> list[Diagnostic]:
    """All diagnostics of a parsed program, sorted by position."""
    c = _Checker(program)
    c.declarations()
    c.all_steps()
    c.out.extend(FlowAnalysis(program).run())
    unique = {(d.code, d.span, d.message_en): d for d in c.out}
    return sorted(unique.values(), key=Diagnostic.sort_key)


def check_source(text: str, filename: str) -> tuple[A.Program | None, list[Diagnostic]]:
    """Parse and check. With syntax errors, Program is None and the diagnostics are the
    first syntax error of each broken top-level item (semantic checks need a full parse).
    """
    try:
        program = parse(text, filename)
    except IvrSyntaxError as exc:
        return None, syntax_errors(text, filename) or [exc.diagnostic]
    return program, check(program)


def has_errors(diags: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diags)
