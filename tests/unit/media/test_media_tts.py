"""Tests for switch.media.tts: real espeak-ng renders (English and Chinese), cache, off-loop."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from switch.media.errors import MediaError, TtsError
from switch.media.prompts import load_wav
from switch.media.tts import (
    PINYIN_VOICE,
    CachedTts,
    EspeakTts,
    PromptCache,
    prepare_speech,
    to_pinyin,
)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng not installed (CI installs it)")

ENGLISH = "Welcome to the property service hotline."
CHINESE = "您好，欢迎致电物业服务热线。"
PINYIN_SYLLABLE = re.compile(r"^[a-zü]+[1-5][,.?!;:]?$")


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))


# ---------------------------------------------------------------- pure text preparation


def test_to_pinyin_tone_numbers_and_neutral_tone() -> None:
    assert to_pinyin("你好") == "ni3 hao3"
    assert to_pinyin("我的") == "wo3 de5"  # neutral tone as 5
    assert to_pinyin("银行") == "yin2 hang2"  # phrase-aware reading, not xing2


def test_to_pinyin_normalizes_digits_and_punctuation() -> None:
    spoken = to_pinyin("请按1号键，谢谢！")
    assert spoken == "qing3 an4 yi1 hao4 jian4, xie4 xie4!"
    assert all(PINYIN_SYLLABLE.match(tok) for tok in spoken.split())


def test_prepare_speech_routes_by_script() -> None:
    zh = prepare_speech(CHINESE, "en-us")
    assert zh.voice == PINYIN_VOICE and not re.search(r"[\u4e00-\u9fff]", zh.text)
    en = prepare_speech(ENGLISH, "en-gb")
    assert en.voice == "en-gb" and en.text == ENGLISH


# ---------------------------------------------------------------- real rendering


@pytest.fixture(scope="module")
def tts() -> Iterator[EspeakTts]:
    engine = EspeakTts()
    yield engine
    engine.close()


def espeak_cli_8k(text: str, voice: str, rate: int, tmp: Path) -> np.ndarray:
    out = tmp / "ref.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(out), text],
                   check=True, timeout=20)
    return load_wav(out)


@needs_espeak
async def test_english_render(tts: EspeakTts, tmp_path: Path) -> None:
    pcm = await tts.render(ENGLISH, "en-us", 160)
    assert tts.backend in ("pyttsx3", "cli")
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert 1.0 < pcm.size / 8000 < 6.0  # ~2.6 s of speech
    assert rms(pcm) > 500
    ref = espeak_cli_8k(ENGLISH, "en-us", 160, tmp_path)  # same engine, resampled to 8 kHz
    assert abs(pcm.size - ref.size) <= 0.02 * ref.size
    assert tts.last_input is not None and tts.last_input.voice == "en-us"


@needs_espeak
async def test_chinese_render_uses_pinyin_voice(tts: EspeakTts, tmp_path: Path) -> None:
    pcm = await tts.render(CHINESE, "zh", 160)
    assert tts.last_input is not None
    assert tts.last_input.voice == PINYIN_VOICE
    assert all(PINYIN_SYLLABLE.match(tok) for tok in tts.last_input.text.split())
    assert 1.0 < pcm.size / 8000 < 8.0 and rms(pcm) > 500
    ref = espeak_cli_8k(tts.last_input.text, PINYIN_VOICE, 160, tmp_path)
    assert abs(pcm.size - ref.size) <= 0.02 * ref.size
    # the Mandarin dictionary voice reading the same Hanzi gives a different render
    other = espeak_cli_8k(CHINESE, "cmn", 160, tmp_path)
    assert abs(other.size - ref.size) > 0.02 * ref.size


@needs_espeak
async def test_rate_changes_duration(tts: EspeakTts) -> None:
    slow = await tts.render(ENGLISH, "en-us", 100)
    fast = await tts.render(ENGLISH, "en-us", 300)
    assert slow.size > 1.8 * fast.size


@needs_espeak
async def test_alternating_voice_and_rate_renders_are_stable(tts: EspeakTts) -> None:
    """Regression: pyttsx3's espeak driver could cancel a render or drop its rate change."""
    lengths: dict[tuple[str, int], list[int]] = {}
    for i in range(12):
        voice, rate = ("en-us", "zh")[i % 2], (110, 290)[(i // 2) % 2]
        text = ENGLISH if voice == "en-us" else CHINESE
        pcm = await tts.render(text, voice, rate)
        lengths.setdefault((voice, rate), []).append(pcm.size)
    for key, sizes in lengths.items():
        assert max(sizes) - min(sizes) <= 0.02 * max(sizes), (key, sizes)
    assert min(lengths["en-us", 110]) > 1.8 * max(lengths["en-us", 290])
    assert min(lengths["zh", 110]) > 1.8 * max(lengths["zh", 290])


@needs_espeak
async def test_cli_backend_renders_the_same(tmp_path: Path) -> None:
    engine = EspeakTts(backend="cli")
    try:
        pcm = await engine.render(CHINESE, "en-us", 160)
        assert engine.backend == "cli" and engine.last_input.voice == PINYIN_VOICE
        assert rms(pcm) > 500
        ref = espeak_cli_8k(engine.last_input.text, PINYIN_VOICE, 160, tmp_path)
        assert abs(pcm.size - ref.size) <= 0.02 * ref.size
    finally:
        engine.close()


@needs_espeak
async def test_auto_backend_retries_a_failed_render_with_the_binary(
        monkeypatch: pytest.MonkeyPatch) -> None:
    engine = EspeakTts()
    try:
        await engine.render("warm up", "en-us", 160)
        if engine.backend != "pyttsx3":
            pytest.skip("pyttsx3 backend not in use")

        def broken(*_: object) -> np.ndarray:
            raise TtsError("simulated pyttsx3 failure")

        monkeypatch.setattr(engine, "_render_pyttsx3", broken)
        pcm = await engine.render(ENGLISH, "en-us", 160)
        assert rms(pcm) > 500
        forced = EspeakTts(backend="pyttsx3")
        try:
            await forced.render("warm up", "en-us", 160)
            monkeypatch.setattr(forced, "_render_pyttsx3", broken)
            with pytest.raises(TtsError, match="simulated"):
                await forced.render(ENGLISH, "en-us", 160)
        finally:
            forced.close()
    finally:
        engine.close()


@needs_espeak
async def test_bad_requests(tts: EspeakTts) -> None:
    with pytest.raises(TtsError, match="unknown espeak-ng voice"):
        await tts.render("hello", "no-such-voice", 160)
    with pytest.raises(TtsError, match="rate"):
        await tts.render("hello", "en-us", 5)
    with pytest.raises(MediaError):
        await tts.render("   ", "en-us", 160)


@needs_espeak
async def test_render_runs_off_the_loop(tts: EspeakTts) -> None:
    """A ticker task keeps ticking while a long text renders."""
    text = " ".join([ENGLISH] * 12)
    await tts.render("warm up", "en-us", 160)
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = time.perf_counter()
    pcm = await tts.render(text, "en-us", 170)
    elapsed = time.perf_counter() - start
    done.set()
    await task
    assert pcm.size / 8000 > 20  # a long render
    assert len(gaps) >= 5
    assert max(gaps) < max(0.5 * elapsed, 0.05), (max(gaps), elapsed)


@needs_espeak
async def test_cache_hit_does_not_rerender(tmp_path: Path) -> None:
    engine = EspeakTts()
    try:
        cached = CachedTts(engine, PromptCache(tmp_path / "cache"))
        first = await cached.render("Your bill is ready.", "en-us", 160)
        assert engine.renders == 1
        second = await cached.render("Your bill is ready.", "en-us", 160)
        assert second is first and engine.renders == 1
        await cached.render("Your bill is ready.", "en-us", 180)  # rate is in the key
        await cached.render("Your bill is ready.", "en-gb", 160)  # so is the voice
        assert engine.renders == 3
        # concurrent requests for a new key render once
        results = await asyncio.gather(*(cached.render("Please hold.", "en-us", 160)
                                         for _ in range(5)))
        assert engine.renders == 4 and all(r is results[0] for r in results)
        files = sorted((tmp_path / "cache").glob("*.wav"))
        assert len(files) == 4
    finally:
        engine.close()

    # a restart (new engine, new cache object, same directory) reuses the disk render
    fresh = EspeakTts()
    try:
        cache = PromptCache(tmp_path / "cache")
        again = await CachedTts(fresh, cache).render("Your bill is ready.", "en-us", 160)
        assert fresh.renders == 0 and cache.disk_hits == 1
        np.testing.assert_array_equal(again, first)
    finally:
        fresh.close()


def test_prompt_cache_memory_bound_and_corrupt_file(tmp_path: Path) -> None:
    cache = PromptCache(tmp_path, max_bytes=3000)
    a = np.ones(1000, dtype=np.int16)
    cache.put("a", "en-us", 160, a)
    cache.put("b", "en-us", 160, np.ones(1000, dtype=np.int16))
    assert cache.memory.nbytes == 2000 and ("a", "en-us", 160) not in cache.memory
    again = cache.get("a", "en-us", 160)  # evicted from memory, served from disk
    assert again is not None and cache.disk_hits == 1
    np.testing.assert_array_equal(again, a)
    path = cache.path_for("c", "en-us", 160)
    assert path is not None
    path.write_bytes(b"garbage")
    assert cache.get("c", "en-us", 160) is None and not path.exists()
