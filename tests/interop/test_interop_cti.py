"""The CTI server of a running node, end to end with real phones (baresip) on loopback.

A resident (张伟, 13800000000 in the demo data, VIP) calls the hotline IVR (12345) and
presses 0 for an operator: the IVR tags the VIP and queues the caller in 客服组; agent a1,
logged in on extension 1002 through the CTI client, is offered the call by the live ACD:
the agent's client gets ``call.delivered`` with the resident's record and the IVR's tags.
A supervisor's client starts a whisper on the agent: the supervisor's phone (1003) is
called and joined; its 1800 Hz tone is heard by the agent and not by the caller (Goertzel
of ``dsp.goertzel`` over what each phone recorded). Then the CTI protocol is fed bad input
on the live node and keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cti.client import CtiClient, CtiCommandError, CtiEvent
from dsp.goertzel import block_powers, frame_blocks, goertzel_basis, hann, tone_power_scale

from .conftest import ROOT, Node, free_port, require, run_cli, start_node, stop_node
from .peers import Baresip
from .test_interop_acd import _always_open_demo
from .test_interop_calls import _tone_wav

pytestmark = pytest.mark.interop

PASSWORD = "secret"
RESIDENT_PHONE = "13800000000"
WHISPER_HZ = 1800.0
CONFIG = """
[cti]
screen_pop_timeout_s = 10   # a loaded test machine: the pop must carry the record
"""
QUEUE = "客服组"
"""The demo queue the hotline IVR's hotkey 0 (人工服务) leads to."""


@pytest.fixture
def cti_node(tmp_path: Path) -> Iterator[tuple[Node, int]]:
    data = tmp_path / "data"
    (data / "ivr").mkdir(parents=True)
    (data / "ivr" / "hotline.ivr").write_text(_always_open_demo(), encoding="utf-8")
    for user in (RESIDENT_PHONE, "1002", "1003"):
        res = run_cli(data, "user", "add", user, "--password", PASSWORD)
        assert res.returncode == 0, res.stderr
    for name, role, extra in (("alice", "agent", ["--agent-id", "a1", "--queues", QUEUE]),
                              ("boss", "supervisor", ["--queues", "*"])):
        res = run_cli(data, "cti-user", "add", name, "--role", role, "--password", PASSWORD,
                      *extra)
        assert res.returncode == 0, res.stderr
    cfg = tmp_path / "cti.toml"
    cfg.write_text(CONFIG)
    cti_port = free_port()
    rtp = free_port() & ~1  # a range of our own: parallel nodes use the default one
    node = start_node(data, "--cti-port", str(cti_port), "--config", str(cfg),
                      "--rtp-ports", f"{rtp}-{rtp + 99}")
    yield node, cti_port
    stop_node(node)


async def _event(client: CtiClient, name: str, timeout_s: float = 15.0) -> CtiEvent:
    return (await _events(client, {name}, timeout_s))[name]


