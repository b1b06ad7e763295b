"""Hold with music, blind and attended transfer through a real node, with SIPp phones.

SIPp does the signalling (REFER, NOTIFY, re-INVITE, BYE: its scenarios check the 202, the
sipfrag bodies and the 488); the media of each phone is an RTP socket owned by the test
(``RtpPeer``): it sends its own tone and records what the switch sends it, so the test
can say who heard what, window by window (the other party's tone, music on hold,
ringback). Everything runs on 127.0.0.1 with free ports, bounded in time; processes are
stopped by PID. CDRs are read from the node's SQLite database after it stopped.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import struct
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

from dsp.g711 import ulaw_decode, ulaw_encode
from switch.moh import MOH_NOTES_HZ

from .conftest import SIPP_DIR, Node, free_port, require, sipp_register, start_node, stop_node
from .peers import Baresip

pytestmark = pytest.mark.interop

WINDOW_S = 0.2


class RtpPeer:
    """A phone's media: sends a PCMU tone every 20 ms to where the switch's RTP comes
    from (symmetric RTP), and keeps every PCMU payload received with its arrival time."""

    def __init__(self, freq_hz: float, max_s: float = 40.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.005)
        self.port = self.sock.getsockname()[1]
        t = np.arange(8000) / 8000.0
        self.tone = ulaw_encode((6000 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16))
        self.received: list[tuple[float, bytes]] = []
        self.t0 = time.monotonic()
        self._max_s = max_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        remote = None
        seq = ts = 0
        next_send = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - self.t0 < self._max_s:
            now = time.monotonic()
            if remote is not None and now >= next_send:
                start = (ts % 8000)
                chunk = np.take(self.tone, np.arange(start, start + 160), mode="wrap")
                header = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, 0x5EED)
                self.sock.sendto(header + chunk.tobytes(), remote)
                seq, ts = seq + 1, ts + 160
                next_send += 0.02
            try:
                data, source = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            if len(data) < 12 or data[1] & 0x7F != 0:
                continue  # not PCMU (RFC 4733 events, comfort noise)
            if remote is None:
                remote, next_send = source, time.monotonic()
            cc = data[0] & 0x0F
            self.received.append((time.monotonic() - self.t0, data[12 + 4 * cc:]))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def labels(self, named: dict[str, float]) -> list[str]:
        """What was heard in each ``WINDOW_S`` window: a name from ``named`` (a tone of
        that frequency), "moh", "ringback", "silence" or "other"."""
        out: list[str] = []
        if not self.received:
            return out
        end = self.received[-1][0]
        t = self.received[0][0]
        while t < end:
            payload = b"".join(p for at, p in self.received if t <= at < t + WINDOW_S)
            t += WINDOW_S
            if len(payload) < 800:
                continue
            pcm = ulaw_decode(np.frombuffer(payload, np.uint8)).astype(np.float64)
            out.append(_classify(pcm, named))
        return out


def _classify(pcm: np.ndarray, named: dict[str, float]) -> str:
    rms = float(np.sqrt(np.mean(pcm**2)))
    if rms < 100:
        return "silence"
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    freqs = np.fft.rfftfreq(len(pcm), 1 / 8000)
    peak = float(freqs[int(spectrum.argmax())])
    for name, freq in named.items():
        if abs(peak - freq) < 15:
            return name
    if min(abs(peak - f) for f in MOH_NOTES_HZ) < 8:
        return "moh"
    if 400 <= peak <= 500:
        return "ringback"
    return "other"


def _runs(labels: list[str]) -> list[tuple[str, int]]:
    """Run-length encoding, with single odd windows (a boundary) dropped."""
    runs: list[tuple[str, int]] = []
    for label in labels:
        if runs and runs[-1][0] == label:
            runs[-1] = (label, runs[-1][1] + 1)
        else:
            runs.append((label, 1))
    runs = [r for r in runs if r[1] > 1]
    merged: list[tuple[str, int]] = []
    for label, n in runs:
        if merged and merged[-1][0] == label:
            merged[-1] = (label, merged[-1][1] + n)
        else:
            merged.append((label, n))
    return merged


def _order(runs: list[tuple[str, int]], wanted: list[str]) -> bool:
    """``wanted`` appears in ``runs`` in that order (other runs may come between)."""
    names = iter(name for name, _ in runs)
    return all(any(name == w for name in names) for w in wanted)


# ---- node and SIPp plumbing ----------------------------------------------------------------


@pytest.fixture
def xfer_node(tmp_path: Path) -> Iterator[Node]:
    """A node with its demo users (1001-1010, passwords printed once at first start: read
    from its output, which saves a CLI process per user)."""
    data = tmp_path / "data"
    data.mkdir()
    cfg = tmp_path / "calls.toml"
    cfg.write_text("[calls]\nno_answer_timeout_s = 10\n")
    node = start_node(data, "--config", str(cfg))
    yield node
    stop_node(node)


def _password(node: Node, user: str) -> str:
    found = re.search(rf"^  {user}   (\S+)$", node.log(), re.MULTILINE)
    assert found is not None, "the node did not print its demo users"
    return found.group(1)


def _register(tmp_path: Path, node: Node, user: str, port: int) -> None:
    sipp_register(tmp_path, node.sip_port, user, _password(node, user), port)


_STARTED: list[subprocess.Popen[str]] = []
"""SIPp processes of the running test (stopped by PID at teardown if still running)."""


@pytest.fixture(autouse=True)
def _stop_leftover_sipps() -> Iterator[None]:
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)


def _sipp(tmp_path: Path, name: str, scenario: str, port: int, *args: str
          ) -> subprocess.Popen[str]:
    sipp = require("sipp")
    workdir = tmp_path / name
    workdir.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sipp, "-sf", str(SIPP_DIR / scenario), "-i", "127.0.0.1", "-p", str(port),
         "-mp", str(free_port()), "-m", "1", "-nostdin", "-timeout", "30", "-timeout_error",
         "-trace_err", "-trace_msg", *args],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _STARTED.append(proc)
    return proc


def _uac(tmp_path: Path, node: Node, name: str, scenario: str, user: str, dial: str,
         rtp: RtpPeer, *keys: str) -> subprocess.Popen[str]:
    csv = tmp_path / f"{name}.csv"
    csv.write_text(f"SEQUENTIAL\n{user};[authentication username={user} "
                   f"password={_password(node, user)}];{dial}\n")
    return _sipp(tmp_path, name, scenario, free_port(), f"127.0.0.1:{node.sip_port}",
                 "-inf", str(csv), "-auth_uri", f"{dial}@127.0.0.1:{node.sip_port}",
                 "-default_behaviors", "all,-abortunexp", "-key", "rtp_port", str(rtp.port),
                 *keys)


def _uas(tmp_path: Path, node: Node, name: str, scenario: str, user: str,
         rtp: RtpPeer) -> subprocess.Popen[str]:
    port = free_port()
    _register(tmp_path, node, user, port)
    proc = _sipp(tmp_path, name, scenario, port, "-key", "rtp_port", str(rtp.port))
    deadline = time.monotonic() + 10  # calls must not reach the port before SIPp binds it
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return proc
        time.sleep(0.05)
    raise AssertionError(f"SIPp {name} did not bind port {port}")


def _finish(proc: subprocess.Popen[str], tmp_path: Path, name: str, timeout: float = 30.0
            ) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=5)
    errors = "".join(p.read_text(errors="replace")[-3000:]
                     for p in (tmp_path / name).glob("*_errors.log"))
    return proc.returncode, f"{name}: {out[-2000:]}\n{errors}"


def _cdrs(node: Node) -> list[sqlite3.Row]:
    assert node.proc.poll() is not None, "stop the node first"
    with sqlite3.connect(node.data_dir / "softswitch.db") as db:
        db.row_factory = sqlite3.Row
        return list(db.execute("SELECT * FROM cdrs ORDER BY id"))


# ---- tests -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_hold_plays_music_to_the_held_party_and_bad_sdp_keeps_the_call(
        tmp_path: Path, xfer_node: Node) -> None:
    """1001 (SIPp) calls 1002 (SIPp), holds 2.5 s, resumes, sends a broken re-INVITE (488:
    the scenario requires it) and hangs up 1 s later: 1002 hears 1001's tone, then the
    music, then 1001's tone again."""
    rtp_a, rtp_b = RtpPeer(2500.0), RtpPeer(1300.0)
    procs: list[tuple[subprocess.Popen[str], str]] = []
    try:
        procs.append((_uas(tmp_path, xfer_node, "b", "uas_hold.xml", "1002", rtp_b), "b"))
        procs.append((_uac(tmp_path, xfer_node, "a", "uac_hold.xml", "1001", "1002",
                           rtp_a), "a"))
        results = [_finish(p, tmp_path, name) for p, name in reversed(procs)]
    finally:
        for rtp in (rtp_a, rtp_b):
            rtp.stop()
    for rc, out in results:
        assert rc == 0, out
    heard_by_b = _runs(rtp_b.labels({"a": 2500.0}))
    assert _order(heard_by_b, ["a", "moh", "a"]), heard_by_b
    assert sum(n for name, n in heard_by_b if name == "moh") * WINDOW_S >= 1.6, heard_by_b
    log = xfer_node.log()
    assert "music on hold started" in log and "music on hold stopped" in log
    assert "re-INVITE refused, call kept" in log
    stop_node(xfer_node)
    (cdr,) = _cdrs(xfer_node)
    assert (cdr["disposition"], cdr["hangup_side"], cdr["hangup_cause"]) == (
        "answered", "caller", "normal_clearing")
    assert cdr["billsec"] > 5.5  # the call outlived the hold and the refused re-INVITE


