"""Outbound campaign calls per second and concurrent campaign calls a running node sustains.

A node is started as a subprocess on loopback with one trunk whose carrier is a SIPp UAS:
it answers every call, presses 1 (SIP INFO) after ``--hold-ms`` and waits for the switch's
thanks and BYE, so each attempt is a whole campaign call: INVITE, 200, the message's media,
a key, the goodbye prompt, BYE, and the outcome written to the database. Each step creates a
campaign of ``rate x seconds`` contacts with ``calls_per_second = rate`` and enough lines,
starts it through ``softswitch campaign start`` and waits until the node completes it.

Figures per step, all from what the node stored: attempts per second (first start to last
end), the peak number of campaign calls up at once (from the attempts' start and end
times), that every attempt has an outcome (``acknowledged``), and the node's CPU time per
attempt (CPU time, not wall time: the machine is shared, so CPU is the stable figure). A
step passes when every contact was called exactly once, every outcome is stored and SIPp
counted no failure; stepping stops at the first failing step.

    python -m benchmarks.bench_dialer [--rates 10,20,40] [--seconds 10] [--hold-ms 2000]
    python -m benchmarks.bench_dialer --smoke
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.nodes import cpu_seconds, free_port, read_sipp_screens, wait_ready
from benchmarks.report import emit_json

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "interop" / "sipp" / "uas_campaign_key.xml"


def _cli(data: Path, cfg: Path, *args: str) -> None:
    res = subprocess.run([sys.executable, "-m", "switch.cli", "campaign", *args, "--data-dir",
                          str(data), "--config", str(cfg)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise RuntimeError(f"campaign {args[0]} failed: {res.stdout}{res.stderr}")


def _db(data: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data / "softswitch.db", timeout=10) as db:
        return list(db.execute(sql, args))


def _peak(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def _step(work: Path, data: Path, cfg: Path, node_pid: int, sipp_port: int, step_no: int,
          rate: int, seconds: float, hold_ms: int) -> dict[str, Any]:
    contacts = max(1, int(rate * seconds))
    name = f"bench-{step_no}-{rate}"
    csv = work / f"{name}.csv"
    csv.write_text("name,phone\n" + "".join(f"住户,139{step_no:02d}{i:06d}\n"
                                            for i in range(contacts)), encoding="utf-8")
    lines = max(4, int(rate * (hold_ms / 1000 + 3) * 1.5))
    _cli(data, cfg, "create", name, "--kind", "outage", "--csv", str(csv), "--area", "3栋",
         "--what", "水", "--date", "2026-12-02", "--start", "09:00", "--end", "17:00",
         "--hours", "daily 00:00-24:00", "--lines", str(lines), "--cps", str(rate),
         "--burst", str(max(1, rate // 5)), "--trunk", "carrier", "--ring-timeout", "10")
    keys = work / "keys.csv"
    keys.write_text("SEQUENTIAL\n1\n")
    sipp_dir = work / f"sipp-{step_no}"
    sipp_dir.mkdir()
    sipp = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIO), "-i", "127.0.0.1", "-p", str(sipp_port),
         "-mp", str(free_port()), "-m", str(contacts), "-inf", str(keys), "-d", str(hold_ms),
         "-nostdin", "-trace_screen", "-timeout", str(int(seconds * 3 + 60)),
         "-timeout_error", "-buff_size", "4194304", "-max_socket", "2000"],
        cwd=sipp_dir, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    cpu0 = cpu_seconds(node_pid)
    _cli(data, cfg, "start", name)
    deadline = time.monotonic() + seconds * 3 + 60
    state = ""
    while time.monotonic() < deadline:
        state = _db(data, "SELECT state FROM campaigns WHERE name = ?", name)[0][0]
        if state in ("completed", "stopped"):
            break
        time.sleep(0.5)
    cpu = cpu_seconds(node_pid) - cpu0
    try:
        sipp.wait(30)
    except subprocess.TimeoutExpired:
        sipp.kill()
        sipp.wait(5)
    ok, failed, _ = read_sipp_screens(sipp_dir)
    rows = _db(data, "SELECT a.contact_id, a.outcome, a.started_at, a.ended_at "
                     "FROM campaign_attempts a JOIN campaigns c ON c.id = a.campaign_id "
                     "WHERE c.name = ?", name)
    ended = [r for r in rows if r[3] is not None]
    span = (max(r[3] for r in ended) - min(r[2] for r in ended)) if ended else 0.0
    starts = sorted(r[2] for r in rows)
    start_span = starts[-1] - starts[0] if len(starts) > 1 else 0.0
    outcomes: dict[str, int] = {}
    for r in rows:
        outcomes[r[1] or "none"] = outcomes.get(r[1] or "none", 0) + 1
    return {
        "target_cps": rate, "contacts": contacts, "lines": lines, "hold_ms": hold_ms,
        "state": state, "attempts": len(rows),
        "distinct_contacts": len({r[0] for r in rows}), "outcomes": outcomes,
        "attempts_per_s": round(len(rows) / span, 2) if span > 0 else 0.0,
        "starts_per_s": round((len(starts) - 1) / start_span, 2) if start_span > 0 else 0.0,
        "peak_concurrent_calls": _peak([(r[2], r[3]) for r in ended]),
        "sipp_ok": ok, "sipp_failed": failed if failed is not None else contacts - ok,
        "node_cpu_ms_per_attempt": round(1000 * cpu / max(1, len(rows)), 2),
        "passed": (state == "completed" and len(rows) == contacts
                   and outcomes == {"acknowledged": contacts} and ok == contacts),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="10,20,40", help="calls per second of each step")
    ap.add_argument("--seconds", type=float, default=10.0, help="contacts = rate x seconds")
    ap.add_argument("--hold-ms", type=int, default=2000,
                    help="how long the resident listens before pressing 1")
    ap.add_argument("--smoke", action="store_true", help="tiny run: 10 calls")
    ap.add_argument("--json", help="write results as JSON to this file")
    args = ap.parse_args(argv)
    import shutil

    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install sip-tester)", file=sys.stderr)
        return 2
    rates = [int(r) for r in args.rates.split(",")]
    seconds, hold_ms = args.seconds, args.hold_ms
    if args.smoke:
        rates, seconds, hold_ms = [10], 1.0, 200

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_dialer_") as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir()
        port, sipp_port = free_port(), free_port()
        cfg = work / "node.toml"
        cfg.write_text(f'[trunks.carrier]\nhost = "127.0.0.1"\nport = {sipp_port}\n'
                       "max_calls = 5000\n", encoding="utf-8")
        log = open(work / "node.log", "wb")  # noqa: SIM115
        node = subprocess.Popen(
            [sys.executable, "-m", "switch.cli", "run", "--data-dir", str(data), "--config",
             str(cfg), "--bind", "127.0.0.1", "--sip-port", str(port), "--log-level",
             "WARNING"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(port, node)
            for i, rate in enumerate(rates):
                step = _step(work, data, cfg, node.pid, sipp_port, i, rate, seconds, hold_ms)
                results.append(step)
                if not step["passed"]:
                    break  # failure is a cliff: higher rates only fail harder
        finally:
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(30)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait(5)
            log.close()
            if any(not r["passed"] for r in results):
                tail = (work / "node.log").read_text(errors="replace").splitlines()[-15:]
                print("node log (last lines):", *tail, sep="\n  ", file=sys.stderr)

    passing = [r for r in results if r["passed"]]
    best = max(passing, key=lambda r: r["attempts_per_s"], default=None)
    print(f"{'cps':>5} {'calls':>6} {'lines':>6} {'done/s':>10} {'dials/s':>9} "
          f"{'peak up':>8} {'stored':>7} {'sipp ok':>8} {'CPU ms/call':>11} {'pass':>5}")
    for r in results:
        print(f"{r['target_cps']:>5} {r['contacts']:>6} {r['lines']:>6} "
              f"{r['attempts_per_s']:>10} {r['starts_per_s']:>9} "
              f"{r['peak_concurrent_calls']:>8} {r['attempts']:>7} {r['sipp_ok']:>8} "
              f"{r['node_cpu_ms_per_attempt']:>11} {'yes' if r['passed'] else 'NO':>5}")
    if best is not None:
        print(f"best passing step: {best['attempts_per_s']} campaign calls/s, "
              f"{best['peak_concurrent_calls']} up at once, every outcome stored")
    emit_json({"benchmark": "dialer", "steps": results, "hold_ms": hold_ms,
               "step_seconds": seconds,
               "best_attempts_per_s": best["attempts_per_s"] if best else 0.0,
               "best_peak_concurrent_calls": best["peak_concurrent_calls"] if best else 0},
              args.json)
    return 0 if best is not None else 1


if __name__ == "__main__":
    sys.exit(main())
