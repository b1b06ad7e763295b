"""The media benchmark's smoke mode runs end to end (generator process + worker process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_media_smoke(tmp_path: Path) -> None:
    out = tmp_path / "media.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_media", "--smoke", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "lost" in proc.stdout.splitlines()[0]  # the table header
    (row,) = json.loads(out.read_text())["results"]
    assert row["channels"] == 10 and row["workers"] == 1
    assert row["frames_sent"] == 10 * 100
    # nearly everything comes back through the bridge (a loaded CI machine may drop a few)
    assert row["frames_back"] >= 0.9 * row["frames_sent"]
    for key in ("cpu_core_pct", "added_p50_ms", "added_p99_ms", "engine_p99_ms",
                "playout_ms", "late_ticks", "cpu_ms_per_ch_s", "rx_us_ch_tick",
                "eng_us_ch_tick", "tx_us_ch_tick"):
        assert row[key] == row[key]  # present and not NaN
    assert 20.0 <= row["playout_ms"] <= 45.0
    from switch.media.batchio import c_available  # the path the workers took
    assert row["io"] == ("c" if c_available() else "python")
    assert row["batch_fast"] > 0.5 * row["frames_sent"]  # the array receive path ran
