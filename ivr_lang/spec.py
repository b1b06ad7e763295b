"""Vocabulary of the language and resolution of settings: one table for checker and interpreter.

The grammar keeps settings, options, outcome names and formats generic ("name value"), so
this module is where their meaning lives: which names exist in which context (with Chinese
aliases), what kind of value each takes, and how a menu/ask inherits the flow defaults.
The checker validates against these tables; the interpreter resolves through them, so the
two cannot disagree about what ``timeout`` means.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from . import ast as A

__all__ = [
    "ASK_SETTINGS",
    "FLOW_SETTINGS",
    "FORMATS",
    "MENU_SETTINGS",
    "OPTIONS",
    "OUTCOMES",
    "InputSpec",
    "canonical",
    "clause_map",
    "flow_inputs",
    "flow_setting",
    "input_spec",
    "names_for",
    "option_map",
    "success_label",
]

#: name -> allowed value kinds ("multi" marks settings that may repeat, like prompts).
FLOW_SETTINGS: dict[str, tuple[str, ...]] = {
    "language": ("name", "string"), "voice": ("name", "string"), "timeout": ("duration",),
    "interdigit": ("duration",), "retries": ("number",), "operator": ("name",),
    "budget": ("number",), "version": ("number", "name", "string"),
    "input": ("name", "multi"),
}
MENU_SETTINGS: dict[str, tuple[str, ...]] = {
    "prompt": ("string", "multi"), "timeout": ("duration",), "interdigit": ("duration",),
    "retries": ("number",),
}
ASK_SETTINGS: dict[str, tuple[str, ...]] = {
    **MENU_SETTINGS, "digits": ("number", "range"), "end": ("string",),
    "pattern": ("string",), "into": ("name",),
}
OPTIONS: dict[type, dict[str, tuple[str, ...]]] = {
    A.Lookup: {"timeout": ("duration",)},
    A.Transfer: {"mode": ("name",), "timeout": ("duration",)},
    A.Enqueue: {"skill": ("name", "string"), "priority": ("number", "name"),
                "maxwait": ("duration",)},
    A.Record: {"maxlen": ("duration",), "beep": ("name",), "end": ("string",)},
    A.Voicemail: {"maxlen": ("duration",), "beep": ("name",), "end": ("string",)},
}
OUTCOMES: dict[type, tuple[str, ...]] = {
    A.Lookup: ("error", "empty"),
    A.Transfer: ("busy", "noanswer", "fail"),
    A.Enqueue: ("timeout", "full", "closed"),
    A.Record: ("done", "empty"),
    A.Voicemail: ("done", "empty"),
    A.Menu: ("noinput", "nomatch", "failure"),
    A.Ask: ("ok", "noinput", "nomatch", "failure"),
    A.Flow: ("error", "failure"),
}
#: The outcome that continues with the next statement when nothing goes wrong.
_SUCCESS = {A.Lookup: "ok", A.Transfer: "connected", A.Enqueue: "answered",
            A.Record: "done", A.Voicemail: "done"}
#: Output formats of ``{expr as FORMAT}``.
FORMATS: dict[str, str] = {"amount": "amount", "金额": "amount", "date": "date",
                           "日期": "date", "time": "time", "时间": "time",
                           "digits": "digits", "号码": "digits", "逐位": "digits",
                           "number": "number", "数字": "number", "数值": "number"}
#: Chinese aliases of setting, option and outcome names (a name may map to several
#: canonical names; the context picks the one it allows).
ALIASES: dict[str, tuple[str, ...]] = {
    "语言": ("language",), "声音": ("voice",), "超时": ("timeout",), "按键间隔": ("interdigit",),
    "重试": ("retries",), "人工": ("operator",), "提示": ("prompt",), "位数": ("digits",),
    "结束键": ("end",), "格式": ("pattern",), "存入": ("into",), "方式": ("mode",),
    "技能": ("skill",), "优先级": ("priority",), "最长等待": ("maxwait",), "时长": ("maxlen",),
    "提示音": ("beep",), "出错": ("error",), "无结果": ("empty",), "忙": ("busy",),
    "无应答": ("noanswer",), "失败": ("fail", "failure"), "满": ("full",), "关闭": ("closed",),
    "完成": ("done",), "成功": ("ok",), "无输入": ("noinput",), "输入错误": ("nomatch",),
    "等待超时": ("timeout",), "版本": ("version",), "传入": ("input",),
}
TRANSFER_MODES = ("blind", "attended")
ON_OFF = {"on": True, "off": False, "yes": True, "no": False, "开": True, "关": False}


def names_for(allowed: tuple[str, ...] | dict[str, tuple[str, ...]]) -> list[str]:
    """Canonical names and their Chinese aliases, for "did you mean" suggestions."""
    return [*allowed, *(a for a, targets in ALIASES.items() if any(t in allowed
                                                                      for t in targets))]


def canonical(name: str, allowed: tuple[str, ...] | dict[str, tuple[str, ...]]) -> str | None:
    """The canonical name of ``name`` (or one of its aliases) in a context, else None."""
    if name in allowed:
        return name
    return next((c for c in ALIASES.get(name, ()) if c in allowed), None)


def success_label(node: object) -> str:
    return _SUCCESS[type(node)]


def option_map(options: tuple[A.Option, ...], kind: type) -> dict[str, A.Value]:
    """Canonical option name -> value (unknown names dropped; the checker reports them)."""
    allowed = OPTIONS[kind]
    out: dict[str, A.Value] = {}
    for opt in options:
        name = canonical(opt.name.text, allowed)
        if name is not None:
            out.setdefault(name, opt.value)
    return out


def clause_map(clauses: tuple[A.OnClause, ...], kind: type) -> dict[str, A.OnClause]:
    """Canonical event name -> clause (first one wins; duplicates are checker errors)."""
    allowed = OUTCOMES[kind]
    out: dict[str, A.OnClause] = {}
    for clause in clauses:
        for ev in clause.events:
            name = canonical(ev.text, allowed)
            if name is not None:
                out.setdefault(name, clause)
    return out


def _settings(settings: tuple[A.Setting, ...], table: dict[str, tuple[str, ...]]
              ) -> dict[str, list[A.Setting]]:
    out: dict[str, list[A.Setting]] = {}
    for s in settings:
        name = canonical(s.name.text, table)
        if name is not None:
            out.setdefault(name, []).append(s)
    return out


def flow_setting(program: A.Program, name: str) -> A.Value | None:
    """First value of a flow header setting, or None."""
    if program.flow is None:
        return None
    found = _settings(program.flow.settings, FLOW_SETTINGS).get(name)
    return found[0].values[0] if found and found[0].values else None


def flow_inputs(program: A.Program) -> tuple[str, ...]:
    """The variables the one who starts the call presets (flow ``input NAME`` lines, one
    name each): a campaign dialer passes its contact's fields (``work_order``, ``name``...).
    They are set from the call's first statement like ``caller``; one not given is null."""
    if program.flow is None:
        return ()
    found = _settings(program.flow.settings, FLOW_SETTINGS).get("input", [])
    return tuple(dict.fromkeys(s.values[0].raw for s in found
                               if len(s.values) == 1 and s.values[0].kind == "name"))


