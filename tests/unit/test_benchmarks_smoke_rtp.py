"""The RTP benchmark still runs (smoke mode) and writes a well-formed JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_rtp_smoke(tmp_path: Path) -> None:
    out = tmp_path / "rtp.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_rtp", "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "parse_header_fast" in proc.stdout  # the table
    report = json.loads(out.read_text())
    assert report["benchmark"] == "rtp" and report["packets"] == 2000
    cases = {r["case"]: r for r in report["results"]}
    assert len(cases) == 5
    assert all(r["packets_per_s"] > 0 for r in cases.values())


def test_bench_rtp_in_process_json_to_stdout(capsys: object) -> None:
    from benchmarks import bench_rtp

    assert bench_rtp.main(["--smoke"]) == 0
    text = capsys.readouterr().out  # type: ignore[attr-defined]
    report = json.loads(text[text.index("{") :])
    assert report["results"][0]["case"] == "parse_header_fast"
