"""The node as an operator meets it: TLS and IPv6 listeners, bad input, floods, config errors."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from signaling.location import compute_ha1

from .conftest import ROOT, Node, free_port, options_ping, start_node, stop_node

pytestmark = pytest.mark.interop

TORTURE_DIRS = [ROOT.parent / "shared" / "sip-torture", Path("/work/shared/sip-torture")]


def _options(transport_host: str, port: int, proto: str = "UDP") -> bytes:
    return (
        f"OPTIONS sip:{transport_host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{proto} {transport_host}:9;rport;branch=z9hG4bK{uuid.uuid4().hex}\r\n"
        f"From: <sip:probe@{transport_host}>;tag=t1\r\nTo: <sip:{transport_host}>\r\n"
        f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def test_tls_listener_answers(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    port = free_port()
    cfg = tmp_path / "tls.toml"
    cfg.write_text(f'[sip]\ntls_cert = "{cert}"\ntls_key = "{key}"\ntls_port = {port + 1}\n')
    node = start_node(tmp_path / "data", "--config", str(cfg), port=port)
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        with socket.create_connection(("127.0.0.1", port + 1), timeout=5) as raw, \
                ctx.wrap_socket(raw) as tls:
            tls.sendall(_options("127.0.0.1", port + 1, "TLS"))
            answer = tls.recv(65536)
        assert answer.startswith(b"SIP/2.0 200"), answer
    finally:
        stop_node(node)


def test_tcp_crlf_keepalive_and_reuse(node: Node) -> None:
    with socket.create_connection(("127.0.0.1", node.sip_port), timeout=5) as s:
        s.sendall(b"\r\n\r\n")  # RFC 5626 ping -> CRLF pong
        assert s.recv(16) == b"\r\n"
        for _ in range(3):  # several requests on one connection
            s.sendall(_options("127.0.0.1", node.sip_port, "TCP"))
            assert s.recv(65536).startswith(b"SIP/2.0 200")


def test_ipv6_listener(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    log = open(data / "node.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "switch.cli", "run", "--data-dir", str(data), "--bind", "::1",
         "--sip-port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
            s.settimeout(0.5)
            answer = b""
            for _ in range(40):
                s.sendto(_options("[::1]", port), ("::1", port))
                try:
                    answer = s.recvfrom(65536)[0]
                    break
                except TimeoutError:
                    time.sleep(0.2)
        assert answer.startswith(b"SIP/2.0 200"), (data / "node.log").read_text()
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


def test_torture_messages_do_not_hurt_the_node(node: Node) -> None:
    base = next((d for d in TORTURE_DIRS if d.is_dir()), None)
    if base is None:
        pytest.skip("the RFC 4475/5118 torture messages are not beside the checkout")
    files = sorted(base.rglob("*.dat"))
    assert len(files) >= 50
    answers = 0
    bad_requests = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.05)
        for path in files:
            s.sendto(path.read_bytes()[:65000], ("127.0.0.1", node.sip_port))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                data = s.recvfrom(65536)[0]
            except TimeoutError:
                continue
            answers += 1
            bad_requests += data.startswith(b"SIP/2.0 400")
    # Responses go to the addresses in the messages' Via, not always back to us; what must
    # hold is that the node is alive and answering afterwards.
    answer = options_ping(node.sip_port)
    assert answer is not None and answer.startswith(b"SIP/2.0 200")
    assert node.proc.poll() is None
    assert "Traceback" not in node.log()


def test_oversize_and_garbage_datagrams(node: Node) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.sendto(b"OPTIONS sip:x SIP/2.0\r\n" + b"X: " + b"a" * 65000 + b"\r\n\r\n",
                 ("127.0.0.1", node.sip_port))
        for junk in (b"\x00\xff" * 100, b"SIP/2.0", b"\r\n\r\n", b"INVITE\r\n\r\n"):
            s.sendto(junk, ("127.0.0.1", node.sip_port))
    assert options_ping(node.sip_port) is not None
    assert "Traceback" not in node.log()


def test_unauthenticated_flood_is_bounded(node: Node) -> None:
    """20,000 REGISTERs without credentials, each with a new Call-ID: every one is
    challenged (or dropped), and the node's memory stays bounded."""
    before = _rss_kib(node.proc.pid)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        lport = s.getsockname()[1]
        template = (
            "REGISTER sip:127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bKf{{n}}\r\n"
            "From: <sip:mallory{n}@127.0.0.1>;tag=f{n}\r\nTo: <sip:mallory{n}@127.0.0.1>\r\n"
            "Call-ID: flood-{n}\r\nCSeq: 1 REGISTER\r\n"
            f"Contact: <sip:m@127.0.0.1:{lport}>\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        start = time.monotonic()
        for n in range(20000):
            s.sendto(template.format(n=n).encode(), ("127.0.0.1", node.sip_port))
            if n % 500 == 499:
                time.sleep(0.05)  # bounded rate: about 10,000/s at most
            if time.monotonic() - start > 60:
                break
    # The node may still be working through the backlog; it must come back to answer.
    answer = None
    deadline = time.monotonic() + 60
    while answer is None and time.monotonic() < deadline:
        answer = options_ping(node.sip_port, timeout=2)
    assert answer is not None and answer.startswith(b"SIP/2.0 200")
    grown_mib = (_rss_kib(node.proc.pid) - before) / 1024
    assert grown_mib < 150, f"RSS grew by {grown_mib:.0f} MiB"


def test_logs_and_traces_never_show_secrets(tmp_path: Path) -> None:
    data = tmp_path / "data"
    trace = tmp_path / "trace.txt"
    n = start_node(data, "--sip-trace", str(trace), "--log-level", "DEBUG")
    try:
        res = n.cli("user", "add", "dave", "--password", "Sup3rSecret!")
        assert res.returncode == 0
        assert "Sup3rSecret!" not in res.stdout + res.stderr
    finally:
        stop_node(n)
    text = n.log() + trace.read_text()
    assert "Sup3rSecret!" not in text
    assert compute_ha1("dave", "softswitch", "Sup3rSecret!") not in text


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[sip]\nport = "abc"\n')
    res = subprocess.run(
        [sys.executable, "-m", "switch.cli", "run", "--config", str(cfg), "--data-dir",
         str(tmp_path / "d")], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert res.returncode != 0
    assert "sip.port" in res.stderr + res.stdout


def test_bad_ivr_program_stops_start_up_with_its_position(tmp_path: Path) -> None:
    data = tmp_path / "d"
    (data / "ivr").mkdir(parents=True)
    (data / "ivr" / "hotline.ivr").write_text("flow:\n  bogus\n", encoding="utf-8")
    res = subprocess.run(
        [sys.executable, "-m", "switch.cli", "run", "--data-dir", str(data), "--bind",
         "127.0.0.1", "--sip-port", str(free_port())],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "hotline.ivr:1:5: error" in out
    assert "dialplan.rules" in out and "stopped" in out
