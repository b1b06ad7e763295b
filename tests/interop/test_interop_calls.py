"""Calls through the node's B2BUA with real phones: baresip and SIPp on loopback.

Each test starts its own node (free ports, its own data dir), registers the phones with
digest, places bounded calls, stops everything by PID, and then reads the CDRs the node
wrote to its SQLite database at shutdown.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import subprocess
import time
import uuid
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from .conftest import (
    SIPP_DIR,
    Node,
    free_port,
    require,
    run_cli,
    sipp_register,
    start_node,
    stop_node,
)
from .peers import Baresip

pytestmark = pytest.mark.interop

PASSWORD = "secret"


@pytest.fixture
def call_node(tmp_path: Path) -> Iterator[Node]:
    data = tmp_path / "data"
    data.mkdir()
    for user in ("1001", "1002", "1003"):
        res = run_cli(data, "user", "add", user, "--password", PASSWORD)
        assert res.returncode == 0, res.stderr
    cfg = tmp_path / "calls.toml"
    # Voicemail off: these tests check the switch's own 486/480 (test_interop_voicemail
    # covers busy/no-answer going to a mailbox).
    cfg.write_text("[calls]\nno_answer_timeout_s = 10\n\n[voicemail]\nenabled = false\n")
    node = start_node(data, "--config", str(cfg))
    yield node
    stop_node(node)


def _cdrs(node: Node) -> list[sqlite3.Row]:
    """The CDR rows; call after stop_node (the writer flushes at shutdown)."""
    assert node.proc.poll() is not None, "stop the node first"
    with sqlite3.connect(node.data_dir / "softswitch.db") as db:
        db.row_factory = sqlite3.Row
        return list(db.execute("SELECT * FROM cdrs ORDER BY id"))


def _legs(node: Node, cdr_id: int) -> list[sqlite3.Row]:
    with sqlite3.connect(node.data_dir / "softswitch.db") as db:
        db.row_factory = sqlite3.Row
        return list(db.execute("SELECT * FROM cdr_legs WHERE cdr_id = ? ORDER BY id",
                               (cdr_id,)))


# ---- baresip: audio both ways, RFC 4733 digits, BYE, CDR ---------------------------------------


def _tone_wav(path: Path, freq_hz: float, seconds: float = 30.0) -> Path:
    t = np.arange(int(seconds * 8000)) / 8000.0
    pcm = (8000 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    return path


def _dominant_hz(path: Path) -> tuple[float, float]:
    """(peak frequency, RMS) of the second half of a recording (after any ringback)."""
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64)
        pcm = pcm[:: w.getnchannels()]
        rate = w.getframerate()
    tail = pcm[len(pcm) // 2 :]
    assert len(tail) > rate // 2, f"{path} holds only {len(pcm) / rate:.2f} s"
    spectrum = np.abs(np.fft.rfft(tail * np.hanning(len(tail))))
    freqs = np.fft.rfftfreq(len(tail), 1.0 / rate)
    return float(freqs[int(spectrum.argmax())]), float(np.sqrt(np.mean(tail**2)))


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _baresip_call(tmp_path: Path, node: Node, codecs_a: str, codecs_b: str) -> None:
    """1001 (440 Hz, ``codecs_a``) calls 1002 (1000 Hz, ``codecs_b``, auto-answer), sends
    the digit 7 as RFC 4733 and hangs up; recordings land in rec_a / rec_b."""
    require("baresip")
    registrar = f"127.0.0.1:{node.sip_port}"
    a = b = None
    try:
        a = Baresip(tmp_path / "a", "1001", PASSWORD, registrar, codecs=codecs_a,
                    wav=_tone_wav(tmp_path / "a.wav", 440.0), rec_dir=tmp_path / "rec_a")
        b = Baresip(tmp_path / "b", "1002", PASSWORD, registrar, codecs=codecs_b,
                    wav=_tone_wav(tmp_path / "b.wav", 1000.0), rec_dir=tmp_path / "rec_b")
        assert a.registered() and b.registered()
        a.command("dial", f"sip:1002@127.0.0.1:{node.sip_port}")
        assert _wait(lambda: "ESTABLISHED" in a.command("listcalls").get("data", ""), 10)
        time.sleep(1.5)
        a.command("sndcode", "7")
        time.sleep(1.5)
        a.command("hangup")
        assert _wait(lambda: "ended: normal_clearing (caller)" in node.log(), 5)
    finally:
        for phone in (a, b):
            if phone is not None:
                phone.stop()
        stop_node(node)


def _heard(tmp_path: Path, side: str) -> tuple[float, float]:
    return _dominant_hz(next((tmp_path / f"rec_{side}").glob("*-dec.wav")))


@pytest.mark.slow
def test_baresip_call_audio_digits_and_cdr(tmp_path: Path, call_node: Node) -> None:
    _baresip_call(tmp_path, call_node, "pcmu,pcma", "pcmu,pcma")
    log = call_node.log()
    assert re.search(r"digit 7 on sip/1001-\d+ \(rfc4733\)", log), log[-3000:]
    # What each phone received: the other phone's tone, through both media legs.
    heard_by_a, heard_by_b = _heard(tmp_path, "a"), _heard(tmp_path, "b")
    assert abs(heard_by_a[0] - 1000.0) < 15 and heard_by_a[1] > 1000, heard_by_a
    assert abs(heard_by_b[0] - 440.0) < 15 and heard_by_b[1] > 1000, heard_by_b
    (cdr,) = _cdrs(call_node)
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("1001", "1002", "answered")
    assert (cdr["hangup_side"], cdr["hangup_cause"]) == ("caller", "normal_clearing")
    assert cdr["route"] == "extensions" and cdr["target"] == "extension:1002"
    assert cdr["start_at"] <= cdr["answer_at"] <= cdr["end_at"]
    assert 2.0 < cdr["billsec"] < 15.0 and cdr["duration_s"] >= cdr["billsec"]
    legs = _legs(call_node, cdr["id"])
    assert {leg["role"] for leg in legs} == {"caller", "callee"}
    assert all(leg["packets_received"] > 50 for leg in legs), [dict(x) for x in legs]


@pytest.mark.slow
def test_baresip_pcma_caller_to_pcmu_callee_is_transcoded(tmp_path: Path,
                                                          call_node: Node) -> None:
    """The callee answers the other law: the switch re-INVITEs it with PCMU alone and the
    engine transcodes A-law <-> mu-law; both tones still arrive."""
    _baresip_call(tmp_path, call_node, "pcma", "pcmu")
    heard_by_a, heard_by_b = _heard(tmp_path, "a"), _heard(tmp_path, "b")
    assert abs(heard_by_a[0] - 1000.0) < 15 and heard_by_a[1] > 1000, heard_by_a
    assert abs(heard_by_b[0] - 440.0) < 15 and heard_by_b[1] > 1000, heard_by_b
    (cdr,) = _cdrs(call_node)
    assert cdr["disposition"] == "answered"
    codecs = {leg["role"]: leg["codec"] for leg in _legs(call_node, cdr["id"])}
    assert codecs == {"caller": "PCMA", "callee": "PCMU"}


@pytest.mark.slow
def test_node_shutdown_hangs_up_calls_and_writes_their_cdr(tmp_path: Path,
                                                           call_node: Node) -> None:
    require("baresip")
    registrar = f"127.0.0.1:{call_node.sip_port}"
    a = b = None
    try:
        a = Baresip(tmp_path / "a", "1001", PASSWORD, registrar,
                    wav=_tone_wav(tmp_path / "a.wav", 440.0))
        b = Baresip(tmp_path / "b", "1002", PASSWORD, registrar,
                    wav=_tone_wav(tmp_path / "b.wav", 1000.0))
        assert a.registered() and b.registered()
        a.command("dial", f"sip:1002@127.0.0.1:{call_node.sip_port}")
        assert _wait(lambda: "ESTABLISHED" in a.command("listcalls").get("data", ""), 10)
        assert stop_node(call_node) == 0  # SIGTERM: graceful
        assert _wait(lambda: "Active calls (0)" in a.command("listcalls").get("data", ""), 5)
        assert _wait(lambda: "Active calls (0)" in b.command("listcalls").get("data", ""), 5)
    finally:
        for phone in (a, b):
            if phone is not None:
                phone.stop(kill=True)  # no registrar left to de-register from
    (cdr,) = _cdrs(call_node)
    assert (cdr["disposition"], cdr["hangup_cause"], cdr["hangup_side"]) == (
        "answered", "shutdown", "system")


# ---- SIPp: authenticated UAC -> B2BUA -> registered UAS -----------------------------------------


def _csv(tmp_path: Path, user: str, dial: str) -> Path:
    path = tmp_path / f"uac_{user}_{dial}.csv"
    path.write_text(f"SEQUENTIAL\n{user};[authentication username={user} "
                    f"password={PASSWORD}];{dial}\n")
    return path


def _sipp_register(tmp_path: Path, node: Node, user: str, port: int) -> None:
    sipp_register(tmp_path, node.sip_port, user, PASSWORD, port)


def _start_uas(tmp_path: Path, scenario: str, port: int, calls: int) -> subprocess.Popen[str]:
    sipp = require("sipp")
    workdir = tmp_path / "uas"
    workdir.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sipp, "-sf", str(SIPP_DIR / scenario), "-i", "127.0.0.1", "-p", str(port),
         "-mp", str(free_port()), "-m", str(calls), "-nostdin", "-timeout", "30",
         "-timeout_error", "-trace_screen", "-trace_err"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run_uac(tmp_path: Path, node: Node, scenario: str, user: str, dial: str, calls: int,
             *extra: str) -> tuple[int, str]:
    """SIPp as the calling phone. Its digest ``uri`` is by default remote_ip:port;
    ``-auth_uri`` makes it the Request-URI, which our authenticator checks
    (RFC 2617 §3.2.2.5)."""
    sipp = require("sipp")
    csv = _csv(tmp_path, user, dial)
    workdir = tmp_path / "uac"
    workdir.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sipp, "-sf", str(SIPP_DIR / scenario), f"127.0.0.1:{node.sip_port}",
         "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()),
         "-inf", str(csv), "-auth_uri", f"{dial}@127.0.0.1:{node.sip_port}",
         "-m", str(calls), "-r", "5", "-l", "3", "-nostdin",
         "-timeout", "30", "-timeout_error", "-default_behaviors", "all,-abortunexp",
         "-trace_screen", "-trace_err", *extra],
        cwd=workdir, capture_output=True, text=True, timeout=60)
    screens = "".join(p.read_text(errors="replace") for p in workdir.glob("*_screen.log"))
    errors = "".join(p.read_text(errors="replace")[-3000:] for p in workdir.glob("*_errors.log"))
    return proc.returncode, screens + errors + proc.stdout + proc.stderr


def _stop(proc: subprocess.Popen[str], timeout: float = 15.0) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return -9


def _successful(screen: str) -> int:
    found = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", screen)
    return int(found.group(1)) if found else -1


@pytest.mark.slow
def test_sipp_calls_through_the_b2bua(tmp_path: Path, call_node: Node) -> None:
    calls = 5
    uas_port = free_port()
    _sipp_register(tmp_path, call_node, "1002", uas_port)
    uas = _start_uas(tmp_path, "uas_b2bua.xml", uas_port, calls)
    try:
        rc, out = _run_uac(tmp_path, call_node, "uac_b2bua.xml", "1001", "1002",
                           calls, "-d", "500")
    finally:
        uas_rc = _stop(uas)
    assert rc == 0, out
    assert _successful(out) == calls, out
    assert uas_rc == 0, uas.stdout.read() if uas.stdout else ""
    stop_node(call_node)
    cdrs = _cdrs(call_node)
    assert [c["disposition"] for c in cdrs] == ["answered"] * calls
    assert all(c["hangup_side"] == "caller" and c["billsec"] > 0.3 for c in cdrs)


@pytest.mark.slow
def test_busy_callee_gives_486_and_a_busy_cdr(tmp_path: Path, call_node: Node) -> None:
    uas_port = free_port()
    _sipp_register(tmp_path, call_node, "1002", uas_port)
    uas = _start_uas(tmp_path, "uas_b2bua_busy.xml", uas_port, 2)
    try:
        rc, out = _run_uac(tmp_path, call_node, "uac_b2bua_fail.xml",
                           "1001", "1002", 2)
    finally:
        _stop(uas)
    assert rc == 0, out
    stop_node(call_node)
    cdrs = _cdrs(call_node)
    assert [(c["disposition"], c["sip_status"], c["hangup_cause"]) for c in cdrs] == [
        ("busy", 486, "user_busy")] * 2


@pytest.mark.slow
def test_caller_cancel_gives_487_and_a_cancelled_cdr(tmp_path: Path, call_node: Node) -> None:
    uas_port = free_port()
    _sipp_register(tmp_path, call_node, "1002", uas_port)
    uas = _start_uas(tmp_path, "uas_b2bua_ring.xml", uas_port, 2)
    try:
        rc, out = _run_uac(tmp_path, call_node, "uac_b2bua_cancel.xml",
                           "1001", "1002", 2)
    finally:
        uas_rc = _stop(uas)
    assert rc == 0, out
    assert uas_rc == 0, "the callee did not see the CANCEL of each fork"
    stop_node(call_node)
    cdrs = _cdrs(call_node)
    assert [(c["disposition"], c["sip_status"], c["hangup_side"]) for c in cdrs] == [
        ("cancelled", 487, "caller")] * 2


def test_unregistered_extension_gives_480(tmp_path: Path, call_node: Node) -> None:
    rc, out = _run_uac(tmp_path, call_node, "uac_b2bua_fail.xml",
                       "1001", "1003", 1)
    assert rc == 0, out
    stop_node(call_node)
    (cdr,) = _cdrs(call_node)
    assert (cdr["disposition"], cdr["sip_status"], cdr["callee"]) == ("no_answer", 480, "1003")
    assert cdr["hangup_cause"] == "subscriber_absent"


def _raw_invite(port: int, node_port: int) -> bytes:
    call_id = uuid.uuid4().hex
    sdp = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    head = (
        f"INVITE sip:1002@127.0.0.1:{node_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
        f"From: <sip:1001@127.0.0.1>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:1002@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:1001@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n"
    )
    return head.encode() + sdp


def test_unauthenticated_invite_is_challenged_and_never_routed(call_node: Node) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(3)
        s.sendto(_raw_invite(s.getsockname()[1], call_node.sip_port),
                 ("127.0.0.1", call_node.sip_port))
        answer = b""
        while not answer.startswith(b"SIP/2.0 407"):
            answer, _ = s.recvfrom(65536)
            assert not answer.startswith(b"SIP/2.0 1") or answer.startswith(b"SIP/2.0 100")
    assert b"Proxy-Authenticate: Digest" in answer
    time.sleep(0.3)
    stop_node(call_node)
    assert not re.search(r"call \w+ from ", call_node.log())  # the dial plan never saw it
    assert _cdrs(call_node) == []