@pytest.mark.slow
def test_blind_transfer_with_refer(tmp_path: Path, xfer_node: Node) -> None:
    """1001 calls 1002 and REFERs it to 1003 (RFC 5589 §6): 202, NOTIFY 100 and 200, BYE
    to 1001; 1002 hears 1001, then ringback while 1003 rings, then 1003; 1003 hangs up."""
    rtp_a, rtp_b, rtp_c = RtpPeer(2900.0), RtpPeer(2500.0), RtpPeer(1300.0)
    try:
        b = _uas(tmp_path, xfer_node, "b", "uas_hold.xml", "1002", rtp_b)
        c = _uas(tmp_path, xfer_node, "c", "uas_refer_target.xml", "1003", rtp_c)
        a = _uac(tmp_path, xfer_node, "a", "uac_refer_blind.xml", "1001", "1002", rtp_a,
                 "-key", "refer_to", "1003")
        results = [_finish(p, tmp_path, name) for p, name in ((a, "a"), (c, "c"), (b, "b"))]
    finally:
        for rtp in (rtp_a, rtp_b, rtp_c):
            rtp.stop()
    for rc, out in results:
        assert rc == 0, out
    heard_by_b = _runs(rtp_b.labels({"a": 2900.0, "c": 1300.0}))
    assert _order(heard_by_b, ["a", "ringback", "c"]), heard_by_b
    heard_by_c = _runs(rtp_c.labels({"b": 2500.0}))
    assert _order(heard_by_c, ["b"]), heard_by_c
    stop_node(xfer_node)
    first, second = _cdrs(xfer_node)
    assert (first["caller"], first["callee"], first["disposition"]) == (
        "1001", "1002", "answered")
    assert (first["hangup_cause"], first["hangup_side"]) == ("transferred", "caller")
    assert json.loads(first["tags"]) == {"transferred_to": "1003", "transfer_mode": "blind"}
    assert (second["caller"], second["callee"], second["source"], second["disposition"]) == (
        "1002", "1003", "transfer", "answered")
    assert second["hangup_side"] == "callee"


