"""Block Goertzel as one matrix product.

The Goertzel algorithm (Goertzel 1958) computes one DFT coefficient
``X(f) = sum_n x[n] w[n] exp(-j 2 pi f n / fs)`` over a block with a second-order recurrence.
For a fixed block length the coefficient is just a dot product with a precomputed
cosine/sine basis, so the coefficients of *all* frequencies, *all* blocks and *all*
channels come out of one float32 matrix product ``(channels*blocks, L) @ (L, 2F)``.  That is
what makes DTMF detection per tick cheap (TESTING.md: ~14x faster than a per-channel
recurrence); the recurrence itself is kept in the tests as the oracle.

Frequencies need not fall on DFT bins (that is the point of Goertzel for DTMF: 697 Hz etc.
are not multiples of fs/L).  An optional window (Hann) trades resolution for lower leakage
between the DTMF frequencies and tolerance of off-nominal tones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

__all__ = [
    "block_dft",
    "block_powers",
    "frame_blocks",
    "goertzel_basis",
    "hann",
    "tone_power_scale",
]


def hann(block_len: int) -> NDArray[np.float64]:
    """Periodic Hann window (sums to block_len / 2, no zero at the block end)."""
    n = np.arange(block_len)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / block_len)


def goertzel_basis(freqs_hz: Sequence[float], block_len: int, sample_rate: int = 8000,
                   window: NDArray[np.float64] | None = None) -> NDArray[np.float32]:
    """Basis matrix ``(block_len, 2F)``: columns ``w*cos`` for each frequency, then ``w*sin``.

    With ``y = blocks @ basis``, ``X = y[..., :F] - 1j * y[..., F:]`` is the (windowed)
    DFT coefficient at each frequency, phase referenced to the first sample of the block.
    """
    n = np.arange(block_len, dtype=np.float64)[:, None]
    f = np.asarray(freqs_hz, dtype=np.float64)[None, :]
    arg = 2.0 * np.pi * f * n / sample_rate
    w = np.ones((block_len, 1)) if window is None else np.asarray(window)[:, None]
    return np.concatenate([w * np.cos(arg), w * np.sin(arg)], axis=1).astype(np.float32)


def frame_blocks(pcm: NDArray[np.int16], block_len: int) -> NDArray[np.int16]:
    """View ``(..., S)`` as ``(..., S // block_len, block_len)``; a trailing partial block
    is dropped (callers that stream keep it themselves)."""
    x = np.asarray(pcm)
    nblocks = x.shape[-1] // block_len
    return x[..., : nblocks * block_len].reshape(*x.shape[:-1], nblocks, block_len)


def block_dft(blocks: NDArray[np.generic], basis: NDArray[np.float32]) -> NDArray[np.complex64]:
    """Complex coefficients ``(..., F)`` for blocks ``(..., L)`` in one matrix product."""
    x = np.asarray(blocks)
    block_len = x.shape[-1]
    if basis.shape[0] != block_len:
        raise ValueError(f"basis is for blocks of {basis.shape[0]}, got {block_len}")
    flat = x.reshape(-1, block_len).astype(np.float32, copy=False)
    y = flat @ basis
    nfreq = basis.shape[1] // 2
    out = np.empty((flat.shape[0], nfreq), dtype=np.complex64)
    out.real = y[:, :nfreq]
    out.imag = -y[:, nfreq:]
    return out.reshape(*x.shape[:-1], nfreq)


def block_powers(blocks: NDArray[np.generic], basis: NDArray[np.float32]) -> NDArray[np.float32]:
    """``|X|**2`` per frequency, shape ``(..., F)``, for blocks ``(..., L)``."""
    x = np.asarray(blocks)
    block_len = x.shape[-1]
    flat = x.reshape(-1, block_len).astype(np.float32, copy=False)
    y = flat @ basis
    nfreq = basis.shape[1] // 2
    p = y[:, :nfreq] ** 2 + y[:, nfreq:] ** 2
    return p.reshape(*x.shape[:-1], nfreq)


def tone_power_scale(block_len: int, window: NDArray[np.float64] | None = None) -> float:
    """``|X|**2`` produced by a unit-amplitude sine exactly at the analysis frequency:
    ``(sum(w) / 2) ** 2``.  Divide powers by ``scale * peak**2`` to read levels."""
    total = float(block_len if window is None else np.sum(window))
    return (total / 2.0) ** 2
