"""Fixtures that run a real softswitch node as a subprocess and real SIP peers against it.

Everything is on 127.0.0.1 with free ports; every process is stopped by its PID; every peer
run is bounded in count and time (TESTING.md rules).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIPP_DIR = Path(__file__).resolve().parent / "sipp"


def free_port(kind: int = socket.SOCK_DGRAM, also_tcp: bool = True) -> int:
    """A port free for UDP (and TCP) on 127.0.0.1, and port+1 too (TLS/RTCP neighbours)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port > 65000:
            continue
        try:
            checks = [(socket.SOCK_DGRAM, port), (socket.SOCK_DGRAM, port + 1)]
            if also_tcp:
                checks += [(socket.SOCK_STREAM, port), (socket.SOCK_STREAM, port + 1)]
            for k, p in checks:
                with socket.socket(socket.AF_INET, k) as s:
                    s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port found")


def options_ping(port: int, timeout: float = 0.5) -> bytes | None:
    """One OPTIONS over UDP; the raw answer or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        lport = s.getsockname()[1]
        branch = "z9hG4bK" + uuid.uuid4().hex
        msg = (
            f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch={branch}\r\n"
            f"From: <sip:probe@127.0.0.1:{lport}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <sip:127.0.0.1:{port}>\r\n"
            f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        s.sendto(msg, ("127.0.0.1", port))
        try:
            data, _ = s.recvfrom(65536)
            return data
        except TimeoutError:
            return None


@dataclass
class Node:
    """A running softswitch process."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    sip_port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(self.data_dir, *args)


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switch.cli", *args, "--data-dir", str(data_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )


def start_node(data_dir: Path, *extra: str, port: int | None = None) -> Node:
    port = port or free_port()
    log_path = data_dir / "node.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    logf = open(log_path, "wb")  # noqa: SIM115 - closed with the node
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "switch.cli", "run", "--data-dir", str(data_dir),
            "--bind", "127.0.0.1", "--sip-port", str(port), "--log-level", "INFO", *extra,
        ],
        cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"node exited with {proc.returncode}:\n{log_path.read_text()}")
        answer = options_ping(port)
        if answer and answer.startswith(b"SIP/2.0 200"):
            return Node(proc, data_dir, port, log_path)
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"node did not answer OPTIONS in 30 s:\n{log_path.read_text()}")


def stop_node(node: Node) -> int:
    if node.proc.poll() is None:
        node.proc.send_signal(signal.SIGTERM)
        try:
            node.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait(timeout=5)
    return node.proc.returncode


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    data = tmp_path / "data"
    data.mkdir()
    for user, pw in (("alice", "secret"), ("bob", "secret"), ("carol", "secret")):
        res = run_cli(data, "user", "add", user, "--password", pw)
        assert res.returncode == 0, res.stderr
    n = start_node(data)
    yield n
    stop_node(n)


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("SOFTSWITCH_REQUIRE_PEERS") == "1":
            pytest.fail(f"{tool} is required here but not installed")
        pytest.skip(f"{tool} is not installed (scripts/dev.sh test installs it)")
    return path


def sipp_register(tmp_path: Path, sip_port: int, user: str, password: str, port: int) -> None:
    """Register ``user`` (digest) with its Contact on ``port``, where a SIPp UAS will listen:
    the registrar then sends that extension's calls to the UAS."""
    sipp = require("sipp")
    csv = tmp_path / f"reg_{user}_{port}.csv"
    csv.write_text(f"SEQUENTIAL\n{user};[authentication username={user} "
                   f"password={password}]\n")
    proc = subprocess.run(
        [sipp, "-sf", str(SIPP_DIR / "register_auth.xml"), f"127.0.0.1:{sip_port}",
         "-i", "127.0.0.1", "-p", str(port), "-inf", str(csv), "-m", "1", "-nostdin",
         "-timeout", "10", "-timeout_error"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
