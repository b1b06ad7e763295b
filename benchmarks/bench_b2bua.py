"""Calls per second through the B2BUA, side by side with Sippy B2BUA, and concurrent
anchored calls; SIPp uac -> B2BUA -> SIPp uas on loopback.

Part 1, calls per second (issue 4 "Benchmark"). The switch runs as a subprocess with a
dial plan that routes ``_10XX`` with ``media = "direct"`` (``switch.direct_media``: SDP
passed through, no media channel, no RTP), the callee SIPp is registered as extension
1002, and the caller SIPp authenticates every INVITE as user 1001 (INVITE -> 407 -> ACK ->
INVITE with Proxy-Authorization -> 180 -> 200 -> ACK -> BYE -> 200: 2 INVITE transactions
per call on the caller side). Rates are stepped up (``--rates``), each step a bounded
number of calls; a step passes when SIPp offered at least 80% of the target rate (a
starved generator proves nothing) and every call succeeded on both SIPp sides. Then the
final run: ``--final-calls`` (30,000) calls at the highest passing rate; if it fails, the
rate is lowered by 10% and the run repeated (bounded); it passes with 0 failures. The
rate reported is what SIPp really offered in the final run, next to the CPU-time
capacity (1000 / CPU ms per call: the calls per second one fully used core would carry).
The same steps are run with Sippy B2BUA (``b2bua_simple`` from PyPI ``sippy``, its
stateless next-hop B2BUA, pass-through SDP, no authentication: its caller scenario has no
407 round) in place of the switch.

Part 2, concurrent anchored calls: the default ``_10XX`` rule (media anchored: both legs
get a media channel, the engine bridges them). SIPp callers stream RTP (PCMU, from
SIPp's ``rtp_stream``) and the SIPp callee echoes it (``-rtp_echo``), so audio crosses
both media legs; calls are held ``--hold-s`` seconds at ``--concurrent`` at once.
Reported: calls set up and completed, node CPU, and per-leg RTP loss from the CDRs.

CPU is read from /proc for the B2BUA process and its children (the switch's media
workers), user+system, and reported per call:
the machine is shared, so wall-clock rates are noisy; CPU ms per call is the steadier
figure.

    python -m benchmarks.bench_b2bua [--rates 100,200,...] [--final-calls 30000]
        [--concurrent 200,400] [--hold-s 20] [--no-sippy] [--json F]
    python -m benchmarks.bench_b2bua --smoke
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.nodes import cpu_seconds, free_port, read_sipp_screens, wait_ready
from benchmarks.report import emit_json

ROOT = Path(__file__).resolve().parents[1]
SIPP = ROOT / "tests" / "interop" / "sipp"
PASSWORD = "secret"

DIRECT_TOML = """
[calls]
no_answer_timeout_s = 20
max_call_duration_s = 0

[dialplan]
[[dialplan.rules]]
name = "extensions"
match = "_10XX"
target = "extension"
media = "{media}"
"""


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its descendants (the switch's media worker processes)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            total += cpu_seconds(p)
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


@dataclass
class Peer:
    """The B2BUA under test: a process, its SIP port and the caller scenario it takes."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    uac: Path
    register_to: int | None
    """Where the callee SIPp registers (the switch), None: the B2BUA has a fixed next hop."""


def _sipp_uas(workdir: Path, port: int, calls: int, scenario: str = "uas_bench.xml",
              *extra: str) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        ["sipp", "-sf", str(SIPP / scenario), "-i", "127.0.0.1", "-p", str(port),
         "-mp", str(free_port()), "-m", str(calls), "-nostdin", "-trace_screen", "-trace_err",
         # A late retransmission (an ACK after our BYE's 200) is logged, not a failure:
         # the call itself completed.
         "-default_behaviors", "all,-abortunexp",
         "-buff_size", "4194304", "-max_socket", "2000", *extra],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _sipp_uac(workdir: Path, peer: Peer, csv: Path, rate: float, calls: int, hold_ms: int,
              limit: int, timeout_s: float, *extra: str) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        ["sipp", "-sf", str(peer.uac), f"127.0.0.1:{peer.port}", "-i", "127.0.0.1",
         "-p", str(free_port()), "-mp", str(free_port()), "-inf", str(csv),
         "-auth_uri", f"1002@127.0.0.1:{peer.port}", "-r", str(rate), "-m", str(calls),
         "-l", str(limit), "-d", str(hold_ms), "-nostdin", "-trace_screen", "-trace_err",
         "-default_behaviors", "all,-abortunexp", "-recv_timeout", "20000",
         "-timeout", str(int(timeout_s)), "-timeout_error", "-buff_size", "4194304",
         "-max_socket", "2000", *extra],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return -9


