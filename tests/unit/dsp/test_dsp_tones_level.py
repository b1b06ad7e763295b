"""Tones (profiles, render_tone as a pure function of the sample index, DTMF, beep, noise),
levels (dBm0/dBov references) and resampling."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.goertzel import block_powers, goertzel_basis
from dsp.level import (
    DBM0_PEAK,
    amplitude_to_dbm0,
    dbm0_to_amplitude,
    dbov_to_rms,
    rms,
    rms_dbm0,
    rms_dbov,
    row_energy,
)
from dsp.resample import rate_ratio, to_rate
from dsp.tones import (
    PROFILES,
    TonePattern,
    beep,
    comfort_noise,
    dtmf_frequencies,
    dtmf_tone,
    render_tone,
    silence,
)


# ------------------------------------------------------------------ levels
def test_dbm0_reference() -> None:
    assert abs(DBM0_PEAK - 22826.6) < 0.5
    assert float(dbm0_to_amplitude(3.14)) == pytest.approx(32768.0)
    assert float(amplitude_to_dbm0(dbm0_to_amplitude(-25.0))) == pytest.approx(-25.0)
    n = np.arange(8000)
    sine = np.rint(DBM0_PEAK * np.sin(2 * np.pi * 1000 * n / 8000 + 0.1)).astype(np.int16)
    assert float(rms_dbm0(sine)) == pytest.approx(0.0, abs=0.01)
    assert float(rms_dbov(sine)) == pytest.approx(-6.17, abs=0.02)


def test_rms_and_energy_per_row() -> None:
    x = np.array([[3, 4, 0, 0], [32767, -32768, 32767, -32768]], dtype=np.int16)
    assert row_energy(x).tolist() == [25.0, 2 * 32767**2 + 2 * 32768**2]
    assert rms(x)[0] == pytest.approx(2.5)
    assert float(rms_dbov(x)[1]) == pytest.approx(0.0, abs=0.001)
    assert rms(np.zeros((2, 0), np.int16)).tolist() == [0.0, 0.0]
    assert float(rms_dbov(np.zeros(10, np.int16))) < -200
    assert float(dbov_to_rms(-20.0)) == pytest.approx(3276.8)


# ------------------------------------------------------------------ tones
def _dominant_freqs(pcm: np.ndarray, candidates: list[float]) -> set[float]:
    basis = goertzel_basis(candidates, pcm.size)
    p = block_powers(pcm[None, :], basis)[0]
    return {f for f, v in zip(candidates, p, strict=True) if v > 0.1 * p.max()}


def test_profiles_have_the_required_plans() -> None:
    cn, us, etsi = PROFILES["cn"], PROFILES["us"], PROFILES["etsi"]
    assert cn.dial == TonePattern((450.0,), -10.0, ())
    assert (cn.ringback.cadence_ms, cn.busy.cadence_ms, cn.congestion.cadence_ms) == \
        ((1000, 4000), (350, 350), (700, 700))
    assert us.dial.freqs_hz == (350.0, 440.0) and us.dial.cadence_ms == ()
    assert us.ringback.freqs_hz == (440.0, 480.0) and us.ringback.cadence_ms == (2000, 4000)
    assert us.busy.freqs_hz == (480.0, 620.0) and us.busy.cadence_ms == (500, 500)
    assert us.congestion.cadence_ms == (250, 250)
    assert {p.freqs_hz for p in (etsi.dial, etsi.ringback, etsi.busy, etsi.congestion)} == \
        {(425.0,)}
    assert (etsi.ringback.cadence_ms, etsi.busy.cadence_ms, etsi.congestion.cadence_ms) == \
        ((1000, 4000), (500, 500), (250, 250))


def test_render_tone_is_phase_continuous_across_calls() -> None:
    pattern = PROFILES["us"].ringback
    whole = render_tone(pattern, 12345, 8000)
    pieces = np.concatenate([render_tone(pattern, 12345 + k, 160) for k in range(0, 8000, 160)])
    assert np.array_equal(whole, pieces)


def test_render_tone_vectorized_rows_equal_scalar_calls() -> None:
    pattern = PROFILES["cn"].busy
    starts = np.array([0, 160, 2799, 123456789], dtype=np.int64)
    block = render_tone(pattern, starts, 160)
    assert block.shape == (4, 160) and block.dtype == np.int16
    for row, st in zip(block, starts, strict=True):
        assert np.array_equal(row, render_tone(pattern, int(st), 160))


def test_cadence_and_level() -> None:
    busy = render_tone(PROFILES["cn"].busy, 0, 8000)  # 350 ms on / 350 ms off
    on = np.abs(busy.astype(np.int32)) > 0
    assert on[:2800].mean() > 0.95 and not on[2800:5600].any() and on[5600:8000].mean() > 0.95
    assert float(rms_dbm0(busy[:2800])) == pytest.approx(-10.0, abs=0.05)
    assert _dominant_freqs(busy[:2800], [400.0, 425.0, 450.0, 480.0]) == {450.0}
    dial = render_tone(PROFILES["us"].dial, 0, 8000)
    assert _dominant_freqs(dial, [350.0, 400.0, 440.0, 480.0]) == {350.0, 440.0}
    cw = render_tone(PROFILES["etsi"].call_waiting, 0, 8 * 1000)
    on = np.abs(cw.astype(np.int32)) > 0
    assert on[:1600].mean() > 0.9 and not on[1600:3200].any() and on[3200:4800].mean() > 0.9
    assert not on[4800:].any()


def test_dtmf_tone_levels_twist_and_offset() -> None:
    low, high = dtmf_frequencies("9")
    assert (low, high) == (852.0, 1477.0)
    tone = dtmf_tone("9", 100, level_dbm0=-12.0, twist_db=-6.0)
    assert tone.size == 800
    basis = goertzel_basis([low, high], 800)
    p_low, p_high = block_powers(tone[None, :], basis)[0]
    assert 10 * np.log10(p_high / p_low) == pytest.approx(-6.0, abs=0.2)
    scale = (800 / 2) ** 2
    assert float(amplitude_to_dbm0(np.sqrt(p_low / scale))) == pytest.approx(-12.0, abs=0.2)
    shifted = dtmf_tone("9", 100, freq_offset=0.02)
    assert _dominant_freqs(shifted, [low * 1.02, high * 1.02, low, high]) >= \
        {low * 1.02, high * 1.02}
    with pytest.raises(ValueError):
        dtmf_tone("E", 50)


def test_beep_silence_and_comfort_noise() -> None:
    b = beep(duration_ms=200, freq=440)
    assert b.size == 1600 and b[0] == 0 and abs(int(b[-1])) < 200
    assert _dominant_freqs(b, [440.0, 1000.0]) == {440.0}
    assert silence(160).shape == (160,) and silence(160, 3).shape == (3, 160)
    assert not silence(160, 3).any()
    rng = np.random.default_rng(0)
    cn = comfort_noise((4, 8000), -40.0, rng)
    assert cn.dtype == np.int16 and cn.shape == (4, 8000)
    assert np.allclose(rms_dbov(cn), -40.0, atol=0.2)
    assert not comfort_noise(160, -127.0, rng).any()
    a = comfort_noise(160, -30.0, np.random.default_rng(5))
    assert np.array_equal(a, comfort_noise(160, -30.0, np.random.default_rng(5)))


def test_tone_pattern_validation() -> None:
    with pytest.raises(ValueError):
        TonePattern((), -10.0)
    with pytest.raises(ValueError):
        TonePattern((400.0,), -10.0, (0, 0))


# --------------------------------------------------------------- resample
def test_rate_ratio() -> None:
    assert rate_ratio(22050, 8000) == (160, 441)
    assert rate_ratio(16000, 8000) == (1, 2)
    with pytest.raises(ValueError):
        rate_ratio(0, 8000)


def test_to_rate_keeps_in_band_tones_and_removes_aliases() -> None:
    n = np.arange(16000)
    in_band = 8000 * np.sin(2 * np.pi * 1000 * n / 16000)
    alias = 8000 * np.sin(2 * np.pi * 5000 * n / 16000)  # would fold to 3000 Hz
    x = np.rint(in_band + alias).astype(np.int16)
    y = to_rate(x, 16000, 8000)
    assert y.dtype == np.int16 and y.size == 8000
    p = block_powers(y[None, 1000:7000], goertzel_basis([1000.0, 3000.0], 6000))[0]
    assert 10 * np.log10(p[0] / p[1]) > 40
    assert float(rms_dbov(y[1000:7000])) == pytest.approx(float(rms_dbov(
        np.rint(in_band).astype(np.int16))), abs=0.2)


def test_to_rate_two_dimensional_saturation_and_identity() -> None:
    x = np.full((3, 441), 32767, dtype=np.int16)
    y = to_rate(x, 22050, 8000)
    assert y.shape == (3, 160) and y.dtype == np.int16
    assert y.max() <= 32767  # ringing at the edges is clipped, not wrapped
    same = to_rate(x, 8000, 8000)
    assert np.array_equal(same, x) and same is not x
    assert to_rate(np.zeros((2, 0), np.int16), 16000).shape == (2, 0)
