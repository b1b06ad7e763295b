"""Call recording to WAV files that stay valid whatever happens to the process.

A recording must survive a hang-up, an exception, a crash and ``kill -9``: a call center
keeps recordings as evidence, and the one that matters is often the one that ended badly.
So a :class:`WavRecorder` never has an open-ended file on disk:

* Rule 1 -- the file starts with a complete 44-byte PCM header (RIFF/WAVE, ``fmt``,
  ``data``) whose sizes describe exactly the samples written so far (initially zero).
* Rule 2 -- a flush appends the buffered samples with one ``pwrite`` and then rewrites the
  header after the RIFF id (so the RIFF size at offset 4 and the data size at offset 40
  change together) with a second one. Both go
  straight to the kernel (no user-space buffering), so once :meth:`WavRecorder.flush`
  returns, the data and the header survive the death of the process (only a power loss
  needs ``fsync=True``). If the process dies between the two writes, the header describes
  the previous flush and the file carries at most one flush block of extra bytes after the
  data chunk: every reader (``wave``, scipy, sox) still opens it and returns everything up
  to the previous flush; :func:`repair_wav` recovers the tail.
* Rule 3 -- flushes happen every ``flush_interval_s`` of audio (default 1 s; the first one
  earlier, at a fraction of the interval that depends on the path, to spread the disk
  writes of recordings started together) and on :meth:`close`; :meth:`write` itself only
  appends the frame to a list (the engine calls it once per 20 ms tick per recording, so
  its cost must stay tiny).
* Rule 4 -- while paused (:meth:`pause`), frames are dropped, not replaced by silence: the
  file holds only what was said while recording was on, and its duration is the recorded
  time. (Agents pause while a caller reads a card number; PCI DSS wants no trace of it.)

:class:`CallRecorder` adds the two call layouts of :class:`RecordingMode`: STEREO (leg A on
the left channel, leg B on the right) or MIXED (both legs summed with saturation, mono).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from enum import Enum
from types import TracebackType

import numpy as np
from numpy.typing import NDArray

from switch.media.errors import RecorderError

logger = logging.getLogger(__name__)

__all__ = ["HEADER_BYTES", "CallRecorder", "RecordingMode", "WavRecorder", "mix_saturating",
           "repair_wav"]

HEADER_BYTES = 44
"""Size of the canonical PCM WAV header: RIFF(12) + fmt(8 + 16) + data(8)."""

_MAX_DATA_BYTES = 0xFFFFFFFF - 36  # RIFF sizes are 32-bit: ~4 GiB, ~74 h stereo at 8 kHz
_INT16 = np.dtype(np.int16)  # builtin dtypes are singletons: `is` is a cheap exact check
_FRAME_HINT = 160  # headroom so a flush interval of whole 20 ms frames fits the buffer


def _header(channels: int, sample_rate: int, data_bytes: int) -> bytes:
    """The canonical 44-byte WAVE_FORMAT_PCM 16-bit header for ``data_bytes`` of samples."""
    block_align = 2 * channels
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, channels,
        sample_rate, sample_rate * block_align, block_align, 16, b"data", data_bytes,
    )


def mix_saturating(a: NDArray[np.int16], b: NDArray[np.int16]) -> NDArray[np.int16]:
    """Sum two int16 signals, clipping to the int16 range instead of wrapping around."""
    total = a.astype(np.int32) + b.astype(np.int32)
    return np.clip(total, -32768, 32767).astype(np.int16)


class WavRecorder:
    """Incremental 16-bit PCM WAV writer that is valid on disk after every flush.

    Args:
        path: output file (created or truncated).
        channels: 1 (mono) or 2 (stereo).
        sample_rate: Hz, 8000 for the engine.
        flush_interval_s: audio time between flushes (rule 3).
        fsync: also ``fsync`` after each flush (survives power loss; costs a disk sync).
        stagger: make the first flush come earlier, at a path-dependent point (rule 3).

    Raises:
        RecorderError: bad arguments or the file cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str], channels: int = 1,
                 sample_rate: int = 8000, *, flush_interval_s: float = 1.0,
                 fsync: bool = False, stagger: bool = True) -> None:
        if channels not in (1, 2):
            raise RecorderError(f"channels must be 1 or 2, got {channels}")
        if sample_rate <= 0 or flush_interval_s <= 0:
            raise RecorderError("sample_rate and flush_interval_s must be positive")
        self.path = os.fspath(path)
        self.channels = channels
        self.sample_rate = sample_rate
        self.fsync = fsync
        self._flush_samples = max(1, int(sample_rate * flush_interval_s))
        # The first flush comes at a path-dependent fraction of the interval, so recordings
        # started on the same tick (a conference, a benchmark) do not all hit the disk on
        # the same later ticks; later flushes keep the full interval.
        self._flush_at = self._flush_samples
        if stagger:
            self._flush_at = max(1, zlib.crc32(self.path.encode()) % self._flush_samples)
        self._pending: list[NDArray[np.int16]] = []
        self._pending_samples = 0
        self.data_bytes = 0
        self.paused = False
        self.closed = False
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        except OSError as exc:
            raise RecorderError(f"{self.path}: cannot create recording: {exc}") from exc
        try:
            os.write(self._fd, _header(channels, sample_rate, 0))
        except OSError as exc:
            os.close(self._fd)
            raise RecorderError(f"{self.path}: cannot write header: {exc}") from exc

    @property
    def samples_written(self) -> int:
        """Samples per channel on disk (as of the last flush)."""
        return self.data_bytes // (2 * self.channels)

    @property
    def duration_s(self) -> float:
        """Recorded audio time, flushed or not (pauses excluded, rule 4)."""
        return (self.samples_written + self._pending_samples) / self.sample_rate

    def write(self, frames: NDArray[np.int16], *, copy: bool = True) -> None:
        """Append audio: ``(samples,)`` (mono), ``(channels, samples)`` or ``(samples, channels)``.

        A 2-D block is read channel-major when its first axis equals ``channels`` (so a
        ``(2, 2)`` block is two channels of two samples), else sample-major (the engine's
        ``RecordTap`` hands ``(160, channels)``).

        Dropped while paused (rule 4). The block is kept until the next flush, so it is
        copied (160 samples: well under a microsecond) unless ``copy=False`` promises that
        the caller never modifies it afterwards (a row of a reused tick buffer would be).

        Raises:
            RecorderError: closed recorder or wrong shape/dtype.
        """
        if self.closed:
            raise RecorderError(f"{self.path}: write after close")
        if self.paused:
            return
        if frames.dtype != np.int16:
            raise RecorderError(f"recorder needs int16 samples, got {frames.dtype}")
        if frames.ndim == 1:
            if self.channels != 1:
                raise RecorderError("stereo recorder needs frames shaped (2, samples)")
            samples = frames.shape[0]
        elif frames.ndim == 2 and frames.shape[0] == self.channels:
            samples = frames.shape[1]
        elif frames.ndim == 2 and frames.shape[1] == self.channels:
            frames = frames.T  # (samples, channels) -> channel-major view, no copy
            samples = frames.shape[1]
        else:
            raise RecorderError(f"frames shaped {frames.shape} for {self.channels} channel(s)")
        self._append(frames.copy() if copy else frames, samples)

    def _append(self, block: NDArray[np.int16], samples: int) -> None:
        """Buffer a validated, owned block; flush when the interval is reached."""
        self._pending.append(block)
        self._pending_samples += samples
        if self._pending_samples >= self._flush_at:
            self.flush()

    def flush(self) -> None:
        """Write buffered audio and fix the header sizes (rule 2). No-op when empty."""
        if self.closed or not self._pending:
            return
        if self.channels == 1:
            block = np.concatenate([f.reshape(-1) for f in self._pending])
        else:
            block = np.concatenate(self._pending, axis=1).T  # interleave L, R
        payload = np.ascontiguousarray(block, dtype="<i2").tobytes()
        self._pending.clear()
        self._pending_samples = 0
        self._write_payload(payload)

    def _write_payload(self, payload: bytes) -> None:
        """Append laid-out little-endian sample bytes, then fix the header (rule 2)."""
        self._flush_at = self._flush_samples
        if self.data_bytes + len(payload) > _MAX_DATA_BYTES:
            logger.warning("%s: WAV size limit reached, dropping audio", self.path)
            return
        try:
            os.pwrite(self._fd, payload, HEADER_BYTES + self.data_bytes)
            self.data_bytes += len(payload)
            # one syscall for both size fields: they can never disagree with each other
            os.pwrite(self._fd, self._header_tail(), 4)
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            raise RecorderError(f"{self.path}: write failed: {exc}") from exc

    def _header_tail(self) -> bytes:
        return _header(self.channels, self.sample_rate, self.data_bytes)[4:]

    def pause(self) -> None:
        """Stop recording until :meth:`resume`; buffered audio is flushed now."""
        if not self.closed and not self.paused:
            self.flush()
            self.paused = True

    def resume(self) -> None:
        """Continue recording after :meth:`pause`."""
        self.paused = False

    def close(self) -> None:
        """Flush and close. Idempotent: later calls do nothing."""
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self.closed = True
            os.close(self._fd)

    def __enter__(self) -> WavRecorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class RecordingMode(Enum):
    """Layout of a call recording."""

    STEREO = "stereo"
    """Leg A (usually the caller) on the left channel, leg B (the agent) on the right."""
    MIXED = "mixed"
    """Both legs summed into one mono channel, saturating at the int16 limits."""


