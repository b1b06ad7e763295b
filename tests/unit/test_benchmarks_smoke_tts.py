"""The prompt-path benchmark (TTS, cache, player, recorder) still runs in smoke mode."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import bench_tts


def test_bench_tts_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tts.json"
    assert bench_tts.main(["--smoke", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "player fill" in table and "recorder write" in table
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "tts" and doc["smoke"] is True
    rows = {r["name"]: r for r in doc["results"]}
    assert rows["player fill x20"]["ops"] == 10
    assert rows["recorder write x20"]["ops"] == 200
    if shutil.which("espeak-ng"):
        for name in ("tts pyttsx3 en", "tts pyttsx3 zh", "tts cli en", "tts cli zh"):
            assert rows[name]["ops"] == 1 and rows[name]["x_realtime"] > 1
        assert rows["cache hit (memory)"]["ops"] == 50
    else:
        assert rows["tts"]["skipped"]
