"""The live ACD shell benchmark still runs (smoke mode) and its figures add up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_queues_live


def test_bench_queues_live_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "queues_live.json"
    assert bench_queues_live.main(["--smoke", "--json", str(out)]) == 0
    assert "decisions/CPU s" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "queues_live" and doc["smoke"] is True and doc["n"] == 100
    assert {r["name"] for r in doc["results"]} == {"longest-idle", "round-robin"}
    for row in doc["results"]:
        # one answer, one bridge, one end and one new offer per cycle; the queue stays full
        assert row["decisions"] == row["bridged"] == row["cycles"] == 100
        assert row["queued"] == bench_queues_live.QUEUED + bench_queues_live.AGENTS
        assert row["log_entries"] >= 6 * row["cycles"] and row["bus_events"] > 0
        assert row["decisions_per_cpu_s"] > 0
