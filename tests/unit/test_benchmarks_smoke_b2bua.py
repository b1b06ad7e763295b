"""The B2BUA benchmark still runs (a few hundred calls) against a real node, Sippy B2BUA
and SIPp, and its numbers add up."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from benchmarks import bench_b2bua


@pytest.mark.interop
def test_b2bua_benchmark_smoke(tmp_path: Path) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed")
    args = ["--smoke", "--json", str(tmp_path / "b2bua.json")]
    if not Path(sys.executable).with_name("b2bua_simple").exists() and shutil.which(
            "b2bua_simple") is None:
        args.append("--no-sippy")  # the `bench` extra (PyPI sippy) is not installed
    assert bench_b2bua.main(args) == 0
    data = json.loads((tmp_path / "b2bua.json").read_text())
    final = data["cps"]["softswitch"]["final"]
    assert final["failed"] == 0 and final["succeeded"] == final["calls"] == 100
    assert final["cpu_ms_per_call"] > 0
    if "--no-sippy" not in args:
        assert data["cps"]["sippy"]["final"]["succeeded"] == 100
    (conc,) = data["concurrent_anchored"]
    assert conc["failed"] == 0 and conc["succeeded"] == 20
    assert conc["legs"] == 40 and conc["legs_without_rtp"] == 0  # RTP crossed both legs
