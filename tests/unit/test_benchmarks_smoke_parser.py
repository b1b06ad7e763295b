"""The parser benchmark still runs (smoke mode) and reports every case."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import bench_parser


def test_bench_parser_smoke(tmp_path: Path, capsys: object) -> None:
    out = tmp_path / "parser.json"
    assert bench_parser.main(["--smoke", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"parse", "parse+serialize", "parse+validate+typed"}
    assert all(rate > 0 for rate in report["results"].values())
    assert report["distinct_messages"] == 20


def test_invites_are_distinct_and_valid() -> None:
    msgs = bench_parser.make_invites(5)
    assert len(set(msgs)) == 5
    for data in msgs:
        bench_parser._parse_validate_typed(data)