class CallRecorder:
    """Records the two legs of a call in the layout of a :class:`RecordingMode`.

    :meth:`write_legs` is the per-tick path: it copies the two legs into a preallocated
    buffer already in file layout (interleaved L/R for STEREO, two rows for MIXED), which
    is two small slice assignments and no allocation; a flush then writes the buffer with
    one ``pwrite`` (after one vectorized saturating sum over the whole second for MIXED).
    Since the legs are copied, callers may pass rows of a tick buffer they reuse.
    """

    def __init__(self, path: str | os.PathLike[str], mode: RecordingMode = RecordingMode.STEREO,
                 sample_rate: int = 8000, *, flush_interval_s: float = 1.0,
                 fsync: bool = False, stagger: bool = True) -> None:
        self.mode = mode
        channels = 2 if mode is RecordingMode.STEREO else 1
        self.wav = WavRecorder(path, channels, sample_rate, flush_interval_s=flush_interval_s,
                               fsync=fsync, stagger=stagger)
        self._stereo = mode is RecordingMode.STEREO
        self._alloc(self.wav._flush_samples + _FRAME_HINT)
        self._pos = 0

    def _alloc(self, capacity: int) -> None:
        if self._stereo:
            self._buf = np.empty((capacity, 2), dtype="<i2")  # interleaved, as in the file
        else:
            self._buf = np.empty((2, capacity), dtype=np.int16)  # rows summed at flush
        self._capacity = capacity

    def write_legs(self, leg_a: NDArray[np.int16], leg_b: NDArray[np.int16]) -> None:
        """Append one tick of both legs (1-D int16 arrays of equal length, copied).

        Raises:
            RecorderError: closed recorder, or legs of different shapes or not int16.
        """
        wav = self.wav
        if wav.closed:
            raise RecorderError(f"{wav.path}: write after close")
        if wav.paused:
            return
        n = leg_a.shape[0]
        if leg_a.shape != leg_b.shape or leg_a.ndim != 1:
            raise RecorderError(f"legs must be equal 1-D frames: {leg_a.shape}, {leg_b.shape}")
        if (leg_a.dtype is not _INT16 or leg_b.dtype is not _INT16) and (
                leg_a.dtype != np.int16 or leg_b.dtype != np.int16):
            raise RecorderError("recorder needs int16 samples")
        pos = self._pos
        if pos + n > self._capacity:
            self.flush()
            pos = 0
            if n > self._capacity:
                self._alloc(n)
        end = pos + n
        if self._stereo:
            self._buf[pos:end, 0] = leg_a
            self._buf[pos:end, 1] = leg_b
        else:
            self._buf[0, pos:end] = leg_a
            self._buf[1, pos:end] = leg_b
        self._pos = end
        if end >= wav._flush_at:
            self.flush()

    def write(self, frames: NDArray[np.int16]) -> None:
        """Append an already laid-out block (see :meth:`WavRecorder.write`)."""
        self._drain()
        self.wav.write(frames)

    def _drain(self) -> None:
        """Write the leg buffer to the file (rule 2), keeping the order with ``write``."""
        if self._pos == 0 or self.wav.closed:
            return
        n, self._pos = self._pos, 0
        if self._stereo:
            self.wav._write_payload(self._buf[:n].tobytes())
        else:
            mixed = mix_saturating(self._buf[0, :n], self._buf[1, :n])
            self.wav._write_payload(mixed.astype("<i2").tobytes())

    def flush(self) -> None:
        """Write everything buffered to the file (see :meth:`WavRecorder.flush`)."""
        self.wav.flush()
        self._drain()

    def pause(self) -> None:
        """Stop recording (rule 4); what was said before is flushed now."""
        self.flush()
        self.wav.pause()

    def resume(self) -> None:
        self.wav.resume()

    def close(self) -> None:
        """Flush and close; idempotent."""
        if not self.wav.closed:
            self.flush()
        self.wav.close()

    def __enter__(self) -> CallRecorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def path(self) -> str:
        return self.wav.path

    @property
    def paused(self) -> bool:
        return self.wav.paused

    @property
    def duration_s(self) -> float:
        """Recorded audio time, including what is still buffered."""
        return self.wav.duration_s + self._pos / self.wav.sample_rate


def repair_wav(path: str | os.PathLike[str]) -> int:
    """Make the header sizes of a recording match the file (after a crash, rule 2).

    Only for files written by :class:`WavRecorder` (canonical 44-byte header). A trailing
    partial sample frame is cut off.

    Returns:
        The data size in bytes after repair.

    Raises:
        RecorderError: the file is not a canonical 16-bit PCM WAV.
    """
    name = os.fspath(path)
    with open(name, "r+b") as f:
        head = f.read(HEADER_BYTES)
        if len(head) < HEADER_BYTES or head[:4] != b"RIFF" or head[36:40] != b"data":
            raise RecorderError(f"{name}: not a recorder WAV file")
        channels: int = struct.unpack_from("<H", head, 22)[0]
        size = os.fstat(f.fileno()).st_size
        data_bytes: int = min(size - HEADER_BYTES, _MAX_DATA_BYTES)
        data_bytes -= data_bytes % (2 * max(channels, 1))
        f.truncate(HEADER_BYTES + data_bytes)
        f.seek(4)
        f.write(struct.pack("<I", 36 + data_bytes))
        f.seek(40)
        f.write(struct.pack("<I", data_bytes))
    return data_bytes
