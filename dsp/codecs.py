"""Audio codec seam: the ``AudioCodec`` Protocol and the G.711 codecs PCMU and PCMA.

The media engine only talks to codecs through :class:`AudioCodec`, so G.722 or Opus can be
added later without touching the tick loop.  Frames are batched: ``encode`` takes int16 PCM
shaped ``(N, samples)`` (one row per engine channel) and returns uint8 payloads shaped
``(N, bytes)``; ``decode`` is the inverse.  1-D input works too (one channel).

Static payload types come from RFC 3551 §6, Table 4 (PT 0 = PCMU, PT 8 = PCMA, both 8000 Hz,
one channel, one byte per sample).  Note that RFC 3551 §4.5.14 fixes the RTP clock rate of
G.722 at 8000 even though it samples at 16000: that is why ``clock_rate`` and
``sample_rate`` are separate attributes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from dsp import g711

logger = logging.getLogger(__name__)

__all__ = [
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "AudioCodec",
    "G711Codec",
    "get_codec",
]


@runtime_checkable
class AudioCodec(Protocol):
    """What the media engine needs from a codec.

    Attributes (read-only):
        name: encoding name as written in SDP ``a=rtpmap`` (RFC 4566 §6), e.g. ``"PCMU"``.
        clock_rate: RTP timestamp rate in Hz (RFC 3551 §4.5).
        sample_rate: PCM sample rate in Hz at the codec's input/output.
        channels: audio channels per stream (1 for telephony).
    """

    @property
    def name(self) -> str: ...

    @property
    def clock_rate(self) -> int: ...

    @property
    def sample_rate(self) -> int: ...

    @property
    def channels(self) -> int: ...

    def encode(self, pcm: NDArray[np.int16]) -> NDArray[np.uint8]:
        """int16 PCM ``(N, samples)`` -> payload bytes ``(N, bytes)``."""
        ...

    def decode(self, payload: NDArray[np.uint8]) -> NDArray[np.int16]:
        """payload bytes ``(N, bytes)`` -> int16 PCM ``(N, samples)``."""
        ...

    def samples_per_frame(self, ptime_ms: float) -> int:
        """PCM samples in one packet of ``ptime_ms`` (RFC 4566 §6 ``a=ptime``)."""
        ...

    def bytes_per_frame(self, ptime_ms: float) -> int:
        """Payload bytes in one packet of ``ptime_ms``."""
        ...


def _frame_samples(sample_rate: int, ptime_ms: float) -> int:
    samples = sample_rate * ptime_ms / 1000.0
    if ptime_ms <= 0 or abs(samples - round(samples)) > 1e-9:
        raise ValueError(f"ptime {ptime_ms} ms is not a whole number of samples at "
                         f"{sample_rate} Hz")
    return round(samples)


@dataclass(frozen=True)
class G711Codec:
    """G.711 (RFC 3551 §4.5.14): one byte per sample at 8000 Hz, stateless."""

    name: str
    payload_type: int
    clock_rate: int = 8000
    sample_rate: int = 8000
    channels: int = 1

    def encode(self, pcm: NDArray[np.int16]) -> NDArray[np.uint8]:
        """Encode by table lookup; output has the shape of ``pcm``."""
        if self.name == "PCMU":
            return g711.ulaw_encode(pcm)
        return g711.alaw_encode(pcm)

    def decode(self, payload: NDArray[np.uint8]) -> NDArray[np.int16]:
        """Decode by table lookup; output has the shape of ``payload``."""
        if self.name == "PCMU":
            return g711.ulaw_decode(payload)
        return g711.alaw_decode(payload)

    def samples_per_frame(self, ptime_ms: float) -> int:
        """160 for 20 ms; raises ValueError if ptime is not a whole number of samples."""
        return _frame_samples(self.sample_rate, ptime_ms)

    def bytes_per_frame(self, ptime_ms: float) -> int:
        """Same as samples_per_frame: G.711 carries 8 bits per sample."""
        return _frame_samples(self.sample_rate, ptime_ms) * self.channels

    @property
    def silence_byte(self) -> int:
        """Code of a zero sample: 0xFF (mu-law) or 0xD5 (A-law)."""
        return g711.ULAW_SILENCE if self.name == "PCMU" else g711.ALAW_SILENCE


PCMU = G711Codec(name="PCMU", payload_type=0)
PCMA = G711Codec(name="PCMA", payload_type=8)

#: RFC 3551 §6 Table 4 static audio payload types we implement.
STATIC_PAYLOAD_TYPES: dict[int, str] = {0: "PCMU", 8: "PCMA"}

_CODECS: dict[str, AudioCodec] = {"PCMU": PCMU, "PCMA": PCMA}


def get_codec(name: str) -> AudioCodec:
    """Return the codec registered under ``name`` (case-insensitive, e.g. "pcmu").

    Raises:
        KeyError: the name is not a supported codec; the message lists the supported ones.
    """
    codec = _CODECS.get(name.upper())
    if codec is None:
        supported = ", ".join(sorted(_CODECS))
        raise KeyError(f"unsupported audio codec {name!r}; supported: {supported}")
    return codec
