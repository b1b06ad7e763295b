"""Parser: AST shape, spans, Chinese aliases, and syntax errors as diagnostics."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr_lang import ast as A
from ivr_lang.check import check, has_errors
from ivr_lang.diagnostics import IvrSyntaxError, render
from ivr_lang.parser import parse, parse_expr
from ivr_lang.simulator import Fixture, SimOptions, simulate

DEMO = Path(__file__).resolve().parents[3] / "ivr_lang" / "demo" / "hotline.ivr"


def test_demo_parses_into_typed_nodes() -> None:
    p = parse(DEMO.read_text(encoding="utf-8"), "hotline.ivr")
    assert p.flow is not None and p.flow.name.text == "幸福里物业服务热线"
    assert [q.name.text for q in p.queues] == ["客服组", "报修组", "投诉组", "值班组"]
    assert p.entry is not None and p.entry.name.text == "开始"
    kinds = {type(s) for s in p.steps}
    assert kinds == {A.Step, A.Menu, A.Ask}
    menu = p.step_index["主菜单"]
    assert isinstance(menu, A.Menu)
    assert [e.key for e in menu.entries] == ["1", "2", "3", "4"]
    assert {s.kind.text for s in p.sources} == {"sql", "python"}


def test_every_node_has_a_span_with_file_line_col() -> None:
    p = parse('step a:\n  say "x"\n  -> a\n', "f.ivr")
    step = p.steps[0]
    assert step.span == A.Span("f.ivr", 1, 1, step.span.end_line, step.span.end_col)
    say, goto = step.body
    assert isinstance(say, A.Say) and (say.span.line, say.span.col) == (2, 3)
    assert isinstance(goto, A.Goto)
    assert (goto.target.span.line, goto.target.span.col, goto.target.span.end_col) == (3, 6, 7)


def test_chinese_keywords_and_fullwidth_colon() -> None:
    src = "步骤 开始：\n  说 “您好”\n  如果 caller == \"1\"：\n    挂机\n  否则：\n    转到 开始\n"
    p = parse(src, "zh.ivr")
    step = p.steps[0]
    assert isinstance(step, A.Step)
    say, cond = step.body
    assert isinstance(say, A.Say) and say.template.text == "您好"
    assert isinstance(cond, A.If) and isinstance(cond.branches[0][1][0], A.Hangup)
    assert cond.orelse is not None and isinstance(cond.orelse[0], A.Goto)


def test_prompt_interpolation_spans_point_into_the_string() -> None:
    src = 'step a:\n  say "欠费{bill.owed as 金额}元"\n  hangup\n'
    say = parse(src, "t.ivr").steps[0].body[0]
    assert isinstance(say, A.Say)
    text, interp, tail = say.template.parts
    assert text == "欠费" and tail == "元"
    assert isinstance(interp, A.Interp) and interp.fmt is not None
    assert interp.fmt.text == "金额"
    assert isinstance(interp.expr, A.Attr) and interp.expr.name == "owed"
    line = src.splitlines()[1]
    assert line[interp.expr.span.col - 1:].startswith("bill.owed")
    assert line[interp.fmt.span.col - 1:].startswith("金额")


def test_values_durations_and_ranges() -> None:
    p = parse('ask a:\n  prompt "x"\n  digits 6..12\n  timeout 1500ms\n  on ok -> a\n', "v.ivr")
    ask = p.steps[0]
    assert isinstance(ask, A.Ask)
    digits, timeout = ask.settings[1].values[0], ask.settings[2].values[0]
    assert (digits.kind, digits.number, digits.high) == ("range", Decimal(6), Decimal(12))
    assert (timeout.kind, timeout.number) == ("duration", Decimal("1.5"))


def test_expressions_precedence() -> None:
    e = parse_expr('not a and b or c == 1 + 2')
    assert isinstance(e, A.Binary) and e.op == "or"
    assert isinstance(e.left, A.Binary) and e.left.op == "and"
    assert isinstance(e.left.left, A.Unary)
    assert isinstance(e.right, A.Binary) and e.right.op == "=="
    assert isinstance(e.right.right, A.Binary) and e.right.right.op == "+"
    e2 = parse_expr('x not in ["1", "2"]')
    assert isinstance(e2, A.Binary) and e2.op == "not in"


@pytest.mark.parametrize(("src", "code", "line", "col", "words"), [
    ("step a\n  hangup\n", "E002", 1, 7, "missing ':'"),
    ("step a:\n  say \"x\"\n    hangup\n", "E003", 3, 5, "unexpected indentation"),
    ("step a:\n    say \"x\"\n  hangup\n", "E003", 3, 3, "does not match"),
    ("step a:\n  sya \"x\"\n", "E004", 2, 3, "did you mean 'say'"),
    ("step a:\n  if x = 1:\n    hangup\n", "E005", 2, 8, "=="),
    ("menu m:\n  prompt \"x\"\n  1 a\n", "E005", 3, 5, "'->'"),
    ("step a:\n  say hello\n", "E005", 2, 7, "double quotes"),
    ("step a:\n  if x:\n    hangup\n  else if y:\n    hangup\n", "E005", 4, 8, "elif"),
    ("step a:\n\u3000say \"x\"\n", "E001", 2, 1, "full-width space"),
    ("step a:\n  say \"x {a +} y\"\n", "E006", 2, 13, "bad expression in prompt"),
    ("# comment\n\nstep a:\n  if x = 1:\n    hangup\n", "E005", 4, 8, "=="),
    ("step a:\n  setx = 1\n", "E004", 2, 3, "did you mean 'set'"),
    ("步骤 a：\n  说话 “x”\n", "E004", 2, 3, "did you mean '说'"),
])
def test_syntax_errors_become_diagnostics(src: str, code: str, line: int, col: int,
                                          words: str) -> None:
    with pytest.raises(IvrSyntaxError) as info:
        parse(src, "bad.ivr")
    d = info.value.diagnostic
    text = render(d, src)
    assert (d.code, d.span.line, d.span.col) == (code, line, col), text
    assert words in text
    assert f"bad.ivr:{line}:{col}:" in text
    assert "^" in text and " / " in text  # caret and bilingual message


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from([*list('step menu:ask->"#\n 1()[]=说：“”\t'), "\u3000"]),
               max_size=60))
def test_any_text_parses_or_raises_syntax_error(text: str) -> None:
    try:
        program = parse(text, "fuzz.ivr")
    except IvrSyntaxError as exc:
        assert exc.diagnostic.span.line >= 1
    else:
        assert isinstance(check(program), list)  # the checker never crashes either


_STMT = st.sampled_from([
    'say "按1"', "-> b", "hangup", "set x = 1", 'say "{x}"', 'if x == 1 -> b', "call s(1)",
    "queue q maxwait 60s", 'transfer "1":\n{ind}  on busy -> b', 'tag t = x',
    "lookup r = src(x) timeout 1s:\n{ind}  on error -> b", 'say "{r.v as 金额}"'])


@settings(max_examples=80, deadline=None)
@given(st.lists(_STMT, min_size=1, max_size=5), st.lists(_STMT, min_size=1, max_size=4))
def test_checker_and_simulator_never_crash_on_generated_scripts(a: list[str],
                                                                b: list[str]) -> None:
    def lines(stmts: list[str], ind: str) -> str:
        return "".join(ind + x.replace("{ind}", ind) + "\n" for x in stmts)

    src = ("flow f:\n  timeout 5s\n  retries 1\n  operator q\nqueue q\n"
           'source src(v) python "f"\n'
           "step a:\n  set x = 1\n" + lines(a, "  ") + "  -> b\n"
           "menu b:\n  prompt \"按1\"\n  1:\n" + lines(b, "    ") + "    hangup\n"
           "  on failure -> a\nsub s(v):\n  return\n")
    try:
        program = parse(src, "gen.ivr")
    except IvrSyntaxError:
        return  # e.g. an indented "on" line under a one-line body
    diags = check(program)
    if not has_errors(diags):
        fixture = Fixture(python={"f": {"v": 1}})
        t = simulate(program, SimOptions(keys=["1", "-", "1"]), fixture, budget=300)
        assert t.result.reason in ("hangup", "queued", "transferred", "error")


def test_keywords_are_whole_words_and_contextual() -> None:
    """'说明' is a name, not 说 + 明; a step may be called 查询 where only a name can go."""
    p = parse("step 查询:\n  set 说明 = 1\n  -> 排队\n\nstep 排队:\n  hangup\n", "k.ivr")
    assert [s.name.text for s in p.steps] == ["查询", "排队"]
    first = p.steps[0]
    assert isinstance(first, A.Step) and isinstance(first.body[0], A.SetVar)
    assert first.body[0].name.text == "说明"
