"""Interpreter semantics through the simulator: retries, hotkeys, errors, budget, fallbacks."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr_lang.check import check_source, has_errors
from ivr_lang.expr import EvalContext, IvrRuntimeError, evaluate, normalize
from ivr_lang.parser import parse, parse_expr
from ivr_lang.simulator import Fixture, SimOptions, simulate

HEAD = ("flow t:\n  timeout 5s\n  retries 1\n  operator q\n  hotkey 0 -> op\n\nqueue q\n"
        "source rows(k) sql \"SELECT v FROM t WHERE k = :k\"\n\n")
TAIL = "\nstep op:\n  queue q maxwait 60s\n  hangup\n"


def run(body: str, keys: str = "", mocks: dict[str, str] | None = None,
        fixture: Fixture | None = None, head: str = HEAD, budget: int = 10_000,
        checked: bool = True) -> list[str]:
    src = head + body + TAIL
    if checked:
        _, diags = check_source(src, "t.ivr")
        # the shared 'op' step is only reachable through hotkeys when a menu exists
        assert not has_errors([d for d in diags if d.code != "E140"]), diags
    t = simulate(parse(src, "t.ivr"), SimOptions(keys=keys.split(), mocks=mocks or {}),
                 fixture, budget=budget)
    return t.lines


MENU = ('menu m:\n  prompt "甲请按1"\n  prompt "再说一遍：甲请按1"\n  1:\n    say "甲"\n'
        '    hangup\n  on noinput: say "没听到"\n  on nomatch: say "不对"\n'
        '  on failure:\n    say "再见"\n    hangup\n')


def test_menu_escalating_prompts_then_failure_after_retries_plus_one() -> None:
    lines = run(MENU, "- 7")
    assert lines == [
        "[m] say: 甲请按1", "[m] press: (nothing)", "[m] say: 没听到",
        "[m] say: 再说一遍：甲请按1", "[m] press: 7", "[m] say: 再见", "[m] hangup",
        "end: hangup at 8.9s",
    ]


def test_menu_key_and_hotkey() -> None:
    assert run(MENU, "1")[-3:-1] == ["[m] say: 甲", "[m] hangup"]
    lines = run(MENU, "0")
    assert "[m] -> op" in lines and lines[-1].startswith("end: queued")


def test_ask_validates_count_and_pattern_and_stores_digits() -> None:
    body = ('ask a:\n  prompt "输入"\n  digits 3..4\n  end "#"\n  pattern "9[0-9]+"\n'
            '  retries 2\n  into n\n  on ok:\n    say "{n as 号码}"\n    hangup\n'
            '  on failure -> op\n')
    lines = run(body, "12# 123# 987#")
    assert lines[-3] == "[a] say: 九八七"
    assert lines.count("[a] say: 输入") == 3
    # hotkeys are data inside ask: "0123#" is an ordinary (wrong) entry, not the operator
    lines = run(body, "0123# - -")
    assert "[a] -> op" in lines and "queue q priority 0 -> answered" in lines[-2]


def test_lookup_ok_empty_error_and_timeout() -> None:
    body = ('step a:\n  lookup r = rows("k1") timeout 2s:\n    on error:\n      say "坏"\n'
            '      hangup\n    on empty:\n      say "空"\n      hangup\n'
            '  say "{r.v as 金额}"\n  hangup\n')
    fx = Fixture(tables={"t": [{"k": "k1", "v": 12.3}]})
    assert "[a] say: 十二元三角" in run(body, fixture=fx)
    assert "[a] say: 空" in run(body, fixture=Fixture(tables={"t": [{"k": "x", "v": 1}]}))
    lines = run(body, mocks={"lookup rows": "timeout"}, fixture=fx)
    assert "[a] lookup rows(k1) failed: timed out after 2s" in lines
    assert lines[-1] == "end: hangup at 2.2s"
    assert "[a] say: 坏" in run(body, mocks={"lookup rows": "error"}, fixture=fx)


def test_runtime_error_goes_to_flow_error_handler() -> None:
    head = HEAD.replace("  operator q\n", "  operator q\n  on error -> sorry\n")
    body = ('step a:\n  set x = "a" + 1\n  hangup\n\nstep sorry:\n  say "抱歉"\n'
            '  queue q maxwait 60s\n  hangup\n')
    lines = run(body, head=head)
    assert any(line.startswith("[a] error: ") and "cannot compute" in line for line in lines)
    assert "[sorry] say: 抱歉" in lines and lines[-1].startswith("end: queued")


def test_runtime_error_without_handler_reaches_operator_queue() -> None:
    lines = run('step a:\n  say "{caller as 日期}"\n  hangup\n')
    assert "[a] say: 对不起，系统暂时无法处理您的请求。" in lines
    assert lines[-2].startswith("[a] queue q priority 0 -> answered")


def test_operator_queue_closed_ends_with_goodbye_never_silence() -> None:
    lines = run('step a:\n  say "{caller as 日期}"\n  hangup\n', mocks={"queue q": "closed"})
    assert lines[-3:-1] == ["[a] say: 感谢您的来电，再见。", "[a] hangup"]
    assert lines[-1].startswith("end: error")


def test_step_budget_stops_a_runaway_loop() -> None:
    head = HEAD.replace("  operator q\n", "")
    body = 'step a:\n  say "x"\n  -> b\n\nstep b:\n  -> a\n'  # loop without input
    _, diags = check_source(head + body + TAIL, "t.ivr")
    assert "E153" in [d.code for d in diags]  # the checker rejects it ...
    lines = run(body, head=head, budget=50, checked=False)  # ... the budget catches it anyway
    assert any("budget" in line for line in lines)
    assert lines[-2].endswith("] hangup") and lines[-1].startswith("end: error")


def test_transfer_outcomes_and_record() -> None:
    body = ('step a:\n  transfer "139" timeout 20s:\n    on busy, noanswer, fail:\n'
            '      record msg maxlen 30s:\n        on empty -> op\n      tag m = msg\n'
            '      hangup\n')
    assert run(body)[-2] == "[a] transfer 139 (blind) -> connected"
    lines = run(body, mocks={"transfer 139": "busy"})
    assert "[a] record (max 30s) -> done" in lines and "[a] tag m = rec-1" in lines
    lines = run(body, mocks={"transfer 139": "noanswer", "record": "empty"})
    assert "[a] -> op" in lines


def test_calendar_open_and_closed() -> None:
    head = HEAD + "calendar c:\n  mon-fri 08:30-18:00\n  closed 2026-10-01..2026-10-07\n\n"
    body = 'step a:\n  if open(c):\n    say "开"\n  else:\n    say "关"\n  hangup\n'
    src = head + body + TAIL
    p = parse(src, "t.ivr")
    said = {at: simulate(p, SimOptions(at=at)).lines[0] for at in (
        dt.datetime(2026, 11, 30, 9, 0), dt.datetime(2026, 11, 30, 18, 0),
        dt.datetime(2026, 11, 29, 10, 0), dt.datetime(2026, 10, 2, 10, 0))}
    assert list(said.values()) == ["[a] say: 开", "[a] say: 关", "[a] say: 关", "[a] say: 关"]


def test_sub_call_and_return() -> None:
    body = ('step a:\n  call read(caller)\n  say "后"\n  hangup\n\n'
            'sub read(n):\n  say "{n as 号码}"\n  return\n')
    assert run(body)[:2] == ["[a] say: 一三八零零零零零零零零", "[a] say: 后"]


def test_english_flow_reads_in_english() -> None:
    head = HEAD.replace("flow t:\n", "flow t:\n  language en-US\n")
    lines = run('step a:\n  set x = 12.5\n  say "{x as amount}, {caller as digits}"\n  hangup\n',
                head=head)
    assert lines[0] == ("[a] say: twelve yuan fifty fen, one three eight zero zero zero zero "
                        "zero zero zero zero")


def _ctx(**v: object) -> EvalContext:
    return EvalContext(v, lambda name: name == "open_cal")


def test_expression_null_safety_and_errors() -> None:
    assert evaluate(parse_expr("r.a.b"), _ctx(r=None)) is None
    assert evaluate(parse_expr("r.missing"), _ctx(r={})) is None
    assert evaluate(parse_expr('len(x) == 3 and startswith(x, "1")'), _ctx(x="123")) is True
    assert evaluate(parse_expr('"2" in ["1", "2"]'), _ctx()) is True
    assert evaluate(parse_expr("open(open_cal)"), _ctx()) is True
    assert evaluate(parse_expr("a + 1"), _ctx(a=Decimal("1.5"))) == Decimal("2.5")
    for bad in ('"a" < 1', "len(1)", "x.y", "nope"):
        with pytest.raises(IvrRuntimeError):
            evaluate(parse_expr(bad), _ctx(x=Decimal(1)))


def test_normalize_turns_data_into_expression_values() -> None:
    assert normalize({"a": 1, "b": 0.1, "c": [dt.date(2026, 1, 2)], "d": None}) == {
        "a": Decimal(1), "b": Decimal("0.1"), "c": ["2026-01-02"], "d": None}
    with pytest.raises(IvrRuntimeError):
        normalize(object())


def test_barge_in_hotkey_during_say_and_menu_choice_during_prompt() -> None:
    body = 'step a:\n  say "欢迎"\n  -> m\n\n' + MENU
    lines = run(body, "!0")
    assert lines[:3] == ["[a] say: 欢迎", "[a] press during prompt: 0", "[a] -> op"]
    lines = run(MENU, "!1")  # 1 pressed while the menu prompt is still playing
    assert lines[:3] == ["[m] say: 甲请按1", "[m] press during prompt: 1", "[m] say: 甲"]


def test_lone_hotkey_in_multi_digit_ask_reaches_its_target() -> None:
    body = ('ask a:\n  prompt "输入"\n  digits 3..4\n  end "#"\n  into n\n'
            '  on ok:\n    say "{n}"\n    hangup\n  on failure -> op\n')
    lines = run(body, "0#")
    assert lines[:3] == ["[a] say: 输入", "[a] press: 0#", "[a] -> op"]
    assert run(body, "100#")[2] == "[a] say: 100"


def test_flow_level_failure_default() -> None:
    head = HEAD.replace("  operator q\n", "  operator q\n  on failure -> op\n")
    body = 'menu m:\n  prompt "甲请按1"\n  1 -> op\n'
    lines = run(body, "- -", head=head)
    assert lines[-3:-1] == ["[m] -> op", lines[-2]] and "queue q" in lines[-2]


def test_calendar_day_words() -> None:
    from ivr_lang.calendars import day_set

    assert day_set("周一至周五") == day_set("mon-fri") == frozenset(range(5))
    assert day_set("fri-mon") == frozenset({4, 5, 6, 0})
    assert day_set("周末") == frozenset({5, 6}) and day_set("星期天") == frozenset({6})
    assert day_set("funday") is None


def test_caller_hanging_up_stops_the_walk() -> None:
    lines = run(MENU, "- hangup")
    assert lines[-2:] == ["[m] caller hangs up", "end: caller hung up at 8.2s"]


_ATOMS = ["1", "2.5", '"a"', '"138"', "true", "null", "x", "r", "r.a", "r.b.c", "[1, \"a\"]",
          "len(x)", "startswith(x, \"1\")", "open(c)", "[]", "lst"]
_OPS = ["and", "or", "==", "!=", "<", ">=", "in", "not in", "+", "-"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_ATOMS), min_size=1, max_size=4),
       st.lists(st.sampled_from(_OPS), min_size=3, max_size=3), st.booleans())
def test_expressions_return_or_raise_runtime_error_only(atoms: list[str], ops: list[str],
                                                        neg: bool) -> None:
    text = atoms[0]
    for op, atom in zip(ops, atoms[1:], strict=False):
        text = f"({text}) {op} {atom}"
    if neg:
        text = f"not ({text})"
    ctx = _ctx(x="13800000000", r={"a": Decimal(1), "b": None}, lst=[Decimal(1)])
    try:
        evaluate(parse_expr(text), ctx)
    except IvrRuntimeError:
        pass


ZH_SCRIPT = """流程 中文热线：
  语言 zh-CN
  超时 5s
  重试 1
  人工 客服组
  热键 0 -> 人工服务

