"""The ACD end to end on loopback: SIPp callers (digest auth) dial a dial-plan queue; two
agents are SIPp phones registered as extensions 1002 and 1003 (static agents 8001/8002);
each call is answered by the switch (music on hold), offered to an agent, bridged, and
hung up by the agent; then one caller goes through the hotline IVR (the demo script, hotkey
0 sent as SIP INFO) to its ``queue 客服组`` step and reaches an agent the same way. The KPIs
come from the stored queue log through ``softswitch queue stats --json``.

Timeline (3 calls 200 ms apart, 2 agents, 0.5 s ring, 2 s talk, 0.5 s wrap-up): calls 1
and 2 are answered after the ring; call 3 waits for the first agent to finish its call and
wrap-up (about 3 s). So: 3 offered, 3 answered, none abandoned, ASA about 1.3 s, the
longest wait about 3 s, AHT about 2.5 s (talk + wrap-up).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import (
    ROOT,
    SIPP_DIR,
    Node,
    free_port,
    require,
    run_cli,
    sipp_register,
    start_node,
    stop_node,
)

pytestmark = pytest.mark.interop

PASSWORD = "secret"

CONFIG = """
[calls]
no_answer_timeout_s = 20

[queues.support]
strategy = "longest-idle"
ring_timeout_s = 8
wrapup_s = 0.5
max_wait_s = 25
announce_frequency_s = 2
static_agents = ["8001@1002", "8002@1003"]

[queues."客服组"]
ring_timeout_s = 8
wrapup_s = 0.5
static_agents = ["8001@1002", "8002@1003"]

[[dialplan.rules]]
name = "support"
match = "7000"
target = "queue"
queue = "support"

