"""``softswitch ivr check`` and ``softswitch ivr test``: entry points returning exit codes.

check FILE...            print every diagnostic; exit 1 if any error (2 if a file is unreadable)
test FILE [options]      simulate one call and print its transcript
test FILE T.transcript…  replay transcript files, show diffs, exit 1 on any mismatch
                         (--update rewrites them, --coverage prints step/branch coverage)

The lead hooks ``check_main``/``test_main`` into switch/cli.py; they print (CLI output) and
never raise for user mistakes.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
from pathlib import Path

from . import ast as A
from .check import check_source, has_errors
from .diagnostics import render_all
from .simulator import (
    Fixture,
    SimOptions,
    Transcript,
    coverage,
    load_fixture,
    parse_transcript_file,
    run_transcript_file,
    simulate,
    write_transcript_file,
)

logger = logging.getLogger(__name__)

__all__ = ["check_main", "test_main"]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{path}: cannot read: {exc} / 无法读取文件")
        return None


def check_main(argv: list[str]) -> int:
    """``softswitch ivr check FILE...``: 0 clean (warnings allowed), 1 errors, 2 unreadable."""
    ap = argparse.ArgumentParser(prog="softswitch ivr check",
                                 description="Check IVR scripts / 检查 IVR 脚本")
    ap.add_argument("files", nargs="+")
    ap.add_argument("--strict", action="store_true", help="treat warnings as errors")
    args = ap.parse_args(argv)
    status = 0
    for path in args.files:
        text = _read(path)
        if text is None:
            status = 2
            continue
        _, diags = check_source(text, path)
        print(render_all(diags, {path: text}), end="")
        if has_errors(diags) or (args.strict and diags):
            status = max(status, 1)
    return status


def _load_checked(path: str) -> A.Program | None:
    text = _read(path)
    if text is None:
        return None
    program, diags = check_source(text, path)
    if program is None or has_errors(diags):
        print(render_all(diags, {path: text}), end="")
        print("the script has errors and cannot run / 脚本有错误，不能运行")
        return None
    return program


def _fixture(script: str, data: str | None) -> Fixture:
    if data is not None:
        return load_fixture(data)
    sibling = Path(script).with_name(Path(script).stem + "_mock.toml")
    return load_fixture(sibling) if sibling.exists() else Fixture()


def test_main(argv: list[str]) -> int:
    """``softswitch ivr test FILE``: 0 when the call ran / all transcripts match, else 1."""
    ap = argparse.ArgumentParser(prog="softswitch ivr test",
                                 description="Simulate calls through an IVR script / 模拟来电")
    ap.add_argument("file")
    ap.add_argument("transcripts", nargs="*", help="*.transcript files to replay")
    ap.add_argument("--caller", default="13800000000")
    ap.add_argument("--called", default="4008000000")
    ap.add_argument("--keys", default="", help='key presses per input, e.g. "1 123456#"; '
                    '"-" presses nothing')
    ap.add_argument("--at", default="2026-11-30T10:00", help="local time the call starts")
    ap.add_argument("--mock", action="append", default=[],
                    help='force an outcome, e.g. "queue 客服组=timeout", "lookup 账单=error"')
    ap.add_argument("--input", action="append", default=[], metavar="NAME=VALUE",
                    help="preset a flow input variable, e.g. work_order=202611280007")
    ap.add_argument("--data", help="mock data TOML (default: <script>_mock.toml beside it)")
    ap.add_argument("--update", action="store_true", help="rewrite transcript files")
    ap.add_argument("--coverage", action="store_true", help="print step/branch coverage")
    args = ap.parse_args(argv)
    program = _load_checked(args.file)
    if program is None:
        return 1
    fixture = _fixture(args.file, args.data)
    runs: list[Transcript] = []
    status = 0
    if not args.transcripts:
        try:
            opts = SimOptions(caller=args.caller, called=args.called,
                              at=_dt.datetime.fromisoformat(args.at), keys=args.keys.split())
        except ValueError as exc:
            print(f"--at: {exc}")
            return 2
        for spec in args.mock:
            key, _, value = spec.partition("=")
            opts.mocks[" ".join(key.split())] = value.strip()
        for spec in args.input:
            key, _, value = spec.partition("=")
            opts.inputs[key.strip()] = value.strip()
        t = simulate(program, opts, fixture)
        print(t.text, end="")
        runs.append(t)
    for path in args.transcripts:
        try:
            run = run_transcript_file(program, path, fixture)
        except (OSError, ValueError) as exc:
            print(f"ERROR {path}: {exc}")
            status = 1
            continue
        runs.append(run.transcript)
        if run.ok:
            print(f"PASS {path}")
        elif args.update:
            head = Path(path).read_text(encoding="utf-8").partition("\n---\n")[0]
            write_transcript_file(path, head, run.transcript)
            print(f"UPDATED {path}")
        else:
            print(f"FAIL {path}\n{run.diff()}")
            status = 1
    if args.coverage:
        print(coverage(program, runs).report())
    return status


def transcript_header(path: str) -> dict[str, list[str]]:
    """Header fields of a transcript file (used by tests)."""
    return parse_transcript_file(Path(path).read_text(encoding="utf-8"))[0]
