"""The CTI fan-out benchmark still runs (smoke mode) and writes well-formed JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_cti


def test_bench_cti_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cti.json"
    assert bench_cti.main(["--smoke", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "deliv/s" in table and "p99 ms" in table and "burst" in table
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "cti" and doc["smoke"] is True
    burst, raw, paced = doc["results"]
    assert raw["name"] == "burst raw" and raw["deliveries"] == 20 * 50
    assert burst["clients"] == 20 and burst["events"] == 50
    assert burst["deliveries"] == 20 * 50          # every event reached every client
    assert paced["deliveries"] == 20 * paced["events"]
    for row in doc["results"]:
        assert row["deliveries_per_s"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["p99_ms"] <= row["max_ms"] and row["dropped_slow"] == 0
