"""A 报修回访 run as an IVR program on a live node, driven and followed from the CTI.

The node runs its CTI server; an admin client starts the survey campaign of the demo's
closed work order 20261120 (``campaign.start``) and follows it through ``campaign.progress``
events until it completes. The campaign runs switch/campaigns/programs/repair_survey.ivr on
answer with the contact's fields as the program's inputs; SIPp plays the resident (routed
by the dial plan to a trunk) and presses 4 (SIP INFO) while the rating question is asked.
The rating lands on the attempt and the work order, and the call's CDR carries the work
order the program read from its inputs. 127.0.0.1, free ports, processes stopped by PID.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from cti.campaign_commands import CAMPAIGN_COMMANDS, register_commands
from cti.client import CtiClient, CtiEvent
from cti.messages import COMMANDS

from .conftest import ROOT, SIPP_DIR, free_port, require, run_cli, start_node, stop_node

pytestmark = pytest.mark.interop

PASSWORD = "secret-pw"
PROGRAM = ROOT / "switch" / "campaigns" / "programs" / "repair_survey.ivr"
KEY_AFTER_MS = 20_000
"""When SIPp presses 4 after the answer: past the greeting (a ``say``, not barge-in: a key
during it is dropped; 5-13 s here with the first TTS render on a loaded machine), inside
the rating question's three rounds (barge-in prompt + 5 s wait each, about 30 s)."""


def _db(data: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(data / "softswitch.db", timeout=10) as db:
        return list(db.execute(sql))


async def _follow(client: CtiClient, timeout_s: float) -> list[CtiEvent]:
    """campaign.progress events until the campaign's completion (or the timeout)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    got: list[CtiEvent] = []
    while loop.time() < deadline:
        try:
            event = await client.next_event(max(0.1, deadline - loop.time()))
        except TimeoutError:
            break
        if event.event == "campaign.progress":
            got.append(event)
            if event.data["state"] in ("completed", "stopped"):
                break
    return got


@pytest.mark.slow
async def test_ivr_survey_started_and_followed_from_the_cti(tmp_path: Path) -> None:
    sipp = require("sipp")
    data = tmp_path / "data"
    data.mkdir()
    res = run_cli(data, "cti-user", "add", "root", "--role", "admin", "--password", PASSWORD)
    assert res.returncode == 0, res.stderr
    uas_port = free_port()
    cfg = tmp_path / "survey.toml"
    cfg.write_text("\n".join([
        "[calls]", "no_answer_timeout_s = 10", "",
        "[trunks.survey]", 'host = "127.0.0.1"', f"port = {uas_port}", "max_calls = 4", "",
        "[[dialplan.rules]]", 'name = "survey"', 'match = "_1390XXXXXXX"', 'target = "trunk"',
        'trunk = "survey"', ""]), encoding="utf-8")
    work = tmp_path / "uas"
    work.mkdir()
    (work / "keys.csv").write_text("SEQUENTIAL\n4\n")
    uas = subprocess.Popen(
        [sipp, "-sf", str(SIPP_DIR / "uas_campaign_key.xml"), "-i", "127.0.0.1",
         "-p", str(uas_port), "-mp", str(free_port()), "-m", "1", "-inf",
         str(work / "keys.csv"), "-nostdin", "-timeout", "90", "-timeout_error",
         "-max_retrans", "3", "-d", str(KEY_AFTER_MS), "-trace_screen", "-trace_err"],
        cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cti_port = free_port()
    node = start_node(data, "--config", str(cfg), "--cti-port", str(cti_port))
    client = None
    try:
        res = node.cli("campaign", "create", "回访-20261120", "--kind", "survey",
                       "--work-order", "20261120", "--ivr", str(PROGRAM),
                       "--hours", "daily 00:00-24:00", "--config", str(cfg))
        assert res.returncode == 0, res.stdout + res.stderr
        register_commands()  # this process is a client: it must know the commands
        client = await CtiClient.connect("127.0.0.1", cti_port, reconnect=False)
        await client.login("root", PASSWORD)
        await client.subscribe(events=["campaign.*"])
        started = await client.request("campaign.start", name="回访-20261120")
        assert started == {"name": "回访-20261120", "state": "running"}
        events = await _follow(client, 85.0)
    finally:
        for name in CAMPAIGN_COMMANDS:  # the protocol's table as the other tests know it
            COMMANDS.pop(name, None)
        if client is not None:
            await client.close()
        stop_node(node)
        try:
            code = uas.wait(20)
        except subprocess.TimeoutExpired:
            uas.kill()
            code = uas.wait(5)
    screen = "".join(p.read_text(errors="replace") for p in work.glob("*_screen.log"))
    assert code == 0, screen + node.log()
    assert events, node.log()
    assert events[0].data["state"] == "running"
    assert any(e.data["progress"]["dialing"] == 1 for e in events)   # seen while it rang
    final = events[-1].data
    assert final["state"] == "completed" and final["name"] == "回访-20261120"
    ivr_log = "\n".join(line for line in node.log().splitlines() if "ivr" in line)
    assert final["progress"]["finals"]["acknowledged"] == 1, ivr_log
    assert final["progress"]["done"] == 1 and final["progress"]["fraction_done"] == 1.0
    assert _db(data, "SELECT outcome, rating, detail FROM campaign_attempts") == [
        ("acknowledged", 4, "ivr")]
    assert _db(data, "SELECT rating FROM hotline_work_orders WHERE number = '20261120'") == [
        (4,)]
    tags = [json.loads(t) for (t,) in _db(data, "SELECT tags FROM cdrs WHERE "
                                                "source = 'campaign'")]
    assert len(tags) == 1, tags
    assert tags[0].get("回访工单") == "20261120" and tags[0].get("campaign_rating") == "4"
