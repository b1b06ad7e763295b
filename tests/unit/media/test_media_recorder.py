"""Tests for switch.media.recorder: incremental WAV that stays valid, even after kill -9."""

from __future__ import annotations

import itertools
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import warnings
import wave
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from switch.media.errors import MediaError, RecorderError
from switch.media.recorder import (
    HEADER_BYTES,
    CallRecorder,
    RecordingMode,
    WavRecorder,
    mix_saturating,
    repair_wav,
)

REPO = Path(__file__).resolve().parents[3]


def signal_at(start: int, n: int, channel: int) -> np.ndarray:
    """Deterministic test signal: a function of the absolute sample index and channel."""
    i = np.arange(start, start + n, dtype=np.int64)
    mult = (37, 11)[channel]
    return (((i * mult + channel * 5) % 65536) - 32768).astype(np.int16)


def read_wave(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        data = np.frombuffer(w.readframes(params.nframes), dtype="<i2")
    return params, data.reshape(-1, params.nchannels)


def header_sizes(path: Path) -> tuple[int, int, int]:
    raw = path.read_bytes()
    riff = struct.unpack_from("<I", raw, 4)[0]
    data = struct.unpack_from("<I", raw, 40)[0]
    return riff, data, len(raw)


def test_mono_flush_is_readable_while_open(tmp_path: Path) -> None:
    path = tmp_path / "m.wav"
    rec = WavRecorder(path, channels=1, flush_interval_s=0.1, stagger=False)  # every 800
    params, data = read_wave(path)
    assert params.nframes == 0 and params.framerate == 8000 and params.sampwidth == 2
    for k in range(5):
        rec.write(signal_at(160 * k, 160, 0))
    # 800 samples reached: flushed, and the open file is a complete WAV
    params, data = read_wave(path)
    assert params.nframes == 800
    np.testing.assert_array_equal(data[:, 0], signal_at(0, 800, 0))
    rec.write(signal_at(800, 160, 0))
    assert read_wave(path)[0].nframes == 800  # buffered, not yet flushed
    rec.close()
    rec.close()  # idempotent
    params, data = read_wave(path)
    assert params.nframes == 960
    np.testing.assert_array_equal(data[:, 0], signal_at(0, 960, 0))
    riff, size, file_size = header_sizes(path)
    assert size == file_size - HEADER_BYTES and riff == file_size - 8


def test_default_flush_every_second(tmp_path: Path) -> None:
    rec = WavRecorder(tmp_path / "s.wav", stagger=False)
    for _ in range(49):
        rec.write(np.ones(160, dtype=np.int16))
    assert rec.data_bytes == 0
    rec.write(np.ones(160, dtype=np.int16))
    assert rec.samples_written == 8000
    rec.close()


def test_staggered_first_flush(tmp_path: Path) -> None:
    """Recordings started together flush on different ticks, then once per second."""
    first_flush_ticks = set()
    for i in range(8):
        rec = CallRecorder(tmp_path / f"call-{i}.wav", RecordingMode.MIXED)
        flushes = []
        for tick in range(200):
            before = rec.wav.samples_written
            rec.write_legs(np.ones(160, dtype=np.int16), np.ones(160, dtype=np.int16))
            if rec.wav.samples_written != before:
                flushes.append(tick)
        rec.close()
        assert 1 <= len(flushes) <= 5 and flushes[0] < 50
        assert all(b - a == 50 for a, b in itertools.pairwise(flushes))
        first_flush_ticks.add(flushes[0])
    assert len(first_flush_ticks) >= 4


def test_stereo_layouts_are_equivalent(tmp_path: Path) -> None:
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    with WavRecorder(a, channels=2) as ra, WavRecorder(b, channels=2) as rb:
        for k in range(7):
            left, right = signal_at(160 * k, 160, 0), signal_at(160 * k, 160, 1)
            ra.write(np.stack((left, right)))  # (channels, samples)
            rb.write(np.stack((left, right), axis=1))  # (samples, channels)
    assert a.read_bytes() == b.read_bytes()
    params, data = read_wave(a)
    assert params.nchannels == 2 and params.nframes == 7 * 160
    np.testing.assert_array_equal(data[:, 0], signal_at(0, 1120, 0))
    np.testing.assert_array_equal(data[:, 1], signal_at(0, 1120, 1))
    rate, sdata = wavfile.read(a)
    assert rate == 8000 and sdata.shape == (1120, 2)


def test_reused_buffer_is_copied(tmp_path: Path) -> None:
    path = tmp_path / "reuse.wav"
    buf = np.zeros((2, 160), dtype=np.int16)
    with WavRecorder(path, channels=2) as rec:
        for k in range(3):
            buf[:] = k + 1  # the engine's tick buffer is overwritten every tick
            rec.write(buf)
    _, data = read_wave(path)
    assert data[::160, 0].tolist() == [1, 2, 3]


def test_pause_drops_frames(tmp_path: Path) -> None:
    path = tmp_path / "p.wav"
    rec = WavRecorder(path)
    rec.write(np.full(160, 1, dtype=np.int16))
    rec.pause()
    assert rec.samples_written == 160  # pause flushes what was buffered
    rec.write(np.full(160, 2, dtype=np.int16))
    rec.write(np.full(160, 3, dtype=np.int16))
    rec.resume()
    rec.write(np.full(160, 4, dtype=np.int16))
    assert rec.duration_s == pytest.approx(320 / 8000)
    rec.close()
    _, data = read_wave(path)
    assert data.shape == (320, 1)
    assert set(data[:160, 0]) == {1} and set(data[160:, 0]) == {4}


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(RecorderError):
        WavRecorder(tmp_path / "x.wav", channels=3)
    with pytest.raises(MediaError):
        WavRecorder(tmp_path / "no-such-dir" / "x.wav")
    rec = WavRecorder(tmp_path / "y.wav", channels=2)
    with pytest.raises(RecorderError):
        rec.write(np.zeros(160, dtype=np.int16))  # mono frame into stereo
    with pytest.raises(RecorderError):
        rec.write(np.zeros((3, 160), dtype=np.int16))
    with pytest.raises(RecorderError):
        rec.write(np.zeros((2, 160), dtype=np.float32))  # type: ignore[arg-type]
    rec.close()
    with pytest.raises(RecorderError):
        rec.write(np.zeros((2, 160), dtype=np.int16))


def test_call_recorder_stereo_and_mixed(tmp_path: Path) -> None:
    a = np.full(160, 30000, dtype=np.int16)
    b = np.full(160, 10000, dtype=np.int16)
    stereo = CallRecorder(tmp_path / "st.wav", RecordingMode.STEREO)
    mixed = CallRecorder(tmp_path / "mx.wav", RecordingMode.MIXED)
    for rec in (stereo, mixed):
        rec.write_legs(a, b)
        rec.write_legs(-a, -b)
        rec.close()
    _, st = read_wave(tmp_path / "st.wav")
    assert st.shape == (320, 2)
    assert (st[:160, 0] == 30000).all() and (st[:160, 1] == 10000).all()
    _, mx = read_wave(tmp_path / "mx.wav")
    assert mx.shape == (320, 1)
    assert (mx[:160, 0] == 32767).all() and (mx[160:, 0] == -32768).all()  # saturated
    with pytest.raises(RecorderError):
        stereo.write_legs(a, b)


def test_mix_saturating_matches_wide_sum() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(-32768, 32768, 4000).astype(np.int16)
    b = rng.integers(-32768, 32768, 4000).astype(np.int16)
    expected = np.clip(a.astype(np.int64) + b, -32768, 32767)
    np.testing.assert_array_equal(mix_saturating(a, b), expected)


def test_repair_wav_recovers_tail(tmp_path: Path) -> None:
    path = tmp_path / "r.wav"
    with WavRecorder(path, channels=2) as rec:
        rec.write(np.stack((signal_at(0, 160, 0), signal_at(0, 160, 1))))
    # simulate death between the data write and the header write: one more block + 1 byte
    extra = np.stack((signal_at(160, 160, 0), signal_at(160, 160, 1)), axis=1)
    with open(path, "ab") as f:
        f.write(extra.astype("<i2").tobytes() + b"\x01")
    assert read_wave(path)[0].nframes == 160  # still valid, old size
    assert repair_wav(path) == 320 * 4
    params, data = read_wave(path)
    assert params.nframes == 320
    np.testing.assert_array_equal(data[:, 1], signal_at(0, 320, 1))
    riff, size, file_size = header_sizes(path)
    assert size == file_size - HEADER_BYTES and riff == file_size - 8


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from switch.media.recorder import WavRecorder

    def signal_at(start, n, channel):
        i = np.arange(start, start + n, dtype=np.int64)
        mult = (37, 11)[channel]
        return (((i * mult + channel * 5) % 65536) - 32768).astype(np.int16)

    rec = WavRecorder(sys.argv[1], channels=2, flush_interval_s=0.1)
    pos = 0
    flushed = 0
    while True:
        rec.write(np.stack((signal_at(pos, 160, 0), signal_at(pos, 160, 1))))
        pos += 160
        if rec.samples_written != flushed:
            flushed = rec.samples_written
            print(flushed, flush=True)
        time.sleep(0.0003)
    """
)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_valid_after_writer_is_killed(tmp_path: Path, seed: int) -> None:
    """SIGKILL a recording process at a random moment: the file stays a valid WAV."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    path = tmp_path / "killed.wav"
    proc = subprocess.Popen([sys.executable, str(script), str(path), str(REPO)],
                            stdout=subprocess.PIPE, text=True)
    reported = 0
    try:
        want = random.Random(seed).randint(3, 15)
        assert proc.stdout is not None
        for _ in range(want):
            line = proc.stdout.readline()
            assert line, "child died early"
            reported = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert reported > 0

    params, data = read_wave(path)
    assert params.nchannels == 2 and params.framerate == 8000
    assert params.nframes >= reported  # everything up to the last reported flush
    np.testing.assert_array_equal(data[:, 0], signal_at(0, params.nframes, 0))
    np.testing.assert_array_equal(data[:, 1], signal_at(0, params.nframes, 1))

    riff, size, file_size = header_sizes(path)
    assert riff == size + 36
    block = 800 * 4  # one flush block (0.1 s stereo)
    # exact, unless killed between the data write and the header write (module rule 2)
    extra = file_size - HEADER_BYTES - size
    assert extra == 0 or (0 < extra <= block and extra % 4 == 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", wavfile.WavFileWarning)
        rate, sdata = wavfile.read(path)
    assert rate == 8000
    np.testing.assert_array_equal(sdata, data)

    if shutil.which("sox"):
        out = subprocess.run(["sox", "--i", "-s", str(path)], capture_output=True, text=True,
                             check=True, timeout=10)
        assert int(out.stdout.strip()) == params.nframes


def test_sox_reads_recording(tmp_path: Path) -> None:
    if shutil.which("sox") is None:
        pytest.skip("sox not installed")
    path = tmp_path / "sox.wav"
    with CallRecorder(path, RecordingMode.STEREO) as rec:
        for k in range(10):
            rec.write_legs(signal_at(160 * k, 160, 0), signal_at(160 * k, 160, 1))
    out = subprocess.run(["sox", "--i", str(path)], capture_output=True, text=True, check=True,
                         timeout=10).stdout
    assert "Channels       : 2" in out and "Sample Rate    : 8000" in out
    assert "1600 samples" in out
