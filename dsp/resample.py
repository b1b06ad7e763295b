"""Sample-rate conversion (8 kHz telephony <-> 16 kHz wideband, TTS output at 22.05 kHz...).

Polyphase FIR resampling with ``scipy.signal.resample_poly``: the ratio is reduced to
``up/down`` by their gcd (22050 -> 8000 is 160/441), and the default Kaiser-windowed
low-pass removes everything above the new Nyquist frequency before decimation, so no
aliasing folds into the telephone band.  Works on 1-D or ``(N, S)`` arrays along the last
axis, int16 in and out, rounded and saturated.
"""

from __future__ import annotations

import logging
from math import gcd

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

__all__ = ["rate_ratio", "to_rate"]


def rate_ratio(from_rate: int, to_rate: int) -> tuple[int, int]:
    """``(up, down)`` in lowest terms for converting from_rate -> to_rate."""
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    g = gcd(from_rate, to_rate)
    return to_rate // g, from_rate // g


def to_rate(pcm: NDArray[np.int16], from_rate: int, to_rate: int = 8000) -> NDArray[np.int16]:
    """Resample int16 PCM along the last axis.

    Args:
        pcm: int16, 1-D ``(S,)`` or ``(N, S)``.
        from_rate: input rate in Hz.
        to_rate: output rate in Hz (default 8000).
    Returns:
        int16 array with ``ceil(S * up / down)`` samples per row.
    """
    x = np.asarray(pcm)
    up, down = rate_ratio(from_rate, to_rate)
    if up == down:
        return x.astype(np.int16, copy=True)
    if x.shape[-1] == 0:
        return np.zeros((*x.shape[:-1], 0), dtype=np.int16)
    # imported here so that "import dsp" stays light (scipy.signal takes ~0.3 s to load)
    from scipy.signal import resample_poly  # type: ignore[import-untyped]

    y = resample_poly(x.astype(np.float32), up, down, axis=-1)
    result: NDArray[np.int16] = np.clip(np.rint(y), -32768, 32767).astype(np.int16)
    return result