def _dialog_of(workdir: Path) -> tuple[str, str, str]:
    """(Call-ID, our From tag, the switch's To tag) of the first 200 OK to an INVITE in
    a SIPp message log."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for log in workdir.glob("*_messages.log"):
            text = log.read_text(errors="replace")
            for block in re.split(r"\n(?=-{5,})", text):
                if "SIP/2.0 200" in block and re.search(r"CSeq:\s*2 INVITE", block):
                    call_id = re.search(r"Call-ID:\s*(\S+)", block)
                    from_tag = re.search(r"From:.*;tag=([^;\s>]+)", block)
                    to_tag = re.search(r"To:.*;tag=([^;\s>]+)", block)
                    if call_id and from_tag and to_tag:
                        return call_id.group(1), from_tag.group(1), to_tag.group(1)
        time.sleep(0.2)
    raise AssertionError(f"no 200 OK in the SIPp message log of {workdir}")


@pytest.mark.slow
def test_attended_transfer_with_refer_replaces(tmp_path: Path, xfer_node: Node) -> None:
    """1002 calls 1001 and holds it (1001 hears music), calls 1003, then REFERs 1003's
    dialog with Replaces naming the first (RFC 5589 §7): 1001 and 1003 are joined, both
    of 1002's dialogs get BYE and 1002 NOTIFY 200."""
    rtp_t1, rtp_t2 = RtpPeer(2900.0), RtpPeer(3100.0)
    rtp_a, rtp_c = RtpPeer(2500.0), RtpPeer(1300.0)
    try:
        a = _uas(tmp_path, xfer_node, "a", "uas_hold.xml", "1001", rtp_a)
        c = _uas(tmp_path, xfer_node, "c", "uas_refer_target.xml", "1003", rtp_c)
        t1 = _uac(tmp_path, xfer_node, "t1", "uac_hold_wait.xml", "1002", "1001", rtp_t1)
        call_id, from_tag, to_tag = _dialog_of(tmp_path / "t1")
        replaces = quote(f"{call_id};to-tag={to_tag};from-tag={from_tag}", safe="")
        t2 = _uac(tmp_path, xfer_node, "t2", "uac_refer_attended.xml", "1002", "1003",
                  rtp_t2, "-key", "refer_to", "1001", "-key", "replaces", replaces)
        results = [_finish(p, tmp_path, name)
                   for p, name in ((t2, "t2"), (t1, "t1"), (c, "c"), (a, "a"))]
    finally:
        for rtp in (rtp_t1, rtp_t2, rtp_a, rtp_c):
            rtp.stop()
    for rc, out in results:
        assert rc == 0, out
    heard_by_a = _runs(rtp_a.labels({"t1": 2900.0, "c": 1300.0}))
    assert _order(heard_by_a, ["t1", "moh", "c"]), heard_by_a
    heard_by_c = _runs(rtp_c.labels({"t2": 3100.0, "a": 2500.0}))
    assert _order(heard_by_c, ["t2", "a"]), heard_by_c
    stop_node(xfer_node)
    first, second, joined = _cdrs(xfer_node)
    assert {(r["caller"], r["callee"]) for r in (first, second)} == {("1002", "1001"),
                                                                     ("1002", "1003")}
    for row in (first, second):
        assert (row["hangup_cause"], row["hangup_side"]) == ("transferred", "caller")
        assert json.loads(row["tags"])["transfer_mode"] == "attended"
    assert (joined["source"], joined["disposition"], joined["hangup_side"]) == (
        "transfer", "answered", "caller")
    assert {joined["caller"], joined["callee"]} == {"1001", "1003"}


