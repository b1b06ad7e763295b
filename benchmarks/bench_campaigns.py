"""Campaign scheduler throughput: 100,000 contacts through the sans-IO CampaignScheduler.

A *decision* is one dial handed out by ``next_actions`` or one outcome applied by
``record_outcome`` (retry policy, opt-out, completion). Cases, one core, no I/O:

* ``run to completion``: 200 lines, 50 calls/s, calls last 30 s, outcomes drawn from a
  seeded mix (45% acknowledged, 15% answered, 15% busy, 15% no answer, 8% failed, 2% opted
  out) with the default retry policy, inside a weekday 09:00-20:00 window (nights and the
  weekend are skipped through ``next_deadline``), until the campaign completes;
* ``restore``: rebuild the scheduler from 100,000 contacts and one persisted attempt each
  (a tenth of them still DIALING, as after a crash): contacts/s;
* ``build``: a fresh scheduler over 100,000 contacts: contacts/s.

Usage: ``python -m benchmarks.bench_campaigns [--n N] [--smoke] [--json FILE]``. Prints a
table, then the JSON (to FILE when given, else to stdout).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from collections import deque
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

from benchmarks.report import emit_json
from switch.campaigns import (
    Attempt,
    CallingWindow,
    Campaign,
    CampaignCommand,
    CampaignKind,
    CampaignScheduler,
    CampaignState,
    Contact,
    Limits,
    Outcome,
    ResumeState,
)

LINES = 200
CPS = 50.0
CALL_S = 30.0
T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
MIX = ([Outcome.ACKNOWLEDGED] * 45 + [Outcome.ANSWERED] * 15 + [Outcome.BUSY] * 15
       + [Outcome.NO_ANSWER] * 15 + [Outcome.FAILED] * 8 + [Outcome.OPTED_OUT] * 2)


def _campaign(state: CampaignState = CampaignState.DRAFT) -> Campaign:
    return Campaign("bench", CampaignKind.ARREARS_REMINDER,
                    window=CallingWindow(("mon-fri 09:00-20:00",)),
                    limits=Limits(LINES, CPS, LINES), id=1, state=state)


def _contacts(n: int) -> list[Contact]:
    return [Contact(i, "住户", str(13_000_000_000 + i), f"+86{13_000_000_000 + i}")
            for i in range(1, n + 1)]


def bench_run(n: int) -> dict[str, Any]:
    """Drive a whole campaign the way the dialer does, with a fake clock."""
    rng = Random(11)
    sched = CampaignScheduler(_campaign(), _contacts(n))
    sched.handle(CampaignCommand.START)
    calls: deque[tuple[float, int]] = deque()
    now, dials, outcomes = T0, 0, 0
    start = time.perf_counter()
    while sched.state is CampaignState.RUNNING:
        for dial in sched.next_actions(now, len(calls)):
            calls.append((now + CALL_S, dial.contact.id))
            dials += 1
        deadline = sched.next_deadline()
        nxt = min(calls[0][0] if calls else float("inf"),
                  deadline if deadline is not None else float("inf"))
        if nxt == float("inf"):
            break
        now = max(now, nxt)
        while calls and calls[0][0] <= now:
            _, cid = calls.popleft()
            sched.record_outcome(cid, rng.choice(MIX), now)
            outcomes += 1
    seconds = time.perf_counter() - start
    progress = sched.progress()
    return {"name": "run to completion", "ops": n, "decisions": dials + outcomes,
            "dials": dials, "seconds": seconds, "state": sched.state.value,
            "simulated_hours": round((now - T0) / 3600, 1), "done": progress.done}


def bench_restore(n: int) -> dict[str, Any]:
    contacts = _contacts(n)
    rng = Random(5)
    attempts = tuple(
        Attempt(c.id, 1, T0, None, None) if i % 10 == 0 else
        Attempt(c.id, 1, T0, T0 + 30, rng.choice(MIX)) for i, c in enumerate(contacts))
    state = ResumeState(_campaign(CampaignState.RUNNING), tuple(contacts), attempts,
                        frozenset())
    start = time.perf_counter()
    sched, cut = CampaignScheduler.restore(state, T0 + 60)
    seconds = time.perf_counter() - start
    assert len(cut) == (n + 9) // 10 and sched.progress().total == n
    return {"name": "restore", "ops": n, "decisions": n, "seconds": seconds}


def bench_build(n: int) -> dict[str, Any]:
    contacts = _contacts(n)
    start = time.perf_counter()
    CampaignScheduler(_campaign(), contacts)
    return {"name": "build", "ops": n, "decisions": n, "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=100_000, help="contacts")
    parser.add_argument("--smoke", action="store_true", help="tiny run (CI)")
    parser.add_argument("--json", metavar="FILE", help="write JSON here instead of stdout")
    args = parser.parse_args(argv)
    n = 1000 if args.smoke else args.n
    logging.getLogger("switch.campaigns").setLevel(logging.ERROR)  # the restore case warns
    rows = [bench_run(n), bench_restore(n), bench_build(n)]
    for row in rows:
        row["seconds"] = max(row["seconds"], 1e-9)
        row["decisions_per_s"] = round(row["decisions"] / row["seconds"], 1)
    print(f"{'case':<20} {'contacts':>9} {'decisions':>10} {'seconds':>8} {'decisions/s':>12}")
    for row in rows:
        print(f"{row['name']:<20} {row['ops']:>9} {row['decisions']:>10} {row['seconds']:>8.3f}"
              f" {row['decisions_per_s']:>12,.0f}")
    doc = {"benchmark": "campaigns", "smoke": args.smoke, "n": n, "lines": LINES,
           "calls_per_second": CPS, "python": sys.version.split()[0], "results": rows}
    emit_json(doc, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
