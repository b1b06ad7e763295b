"""G.711 against an independent reference (G.711 Tables 1a/2a by segment search, with the
G.191 STL ones' complement rule for negative samples), against audioop, and known points."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dsp import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL_PCM = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)


def ref_ulaw_encode(x: int) -> int:
    """mu-law, G.711 Table 2a: biased 14-bit magnitude, find the segment, take 4 bits."""
    magnitude = (x >> 2) if x >= 0 else ((-x - 1) >> 2)  # G.191: ones' complement
    biased = min(magnitude + 33, 0x1FFF)
    segment = 0
    while segment < 7 and biased >= (64 << segment):  # segment s ends below 2**(s+6)
        segment += 1
    step = (biased >> (segment + 1)) & 0x0F
    code = 0x7F ^ ((segment << 4) | step)
    return code | 0x80 if x >= 0 else code


def ref_alaw_encode(x: int) -> int:
    """A-law, G.711 Table 1a: 12-bit magnitude, segment search, even bits inverted."""
    magnitude = (x >> 4) if x >= 0 else ((-x - 1) >> 4)  # 0..2047
    if magnitude < 16:
        code = magnitude
    else:
        segment = 1
        while magnitude >= (32 << (segment - 1)):
            segment += 1
        code = (segment << 4) | ((magnitude >> (segment - 1)) & 0x0F)
    if x >= 0:
        code |= 0x80
    return code ^ 0x55


def ref_ulaw_decode(code: int) -> int:
    inverted = ~code & 0x7F
    segment, step = inverted >> 4, inverted & 0x0F
    magnitude = (((2 * step + 33) << segment) - 33) * 4  # interval middle, 16-bit scale
    return magnitude if code & 0x80 else -magnitude


def ref_alaw_decode(code: int) -> int:
    ix = (code ^ 0x55) & 0x7F
    segment, step = ix >> 4, ix & 0x0F
    magnitude = (2 * step + 1) << 3 if segment == 0 else (2 * step + 33) << (segment + 2)
    return magnitude if code & 0x80 else -magnitude


def _audioop(fn_name: str, data: bytes) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result: bytes = getattr(audioop, fn_name)(data, 2)
        return result


def test_ulaw_encode_matches_reference_for_all_inputs() -> None:
    expected = np.array([ref_ulaw_encode(int(x)) for x in ALL_PCM], dtype=np.uint8)
    assert np.array_equal(g711.ulaw_encode(ALL_PCM), expected)


def test_alaw_encode_matches_reference_for_all_inputs() -> None:
    expected = np.array([ref_alaw_encode(int(x)) for x in ALL_PCM], dtype=np.uint8)
    assert np.array_equal(g711.alaw_encode(ALL_PCM), expected)


def test_decode_matches_reference_for_all_codes() -> None:
    assert g711.ulaw_decode(ALL_CODES).tolist() == [ref_ulaw_decode(c) for c in range(256)]
    assert g711.alaw_decode(ALL_CODES).tolist() == [ref_alaw_decode(c) for c in range(256)]


def test_decode_matches_audioop_for_all_codes() -> None:
    raw = ALL_CODES.tobytes()
    assert np.array_equal(g711.ulaw_decode(ALL_CODES),
                          np.frombuffer(_audioop("ulaw2lin", raw), dtype=np.int16))
    assert np.array_equal(g711.alaw_decode(ALL_CODES),
                          np.frombuffer(_audioop("alaw2lin", raw), dtype=np.int16))


def test_alaw_encode_matches_audioop_for_all_inputs() -> None:
    ref = np.frombuffer(_audioop("lin2alaw", ALL_PCM.tobytes()), dtype=np.uint8)
    assert np.array_equal(g711.alaw_encode(ALL_PCM), ref)


def test_ulaw_encode_vs_audioop_differs_only_by_its_negative_rounding() -> None:
    """audioop takes the magnitude of a negative sample as -(x >> 2), one 14-bit unit more
    than G.191's (~x) >> 2.  So audioop(x) must equal ours(x - 4) for every negative x (and
    ours(x) for x >= 0); the two agree on all but 508 inputs."""
    ours = g711.ulaw_encode(ALL_PCM)
    ref = np.frombuffer(_audioop("lin2ulaw", ALL_PCM.tobytes()), dtype=np.uint8)
    x = ALL_PCM.astype(np.int64)
    pos = x >= 0
    assert np.array_equal(ref[pos], ours[pos])
    shifted = np.clip(x - 4, -32768, 32767).astype(np.int16)
    neg = x < 0
    assert np.array_equal(ref[neg], g711.ulaw_encode(shifted)[neg])
    assert int(np.count_nonzero(ref != ours)) == 508


def test_known_points() -> None:
    zero = np.zeros(3, dtype=np.int16)
    assert g711.ulaw_encode(zero).tolist() == [0xFF] * 3
    assert g711.alaw_encode(zero).tolist() == [0xD5] * 3
    assert g711.ULAW_SILENCE == 0xFF and g711.ALAW_SILENCE == 0xD5
    assert g711.ulaw_decode(np.array([0xFF, 0x7F, 0x00, 0x80], np.uint8)).tolist() == \
        [0, 0, -32124, 32124]
    assert g711.alaw_decode(np.array([0xD5, 0x55, 0x2A, 0xAA], np.uint8)).tolist() == \
        [8, -8, -32256, 32256]
    extremes = np.array([32767, -32768], dtype=np.int16)
    assert g711.ulaw_encode(extremes).tolist() == [0x80, 0x00]
    assert g711.alaw_encode(extremes).tolist() == [0xAA, 0x2A]


def test_shape_is_preserved_and_works_on_views() -> None:
    rng = np.random.default_rng(7)
    pcm = rng.integers(-32768, 32768, size=(5, 160)).astype(np.int16)
    enc = g711.ulaw_encode(pcm[:, ::2])  # non-contiguous view
    assert enc.shape == (5, 80) and enc.dtype == np.uint8
    assert np.array_equal(enc, g711.ulaw_encode(np.ascontiguousarray(pcm[:, ::2])))
    dec = g711.alaw_decode(g711.alaw_encode(pcm))
    assert dec.shape == (5, 160) and dec.dtype == np.int16


def test_decode_encode_is_identity_on_codes() -> None:
    """Each decoder output lies inside its own interval, so re-encoding is lossless
    (except -0, which decodes to 0 and comes back as +0)."""
    u = g711.ulaw_encode(g711.ulaw_decode(ALL_CODES))
    a = g711.alaw_encode(g711.alaw_decode(ALL_CODES))
    assert np.array_equal(u[ALL_CODES != 0x7F], ALL_CODES[ALL_CODES != 0x7F])
    assert u[0x7F] == 0xFF
    assert np.array_equal(a, ALL_CODES)


def test_quantization_error_is_bounded_by_half_a_step() -> None:
    """G.711 is a 13/14-bit quantizer: error <= half the largest step (1024 / 2 at the top,
    in 16-bit units) and relative error small away from zero."""
    for enc, dec in ((g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)):
        x = ALL_PCM.astype(np.int64)
        err = np.abs(dec(enc(ALL_PCM)).astype(np.int64) - x)
        inside = np.abs(x) < 32000
        assert err[inside].max() <= 512
        big = np.abs(x) > 1000
        assert (err[big] / np.abs(x[big])).max() < 0.035


def test_transcoding_tables() -> None:
    assert np.array_equal(g711.ulaw_to_alaw(ALL_CODES),
                          g711.alaw_encode(g711.ulaw_decode(ALL_CODES)))
    assert np.array_equal(g711.alaw_to_ulaw(ALL_CODES),
                          g711.ulaw_encode(g711.alaw_decode(ALL_CODES)))
    assert g711.ulaw_to_alaw(np.array([0xFF], np.uint8))[0] == 0xD5
    # A-law +0 decodes to +8, which mu-law represents exactly (code 0xFE decodes to 8)
    assert g711.alaw_to_ulaw(np.array([0xD5], np.uint8))[0] == 0xFE
    for there, dec_from, dec_to in (
        (g711.ulaw_to_alaw, g711.ulaw_decode, g711.alaw_decode),
        (g711.alaw_to_ulaw, g711.alaw_decode, g711.ulaw_decode),
    ):
        before = dec_from(ALL_CODES).astype(np.int64)
        after = dec_to(there(ALL_CODES)).astype(np.int64)
        assert np.all(np.abs(after - before) <= np.maximum(16, np.abs(before) * 0.035))
        assert np.all(np.sign(after) * np.sign(before) >= 0)
    a_back = g711.ulaw_to_alaw(g711.alaw_to_ulaw(ALL_CODES))
    u_back = g711.alaw_to_ulaw(g711.ulaw_to_alaw(ALL_CODES))
    assert int(np.count_nonzero(a_back == ALL_CODES)) == 240
    assert int(np.count_nonzero(u_back == ALL_CODES)) == 240


def test_wrong_dtype_is_rejected() -> None:
    with pytest.raises(TypeError):
        g711.ulaw_encode(np.zeros(4, dtype=np.int32))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        g711.alaw_decode(np.zeros(4, dtype=np.int16))  # type: ignore[arg-type]