@pytest.mark.slow
def test_invite_with_replaces_picks_up_a_held_call(tmp_path: Path, xfer_node: Node) -> None:
    """1002 calls 1001 and holds it (music); 1002's other phone sends an INVITE with
    Replaces naming that dialog (RFC 3891 §3) and gets the call: 1001 hears the first
    phone, the music, then the second phone; the first phone gets BYE."""
    rtp_desk, rtp_mobile, rtp_a = RtpPeer(2900.0), RtpPeer(3100.0), RtpPeer(2500.0)
    try:
        a = _uas(tmp_path, xfer_node, "a", "uas_hold.xml", "1001", rtp_a)
        desk = _uac(tmp_path, xfer_node, "desk", "uac_hold_wait.xml", "1002", "1001",
                    rtp_desk)
        call_id, from_tag, to_tag = _dialog_of(tmp_path / "desk")
        deadline = time.monotonic() + 10
        while "music on hold started" not in xfer_node.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # let the held party hear the music for a while
        mobile = _uac(tmp_path, xfer_node, "mobile", "uac_hold_pickup_replaces.xml", "1002",
                      "1001", rtp_mobile, "-key", "replaces",
                      f"{call_id};to-tag={to_tag};from-tag={from_tag}")
        results = [_finish(p, tmp_path, name)
                   for p, name in ((mobile, "mobile"), (desk, "desk"), (a, "a"))]
    finally:
        for rtp in (rtp_desk, rtp_mobile, rtp_a):
            rtp.stop()
    for rc, out in results:
        assert rc == 0, out
    heard_by_a = _runs(rtp_a.labels({"desk": 2900.0, "mobile": 3100.0}))
    assert _order(heard_by_a, ["desk", "moh", "mobile"]), heard_by_a
    stop_node(xfer_node)
    first, picked = _cdrs(xfer_node)
    assert (first["caller"], first["callee"], first["hangup_cause"]) == (
        "1002", "1001", "transferred")
    assert json.loads(first["tags"])["transfer_mode"] == "replaces"
    assert (picked["caller"], picked["callee"], picked["source"], picked["disposition"],
            picked["hangup_side"]) == ("1002", "1001", "transfer", "answered", "caller")