@dataclass(frozen=True, slots=True)
class InputSpec:
    """A menu's or ask's input parameters after inheriting the flow defaults.

    ``None`` marks a value that is missing in both places (the checker reports it).
    ``retries`` counts re-prompts: the step fails after ``retries + 1`` bad attempts.
    """

    prompts: tuple[A.Template, ...]
    timeout_s: Decimal | None
    interdigit_s: Decimal | None
    retries: int | None
    min_digits: int
    max_digits: int
    end_keys: str
    pattern: str | None
    into: str | None


def _first_number(found: dict[str, list[A.Setting]], program: A.Program, name: str
                  ) -> Decimal | None:
    if name in found and found[name][0].values:
        return found[name][0].values[0].number
    value = flow_setting(program, name)
    return value.number if value is not None else None


def input_spec(program: A.Program, node: A.Menu | A.Ask) -> InputSpec:
    """Resolve a menu's or ask's settings (step value, else flow default)."""
    table = MENU_SETTINGS if isinstance(node, A.Menu) else ASK_SETTINGS
    found = _settings(node.settings, table)
    prompts = tuple(v.template for s in found.get("prompt", []) for v in s.values
                    if v.template is not None)
    retries = _first_number(found, program, "retries")
    if isinstance(node, A.Menu):
        width = max((len(e.key) for e in node.entries), default=1)
        lo, hi, end, pattern, into = width, width, "", None, None
    else:
        lo, hi = 1, 1
        if "digits" in found and found["digits"][0].values:
            v = found["digits"][0].values[0]
            lo = int(v.number or 0)
            hi = int(v.high if v.high is not None else (v.number or 0))
        end = found["end"][0].values[0].raw if "end" in found else ""
        pattern = found["pattern"][0].values[0].raw if "pattern" in found else None
        into = found["into"][0].values[0].raw if "into" in found else node.name.text
    return InputSpec(prompts, _first_number(found, program, "timeout"),
                     _first_number(found, program, "interdigit"),
                     int(retries) if retries is not None else None, lo, hi, end, pattern, into)
