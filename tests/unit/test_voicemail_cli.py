"""``softswitch voicemail list|play|delete`` and ``softswitch user forward`` through
main([...]) on a tmp data directory."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from storage.db import Database, default_sqlite_url
from storage.voicemail_repository import VoicemailRepository
from switch import voicemail_cli
from switch.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _add_message(data: Path, box: str, wav: Path) -> None:
    wav.write_bytes(b"RIFF fake wav for the CLI")

    async def add() -> None:
        async with Database(default_sqlite_url(data)) as db:
            await VoicemailRepository(db).add(
                box, "13800000000", "c1", 4.5, str(wav), "key",
                dt.datetime(2026, 11, 30, 1, 2, 3, tzinfo=dt.UTC))

    asyncio.run(add())


def test_forward_set_show_and_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path)
    assert main(["user", "add", "1001", "--password", "pw", "--data-dir", d]) == 0
    capsys.readouterr()
    code, out, err = _run(capsys, "user", "forward", "1001", "--busy", "1002",
                          "--no-answer", "9013800000000", "--ring-s", "15", "--data-dir", d)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == ("call forwarding of 1001: busy -> 1002, no-answer -> 9013800000000 "
                        "after 15 s")
    assert lines[1].strip() == "1002 -> extension:1002"
    assert "warning: the dial plan rejects 9013800000000" in lines[2]  # "9." is disabled
    code, out, _ = _run(capsys, "user", "forward", "1001", "--always", "voicemail:1001",
                        "--busy", "off", "--data-dir", d)
    assert out.splitlines()[0] == ("call forwarding of 1001: always -> voicemail:1001, "
                                   "no-answer -> 9013800000000 after 15 s")
    code, out, _ = _run(capsys, "user", "forward", "1001", "--data-dir", d)
    assert code == 0 and "always -> voicemail:1001" in out
    code, out, _ = _run(capsys, "user", "forward", "1001", "--off", "--data-dir", d)
    assert (code, out) == (0, "call forwarding of 1001: off\n")


def test_forward_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path)
    assert main(["user", "add", "1001", "--password", "pw", "--data-dir", d]) == 0
    code, _, err = _run(capsys, "user", "forward", "1009", "--busy", "1002", "--data-dir", d)
    assert code == 1 and "no such user: 1009" in err
    code, _, err = _run(capsys, "user", "forward", "1001", "--busy", "sip:x", "--data-dir", d)
    assert code == 1 and "--busy:" in err
    code, _, err = _run(capsys, "user", "forward", "1001", "--off", "--busy", "1", "--data-dir",
                        d)
    assert code == 1 and "--off cannot be combined" in err
    code, _, _ = _run(capsys, "user", "forward", "--data-dir", d)
    assert code == 2


def test_voicemail_list_play_delete(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "data"
    wav = tmp_path / "m.wav"
    _add_message(d, "1002", wav)
    code, out, _ = _run(capsys, "voicemail", "list", "--data-dir", str(d))
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["ID", "BOX", "FROM", "RECEIVED", "SECONDS",
                                              "ENDED", "BY"]
    assert lines[1].split()[:3] == ["1", "1002", "13800000000"]
    assert lines[1].split()[-2:] == ["4.5", "key"]
    assert lines[-1] == "1 message(s)"
    code, out, _ = _run(capsys, "voicemail", "list", "operator", "--data-dir", str(d))
    assert out.splitlines()[-1] == "0 message(s)"
    copy = tmp_path / "copy.wav"
    code, out, _ = _run(capsys, "voicemail", "play", "1", "--out", str(copy), "--data-dir",
                        str(d))
    assert code == 0 and copy.read_bytes() == wav.read_bytes() and "copied to" in out
    monkeypatch.setattr(voicemail_cli.shutil, "which", lambda _name: None)
    code, out, _ = _run(capsys, "voicemail", "play", "1", "--data-dir", str(d))
    assert (code, out.strip()) == (0, str(wav))  # no player here: the path
    monkeypatch.setattr(voicemail_cli.shutil, "which", lambda _name: "/bin/false")
    code, _, err = _run(capsys, "voicemail", "play", "1", "--data-dir", str(d))
    assert code == 1 and "exited with 1" in err and str(wav) in err
    code, out, _ = _run(capsys, "voicemail", "delete", "1", "--data-dir", str(d))
    assert (code, out) == (0, "deleted message 1 of box 1002\n") and not wav.exists()
    code, _, err = _run(capsys, "voicemail", "play", "1", "--data-dir", str(d))
    assert code == 1 and "no such message: 1" in err
