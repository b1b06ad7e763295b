"""The ACD benchmark still runs (smoke mode) and writes well-formed JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_acd


def test_bench_acd_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "acd.json"
    assert bench_acd.main(["--smoke", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "decisions/s" in table and "longest-idle skills" in table
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "acd" and doc["smoke"] is True and doc["n"] == 100
    assert doc["agents"] == 200 and doc["queued"] == 1000
    names = {r["name"] for r in doc["results"]}
    assert {"ring-all", "longest-idle", "fewest-calls", "round-robin", "linear", "random",
            "weighted-random", "longest-idle skills"} <= names
    for row in doc["results"]:
        assert row["ops"] == (10 if row["name"].endswith("ready) ring-all") else 100)
        assert row["decisions_per_s"] > 0
        if "arrive" not in row["name"]:
            assert row["queued"] == 1000          # the queue stayed loaded during the run
        if "skills" not in row["name"]:
            assert row["decisions"] == row["ops"]  # one decision per cycle


def test_bench_acd_json_to_stdout(capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the output path is under test here: time one real case, reuse it for the others.
    row = bench_acd.bench_loaded(bench_acd.Strategy.LINEAR, 50)
    monkeypatch.setattr(bench_acd, "bench_loaded", lambda s, n, skills=False: dict(row))
    monkeypatch.setattr(bench_acd, "bench_arrivals", lambda s, n: dict(row))
    assert bench_acd.main(["--smoke"]) == 0
    text = capsys.readouterr().out
    doc = json.loads(text[text.index("{"):])
    assert doc["benchmark"] == "acd" and len(doc["results"]) == 11
    assert doc["results"][0]["decisions_per_s"] > 0