async def _events(client: CtiClient, names: set[str],
                  timeout_s: float = 15.0) -> dict[str, CtiEvent]:
    """The first event of each name in ``names`` (in whatever order they come)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    seen: dict[str, CtiEvent] = {}
    while not names <= seen.keys():
        event = await client.next_event(max(0.05, deadline - loop.time()))
        seen.setdefault(event.event, event)
    return seen


def _established(phone: Baresip, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while "ESTABLISHED" not in phone.command("listcalls").get("data", ""):
        assert time.monotonic() < deadline, "the call was not answered"
        time.sleep(0.1)


def _pcm(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == 8000
        return np.frombuffer(w.readframes(w.getnframes()), np.int16)[:: w.getnchannels()]


def _tone_blocks(pcm: np.ndarray, freq_hz: float, min_amplitude: float = 1000.0) -> int:
    """How many 25 ms blocks of ``pcm`` carry ``freq_hz`` above ``min_amplitude``."""
    window = hann(200)
    powers = block_powers(frame_blocks(pcm, 200) * window.astype(np.float32),
                          goertzel_basis([freq_hz], 200))[:, 0]
    amplitude = np.sqrt(powers / tone_power_scale(200, window))
    return int(np.sum(amplitude > min_amplitude))


@pytest.mark.slow
async def test_screen_pop_and_whisper_heard_by_agent_only(tmp_path: Path,
                                                          cti_node: tuple[Node, int]) -> None:
    require("baresip")
    node, cti_port = cti_node
    registrar = f"127.0.0.1:{node.sip_port}"
    phones: list[Baresip] = []
    agent = await CtiClient.connect("127.0.0.1", cti_port, reconnect=False)
    boss = await CtiClient.connect("127.0.0.1", cti_port, reconnect=False)
    try:
        await agent.login("alice", PASSWORD)
        await agent.subscribe()
        assert (await agent.agent_login("1002"))["agent_id"] == "a1"
        await agent.set_state("ready")
        await boss.login("boss", PASSWORD)
        await boss.subscribe()
        caller = Baresip(tmp_path / "caller", RESIDENT_PHONE, PASSWORD, registrar,
                         wav=_tone_wav(tmp_path / "c.wav", 440.0), rec_dir=tmp_path / "rec_c")
        desk = Baresip(tmp_path / "desk", "1002", PASSWORD, registrar,
                       wav=_tone_wav(tmp_path / "d.wav", 1000.0), rec_dir=tmp_path / "rec_d")
        sup = Baresip(tmp_path / "sup", "1003", PASSWORD, registrar,
                      wav=_tone_wav(tmp_path / "s.wav", WHISPER_HZ))
        phones += [caller, desk, sup]
        for phone in phones:
            assert await asyncio.to_thread(phone.registered)

        caller.command("dial", f"sip:12345@127.0.0.1:{node.sip_port}")  # the hotline IVR
        await asyncio.to_thread(_established, caller)
        await asyncio.sleep(1.0)
        caller.command("sndcode", "0")  # hotkey 0: 人工服务 -> queue 客服组
        delivered = await _event(agent, "call.delivered", 30.0)
        call_id = delivered.data["call_id"]
        assert delivered.data["agent_id"] == "a1" and delivered.data["device"] == "1002"
        assert delivered.data["queue"] == QUEUE
        pop = delivered.data["screen_pop"]
        assert pop["caller_number"] == RESIDENT_PHONE
        assert pop["ivr_tags"].get("贵宾") == "true"   # the IVR: `tag 贵宾 = 是` (a VIP)
        resident: dict[str, Any] = pop["resident"]
        assert (resident["name"], resident["unit"], resident["vip"]) == (
            "张伟", "3栋2单元501", True)
        assert sum(Decimal(b["amount"]) for b in resident["unpaid_bills"]) == Decimal("350.50")
        assert resident["open_work_orders"], resident
        assert (await _event(agent, "call.established")).data["call_id"] == call_id

        with pytest.raises(CtiCommandError) as exc:  # agents may not monitor
            await agent.request("monitor.whisper", agent_id="a1", device="1003")
        assert exc.value.code == "forbidden"
        monitor = await boss.request("monitor.whisper", agent_id="a1", device="1003")
        started = await _event(boss, "monitor.started")
        assert started.data["monitor_id"] == monitor["monitor_id"]
        assert started.data["mode"] == "whisper" and started.data["call_id"] == call_id
        await asyncio.sleep(4.0)  # the supervisor's tone flows
        await boss.request("monitor.stop", monitor_id=monitor["monitor_id"])
        assert (await _event(boss, "monitor.stopped")).data["reason"] == "stopped"

        caller.command("hangup")
        ends = await _events(agent, {"call.cleared", "agent.wrapup"})
        cleared = ends["call.cleared"]
        assert cleared.data["call_id"] == call_id and cleared.data["side"] == "caller"
        assert ends["agent.wrapup"].data["agent_id"] == "a1"
    finally:
        await agent.close()
        await boss.close()
        for phone in phones:
            phone.stop()
    stop_node(node)  # (the clean-shutdown check is in the TLS test: no call, no DB backlog)
    # The agent's phone recorded the bridged call only; the caller's recording ends with the
    # same stretch (before it: the IVR's prompts, whose speech has energy at 1800 Hz too).
    agent_pcm = _pcm(next((tmp_path / "rec_d").glob("*-dec.wav")))
    caller_pcm = _pcm(next((tmp_path / "rec_c").glob("*-dec.wav")))
    heard_by_agent = _tone_blocks(agent_pcm, WHISPER_HZ)
    heard_by_caller = _tone_blocks(caller_pcm[-len(agent_pcm) + 4000:], WHISPER_HZ)
    assert heard_by_agent > 60, heard_by_agent   # over 1.5 s of the 4 s whisper
    assert heard_by_caller < 4, heard_by_caller
    audit = [json.loads(line[line.index("{"):]) for line in node.log().splitlines()
             if "cti.audit" in line and "{" in line]
    assert {(a["user"], a["cmd"], a["outcome"]) for a in audit} >= {
        ("boss", "monitor.whisper", "ok"), ("boss", "monitor.stop", "ok"),
        ("alice", "monitor.whisper", "denied")}


class _Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Raw:
        return cls(*await asyncio.open_connection("127.0.0.1", port, limit=1 << 20))

    async def send(self, data: bytes) -> dict[str, Any]:
        self.writer.write(data)
        await self.writer.drain()
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 10.0)
            assert line, "connection closed"
            reply = json.loads(line)
            if reply["type"] == "res":
                return reply  # type: ignore[no-any-return]

    async def req(self, cmd: str, **args: Any) -> dict[str, Any]:
        return await self.send(json.dumps({"v": 1, "type": "req", "id": "r", "cmd": cmd,
                                           "args": args}).encode() + b"\n")


def _code(reply: dict[str, Any]) -> str:
    assert reply["ok"] is False, reply
    return str(reply["error"]["code"])


async def test_cti_protocol_under_bad_input_on_the_live_node(
        cti_node: tuple[Node, int]) -> None:
    node, cti_port = cti_node
    raw = await _Raw.open(cti_port)
    assert _code(await raw.req("call.hangup", call_id="x")) == "hello_required"
    assert (await raw.req("hello"))["ok"]
    assert _code(await raw.req("auth.login", user="alice", password="wrong")) == "auth_failed"
    assert (await raw.req("auth.login", user="alice", password=PASSWORD))["ok"]
    assert _code(await raw.send(b'{"v":1,"type":"req","id":"a",\n')) == "bad_json"
    assert _code(await raw.send(b"\xff\xfe\n")) == "bad_json"
    assert _code(await raw.send(b"[1,2,3]\n")) == "bad_request"
    assert _code(await raw.req("system.exec", command="id")) == "unknown_command"
    assert _code(await raw.req("agent.set_state", state=3)) == "invalid_args"
    assert _code(await raw.req("call.force_hangup", call_id="x")) == "forbidden"
    assert _code(await raw.req("monitor.barge", agent_id="a1")) == "forbidden"
    assert _code(await raw.req("call.hangup", call_id="nope")) == "not_found"
    assert _code(await raw.req("agent.set_state", state="ready")) == "not_found"
    login = await raw.req("agent.login", device="1002")
    assert login["ok"] and login["result"]["registered"] is False
    assert _code(await raw.req("call.make", destination="1003")) == "not_found"  # no phone
    assert (await raw.req("ping"))["ok"]

    big = await _Raw.open(cti_port)
    assert (await big.req("hello"))["ok"]
    big.writer.write(b'{"v":1,"type":"req","id":"x","cmd":"ping","args":{"pad":"' +
                     b"a" * (10 * 1024 * 1024))
    line = await asyncio.wait_for(big.reader.readline(), 10.0)
    assert json.loads(line)["error"]["code"] == "line_too_long"
    assert await asyncio.wait_for(big.reader.read(), 10.0) == b""
    big.writer.close()

    assert (await raw.req("ping"))["ok"]          # the other client is still served
    fresh = await CtiClient.connect("127.0.0.1", cti_port, reconnect=False)
    try:
        await fresh.login("boss", PASSWORD)
        snapshot = await fresh.snapshot()
        assert [a["agent_id"] for a in snapshot["snapshot"]["agents"]] == ["a1"]
    finally:
        await fresh.close()
    raw.writer.close()
    assert node.proc.poll() is None


def _cert(tmp_path: Path) -> tuple[Path, Path]:
    require("openssl")
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(crt), "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=30)
    return crt, key


async def test_cti_over_tls_on_the_node_and_a_bad_cti_key_stops_start_up(
        tmp_path: Path) -> None:
    crt, key = _cert(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    res = run_cli(data, "cti-user", "add", "boss", "--role", "supervisor", "--password",
                  PASSWORD, "--queues", "*")
    assert res.returncode == 0, res.stderr
    cfg = tmp_path / "tls.toml"
    cfg.write_text(f'[cti]\nhost = "127.0.0.1"\ncertfile = "{crt}"\nkeyfile = "{key}"\n')
    cti_port = free_port()
    node = start_node(data, "--cti-port", str(cti_port), "--config", str(cfg))
    try:
        assert f"CTI server on 127.0.0.1:{cti_port} (TLS)" in node.log()
        client = await CtiClient.connect("127.0.0.1", cti_port,
                                         tls=ssl.create_default_context(cafile=str(crt)),
                                         reconnect=False)
        try:
            assert (await client.login("boss", PASSWORD)).role == "supervisor"
            assert await client.queue_list() == [
                {"queue": q, "waiting": 0, "agents_logged_in": 0}
                for q in sorted(["operator", "客服组", "报修组", "投诉组", "值班组"])]
        finally:
            await client.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", cti_port)  # plain TCP
        writer.write(b'{"v":1,"type":"req","id":"1","cmd":"hello","args":{}}\n')
        assert not (await asyncio.wait_for(reader.read(), 10.0)).startswith(b'{"v"')
        writer.close()
    finally:
        assert stop_node(node) == 0   # clean shutdown with the CTI server running
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[cti]\ncertfile = "{crt}"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "switch.cli", "run", "--data-dir", str(data), "--bind",
         "127.0.0.1", "--sip-port", str(free_port()), "--cti-port", str(free_port()),
         "--config", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "cti.certfile" in proc.stdout + proc.stderr
