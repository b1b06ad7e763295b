"""The AudioCodec seam and the G.711 codecs (RFC 3551 static payload types)."""

from __future__ import annotations

import numpy as np
import pytest

from dsp import g711
from dsp.codecs import PCMA, PCMU, STATIC_PAYLOAD_TYPES, AudioCodec, get_codec


def test_registry_is_case_insensitive_and_explains_unknown_names() -> None:
    assert get_codec("pcmu") is PCMU
    assert get_codec("PCMA") is PCMA
    assert get_codec("PcMa") is PCMA
    with pytest.raises(KeyError, match=r"unsupported audio codec 'opus'.*PCMA, PCMU"):
        get_codec("opus")


def test_static_payload_types() -> None:
    assert STATIC_PAYLOAD_TYPES == {0: "PCMU", 8: "PCMA"}
    for pt, name in STATIC_PAYLOAD_TYPES.items():
        codec = get_codec(name)
        assert codec.clock_rate == 8000 and codec.sample_rate == 8000 and codec.channels == 1
        assert {PCMU.name: PCMU.payload_type, PCMA.name: PCMA.payload_type}[codec.name] == pt


def test_codecs_satisfy_the_protocol() -> None:
    assert isinstance(PCMU, AudioCodec)
    assert isinstance(PCMA, AudioCodec)


def test_frame_sizes() -> None:
    assert PCMU.samples_per_frame(20) == 160
    assert PCMU.bytes_per_frame(20) == 160
    assert PCMA.samples_per_frame(30) == 240
    assert PCMA.bytes_per_frame(10) == 80
    with pytest.raises(ValueError):
        PCMU.samples_per_frame(0.1)
    with pytest.raises(ValueError):
        PCMU.samples_per_frame(0)


def test_batch_encode_decode_shapes_and_values() -> None:
    rng = np.random.default_rng(3)
    pcm = rng.integers(-20000, 20000, size=(4, 160)).astype(np.int16)
    for codec, enc in ((PCMU, g711.ulaw_encode), (PCMA, g711.alaw_encode)):
        payload = codec.encode(pcm)
        assert payload.shape == (4, 160) and payload.dtype == np.uint8
        assert np.array_equal(payload, enc(pcm))
        back = codec.decode(payload)
        assert back.shape == (4, 160) and back.dtype == np.int16
        assert np.max(np.abs(back.astype(np.int32) - pcm)) <= 512


def test_silence_bytes() -> None:
    assert PCMU.silence_byte == 0xFF
    assert PCMA.silence_byte == 0xD5
    zero = np.zeros((2, 160), dtype=np.int16)
    assert np.all(PCMU.encode(zero) == PCMU.silence_byte)
    assert np.all(PCMA.encode(zero) == PCMA.silence_byte)
