"""The simulator: the real interpreter against a FakeCall, a fake clock and mocked data.

``simulate(program, options, fixture)`` runs one call and returns its transcript: what is
said, what is pressed, where the call goes, which lookups ran and how the call left.
Transcript files (``*.transcript``) hold the options in a header and the expected lines
after ``---``; ``run_transcript`` compares them, so authors unit-test their flows under
pytest, and :func:`coverage` tells which steps and branches their transcripts exercised.

Nothing here waits: FakeCall answers immediately and advances a fake clock by what the
action would take (prompt length, input timeouts, data-source timeouts), so the coroutine
is driven to completion with ``send(None)`` without an event loop (no asyncio needed, the
module stays pure).

Mocked data (the fixture, a TOML file such as demo/hotline_mock.toml): ``[[tables.NAME]]``
rows are loaded into an in-memory SQLite database, so ``sql`` sources run their real
queries; ``[python.NAME] result = {...}`` gives a Python source's return value;
``[http.SOURCE] result = {...}`` an HTTP source's JSON.

Key tokens: one per input (``"1 123456#"``); ``-`` presses nothing; ``hangup`` hangs up;
``!9`` presses 9 during the next prompt (barge-in: a hotkey during a ``say``, or a menu
choice before the prompt ends). Per-call overrides (``mock:`` header lines or ``--mock``)
force outcomes:
``lookup bills = error|timeout|empty``, ``transfer 13900000000 = busy``,
``queue 客服组 = timeout``, ``record = empty``, ``voicemail = empty``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import sqlite3
import tomllib
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import ast as A
from . import spec as S
from .check_flow import all_stmts
from .datasources import DataSources, bind_args
from .interpreter import (
    CallerHungUp,
    CallResult,
    DataSourceError,
    Interpreter,
    TraceEvent,
    _show,
)

logger = logging.getLogger(__name__)

__all__ = [
    "Coverage",
    "FakeCall",
    "Fixture",
    "SimOptions",
    "Transcript",
    "TranscriptRun",
    "all_branches",
    "coverage",
    "drive",
    "load_fixture",
    "parse_options",
    "parse_transcript_file",
    "run_transcript_file",
    "simulate",
    "write_transcript_file",
]

SECONDS_PER_CHAR = 0.2  # rough speaking rate of a Mandarin TTS prompt
NOTHING = ("-", "_", "(nothing)")
HANGUP = "hangup"  # key token: the caller hangs up instead of pressing


@dataclass(slots=True)
class SimOptions:
    """One simulated call."""

    caller: str = "13800000000"
    called: str = "4008000000"
    at: _dt.datetime = _dt.datetime(2026, 11, 30, 10, 0)
    keys: list[str] = field(default_factory=list)
    mocks: dict[str, str] = field(default_factory=dict)  # "queue 客服组" -> "timeout"
    inputs: dict[str, str] = field(default_factory=dict)  # flow ``input`` variables


@dataclass(slots=True)
class Fixture:
    """Mocked data: SQLite tables, Python source results, HTTP source results."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    python: dict[str, Any] = field(default_factory=dict)
    http: dict[str, Any] = field(default_factory=dict)


def load_fixture(path: str | Path | None) -> Fixture:
    if path is None:
        return Fixture()
    with open(path, "rb") as fh:
        doc = tomllib.load(fh)
    return Fixture(
        tables={k: list(v) for k, v in doc.get("tables", {}).items()},
        python={k: v.get("result") for k, v in doc.get("python", {}).items()},
        http={k: v.get("result") for k, v in doc.get("http", {}).items()},
    )


def _sqlite(fixture: Fixture) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    for name, rows in fixture.tables.items():
        cols: list[str] = []
        for row in rows:
            cols.extend(c for c in row if c not in cols)
        if not cols:
            continue
        db.execute(f'CREATE TABLE "{name}" ({", ".join(f"{chr(34)}{c}{chr(34)}" for c in cols)})')
        for row in rows:
            vals = [str(v) if isinstance(v, _dt.date | Decimal) else v
                    for v in (row.get(c) for c in cols)]
            db.execute(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(cols))})', vals)
    return db


