"""DSP kernels: numpy functions over int16 arrays shaped ``(channels, samples)``.

Rules (DESIGN.md, "three rings"): no asyncio, no sockets, no files, no clock; one call per
tick processes every channel; no per-sample Python loops (state machines run on block
results only).
"""

from __future__ import annotations

from dsp.codecs import PCMA, PCMU, STATIC_PAYLOAD_TYPES, AudioCodec, G711Codec, get_codec
from dsp.dtmf import BatchDtmfDetector, DtmfConfig, DtmfDetector, DtmfEvent
from dsp.g711 import (
    ALAW_SILENCE,
    ULAW_SILENCE,
    alaw_decode,
    alaw_encode,
    alaw_to_ulaw,
    ulaw_decode,
    ulaw_encode,
    ulaw_to_alaw,
)
from dsp.level import dbm0_to_amplitude, rms_dbm0, rms_dbov, row_energy
from dsp.mixer import (
    barge_matrix,
    conference_matrix,
    listen_matrix,
    mix,
    mix_groups,
    whisper_matrix,
)
from dsp.resample import to_rate
from dsp.tones import (
    PROFILES,
    TonePattern,
    ToneProfile,
    beep,
    comfort_noise,
    dtmf_tone,
    render_tone,
    silence,
)

__all__ = [
    "ALAW_SILENCE",
    "PCMA",
    "PCMU",
    "PROFILES",
    "STATIC_PAYLOAD_TYPES",
    "ULAW_SILENCE",
    "AudioCodec",
    "BatchDtmfDetector",
    "DtmfConfig",
    "DtmfDetector",
    "DtmfEvent",
    "G711Codec",
    "TonePattern",
    "ToneProfile",
    "alaw_decode",
    "alaw_encode",
    "alaw_to_ulaw",
    "barge_matrix",
    "beep",
    "comfort_noise",
    "conference_matrix",
    "dbm0_to_amplitude",
    "dtmf_tone",
    "get_codec",
    "listen_matrix",
    "mix",
    "mix_groups",
    "render_tone",
    "rms_dbm0",
    "rms_dbov",
    "row_energy",
    "silence",
    "to_rate",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_to_alaw",
    "whisper_matrix",
]
