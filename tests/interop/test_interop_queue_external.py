"""An ACD agent on an outside number, rung through a trunk (issue 6 point 2), on loopback.

The agent logs in through the CTI client on device ``external:13900001111``; the trunk
"carrier" (SIPp UAS at 127.0.0.2, ``agent_devices = true``) is the only way to reach it. A
SIPp caller (digest auth) dials the queue; the ACD offers the call to the agent: the
switch sends an INVITE for 13900001111 to the carrier, which answers (the agent picked up
the mobile), is bridged to the caller, talks 2 s and hangs up. Checked: the carrier's
trace (Request-URI), the caller's successful call, the CTI events (delivered with the
queue, established) and the stored queue log (one answered call for agent a1, CONNECT
with the external device).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cti.client import CtiClient

from .conftest import SIPP_DIR, Node, free_port, require, run_cli, start_node, stop_node

pytestmark = pytest.mark.interop

PASSWORD = "secret"
CARRIER_IP = "127.0.0.2"
MOBILE = "13900001111"


def _config(carrier_port: int) -> str:
    return f"""
[calls]
no_answer_timeout_s = 20

[trunks.carrier]
enabled = true
host = "{CARRIER_IP}"
port = {carrier_port}
country_code = "86"
agent_devices = true

[trunks.other]
enabled = true
host = "127.0.0.3"
port = {carrier_port}
country_code = "86"

[queues.support]
ring_timeout_s = 8
wrapup_s = 0.5
max_wait_s = 25

[[dialplan.rules]]
name = "support"
match = "7000"
target = "queue"
queue = "support"

