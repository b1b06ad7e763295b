"""Checker: golden diagnostics for bad scripts, plus targeted checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ivr_lang.check import announced_keys, check_source, has_errors
from ivr_lang.diagnostics import render_all

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden" / "ivr"
DEMO = ROOT / "ivr_lang" / "demo" / "hotline.ivr"

HEADER = "flow t:\n  timeout 5s\n  retries 2\n  operator q\n\nqueue q\n\n"


def _codes(src: str) -> list[str]:
    _, diags = check_source(HEADER + src, "t.ivr")
    return [d.code for d in diags]


@pytest.mark.parametrize("script", sorted(GOLDEN.glob("*.ivr")), ids=lambda p: p.name)
def test_golden_diagnostics(script: Path) -> None:
    text = script.read_text(encoding="utf-8")
    _, diags = check_source(text, script.name)
    actual = render_all(diags, {script.name: text})
    expected_file = script.with_suffix(".diag")
    if os.environ.get("IVR_GOLDEN_UPDATE"):
        expected_file.write_text(actual, encoding="utf-8")
    assert actual == expected_file.read_text(encoding="utf-8")
    assert has_errors(diags)  # every golden script is bad and must never be loaded


def test_golden_set_covers_the_required_problem_kinds() -> None:
    all_text = "".join(p.read_text(encoding="utf-8") for p in GOLDEN.glob("*.diag"))
    for code in ("E002", "E003", "E004", "E005", "E101", "E110", "E113", "E114", "E115",
                 "E116", "E130", "E131", "E140", "E142", "E150", "E151", "E153", "E160",
                 "E161", "E163", "E170", "E180", "W181", "E190", "E191", "E195"):
        assert code in all_text, code
    assert all_text.count("did you mean") >= 8


def test_demo_script_is_clean() -> None:
    _, diags = check_source(DEMO.read_text(encoding="utf-8"), "hotline.ivr")
    assert diags == []


def test_all_problems_reported_at_once_sorted() -> None:
    _, diags = check_source(HEADER + "step a:\n  -> nowhere\n\nstep b:\n  -> alsonowhere\n",
                            "t.ivr")
    lines = [d.span.line for d in diags]
    assert lines == sorted(lines)
    assert [d.code for d in diags].count("E110") == 2


def test_announced_keys_zh_and_en() -> None:
    said = announced_keys("查询请按1，投诉请按 2，结束请按井号键，返回按星号")
    assert said == {"1", "2", "#", "*"}
    assert announced_keys("For billing press 1, or press pound to finish") == {"1", "#"}


def test_hotkey_in_prompt_counts_as_handled() -> None:
    src = ('flow t:\n  timeout 5s\n  retries 1\n  hotkey 0 -> a\n\n'
           'menu a:\n  prompt "人工请按0，查询请按1"\n  1 -> a\n  on failure -> a\n')
    _, diags = check_source(src, "t.ivr")
    assert [d.code for d in diags] == ["W196"]  # only: no error handler, no operator queue


def test_fall_off_after_queue_without_branches_is_fine_when_followed_by_hangup() -> None:
    assert _codes("step a:\n  queue q maxwait 60s\n  hangup\n") == []
    assert _codes("step a:\n  queue q maxwait 60s\n") == ["E142"]


def test_transfer_success_leaves_but_failures_continue() -> None:
    ok = 'step a:\n  transfer "100":\n    on busy, noanswer, fail -> a\n'
    assert _codes(ok) == []
    assert _codes('step a:\n  transfer "100":\n    on busy -> a\n') == ["E142"]


def test_loop_through_input_step_is_not_flagged() -> None:
    src = ('step a:\n  say "x"\n  -> m\n\nmenu m:\n  prompt "按1"\n  1 -> a\n'
           '  on failure -> a\n')
    assert "E153" not in _codes(src)


def test_definite_assignment_across_steps() -> None:
    # x is set on every path into b: fine; y only on one path: error.
    src = ('step a:\n  set x = 1\n  if caller == "1":\n    set y = 2\n    -> b\n  -> b\n\n'
           'step b:\n  say "{x}"\n  say "{y}"\n  hangup\n')
    _, diags = check_source(HEADER + src, "t.ivr")
    assert [(d.code, "'y'" in d.message_en) for d in diags] == [("E170", True)]


def test_sub_call_arity_and_assignment_through_sub() -> None:
    src = ('step a:\n  call setit(1)\n  say "{z}"\n  call setit()\n  hangup\n\n'
           'sub setit(v):\n  set z = v\n  return\n')
    codes = _codes(src)
    assert codes == ["E112"]


def test_ask_into_defined_only_in_ok_branch() -> None:
    src = ('ask a:\n  prompt "输入"\n  digits 4\n  into n\n  on ok:\n    say "{n as 号码}"\n'
           '    hangup\n  on failure:\n    say "{n}"\n    hangup\n')
    _, diags = check_source(HEADER + src, "t.ivr")
    assert [d.code for d in diags] == ["E170"]
    assert diags[0].span.line == len(HEADER.splitlines()) + 9


def test_warnings_do_not_block() -> None:
    _, diags = check_source(HEADER + "step a:\n  queue q\n  hangup\n", "t.ivr")
    assert [d.code for d in diags] == ["W192"] and not has_errors(diags)


def test_worst_case_wait_in_one_input_step_is_flagged() -> None:
    slow = ('menu m:\n  prompt "甲请按1"\n  timeout 30s\n  retries 3\n  1 -> m\n'
            '  on failure -> m\n')
    assert _codes(slow) == ["W194"]
    assert _codes(slow.replace("retries 3", "retries 1")) == []
