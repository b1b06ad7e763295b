"""Voicemail and call forwarding through a real node with SIPp phones on loopback.

A SIPp caller leaves a message for an extension that does not answer (a tone played from a
pcap, then RFC 4733 "#"); the file, its row, the CDR and the CLI are checked. Forwarding
on busy and unconditional forwarding connect the caller to another SIPp phone; a
dial-plan calendar rule sends calls after hours to a mailbox, where the caller's own
hang-up ends the message.
"""

from __future__ import annotations

import asyncio
import sqlite3
import struct
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dsp.g711 import ulaw_encode
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
TONE_HZ = 700.0
TONE_S = 5.0
"""Longer than the greeting may take on a loaded machine: the recording, which starts after
the beep, always holds more than a second of it."""


# ---- pcap: PCMU tone then RFC 4733 "#" -------------------------------------------------------


def _frame(t: float, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", 40000, 40000, 8 + len(payload), 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp) + len(payload), 0, 0, 64, 17,
                     0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    packet = b"\x00" * 12 + b"\x08\x00" + ip + udp + payload
    sec = int(t)
    return struct.pack("<IIII", sec, int((t - sec) * 1e6), len(packet), len(packet)) + packet


def write_message_pcap(path: Path, *, tone_s: float = TONE_S, hash_key: bool = True) -> None:
    """20 ms PCMU packets of a ``TONE_HZ`` sine, then (optionally) the telephone-event
    "#" (event 11, RFC 4733 §3.2): three updates and three end packets, one timestamp."""
    ssrc, seq, ts, t = 0x5EED1234, 1, 0, 0.0
    n = int(tone_s * 8000)
    pcm = (9000 * np.sin(2 * np.pi * TONE_HZ * np.arange(n) / 8000.0)).astype(np.int16)
    payload = ulaw_encode(pcm).tobytes()
    frames = []
    for i in range(0, len(payload) - 159, 160):
        rtp = struct.pack("!BBHII", 0x80, 0, seq, ts, ssrc)
        frames.append(_frame(t, rtp + payload[i:i + 160]))
        seq, ts, t = seq + 1, ts + 160, t + 0.02
    if hash_key:
        for i in range(6):
            end = i >= 3
            rtp = struct.pack("!BBHII", 0x80, (0x80 if i == 0 else 0) | 101, seq, ts, ssrc)
            event = struct.pack("!BBH", 11, (0x80 if end else 0) | 10, 400 * min(i + 1, 4))
            frames.append(_frame(t, rtp + event))
            seq, t = seq + 1, t + (0.05 if i < 3 else 0.02)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(header + b"".join(frames))


# ---- node and peers ---------------------------------------------------------------------------

CONFIG = """
[calls]
no_answer_timeout_s = 2

[voicemail]
greeting = "请留言"
max_s = 10

[dialplan]
[[dialplan.rules]]
name = "extensions"
match = "_10XX"
target = "extension"

[[dialplan.rules]]
name = "desk-open"
match = "8888"
target = "extension"
extension = "1003"
calendar = "office"
when = "open"

[[dialplan.rules]]
name = "desk-closed"
match = "8888"
target = "voicemail"
box = "operator"

[calendars.office]
timezone = "Asia/Shanghai"
rules = ["daily 00:00-23:59"]
holidays = ["2020-01-01..2099-12-31"]
"""


@pytest.fixture
def vm_node(tmp_path: Path) -> Iterator[Node]:
    data = tmp_path / "data"
    data.mkdir()
    add_users(data, "1001", "1002", "1003")
    cfg = tmp_path / "vm.toml"
    cfg.write_text(CONFIG)
    node = start_node(data, "--config", str(cfg))
    deadline = time.monotonic() + 30  # the greeting is rendered once, at start
    while "voicemail greeting ready" not in node.log():
        assert time.monotonic() < deadline, node.log()[-3000:]
        time.sleep(0.1)
    yield node
    stop_node(node)


def _sipp_register(tmp_path: Path, node: Node, user: str, port: int) -> None:
    sipp_register(tmp_path, node.sip_port, user, PASSWORD, port)


def _start_uas(tmp_path: Path, scenario: str, port: int, name: str) -> subprocess.Popen[str]:
    sipp = require("sipp")
    workdir = tmp_path / f"uas_{name}"
    workdir.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sipp, "-sf", str(SIPP_DIR / scenario), "-i", "127.0.0.1", "-p", str(port),
         "-mp", str(free_port()), "-m", "1", "-nostdin", "-timeout", "30",
         "-timeout_error", "-trace_err"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run_uac(tmp_path: Path, node: Node, scenario: str, dial: str, *extra: str,
             pcap: Path | None = None) -> tuple[int, str]:
    sipp = require("sipp")
    workdir = tmp_path / f"uac_{dial}_{scenario}"
    (workdir / "pcap").mkdir(parents=True, exist_ok=True)
    if pcap is not None:
        (workdir / "pcap" / "vm_message.pcap").write_bytes(pcap.read_bytes())
    csv = workdir / "uac.csv"
    csv.write_text(f"SEQUENTIAL\n1001;[authentication username=1001 "
                   f"password={PASSWORD}];{dial}\n")
    proc = subprocess.run(
        [sipp, "-sf", str(SIPP_DIR / scenario), f"127.0.0.1:{node.sip_port}",
         "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()),
         "-inf", str(csv), "-auth_uri", f"{dial}@127.0.0.1:{node.sip_port}",
         "-m", "1", "-nostdin", "-timeout", "40", "-timeout_error",
         "-default_behaviors", "all,-abortunexp", "-trace_err", *extra],
        cwd=workdir, capture_output=True, text=True, timeout=60)
    errors = "".join(p.read_text(errors="replace")[-3000:] for p in workdir.glob("*_errors.log"))
    return proc.returncode, errors + proc.stdout[-3000:] + proc.stderr[-3000:]


def _forward(node: Node, *args: str) -> str:
    """``softswitch user forward`` and wait until the running node has loaded it."""
    res = node.cli("user", "forward", *args)
    assert res.returncode == 0, res.stdout + res.stderr
    shown = res.stdout.splitlines()[0].split(": ", 1)[1]
    wanted = f"{args[0]}: {shown}"
    deadline = time.monotonic() + 10
    while wanted not in node.log():
        assert time.monotonic() < deadline, f"the node did not load {wanted!r}"
        time.sleep(0.1)
    return shown


def _stop(proc: subprocess.Popen[str], timeout: float = 15.0) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return -9


def _rows(node: Node, query: str) -> list[sqlite3.Row]:
    with sqlite3.connect(node.data_dir / "softswitch.db") as db:
        db.row_factory = sqlite3.Row
        return list(db.execute(query))


def _caller_tone(path: Path) -> tuple[float, float]:
    """(dominant frequency, seconds) of the caller (left) channel of a message."""
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 8000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)[::2].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / 8000)[int(spectrum.argmax())]), len(pcm) / 8000


