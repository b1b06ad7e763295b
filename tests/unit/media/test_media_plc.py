"""Packet loss concealment (G.711 Appendix I style), vectorized over channels."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from dsp.plc import PITCH_MAX, PITCH_MIN, Plc, find_pitch

FS = 8000
FRAME = 160


def sine(freq: float, n: int, amp: float = 8000.0, phase: float = 0.0) -> NDArray[np.float64]:
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / FS + phase)


def voiced(n: int, f0: float = 140.0, seed: int = 0) -> NDArray[np.float64]:
    """A vowel-like signal: 8 harmonics with a fixed random spectrum envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    x = np.zeros(n)
    for k in range(1, 9):
        x += rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.28))
    return 6000 * x / np.max(np.abs(x))


def frames(x: NDArray[np.float64]) -> NDArray[np.int16]:
    return np.round(x).astype(np.int16).reshape(-1, FRAME)


def feed_history(plc: Plc, slots: list[int], signals: list[NDArray[np.float64]], n: int) -> None:
    stacked = np.stack([frames(s) for s in signals])  # (k, frames, 160)
    for f in range(n):
        plc.good(np.array(slots), stacked[:, f, :])


def peak_hz(x: NDArray[np.float64]) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=8192))
    return float(np.argmax(spec) * FS / 8192)


def test_find_pitch_of_periodic_signals() -> None:
    hist = np.stack([sine(100.0, 390), sine(160.0, 390), voiced(390, 125.0)]).astype(np.float32)
    p = find_pitch(hist)
    assert p.min() >= PITCH_MIN and p.max() <= PITCH_MAX
    assert p[0] == 80  # 100 Hz -> 80 samples
    assert p[1] in (50, 100)  # 160 Hz -> 50 samples (or two periods)
    assert p[2] == 64  # 125 Hz -> 64 samples


@pytest.mark.parametrize("freq", [200.0, 440.0, 800.0])
def test_concealed_sine_keeps_its_frequency_and_is_not_silence(freq: float) -> None:
    plc = Plc(4)
    x = sine(freq, 20 * FRAME)
    feed_history(plc, [2], [x], 10)
    out = np.concatenate([plc.conceal(np.array([2]))[0] for _ in range(2)]).astype(float)
    assert abs(peak_hz(out) - freq) < 15
    ref_rms = np.sqrt(np.mean(x**2))
    assert np.sqrt(np.mean(out[:FRAME].astype(float) ** 2)) > 0.7 * ref_rms
    # the first concealed samples continue the waveform (no jump at the join)
    assert abs(float(out[0]) - x[10 * FRAME]) < 0.2 * 8000


def test_attenuation_to_silence_after_60ms() -> None:
    plc = Plc(1)
    feed_history(plc, [0], [sine(300.0, 10 * FRAME)], 10)
    out = np.concatenate([plc.conceal(np.array([0]))[0] for _ in range(5)]).astype(float)
    env = [np.max(np.abs(out[i : i + 80])) for i in range(0, 800, 80)]
    assert env[0] > 7000  # first 10 ms at full level
    assert env[1] > env[2] > env[3] > env[4] > env[5]  # 20 % per 10 ms
    assert env[2] == pytest.approx(0.8 * 8000, rel=0.1)
    assert np.all(out[480:] == 0)  # silent from 60 ms on


def test_better_snr_than_zero_fill_on_voiced_speech() -> None:
    plc = Plc(1)
    x = voiced(30 * FRAME, 140.0, seed=3)
    feed_history(plc, [0], [x], 12)
    lost = x[12 * FRAME : 13 * FRAME]
    y = plc.conceal(np.array([0]))[0].astype(float)
    snr_plc = 10 * np.log10(np.sum(lost**2) / np.sum((lost - y) ** 2))
    snr_zero = 10 * np.log10(np.sum(lost**2) / np.sum(lost**2))  # 0 dB
    assert snr_plc > snr_zero + 6


def test_first_good_frame_after_loss_is_smoothed() -> None:
    plc = Plc(1)
    x = sine(250.0, 40 * FRAME)
    feed_history(plc, [0], [x], 10)
    for _ in range(4):  # 80 ms: concealment faded to silence
        plc.conceal(np.array([0]))
    good = frames(x)[14:15]
    out = plc.good(np.array([0]), good)
    assert abs(int(out[0, 0])) < abs(int(good[0, 0])) or abs(int(good[0, 0])) < 500
    assert np.max(np.abs(out[0, :10].astype(int))) < np.max(np.abs(good[0, :80].astype(int)))
    np.testing.assert_array_equal(out[0, 100:], good[0, 100:])  # OLA is at most 10 ms
    # the next good frame passes through untouched
    nxt = frames(x)[15:16]
    assert plc.good(np.array([0]), nxt) is nxt


def test_vectorized_channels_are_independent() -> None:
    plc = Plc(8)
    slots = [1, 5, 6]
    sigs = [sine(200.0, 12 * FRAME), sine(500.0, 12 * FRAME), np.zeros(12 * FRAME)]
    feed_history(plc, slots, sigs, 12)
    out = plc.conceal(np.array(slots))
    assert out.shape == (3, FRAME) and out.dtype == np.int16
    assert abs(peak_hz(out[0].astype(float)) - 200) < 30
    assert abs(peak_hz(out[1].astype(float)) - 500) < 30
    assert np.all(out[2] == 0)
    # alone, slot 5 gives the same concealment as in the batch
    solo = Plc(8)
    feed_history(solo, [5], [sigs[1]], 12)
    np.testing.assert_array_equal(solo.conceal(np.array([5]))[0], out[1])


def test_empty_slot_sets_and_reset() -> None:
    plc = Plc(2)
    assert plc.conceal(np.array([], dtype=np.intp)).shape == (0, FRAME)
    empty = np.zeros((0, FRAME), dtype=np.int16)
    assert plc.good(np.array([], dtype=np.intp), empty) is empty
    feed_history(plc, [0], [sine(300.0, 4 * FRAME)], 4)
    plc.reset([0])
    assert np.all(plc.conceal(np.array([0])) == 0)
    with pytest.raises(ValueError):
        Plc(0)