def test_forbidden_and_malformed_refers_keep_the_call(tmp_path: Path, xfer_node: Node) -> None:
    """REFER to a number with no route (9999, and 9... whose demo trunk rule is disabled):
    403; without Refer-To: 400; the call goes on (the scenario's BYE gets 200) and its
    CDR is a plain answered call."""
    rtp_a, rtp_b = RtpPeer(2500.0), RtpPeer(1300.0)
    try:
        b = _uas(tmp_path, xfer_node, "b", "uas_hold.xml", "1002", rtp_b)
        a = _uac(tmp_path, xfer_node, "a", "uac_refer_refused.xml", "1001", "1002", rtp_a)
        results = [_finish(p, tmp_path, name) for p, name in ((a, "a"), (b, "b"))]
    finally:
        for rtp in (rtp_a, rtp_b):
            rtp.stop()
    for rc, out in results:
        assert rc == 0, out
    log = xfer_node.log()
    assert log.count("transfer refused: 403") == 2, log[-3000:]
    stop_node(xfer_node)
    (cdr,) = _cdrs(xfer_node)
    assert (cdr["disposition"], cdr["hangup_cause"], cdr["hangup_side"]) == (
        "answered", "normal_clearing", "caller")
    assert json.loads(cdr["tags"]) == {}


# ---- baresip: a real phone's hold and transfer buttons ---------------------------------------


def _tone_wav(path: Path, freq_hz: float, seconds: float = 40.0) -> Path:
    t = np.arange(int(seconds * 8000)) / 8000.0
    pcm = (8000 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    return path


def _wav_labels(path: Path, named: dict[str, float]) -> list[str]:
    with wave.open(str(path)) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)[::channels]
    n = int(rate * WINDOW_S)
    step = rate / 8000
    out = []
    for i in range(0, len(pcm) - n, n):
        window = pcm[i:i + n].astype(np.float64)
        if step != 1:  # the classifier works at 8 kHz
            window = window[np.round(np.arange(0, len(window), step)).astype(int)
                            .clip(0, len(window) - 1)]
        out.append(_classify(window, named))
    return out


def _calls(phone: Baresip) -> str:
    return phone.command("listcalls").get("data", "")


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_baresip_hold_resume_and_blind_transfer(tmp_path: Path, xfer_node: Node) -> None:
    """Three baresip phones: 1001 calls 1002; 1002 presses hold (1001 hears music),
    resume, then transfers 1001 to 1003 with its own REFER; 1001 ends up hearing 1003."""
    require("baresip")
    registrar = f"127.0.0.1:{xfer_node.sip_port}"
    phones: list[Baresip] = []
    try:
        for user, freq in (("1001", 440.0), ("1002", 1000.0), ("1003", 2500.0)):
            phones.append(Baresip(
                tmp_path / user, user, _password(xfer_node, user), registrar,
                codecs="pcmu", wav=_tone_wav(tmp_path / f"{user}.wav", freq),
                rec_dir=tmp_path / f"rec_{user}"))
        a, b, c = phones
        assert all(p.registered() for p in phones)
        a.command("dial", f"sip:1002@{registrar}")
        assert _wait_for(lambda: "ESTABLISHED" in _calls(b), 10), _calls(b)
        time.sleep(1.5)
        b.command("hold")
        time.sleep(2.5)
        b.command("resume")
        time.sleep(1.5)
        b.command("transfer", f"sip:1003@{registrar}")
        assert _wait_for(lambda: "ESTABLISHED" in _calls(c), 10), xfer_node.log()[-3000:]
        assert _wait_for(lambda: "ESTABLISHED" not in _calls(b), 10), _calls(b)
        time.sleep(2.0)
        a.command("hangup")
        assert _wait_for(lambda: "ended: normal_clearing (caller)" in xfer_node.log(), 5)
    finally:
        for phone in phones:
            phone.stop()
        stop_node(xfer_node)
    heard_by_a = _runs(_wav_labels(next((tmp_path / "rec_1001").glob("*-dec.wav")),
                                   {"b": 1000.0, "c": 2500.0}))
    assert _order(heard_by_a, ["b", "moh", "b", "c"]), heard_by_a
    first, second = _cdrs(xfer_node)
    assert (first["caller"], first["callee"], first["hangup_cause"], first["hangup_side"]) == (
        "1001", "1002", "transferred", "callee")
    assert (second["caller"], second["callee"], second["source"], second["disposition"]) == (
        "1001", "1003", "transfer", "answered")
