"""The prompt path: TTS render time, prompt-cache hits, playback and recording per tick.

Cases:

* ``tts <backend> <lang>``: wall time of one ``EspeakTts.render`` (pyttsx3 and the
  espeak-ng binary; an English and a Chinese sentence), with the ratio of audio produced
  to render time (x realtime). Renders run in the TTS worker thread, so this is latency,
  not event-loop time.
* ``cache hit (memory)`` / ``cache hit (disk)``: ``CachedTts.render`` served from the LRU,
  and from the WAV cache directory after a restart.
* ``player fill``: ``PlayerBank.fill`` for ``--channels`` slots all playing (one tick), in
  CPU microseconds (``time.process_time``) per tick and per channel.
* ``recorder write``: ``CallRecorder.write_legs`` for ``--channels`` stereo recordings over
  ``--seconds`` of ticks, including the flushes to disk (1 s interval, page cache, no
  fsync), in CPU microseconds per channel-tick.

Usage: ``python -m benchmarks.bench_tts [--renders N] [--channels N] [--seconds S] [--smoke]
[--json FILE]``. Prints a table, then the JSON (to FILE when given, else to stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from switch.media.player import FRAME_SAMPLES, PlayerBank
from switch.media.recorder import CallRecorder, RecordingMode
from switch.media.tts import CachedTts, EspeakTts, PromptCache

TEXTS = {
    "en": ("en-us", "Thank you for calling the property service hotline. "
                    "Your current balance is one hundred twenty three yuan."),
    "zh": ("zh", "感谢致电物业服务热线，您当前的欠费金额为一百二十三元四角五分。"),
}


async def _bench_renders(renders: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for backend in ("pyttsx3", "cli"):
        engine = EspeakTts(backend=backend)  # type: ignore[arg-type]
        try:
            await engine.render("warm up", "en-us", 160)
            await engine.render("预热", "zh", 160)  # loads the pypinyin dictionaries
            for lang, (voice, text) in TEXTS.items():
                times, audio_s = [], 0.0
                for i in range(renders):
                    start = time.perf_counter()
                    pcm = await engine.render(text, voice, 150 + i)  # distinct renders
                    times.append(time.perf_counter() - start)
                    audio_s += pcm.size / 8000
                rows.append({"name": f"tts {backend} {lang}", "ops": renders,
                             "seconds": sum(times), "median_ms": statistics.median(times) * 1e3,
                             "x_realtime": audio_s / sum(times)})
        finally:
            engine.close()
    return rows


async def _bench_cache(n: int, tmp: Path) -> list[dict[str, Any]]:
    engine = EspeakTts()
    try:
        cached = CachedTts(engine, PromptCache(tmp / "cache"))
        await cached.render(TEXTS["en"][1], "en-us", 160)
        start = time.perf_counter()
        for _ in range(n):
            await cached.render(TEXTS["en"][1], "en-us", 160)
        memory_s = time.perf_counter() - start
    finally:
        engine.close()
    disk_s = 0.0
    for _ in range(max(1, n // 50)):
        fresh = CachedTts(engine, PromptCache(tmp / "cache"))  # engine unused on a hit
        start = time.perf_counter()
        await fresh.render(TEXTS["en"][1], "en-us", 160)
        disk_s += time.perf_counter() - start
    return [
        {"name": "cache hit (memory)", "ops": n, "seconds": memory_s,
         "median_ms": memory_s / n * 1e3},
        {"name": "cache hit (disk)", "ops": max(1, n // 50), "seconds": disk_s,
         "median_ms": disk_s / max(1, n // 50) * 1e3},
    ]


def _bench_player(channels: int, ticks: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    prompts = [rng.integers(-8000, 8000, 8000 * s, dtype=np.int16) for s in (1, 2, 3, 5, 8)]
    bank = PlayerBank(channels)
    for slot in range(channels):
        bank.play(slot, [prompts[slot % len(prompts)]], loop=True)
    out = np.zeros((channels, FRAME_SAMPLES), dtype=np.int16)
    start = time.process_time()
    for _ in range(ticks):
        bank.fill(out)
    secs = time.process_time() - start
    return {"name": f"player fill x{channels}", "ops": ticks, "seconds": secs,
            "us_per_tick": secs / ticks * 1e6, "us_per_channel_tick": secs / ticks / channels * 1e6}


def _bench_recorder(channels: int, ticks: int, tmp: Path) -> dict[str, Any]:
    recs = [CallRecorder(tmp / f"r{i}.wav", RecordingMode.STEREO) for i in range(channels)]
    rng = np.random.default_rng(2)
    frames = rng.integers(-8000, 8000, (ticks, 2, FRAME_SAMPLES), dtype=np.int16)
    start = time.process_time()
    for t in range(ticks):
        a, b = frames[t, 0], frames[t, 1]
        for rec in recs:
            rec.write_legs(a, b)
    secs = time.process_time() - start
    for rec in recs:
        rec.close()
    calls = ticks * channels
    return {"name": f"recorder write x{channels}", "ops": calls, "seconds": secs,
            "us_per_channel_tick": secs / calls * 1e6}


def run(renders: int, channels: int, seconds: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    ticks = max(1, int(seconds * 50))
    with tempfile.TemporaryDirectory(prefix="bench-tts-") as tmpdir:
        tmp = Path(tmpdir)
        if shutil.which("espeak-ng"):
            rows += asyncio.run(_bench_renders(renders))
            rows += asyncio.run(_bench_cache(max(10, renders * 50), tmp))
        else:
            rows.append({"name": "tts", "skipped": "espeak-ng not installed"})
        rows.append(_bench_player(channels, ticks))
        rows.append(_bench_recorder(channels, ticks, tmp))
    return rows


def _fmt(row: dict[str, Any]) -> str:
    if "skipped" in row:
        return f"{row['name']:<26} skipped: {row['skipped']}"
    extra = []
    if "median_ms" in row:
        extra.append(f"median {row['median_ms']:.3f} ms")
    if "x_realtime" in row:
        extra.append(f"{row['x_realtime']:.0f}x realtime")
    if "us_per_tick" in row:
        extra.append(f"{row['us_per_tick']:.1f} us/tick")
    if "us_per_channel_tick" in row:
        extra.append(f"{row['us_per_channel_tick']:.3f} us/channel-tick")
    return f"{row['name']:<26} {row['ops']:>8} {row['seconds']:>9.3f}  " + ", ".join(extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--renders", type=int, default=10, help="renders per TTS case")
    parser.add_argument("--channels", type=int, default=1000, help="players / recordings")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio time for ticks")
    parser.add_argument("--smoke", action="store_true", help="tiny run (CI)")
    parser.add_argument("--json", metavar="FILE", help="write JSON here instead of stdout")
    args = parser.parse_args(argv)
    if args.smoke:
        args.renders, args.channels, args.seconds = 1, 20, 0.2
    rows = run(args.renders, args.channels, args.seconds)
    print(f"{'case':<26} {'ops':>8} {'seconds':>9}  detail")
    for row in rows:
        print(_fmt(row))
    doc = {"benchmark": "tts", "smoke": args.smoke, "renders": args.renders,
           "channels": args.channels, "seconds": args.seconds,
           "python": sys.version.split()[0], "results": rows}
    text = json.dumps(doc, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
