"""Run benchmarks: ``python -m benchmarks [NAME ...] [--smoke] [--out DIR]``.

Each benchmark is also a module of its own (``python -m benchmarks.bench_media --help``)
with more options. This runner runs the named ones (all by default) one after another,
each printing its table, and writes each one's JSON to ``DIR/NAME.json``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

import benchmarks


def available() -> list[str]:
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(benchmarks.__path__)
                  if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    names = available()
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {', '.join(names)}")
    ap.add_argument("--smoke", action="store_true", help="tiny runs (what CI does)")
    ap.add_argument("--out", default="bench-results", help="directory for the JSON files")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in names]
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(names)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.names or names:
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(f"benchmarks.bench_{name}")
        bench_args = ["--json", str(out / f"{name}.json")]
        if args.smoke:
            bench_args.append("--smoke")
        if module.main(bench_args) != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
