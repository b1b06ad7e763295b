"""G.711 mu-law and A-law by table lookup (ITU-T G.711, bit-exact with ITU-T G.191 STL).

Why tables: per-sample work decides media capacity (DESIGN.md "Why the media engine is
fast").  Every int16 value maps to one code, so encoding is one ``np.take`` on a 65,536-entry
uint8 table indexed by the int16 samples reinterpreted as uint16 (64 KiB, stays in L2), and
decoding is ``np.take`` on a 256-entry int16 table.  The tables are built once at import with
vectorized numpy from the G.711 rules:

* mu-law (G.711 §3, Table 2a): the 16-bit sample is taken as 14-bit (left justified), the
  magnitude is biased by 33 (the difference between the A-law and mu-law thresholds), the
  segment is the position of the leading one above bit 5, the 4-bit step follows it, and the
  code is transmitted inverted with the sign bit set for positive values.
* A-law (G.711 §2, Table 1a): 13-bit magnitude, segment from the leading one above bit 4, and
  the even bits inverted (XOR 0x55) for transmission.
* Negative samples use the ones' complement magnitude ``~x``, exactly as the ITU-T G.191
  Software Tools Library (``g711.c``) does.  This is the ITU reference implementation, and the
  tests compare all 65,536 inputs against an independent segment-search implementation of it.
  Python's ``audioop`` (Sun's ``g711.c``) agrees for A-law everywhere and for mu-law everywhere
  except 508 negative inputs lying within 1/4 of a 14-bit unit of a decision value: there
  audioop rounds the magnitude up (two's complement shift) and lands one step higher; the
  tests pin that set exactly.
* Decoding returns the middle of each quantization interval (G.711 Tables 1a/2a, "decoder
  output value"), scaled to 16 bits: mu-law peaks at +/-32124, A-law at +/-32256.  This is
  identical to G.191 and audioop for all 256 codes.

Transcoding between the laws (``ulaw_to_alaw``, ``alaw_to_ulaw``) uses 256-entry tables built
as decode-then-encode, which is what a gateway that passes through linear PCM would produce.
This is not the mapping of G.711 Tables 3/4 (direct law conversion), which for some codes
picks the neighbouring step (one quantization step apart, never more); both kinds of table
survive a double conversion A -> mu -> A for 240 of the 256 codes.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

__all__ = [
    "ALAW_SILENCE",
    "ULAW_SILENCE",
    "alaw_decode",
    "alaw_encode",
    "alaw_to_ulaw",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_to_alaw",
]

#: mu-law code of a zero sample (positive zero, G.711 Table 2a).
ULAW_SILENCE = 0xFF
#: A-law code of a zero sample (positive zero with even bits inverted, G.711 Table 1a).
ALAW_SILENCE = 0xD5

_ULAW_BIAS = 33  # G.711 Table 2a: mu-law thresholds are offset by 33 from a pure 2**n grid
_ULAW_CLIP = 0x1FFF  # largest biased 14-bit magnitude


def _all_int16_in_table_order() -> NDArray[np.int64]:
    """int16 values in the order of their uint16 bit pattern (index = x & 0xFFFF)."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int64)


def _build_ulaw_encode() -> NDArray[np.uint8]:
    x = _all_int16_in_table_order()
    magnitude = np.where(x < 0, (~x) >> 2, x >> 2) + _ULAW_BIAS
    magnitude = np.minimum(magnitude, _ULAW_CLIP)
    # segment number 1..8 = 1 + bit length of (magnitude >> 6)
    segno = 1 + np.searchsorted(
        np.array([64, 128, 256, 512, 1024, 2048, 4096]), magnitude, side="right"
    )
    high = 8 - segno
    low = 15 - ((magnitude >> segno) & 0x0F)
    code = (high << 4) | low
    code = np.where(x >= 0, code | 0x80, code)
    result: NDArray[np.uint8] = code.astype(np.uint8)
    return result


