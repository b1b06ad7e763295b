"""Prompt files: WAV decoding to the engine's format, and a cache of decoded prompts.

The media engine works in one format only: 8 kHz mono ``int16`` frames of 160 samples
(the G.711 narrowband rate). Prompt files come from anywhere (studio WAVs at
44.1/48 kHz, 24-bit, stereo; telephony WAVs already in mu-law or A-law), so :func:`load_wav`
decodes every common WAV encoding and converts it once, at load time:

* ``WAVE_FORMAT_PCM`` (tag 1) at 8, 16, 24 and 32 bits (8-bit is unsigned, per the RIFF
  spec; the others are signed little-endian);
* ``WAVE_FORMAT_IEEE_FLOAT`` (tag 3) at 32 and 64 bits;
* ``WAVE_FORMAT_ALAW`` (tag 6) and ``WAVE_FORMAT_MULAW`` (tag 7), expanded with the
  ITU-T G.711 expansion rules (its Tables 1 and 2), as 256-entry lookup tables;
* ``WAVE_FORMAT_EXTENSIBLE`` (tag 0xFFFE) whose sub-format is one of the above.

Several channels are mixed down to mono by averaging; any sample rate is converted to
8 kHz by ``dsp.resample.to_rate`` (a polyphase FIR, ``scipy.signal.resample_poly``, whose
Kaiser-window low-pass keeps 44.1/48 kHz studio prompts from aliasing into the band).
A data chunk whose declared size runs past the end of the file (a recording cut short) is
read up to the last whole frame, so a crashed recording still plays.

Rules: decoded prompts are read-only arrays (``flags.writeable = False``) because one array
is shared by every channel that plays it; every failure is a :class:`MediaError`.
"""

from __future__ import annotations

import logging
import os
import struct
import tempfile
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from dsp.resample import to_rate
from switch.media.errors import PromptNotFoundError, WavFormatError

logger = logging.getLogger(__name__)

__all__ = [
    "SAMPLE_RATE",
    "ByteLru",
    "PromptStore",
    "alaw_to_linear",
    "load_wav",
    "read_wav",
    "ulaw_to_linear",
    "write_wav",
]

SAMPLE_RATE = 8000
"""The engine's sample rate (Hz): G.711 narrowband."""

_FMT_PCM = 0x0001
_FMT_FLOAT = 0x0003
_FMT_ALAW = 0x0006
_FMT_MULAW = 0x0007
_FMT_EXTENSIBLE = 0xFFFE


def _ulaw_table() -> NDArray[np.int16]:
    """ITU-T G.711 mu-law expansion for all 256 codes (bias 0x84, inverted bits)."""
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> NDArray[np.int16]:
    """ITU-T G.711 A-law expansion for all 256 codes (even bits inverted with 0x55)."""
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


_ULAW = _ulaw_table()
_ALAW = _alaw_table()


def ulaw_to_linear(payload: bytes | NDArray[np.uint8]) -> NDArray[np.int16]:
    """Expand mu-law bytes to 16-bit linear PCM by table lookup."""
    return _ULAW[np.frombuffer(payload, dtype=np.uint8)]


def alaw_to_linear(payload: bytes | NDArray[np.uint8]) -> NDArray[np.int16]:
    """Expand A-law bytes to 16-bit linear PCM by table lookup."""
    return _ALAW[np.frombuffer(payload, dtype=np.uint8)]


