"""The live-path CTI benchmark still runs (smoke mode) and writes well-formed JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_cti_live


def test_bench_cti_live_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cti_live.json"
    assert bench_cti_live.main(["--smoke", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "decis/s" in table and "p99 ms" in table and "burst" in table
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "cti_live" and doc["smoke"] is True
    assert (doc["agents"], doc["queued"]) == (200, 1000)
    alone, burst, paced = doc["results"]
    assert alone["name"] == "no clients" and alone["deliveries"] == 0
    assert alone["decisions"] == alone["cycles"] == 30
    assert paced["name"].startswith("paced") and paced["cycles"] == 10
    assert burst["cycles"] == 30 and burst["decisions"] == 30   # one decision per cycle
    assert burst["events"] == 9 * 30    # cleared, wrap-up, ready, reserved, delivered,
    for row in (burst, paced):          # busy, dequeued, established, queued
        assert row["deliveries"] == row["clients"] * row["events"]
        assert row["timed"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["decisions_per_s"] > 0 and row["dropped_slow"] == 0
