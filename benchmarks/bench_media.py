"""Media engine benchmark: N channels of real RTP on loopback through the engine.

What runs: the engine in ``workers`` processes (``switch.media.worker``; by default every N
with 1 and with 2 workers, and 2,000 channels with 4 as well), every channel receiving
50 packets/s of PCMU from a separate generator process, going through the jitter buffer,
decode, in-band DTMF detection (on every channel), a two-party bridge (channels 2i <->
2i+1), encode, and back out to the generator, which also receives. The generator is
``benchmarks/rtpgen.c`` compiled with ``cc -O2`` into a temp dir (sendmmsg/recvmmsg,
absolute-deadline pacing); without a compiler a Python generator (much less capable) is
used and the output says so.

Figures (printed as a table and written as JSON):

* ``cpu_core_pct``: engine processes' CPU time (utime + stime from /proc) over the run,
  in % of one core; ``cpu_us_per_ch_tick``: the same per channel per 20 ms tick;
  ``cpu_ms_per_ch_s``: CPU milliseconds per channel-second of audio (both directions), the
  figure that stays meaningful on a shared machine (wall-clock latencies do not).
* ``rx`` / ``dsp`` / ``tx``: the workers' CPU per channel per tick split into receive
  (socket drains + ``receive_batch``), the engine tick (jitter ring, decode, DTMF, mix,
  encode) and send; the rest of ``us/ch/tick`` is RTCP, control and the event loop.
* ``io``: the RTP socket I/O path (``c``: switch.media._rtpio, ``python``: the fallback).
* ``late_ticks``: ticks that started more than 2 ms after their deadline (``Ticker``).
* ``lost_in_engine``: frames the generator sent whose bridged copy never came back. On
  loopback nothing else loses packets, so this counts every drop inside the engine host
  (socket overflow, late in the jitter buffer, skipped ticks).
* ``added_p50/p99_ms`` (end to end, measured by the receiver): for each frame,
  arrival - (its due playout tick). The due tick of frame k of a channel is
  ``T + k * 20 ms`` where T is the tick grid point (the engine ticks on
  ``t0 + j * 20 ms``, shared monotonic clock) at or before the earliest
  ``arrival - k * 20 ms`` of that channel, i.e. the playout slot the jitter buffer
  assigned. It is the engine's processing + scheduling latency plus the receiver's own
  wake-up latency, on top of the playout delay.
* ``engine_p50/p99_ms`` (inside the engine): per packet, send-loop completion time of
  its tick minus the tick deadline (an upper bound per packet).
* ``playout_ms``: jitter-buffer delay actually used, due tick - send time, median. It
  is the configured minimum (20 ms) plus the wait for the next tick (0-20 ms, channel
  phases are uniform over the tick except 2 ms either side of the deadline).

Run: ``python -m benchmarks.bench_media`` (N = 100, 500, 1000, 2000) or ``--smoke``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from dsp import g711
from switch.media.config import MediaConfig
from switch.media.engine_host import DELAY_BINS, tune_process
from switch.media.errors import MediaError
from switch.media.service import MediaService

logger = logging.getLogger(__name__)

PERIOD_NS = 20_000_000
_HERE = Path(__file__).resolve().parent


def safe_octets() -> tuple[bytes, int]:
    """16 PCMU octets (and a fill octet) that survive decode -> encode unchanged.

    Low-level values (0xF0..0xFE are small positive samples) keep the test audio quiet.
    """
    octets = np.arange(256, dtype=np.uint8)
    same = g711.ulaw_encode(g711.ulaw_decode(octets)) == octets
    candidates = [v for v in range(0xF0, 0x100) if same[v]] + \
                 [v for v in range(0xE0, 0xF0) if same[v]]
    if len(candidates) < 17:
        raise RuntimeError("not enough round-trip-safe PCMU octets")
    return bytes(candidates[:16]), 0xFF if same[0xFF] else candidates[16]


def build_generator(tmp: Path) -> list[str] | None:
    """Compile rtpgen.c; None when no C compiler is available."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    exe = tmp / "rtpgen"
    proc = subprocess.run([cc, "-O2", "-o", str(exe), str(_HERE / "rtpgen.c")],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        logger.warning("rtpgen build failed: %s", proc.stderr)
        return None
    return [str(exe)]


def free_port_block(count: int, start: int = 50000, stop: int = 65000) -> int:
    """First port of ``count`` consecutive UDP ports that bind on 127.0.0.1 right now.

    Starts at 50000: the peers of TESTING.md use 5060-5130, 6000+, 20000-22000, 30000+ and
    40000+ for SIP and RTP, and other tests may be running.
    """
    base = start
    while base + count < stop:
        socks: list[socket.socket] = []
        p = base
        try:
            for p in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            base = p + 1 + ((p + 1) & 1)  # start again past the taken port, on an even one
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free UDP port block")


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, seconds (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hist_percentile(hist: np.ndarray, q: float) -> float:
    """Percentile (ms) of a 0.1 ms histogram."""
    total = int(hist.sum())
    if total == 0:
        return float("nan")
    idx = int(np.searchsorted(np.cumsum(hist), q / 100.0 * total))
    return (idx + 0.5) / 10.0


def analyse(path: Path, t0_ns: int | np.ndarray) -> dict[str, Any]:
    """Loss and delay figures from the generator's per-frame send/arrival times.

    ``t0_ns`` is the tick grid origin, per channel when workers tick at staggered phases.
    """
    raw = np.fromfile(path, dtype=np.int64)
    n, frames = int(raw[0]), int(raw[1])
    send = raw[2:2 + n * frames].reshape(n, frames)
    arr = raw[2 + n * frames:].reshape(n, frames)
    sent = send > 0
    got = sent & (arr > 0)
    k = np.arange(frames, dtype=np.int64) * PERIOD_NS
    rel = np.where(got, arr - k, np.iinfo(np.int64).max)
    base = rel.min(axis=1)
    ok_ch = base < np.iinfo(np.int64).max
    t0_ns = np.broadcast_to(np.asarray(t0_ns, dtype=np.int64), (n,))
    slot0 = t0_ns + ((base - t0_ns) // PERIOD_NS) * PERIOD_NS  # due tick of frame 0
    due = slot0[:, None] + k[None, :]
    added = ((arr - due)[got & ok_ch[:, None]]) / 1e6
    e2e = ((arr - send)[got]) / 1e6
    first = np.argmax(sent, axis=1)
    playout = (slot0 + first * PERIOD_NS - send[np.arange(n), first])[ok_ch] / 1e6

    def pct(a: np.ndarray, q: float) -> float:
        return float(np.percentile(a, q)) if a.size else float("nan")

    return {
        "frames_sent": int(sent.sum()),
        "frames_back": int(got.sum()),
        "lost_in_engine": int((sent & ~got).sum()),
        "added_p50_ms": pct(added, 50), "added_p99_ms": pct(added, 99),
        "added_max_ms": float(added.max()) if added.size else float("nan"),
        "e2e_p50_ms": pct(e2e, 50), "e2e_p99_ms": pct(e2e, 99),
        "playout_ms": pct(playout, 50),
    }


async def run_one(n: int, workers: int, duration_s: float, gen_cmd: list[str] | None,
                  tmp: Path, jitter_ms: int, nice: int = 0,
                  max_catchup_ms: float = 100.0, rtp_io: str = "auto",
                  drains: int = 2) -> dict[str, Any]:
    """One benchmark point: N channels, bridged in pairs, for ``duration_s``."""
    n -= n % 2
    per_worker = -(-n // max(1, workers)) + 8
    port_min = free_port_block(2 * per_worker * max(1, workers) + 2)
    cfg = MediaConfig(rtp_port_min=port_min,
                      rtp_port_max=port_min + 2 * per_worker * max(1, workers) - 1,
                      workers=workers, jitter_min_ms=jitter_ms, jitter_max_ms=200,
                      inactivity_timeout_s=0, worker_nice=nice, max_catchup_ms=max_catchup_ms,
                      rtp_io=rtp_io, rx_drains_per_tick=drains, channels_per_worker=per_worker)
    nsock = max(1, min(16, n // 125))
    gen_base = free_port_block(nsock, start=port_min + 2 * per_worker * max(1, workers) + 100)
    svc = MediaService(cfg, seed=7)
    await svc.start()
    try:
        assert svc.t0 is not None
        chans = []
        for i in range(0, n, 2):
            a = await svc.open_channel(remote=("127.0.0.1", gen_base + i % nsock))
            b = await svc.open_channel(remote=("127.0.0.1", gen_base + (i + 1) % nsock),
                                       near=a.channel_id)
            await svc.bridge(a.channel_id, b.channel_id)
            chans += [a, b]
        rng = np.random.default_rng(n)
        offsets = np.asarray([round(svc.tick_offsets[c.backend] * 1e9) for c in chans],
                             dtype=np.int64)
        # sender phases relative to each channel's own tick grid, 2 ms clear of deadlines
        phases = (rng.integers(2_000_000, 18_000_000, n) + offsets) % PERIOD_NS
        ports_file = tmp / f"ports-{n}.txt"
        ports_file.write_text("".join(f"{c.local_addr[1]} {int(ph)}\n"
                                      for c, ph in zip(chans, phases, strict=True)))
        t0_ns = round(svc.t0 * 1e9)
        start_ns = t0_ns + (-(-(time.monotonic_ns() + 500_000_000 - t0_ns) // PERIOD_NS)
                            * PERIOD_NS)
        frames = int(duration_s * 50)
        out_file = tmp / f"frames-{n}.bin"
        safe, fill = safe_octets()
        pids = [b.pid for b in svc.backends if getattr(b, "pid", None)]
        cpu0 = [proc_cpu_s(p) for p in pids] if pids else [time.process_time()]
        health0 = await svc.health()
        wall0 = time.monotonic()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        argv = [str(ports_file), str(out_file), str(nsock), str(gen_base), str(start_ns),
                str(PERIOD_NS), str(frames), "0", safe.hex(), str(fill), "300"]
        cmd = (gen_cmd or [sys.executable, "-m", "benchmarks.bench_media", "--generate"]) + argv
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                    start_new_session=bool(nice))
        if nice:  # same treatment as the workers (worker._set_priority)
            try:
                os.setpriority(os.PRIO_PROCESS, proc.pid, nice)
                Path(f"/proc/{proc.pid}/autogroup").write_text(str(nice))
            except OSError as exc:
                logger.warning("cannot renice the generator: %s", exc)
        try:
            stdout, _ = await asyncio.wait_for(proc.communicate(), duration_s + 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.monotonic() - wall0
        cpu1 = [proc_cpu_s(p) for p in pids] if pids else [time.process_time()]
        health = await svc.health()
    finally:
        await svc.shutdown()
    gen = json.loads(stdout.decode())
    result = analyse(out_file, t0_ns + offsets)
    if os.environ.get("BENCH_MEDIA_KEEP"):
        shutil.copy(out_file, os.environ["BENCH_MEDIA_KEEP"])
    cpu = sum(cpu1) - sum(cpu0)
    hist = sum(np.asarray(h["delay_hist"]) - np.asarray(h0["delay_hist"])
               for h, h0 in zip(health, health0, strict=True))
    hist = np.asarray(hist).reshape(DELAY_BINS)
    totals = {key: sum(h[key] - h0[key] for h, h0 in zip(health, health0, strict=True))
              for key in ("late_ticks", "ticks", "skipped_ticks", "late_packets",
                          "concealed_frames", "foreign", "bad", "tick_cpu_s", "tick_wall_s",
                          "jb_dropped", "cpu_rx_s", "cpu_engine_s", "cpu_tx_s", "batch_fast",
                          "batch_slow")}
    totals["tick_wall_max_ms"] = max(h["tick_wall_max_ms"] for h in health)
    result.update({
        "channels": n, "workers": workers, "duration_s": round(wall, 2),
        "generator": "c" if gen_cmd else "python",
        "cpu_core_pct": 100.0 * cpu / wall,
        "cpu_us_per_ch_tick": 1e6 * cpu / wall / 50 / n,
        "cpu_ms_per_ch_s": 1e3 * cpu / wall / n,
        # per channel per tick, from the hosts' own process_time() split of their work
        "rx_us_ch_tick": 1e6 * totals["cpu_rx_s"] / wall / 50 / n,
        "eng_us_ch_tick": 1e6 * totals["cpu_engine_s"] / wall / 50 / n,
        "tx_us_ch_tick": 1e6 * totals["cpu_tx_s"] / wall / 50 / n,
        "io": health[0].get("rtp_io", "?"), "drains_per_tick": drains,
        "gen_cpu_core_pct": 100.0 * ((ru1.ru_utime + ru1.ru_stime)
                                     - (ru0.ru_utime + ru0.ru_stime)) / wall,
        "engine_p50_ms": hist_percentile(hist, 50), "engine_p99_ms": hist_percentile(hist, 99),
        "jitter_min_ms": jitter_ms, "nice": nice, "max_catchup_ms": max_catchup_ms,
        "load_avg_1m": os.getloadavg()[0],
        "generator_counters": gen,
        **totals,
    })
    return result


def engine_only(n: int, ticks: int = 150) -> dict[str, Any]:
    """The sans-IO engine alone (no sockets): CPU per received packet and per channel-tick.

    Same pipeline as the loopback run (jitter ring, decode, PLC, DTMF detection on every
    channel, pair bridges, encode, RTP headers) with packets handed in by method call, so
    the figures separate the engine's own cost from the kernel's per-datagram cost. Two
    engines get the same packets: one through ``receive_batch`` (what the host does with a
    drained batch), one through per-packet ``receive_rtp`` (the scalar path, for contrast).
    """
    from switch.media.engine import MediaEngine  # only for this mode
    from switch.media.rtp import build_packet

    engines = [MediaEngine(n, seed=1), MediaEngine(n, seed=1)]
    addrs = [("127.0.0.1", 20000 + 2 * i) for i in range(n)]
    for engine in engines:
        slots = [engine.open(remote=a) for a in addrs]
        for i in range(0, n - 1, 2):
            engine.mix.bridge(slots[i], slots[i + 1])
    rng = np.random.default_rng(0)
    payloads = [g711.ulaw_encode((rng.standard_normal(160) * 500).astype(np.int16)).tobytes()
                for _ in range(16)]
    slot_arr = np.asarray(slots, dtype=np.int64)
    ip = np.full(n, 0x7F000001, dtype=np.uint32)
    port = np.asarray([a[1] for a in addrs], dtype=np.uint16)
    fam = np.full(n, 4, dtype=np.uint8)
    ip6 = np.zeros((n, 16), dtype=np.uint8)
    lens = np.full(n, 172, dtype=np.int32)
    data = np.zeros((n, 1024), dtype=np.uint8)
    rx_s = rx_scalar_s = tick_s = 0.0
    now = 100.0
    for k in range(ticks):
        pkts = [build_packet(0, k, 160 * k, 0x100 + i, payloads[(i + k) % 16])
                for i in range(n)]
        data[:, :172] = np.frombuffer(b"".join(pkts), dtype=np.uint8).reshape(n, 172)
        t = np.full(n, now)
        t0 = time.process_time()
        engines[0].receive_batch(slot_arr, data, lens, ip, port, fam, ip6, t)
        t1 = time.process_time()
        engines[0].tick(now)
        t2 = time.process_time()
        for slot, pkt, addr in zip(slots, pkts, addrs, strict=True):
            engines[1].receive_rtp(slot, pkt, addr, now)
        t3 = time.process_time()
        engines[1].tick(now)
        if k >= 10:
            rx_s += t1 - t0
            tick_s += t2 - t1
            rx_scalar_s += t3 - t2
        now += 0.020
    measured = ticks - 10
    return {"channels": n, "rx_us_per_packet": 1e6 * rx_s / measured / n,
            "rx_scalar_us_per_packet": 1e6 * rx_scalar_s / measured / n,
            "tick_ms": 1e3 * tick_s / measured,
            "tick_us_per_channel": 1e6 * tick_s / measured / n,
            "engine_core_pct_at_50pps": 100.0 * (rx_s + tick_s) / measured / 0.020,
            "played": engines[0].totals()["played_frames"],
            "batch_fast": engines[0].totals()["batch_fast"]}


_COLUMNS = [
    ("channels", "N", "{:>5}"), ("workers", "wrk", "{:>3}"),
    ("io", "io", "{:>6}"),
    ("cpu_core_pct", "cpu%core", "{:>8.1f}"), ("cpu_us_per_ch_tick", "us/ch/tick", "{:>10.1f}"),
    ("cpu_ms_per_ch_s", "ms/ch-s", "{:>7.3f}"), ("rx_us_ch_tick", "rx", "{:>7.1f}"),
    ("eng_us_ch_tick", "dsp", "{:>7.1f}"), ("tx_us_ch_tick", "tx", "{:>7.1f}"),
    ("late_ticks", "late", "{:>5}"), ("ticks", "ticks", "{:>6}"),
    ("frames_sent", "sent", "{:>8}"), ("lost_in_engine", "lost", "{:>6}"),
    ("added_p50_ms", "add p50", "{:>7.2f}"), ("added_p99_ms", "add p99", "{:>7.2f}"),
    ("engine_p50_ms", "eng p50", "{:>7.2f}"), ("engine_p99_ms", "eng p99", "{:>7.2f}"),
    ("playout_ms", "playout", "{:>7.1f}"), ("gen_cpu_core_pct", "gen%", "{:>5.1f}"),
]


def print_table(rows: list[dict[str, Any]]) -> None:
    """The human-readable table (times in ms)."""
    print("  ".join(f"{title:>{len(fmt.format(0)) if 'f' not in fmt else 7}}"
                    for _, title, fmt in _COLUMNS))
    for row in rows:
        if "error" in row:
            print(f"{row['channels']:>5}  {row['workers']:>3}  failed: {row['error']}")
            continue
        print("  ".join(fmt.format(row[key]) for key, _, fmt in _COLUMNS))


def python_generator(argv: list[str]) -> int:
    """Fallback for rtpgen.c (same arguments, output file and JSON), one socket loop.

    It is far slower than the C generator (one ``sendto`` call per packet from Python), so
    results above a few hundred channels measure the generator, not the engine.
    """
    (ports_file, out_file, nsock_s, base_s, start_s, period_s, frames_s, pt_s, safe_hex,
     fill_s, drain_s) = argv
    import selectors  # fallback path only

    lines = [line.split() for line in Path(ports_file).read_text().splitlines() if line]
    ports = [int(p) for p, _ in lines]
    phase = np.asarray([int(ph) for _, ph in lines], dtype=np.int64)
    n, frames, nsock = len(ports), int(frames_s), int(nsock_s)
    start, period, pt = int(start_s), int(period_s), int(pt_s)
    safe = bytes.fromhex(safe_hex)
    nib = {v: i for i, v in enumerate(safe)}
    socks = []
    sel = selectors.DefaultSelector()
    for s in range(nsock):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", int(base_s) + s))
        sock.setblocking(False)
        socks.append(sock)
        sel.register(sock, selectors.EVENT_READ)
    send = np.zeros((n, frames), dtype=np.int64)
    arr = np.zeros((n, frames), dtype=np.int64)
    order = np.argsort(phase, kind="stable")
    counters = {"sent": 0, "send_errors": 0, "received": 0, "invalid": 0, "duplicates": 0,
                "other": 0}
    fill = bytes([int(fill_s, 0)]) * 149
    end_at = start + frames * period + int(drain_s) * 1_000_000
    ptr, total = 0, n * frames
    while True:
        now = time.monotonic_ns()
        while ptr < total:
            k, c = divmod(ptr, n)
            c = int(order[c])
            if start + int(phase[c]) + k * period > now:
                break
            x, body = 0, bytearray()
            for i in range(4):
                v = (c >> (4 * i)) & 15
                body.append(safe[v])
                x ^= v
            for i in range(6):
                v = (k >> (4 * i)) & 15
                body.append(safe[v])
                x ^= v
            body.append(safe[x ^ 5])
            pkt = bytes([0x80, pt | (0x80 if k == 0 else 0)]) + (k & 0xFFFF).to_bytes(2, "big") \
                + (k * 160).to_bytes(4, "big") + (0x10000 + c).to_bytes(4, "big") + body + fill
            try:
                socks[c % nsock].sendto(pkt, ("127.0.0.1", ports[c]))
                send[c, k] = time.monotonic_ns()
                counters["sent"] += 1
            except OSError:
                counters["send_errors"] += 1
            ptr += 1
        if ptr >= total and now >= end_at:
            break
        for key, _ in sel.select(0.0005):
            while True:
                try:
                    data = key.fileobj.recv(2048)  # type: ignore[union-attr]
                except BlockingIOError:
                    break
                at = time.monotonic_ns()
                counters["received"] += 1
                if len(data) != 172 or data[1] & 0x7F != pt:
                    counters["other"] += 1
                    continue
                vals = [nib.get(b, -1) for b in data[12:23]]
                if min(vals) < 0:
                    counters["invalid"] += 1
                    continue
                c = sum(v << (4 * i) for i, v in enumerate(vals[:4]))
                k = sum(v << (4 * i) for i, v in enumerate(vals[4:10]))
                x = 0
                for v in vals[:10]:
                    x ^= v
                if x ^ 5 != vals[10] or c >= n or k >= frames:
                    counters["invalid"] += 1
                elif arr[c, k]:
                    counters["duplicates"] += 1
                else:
                    arr[c, k] = at
    with open(out_file, "wb") as f:
        np.asarray([n, frames], dtype=np.int64).tofile(f)
        send.tofile(f)
        arr.tofile(f)
    print(json.dumps({"channels": n, "frames": frames, **counters}))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--generate"]:
        return python_generator(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", default="100,500,1000,2000")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per point")
    parser.add_argument("--workers", default="auto",
                        help="worker process counts to run every N with (comma-separated); "
                             "auto: 1 and 2, plus 4 from 2,000 channels")
    parser.add_argument("--rtp-io", default="auto", choices=["auto", "c", "python"],
                        help="MediaConfig.rtp_io: the C extension or the Python fallback")
    parser.add_argument("--drains", type=int, default=2,
                        help="MediaConfig.rx_drains_per_tick")
    parser.add_argument("--jitter-ms", type=int, default=20)
    parser.add_argument("--python-generator", action="store_true")
    parser.add_argument("--max-catchup-ms", type=float, default=100.0,
                        help="MediaConfig.max_catchup_ms: lateness beyond which ticks are "
                             "skipped (dropping audio) instead of caught up")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of the worker and generator processes, each in its "
                             "own session/autogroup (e.g. -10 on a shared machine; needs root)")
    parser.add_argument("--smoke", action="store_true", help="N=10 for 2 s")
    parser.add_argument("--json", help="write results here (default: stdout after the table)")
    parser.add_argument("--no-engine-only", action="store_true",
                        help="skip the socket-free engine measurement")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    tune_process()  # one BLAS thread etc., as in the workers (engine-only mode runs here)
    counts = [10] if args.smoke else [int(x) for x in args.channels.split(",")]
    duration = 2.0 if args.smoke else args.duration
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_media_") as tmpdir:
        tmp = Path(tmpdir)
        gen_cmd = None if args.python_generator else build_generator(tmp)
        for n in counts:
            if args.smoke:
                worker_counts = [1]
            elif args.workers == "auto":  # 1 and 2; 4 as well from 2,000 channels (~500 each)
                worker_counts = [1, 2, 4] if n >= 2000 else [1, 2]
            else:
                worker_counts = [int(w) for w in args.workers.split(",")]
            for workers in worker_counts:
                try:
                    rows.append(asyncio.run(run_one(n, workers, duration, gen_cmd, tmp,
                                                    args.jitter_ms, args.nice,
                                                    args.max_catchup_ms, args.rtp_io,
                                                    args.drains)))
                except (MediaError, OSError, RuntimeError, TimeoutError) as exc:
                    logger.error("N=%d failed: %s", n, exc)
                    rows.append({"channels": n, "workers": workers, "error": repr(exc)})
    print_table(rows)
    core = [] if args.no_engine_only else [engine_only(n, 30 if args.smoke else 150)
                                           for n in counts]
    if core:
        print("\nengine core alone (no sockets, CPU time):")
        print(f"{'N':>5}  {'rx us/pkt':>9}  {'(scalar)':>8}  {'tick ms':>7}  {'tick us/ch':>10}  "
              f"{'%core@50pps':>11}")
        for c in core:
            print(f"{c['channels']:>5}  {c['rx_us_per_packet']:>9.2f}  "
                  f"{c['rx_scalar_us_per_packet']:>8.2f}  {c['tick_ms']:>7.2f}  "
                  f"{c['tick_us_per_channel']:>10.2f}  {c['engine_core_pct_at_50pps']:>11.1f}")
    text = json.dumps({"benchmark": "media", "results": rows, "engine_only": core,
                       "load_avg": os.getloadavg()}, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
