"""Tone generation: call-progress tones by country, DTMF, beeps, silence, comfort noise.

Every generator is a pure function of the *absolute* sample index, so the media engine can
render 20 ms of a tone for many channels in one call and stay phase-continuous and
cadence-correct across ticks without keeping oscillator state: ``render_tone(p, start, n)``
followed by ``render_tone(p, start + n, n)`` equals ``render_tone(p, start, 2 * n)``.

Levels are per frequency component in dBm0 (see :mod:`dsp.level` for the reference: a 0 dBm0
sine peaks at about 22,827 in int16).  Output is int16, saturated (never wrapped).

Sources of the tone plans (frequencies, cadences and levels):
* "cn": China, as listed in "Various tones used in national networks (according to ITU-T
  Recommendation E.180)", Annex to ITU Operational Bulletin 781: 450 Hz; dial continuous,
  ringback 1 s on 4 s off, busy 0.35/0.35 s, congestion 0.7/0.7 s, call waiting 0.4 s on
  4 s off.  Level -10 dBm0 (our choice; the list gives no level).
* "us": the North American Precise Tone Plan (Bellcore LSSGR): dial 350+440 Hz at
  -13 dBm0 per tone, ringback 440+480 Hz at -19 dBm0 2 s on 4 s off, busy 480+620 Hz at
  -24 dBm0 0.5/0.5 s, reorder (congestion) 480+620 Hz 0.25/0.25 s, call waiting 440 Hz
  0.3 s (repeated here every 10 s).
* "etsi": ETSI ETR 187 / TR 101 041-2 harmonized European tones: 425 Hz; dial continuous,
  ringing 1 s on 4 s off, busy 0.5/0.5 s, congestion 0.25/0.25 s, call waiting two 0.2 s
  bursts 0.2 s apart (repeated here every 5 s).  Level -10 dBm0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dsp.level import dbm0_to_amplitude, dbov_to_rms

logger = logging.getLogger(__name__)

__all__ = [
    "DTMF_COL_HZ",
    "DTMF_KEYPAD",
    "DTMF_ROW_HZ",
    "PROFILES",
    "TonePattern",
    "ToneProfile",
    "beep",
    "comfort_noise",
    "dtmf_frequencies",
    "dtmf_tone",
    "dual_tone",
    "render_tone",
    "silence",
]

#: DTMF low ("row") group, ITU-T Q.23 Table 1.
DTMF_ROW_HZ: tuple[float, ...] = (697.0, 770.0, 852.0, 941.0)
#: DTMF high ("column") group, ITU-T Q.23 Table 1.
DTMF_COL_HZ: tuple[float, ...] = (1209.0, 1336.0, 1477.0, 1633.0)
#: Keypad rows (Q.23 Figure 1): DTMF_KEYPAD[row][col].
DTMF_KEYPAD: tuple[str, ...] = ("123A", "456B", "789C", "*0#D")


@dataclass(frozen=True)
class TonePattern:
    """A (multi-frequency) tone with an on/off cadence.

    Attributes:
        freqs_hz: component frequencies, each at ``level_dbm0``.
        level_dbm0: level of each component in dBm0.
        cadence_ms: alternating on/off durations starting with "on"; ``()`` = continuous.
            An odd-length cadence is allowed: the last "on" is followed by no pause.
    """

    freqs_hz: tuple[float, ...]
    level_dbm0: float
    cadence_ms: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.freqs_hz:
            raise ValueError("a tone needs at least one frequency")
        if any(c < 0 for c in self.cadence_ms) or (self.cadence_ms and
                                                   sum(self.cadence_ms) == 0):
            raise ValueError(f"invalid cadence {self.cadence_ms}")


@dataclass(frozen=True)
class ToneProfile:
    """The call-progress tones of one country or standard."""

    name: str
    dial: TonePattern
    ringback: TonePattern
    busy: TonePattern
    congestion: TonePattern
    call_waiting: TonePattern


PROFILES: dict[str, ToneProfile] = {
    "cn": ToneProfile(
        name="cn",
        dial=TonePattern((450.0,), -10.0),
        ringback=TonePattern((450.0,), -10.0, (1000, 4000)),
        busy=TonePattern((450.0,), -10.0, (350, 350)),
        congestion=TonePattern((450.0,), -10.0, (700, 700)),
        call_waiting=TonePattern((450.0,), -10.0, (400, 4000)),
    ),
    "us": ToneProfile(
        name="us",
        dial=TonePattern((350.0, 440.0), -13.0),
        ringback=TonePattern((440.0, 480.0), -19.0, (2000, 4000)),
        busy=TonePattern((480.0, 620.0), -24.0, (500, 500)),
        congestion=TonePattern((480.0, 620.0), -24.0, (250, 250)),
        call_waiting=TonePattern((440.0,), -13.0, (300, 9700)),
    ),
    "etsi": ToneProfile(
        name="etsi",
        dial=TonePattern((425.0,), -10.0),
        ringback=TonePattern((425.0,), -10.0, (1000, 4000)),
        busy=TonePattern((425.0,), -10.0, (500, 500)),
        congestion=TonePattern((425.0,), -10.0, (250, 250)),
        call_waiting=TonePattern((425.0,), -10.0, (200, 200, 200, 4400)),
    ),
}


def _to_int16(x: NDArray[np.floating]) -> NDArray[np.int16]:
    result: NDArray[np.int16] = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return result


def _sines(freqs_hz: tuple[float, ...], amplitudes: NDArray[np.float64],
           index: NDArray[np.int64], sample_rate: int) -> NDArray[np.float64]:
    """Sum of sines evaluated at absolute sample indexes (float64, no oscillator state)."""
    out = np.zeros(index.shape, dtype=np.float64)
    for f, a in zip(freqs_hz, amplitudes, strict=True):
        # (f * n) mod fs keeps the phase argument small, so hours of samples keep full
        # float64 precision (exact when f is an integer number of Hz).
        cycles = np.mod(f * index, sample_rate) / sample_rate
        out += a * np.sin(2.0 * np.pi * cycles)
    return out


def _cadence_gate(cadence_ms: tuple[int, ...], index: NDArray[np.int64],
                  sample_rate: int) -> NDArray[np.bool_]:
    bounds = np.cumsum(np.asarray(cadence_ms, dtype=np.int64)) * sample_rate // 1000
    pos = np.mod(index, bounds[-1])
    segment = np.searchsorted(bounds, pos, side="right")
    result: NDArray[np.bool_] = (segment % 2) == 0
    return result


def render_tone(pattern: TonePattern, start_sample: NDArray[np.int64] | int, n: int,
                sample_rate: int = 8000) -> NDArray[np.int16]:
    """Render ``n`` samples of ``pattern`` starting at absolute sample index ``start_sample``.

    Args:
        pattern: the tone.
        start_sample: int -> 1-D output ``(n,)``; int array ``(N,)`` -> ``(N, n)``, one row
            per channel, each at its own position in the tone (phase and cadence).
        n: samples to render.
        sample_rate: Hz.
    Returns:
        int16 PCM.
    """
    start = np.asarray(start_sample, dtype=np.int64)
    index = start[..., None] + np.arange(n, dtype=np.int64)
    amps = np.full(len(pattern.freqs_hz), float(dbm0_to_amplitude(pattern.level_dbm0)))
    signal = _sines(pattern.freqs_hz, amps, index, sample_rate)
    if pattern.cadence_ms:
        signal *= _cadence_gate(pattern.cadence_ms, index, sample_rate)
    return _to_int16(signal)


def dual_tone(f1_hz: float, f2_hz: float, n: int, level1_dbm0: float, level2_dbm0: float,
              sample_rate: int = 8000, start_sample: int = 0) -> NDArray[np.int16]:
    """Two sines with separate levels (the building block of DTMF test signals)."""
    index = start_sample + np.arange(n, dtype=np.int64)
    amps = dbm0_to_amplitude(np.array([level1_dbm0, level2_dbm0]))
    return _to_int16(_sines((f1_hz, f2_hz), amps, index, sample_rate))


def dtmf_frequencies(digit: str) -> tuple[float, float]:
    """(low-group Hz, high-group Hz) of a DTMF digit in "0123456789*#ABCD" (Q.23)."""
    key = digit.upper()
    for row, keys in enumerate(DTMF_KEYPAD):
        col = keys.find(key)
        if len(key) == 1 and col >= 0:
            return DTMF_ROW_HZ[row], DTMF_COL_HZ[col]
    raise ValueError(f"not a DTMF digit: {digit!r}")


def dtmf_tone(digit: str, duration_ms: float, level_dbm0: float = -10.0,
              twist_db: float = 0.0, sample_rate: int = 8000,
              freq_offset: float = 0.0) -> NDArray[np.int16]:
    """A DTMF digit (ITU-T Q.23).

    Args:
        digit: one of "0123456789*#ABCD".
        duration_ms: length; rounded to whole samples.
        level_dbm0: level of the low-group (row) component, dBm0 per frequency.
        twist_db: level of the high group minus level of the low group, in dB.  Positive =
            high group stronger ("reverse twist" in Asterisk's naming), negative = high
            group weaker ("normal twist": a loop attenuates the high group more).
        sample_rate: Hz.
        freq_offset: relative frequency error applied to both components (0.015 = +1.5 %).
    """
    low, high = dtmf_frequencies(digit)
    n = round(duration_ms * sample_rate / 1000.0)
    return dual_tone(low * (1.0 + freq_offset), high * (1.0 + freq_offset), n,
                     level_dbm0, level_dbm0 + twist_db, sample_rate)


def beep(duration_ms: float = 200.0, freq: float = 1000.0, level_dbm0: float = -10.0,
         sample_rate: int = 8000) -> NDArray[np.int16]:
    """A single sine burst: ``freq`` in Hz (1000 Hz, or e.g. 440 Hz for a softer beep
    before a recording).

    The first and last 5 ms are shaped with a raised cosine so the beep does not click.
    """
    n = round(duration_ms * sample_rate / 1000.0)
    index = np.arange(n, dtype=np.int64)
    signal = _sines((freq,), np.array([float(dbm0_to_amplitude(level_dbm0))]), index,
                    sample_rate)
    ramp = min(n // 2, sample_rate // 200)
    if ramp > 0:
        shape = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        signal[:ramp] *= shape
        signal[n - ramp:] *= shape[::-1]
    return _to_int16(signal)


def silence(n: int, channels: int = 1) -> NDArray[np.int16]:
    """Zeros: ``(n,)`` for one channel, ``(channels, n)`` otherwise."""
    if channels == 1:
        return np.zeros(n, dtype=np.int16)
    return np.zeros((channels, n), dtype=np.int16)


def comfort_noise(shape: int | tuple[int, ...], level_dbov: float,
                  rng: np.random.Generator) -> NDArray[np.int16]:
    """White Gaussian noise whose RMS is ``level_dbov`` (RFC 3389 §3: the noise level byte
    is the negated level in dBov, 0..127, and a level of 127 means digital silence).

    Args:
        shape: output shape, e.g. ``(channels, 160)``.
        level_dbov: RMS level, e.g. -70.0 (typical CN level).
        rng: the caller's seeded generator (no hidden randomness).
    """
    if level_dbov <= -127.0:
        return np.zeros(shape, dtype=np.int16)
    noise = rng.standard_normal(shape) * float(dbov_to_rms(level_dbov))
    return _to_int16(noise)
