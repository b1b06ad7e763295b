"""Outbound campaigns on a live node against SIPp residents (issue 7).

Four SIPp UAS instances play the carrier's residents, each behind its own trunk; the dial
plan sends 1391... to the one that answers and hangs up, 1392... to the one that answers
and presses a key (SIP INFO), 1393... to the busy one (486), 1394... to the one that
rings until cancelled, and 1390... (the demo resident of a closed work order) to one that
presses 4 for the 报修回访. Each SIPp is run with ``-m`` = the exact number of INVITEs it
must get, so it exits 0 only when the retries were exactly as configured; the node's
database must show the same attempts. Everything is on 127.0.0.1 with free ports and is
stopped by PID.
"""

from __future__ import annotations

import itertools
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from .conftest import ROOT, SIPP_DIR, Node, free_port, require, sipp_register, start_node, stop_node

pytestmark = pytest.mark.interop

GROUPS = {"answer": ("1391", "uas_campaign_answer.xml"),
          "key": ("1392", "uas_campaign_key.xml"),
          "busy": ("1393", "uas_b2bua_busy.xml"),
          "silent": ("1394", "uas_b2bua_ring.xml"),
          "survey": ("1390", "uas_campaign_key.xml")}


def _config(tmp_path: Path, ports: dict[str, int]) -> Path:
    lines = ["[calls]", "no_answer_timeout_s = 5", ""]
    for name, port in ports.items():
        lines += [f"[trunks.{name}]", 'host = "127.0.0.1"', f"port = {port}", "max_calls = 200",
                  ""]
    for name in ports:
        prefix = GROUPS[name][0]
        lines += ["[[dialplan.rules]]", f'name = "{name}"', f'match = "_{prefix}XXXXXXX"',
                  'target = "trunk"', f'trunk = "{name}"', ""]
    path = tmp_path / "campaign.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _uas(tmp_path: Path, name: str, port: int, calls: int, key: str = "1",
         *extra: str, scenario: str = "") -> subprocess.Popen[str]:
    sipp = require("sipp")
    work = tmp_path / f"uas-{name}"
    work.mkdir(exist_ok=True)
    keys = work / "keys.csv"
    keys.write_text(f"SEQUENTIAL\n{key}\n")
    scenario = scenario or GROUPS[name][1]
    return subprocess.Popen(
        [sipp, "-sf", str(SIPP_DIR / scenario), "-i", "127.0.0.1", "-p", str(port),
         "-mp", str(free_port()), "-m", str(calls), "-inf", str(keys), "-nostdin",
         "-timeout", "90", "-timeout_error", "-max_retrans", "3", "-d", "500",
         "-trace_screen", "-trace_err", *extra],
        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_exit(proc: subprocess.Popen[str], timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return -9


def _screen(tmp_path: Path, name: str) -> str:
    return "".join(p.read_text(errors="replace")
                   for p in (tmp_path / f"uas-{name}").glob("*_screen.log"))


def _db(node_dir: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(node_dir / "softswitch.db", timeout=10) as db:
        return list(db.execute(sql, args))


def _state(node_dir: Path, name: str) -> str:
    rows = _db(node_dir, "SELECT state FROM campaigns WHERE name = ?", name)
    return rows[0][0] if rows else ""


def _wait_for(predicate, timeout: float, step: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def _contacts_csv(path: Path, groups: dict[str, int]) -> Path:
    rows = ["name,phone"]
    for name, count in groups.items():
        prefix = GROUPS[name][0]
        rows += [f"住户,{prefix}{i:07d}" for i in range(count)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _create(node: Node, name: str, csv: Path, *flags: str) -> None:
    res = node.cli("campaign", "create", name, "--kind", "outage", "--csv", str(csv),
                   "--area", "3栋", "--what", "水", "--date", "2026-12-02", "--start", "09:00",
                   "--end", "17:00", "--hours", "daily 00:00-24:00", *flags,
                   "--config", str(node.data_dir.parent / "campaign.toml"))
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_campaign_of_200_contacts_outcomes_and_retries_exactly_as_configured(
        tmp_path: Path) -> None:
    """Also, on the same node: the 报修回访 of the demo's closed work order 20261120
    (reported from 13900001111, routed to the "survey" SIPp that presses 4) stores rating
    4 on the work order."""
    ports = {name: free_port() for name in ("answer", "key", "busy", "silent", "survey")}
    cfg = _config(tmp_path, ports)
    data = tmp_path / "data"
    # 50 contacts per resident kind; busy is tried 3 times, no answer twice, 1 s apart.
    expected_invites = {"answer": 50, "key": 50, "busy": 150, "silent": 100, "survey": 1}
    uas = {name: _uas(tmp_path, name, port, expected_invites[name],
                      "4" if name == "survey" else "1")
           for name, port in ports.items()}
    node = start_node(data, "--config", str(cfg))
    try:
        res = node.cli("campaign", "create", "survey-20261120", "--kind", "survey",
                       "--work-order", "20261120", "--hours", "daily 00:00-24:00",
                       "--config", str(cfg))
        assert res.returncode == 0, res.stdout + res.stderr
        assert node.cli("campaign", "start", "survey-20261120",
                        "--config", str(cfg)).returncode == 0
        _create(node, "outage-200", _contacts_csv(tmp_path / "c.csv", dict.fromkeys(
            ("answer", "key", "busy", "silent"), 50)),
            "--lines", "30", "--cps", "40", "--burst", "10", "--retry", "busy=1:3",
            "--retry", "no_answer=1:2", "--ring-timeout", "1.5")
        res = node.cli("campaign", "start", "outage-200", "--config", str(cfg))
        assert res.returncode == 0, res.stderr
        assert _wait_for(lambda: _state(data, "outage-200") == "completed", 150), node.log()
        assert _wait_for(lambda: _state(data, "survey-20261120") == "completed", 30)
        status = node.cli("campaign", "status", "outage-200", "--config", str(cfg))
    finally:
        stop_node(node)
        codes = {name: _wait_exit(proc, 20) for name, proc in uas.items()}
    screens = {name: _screen(tmp_path, name) for name in uas}
    assert codes == dict.fromkeys(uas, 0), screens
    for name, count in expected_invites.items():
        found = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", screens[name])
        assert found and int(found.group(1)) == count, (name, screens[name])

    # The survey: one acknowledged attempt with rating 4, stored on the work order.
    survey = "(SELECT id FROM campaigns WHERE name = 'survey-20261120')"
    assert _db(data, f"SELECT outcome, rating FROM campaign_attempts "
                     f"WHERE campaign_id = {survey}") == [("acknowledged", 4)]
    assert _db(data, "SELECT rating FROM hotline_work_orders WHERE number = '20261120'") == [
        (4,)]

    outage = "(SELECT id FROM campaigns WHERE name = 'outage-200')"
    per_outcome = dict(_db(data, f"SELECT outcome, count(*) FROM campaign_attempts "
                                 f"WHERE campaign_id = {outage} GROUP BY outcome"))
    assert per_outcome == {"answered": 50, "acknowledged": 50, "busy": 150, "no_answer": 100}
    attempts = _db(data, f"SELECT c.phone, a.attempt_no, a.outcome, a.started_at, a.ended_at "
                         f"FROM campaign_attempts a JOIN campaign_contacts c "
                         f"ON c.id = a.contact_id WHERE a.campaign_id = {outage} "
                         f"ORDER BY c.phone, a.attempt_no")
    by_phone: dict[str, list[tuple]] = {}
    for phone, no, outcome, started, ended in attempts:
        by_phone.setdefault(phone, []).append((no, outcome, started, ended))
    assert len(by_phone) == 200
    for phone, rows in by_phone.items():
        kind = next(n for n, (p, _) in GROUPS.items() if phone.startswith(p))
        want = {"answer": ["answered"], "key": ["acknowledged"], "busy": ["busy"] * 3,
                "silent": ["no_answer"] * 2}[kind]
        assert [r[1] for r in rows] == want, (phone, rows)
        assert [r[0] for r in rows] == list(range(1, len(want) + 1))
        for before, after in itertools.pairwise(rows):
            assert after[2] >= before[3] + 1.0 - 0.01, (phone, rows)   # the 1 s retry delay
    contacts = dict(Counter(r[0] for r in _db(
        data, f"SELECT last_outcome FROM campaign_contacts WHERE status = 'done' "
              f"AND campaign_id = {outage}")))
    assert contacts == {"answered": 50, "acknowledged": 50, "busy": 50, "no_answer": 50}
    # The line limit: never more than 30 attempts overlapping.
    events = sorted([(r[2], 1) for rows in by_phone.values() for r in rows]
                    + [(r[3], -1) for rows in by_phone.values() for r in rows])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert peak <= 30
    # The token bucket: never more than burst + cps x T call starts in any T seconds.
    starts = sorted(r[2] for rows in by_phone.values() for r in rows)
    for i, first in enumerate(starts):
        within = sum(1 for t in starts[i:i + 60] if t - first <= 1.0)
        assert within <= 10 + 40 * 1.0 + 1, (first, within)
    assert "100%" in status.stdout and "acknowledged" in status.stdout
    # Every attempt that was placed is also a call with a CDR (written at shutdown at the
    # latest), its disposition matching the outcome.
    cdrs = dict(_db(data, "SELECT disposition, count(*) FROM cdrs WHERE source = 'campaign' "
                          "GROUP BY disposition"))
    assert cdrs == {"answered": 101, "busy": 150, "no_answer": 100}, cdrs


@pytest.mark.slow
def test_restart_mid_campaign_calls_nobody_twice(tmp_path: Path) -> None:
    """The node is killed (SIGKILL) while calls are up and started again on the same data:
    the campaign completes, every contact has exactly one attempt, the calls cut by the
    crash are recorded failed/interrupted and not repeated, and SIPp saw one INVITE per
    number."""
    ports = {"answer": free_port()}
    cfg = _config(tmp_path, ports)
    data = tmp_path / "data"
    contacts = 20
    uas = _uas(tmp_path, "answer", ports["answer"], contacts, "1", "-trace_msg")
    node = start_node(data, "--config", str(cfg))
    port = node.sip_port
    try:
        _create(node, "restart", _contacts_csv(tmp_path / "c.csv", {"answer": contacts}),
                "--lines", "4", "--cps", "8", "--burst", "2")
        assert node.cli("campaign", "start", "restart", "--config", str(cfg)).returncode == 0

        def finished() -> int:
            return _db(data, "SELECT count(*) FROM campaign_attempts "
                             "WHERE outcome IS NOT NULL")[0][0]

        assert _wait_for(lambda: finished() >= 6, 60), node.log()
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(10)
        dialing = _db(data, "SELECT count(*) FROM campaign_attempts WHERE outcome IS NULL")[0][0]
        node = start_node(data, "--config", str(cfg), port=port)
        assert _wait_for(lambda: _state(data, "restart") == "completed", 90), node.log()
    finally:
        stop_node(node)
        if uas.poll() is None:  # the calls cut by the crash never reach -m: quit now
            uas.send_signal(signal.SIGUSR1)
            _wait_exit(uas, 10)
    attempts = _db(data, "SELECT contact_id, attempt_no, outcome, detail "
                         "FROM campaign_attempts ORDER BY contact_id")
    assert len(attempts) == contacts
    assert sorted({a[0] for a in attempts}) == sorted(a[0] for a in attempts)
    assert all(a[1] == 1 for a in attempts)
    interrupted = [a for a in attempts if a[3] == "interrupted"]
    assert len(interrupted) == dialing and 1 <= dialing <= 4
    assert all(a[2] == "failed" for a in interrupted)
    assert Counter(a[2] for a in attempts) == {"answered": contacts - dialing,
                                               "failed": dialing}
    # SIPp's side: one INVITE dialog per number at most, whatever the crash cut.
    log = "".join(p.read_text(errors="replace")
                  for p in (tmp_path / "uas-answer").glob("*_messages.log"))
    invites: dict[str, set[str]] = {}
    for number, call_id in re.findall(
            r"INVITE sip:(\d+)@[^\n]*\n(?:[^\n]+\n)*?Call-ID: *([^\r\n]+)", log):
        invites.setdefault(number, set()).add(call_id)
    assert len(invites) >= contacts - dialing
    assert all(len(ids) == 1 for ids in invites.values()), invites


@pytest.mark.slow
def test_campaign_calls_a_registered_extension_through_the_dial_plan(tmp_path: Path) -> None:
    """No trunk: the number goes through the default dial plan (_10XX = extension) to the
    phone registered for 1002 (SIPp, digest REGISTER), which presses 1."""
    require("sipp")
    data = tmp_path / "data"
    data.mkdir()
    res = subprocess.run([sys.executable, "-m", "switch.cli", "user", "add", "1002",
                          "--password", "secret", "--data-dir", str(data)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    (tmp_path / "campaign.toml").write_text("[calls]\nno_answer_timeout_s = 5\n")  # for _create
    node = start_node(data)
    port = free_port()
    uas = None
    try:
        sipp_register(tmp_path, node.sip_port, "1002", "secret", port)
        uas = _uas(tmp_path, "ext", port, 1, "1", scenario="uas_campaign_key.xml")
        csv = tmp_path / "ext.csv"
        csv.write_text("name,phone\n分机,1002\n", encoding="utf-8")
        _create(node, "ext", csv)
        assert node.cli("campaign", "start", "ext").returncode == 0
        assert _wait_for(lambda: _state(data, "ext") == "completed", 60), node.log()
    finally:
        stop_node(node)
    assert uas is not None and _wait_exit(uas, 20) == 0, _screen(tmp_path, "ext")
    assert _db(data, "SELECT outcome, detail FROM campaign_attempts") == [
        ("acknowledged", "key 1")]