[[dialplan.rules]]
name = "hotline"
match = "12345"
target = "ivr"
program = "hotline"
"""


def _always_open_demo() -> str:
    text = (ROOT / "ivr_lang" / "demo" / "hotline.ivr").read_text(encoding="utf-8")
    text, n = re.subn(r"calendar 工作时间:\n(?:  .*\n)+",
                      "calendar 工作时间:\n  daily 00:00-23:59\n", text)
    assert n == 1
    return text


@pytest.fixture
def acd_node(tmp_path: Path) -> Iterator[Node]:
    data = tmp_path / "data"
    (data / "ivr").mkdir(parents=True)
    (data / "ivr" / "hotline.ivr").write_text(_always_open_demo(), encoding="utf-8")
    for user in ("1001", "1002", "1003"):
        res = run_cli(data, "user", "add", user, "--password", PASSWORD)
        assert res.returncode == 0, res.stderr
    cfg = tmp_path / "acd.toml"
    cfg.write_text(CONFIG)
    rtp = free_port() & ~1  # a range of our own: parallel nodes use the default one
    node = start_node(data, "--config", str(cfg), "--rtp-ports", f"{rtp}-{rtp + 199}")
    yield node
    stop_node(node)


def _register(tmp_path: Path, node: Node, user: str, port: int) -> None:
    sipp_register(tmp_path, node.sip_port, user, PASSWORD, port)


def _agent(tmp_path: Path, name: str, port: int) -> subprocess.Popen[str]:
    sipp = require("sipp")
    workdir = tmp_path / name
    workdir.mkdir()
    return subprocess.Popen(
        [sipp, "-sf", str(SIPP_DIR / "uas_agent.xml"), "-i", "127.0.0.1", "-p", str(port),
         "-mp", str(free_port()), "-nostdin", "-timeout", "40", "-trace_screen",
         "-trace_err"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _callers(tmp_path: Path, node: Node, calls: int, *, dial: str = "7000",
             scenario: str = "uac_queue_caller.xml") -> tuple[int, str]:
    sipp = require("sipp")
    csv = tmp_path / f"callers_{dial}.csv"
    csv.write_text(f"SEQUENTIAL\n1001;[authentication username=1001 "
                   f"password={PASSWORD}];{dial}\n")
    workdir = tmp_path / f"uac_{dial}"
    workdir.mkdir()
    proc = subprocess.run(
        [sipp, "-sf", str(SIPP_DIR / scenario), f"127.0.0.1:{node.sip_port}",
         "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()),
         "-inf", str(csv), "-auth_uri", f"{dial}@127.0.0.1:{node.sip_port}",
         "-m", str(calls), "-r", "5", "-l", str(calls), "-nostdin", "-timeout", "40",
         "-timeout_error", "-default_behaviors", "all,-abortunexp",
         "-trace_screen", "-trace_err"],
        cwd=workdir, capture_output=True, text=True, timeout=60)
    screens = "".join(p.read_text(errors="replace") for p in workdir.glob("*_screen.log"))
    errors = "".join(p.read_text(errors="replace")[-3000:] for p in workdir.glob("*_errors.log"))
    return proc.returncode, screens + errors + proc.stdout + proc.stderr


def _successful(screen: str) -> int:
    found = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", screen)
    return int(found.group(1)) if found else -1


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=5)
    return out or ""


@pytest.mark.slow
def test_sipp_callers_queue_to_sipp_agents_and_kpis_from_the_stored_log(
        tmp_path: Path, acd_node: Node) -> None:
    calls = 3
    ports = {"1002": free_port(), "1003": free_port()}
    for user, port in ports.items():
        _register(tmp_path, acd_node, user, port)
    agents = [_agent(tmp_path, f"agent{user}", port) for user, port in ports.items()]
    try:
        rc, out = _callers(tmp_path, acd_node, calls)
        # Then one caller through the hotline IVR: hotkey 0 -> 人工服务 -> queue 客服组.
        ivr_rc, ivr_out = _callers(tmp_path, acd_node, 1, dial="12345",
                                   scenario="uac_ivr_queue_caller.xml")
    finally:
        agent_out = [_stop(a) for a in agents]
    assert rc == 0, out + "\n".join(agent_out)
    assert _successful(out) == calls, out
    assert ivr_rc == 0 and _successful(ivr_out) == 1, ivr_out + acd_node.log()[-3000:]
    assert stop_node(acd_node) == 0
    log = acd_node.log()
    assert "ACD: 2 static agent(s) logged in" in log
    assert re.search(r"announce 您(前面还有\d+位|是下一位)，预计等待\d+分钟", log), log[-3000:]
    assert " ERROR " not in log, log[-3000:]
    res = run_cli(acd_node.data_dir, "queue", "stats", "support", "--json")
    assert res.returncode == 0, res.stderr
    stats = json.loads(res.stdout)
    q = stats["queues"]["support"]
    assert (q["offered"], q["answered"], q["abandoned"], q["timed_out"]) == (calls, calls, 0, 0)
    assert q["service_level"] == 1.0
    assert 0.8 <= q["asa_s"] <= 2.5, q
    assert 2.2 <= q["longest_wait_s"] <= 4.5, q
    assert 2.2 <= q["aht_s"] <= 3.5, q
    per_agent = {a: k["answered"] for a, k in stats["agents"].items()}
    assert sorted(per_agent) == ["8001", "8002"] and sum(per_agent.values()) == calls
    # The node logged its agents off at shutdown: occupancy covers the session only.
    occupancy = [k["occupancy"] for k in stats["agents"].values()]
    assert all(0.05 < o < 0.95 for o in occupancy), stats["agents"]
    assert "hotkey" in log or "人工服务" in log
    assert re.search(r"ivr \w+ queue 客服组: answered", log), log[-3000:]
    res = run_cli(acd_node.data_dir, "queue", "stats", "客服组", "--json")
    q = json.loads(res.stdout)["queues"]["客服组"]
    assert (q["offered"], q["answered"], q["abandoned"]) == (1, 1, 0)
    text = run_cli(acd_node.data_dir, "queue", "stats", "--interval", "15m")
    assert text.returncode == 0 and "support" in text.stdout, text.stderr
