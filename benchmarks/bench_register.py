"""Authenticated REGISTER transactions per second sustained by a running node, driven by SIPp.

A node is started as a subprocess on loopback with N users; SIPp registers them with digest
authentication (REGISTER -> 401 -> REGISTER with credentials -> 200) at a series of rates,
each step bounded in calls and time. A step passes when every registration succeeded. The
figure reported is the highest passing rate; "registrations/s" counts completed
challenge+register pairs (two SIP transactions each).

    python -m benchmarks.bench_register [--rates 500,1000,2000] [--seconds 10] [--json F]
    python -m benchmarks.bench_register --smoke
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.nodes import (
    cpu_seconds,
    create_users,
    free_port,
    read_sipp_screens,
    wait_ready,
)

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "interop" / "sipp" / "register_auth.xml"


def _run_step(workdir: Path, port: int, users_csv: Path, rate: int, seconds: float,
              node_pid: int) -> dict[str, float]:
    calls = max(1, int(rate * seconds))
    cpu0 = cpu_seconds(node_pid)
    t0 = time.monotonic()
    cmd = [
        "sipp", "-sf", str(SCENARIO), f"127.0.0.1:{port}", "-i", "127.0.0.1",
        "-p", str(free_port()), "-inf", str(users_csv), "-r", str(rate), "-m", str(calls),
        "-l", str(max(100, rate * 2)), "-nostdin", "-trace_screen", "-timeout",
        str(int(seconds + 30)), "-timeout_error", "-buff_size", "4194304", "-max_socket", "1000",
    ]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True,
                          timeout=seconds + 60)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(node_pid) - cpu0
    succeeded, failed_n, offered = read_sipp_screens(workdir)
    failed = failed_n if failed_n is not None else calls - succeeded
    return {
        "offered_per_s": round(offered, 1),
        "target_rate": rate,
        "calls": calls,
        "succeeded": succeeded,
        "failed": failed,
        "sipp_rc": proc.returncode,
        "achieved_per_s": round(succeeded / wall, 1) if wall > 0 else 0.0,
        "node_cpu_ms_per_registration": round(1000 * cpu / max(1, succeeded), 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="250,500,1000,1500,2000,2500,3000")
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each step")
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--smoke", action="store_true", help="tiny run: 20 registrations")
    ap.add_argument("--json", help="write results as JSON to this file")
    args = ap.parse_args(argv)
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install sip-tester)", file=sys.stderr)
        return 2
    rates = [int(r) for r in args.rates.split(",")]
    seconds = args.seconds
    users = args.users
    if args.smoke:
        rates, seconds, users = [20], 1.0, 50

    with tempfile.TemporaryDirectory(prefix="bench_register_") as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir()
        asyncio.run(create_users(data, users, "secret"))
        users_csv = work / "users.csv"
        users_csv.write_text("SEQUENTIAL\n" + "".join(
            f"u{i:05d};[authentication username=u{i:05d} password=secret]\n"
            for i in range(users)))
        port = free_port()
        log = open(work / "node.log", "wb")  # noqa: SIM115
        node = subprocess.Popen(
            [sys.executable, "-m", "switch.cli", "run", "--data-dir", str(data), "--bind",
             "127.0.0.1", "--sip-port", str(port), "--log-level", "WARNING"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
        results = []
        try:
            wait_ready(port, node)
            for rate in rates:
                step = _run_step(work, port, users_csv, rate, seconds, node.pid)
                results.append(step)
                if not args.smoke and (step["failed"] or step["offered_per_s"] < 0.95 * rate):
                    break  # failure is a cliff: higher rates only fail harder
                time.sleep(1.0)
        finally:
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(20)
            except subprocess.TimeoutExpired:
                node.kill()
            log.close()
            if any(r["failed"] for r in results):
                tail = (work / "node.log").read_text(errors="replace").splitlines()[-15:]
                print("node log (last lines):", *tail, sep="\n  ", file=sys.stderr)

    # A step passes when nothing failed and SIPp really offered the load (a starved
    # generator that fell behind its target proves nothing about the node).
    passing = [r for r in results if r["failed"] == 0 and r["succeeded"] == r["calls"]
               and r["offered_per_s"] >= 0.95 * r["target_rate"]]
    best = max((r["offered_per_s"] for r in passing), default=0)
    print(f"{'target/s':>9} {'offered/s':>9} {'calls':>7} {'ok':>7} {'failed':>6} "
          f"{'done/wall s':>11} {'node CPU ms/reg':>15}")
    for r in results:
        print(f"{r['target_rate']:>9} {r['offered_per_s']:>9} {r['calls']:>7} "
              f"{r['succeeded']:>7} {r['failed']:>6} {r['achieved_per_s']:>11} "
              f"{r['node_cpu_ms_per_registration']:>15}")
    print(f"highest sustained rate with 0 failures: {best} authenticated registrations/s")
    out = {"benchmark": "register", "steps": results, "best_rate_zero_failures": best,
           "step_seconds": seconds, "users": users}
    text = json.dumps(out, indent=2)
    if args.json:
        Path(args.json).write_text(text)
    else:
        print(text)
    return 0 if (best > 0) else 1


if __name__ == "__main__":
    sys.exit(main())
