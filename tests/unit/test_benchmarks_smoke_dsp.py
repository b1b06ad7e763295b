"""The DSP benchmarks (DTMF, G.711) still run in smoke mode and write well-formed JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(module: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, "--smoke", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )


def test_bench_dtmf_smoke(tmp_path: Path) -> None:
    out = tmp_path / "dtmf.json"
    proc = _run("benchmarks.bench_dtmf", out)
    assert proc.returncode == 0, proc.stderr
    assert "cpu s/ch-h" in proc.stdout
    report = json.loads(out.read_text())
    assert report["benchmark"] == "dtmf" and report["goal_cpu_s_per_channel_hour"] == 0.5
    by_name = {r["scenario"]: r for r in report["results"]}
    assert set(by_name) == {"mixed", "silence", "noise", "music", "dtmf"}
    assert all(r["cpu_s_per_channel_hour"] >= 0 for r in by_name.values())
    # the detector really ran: digits where there are digits, none elsewhere
    assert by_name["dtmf"]["digits_detected"] > 0
    assert by_name["silence"]["digits_detected"] == 0
    assert by_name["noise"]["digits_detected"] == 0
    assert by_name["music"]["digits_detected"] == 0


def test_bench_g711_smoke(tmp_path: Path) -> None:
    out = tmp_path / "g711.json"
    proc = _run("benchmarks.bench_g711", out)
    assert proc.returncode == 0, proc.stderr
    assert "x realtime" in proc.stdout
    report = json.loads(out.read_text())
    assert report["benchmark"] == "g711"
    cases = {r["case"] for r in report["results"]}
    assert cases == {"ulaw_encode", "ulaw_decode", "alaw_encode", "alaw_decode", "ulaw_to_alaw"}
    assert all(r["x_realtime_per_core"] > 0 for r in report["results"])


def test_bench_dtmf_in_process_json_to_stdout(capsys: object) -> None:
    from benchmarks import bench_dtmf

    assert bench_dtmf.main(["--smoke", "--scenarios", "dtmf"]) == 0
    text = capsys.readouterr().out  # type: ignore[attr-defined]
    report = json.loads(text[text.index("{"):])
    assert [r["scenario"] for r in report["results"]] == ["dtmf"]
