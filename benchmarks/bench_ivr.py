"""IVR language throughput on one core: parse, check, and interpreter steps in the simulator.

Cases (all on the shipped demo, ivr_lang/demo/hotline.ivr, with its mock data):

* ``parse``: scripts parsed per second (lark LALR + indenter + AST transform);
* ``parse+check``: scripts parsed and fully checked per second;
* ``simulate (calls)``: simulated calls per second, cycling through the demo's shipped
  transcripts (every branch of the demo, with data lookups on in-memory SQLite);
* ``interpreter (statements)``: statements the interpreter executes per second in those
  calls (the interpreter's own step rate, the figure the live IVR's CPU cost scales with).

Usage: ``python -m benchmarks.bench_ivr [--n N] [--smoke] [--json FILE]``. Prints a table,
then the JSON (to FILE when given, else to stdout).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.report import emit_json
from ivr_lang.check import check
from ivr_lang.parser import parse
from ivr_lang.simulator import (
    Fixture,
    load_fixture,
    parse_options,
    parse_transcript_file,
    simulate,
)

DEMO = Path(__file__).resolve().parents[1] / "ivr_lang" / "demo"


def _scripts() -> tuple[str, Fixture, list[Any]]:
    text = (DEMO / "hotline.ivr").read_text(encoding="utf-8")
    fixture = load_fixture(DEMO / "hotline_mock.toml")
    options = [parse_options(parse_transcript_file(p.read_text(encoding="utf-8"))[0])
               for p in sorted(DEMO.glob("*.transcript"))]
    return text, fixture, options


def bench_ivr(n_parse: int, n_calls: int) -> list[dict[str, Any]]:
    text, fixture, options = _scripts()
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for _ in range(n_parse):
        program = parse(text, "hotline.ivr")
    rows.append({"name": "parse", "ops": n_parse, "seconds": time.perf_counter() - start})
    start = time.perf_counter()
    for _ in range(n_parse):
        program = parse(text, "hotline.ivr")
        if check(program):
            raise RuntimeError("the demo script does not check clean")
    rows.append({"name": "parse+check", "ops": n_parse,
                 "seconds": time.perf_counter() - start})
    statements = 0
    start = time.perf_counter()
    for i in range(n_calls):
        t = simulate(program, options[i % len(options)], fixture)
        statements += t.result.statements
    secs = time.perf_counter() - start
    rows.append({"name": "simulate (calls)", "ops": n_calls, "seconds": secs})
    rows.append({"name": "interpreter (statements)", "ops": statements, "seconds": secs})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=2000, help="simulated calls")
    parser.add_argument("--smoke", action="store_true", help="tiny run (CI)")
    parser.add_argument("--json", metavar="FILE", help="write JSON here instead of stdout")
    args = parser.parse_args(argv)
    n_calls = 40 if args.smoke else args.n
    # Some shipped transcripts walk the error branches on purpose; their runtime-error
    # warnings are expected here and would only drown the table.
    logging.getLogger("ivr_lang.interpreter").setLevel(logging.ERROR)
    n_parse = 3 if args.smoke else max(10, args.n // 40)
    rows = bench_ivr(n_parse, n_calls)
    for row in rows:
        row["ops_per_s"] = round(row["ops"] / row["seconds"], 1) if row["seconds"] else None
    print(f"{'case':<26} {'ops':>8} {'seconds':>9} {'ops/s':>12}")
    for row in rows:
        rate = f"{row['ops_per_s']:>12,.0f}" if row["ops_per_s"] else f"{'-':>12}"
        print(f"{row['name']:<26} {row['ops']:>8} {row['seconds']:>9.3f} {rate}")
    doc = {"benchmark": "ivr", "smoke": args.smoke, "n": n_calls,
           "python": sys.version.split()[0], "results": rows}
    emit_json(doc, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
