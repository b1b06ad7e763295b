"""G.711 encode/decode throughput, as x realtime per channel on one core.

The media engine decodes and encodes one ``(N, 160)`` frame per 20 ms tick for all channels
(DESIGN.md "Why the media engine is fast").  This benchmark times exactly those calls for
``--channels`` channels (best of ``--repeat`` runs of ``--ticks`` ticks) and reports:

* ``Msamples/s``: samples processed per second of CPU;
* ``x realtime``: how many 8 kHz channels one core could serve with this operation alone
  (samples/s / 8000);
* ``us/tick``: the cost of one tick for all channels (the budget is 20,000 us).

Usage: ``python -m benchmarks.bench_g711 [--channels N] [--ticks T] [--repeat R]
[--json FILE] [--smoke]``
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable

import numpy as np

from benchmarks.report import emit_json
from dsp import g711

FS = 8000
TICK = 160


def _cases(pcm: np.ndarray) -> list[tuple[str, Callable[[], object]]]:
    ulaw = g711.ulaw_encode(pcm)
    alaw = g711.alaw_encode(pcm)
    return [
        ("ulaw_encode", lambda: g711.ulaw_encode(pcm)),
        ("ulaw_decode", lambda: g711.ulaw_decode(ulaw)),
        ("alaw_encode", lambda: g711.alaw_encode(pcm)),
        ("alaw_decode", lambda: g711.alaw_decode(alaw)),
        ("ulaw_to_alaw", lambda: g711.ulaw_to_alaw(ulaw)),
    ]


def measure(fn: Callable[[], object], ticks: int, repeat: int) -> float:
    """Best CPU seconds per call over ``repeat`` runs of ``ticks`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(ticks):
            fn()
        best = min(best, (time.process_time() - t0) / ticks)
    return best


def run(channels: int, ticks: int, repeat: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(711)
    pcm = (rng.standard_normal((channels, TICK)) * 4000).clip(-32768, 32767).astype(np.int16)
    results = []
    for name, fn in _cases(pcm):
        per_tick = measure(fn, ticks, repeat)
        samples_per_s = channels * TICK / per_tick if per_tick > 0 else float("inf")
        results.append({
            "case": name,
            "channels": channels,
            "us_per_tick": round(per_tick * 1e6, 2),
            "msamples_per_s": round(samples_per_s / 1e6, 2),
            "x_realtime_per_core": round(samples_per_s / FS, 1),
        })
    return results


def _table(results: list[dict[str, object]]) -> str:
    head = f"{'case':<14} {'channels':>8} {'us/tick':>10} {'Msamples/s':>11} {'x realtime':>11}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r['case']:<14} {r['channels']:>8} {r['us_per_tick']:>10.1f} "
                     f"{r['msamples_per_s']:>11.1f} {r['x_realtime_per_core']:>11.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=2000)
    parser.add_argument("--ticks", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    args = parser.parse_args(argv)
    channels, ticks, repeat = (50, 20, 1) if args.smoke else (args.channels, args.ticks,
                                                              args.repeat)
    results = run(channels, ticks, repeat)
    report = {
        "benchmark": "g711",
        "channels": channels,
        "ticks": ticks,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "results": results,
    }
    print(_table(results))
    emit_json(report, args.json_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
