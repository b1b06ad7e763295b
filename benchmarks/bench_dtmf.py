"""CPU cost of in-band DTMF detection in batch form, per channel-hour of audio.

The media engine calls ``BatchDtmfDetector.process`` once per 20 ms tick with one 160-sample
frame per channel.  This benchmark does exactly that for ``--channels`` channels over
``--seconds`` of audio and reports CPU seconds (``time.process_time``) per channel-hour;
the goal is <= 0.5 s.  Only ``process`` is timed (building the frames is not).

BLAS is limited to one thread (``OPENBLAS_NUM_THREADS=1`` etc., set before numpy loads when
run as ``python -m``), so CPU seconds are the cost on one core; otherwise a second BLAS
thread spinning on a small matrix product inflates CPU time without saving wall time.

Scenarios (audio per channel, looped from a pool of up to 64 distinct signals of 12 s):
* ``mixed``: a quarter each of the four below (the expected load);
* ``silence``: low hiss (-60 dBm0);
* ``noise``: white noise at -20 dBm0 (every window is analysed, nothing passes);
* ``music``: harmonic chords (near-misses for the candidate tests);
* ``dtmf``: digits back to back, 60 ms on / 60 ms off at -10 dBm0 (worst case for the
  Python state machine: every channel busy all the time).

Usage: ``python -m benchmarks.bench_dtmf [--channels N] [--seconds S] [--scenarios a,b]
[--json FILE] [--smoke]``
"""

from __future__ import annotations

import os

from benchmarks.report import emit_json

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from dsp.dtmf import BatchDtmfDetector  # noqa: E402
from dsp.level import dbm0_to_amplitude  # noqa: E402
from dsp.tones import DTMF_KEYPAD, dtmf_tone  # noqa: E402

GOAL_CPU_S_PER_CHANNEL_HOUR = 0.5
FS = 8000
TICK = 160
POOL_SECONDS = 12
POOL_ROWS = 64
SCENARIOS = ("mixed", "silence", "noise", "music", "dtmf")


def _clip(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def _signal(kind: str, rng: np.random.Generator, pool_seconds: int) -> np.ndarray:
    n = pool_seconds * FS
    if kind == "silence":
        return _clip(rng.standard_normal(n) * float(dbm0_to_amplitude(-60.0)) / np.sqrt(2))
    if kind == "noise":
        return _clip(rng.standard_normal(n) * float(dbm0_to_amplitude(-20.0)) / np.sqrt(2))
    if kind == "music":
        t = np.arange(n) / FS
        out = np.zeros(n)
        for k, start in enumerate(range(0, n, FS // 4)):
            root = 220.0 * 2 ** (int(rng.integers(0, 24)) / 12)
            seg = slice(start, min(n, start + FS // 4))
            for ratio in (1.0, 1.26, 1.5):
                for h in range(1, 5):
                    out[seg] += 3000 / h * np.sin(2 * np.pi * root * ratio * h * t[seg] + k)
        return _clip(out)
    if kind == "dtmf":
        keys = "".join(DTMF_KEYPAD)
        parts = []
        total = 0
        while total < n:
            key = keys[int(rng.integers(0, 16))]
            parts += [dtmf_tone(key, 60, -10.0), np.zeros(480, np.int16)]
            total += 960
        noise = rng.standard_normal(n) * 100
        return _clip(np.concatenate(parts)[:n] + noise)
    raise ValueError(kind)


def _pool(scenario: str, rng: np.random.Generator, pool_seconds: int) -> np.ndarray:
    kinds = ["silence", "noise", "music", "dtmf"] if scenario == "mixed" else [scenario]
    rows = min(POOL_ROWS, 4 * pool_seconds)
    return np.stack([_signal(kinds[i % len(kinds)], rng, pool_seconds) for i in range(rows)])


def run_scenario(scenario: str, channels: int, seconds: float) -> dict[str, object]:
    rng = np.random.default_rng(2024)
    pool = _pool(scenario, rng, min(POOL_SECONDS, max(2, int(seconds) + 1)))
    rows = np.arange(channels) % pool.shape[0]
    offsets = (np.arange(channels) * 977) % (pool.shape[1] - TICK)
    ticks = int(seconds * FS / TICK)
    det = BatchDtmfDetector(channels)
    cpu = 0.0
    wall = 0.0
    digits = 0
    span = np.arange(TICK)
    for t in range(ticks):
        pos = (offsets + t * TICK) % (pool.shape[1] - TICK)
        frames = pool[rows[:, None], pos[:, None] + span[None, :]]
        c0 = time.process_time()
        w0 = time.perf_counter()
        events = det.process(frames)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        digits += len(events)
    channel_hours = channels * ticks * TICK / FS / 3600.0
    return {
        "scenario": scenario,
        "channels": channels,
        "audio_s": ticks * TICK / FS,
        "cpu_s": round(cpu, 4),
        "wall_s": round(wall, 4),
        "cpu_s_per_channel_hour": round(cpu / channel_hours, 4),
        "ms_per_tick": round(1000 * wall / max(ticks, 1), 3),
        "digits_detected": digits,
        "meets_goal": cpu / channel_hours <= GOAL_CPU_S_PER_CHANNEL_HOUR,
    }


def _table(results: list[dict[str, object]]) -> str:
    head = (f"{'scenario':<9} {'channels':>8} {'audio s':>8} {'cpu s':>8} {'wall s':>8} "
            f"{'cpu s/ch-h':>11} {'ms/tick':>8} {'digits':>8}  goal<=0.5")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r['scenario']:<9} {r['channels']:>8} {r['audio_s']:>8.1f} {r['cpu_s']:>8.3f} "
            f"{r['wall_s']:>8.3f} {r['cpu_s_per_channel_hour']:>11.4f} "
            f"{r['ms_per_tick']:>8.3f} {r['digits_detected']:>8}  "
            f"{'yes' if r['meets_goal'] else 'NO'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    args = parser.parse_args(argv)
    channels, seconds = (16, 1.0) if args.smoke else (args.channels, args.seconds)
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {sorted(unknown)}")
    results = [run_scenario(s, channels, seconds) for s in scenarios]
    report = {
        "benchmark": "dtmf",
        "channels": channels,
        "seconds": seconds,
        "goal_cpu_s_per_channel_hour": GOAL_CPU_S_PER_CHANNEL_HOUR,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "results": results,
    }
    print(_table(results))
    emit_json(report, args.json_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
