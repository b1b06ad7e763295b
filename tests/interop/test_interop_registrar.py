"""The registrar against real SIP peers on loopback: SIPp, sipsak, pyVoIP and baresip."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .conftest import SIPP_DIR, Node, free_port, options_ping, require, start_node, stop_node
from .peers import Baresip, pyvoip_register

pytestmark = pytest.mark.interop


def _sipp(tmp_path: Path, node: Node, scenario: str, *args: str, calls: int = 3,
          transport: str = "u1") -> tuple[int, str]:
    sipp = require("sipp")
    cmd = [
        sipp, "-sf", str(SIPP_DIR / scenario), f"127.0.0.1:{node.sip_port}",
        "-i", "127.0.0.1", "-p", str(free_port()), "-t", transport,
        "-m", str(calls), "-r", "10", "-nostdin", "-timeout", "20", "-timeout_error",
        "-trace_screen", "-trace_err", *args,
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=40)
    screens = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*_screen.log"))
    for p in tmp_path.glob("*_screen.log"):
        p.unlink()
    return proc.returncode, screens + proc.stdout + proc.stderr


def _users_csv(tmp_path: Path, password: str) -> Path:
    path = tmp_path / f"users_{password}.csv"
    lines = ["SEQUENTIAL"] + [
        f"{u};[authentication username={u} password={password}]" for u in ("alice", "bob", "carol")
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _register(tmp_path: Path, node: Node, transport: str = "u1") -> tuple[int, str]:
    csv = _users_csv(tmp_path, "secret")
    return _sipp(tmp_path, node, "register_auth.xml", "-inf", str(csv), transport=transport)


def _successful(screen: str) -> int:
    m = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", screen)
    return int(m.group(1)) if m else -1


def test_sipp_register_with_digest(tmp_path: Path, node: Node) -> None:
    rc, out = _register(tmp_path, node)
    assert rc == 0, out
    assert _successful(out) == 3


def test_sipp_register_wrong_password_fails(tmp_path: Path, node: Node) -> None:
    rc, out = _sipp(tmp_path, node, "register_auth.xml", "-inf", str(_users_csv(tmp_path, "nope")),
                    calls=1)
    assert rc == 1, out
    assert "wrong response" in node.log()


def test_sipp_register_over_tcp(tmp_path: Path, node: Node) -> None:
    rc, out = _register(tmp_path, node, transport="t1")
    assert rc == 0, out


def test_sipp_options(tmp_path: Path, node: Node) -> None:
    rc, out = _sipp(tmp_path, node, "options.xml", calls=5)
    assert rc == 0, out


def test_sipsak_options_and_register(node: Node) -> None:
    sipsak = require("sipsak")
    target = f"sip:127.0.0.1:{node.sip_port}"
    ping = subprocess.run([sipsak, "-s", target, "-H", "127.0.0.1"], capture_output=True,
                          text=True, timeout=30)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    contact = f"sip:alice@127.0.0.1:{free_port()}"
    aor = f"sip:alice@127.0.0.1:{node.sip_port}"
    good = subprocess.run([sipsak, "-U", "-C", contact, "-s", aor, "-u", "alice", "-a", "secret",
                           "-H", "127.0.0.1", "-i", "-x", "300"],
                          capture_output=True, text=True, timeout=30)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = subprocess.run([sipsak, "-U", "-C", contact, "-s", aor, "-u", "alice", "-a", "wrong",
                          "-H", "127.0.0.1", "-i", "-x", "300"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0


def test_pyvoip_phone_registers(node: Node) -> None:
    pytest.importorskip("pyVoIP")
    rc, out = pyvoip_register(node.sip_port, "bob", "secret")
    assert rc == 0, out
    assert "STATUS REGISTERED" in out


def test_baresip_registers(tmp_path: Path, node: Node) -> None:
    require("baresip")
    ua = Baresip(tmp_path / "baresip", "carol", "secret", f"127.0.0.1:{node.sip_port}")
    try:
        assert ua.registered(timeout=15), (tmp_path / "baresip" / "baresip.log").read_text()
    finally:
        ua.stop()


def test_bindings_survive_restart(tmp_path: Path, node: Node) -> None:
    rc, out = _register(tmp_path, node)
    assert rc == 0, out
    assert stop_node(node) == 0
    assert "stopped" in node.log()
    again = start_node(node.data_dir, port=node.sip_port)
    try:
        log = again.log()
        m = re.findall(r"restored (\d+) registration bindings", log)
        assert m and int(m[-1]) == 3, log
    finally:
        stop_node(again)


def test_sip_trace_records_messages(tmp_path: Path) -> None:
    data = tmp_path / "data"
    trace = tmp_path / "sip.trace"
    n = start_node(data, "--sip-trace", str(trace))
    try:
        assert options_ping(n.sip_port) is not None
    finally:
        stop_node(n)
    text = trace.read_text()
    assert re.search(r"\bin udp 127\.0\.0\.1:\d+ <- 127\.0\.0\.1:\d+", text), text[:500]
    assert "OPTIONS sip:" in text and "SIP/2.0 200 OK" in text
