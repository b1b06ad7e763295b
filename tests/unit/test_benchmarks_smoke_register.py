"""The registration benchmark still runs (tiny load) against a real node and SIPp."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import bench_register


@pytest.mark.interop
def test_register_benchmark_smoke(tmp_path: Path) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed")
    out = tmp_path / "reg.json"
    assert bench_register.main(["--smoke", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["steps"][0]["failed"] == 0
    assert data["steps"][0]["succeeded"] == data["steps"][0]["calls"] == 20