def _build_alaw_encode() -> NDArray[np.uint8]:
    x = _all_int16_in_table_order()
    ix = np.where(x < 0, (~x) >> 4, x >> 4)  # 0..2047, 12-bit magnitude (13-bit with sign)
    bitlen = np.searchsorted(np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]), ix,
                             side="right")
    shift = np.maximum(bitlen - 5, 0)
    code = np.where(ix > 15, (ix >> shift) + (shift << 4), ix)
    code = np.where(x >= 0, code | 0x80, code) ^ 0x55
    result: NDArray[np.uint8] = code.astype(np.uint8)
    return result


def _build_ulaw_decode() -> NDArray[np.int16]:
    code = np.arange(256, dtype=np.int64)
    inverted = (~code) & 0xFF
    sign = np.where(code & 0x80, 1, -1)
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    step = 4 << (exponent + 1)
    value = (0x80 << exponent) + step * mantissa + step // 2 - 4 * _ULAW_BIAS
    result: NDArray[np.int16] = (sign * value).astype(np.int16)
    return result


def _build_alaw_decode() -> NDArray[np.int16]:
    code = np.arange(256, dtype=np.int64)
    ix = (code ^ 0x55) & 0x7F
    exponent = ix >> 4
    mantissa = ix & 0x0F
    mantissa = np.where(exponent > 0, mantissa + 16, mantissa)
    value = (mantissa << 4) + 8
    value = np.where(exponent > 1, value << np.maximum(exponent - 1, 0), value)
    sign = np.where(code & 0x80, 1, -1)
    result: NDArray[np.int16] = (sign * value).astype(np.int16)
    return result


_ULAW_ENCODE = _build_ulaw_encode()
_ALAW_ENCODE = _build_alaw_encode()
_ULAW_DECODE = _build_ulaw_decode()
_ALAW_DECODE = _build_alaw_decode()
_ULAW_TO_ALAW = _ALAW_ENCODE[_ULAW_DECODE.view(np.uint16)]
_ALAW_TO_ULAW = _ULAW_ENCODE[_ALAW_DECODE.view(np.uint16)]
for _table in (_ULAW_ENCODE, _ALAW_ENCODE, _ULAW_DECODE, _ALAW_DECODE, _ULAW_TO_ALAW,
               _ALAW_TO_ULAW):
    _table.flags.writeable = False


def _as_int16(pcm: NDArray[np.int16]) -> NDArray[np.uint16]:
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        raise TypeError(f"G.711 encode expects int16 PCM, got {arr.dtype}")
    return arr.view(np.uint16)


def _as_uint8(payload: NDArray[np.uint8]) -> NDArray[np.uint8]:
    arr = np.asarray(payload)
    if arr.dtype != np.uint8:
        raise TypeError(f"G.711 decode expects uint8 payload, got {arr.dtype}")
    return arr


def ulaw_encode(pcm: NDArray[np.int16]) -> NDArray[np.uint8]:
    """Encode int16 linear PCM (any shape) to mu-law codes of the same shape."""
    return np.take(_ULAW_ENCODE, _as_int16(pcm))


def alaw_encode(pcm: NDArray[np.int16]) -> NDArray[np.uint8]:
    """Encode int16 linear PCM (any shape) to A-law codes of the same shape."""
    return np.take(_ALAW_ENCODE, _as_int16(pcm))


def ulaw_decode(payload: NDArray[np.uint8]) -> NDArray[np.int16]:
    """Decode mu-law codes (uint8, any shape) to int16 linear PCM."""
    return np.take(_ULAW_DECODE, _as_uint8(payload))


def alaw_decode(payload: NDArray[np.uint8]) -> NDArray[np.int16]:
    """Decode A-law codes (uint8, any shape) to int16 linear PCM."""
    return np.take(_ALAW_DECODE, _as_uint8(payload))


def ulaw_to_alaw(payload: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Transcode mu-law codes to A-law codes with one 256-entry lookup."""
    return np.take(_ULAW_TO_ALAW, _as_uint8(payload))


def alaw_to_ulaw(payload: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Transcode A-law codes to mu-law codes with one 256-entry lookup."""
    return np.take(_ALAW_TO_ULAW, _as_uint8(payload))
