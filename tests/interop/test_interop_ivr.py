"""Live IVR calls: a real phone (baresip) calls the hotline number 12345 and walks the demo
menu to the bill readout with RFC 4733 digits (``sndcode``) and with in-band DTMF tones in
its audio; the node answers, speaks the prompts with TTS and hangs up at the end.

The node runs its own copy of the demo (``<data_dir>/ivr/hotline.ivr``, the site override
of ``switch.ivr_service`` Rule 1) whose calendar is open every day, so the walk does not
depend on the hour the test runs. Each prompt the node starts is logged
(``ivr <call> say: ...``): the RFC 4733 walk waits for the prompt before pressing a key;
the in-band walk has its tones at fixed times inside the prompts' windows. The CDR the
node writes at shutdown must carry the tag the script sets after the readout.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dsp.tones import dtmf_tone

from .conftest import ROOT, Node, require, run_cli, start_node, stop_node
from .peers import Baresip

pytestmark = [pytest.mark.interop, pytest.mark.slow]

PASSWORD = "secret"
READOUT = "账号一零零零零一，欠费金额三百五十元五角，缴费截止日期二零二六年十二月三十一日。"


def _always_open_demo() -> str:
    text = (ROOT / "ivr_lang" / "demo" / "hotline.ivr").read_text(encoding="utf-8")
    text, n = re.subn(r"calendar 工作时间:\n(?:  .*\n)+",
                      "calendar 工作时间:\n  daily 00:00-23:59\n", text)
    assert n == 1
    return text


@pytest.fixture
def ivr_node(tmp_path: Path) -> Iterator[Node]:
    data = tmp_path / "data"
    (data / "ivr").mkdir(parents=True)
    (data / "ivr" / "hotline.ivr").write_text(_always_open_demo(), encoding="utf-8")
    res = run_cli(data, "user", "add", "1001", "--password", PASSWORD)
    assert res.returncode == 0, res.stderr
    node = start_node(data)
    yield node
    stop_node(node)


def _wav(path: Path, seconds: float, tones: list[tuple[float, str]] = ()) -> Path:
    """Quiet audio with DTMF ``tones`` (start second, digits; 120 ms on, 120 ms off)."""
    pcm = np.zeros(int(seconds * 8000), dtype=np.int16)
    for start, digits in tones:
        at = int(start * 8000)
        for d in digits:
            tone = dtmf_tone(d, 120)
            pcm[at:at + len(tone)] = tone
            at += len(tone) + 960
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    return path


def _wait_log(node: Node, pattern: str, timeout: float, after: int = 0) -> int:
    """Wait for ``pattern`` in the node log past offset ``after``; returns its end offset."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = node.log()
        found = re.compile(pattern).search(log, after)
        if found:
            return found.end()
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} not in the node log within {timeout} s:\n"
                         f"{node.log()[-4000:]}")


def _cdr_tags(node: Node) -> list[tuple[str, str, str]]:
    assert node.proc.poll() is not None, "stop the node first"
    with sqlite3.connect(node.data_dir / "softswitch.db") as db:
        rows = list(db.execute("SELECT callee, disposition, tags FROM cdrs ORDER BY id"))
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def _check_walk(node: Node) -> None:
    log = node.log()
    for prompt in ("您好，欢迎致电幸福里物业服务中心。", "查询物业费请按1",
                   "请输入六位缴费账号", READOUT, "感谢您的来电，再见。"):
        assert f"say: {prompt}" in log or prompt in log, prompt
    assert "collected '100001'" in log, log[-3000:]
    assert re.search(r"lookup 账单\(100001\) = \{owed: 350\.5", log), log[-3000:]
    assert "left the IVR (hangup) in step 再见" in log
    # The readout (11 s of speech) is heard to its end: a late "#" must not barge into it.
    started = {}
    for line in log.splitlines():
        for key, text in (("readout", READOUT), ("next", "say: 返回主菜单请按1")):
            if text in line and key not in started:
                started[key] = dt.datetime.fromisoformat(line.split()[0].rstrip("Z"))
    assert (started["next"] - started["readout"]).total_seconds() >= 10.0, started
    assert stop_node(node) == 0
    cdrs = _cdr_tags(node)
    assert len(cdrs) == 1
    callee, disposition, tags = cdrs[0]
    assert callee == "12345" and disposition == "answered"
    assert "自助" in tags and "查询物业费" in tags


def test_rfc4733_walk_to_bill_readout(tmp_path: Path, ivr_node: Node) -> None:
    require("baresip")
    node = ivr_node
    phone = Baresip(tmp_path / "a", "1001", PASSWORD, f"127.0.0.1:{node.sip_port}",
                    wav=_wav(tmp_path / "quiet.wav", 60.0))
    try:
        assert phone.registered()
        phone.command("dial", f"sip:12345@127.0.0.1:{node.sip_port}")
        at = _wait_log(node, r"say: 查询物业费请按1", 20)
        time.sleep(0.5)
        phone.command("sndcode", "1")
        at = _wait_log(node, r"say: 请输入六位缴费账号", 10, at)
        time.sleep(0.3)
        for key in "100001#":
            phone.command("sndcode", key)
            time.sleep(0.25)
        at = _wait_log(node, r"tag 自助", 30, at)
        at = _wait_log(node, r"say: 返回主菜单请按1", 10, at)
        time.sleep(0.3)
        phone.command("sndcode", "2")
        _wait_log(node, r"call \w+ ended: normal_clearing \(system\)", 20, at)
    finally:
        phone.stop()
    assert "(rfc4733)" in node.log()
    _check_walk(node)


def test_inband_walk_to_bill_readout(tmp_path: Path, ivr_node: Node) -> None:
    """In-band DTMF in the caller's audio at fixed times (prompt windows, see module doc):
    1 at 8 s (menu prompt 5-20 s), the account at 10 s (account prompt), 2 at 26 s
    (the 'anything else' menu after the 11 s readout)."""
    require("baresip")
    node = ivr_node
    phone = Baresip(tmp_path / "b", "1001", PASSWORD, f"127.0.0.1:{node.sip_port}",
                    wav=_wav(tmp_path / "tones.wav", 45.0,
                             [(8.0, "1"), (10.0, "100001#"), (26.0, "2")]))
    try:
        assert phone.registered()
        phone.command("dial", f"sip:12345@127.0.0.1:{node.sip_port}")
        _wait_log(node, r"call \w+ ended: normal_clearing \(system\)", 45)
    finally:
        phone.stop()
    assert "(inband)" in node.log()
    _check_walk(node)
