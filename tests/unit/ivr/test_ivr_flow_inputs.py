"""Flow ``input`` variables: preset by whoever starts the call (the campaign dialer passes a
contact's fields); the checker knows them, the interpreter sets them (null when not given),
and the repair survey program's transcripts replay with them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr_lang.check import check_source, has_errors
from ivr_lang.cli import check_main
from ivr_lang.cli import test_main as ivr_test_main
from ivr_lang.simulator import SimOptions, coverage, run_transcript_file, simulate

ROOT = Path(__file__).resolve().parents[3]
PROGRAMS = ROOT / "switch" / "campaigns" / "programs"
SURVEY = PROGRAMS / "repair_survey.ivr"
SURVEY_TRANSCRIPTS = sorted(PROGRAMS.glob("repair_survey_*.transcript"))

BODY = """
step 开始:
  if work_order == null:
    say "没有工单。"
  else:
    say "工单{work_order as 号码}。"
  hangup
"""


def _program(header: str):  # type: ignore[no-untyped-def]
    src = f"flow t:\n  timeout 5s\n  retries 2\n  on error -> 开始\n{header}{BODY}"
    program, diags = check_source(src, "t.ivr")
    return program, [d.code for d in diags]


def test_reading_an_undeclared_variable_is_e170() -> None:
    _, codes = _program("")
    assert "E170" in codes


def test_declared_input_checks_clean_and_chinese_alias_works() -> None:
    for header in ("  input work_order\n", "  传入 work_order\n"):
        program, codes = _program(header)
        assert codes == [] and program is not None


def test_input_takes_one_name_per_line() -> None:
    _, codes = _program('  input "work_order"\n')
    assert "E121" in codes


def test_interpreter_presets_inputs_and_null_when_missing() -> None:
    program, _ = _program("  input work_order\n")
    given = simulate(program, SimOptions(inputs={"work_order": "2026", "other": "x"}))
    assert "[开始] say: 工单二零二六。" in given.lines
    assert given.result.variables["work_order"] == "2026"
    assert "other" not in given.result.variables     # only declared inputs are taken
    missing = simulate(program, SimOptions())
    assert "[开始] say: 没有工单。" in missing.lines


def test_inputs_cannot_override_caller() -> None:
    program, codes = _program("  input caller\n  input work_order\n")
    assert program is not None and codes == []
    result = simulate(program, SimOptions(caller="13800000000",
                                          inputs={"caller": "spoofed"})).result
    assert result.variables["caller"] == "13800000000"


def test_survey_program_checks_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_main(["--strict", str(SURVEY)]) == 0
    assert "0 error(s), 0 warning(s)" in capsys.readouterr().out


@pytest.mark.parametrize("path", SURVEY_TRANSCRIPTS, ids=lambda p: p.stem)
def test_survey_transcripts_replay(path: Path) -> None:
    program, diags = check_source(SURVEY.read_text(encoding="utf-8"), str(SURVEY))
    assert program is not None and not has_errors(diags)
    run = run_transcript_file(program, path, None)
    assert run.ok, run.diff()


def test_survey_transcripts_cover_every_step_and_read_the_work_order() -> None:
    assert len(SURVEY_TRANSCRIPTS) >= 3
    program, _ = check_source(SURVEY.read_text(encoding="utf-8"), str(SURVEY))
    runs = [run_transcript_file(program, p, None).transcript for p in SURVEY_TRANSCRIPTS]
    assert coverage(program, runs).steps_percent == 100.0
    text = "\n".join(line for run in runs for line in run.lines)
    assert "王芳您好" in text and "二零二六一一二八零零零七号工单" in text


def test_cli_input_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert ivr_test_main([str(SURVEY), "--input", "name=赵强", "--input",
                          "work_order=202611300002", "--keys", "5"]) == 0
    out = capsys.readouterr().out
    assert "赵强您好" in out and "tag campaign_rating = 5" in out
