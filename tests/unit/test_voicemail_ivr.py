"""switch.voicemail Rule 6: the IVR's ``voicemail BOX`` recordings become mailbox messages,
also when the caller hangs up while speaking; silent ones are discarded."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import numpy as np

from switch.config import VoicemailConfig
from switch.voicemail import VoicemailService


class Repo:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, float, str]] = []

    async def add(self, box: str, caller: str, call_id: str, duration_s: float, path: str,
                  ended_by: str, created_at: Any = None) -> Any:
        self.rows.append((box, caller, call_id, round(duration_s, 1), ended_by))
        return type("Info", (), {"id": len(self.rows)})()


def _wav(path: Path, seconds: float, amplitude: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (amplitude * np.sin(np.arange(int(seconds * 8000)) / 3.0)).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.repeat(pcm, 2).tobytes())


class FakeLive:
    """What the interpreter sees of ``ivr_lang.live.LiveCall`` for ``voicemail``."""

    def __init__(self, recordings_dir: Path, seconds: float, amplitude: int = 8000,
                 hang: bool = False) -> None:
        self.recordings_dir = recordings_dir
        self.seconds, self.amplitude, self.hang = seconds, amplitude, hang
        self.prompts = ["请留言"]

    async def record(self, *, maxlen_s: float, beep: bool, end_keys: str,
                     mailbox: str | None) -> str | None:
        path = self.recordings_dir / (mailbox or "record") / "c7-1.wav"
        _wav(path, self.seconds, self.amplitude)
        if self.hang:
            await asyncio.sleep(60)  # the caller hangs up: the task is cancelled here
        return str(path) if self.amplitude else None


def _service() -> tuple[VoicemailService, Repo]:
    repo = Repo()
    return VoicemailService(None, repo, directory=Path("unused"), config=VoicemailConfig(),
                            wall=lambda: 1_800_000_000.0), repo


async def test_ivr_voicemail_statement_files_a_message(tmp_path: Path) -> None:
    service, repo = _service()
    live = service.ivr_handle(FakeLive(tmp_path, 2.0), call_id="c7", caller="13800000000")
    assert live.prompts == ["请留言"]  # everything else is the handle's own
    path = await live.record(maxlen_s=120, beep=True, end_keys="#", mailbox="物业信箱")
    assert path == str(tmp_path / "物业信箱" / "c7-1.wav")
    assert repo.rows == [("物业信箱", "13800000000", "c7", 2.0, "ivr")]
    assert await live.record(maxlen_s=5, beep=False, end_keys="#", mailbox=None)
    assert len(repo.rows) == 1  # a plain `record` is no message


async def test_hang_up_during_the_ivr_message_keeps_it(tmp_path: Path) -> None:
    service, repo = _service()
    live = service.ivr_handle(FakeLive(tmp_path, 1.5, hang=True), call_id="c7", caller="1001")
    task = asyncio.get_running_loop().create_task(
        live.record(maxlen_s=120, beep=True, end_keys="#", mailbox="物业信箱"))
    await asyncio.sleep(0.1)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the cancellation must go on to the interpreter")
    assert repo.rows == [("物业信箱", "1001", "c7", 1.5, "hangup")]


async def test_short_ivr_message_after_hang_up_is_discarded(tmp_path: Path) -> None:
    service, repo = _service()
    live = service.ivr_handle(FakeLive(tmp_path, 0.4, hang=True), call_id="c7", caller="1001")
    task = asyncio.get_running_loop().create_task(
        live.record(maxlen_s=120, beep=True, end_keys="#", mailbox="box"))
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert repo.rows == [] and not (tmp_path / "box" / "c7-1.wav").exists()
