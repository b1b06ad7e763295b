"""Concurrent live IVR calls walking the hotline demo, driven by SIPp on loopback.

A node is started as a subprocess with N users and its own copy of the demo program whose
calendar is open every day (``<data_dir>/ivr/hotline.ivr``, so the run does not depend on
the hour). SIPp (``tests/interop/sipp/uac_ivr.xml``) places authenticated calls to 12345;
each call hears the welcome and the main menu, presses 1 (RFC 4733 from SIPp's shipped
``dtmf_2833_*.pcap``), enters account 100001 and #, listens to the bill readout and hangs
up (~26 s per call). Calls are started at ``rate`` per second up to ``concurrent`` at once.

A step passes when every SIPp call succeeded AND every call's CDR carries the tag
``自助 = 查询物业费`` that the script sets only after the readout has been spoken -- so
"0 failures" means every caller really walked the menu to the bill, not just that SIP
worked. Node CPU is read from /proc for the step. The interpreter's own step rate is
``benchmarks.bench_ivr`` (statements per second); here the cost is the whole live path
(SIP, RTP, DTMF detection, TTS prompts from the cache, the interpreter, the database).

    python -m benchmarks.bench_ivr_live [--concurrent 100,250,500] [--json F]
    python -m benchmarks.bench_ivr_live --smoke
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.nodes import cpu_seconds, create_users, free_port, read_sipp_screens, wait_ready

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "interop" / "sipp" / "uac_ivr.xml"
HOLD_AFTER_DIGITS_MS = 14_000
"""SIPp's final pause: the readout (~11 s) plus margin, then BYE."""
CALL_SECONDS = 12.4 + HOLD_AFTER_DIGITS_MS / 1000


def always_open_demo() -> str:
    """The shipped demo with its business-hours calendar open all day, every day."""
    text = (ROOT / "ivr_lang" / "demo" / "hotline.ivr").read_text(encoding="utf-8")
    text, n = re.subn(r"calendar 工作时间:\n(?:  .*\n)+",
                      "calendar 工作时间:\n  daily 00:00-23:59\n", text)
    if n != 1:
        raise RuntimeError("the demo's calendar block was not found")
    return text


_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


def write_dtmf_pcap(path: Path, digits: str, *, first_ts: int, first_seq: int = 1,
                    gap_ms: int = 400, ssrc: int = 0x1B2C3D4E) -> None:
    """A pcap of RFC 4733 telephone-events (PT 101) for ``digits``, one event per digit.

    SIPp's ``play_pcap_audio`` replays RTP as captured, timestamps included, and its
    shipped ``dtmf_2833_N.pcap`` files all carry the same RTP timestamp, so a receiver
    rightly takes a repeated digit (the two 0s of 100001) for a retransmission of the
    previous event (RFC 4733 §2.5.1.3: an event is identified by its timestamp). Here each
    digit gets its own timestamp: 3 packets 50 ms apart with growing duration (marker on
    the first), then the end packet sent 3 times (§2.5.1.4), then ``gap_ms`` of silence.
    """
    frames: list[bytes] = []
    t = 0.0
    seq = first_seq
    ts = first_ts
    for digit in digits:
        event = _EVENTS[digit]
        for i in range(6):
            end = i >= 3
            duration = 400 * min(i + 1, 4)
            rtp = struct.pack("!BBHII", 0x80, (0x80 if i == 0 else 0) | 101, seq & 0xFFFF,
                              ts & 0xFFFFFFFF, ssrc)
            payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
            udp_len = 8 + len(rtp) + len(payload)
            udp = struct.pack("!HHHH", 40000, 40000, udp_len, 0)
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, seq & 0xFFFF, 0, 64, 17,
                             0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
            eth = b"\x00" * 12 + b"\x08\x00"
            packet = eth + ip + udp + rtp + payload
            sec = int(t)
            frames.append(struct.pack("<IIII", sec, int((t - sec) * 1e6), len(packet),
                                      len(packet)) + packet)
            seq += 1
            t += 0.05 if i < 3 else 0.02
        ts += 8 * gap_ms + 8 * 200
        t += gap_ms / 1000.0
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(header + b"".join(frames))


def _cdrs(db_path: Path, since_id: int) -> list[tuple[int, str, str]]:
    with sqlite3.connect(db_path) as db:
        return [(int(i), str(d), str(t)) for i, d, t in db.execute(
            "SELECT id, disposition, tags FROM cdrs WHERE id > ? ORDER BY id", (since_id,))]


