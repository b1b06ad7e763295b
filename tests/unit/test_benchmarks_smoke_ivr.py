"""The IVR benchmark still runs (smoke mode) and writes well-formed JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_ivr


def test_bench_ivr_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ivr.json"
    assert bench_ivr.main(["--smoke", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "interpreter (statements)" in table and "parse+check" in table
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "ivr" and doc["smoke"] is True and doc["n"] == 40
    rows = {r["name"]: r for r in doc["results"]}
    assert rows["simulate (calls)"]["ops"] == 40
    assert rows["interpreter (statements)"]["ops"] > 40 * 5  # every call runs several
    assert all(r["ops_per_s"] > 0 for r in doc["results"])


def test_bench_ivr_json_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_ivr.main(["--smoke"]) == 0
    text = capsys.readouterr().out
    doc = json.loads(text[text.index("{"):])
    assert doc["benchmark"] == "ivr"