class FakeCall:
    """A CallHandle that answers from a key script and mocks, and writes the transcript."""

    def __init__(self, options: SimOptions, lines: list[str]) -> None:
        self.caller = options.caller
        self.called = options.called
        self.options = options
        self.keys = list(options.keys)
        self.lines = lines
        self.now_s = 0.0
        self.step = ""
        self.recordings = 0

    def local_time(self) -> _dt.datetime:
        return self.options.at + _dt.timedelta(seconds=self.now_s)

    def log(self, text: str) -> None:
        self.lines.append(f"[{self.step}] {text}")

    def _barge(self, bargein: bool) -> str:
        """A key token written ``!9`` is pressed during the prompt (barge-in)."""
        if bargein and self.keys and self.keys[0].startswith("!"):
            token = self.keys.pop(0)[1:]
            self.log(f"press during prompt: {token}")
            return token
        return ""

    async def say(self, text: str, *, bargein: bool) -> str:
        self.log(f"say: {text}")
        self.now_s += SECONDS_PER_CHAR * len(text)
        return self._barge(bargein)

    async def play(self, file: str, *, bargein: bool) -> str:
        self.log(f"play: {file}")
        self.now_s += 3.0
        return self._barge(bargein)

    async def collect(self, *, max_digits: int, timeout_s: float, interdigit_s: float,
                      end_keys: str, first: str = "") -> str:
        done = bool(first) and (len(first) >= max_digits or any(k in first for k in end_keys))
        token = "" if done else (self.keys.pop(0) if self.keys else "")
        if token == HANGUP:
            self.log("caller hangs up")
            raise CallerHungUp()
        if token in NOTHING or token == "":
            if not first:
                self.log("press: (nothing)")
                self.now_s += timeout_s
                return ""
            token = ""
        else:
            self.log(f"press: {token}")
            self.now_s += 0.3 * len(token)
        keys = first + token
        # The CallHandle contract: collection stops at the end key or at max_digits keys,
        # whichever comes first (keys pressed after that are not part of this input).
        for i, k in enumerate(keys[:max_digits + 1]):
            if end_keys and k in end_keys:
                return keys[:i]
        if len(keys) < max_digits and max_digits > 1:
            self.now_s += interdigit_s  # waited for more digits until the interdigit timeout
        return keys[:max_digits]

    def _mock(self, key: str, default: str) -> str:
        return self.options.mocks.get(key, default)

    async def transfer(self, target: str, *, mode: str, timeout_s: float) -> str:
        outcome = self._mock(f"transfer {target}", "connected")
        self.log(f"transfer {target} ({mode}) -> {outcome}")
        if outcome != "connected":
            self.now_s += timeout_s if outcome == "noanswer" else 1.0
        return outcome

    async def enqueue(self, queue: str, *, skill: str | None, priority: int,
                      maxwait_s: float | None, tags: dict[str, Any]) -> str:
        outcome = self._mock(f"queue {queue}", "answered")
        extra = f" skill {skill}" if skill else ""
        shown = ", ".join(f"{k}={_show(v)}" for k, v in tags.items())
        self.log(f"queue {queue}{extra} priority {priority} -> {outcome}"
                 + (f" [{shown}]" if shown else ""))
        if outcome == "timeout" and maxwait_s:
            self.now_s += maxwait_s
        return outcome

    async def record(self, *, maxlen_s: float, beep: bool, end_keys: str,
                     mailbox: str | None) -> str | None:
        where = f"voicemail {mailbox}" if mailbox else "record"
        key = "voicemail" if mailbox else "record"
        outcome = self._mock(key, "done")
        self.log(f"{where} (max {maxlen_s:g}s) -> {outcome}")
        if outcome == "empty":
            self.now_s += 5.0
            return None
        self.recordings += 1
        self.now_s += min(maxlen_s, 20.0)
        return f"rec-{self.recordings}"

    async def tag(self, key: str, value: Any) -> None:
        self.log(f"tag {key} = {_show(value)}")

    async def hangup(self) -> None:
        self.log("hangup")


