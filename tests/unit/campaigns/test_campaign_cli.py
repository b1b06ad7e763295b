"""``softswitch campaign ...`` end to end, in-process, against SQLite in tmp_path."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest

from storage.campaign_repository import CampaignRepository
from storage.db import Database, default_sqlite_url
from storage.hotline_demo import ensure_hotline_demo
from switch.campaigns import CampaignCommand, CampaignScheduler, Outcome
from switch.campaigns import cli as cli_module
from switch.campaigns.cli import campaign_main, progress_bar

T0 = 1_796_004_000.0  # Monday 2026-11-30 10:00 in Shanghai


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    async def seed() -> None:
        db = Database(default_sqlite_url(tmp_path))
        try:
            await db.start()
            await ensure_hotline_demo(db)
        finally:
            await db.close()

    asyncio.run(seed())
    return tmp_path


def run(data_dir: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = campaign_main([*argv, "--data-dir", str(data_dir)], out, err)
    return code, out.getvalue(), err.getvalue()


def test_progress_bar() -> None:
    assert progress_bar(0.5, 10) == "[#####.....]  50%"
    assert progress_bar(1.0, 4) == "[####] 100%"
    assert progress_bar(-1, 4) == "[....]   0%"


def test_lifecycle_status_and_report(data_dir: Path, tmp_path: Path) -> None:
    code, out, err = run(data_dir, "create", "催缴", "--kind", "arrears", "--overdue-days",
                         "0", "--today", "2027-01-05", "--lines", "2", "--retry", "busy=60:2")
    assert (code, err) == (0, "") and "3 contact(s), draft" in out
    assert run(data_dir, "pause", "催缴")[0] == 1
    code, out, _ = run(data_dir, "start", "催缴")
    assert (code, out.strip()) == (0, "campaign 催缴: running")

    async def dial_some() -> None:   # what the node's dialer does, through the same storage
        db = Database(default_sqlite_url(data_dir))
        await db.start()
        repo = CampaignRepository(db)
        sched, _ = CampaignScheduler.restore(await repo.load_resume_state("催缴"), T0)
        dials = sched.next_actions(T0) + sched.next_actions(T0 + 1)   # 1 call/s by default
        assert len(dials) == 2
        await repo.begin_attempts(dials)
        await repo.record_outcomes(sched.campaign, [
            sched.record_outcome(dials[0].contact.id, Outcome.ACKNOWLEDGED, T0 + 30),
            sched.record_outcome(dials[1].contact.id, Outcome.BUSY, T0 + 30)])
        await db.close()

    asyncio.run(dial_some())
    code, out, _ = run(data_dir, "status", "催缴", "--width", "9")
    assert code == 0
    assert "campaign 催缴 (arrears_reminder): running" in out
    assert "[###......]  33%  1/3 done, 0 dialing, 2 pending" in out
    assert [line.split() for line in out.splitlines() if "acknowledged" in line or
            "busy" in line] == [["acknowledged", "1", "attempt(s)", "1", "final"],
                                ["busy", "1", "attempt(s)", "0", "final"]]
    assert run(data_dir, "pause", "催缴")[1].strip() == "campaign 催缴: paused"
    assert run(data_dir, "resume", "催缴")[1].strip() == "campaign 催缴: running"
    export = tmp_path / "report.csv"
    code, out, _ = run(data_dir, "report", "催缴", "--csv", str(export))
    assert code == 0 and "wrote 3 contact(s)" in out
    assert out.splitlines()[1].split() == ["OUTCOME", "ATTEMPTS", "CONTACTS"]
    with export.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["name"], r["status"], r["last_outcome"], r["amount"]) for r in rows] == [
        ("王芳", "done", "acknowledged", "1280.05"), ("张伟", "pending", "busy", "350.50"),
        ("刘洋", "pending", "", "150.00")]
    assert run(data_dir, "stop", "催缴")[1].strip() == "campaign 催缴: stopped"
    code, _, err = run(data_dir, "resume", "催缴")
    assert code == 1 and "cannot resume a campaign that is stopped" in err
    code, out, _ = run(data_dir, "status", "催缴", "--watch", "5")   # ended: prints once
    assert code == 0 and out.count("campaign 催缴") == 1
    code, out, _ = run(data_dir, "list")
    assert "催缴  arrears_reminder  stopped  overdue-days 0" in out


def test_csv_with_bad_rows(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("\ufeffname,phone,amount,due_date\n张伟,13800000000,10.5,2026-12-31\n"
                    "李娜,bad,1,2026-12-31\n王芳,13600002222,x,2026-12-31\n", encoding="utf-8")
    code, out, err = run(data_dir, "create", "名单严格", "--kind", "arrears", "--csv",
                         str(path), "--all-or-nothing")
    assert code == 1 and "2 bad row(s), nothing imported" in err
    assert f"{path}: line 3: bad phone 'bad'" in out and f"{path}: line 4: bad amount 'x'" in out
    code, out, err = run(data_dir, "create", "名单", "--kind", "arrears", "--csv", str(path))
    assert code == 0 and "1 contact(s)" in out and "line 3: bad phone 'bad' (skipped)" in out
    assert run(data_dir, "create", "名单", "--kind", "arrears", "--csv", str(path))[0] == 1


def test_outage_from_building_with_calendar(data_dir: Path) -> None:
    code, out, err = run(data_dir, "create", "3栋停水", "--kind", "outage", "--building", "3栋",
                         "--what", "水", "--date", "2026-12-02", "--start", "09:00",
                         "--end", "17:00", "--hours", "daily 09:00-20:00",
                         "--calendar", "work_hours")
    assert (code, err) == (0, "") and "1 contact(s)" in out


@pytest.mark.parametrize(("extra", "message"), [
    (["--building", "3栋"], "need --what"),
    (["--building", "3栋", "--what", "水", "--date", "2026-12-02", "--start", "9",
      "--end", "17:00"], "cannot read field start"),
    (["--building", "9栋", "--what", "水", "--date", "2026-12-02", "--start", "09:00",
      "--end", "17:00"], "contact list is empty"),
    (["--building", "3栋", "--calendar", "nope"], "no calendar called 'nope'"),
    (["--building", "3栋", "--trunk", "nope"], "no trunk called 'nope'"),
    (["--building", "3栋", "--retry", "busy=soon"], "expected OUTCOME=DELAY_S:MAX"),
    (["--building", "3栋", "--hours", "mon-fri 9-5"], "bad calling window"),
])
def test_create_errors(data_dir: Path, extra: list[str], message: str) -> None:
    code, _, err = run(data_dir, "create", "x", "--kind", "outage", *extra)
    assert code == 1 and message in err, err


def test_survey_from_closed_work_order_and_unknown_campaign(data_dir: Path) -> None:
    code, out, err = run(data_dir, "create", "回访", "--kind", "survey", "--work-order",
                         "20261120")
    assert code == 0 and "(repair_survey, 1 contact(s), draft)" in out, err
    code, _, err = run(data_dir, "create", "回访2", "--kind", "survey", "--work-order",
                       "202611280007")
    assert code == 1 and "not closed" in err
    assert run(data_dir, "status", "nope")[0] == 1
    assert run(data_dir, "bogus")[0] == 2


def test_ivr_program_checked(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.ivr"
    bad.write_text("flow x:\n  nonsense here\n", encoding="utf-8")
    code, _, err = run(data_dir, "create", "x", "--kind", "arrears", "--overdue-days", "0",
                       "--today", "2027-01-05", "--ivr", str(bad))
    assert code == 1 and "has errors" in err


def test_status_watch_repeats_until_the_campaign_ends(data_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(data_dir, "create", "w", "--kind", "survey", "--work-order", "20261120")[0] == 0
    assert run(data_dir, "start", "w")[0] == 0
    pauses: list[float] = []

    async def operator_stops_it_meanwhile(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:
            db = Database(default_sqlite_url(data_dir))
            await db.start()
            await CampaignRepository(db).command("w", CampaignCommand.STOP)
            await db.close()

    monkeypatch.setattr(cli_module, "_sleep", operator_stops_it_meanwhile)
    code, out, _ = run(data_dir, "status", "w", "--watch", "2")
    assert code == 0 and pauses == [2.0, 2.0]
    assert [line for line in out.splitlines() if line.startswith("campaign w")] == [
        "campaign w (repair_survey): running", "campaign w (repair_survey): running",
        "campaign w (repair_survey): stopped"]
    assert run(data_dir, "status", "w", "--watch", "0.01")[0] == 1


def test_status_follow_redraws_the_bar_until_the_campaign_ends(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(data_dir, "create", "f", "--kind", "survey", "--work-order", "20261120")[0] == 0
    assert run(data_dir, "start", "f")[0] == 0
    pauses: list[float] = []

    async def dialer_finishes_it_meanwhile(seconds: float) -> None:
        pauses.append(seconds)
        db = Database(default_sqlite_url(data_dir))
        await db.start()
        repo = CampaignRepository(db)
        state = await repo.load_resume_state("f")
        sched = CampaignScheduler(state.campaign, state.contacts)
        now = T0
        dials = sched.next_actions(now)
        await repo.begin_attempts(dials)
        await repo.record_outcomes(state.campaign, [
            sched.record_outcome(d.contact.id, Outcome.ACKNOWLEDGED, now + 5, rating=4)
            for d in dials])
        await db.close()

    monkeypatch.setattr(cli_module, "_sleep", dialer_finishes_it_meanwhile)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    code = campaign_main(["status", "f", "--follow", "--data-dir", str(data_dir)], out=out)
    text = out.getvalue()
    assert code == 0 and pauses == [1.0]
    assert text.count("\x1b[9F\x1b[J") == 1    # one redraw of the 9 lines, in place
    last = text.split("\x1b[J")[-1].splitlines()
    assert last[0] == "campaign f (repair_survey): completed"
    assert last[1].startswith("[##############################] 100%  1/1 done")
    assert "acknowledged" in last[3] and last[3].split()[1:] == ["1", "attempt(s)", "1",
                                                                   "final"]