排队 客服组
日历 上班：
  周一至周五 09:00-17:00

步骤 开始：
  如果 非 open(上班) -> 再见
  说 “您好”
  转到 主菜单

菜单 主菜单：
  提示 “人工服务请按0，查询请按1”
  1：
    设置 号 = caller
    说 “您的号码是{号 as 号码}”
    转到 再见
  当 失败 -> 人工服务

步骤 人工服务：
  排队 客服组 优先级 5 最长等待 60s：
    当 等待超时，满，关闭 -> 再见

步骤 再见：
  说 “再见”
  挂机
"""


def test_all_chinese_script_with_fullwidth_punctuation() -> None:
    """Keywords, settings, options and outcomes in Chinese; IME punctuation (：，“”（）)."""
    assert "，" in ZH_SCRIPT and "：" in ZH_SCRIPT and "“" in ZH_SCRIPT
    program, diags = check_source(ZH_SCRIPT, "zh.ivr")
    assert program is not None and diags == []
    lines = simulate(program, SimOptions(keys=["1"])).lines
    assert lines[4] == "[主菜单] say: 您的号码是一三八零零零零零零零零"
    lines = simulate(program, SimOptions(keys=["0"], mocks={"queue 客服组": "full"})).lines
    assert "[人工服务] queue 客服组 priority 5 -> full" in lines and lines[-2] == "[再见] hangup"
    night = simulate(program, SimOptions(at=dt.datetime(2026, 11, 30, 20, 0))).lines
    assert night[0] == "[开始] -> 再见"