class _MockedSources:
    """Lookups against the fixture, with per-call failure overrides and a fake clock."""

    def __init__(self, fixture: Fixture, call: FakeCall, db: sqlite3.Connection) -> None:
        self.fixture = fixture
        self.call = call
        self.db = db

        async def sql(query: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
            return [dict(r) for r in self.db.execute(query, dict(params)).fetchall()]

        python = {name: (lambda *a, _v=value: _v) for name, value in fixture.python.items()}
        self.real = DataSources(sql=sql, python=python)

    async def __call__(self, src: A.SourceDecl, args: list[Any], timeout_s: float) -> Any:
        forced = self.call.options.mocks.get(f"lookup {src.name.text}")
        if forced == "timeout":
            self.call.now_s += timeout_s
            raise DataSourceError(f"timed out after {timeout_s:g}s")
        if forced == "error":
            self.call.now_s += 0.1
            raise DataSourceError("mocked failure")
        if forced == "empty":
            return None
        self.call.now_s += 0.05
        if src.kind.text == "http":
            bind_args(src, args)
            if src.name.text not in self.fixture.http:
                raise DataSourceError(f"no mocked HTTP result for {src.name.text}")
            return self.fixture.http[src.name.text]
        try:
            return await self.real.lookup(src, args, timeout_s)
        except sqlite3.Error as exc:
            raise DataSourceError(f"sql: {exc}") from exc


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never truly suspends (everything it awaits is fake)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the simulated call awaited real I/O")


@dataclass(slots=True)
class Transcript:
    lines: list[str]
    result: CallResult
    events: list[TraceEvent]

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def simulate(program: A.Program, options: SimOptions, fixture: Fixture | None = None,
             *, budget: int = 10_000) -> Transcript:
    """Run one simulated call; returns the transcript, the result and the trace events."""
    lines: list[str] = []
    events: list[TraceEvent] = []
    call = FakeCall(options, lines)
    db = _sqlite(fixture or Fixture())

    def trace(ev: TraceEvent) -> None:
        events.append(ev)
        call.step = ev.step
        if ev.kind == "goto":
            call.log(f"-> {ev.detail}")
        elif ev.kind == "lookup":
            call.log(f"lookup {ev.detail}")
        elif ev.kind == "error":
            call.log(f"error: {ev.detail}")
        elif ev.kind == "end":
            lines.append(f"end: {ev.detail} at {call.now_s:.1f}s")

    try:
        interp = Interpreter(program, call, _MockedSources(fixture or Fixture(), call, db),
                             budget=budget, trace=trace, variables=options.inputs)
        result = drive(interp.run())
    finally:
        db.close()
    return Transcript(lines, result, events)


# ---------------------------------------------------------------------------- coverage


def _bid(span: A.Span, label: str) -> str:
    return f"{span.line}:{span.col} {label}"


def _stmt_branches(body: tuple[A.Stmt, ...]) -> Iterable[str]:
    for st in all_stmts(body):
        if isinstance(st, A.If):
            yield from (_bid(st.span, f"if {i + 1}") for i in range(len(st.branches)))
            yield _bid(st.span, "else")
        elif isinstance(st, A.WithOutcomes):
            yield _bid(st.span, S.success_label(st))
            yield from (_bid(st.span, ev) for ev in S.clause_map(st.clauses, type(st)))


def all_branches(program: A.Program) -> set[str]:
    """Every step ("step X") and branch ("line:col label") a transcript could exercise."""
    out: set[str] = {f"step {s.name.text}" for s in program.steps}
    if program.flow is not None:
        out |= {_bid(h.span, "hotkey") for h in program.flow.hotkeys}
        for c in program.flow.clauses:
            if "error" in {S.canonical(e.text, S.OUTCOMES[A.Flow]) for e in c.events}:
                out.add(_bid(c.span, "error"))
            out |= set(_stmt_branches(c.body))
    for node in program.steps:
        if isinstance(node, A.Step):
            out |= set(_stmt_branches(node.body))
            continue
        out.add(_bid(node.span, "failure"))
        declared = S.clause_map(node.clauses, type(node))
        out |= {_bid(node.span, ev) for ev in declared if ev != "failure"}
        if isinstance(node, A.Ask):
            out.add(_bid(node.span, "ok"))
        else:
            out |= {_bid(node.span, f"key {e.key}") for e in node.entries}
            for e in node.entries:
                out |= set(_stmt_branches(e.body))
        for c in node.clauses:
            out |= set(_stmt_branches(c.body))
    for sub in program.subs:
        out |= set(_stmt_branches(sub.body))
    return out


@dataclass(slots=True)
class Coverage:
    """Steps ("step X") and branches ("line:col label") of a program, and those hit."""

    total: set[str]
    hit: set[str]
    where: dict[str, str] = field(default_factory=dict)  # branch id -> enclosing step

    @property
    def missed(self) -> list[str]:
        return sorted(self.total - self.hit, key=_sort_key)

    def _split(self) -> tuple[set[str], set[str]]:
        steps = {b for b in self.total if b.startswith("step ")}
        return steps, self.total - steps

    @property
    def steps_percent(self) -> float:
        steps, _ = self._split()
        return 100.0 * len(steps & self.hit) / len(steps) if steps else 100.0

    @property
    def branches_percent(self) -> float:
        _, branches = self._split()
        return 100.0 * len(branches & self.hit) / len(branches) if branches else 100.0

    def report(self) -> str:
        steps, branches = self._split()
        lines = [f"coverage: steps {len(steps & self.hit)}/{len(steps)} "
                 f"({self.steps_percent:.0f}%), branches {len(branches & self.hit)}/"
                 f"{len(branches)} ({self.branches_percent:.0f}%)"]
        lines += [f"  not covered: {m}" + (f" (in {self.where[m]})" if m in self.where else "")
                  for m in self.missed]
        return "\n".join(lines)


def _sort_key(b: str) -> tuple[int, int, str]:
    head, _, label = b.partition(" ")
    if ":" in head:
        line, _, col = head.partition(":")
        return (int(line), int(col), label)
    return (0, 0, b)


def coverage(program: A.Program, transcripts: Iterable[Transcript]) -> Coverage:
    hit: set[str] = set()
    for t in transcripts:
        for ev in t.events:
            if ev.kind == "enter":
                hit.add(f"step {ev.detail}")
            elif ev.kind == "branch" and ev.span is not None:
                hit.add(_bid(ev.span, ev.detail))
    total = all_branches(program)
    where: dict[str, str] = {}
    blocks = [(n.span.line, n.span.end_line or n.span.line, n.name.text)
              for n in [*program.steps, *program.subs]]
    for b in total:
        if not b.startswith("step "):
            line = _sort_key(b)[0]
            where[b] = next((name for lo, hi, name in blocks if lo <= line < max(hi, lo + 1)),
                            "flow")
    return Coverage(total, hit & total, where)


# ---------------------------------------------------------------------------- files


def parse_options(header: Mapping[str, list[str]]) -> SimOptions:
    opts = SimOptions()
    if "caller" in header:
        opts.caller = header["caller"][-1]
    if "called" in header:
        opts.called = header["called"][-1]
    if "at" in header:
        opts.at = _dt.datetime.fromisoformat(header["at"][-1])
    if "keys" in header:
        opts.keys = header["keys"][-1].split()
    for spec in header.get("mock", []):
        key, _, value = spec.partition("=")
        opts.mocks[" ".join(key.split())] = value.strip()
    for spec in header.get("input", []):
        key, _, value = spec.partition("=")
        opts.inputs[key.strip()] = value.strip()
    return opts


def parse_transcript_file(text: str) -> tuple[dict[str, list[str]], list[str]]:
    """Header fields (``name: value`` lines, repeatable) and the expected lines."""
    header: dict[str, list[str]] = {}
    head, sep, body = text.partition("\n---\n")
    if not sep:
        raise ValueError("a transcript file needs a '---' line between header and body")
    for raw in head.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition(":")
        header.setdefault(name.strip(), []).append(value.strip())
    return header, body.rstrip("\n").splitlines()


@dataclass(slots=True)
class TranscriptRun:
    """Outcome of replaying one transcript file."""

    path: Path
    expected: list[str]
    transcript: Transcript

    @property
    def ok(self) -> bool:
        return self.transcript.lines == self.expected

    def diff(self) -> str:
        import difflib

        return "\n".join(difflib.unified_diff(self.expected, self.transcript.lines,
                                              "expected", "actual", lineterm=""))


def run_transcript_file(program: A.Program, path: str | Path, fixture: Fixture | None
                        ) -> TranscriptRun:
    """Replay a ``.transcript`` file's call and compare with its expected lines."""
    path = Path(path)
    header, expected = parse_transcript_file(path.read_text(encoding="utf-8"))
    transcript = simulate(program, parse_options(header), fixture)
    return TranscriptRun(path, expected, transcript)


def write_transcript_file(path: str | Path, header_text: str, transcript: Transcript) -> None:
    """(Re)write a transcript file: the given header, ``---``, the actual lines."""
    Path(path).write_text(header_text.rstrip("\n") + "\n---\n" + transcript.text,
                          encoding="utf-8")