def _register(work: Path, switch_port: int, contact_port: int) -> None:
    csv = work / "reg.csv"
    csv.write_text(f"SEQUENTIAL\n1002;[authentication username=1002 password={PASSWORD}]\n")
    proc = subprocess.run(
        ["sipp", "-sf", str(SIPP / "register_auth.xml"), f"127.0.0.1:{switch_port}",
         "-i", "127.0.0.1", "-p", str(contact_port), "-inf", str(csv), "-m", "1", "-nostdin",
         "-timeout", "10", "-timeout_error"],
        cwd=work, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"registering the callee failed: {proc.stdout[-500:]}")


def run_step(work: Path, peer: Peer, uas_port: int, rate: float, calls: int, *,
             hold_ms: int = 0, limit: int | None = None, uac_extra: tuple[str, ...] = (),
             uas_extra: tuple[str, ...] = (),
             during: Callable[[], None] | None = None) -> dict[str, Any]:
    """One SIPp run of ``calls`` calls at ``rate``/s through ``peer``; both SIPp sides'
    screens are read, failures on either side count."""
    uac_dir, uas_dir = work / "uac", work / "uas"
    for d in (uac_dir, uas_dir):
        if d.exists():
            shutil.rmtree(d)
    if peer.register_to is not None:
        _register(work, peer.register_to, uas_port)
    csv = work / "uac.csv"
    csv.write_text(f"SEQUENTIAL\n1001;[authentication username=1001 password={PASSWORD}];"
                   "1002\n")
    expected_s = calls / rate + hold_ms / 1000
    timeout = 2 * expected_s + 60  # a starved generator runs late; still bounded
    uas = _sipp_uas(uas_dir, uas_port, calls, "uas_bench.xml", *uas_extra)
    time.sleep(0.3)
    cpu0 = tree_cpu(peer.proc.pid)
    t0 = time.monotonic()
    uac = _sipp_uac(uac_dir, peer, csv, rate, calls, hold_ms,
                    limit or max(200, int(rate * (hold_ms / 1000 + 4))), timeout, *uac_extra)
    if during is not None:
        during()
    uac_rc = _wait(uac, timeout + 30)
    wall = time.monotonic() - t0
    cpu = tree_cpu(peer.proc.pid) - cpu0
    uas_rc = _wait(uas, 15)
    ok, failed, offered = read_sipp_screens(uac_dir)
    uas_ok, uas_failed, _ = read_sipp_screens(uas_dir)
    failed_total = (failed if failed is not None else calls - ok) + (uas_failed or 0)
    return {
        "b2bua": peer.name, "target_rate": rate, "offered_per_s": round(offered, 1),
        "calls": calls, "succeeded": ok, "failed": failed_total,
        "uas_succeeded": uas_ok, "uac_rc": uac_rc, "uas_rc": uas_rc,
        "wall_s": round(wall, 1),
        "completed_per_s": round(ok / max(1e-9, wall - hold_ms / 1000), 1),
        "cpu_s": round(cpu, 2),
        "cpu_ms_per_call": round(1000 * cpu / max(1, ok), 3),
        "cpu_share": round(cpu / max(1e-9, wall), 2),
    }


def _passes(step: dict[str, Any]) -> bool:
    return (step["failed"] == 0 and step["succeeded"] == step["calls"]
            and step["offered_per_s"] >= 0.8 * step["target_rate"])


