"""SIP MESSAGE (RFC 3428) through a real node: sipsak sends, a SIPp phone registered as 1002
receives (its Contact points at the SIPp UAS port), and the switch relays with digest
authentication, 480 for a user who is not registered and 513 for a request too large for
UDP."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.db import Database, default_sqlite_url
from storage.repositories import UserRepository

from .conftest import SIPP_DIR, Node, free_port, require, sipp_register, start_node, stop_node

pytestmark = pytest.mark.interop

PASSWORD = "secret"


def add_users(data: Path, *names: str) -> None:
    """Create SIP users in-process (three ``softswitch user add`` runs cost seconds)."""

    async def add() -> None:
        async with Database(default_sqlite_url(data)) as db:
            await UserRepository(db).add_many([(n, PASSWORD, None) for n in names],
                                              "softswitch")

    asyncio.run(add())


@pytest.fixture
def msg_node(tmp_path: Path) -> Iterator[Node]:
    data = tmp_path / "data"
    data.mkdir()
    add_users(data, "1001", "1002", "1003")
    node = start_node(data)
    yield node
    stop_node(node)


def _register(tmp_path: Path, node: Node, user: str, port: int) -> None:
    sipp_register(tmp_path, node.sip_port, user, PASSWORD, port)


def _message_file(path: Path, node: Node, to: str, body: bytes,
                  content_type: str = "text/plain;charset=utf-8") -> Path:
    head = (f"MESSAGE sip:{to}@127.0.0.1:{node.sip_port} SIP/2.0\r\n"
            f"From: <sip:1001@softswitch>;tag=m{path.stem}\r\n"
            f"To: <sip:{to}@softswitch>\r\nCall-ID: {path.stem}@127.0.0.1\r\n"
            f"CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    path.write_bytes(head.encode() + body)
    return path


def _sipsak(node: Node, message: Path, to: str, *auth: str) -> tuple[int, str]:
    """Send ``message`` with sipsak (answering the 401 when ``auth`` holds -u/-a)."""
    sipsak = require("sipsak")
    proc = subprocess.run(
        [sipsak, "-f", str(message), "-s", f"sip:{to}@127.0.0.1:{node.sip_port}",
         "-H", "127.0.0.1", "-vv", *auth],
        capture_output=True, text=True, timeout=20)
    return proc.returncode, proc.stdout + proc.stderr


def test_message_is_relayed_to_the_registered_phone_with_auth_and_errors(
        tmp_path: Path, msg_node: Node) -> None:
    uas_port = free_port()
    _register(tmp_path, msg_node, "1002", uas_port)
    sipp = require("sipp")
    workdir = tmp_path / "uas"
    workdir.mkdir()
    uas = subprocess.Popen(
        [sipp, "-sf", str(SIPP_DIR / "uas_message.xml"), "-i", "127.0.0.1", "-p", str(uas_port),
         "-m", "2", "-nostdin", "-timeout", "30", "-timeout_error", "-trace_msg"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    creds = ("-u", "1001", "-a", PASSWORD)
    try:
        text = "你好，1002 号在吗？".encode()
        rc, out = _sipsak(msg_node, _message_file(tmp_path / "m1.txt", msg_node, "1002", text),
                          "1002", *creds)
        assert rc == 0 and "SIP/2.0 200" in out, out
        assert "authorizing" in out  # sipsak answered our 401 challenge
        data = b'{"event":"ping"}'
        rc, out = _sipsak(msg_node, _message_file(tmp_path / "m2.txt", msg_node, "1002", data,
                                                  "application/json"), "1002", *creds)
        assert rc == 0 and "SIP/2.0 200" in out, out
        # Not challenged answers: no credentials, a user not registered, too large.
        rc, out = _sipsak(msg_node, _message_file(tmp_path / "m3.txt", msg_node, "1002", text),
                          "1002")
        assert rc != 0 and "SIP/2.0 401" in out, out
        rc, out = _sipsak(msg_node, _message_file(tmp_path / "m4.txt", msg_node, "1003", text),
                          "1003", *creds)
        assert rc != 0 and "SIP/2.0 480" in out, out
        big = ("x" * 1400).encode()
        rc, out = _sipsak(msg_node, _message_file(tmp_path / "m5.txt", msg_node, "1002", big),
                          "1002", *creds)
        assert rc != 0 and "SIP/2.0 513" in out, out
    finally:
        try:
            uas_rc = uas.wait(15)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas_rc = uas.wait(5)
    assert uas_rc == 0, uas.stdout.read() if uas.stdout else ""
    received = "".join(p.read_text(encoding="utf-8", errors="replace")
                       for p in workdir.glob("*_messages.log"))
    assert received.count("MESSAGE sip:1002@127.0.0.1:") == 2, received
    assert "你好，1002 号在吗？" in received and '{"event":"ping"}' in received
    assert "From: <sip:1001@softswitch>" in received
    assert "Content-Type: text/plain;charset=utf-8" in received
    assert "Content-Type: application/json" in received
    assert "x" * 1400 not in received
