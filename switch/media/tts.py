"""Text-to-speech with espeak-ng, rendered off the event loop into cached 8 kHz prompts.

Backend. :class:`EspeakTts` drives libespeak-ng through **pyttsx3** (its ``espeak`` driver,
``save_to_file`` + ``runAndWait``), which was verified on this platform (Debian 12,
libespeak-ng1 1.51, pyttsx3 0.55): the driver loads ``libespeak-ng.so.1`` with ctypes in
retrieval mode and writes a 22.05 kHz mono WAV. Its output is sample-identical to the
``espeak-ng`` binary for the same voice and rate. pyttsx3 0.55 needs two workarounds to be
reliable, both in :meth:`EspeakTts._settle` (its driver cancels libespeak-ng's asynchronous
command queue at the end of each utterance, which made ~45 % of renders with a changed
rate come out at the old rate or not at all); with them, 200 alternating renders from two
instances were all correct. When pyttsx3 cannot be imported or cannot load the library,
``backend="auto"`` falls back to running ``espeak-ng --stdin -w FILE`` as an asyncio
subprocess (same voices, same audio); ``backend=`` forces either one. The subprocess
backend also isolates the switch from a crash inside libespeak-ng, at ~20 ms per render.

Rules:

1. Never on the event loop. pyttsx3 calls are blocking and the engine is not thread safe
   (and libespeak-ng keeps process-wide state), so each :class:`EspeakTts` owns a
   ``ThreadPoolExecutor`` with ONE worker, and a process-wide lock serializes the library
   across instances. Decoding and resampling also run in that worker.
2. Chinese. Debian's espeak-ng Mandarin dictionary (``cmn``) is small and reads many
   characters wrongly, while its ``cmn-latn-pinyin`` voice reads tone-numbered pinyin
   reliably. So text containing CJK ideographs is first normalized (Arabic numerals to
   Chinese words, :func:`switch.media.readout.normalize_zh`), then converted with pypinyin
   (``Style.TONE3``, neutral tone as 5: 的 -> ``de5``), and spoken with
   ``cmn-latn-pinyin`` whatever voice was asked for. Other text uses the given voice
   (``en-us`` by default).
3. Cache. :class:`CachedTts` keys renders by ``(text, voice, rate)``: an in-memory LRU
   bounded in bytes, backed by 8 kHz WAV files in a cache directory (SHA-256 file names)
   so a restart reuses earlier renders; concurrent requests for the same key render once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from switch.media.errors import MediaError, TtsError
from switch.media.prompts import SAMPLE_RATE, ByteLru, load_wav, write_wav
from switch.media.readout import contains_cjk, normalize_zh

logger = logging.getLogger(__name__)

__all__ = [
    "PINYIN_VOICE",
    "CachedTts",
    "EspeakTts",
    "PromptCache",
    "SpeechInput",
    "TtsEngine",
    "prepare_speech",
    "to_pinyin",
]

PINYIN_VOICE = "cmn-latn-pinyin"
"""espeak-ng voice reading tone-numbered pinyin (``espeak-ng --voices``: sit/cmn-Latn-pinyin)."""
DEFAULT_VOICE = "en-us"
MIN_RATE_WPM, MAX_RATE_WPM = 80, 450  # espeak-ng -s range (words per minute)

#: libespeak-ng has process-wide state (one current voice, one callback): one user at a time.
_ESPEAK_LIB_LOCK = threading.Lock()

_ZH_PUNCT = str.maketrans({"，": ",", "、": ",", "。": ".", "；": ";", "：": ":", "？": "?",
                           "！": "!", "（": "(", "）": ")", "“": '"', "”": '"'})


class TtsEngine(Protocol):
    """Renders text to an 8 kHz mono int16 prompt without blocking the event loop."""

    async def render(self, text: str, voice: str, rate: int) -> NDArray[np.int16]: ...


@dataclass(frozen=True, slots=True)
class SpeechInput:
    """What is actually sent to espeak-ng for a request (rule 2)."""

    text: str
    voice: str


def to_pinyin(text: str) -> str:
    """Chinese text -> space-separated tone-numbered pinyin (TONE3, neutral tone 5).

    Digits are converted to words first (:func:`normalize_zh`); full-width punctuation
    becomes ASCII so espeak-ng pauses on it; non-Chinese runs pass through.
    """
    from pypinyin import Style, lazy_pinyin  # imported lazily: ~0.3 s of dictionaries

    syllables = lazy_pinyin(normalize_zh(text), style=Style.TONE3,
                            neutral_tone_with_five=True)
    spoken = " ".join(s.strip().translate(_ZH_PUNCT) for s in syllables if s.strip())
    return spoken.replace(" ,", ",").replace(" .", ".").replace(" ?", "?").replace(" !", "!")


def prepare_speech(text: str, voice: str) -> SpeechInput:
    """Apply rule 2: CJK text becomes pinyin for the pinyin voice, the rest is unchanged."""
    if contains_cjk(text):
        return SpeechInput(to_pinyin(text), PINYIN_VOICE)
    return SpeechInput(text, voice or DEFAULT_VOICE)


def _pcm_from_wav(path: str) -> NDArray[np.int16]:
    """Load a rendered WAV as 8 kHz int16, failing on silence-only output."""
    pcm = load_wav(path)
    if pcm.size == 0 or int(np.abs(pcm.astype(np.int32)).max()) == 0:
        raise TtsError("espeak-ng produced no audio")
    return pcm


def _quiet_print(*args: object, **_: object) -> None:
    """Replacement for pyttsx3's espeak driver ``print`` ("Audio saved to ...")."""
    logger.debug("pyttsx3: %s", " ".join(map(str, args)))