# ---- tests ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_messages_on_no_answer_and_after_hours_then_cli_lists_plays_deletes(
        tmp_path: Path, vm_node: Node) -> None:
    """1002 rings and never answers: the caller leaves a message ended by "#". Then a call
    to 8888 after hours (a calendar rule) reaches the "operator" box and the caller hangs up
    mid-message: kept all the same. The CLI lists, copies and deletes; the CDRs name the
    recordings."""
    pcap = tmp_path / "message.pcap"
    write_message_pcap(pcap, tone_s=TONE_S)
    uas_port = free_port()
    _sipp_register(tmp_path, vm_node, "1002", uas_port)
    uas = _start_uas(tmp_path, "uas_b2bua_ring.xml", uas_port, "1002")  # rings, never answers
    try:
        rc, out = _run_uac(tmp_path, vm_node, "uac_vm.xml", "1002", "-d", "1000", pcap=pcap)
    finally:
        uas_rc = _stop(uas)
    assert rc == 0, out  # the switch sent BYE after "#"
    assert uas_rc == 0, "the ringing phone was not cancelled"
    tone = tmp_path / "tone.pcap"
    write_message_pcap(tone, tone_s=TONE_S, hash_key=False)
    rc, out = _run_uac(tmp_path, vm_node, "uac_vm_hangup.xml", "8888", "-d", "1000",
                       pcap=tone)
    assert rc == 0, out

    listing = vm_node.cli("voicemail", "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "BOX", "FROM"] and lines[-1] == "2 message(s)"
    assert lines[1].split()[:3] == ["1", "1002", "1001"] and lines[1].split()[-1] == "key"
    assert lines[2].split()[:3] == ["2", "operator", "1001"]
    assert lines[2].split()[-1] == "hangup", lines
    first, second = _rows(vm_node, "SELECT * FROM voicemail_messages ORDER BY id")
    path = Path(first["path"])
    assert path.is_file() and path.parent.name == "1002"
    for row in (first, second):
        hz, seconds = _caller_tone(Path(row["path"]))
        assert abs(hz - TONE_HZ) < 20, hz
        assert 1.0 <= row["duration_s"] <= TONE_S + 1.5
        assert abs(seconds - row["duration_s"]) < 0.05
    copy = tmp_path / "copy.wav"
    played = vm_node.cli("voicemail", "play", "1", "--out", str(copy))
    assert played.returncode == 0, played.stderr
    assert copy.read_bytes() == path.read_bytes()
    deleted = vm_node.cli("voicemail", "delete", "1")
    assert deleted.returncode == 0 and "deleted message 1 of box 1002" in deleted.stdout
    assert not path.exists()
    assert [r["id"] for r in _rows(vm_node, "SELECT * FROM voicemail_messages")] == [2]
    stop_node(vm_node)
    no_answer, after_hours = _rows(vm_node, "SELECT * FROM cdrs ORDER BY id")
    assert (no_answer["caller"], no_answer["callee"], no_answer["disposition"]) == (
        "1001", "1002", "answered")
    assert (no_answer["target"], no_answer["route"]) == ("voicemail:1002",
                                                         "voicemail-no_answer")
    assert no_answer["recording_ref"] == str(path) and no_answer["hangup_side"] == "system"
    assert (after_hours["route"], after_hours["target"], after_hours["hangup_side"]) == (
        "desk-closed", "voicemail:operator", "caller")
    assert after_hours["recording_ref"] == second["path"]


@pytest.mark.slow
def test_busy_forward_then_unconditional_forward_to_another_phone(tmp_path: Path,
                                                                  vm_node: Node) -> None:
    """1002 is busy and forwards on busy to 1003; then 1002 forwards every call to 1003
    and is not rung at all (its phone would answer busy again and fail the test)."""
    assert _forward(vm_node, "1002", "--busy", "1003") == "busy -> 1003"
    busy_port, other_port = free_port(), free_port()
    _sipp_register(tmp_path, vm_node, "1002", busy_port)
    _sipp_register(tmp_path, vm_node, "1003", other_port)
    busy = _start_uas(tmp_path, "uas_b2bua_busy.xml", busy_port, "busy")
    other = _start_uas(tmp_path, "uas_b2bua.xml", other_port, "other")
    try:
        rc, out = _run_uac(tmp_path, vm_node, "uac_b2bua.xml", "1002", "-d", "500")
    finally:
        busy_rc, other_rc = _stop(busy), _stop(other)
    assert rc == 0, out
    assert (busy_rc, other_rc) == (0, 0)
    shown = _forward(vm_node, "1002", "--always", "1003")
    assert shown == "always -> 1003, busy -> 1003"
    other = _start_uas(tmp_path, "uas_b2bua.xml", other_port, "other2")
    try:
        rc, out = _run_uac(tmp_path, vm_node, "uac_b2bua.xml", "1002", "-d", "500")
    finally:
        other_rc = _stop(other)
    assert rc == 0 and other_rc == 0, out
    off = vm_node.cli("user", "forward", "1002", "--off")
    assert off.returncode == 0 and off.stdout.strip() == "call forwarding of 1002: off"
    stop_node(vm_node)
    cdrs = _rows(vm_node, "SELECT * FROM cdrs ORDER BY id")
    assert [(c["callee"], c["disposition"], c["target"], c["route"]) for c in cdrs] == [
        ("1002", "answered", "extension:1003", "forward-busy/extensions"),
        ("1002", "answered", "extension:1003", "forward-always/extensions")]
