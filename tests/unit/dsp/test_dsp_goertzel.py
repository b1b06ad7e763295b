"""The matrix-product Goertzel equals the classic recurrence, and levels read correctly."""

from __future__ import annotations

import math

import numpy as np

from dsp.goertzel import (
    block_dft,
    block_powers,
    frame_blocks,
    goertzel_basis,
    hann,
    tone_power_scale,
)


def goertzel_recurrence_power(x: np.ndarray, freq: float, fs: int) -> float:
    """The textbook second-order Goertzel filter (per-sample loop: the oracle)."""
    coeff = 2.0 * math.cos(2.0 * math.pi * freq / fs)
    s1 = s2 = 0.0
    for sample in x.tolist():
        s0 = sample + coeff * s1 - s2
        s2, s1 = s1, s0
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def test_matrix_product_matches_recurrence() -> None:
    rng = np.random.default_rng(11)
    blocks = rng.integers(-20000, 20000, size=(3, 5, 102)).astype(np.int16)
    freqs = [697.0, 941.0, 1209.0, 1633.0, 2418.0]
    basis = goertzel_basis(freqs, 102)
    powers = block_powers(blocks, basis)
    assert powers.shape == (3, 5, 5)
    for i in range(3):
        for j in range(5):
            for k, f in enumerate(freqs):
                ref = goertzel_recurrence_power(blocks[i, j].astype(np.float64), f, 8000)
                assert math.isclose(float(powers[i, j, k]), ref, rel_tol=2e-3, abs_tol=1.0)


def test_dft_phase_and_power_of_a_sine() -> None:
    n = np.arange(80)
    f = 1000.0  # exactly on a bin for 80 samples at 8 kHz
    x = (10000 * np.cos(2 * np.pi * f * n / 8000 + 0.3)).astype(np.int16)
    window = hann(80)
    basis = goertzel_basis([f], 80, window=window)
    coef = block_dft(x[None, :], basis)[0, 0]
    assert abs(np.angle(coef) - 0.3) < 1e-3
    level = abs(coef) ** 2 / tone_power_scale(80, window)
    assert abs(math.sqrt(level) - 10000) < 10


def test_frame_blocks_drops_the_partial_tail() -> None:
    x = np.arange(2 * 170, dtype=np.int16).reshape(2, 170)
    b = frame_blocks(x, 40)
    assert b.shape == (2, 4, 40)
    assert b[1, 3, 39] == x[1, 159]