class EspeakTts:
    """espeak-ng renderer (see the module docstring for backends and rules).

    Args:
        backend: ``"auto"`` (pyttsx3, else the binary), ``"pyttsx3"`` or ``"cli"``.
        binary: the espeak-ng executable for the CLI backend.
    """

    def __init__(self, backend: Literal["auto", "pyttsx3", "cli"] = "auto",
                 binary: str = "espeak-ng") -> None:
        self.requested_backend = backend
        self.backend: str | None = None if backend == "auto" else backend
        self.binary = binary
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")
        self._engine: Any = None
        self._espeak_lib: Any = None
        self._voices: frozenset[str] | None = None
        self._tmpdir = tempfile.TemporaryDirectory(prefix="softswitch-tts-")
        self._counter = 0
        self.renders = 0
        self.last_input: SpeechInput | None = None

    # ---------------------------------------------------------------- backend selection

    def _init_pyttsx3(self) -> None:
        """Create the pyttsx3 engine (runs in the worker thread)."""
        import pyttsx3  # type: ignore[import-untyped]

        self._engine = pyttsx3.init("espeak")
        driver_module = sys.modules.get("pyttsx3.drivers.espeak")
        if driver_module is not None:
            driver_module.print = _quiet_print  # type: ignore[attr-defined]
        self._espeak_lib = sys.modules.get("pyttsx3.drivers._espeak")
        # A fresh pyttsx3 proxy starts "busy" and queues property changes until the first
        # runAndWait, where its end-of-loop stop() can cancel them: one throw-away render
        # leaves it idle, so later setProperty calls apply immediately (see _settle).
        warm_up = self._next_wav()
        self._engine.save_to_file("a", warm_up)
        self._engine.runAndWait()
        self._settle()
        if os.path.exists(warm_up):
            os.unlink(warm_up)
        voices = self._engine.getProperty("voices")
        ids = {str(v.id).lower() for v in voices}
        languages = {str(lang).lower() for v in voices for lang in (v.languages or [])}
        self._voices = frozenset(ids | languages | {i.rsplit("/", 1)[-1] for i in ids})

    def _cli_voices(self) -> frozenset[str]:
        try:
            out = subprocess.run([self.binary, "--voices"], capture_output=True, text=True,
                                 check=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise TtsError(f"cannot list espeak-ng voices: {exc}") from exc
        # columns: Pty Language Age/Gender VoiceName File Other-languages
        rows = [line.split() for line in out.splitlines()[1:]]
        ids = {row[4].lower() for row in rows if len(row) > 4}
        languages = {row[1].lower() for row in rows if len(row) > 4}
        return frozenset(ids | languages | {i.rsplit("/", 1)[-1] for i in ids})

    def _ensure_backend(self) -> None:
        """Pick and initialise the backend once (worker thread)."""
        if self._voices is not None:
            return
        if self.backend in (None, "pyttsx3"):
            try:
                with _ESPEAK_LIB_LOCK:
                    self._init_pyttsx3()
                self.backend = "pyttsx3"
                logger.info("TTS backend: pyttsx3 + libespeak-ng")
                return
            except (ImportError, OSError, RuntimeError, AttributeError) as exc:
                if self.backend == "pyttsx3":
                    raise TtsError(f"pyttsx3 cannot drive espeak-ng: {exc}") from exc
                logger.warning("pyttsx3 unusable (%s); falling back to the espeak-ng binary",
                               exc)
        if shutil.which(self.binary) is None:
            raise TtsError(f"no TTS backend: pyttsx3 unusable and {self.binary!r} not found")
        self.backend = "cli"
        self._voices = self._cli_voices()

    def _check(self, voice: str, rate: int) -> None:
        assert self._voices is not None
        if voice.lower() not in self._voices:
            raise TtsError(f"unknown espeak-ng voice {voice!r}")
        if not MIN_RATE_WPM <= rate <= MAX_RATE_WPM:
            raise TtsError(f"rate {rate} outside {MIN_RATE_WPM}-{MAX_RATE_WPM} words/min")

    def _next_wav(self) -> str:
        self._counter += 1
        return os.path.join(self._tmpdir.name, f"r{self._counter}.wav")

    # ---------------------------------------------------------------- rendering

    def _settle(self) -> None:
        """Work around pyttsx3's race with libespeak-ng's asynchronous command queue.

        pyttsx3 runs libespeak-ng in AUDIO_OUTPUT_RETRIEVAL mode, where ``SetParameter`` and
        ``Synth`` are queued to espeak's own thread. Its driver ends each utterance from the
        synthesis callback with ``stop()``, which finds the queue still busy, calls
        ``espeak_Cancel`` and leaves ``_stopping`` set; the next render can then be cancelled
        (no file) or lose its queued rate change (seen in about 45 % of alternating-rate
        renders). ``espeak_Synchronize`` waits until the queue is idle and clearing the stale
        flag makes every render start clean (0 failures in 200 alternating renders).
        """
        if self._espeak_lib is not None:
            self._espeak_lib.Synchronize()
        driver = getattr(getattr(self._engine, "proxy", None), "_driver", None)
        if driver is not None and hasattr(driver, "_stopping"):
            driver._stopping = False

    def _render_pyttsx3(self, speech: SpeechInput, rate: int) -> NDArray[np.int16]:
        """Blocking render through pyttsx3 (worker thread only)."""
        path = self._next_wav()
        try:
            with _ESPEAK_LIB_LOCK:
                self._settle()
                self._engine.setProperty("voice", speech.voice)
                self._engine.setProperty("rate", rate)
                self._settle()
                self._engine.save_to_file(speech.text, path)
                self._engine.runAndWait()
                self._settle()
            return _pcm_from_wav(path)
        except (RuntimeError, ValueError, OSError) as exc:
            raise TtsError(f"pyttsx3 render failed: {exc}") from exc
        finally:
            if os.path.exists(path):
                os.unlink(path)

    async def _render_cli(self, speech: SpeechInput, rate: int) -> NDArray[np.int16]:
        """Render by running the espeak-ng binary (text on stdin, never on argv)."""
        loop = asyncio.get_running_loop()
        path = self._next_wav()
        proc = await asyncio.create_subprocess_exec(
            self.binary, "-v", speech.voice, "-s", str(rate), "-w", path, "--stdin",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate(speech.text.encode("utf-8"))
        try:
            if proc.returncode != 0:
                detail = err.decode(errors="replace").strip()
                raise TtsError(f"espeak-ng exited {proc.returncode}: {detail}")
            return await loop.run_in_executor(self._executor, _pcm_from_wav, path)
        finally:
            if os.path.exists(path):
                os.unlink(path)

    async def render(self, text: str, voice: str = DEFAULT_VOICE, rate: int = 160
                     ) -> NDArray[np.int16]:
        """Render ``text`` to an 8 kHz mono int16 prompt (rules 1 and 2).

        Raises:
            TtsError: unknown voice, bad rate, empty text, or the backend failed.
        """
        if not text.strip():
            raise TtsError("nothing to say")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._ensure_backend)
        speech = await loop.run_in_executor(self._executor, prepare_speech, text, voice)
        self._check(speech.voice, rate)
        self.last_input = speech
        self.renders += 1
        logger.debug("tts render voice=%s rate=%d text=%r", speech.voice, rate, speech.text)
        if self.backend == "pyttsx3":
            try:
                pcm = await loop.run_in_executor(self._executor, self._render_pyttsx3, speech,
                                                 rate)
            except TtsError as exc:
                if self.requested_backend != "auto" or shutil.which(self.binary) is None:
                    raise
                logger.warning("pyttsx3 render failed (%s); retrying with %s", exc, self.binary)
                pcm = await self._render_cli(speech, rate)
        else:
            pcm = await self._render_cli(speech, rate)
        pcm.flags.writeable = False
        return pcm

    def close(self) -> None:
        """Stop the worker thread and remove temporary files."""
        self._executor.shutdown(wait=True)
        self._tmpdir.cleanup()


class PromptCache:
    """Rendered prompts by ``(text, voice, rate)``: memory LRU (bytes) + WAV files on disk.

    Disk files are named by the SHA-256 of the key (and a format version), written
    atomically, so several workers may share one directory.
    """

    VERSION = "tts-v1"

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None,
                 max_bytes: int = 32 * 1024 * 1024) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.memory: ByteLru[tuple[str, str, int], NDArray[np.int16]] = ByteLru(max_bytes)
        self.disk_hits = 0

    def path_for(self, text: str, voice: str, rate: int) -> Path | None:
        """The disk file for a key (None without a cache directory)."""
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(f"{self.VERSION}\0{voice}\0{rate}\0{text}".encode()).hexdigest()
        return self.cache_dir / f"{digest[:40]}.wav"

    def get(self, text: str, voice: str, rate: int) -> NDArray[np.int16] | None:
        """Memory, then disk; None on a miss. Disk reads are small (a few KB per second)."""
        key = (text, voice, rate)
        pcm = self.memory.get(key)
        if pcm is not None:
            return pcm
        path = self.path_for(text, voice, rate)
        if path is None or not path.exists():
            return None
        try:
            pcm = load_wav(path)
        except MediaError as exc:
            logger.warning("dropping unreadable TTS cache file %s: %s", path, exc)
            path.unlink(missing_ok=True)
            return None
        self.disk_hits += 1
        self.memory.put(key, pcm, pcm.nbytes)
        return pcm

    def put(self, text: str, voice: str, rate: int, pcm: NDArray[np.int16]) -> None:
        """Store in memory and (if configured) on disk as an 8 kHz WAV."""
        self.memory.put((text, voice, rate), pcm, pcm.nbytes)
        path = self.path_for(text, voice, rate)
        if path is not None:
            try:
                write_wav(path, pcm, SAMPLE_RATE)
            except OSError as exc:
                logger.warning("cannot write TTS cache file %s: %s", path, exc)


class CachedTts:
    """A :class:`TtsEngine` that serves renders from a :class:`PromptCache` (rule 3)."""

    def __init__(self, engine: TtsEngine, cache: PromptCache) -> None:
        self.engine = engine
        self.cache = cache
        self._inflight: dict[tuple[str, str, int], asyncio.Future[NDArray[np.int16]]] = {}

    async def render(self, text: str, voice: str = DEFAULT_VOICE, rate: int = 160
                     ) -> NDArray[np.int16]:
        """Cached render; concurrent calls for one key share a single render."""
        key = (text, voice, rate)
        pcm = self.cache.memory.get(key)
        if pcm is None:
            pcm = await asyncio.to_thread(self.cache.get, text, voice, rate)
        if pcm is not None:
            return pcm
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[NDArray[np.int16]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            pcm = await self.engine.render(text, voice, rate)
            await asyncio.to_thread(self.cache.put, text, voice, rate, pcm)
            future.set_result(pcm)
            return pcm
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) get it through shield
            raise
        finally:
            del self._inflight[key]