[[dialplan.rules]]
name = "outbound"
match = "_9."
target = "trunk"
trunk = "carrier"
strip = 1
"""


@pytest.fixture
def ext_node(tmp_path: Path) -> Iterator[tuple[Node, int, int]]:
    data = tmp_path / "data"
    data.mkdir()
    res = run_cli(data, "user", "add", "1001", "--password", PASSWORD)
    assert res.returncode == 0, res.stderr
    res = run_cli(data, "cti-user", "add", "alice", "--role", "agent", "--agent-id", "a1",
                  "--queues", "support", "--password", PASSWORD)
    assert res.returncode == 0, res.stderr
    carrier_port, cti_port = free_port(), free_port()
    cfg = tmp_path / "ext.toml"
    cfg.write_text(_config(carrier_port))
    rtp = free_port() & ~1
    node = start_node(data, "--config", str(cfg), "--cti-port", str(cti_port),
                      "--rtp-ports", f"{rtp}-{rtp + 99}")
    yield node, carrier_port, cti_port
    stop_node(node)


def _carrier(workdir: Path, port: int, scenario: str = "uas_agent.xml",
             calls: int = 1) -> subprocess.Popen[str]:
    """The carrier: a UAS that answers like an agent's phone (and hangs up after 2 s)."""
    workdir.mkdir()
    return subprocess.Popen(
        [require("sipp"), "-sf", str(SIPP_DIR / scenario), "-i", CARRIER_IP,
         "-p", str(port), "-mp", str(free_port()), "-m", str(calls), "-nostdin",
         "-timeout", "40", "-trace_msg", "-trace_err"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _caller(workdir: Path, node: Node) -> subprocess.CompletedProcess[str]:
    workdir.mkdir()
    csv = workdir / "caller.csv"
    csv.write_text(f"SEQUENTIAL\n1001;[authentication username=1001 "
                   f"password={PASSWORD}];7000\n")
    return subprocess.run(
        [require("sipp"), "-sf", str(SIPP_DIR / "uac_queue_caller.xml"),
         f"127.0.0.1:{node.sip_port}", "-i", "127.0.0.1", "-p", str(free_port()),
         "-mp", str(free_port()), "-inf", str(csv),
         "-auth_uri", f"7000@127.0.0.1:{node.sip_port}", "-m", "1", "-nostdin",
         "-timeout", "40", "-timeout_error", "-default_behaviors", "all,-abortunexp"],
        cwd=workdir, capture_output=True, text=True, timeout=60)


def _stop(proc: subprocess.Popen[str]) -> str:
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, _ = proc.communicate(timeout=5)
    return out or ""


async def test_agent_on_an_outside_number_is_rung_through_the_trunk_and_bridged(
        tmp_path: Path, ext_node: tuple[Node, int, int]) -> None:
    node, carrier_port, cti_port = ext_node
    carrier = _carrier(tmp_path / "carrier", carrier_port)
    agent = await CtiClient.connect("127.0.0.1", cti_port, reconnect=False)
    try:
        await agent.login("alice", PASSWORD)
        await agent.subscribe()
        login = await agent.agent_login(f"external:{MOBILE}")
        assert login["registered"] is False
        await agent.set_state("ready")
        caller = await asyncio.to_thread(_caller, tmp_path / "caller", node)
        seen: dict[str, dict[str, object]] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not {"call.delivered", "call.established"} <= seen.keys():
            event = await agent.next_event(max(0.05, deadline - loop.time()))
            seen.setdefault(event.event, dict(event.data))
    finally:
        await agent.close()
        carrier_out = _stop(carrier)
    assert caller.returncode == 0, caller.stdout + caller.stderr + node.log()[-3000:]
    assert carrier.returncode == 0, carrier_out + node.log()[-3000:]
    trace = "".join(p.read_text(errors="replace")
                    for p in (tmp_path / "carrier").glob("*_messages.log"))
    assert re.search(rf"^INVITE sip:{MOBILE}@{re.escape(CARRIER_IP)}", trace, re.M), trace
    assert seen["call.delivered"]["queue"] == "support"
    assert seen["call.established"]["agent_id"] == "a1"
    assert stop_node(node) == 0
    log = node.log()
    assert f"rings agent a1 at {MOBILE} via trunk carrier" in log, log[-3000:]
    res = run_cli(node.data_dir, "queue", "stats", "support", "--json")
    assert res.returncode == 0, res.stderr
    stats = json.loads(res.stdout)
    q = stats["queues"]["support"]
    assert (q["offered"], q["answered"], q["abandoned"]) == (1, 1, 0), q
    assert stats["agents"]["a1"]["answered"] == 1


async def test_scheduled_callback_to_a_mobile_from_an_agent_on_a_mobile(
        tmp_path: Path, ext_node: tuple[Node, int, int]) -> None:
    """``callback.schedule`` for 9 13900002222: the agent's mobile rings first through the
    carrier (agent device), then the customer's number goes out through the dial plan's
    trunk route; both answer and are bridged; the node's shutdown hangs both up."""
    node, carrier_port, cti_port = ext_node
    carrier = _carrier(tmp_path / "carrier", carrier_port, "uas_answer_wait_bye.xml", 2)
    agent = await CtiClient.connect("127.0.0.1", cti_port, reconnect=False)
    try:
        await agent.login("alice", PASSWORD)
        await agent.agent_login(f"external:{MOBILE}")
        await agent.set_state("ready")
        result = await agent.request("callback.schedule", queue="support",
                                     number="913900002222")
        assert result["call_id"].startswith("cb-")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while "connected to 913900002222" not in node.log():
            assert loop.time() < deadline, node.log()[-3000:]
            await asyncio.sleep(0.2)
    finally:
        await agent.close()
    assert stop_node(node) == 0
    carrier_out = _stop(carrier)
    assert carrier.returncode == 0, carrier_out + node.log()[-3000:]
    trace = "".join(p.read_text(errors="replace")
                    for p in (tmp_path / "carrier").glob("*_messages.log"))
    invites = re.findall(r"^INVITE sip:(\d+)@", trace, re.M)
    assert invites == [MOBILE, "13900002222"], invites
    log = node.log()
    assert "calls 13900002222 back via trunk carrier" in log, log[-3000:]
