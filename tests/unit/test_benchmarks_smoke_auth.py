"""The auth/registrar benchmark still runs (smoke mode) and writes well-formed JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_auth


def test_bench_auth_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "auth.json"
    assert bench_auth.main(["--smoke", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "verify SHA-256" in table and "parse+register" in table
    doc = json.loads(out.read_text())
    assert doc["smoke"] is True and doc["n"] == 200
    names = {r["name"] for r in doc["results"]}
    assert {"challenge", "verify SHA-256", "verify MD5", "register (new)",
            "register (refresh)", "parse+register"} <= names
    for row in doc["results"]:
        if row["name"] != "pop_dirty":
            assert row["ops"] == 200 and row["ops_per_s"] > 0


def test_bench_auth_json_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_auth.main(["--smoke"]) == 0
    text = capsys.readouterr().out
    doc = json.loads(text[text.index("{"):])
    assert doc["benchmark"] == "auth"
