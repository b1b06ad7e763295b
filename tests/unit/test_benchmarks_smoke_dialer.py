"""The dialer benchmark still runs (10 campaign calls) against a real node and SIPp."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import bench_dialer


@pytest.mark.interop
def test_dialer_benchmark_smoke(tmp_path: Path) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed")
    out = tmp_path / "dialer.json"
    assert bench_dialer.main(["--smoke", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    step = data["steps"][0]
    assert step["passed"] and step["attempts"] == step["contacts"] == 10
    assert step["outcomes"] == {"acknowledged": 10} and step["sipp_ok"] == 10
    assert 1 <= step["peak_concurrent_calls"] <= step["lines"]