def _run_step(work: Path, port: int, users_csv: Path, concurrent: int, rate: float,
              node_pid: int) -> dict[str, Any]:
    cpu0 = cpu_seconds(node_pid)
    t0 = time.monotonic()
    cmd = [
        "sipp", "-sf", str(SCENARIO), f"127.0.0.1:{port}", "-i", "127.0.0.1",
        "-p", str(free_port()), "-mp", str(free_port()), "-inf", str(users_csv),
        "-auth_uri", f"12345@127.0.0.1:{port}",
        "-r", str(rate), "-m", str(concurrent), "-l", str(concurrent),
        "-d", str(HOLD_AFTER_DIGITS_MS), "-nostdin", "-trace_screen",
        "-timeout", str(int(concurrent / rate + CALL_SECONDS + 60)), "-timeout_error",
        "-default_behaviors", "all,-abortunexp", "-buff_size", "4194304",
        "-max_socket", "1000",
    ]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True,
                          timeout=concurrent / rate + CALL_SECONDS + 90)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(node_pid) - cpu0
    succeeded, failed_n, _offered = read_sipp_screens(work)
    failed = failed_n if failed_n is not None else concurrent - succeeded
    return {"concurrent": concurrent, "rate_per_s": rate, "sip_ok": succeeded,
            "sip_failed": failed, "sipp_rc": proc.returncode, "wall_s": round(wall, 1),
            "node_cpu_s": round(cpu, 2),
            "node_cpu_pct": round(100 * cpu / wall, 1) if wall > 0 else 0.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrent", default="100,250,500",
                    help="concurrent calls per step (each step stops at the first failure)")
    ap.add_argument("--rate", type=float, default=25.0, help="new calls per second")
    ap.add_argument("--workers", type=int, default=0,
                    help="media worker processes ([media] workers; one engine holds at "
                         "most 1024 channels)")
    ap.add_argument("--smoke", action="store_true", help="tiny run: 3 calls")
    ap.add_argument("--json", help="write results as JSON to this file")
    args = ap.parse_args(argv)
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install sip-tester)", file=sys.stderr)
        return 2
    steps = [int(c) for c in args.concurrent.split(",")]
    rate = args.rate
    if args.smoke:
        steps, rate = [3], 3.0
    users = max(steps)

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_ivr_live_") as tmp:
        work = Path(tmp)
        (work / "pcap").mkdir()
        write_dtmf_pcap(work / "pcap" / "ivr_menu_1.pcap", "1", first_ts=160_000)
        write_dtmf_pcap(work / "pcap" / "ivr_account.pcap", "100001#", first_ts=480_000,
                        first_seq=100)
        data = work / "data"
        (data / "ivr").mkdir(parents=True)
        (data / "ivr" / "hotline.ivr").write_text(always_open_demo(), encoding="utf-8")
        asyncio.run(create_users(data, users, "secret"))
        users_csv = work / "users.csv"
        users_csv.write_text("SEQUENTIAL\n" + "".join(
            f"u{i:05d};[authentication username=u{i:05d} password=secret];12345\n"
            for i in range(users)))
        port = free_port()
        config = work / "bench.toml"
        config.write_text(f"[media]\nworkers = {args.workers}\n")
        log = open(work / "node.log", "wb")  # noqa: SIM115
        node = subprocess.Popen(
            [sys.executable, "-m", "switch.cli", "run", "--data-dir", str(data), "--bind",
             "127.0.0.1", "--sip-port", str(port), "--log-level", "WARNING",
             "--rtp-ports", "20000-29999", "--config", str(config)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(port, node)
            for concurrent in steps:
                results.append(_run_step(work, port, users_csv, concurrent, rate, node.pid))
                if results[-1]["sip_failed"]:
                    break
                time.sleep(2.0)
        finally:
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(30)
            except subprocess.TimeoutExpired:
                node.kill()
            log.close()
        # CDRs are written by the node (batched, flushed at shutdown): attribute them to
        # steps in order, since steps run one after the other.
        cdrs = _cdrs(data / "softswitch.db", 0)
        start = 0
        for step in results:
            mine = cdrs[start:start + step["sip_ok"] + step["sip_failed"]]
            start += len(mine)
            step["cdrs"] = len(mine)
            step["reached_bill"] = sum(1 for _, d, t in mine
                                       if d == "answered" and "查询物业费" in t)
            step["failed"] = step["concurrent"] - step["reached_bill"]
        if any(s["failed"] for s in results):
            tail = (work / "node.log").read_text(errors="replace").splitlines()[-15:]
            print("node log (last lines):", *tail, sep="\n  ", file=sys.stderr)

    passing = [s for s in results if s["failed"] == 0 and s["sip_failed"] == 0]
    best = max((s["concurrent"] for s in passing), default=0)
    print(f"{'concurrent':>10} {'calls/s':>7} {'SIP ok':>6} {'SIP fail':>8} "
          f"{'bill reached':>12} {'wall s':>7} {'node CPU s':>10} {'CPU %':>6}")
    for s in results:
        print(f"{s['concurrent']:>10} {s['rate_per_s']:>7} {s['sip_ok']:>6} "
              f"{s['sip_failed']:>8} {s['reached_bill']:>12} {s['wall_s']:>7} "
              f"{s['node_cpu_s']:>10} {s['node_cpu_pct']:>6}")
    print(f"most concurrent IVR calls with 0 failures: {best}")
    out = {"benchmark": "ivr_live", "steps": results, "best_concurrent_zero_failures": best,
           "call_seconds": CALL_SECONDS, "media_workers": args.workers}
    text = json.dumps(out, indent=2, ensure_ascii=False)
    if args.json:
        Path(args.json).write_text(text, encoding="utf-8")
    else:
        print(text)
    return 0 if best > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