def _chunks(data: bytes, name: str) -> dict[bytes, tuple[int, int]]:
    """Walk RIFF chunks after the 12-byte header: id -> (offset, size), first one wins."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavFormatError(f"{name}: not a RIFF/WAVE file")
    found: dict[bytes, tuple[int, int]] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        found.setdefault(cid, (pos + 8, size))
        if cid == b"data":
            break  # the data chunk may be the last, possibly truncated, one
        pos += 8 + size + (size & 1)  # chunks are word aligned (RIFF pad byte)
    return found


def read_wav(path: str | os.PathLike[str]) -> tuple[NDArray[np.float64], int]:
    """Decode a WAV file to float samples at the 16-bit scale.

    Returns:
        ``(pcm, sample_rate)`` with ``pcm`` shaped ``(frames, channels)``, values in
        [-32768, 32768).

    Raises:
        PromptNotFoundError: the file cannot be read.
        WavFormatError: the file is not a WAV we can decode.
    """
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        raise PromptNotFoundError(f"{name}: cannot read prompt ({exc.strerror})") from exc
    chunks = _chunks(data, name)
    if b"fmt " not in chunks or b"data" not in chunks:
        raise WavFormatError(f"{name}: missing fmt or data chunk")
    fmt_at, fmt_size = chunks[b"fmt "]
    if fmt_size < 16 or fmt_at + 16 > len(data):
        raise WavFormatError(f"{name}: fmt chunk too short")
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", data, fmt_at)
    if tag == _FMT_EXTENSIBLE:
        if fmt_size < 40 or fmt_at + 40 > len(data):
            raise WavFormatError(f"{name}: WAVE_FORMAT_EXTENSIBLE without sub-format")
        tag = struct.unpack_from("<H", data, fmt_at + 24)[0]
    if channels < 1 or rate < 1 or block_align < 1:
        raise WavFormatError(f"{name}: bad fmt (format tag {tag}, channels={channels}, "
                             f"rate={rate}, block_align={block_align})")
    data_at, data_size = chunks[b"data"]
    available = min(data_size, len(data) - data_at)
    raw = data[data_at : data_at + available - available % block_align]
    pcm = _decode(raw, tag, bits, block_align // channels, name)
    return pcm.reshape(-1, channels), rate


def _decode(raw: bytes, tag: int, bits: int, width: int, name: str) -> NDArray[np.float64]:
    """Decode interleaved sample bytes to float at the 16-bit scale."""
    if tag == _FMT_PCM and width == 1:
        return (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) * 256.0
    if tag == _FMT_PCM and width == 2:
        return np.frombuffer(raw, "<i2").astype(np.float64)
    if tag == _FMT_PCM and width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        value = np.where(value & 0x800000, value - 0x1000000, value)
        return value.astype(np.float64) / 256.0
    if tag == _FMT_PCM and width == 4:
        return np.frombuffer(raw, "<i4").astype(np.float64) / 65536.0
    if tag == _FMT_FLOAT and width in (4, 8):
        floats = np.frombuffer(raw, "<f4" if width == 4 else "<f8").astype(np.float64)
        return np.nan_to_num(floats) * 32768.0
    if tag == _FMT_MULAW and width == 1:
        return ulaw_to_linear(raw).astype(np.float64)
    if tag == _FMT_ALAW and width == 1:
        return alaw_to_linear(raw).astype(np.float64)
    raise WavFormatError(f"{name}: unsupported WAV encoding (format tag {tag}, {bits} bits)")


def to_int16(pcm: NDArray[np.floating]) -> NDArray[np.int16]:
    """Round and saturate float samples at the 16-bit scale to ``int16``."""
    out: NDArray[np.int16] = np.clip(np.rint(pcm), -32768, 32767).astype(np.int16)
    return out


def load_wav(path: str | os.PathLike[str]) -> NDArray[np.int16]:
    """Load a WAV file as an 8 kHz mono ``int16`` prompt (read-only array).

    Raises:
        PromptNotFoundError: missing or unreadable file.
        WavFormatError: malformed file or unsupported encoding.
    """
    pcm, rate = read_wav(path)
    mono = to_int16(pcm.mean(axis=1) if pcm.shape[1] > 1 else pcm[:, 0])
    out = to_rate(mono, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else mono
    out.flags.writeable = False
    return out


def write_wav(path: str | os.PathLike[str], pcm: NDArray[np.int16],
              sample_rate: int = SAMPLE_RATE) -> None:
    """Write a 16-bit PCM WAV atomically (temp file + ``os.replace``).

    ``pcm`` is ``(samples,)`` for mono or ``(samples, channels)`` interleaved. Readers of a
    cache directory therefore never see a half-written prompt.
    """
    frames = np.ascontiguousarray(pcm, dtype="<i2")
    channels = 1 if frames.ndim == 1 else frames.shape[1]
    payload = frames.tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(payload), b"WAVE", b"fmt ", 16, _FMT_PCM,
        channels, sample_rate, sample_rate * 2 * channels, 2 * channels, 16, b"data",
        len(payload),
    )
    target = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target) or ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header + payload)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteLru(Generic[K, V]):
    """An LRU map bounded by the total byte size of its values (numpy ``nbytes``).

    Prompts differ in length by orders of magnitude (a beep vs. music on hold), so bounding
    by entries says little about memory; the bound is on bytes. A value larger than the
    whole bound is returned to the caller but not kept.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[0]

    def put(self, key: K, value: V, nbytes: int) -> None:
        self.pop(key)
        if nbytes > self.max_bytes:
            return
        self._items[key] = (value, nbytes)
        self.nbytes += nbytes
        while self.nbytes > self.max_bytes:
            _, (_, size) = self._items.popitem(last=False)
            self.nbytes -= size

    def pop(self, key: K) -> V | None:
        item = self._items.pop(key, None)
        if item is None:
            return None
        self.nbytes -= item[1]
        return item[0]


class PromptStore:
    """Decoded prompts by file name, cached in memory and reloaded when the file changes.

    Each :meth:`get` costs one ``stat``: the cache key holds ``(st_mtime_ns, st_size)``, so
    a prompt re-recorded by staff is picked up by the next call without a restart. With a
    ``root``, names are resolved inside it and may omit ``.wav``; a name that escapes the root
    (``../``, absolute paths) is refused, because IVR scripts written by hotline staff name
    prompts and must not read arbitrary files.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None,
                 max_bytes: int = 64 * 1024 * 1024) -> None:
        self.root = Path(root).resolve() if root is not None else None
        self._cache: ByteLru[str, tuple[tuple[int, int], NDArray[np.int16]]] = \
            ByteLru(max_bytes)
        self.loads = 0

    def resolve(self, name: str | os.PathLike[str]) -> Path:
        """Map a prompt name to a file path (see the class docstring for the rules)."""
        path = Path(name)
        if self.root is None:
            return path
        if not path.suffix:
            path = path.with_suffix(".wav")
        full = (self.root / path).resolve()
        if not full.is_relative_to(self.root):
            raise PromptNotFoundError(f"{name}: prompt outside the prompt directory")
        return full

    def get(self, name: str | os.PathLike[str]) -> NDArray[np.int16]:
        """Return the 8 kHz mono prompt for ``name``, loading it on first use or change.

        Raises:
            PromptNotFoundError, WavFormatError: as :func:`load_wav`.
        """
        path = self.resolve(name)
        try:
            st = path.stat()
        except OSError as exc:
            raise PromptNotFoundError(f"{path}: no such prompt") from exc
        key = str(path)
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        pcm = load_wav(path)
        self.loads += 1
        logger.debug("loaded prompt %s (%d samples)", path, pcm.size)
        self._cache.put(key, (stamp, pcm), pcm.nbytes)
        return pcm

    def preload(self, names: list[str]) -> None:
        """Load several prompts now (at startup), so the first caller does not wait."""
        for name in names:
            self.get(name)
