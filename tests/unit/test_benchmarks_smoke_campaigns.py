"""The campaign scheduler benchmark still runs (smoke mode) and writes well-formed JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_campaigns


def test_bench_campaigns_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "campaigns.json"
    assert bench_campaigns.main(["--smoke", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "decisions/s" in table and "run to completion" in table
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "campaigns" and doc["smoke"] is True and doc["n"] == 1000
    rows = {r["name"]: r for r in doc["results"]}
    assert set(rows) == {"run to completion", "restore", "build"}
    run = rows["run to completion"]
    assert run["state"] == "completed" and run["done"] == 1000
    # every contact dialed at least once; every dial got exactly one outcome
    assert run["dials"] >= 1000 and run["decisions"] == 2 * run["dials"]
    assert all(r["decisions_per_s"] > 0 for r in doc["results"])


def test_bench_campaigns_json_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_campaigns.main(["--n", "200"]) == 0
    text = capsys.readouterr().out
    doc = json.loads(text[text.index("{"):])
    assert doc["n"] == 200 and doc["smoke"] is False and len(doc["results"]) == 3