def cps_series(work: Path, peer: Peer, uas_port: int, rates: list[int], step_calls: Callable[
        [int], int], final_calls: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Step the rate until a step fails, then the long final run at the best rate."""
    steps: list[dict[str, Any]] = []
    best = 0
    for rate in rates:
        step = run_step(work, peer, uas_port, rate, step_calls(rate))
        steps.append(step)
        log(f"  {peer.name} {rate}/s (offered {step['offered_per_s']}/s): "
            f"{step['succeeded']}/{step['calls']} ok, {step['failed']} failed, "
            f"{step['cpu_ms_per_call']} ms CPU/call")
        if not _passes(step):
            break
        best = rate
        time.sleep(1.0)
    final: dict[str, Any] | None = None
    rate = best
    for _ in range(3):
        if rate <= 0 or final_calls <= 0:
            break
        final = run_step(work, peer, uas_port, rate, final_calls)
        final["passed"] = final["failed"] == 0 and final["succeeded"] == final["calls"]
        log(f"  {peer.name} final {rate}/s x {final_calls} (offered "
            f"{final['offered_per_s']}/s): {final['succeeded']} ok, {final['failed']} failed, "
            f"{final['cpu_ms_per_call']} ms CPU/call")
        if final["passed"]:  # the rate that counts is what SIPp really offered
            break
        rate = int(rate * 0.9)
        final = None
        time.sleep(2.0)
    return {"steps": steps, "best_step_rate": best, "final": final,
            "calls_per_s_zero_failures": final["offered_per_s"] if final else 0,
            "cpu_capacity_calls_per_s": round(1000 / final["cpu_ms_per_call"])
            if final and final["cpu_ms_per_call"] else 0}


def start_switch(work: Path, media: str, log_level: str = "WARNING") -> tuple[
        subprocess.Popen[bytes], int, Path]:
    data = work / f"data-{media}"
    data.mkdir(parents=True, exist_ok=True)
    asyncio.run(_users(data))
    cfg = work / f"{media}.toml"
    cfg.write_text(DIRECT_TOML.format(media=media))
    port = free_port()
    logf = open(work / f"switch-{media}.log", "wb")  # noqa: SIM115 - closed with the node
    proc = subprocess.Popen(
        [sys.executable, "-m", "switch.cli", "run", "--data-dir", str(data), "--bind",
         "127.0.0.1", "--sip-port", str(port), "--log-level", log_level, "--config", str(cfg)],
        cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT)
    wait_ready(port, proc)
    time.sleep(2.0)  # let start-up work (prompt cache, first database reads) settle
    return proc, port, data


async def _users(data: Path) -> None:
    from storage.db import Database, default_sqlite_url
    from storage.repositories import UserRepository

    db = Database(default_sqlite_url(data))
    await db.start()
    try:
        await UserRepository(db).add_many([("1001", PASSWORD, None), ("1002", PASSWORD, None)],
                                          "softswitch")
    finally:
        await db.close()


def start_sippy(work: Path, uas_port: int) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("b2bua_simple") or str(Path(sys.executable).with_name("b2bua_simple"))
    port = free_port()
    logf = open(work / "sippy.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([exe, "-f", "-l", "127.0.0.1", "-p", str(port), "-n",
                             f"127.0.0.1:{uas_port}", "-L", str(work / "sippy-sip.log")],
                            cwd=work, stdout=logf, stderr=subprocess.STDOUT)
    wait_ready_any(port, proc)
    return proc, port


def wait_ready_any(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Sippy answers OPTIONS with 501 (b2bua_simple): any response means it is up."""
    import socket

    deadline = time.monotonic() + timeout
    probe = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{{p}};"
             "branch=z9hG4bKready\r\nFrom: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
             "Call-ID: bench-ready\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
             "Content-Length: 0\r\n\r\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.3)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("the B2BUA exited during start-up")
            s.sendto(probe.replace("{p}", str(s.getsockname()[1])).encode(),
                     ("127.0.0.1", port))
            try:
                if s.recvfrom(65536)[0].startswith(b"SIP/2.0"):
                    return
            except TimeoutError:
                pass
    raise RuntimeError("the B2BUA did not answer")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        _wait(proc, 30)


# ---- part 2: concurrent anchored calls ----------------------------------------------------

def _tone(path: Path, seconds: float = 1.0) -> None:
    """A looped 440 Hz mu-law tone for SIPp's rtp_stream (raw PCMU, 8 kHz)."""
    import math

    def ulaw(sample: int) -> int:  # G.711 mu-law encoder (ITU-T G.711 table logic)
        sign = 0x80 if sample < 0 else 0
        mag = min(32635, abs(sample)) + 0x84
        exp = max(0, mag.bit_length() - 8)
        return ~(sign | (exp << 4) | ((mag >> (exp + 3)) & 0x0F)) & 0xFF

    n = int(8000 * seconds)
    path.write_bytes(bytes(ulaw(int(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
                           for i in range(n)))


def concurrent_step(work: Path, concurrent: int, hold_s: float, rate: int) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    _tone(work / "tone.ulaw")
    proc, port, data = start_switch(work, "anchored")
    peer = Peer("softswitch", proc, port, SIPP / "uac_bench_rtp.xml", port)
    uas_port = free_port()
    peak: dict[str, float] = {"calls": 0, "cpu_s": 0.0}
    hold_ms = int(hold_s * 1000)

    def sample_peak() -> None:
        # CPU while every call is up (after the ramp, before the first BYE).
        time.sleep(concurrent / rate + 1.0)
        cpu0, t0 = tree_cpu(proc.pid), time.monotonic()
        time.sleep(max(1.0, hold_s - concurrent / rate - 3.0))
        peak["cpu_share"] = (tree_cpu(proc.pid) - cpu0) / (time.monotonic() - t0)

    try:
        step = run_step(work, peer, uas_port, rate, concurrent, hold_ms=hold_ms,
                        limit=concurrent + 10, uas_extra=("-rtp_echo",),
                        during=sample_peak)
    finally:
        stop(proc)
    legs = _leg_stats(data)
    step.update({"concurrent": concurrent, "hold_s": hold_s,
                 "cpu_share_all_up": round(peak.get("cpu_share", 0.0), 2), **legs})
    return step


def _leg_stats(data: Path) -> dict[str, Any]:
    db = data / "softswitch.db"
    if not db.exists():
        return {"legs": 0}
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT packets_received, packets_lost FROM cdr_legs").fetchall()
    received = sum(r[0] or 0 for r in rows)
    lost = sum(r[1] or 0 for r in rows)
    return {"legs": len(rows), "rtp_packets_received": received, "rtp_packets_lost": lost,
            "rtp_loss_pct": round(100 * lost / max(1, received + lost), 4),
            "legs_without_rtp": sum(1 for r in rows if not r[0])}


# ---- main -----------------------------------------------------------------------------------

def _cps_part(work: Path, args: argparse.Namespace, rates: list[int], final_calls: int,
              step_calls: Callable[[int], int], log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    proc, port, _ = start_switch(work / "sw", "direct")
    try:
        peer = Peer("softswitch", proc, port, SIPP / "uac_b2bua.xml", port)
        out["softswitch"] = cps_series(work / "sw", peer, free_port(), rates, step_calls,
                                       final_calls, log)
    finally:
        stop(proc)
    if not args.no_sippy:
        uas_port = free_port()
        (work / "sippy").mkdir(exist_ok=True)
        sproc, sport = start_sippy(work / "sippy", uas_port)
        try:
            peer = Peer("sippy", sproc, sport, SIPP / "uac_bench_noauth.xml", None)
            out["sippy"] = cps_series(work / "sippy", peer, uas_port, rates, step_calls,
                                      final_calls, log)
        finally:
            stop(sproc)
    return out


def _table(cps: dict[str, Any], conc: list[dict[str, Any]]) -> None:
    print(f"{'b2bua':>10} {'target/s':>8} {'offered/s':>9} {'calls':>6} {'ok':>6} "
          f"{'failed':>6} {'CPU ms/call':>11} {'CPU share':>9}")
    for name, series in cps.items():
        runs = [*series["steps"], *([series["final"]] if series["final"] else [])]
        for r in runs:
            print(f"{name:>10} {r['target_rate']:>8} {r['offered_per_s']:>9} {r['calls']:>6} "
                  f"{r['succeeded']:>6} {r['failed']:>6} {r['cpu_ms_per_call']:>11} "
                  f"{r['cpu_share']:>9}")
    print("highest calls/s with 0 failures (final run, as offered by SIPp):",
          ", ".join(f"{n} {s['calls_per_s_zero_failures']}"
                    f" ({s['final']['calls'] if s['final'] else 0} calls)"
                    for n, s in cps.items()))
    print("CPU-time capacity (calls/s per fully used core):",
          ", ".join(f"{n} {s['cpu_capacity_calls_per_s']}" for n, s in cps.items()))
    if "sippy" in cps and cps["sippy"]["calls_per_s_zero_failures"]:
        ratio = cps["softswitch"]["calls_per_s_zero_failures"] / cps["sippy"][
            "calls_per_s_zero_failures"]
        print(f"softswitch / sippy, calls/s: {ratio:.2f}x")
    if "sippy" in cps and cps["sippy"]["cpu_capacity_calls_per_s"]:
        ratio = cps["softswitch"]["cpu_capacity_calls_per_s"] / cps["sippy"][
            "cpu_capacity_calls_per_s"]
        print(f"softswitch / sippy, CPU-time capacity: {ratio:.2f}x")
    if conc:
        print(f"\n{'concurrent':>10} {'ok':>6} {'failed':>6} {'CPU all up':>10} "
              f"{'legs':>5} {'RTP rx':>9} {'lost':>6} {'loss %':>7}")
        for r in conc:
            print(f"{r['concurrent']:>10} {r['succeeded']:>6} {r['failed']:>6} "
                  f"{r['cpu_share_all_up']:>10} {r.get('legs', 0):>5} "
                  f"{r.get('rtp_packets_received', 0):>9} {r.get('rtp_packets_lost', 0):>6} "
                  f"{r.get('rtp_loss_pct', 0):>7}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="100,200,300,400,500,600,700,800")
    ap.add_argument("--step-seconds", type=float, default=10.0)
    ap.add_argument("--final-calls", type=int, default=30_000)
    ap.add_argument("--concurrent", default="250,500")
    ap.add_argument("--hold-s", type=float, default=20.0)
    ap.add_argument("--no-sippy", action="store_true", help="skip the Sippy B2BUA run")
    ap.add_argument("--no-cps", action="store_true", help="only the concurrency part")
    ap.add_argument("--smoke", action="store_true", help="a few hundred calls in all")
    ap.add_argument("--json", help="write results as JSON to this file")
    args = ap.parse_args(argv)
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install sip-tester)", file=sys.stderr)
        return 2
    rates = [int(r) for r in args.rates.split(",") if r]
    concurrent = [int(c) for c in args.concurrent.split(",") if c]
    final_calls, hold_s, seconds = args.final_calls, args.hold_s, args.step_seconds
    if args.smoke:
        rates, final_calls, concurrent, hold_s, seconds = [50], 100, [20], 3.0, 2.0

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def step_calls(rate: int) -> int:
        return max(20, int(rate * seconds))

    with tempfile.TemporaryDirectory(prefix="bench_b2bua_") as tmp:
        work = Path(tmp)
        cps = {} if args.no_cps else _cps_part(work, args, rates, final_calls, step_calls, log)
        conc = []
        for n in concurrent:
            step = concurrent_step(work / f"conc{n}", n, hold_s, rate=min(100, max(10, n // 5)))
            log(f"  anchored x{n}: {step['succeeded']} ok, {step['failed']} failed, "
                f"loss {step.get('rtp_loss_pct')}%")
            conc.append(step)
            if step["failed"]:
                break
    _table(cps, conc)
    doc = {"benchmark": "b2bua", "cps": cps, "concurrent_anchored": conc,
           "note": "CPU: the B2BUA process and its children (/proc); the machine is shared "
                   "with other work, so rates are noisy and CPU ms per call is steadier"}
    emit_json(doc, args.json)
    ok = all(s["calls_per_s_zero_failures"] > 0 for s in cps.values()) and all(
        c["failed"] == 0 for c in conc)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
