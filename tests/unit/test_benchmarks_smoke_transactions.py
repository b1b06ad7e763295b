"""The transaction benchmark still runs (smoke mode) and reports its cases."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import bench_transactions


def test_bench_transactions_smoke(tmp_path: Path) -> None:
    out = tmp_path / "transactions.json"
    assert bench_transactions.main(["--smoke", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"register 401/200", "with 10% retransmissions"}
    for case in report["cases"].values():
        assert case["transactions"] == 400  # every REGISTER answered exactly once
        assert case["live_transactions"] == 400  # all still inside Timer J (32 s)
        assert case["transactions_per_s"] > 0
    retrans = report["cases"]["with 10% retransmissions"]
    assert retrans["datagrams_in"] == 440 and retrans["datagrams_out"] == 440
    calls = report["calls"]
    # INVITE, 100 Trying is not due (no timer passes), 180, 200, ACK, BYE, 200 per call
    assert calls["calls"] == 40 and calls["datagrams"] == 40 * 6
    assert calls["dialogs_left"] == 0 and report["calls_per_s"] > 0


def test_registers_are_distinct() -> None:
    msgs = bench_transactions.make_registers(10)
    assert len({m for m, _ in msgs}) == 10
