"""The hotline demo: shipped transcripts replay exactly and cover every step and branch."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr_lang.cli import check_main
from ivr_lang.cli import test_main as ivr_test_main
from ivr_lang.parser import parse
from ivr_lang.simulator import (
    SimOptions,
    all_branches,
    coverage,
    load_fixture,
    run_transcript_file,
    simulate,
)

DEMO_DIR = Path(__file__).resolve().parents[3] / "ivr_lang" / "demo"
SCRIPT = DEMO_DIR / "hotline.ivr"
TRANSCRIPTS = sorted(DEMO_DIR.glob("*.transcript"))


@pytest.fixture(scope="module")
def program():  # type: ignore[no-untyped-def]
    return parse(SCRIPT.read_text(encoding="utf-8"), "hotline.ivr")


@pytest.fixture(scope="module")
def fixture():  # type: ignore[no-untyped-def]
    return load_fixture(DEMO_DIR / "hotline_mock.toml")


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.stem)
def test_shipped_transcript_replays(path: Path, program, fixture) -> None:  # type: ignore[no-untyped-def]
    run = run_transcript_file(program, path, fixture)
    assert run.ok, run.diff()


def test_transcripts_cover_every_step_and_branch(program, fixture) -> None:  # type: ignore[no-untyped-def]
    runs = [run_transcript_file(program, p, fixture).transcript for p in TRANSCRIPTS]
    cov = coverage(program, runs)
    assert cov.missed == []
    assert cov.steps_percent == 100.0 and cov.branches_percent == 100.0
    assert len(cov.total) > 60


def test_coverage_reports_what_is_missing(program, fixture) -> None:  # type: ignore[no-untyped-def]
    one = simulate(program, SimOptions(keys=["1", "100001#", "2"]), fixture)
    cov = coverage(program, [one])
    assert 0 < cov.branches_percent < 100 and "step 投诉" in cov.missed
    assert "not covered: step 投诉" in cov.report()
    assert cov.total == all_branches(program)


def test_every_call_ends_with_a_person_or_a_goodbye(program, fixture) -> None:  # type: ignore[no-untyped-def]
    """Bad input: silence or garbage at every input never leaves the caller in silence."""
    for keys in ([], ["5", "6", "7"], ["1", "-", "-", "-"], ["3", "1#", "2#", "3#"],
                 ["2", "x", "y", "z"], ["*", "#", "*"]):
        for at in ("2026-11-30T10:00", "2026-11-30T23:00"):
            import datetime as dt

            t = simulate(program, SimOptions(caller="13700000000", keys=keys,
                                             at=dt.datetime.fromisoformat(at)), fixture)
            assert t.result.reason in ("queued", "hangup", "transferred")
            last_said = [line for line in t.lines if "say:" in line or "queue" in line]
            assert last_said, t.text
            assert t.result.statements < 200


def test_vip_caller_gets_priority(program, fixture) -> None:  # type: ignore[no-untyped-def]
    vip = simulate(program, SimOptions(caller="13800000000", keys=["0"]), fixture)
    plain = simulate(program, SimOptions(caller="13900001111", keys=["0"]), fixture)
    assert "priority 10" in vip.lines[-2] and "priority 0" in plain.lines[-2]


def test_bill_read_back_in_chinese(program, fixture) -> None:  # type: ignore[no-untyped-def]
    t = simulate(program, SimOptions(caller="13900001111", keys=["1", "100003#", "2"]), fixture)
    assert ("[查询物业费] say: 账号一零零零零三，欠费金额一千两百八十元零五分，"
            "缴费截止日期二零二六年十二月十五日。") in t.lines


def test_cli_check_and_test(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert check_main([str(SCRIPT)]) == 0
    assert "0 error(s)" in capsys.readouterr().out
    bad = tmp_path / "bad.ivr"
    bad.write_text("step a:\n  -> b\n", encoding="utf-8")
    assert check_main([str(bad)]) == 1
    out = capsys.readouterr().out
    assert "bad.ivr:2:6: error E110" in out and "^" in out
    assert check_main([str(tmp_path / "missing.ivr")]) == 2
    capsys.readouterr()
    assert ivr_test_main([str(SCRIPT), "--caller", "13800000000", "--keys", "1 100001# 2"]) == 0
    out = capsys.readouterr().out
    assert "三百五十元五角" in out and out.rstrip().splitlines()[-1].startswith("end: hangup")
    assert ivr_test_main([str(SCRIPT), "--keys", "4", "--mock", "queue 投诉组=closed"]) == 0
    assert "queue 投诉组 skill complaint priority 10 -> closed" in capsys.readouterr().out
    assert ivr_test_main([str(bad)]) == 1


def test_cli_transcripts_pass_fail_update(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    src = TRANSCRIPTS[0].read_text(encoding="utf-8")
    good = tmp_path / "good.transcript"
    good.write_text(src, encoding="utf-8")
    broken = tmp_path / "broken.transcript"
    broken.write_text(src.replace("say:", "says:", 1), encoding="utf-8")
    data = str(DEMO_DIR / "hotline_mock.toml")
    assert ivr_test_main([str(SCRIPT), str(good), "--data", data, "--coverage"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "coverage: steps" in out
    assert ivr_test_main([str(SCRIPT), str(broken), "--data", data]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert ivr_test_main([str(SCRIPT), str(broken), "--data", data, "--update"]) == 0
    assert broken.read_text(encoding="utf-8") == src


def test_python_m_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    from ivr_lang.__main__ import main

    assert main(["check", str(SCRIPT)]) == 0
    assert main([]) == 2 and "usage" in capsys.readouterr().out
