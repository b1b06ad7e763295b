"""DTMF receiver against the ITU-T Q.24 (AT&T column) operating limits, plus the streaming
contract (chunking independence, batch == single channel, reset/flush).

Twist convention used here (dsp.tones.dtmf_tone): twist_db = level(high group) -
level(low group).  Q.24 requires operation from +4 dB (high group stronger, "reverse
twist") to -8 dB (high group weaker, "normal twist").
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dsp.codecs import PCMA, PCMU
from dsp.dtmf import BatchDtmfDetector, DtmfConfig, DtmfDetector, DtmfEvent
from dsp.level import rms
from dsp.tones import DTMF_KEYPAD, dtmf_frequencies, dtmf_tone, dual_tone

DIGITS = "".join(DTMF_KEYPAD)


def zeros(ms: float, fs: int = 8000) -> np.ndarray:
    return np.zeros(round(ms * fs / 1000), dtype=np.int16)


def detect(signal: np.ndarray, config: DtmfConfig | None = None,
           fs: int = 8000) -> list[DtmfEvent]:
    det = DtmfDetector(sample_rate=fs, config=config)
    return det.feed(signal) + det.flush()


def digits(signal: np.ndarray, **kw: object) -> str:
    return "".join(ev.digit for ev in detect(signal, **kw))  # type: ignore[arg-type]


def padded(tone: np.ndarray, lead: int = 403) -> np.ndarray:
    return np.concatenate([np.zeros(lead, np.int16), tone, zeros(100)])


def sequence(keys: str, on_ms: float = 50, off_ms: float = 50, level: float = -10.0
             ) -> np.ndarray:
    parts = [zeros(off_ms)]
    for key in keys:
        parts += [dtmf_tone(key, on_ms, level), zeros(off_ms)]
    return np.concatenate(parts)


# --------------------------------------------------------------------- basics
def test_all_sixteen_digits_at_40ms_on_40ms_off() -> None:
    assert digits(sequence(DIGITS * 2, on_ms=40, off_ms=40)) == DIGITS * 2


def test_silence_and_noise_give_nothing() -> None:
    rng = np.random.default_rng(5)
    assert detect(zeros(2000)) == []
    noise = np.clip(rng.standard_normal(16000) * 3000, -32768, 32767).astype(np.int16)
    assert detect(noise) == []


def test_event_start_and_duration() -> None:
    lead, on = 1237, 720  # 90 ms
    events = detect(padded(dtmf_tone("8", 90), lead))
    assert len(events) == 1
    ev = events[0]
    assert ev.digit == "8"
    assert abs(ev.start - lead) < 40
    assert ev.duration is not None and abs(ev.duration - on) <= 80


def test_emit_at_onset_reports_before_the_end_without_duration() -> None:
    det = DtmfDetector(config=DtmfConfig(emit_at_onset=True))
    events = det.feed(np.concatenate([zeros(50), dtmf_tone("3", 60)]))  # tone not ended
    assert [(e.digit, e.duration) for e in events] == [("3", None)]
    assert abs(events[0].start - 400) < 40
    assert det.feed(zeros(200)) + det.flush() == []


def test_flush_reports_a_digit_in_progress() -> None:
    det = DtmfDetector()
    assert det.feed(np.concatenate([zeros(30), dtmf_tone("#", 200)])) == []
    events = det.flush()
    assert [e.digit for e in events] == ["#"]
    assert events[0].duration is not None and events[0].duration >= 1500


# ------------------------------------------------------------ Q.24 frequency
def _shifted(digit: str, which: int, offset: float) -> np.ndarray:
    low, high = dtmf_frequencies(digit)
    if which == 0:
        low *= 1.0 + offset
    else:
        high *= 1.0 + offset
    return padded(dual_tone(low, high, 640, -10.0, -10.0))


@pytest.mark.parametrize("offset", [-0.015, 0.015])
@pytest.mark.parametrize("which", [0, 1], ids=["low", "high"])
def test_frequency_within_1_5_percent_is_detected(which: int, offset: float) -> None:
    for digit in DIGITS:  # covers each of the 8 frequencies 4 times
        assert digits(_shifted(digit, which, offset)) == digit, digit


@pytest.mark.parametrize("offset", [-0.06, -0.045, -0.035, 0.035, 0.045, 0.06])
@pytest.mark.parametrize("which", [0, 1], ids=["low", "high"])
def test_frequency_beyond_3_5_percent_is_rejected(which: int, offset: float) -> None:
    for digit in DIGITS:
        assert detect(_shifted(digit, which, offset)) == [], digit


def test_both_frequencies_off_together() -> None:
    for digit in DIGITS:
        assert digits(padded(dtmf_tone(digit, 80, freq_offset=0.015))) == digit
        assert digits(padded(dtmf_tone(digit, 80, freq_offset=-0.015))) == digit
        assert digits(padded(dtmf_tone(digit, 80, freq_offset=0.035))) == ""


# ---------------------------------------------------------------- Q.24 twist
@pytest.mark.parametrize("twist_db", [4.0, 2.0, 0.0, -4.0, -8.0])
def test_twist_within_q24_is_detected(twist_db: float) -> None:
    for digit in DIGITS:
        assert digits(padded(dtmf_tone(digit, 60, -10.0, twist_db))) == digit


@pytest.mark.parametrize("twist_db", [8.0, -12.0])
def test_twist_far_outside_is_rejected(twist_db: float) -> None:
    for digit in DIGITS:
        assert digits(padded(dtmf_tone(digit, 60, -10.0, twist_db))) == ""


# ------------------------------------------------------------- Q.24 timing
def test_40ms_tones_are_detected_at_every_alignment() -> None:
    for lead in range(0, 40, 3):  # the 5 ms half-block grid sees every phase
        for digit in "1590#D":
            assert digits(padded(dtmf_tone(digit, 40), lead)) == digit, (lead, digit)


@pytest.mark.parametrize("duration_ms", [10, 20, 23])
def test_short_tones_are_rejected_at_every_alignment(duration_ms: float) -> None:
    for lead in range(0, 40, 3):
        for digit in "1590#D":
            assert detect(padded(dtmf_tone(digit, duration_ms), lead)) == [], (lead, digit)


@pytest.mark.parametrize("break_ms", [5, 10])
def test_short_break_does_not_split_a_digit(break_ms: float) -> None:
    for lead in range(0, 40, 7):
        tone = np.concatenate([dtmf_tone("5", 60), zeros(break_ms), dtmf_tone("5", 60)])
        events = detect(padded(tone, lead))
        assert [e.digit for e in events] == ["5"], lead


@pytest.mark.parametrize("pause_ms", [40, 60])
def test_pause_of_40ms_separates_repeated_digits(pause_ms: float) -> None:
    for lead in range(0, 40, 7):
        tone = np.concatenate([dtmf_tone("5", 50), zeros(pause_ms), dtmf_tone("5", 50)])
        assert digits(padded(tone, lead)) == "55", lead


def test_digit_change_without_pause_gives_both_digits() -> None:
    tone = np.concatenate([dtmf_tone("1", 80), dtmf_tone("9", 80)])
    assert digits(padded(tone)) == "19"


# ----------------------------------------------------------------- Q.24 level
@pytest.mark.parametrize("level", [0.0, -10.0, -20.0, -25.0])
def test_levels_0_to_minus_25_dbm0_are_detected(level: float) -> None:
    for digit in DIGITS:
        assert digits(padded(dtmf_tone(digit, 50, level))) == digit


@pytest.mark.parametrize("level", [-55.0, -60.0])
def test_levels_at_or_below_minus_55_dbm0_are_rejected(level: float) -> None:
    for digit in DIGITS:
        assert detect(padded(dtmf_tone(digit, 100, level))) == []


@pytest.mark.parametrize("codec", [PCMU, PCMA], ids=["pcmu", "pcma"])
def test_detection_through_g711_at_the_level_extremes(codec: object) -> None:
    for level in (0.0, -25.0):
        sig = sequence(DIGITS, on_ms=50, off_ms=50, level=level)
        coded = codec.decode(codec.encode(sig))  # type: ignore[attr-defined]
        assert digits(coded) == DIGITS


# ----------------------------------------------------------------- noise
def test_detection_in_white_noise_at_12_db_snr() -> None:
    """SNR = total DTMF power / white noise power over the whole 0-4 kHz band."""
    rng = np.random.default_rng(1234)
    for digit in DIGITS:
        tone = padded(dtmf_tone(digit, 60, -10.0)).astype(np.float64)
        noise_rms = float(rms(dtmf_tone(digit, 60, -10.0))) / 10 ** (12 / 20)
        noisy = tone + rng.standard_normal(tone.size) * noise_rms
        sig = np.clip(np.rint(noisy), -32768, 32767).astype(np.int16)
        assert digits(sig) == digit


# ----------------------------------------------------- streaming contract
def _long_signal() -> np.ndarray:
    rng = np.random.default_rng(9)
    sig = sequence("147*2580369#ABCD", on_ms=45, off_ms=43).astype(np.float64)
    sig += rng.standard_normal(sig.size) * 300
    return np.clip(np.rint(sig), -32768, 32767).astype(np.int16)


def _feed_in_chunks(sig: np.ndarray, sizes: list[int]) -> list[DtmfEvent]:
    det = DtmfDetector()
    events: list[DtmfEvent] = []
    pos = k = 0
    while pos < sig.size:
        size = sizes[k % len(sizes)]
        events += det.feed(sig[pos:pos + size])
        pos += size
        k += 1
    return events + det.flush()


def test_events_do_not_depend_on_chunk_sizes() -> None:
    sig = _long_signal()
    whole = _feed_in_chunks(sig, [sig.size])
    assert "".join(e.digit for e in whole) == "147*2580369#ABCD"
    rng = np.random.default_rng(2)
    for sizes in ([7], [160], [4000], [1, 39, 41, 80, 3], rng.integers(0, 300, 50).tolist()):
        assert _feed_in_chunks(sig, sizes) == whole, sizes


def test_one_sample_at_a_time() -> None:
    sig = np.concatenate([zeros(20), dtmf_tone("7", 45), zeros(45), dtmf_tone("#", 45),
                          zeros(60)])
    whole = detect(sig)
    assert [e.digit for e in whole] == ["7", "#"]
    assert _feed_in_chunks(sig, [1]) == whole


def test_batch_detector_matches_single_channel_detectors() -> None:
    """Five slots, assigned at different times with 100-sample ticks (so their half-block
    phases differ), each must report exactly what a lone DtmfDetector reports."""
    rng = np.random.default_rng(4)
    keys = ["123", "A#0", "9*D", "5", "7788"]
    signals = []
    for k in keys:
        s = sequence(k, on_ms=int(rng.integers(40, 90)), off_ms=int(rng.integers(40, 70)))
        signals.append(s)
    tick = 100
    starts = [0, 3, 7, 8, 21]  # tick at which each slot is (re)assigned
    total_ticks = max(first + -(-s.size // tick)
                      for first, s in zip(starts, signals, strict=True))
    batch = BatchDtmfDetector(5)
    got: list[list[DtmfEvent]] = [[] for _ in keys]
    for t in range(total_ticks + 2):
        frames = rng.integers(-100, 100, size=(5, tick)).astype(np.int16)  # idle slots: hiss
        for slot, (first, s) in enumerate(zip(starts, signals, strict=True)):
            if t == first:
                batch.reset(slot)
            if t >= first:
                chunk = s[(t - first) * tick:(t - first + 1) * tick]
                frames[slot] = 0
                frames[slot, :chunk.size] = chunk
        for slot, ev in batch.process(frames):
            if t >= starts[slot]:
                got[slot].append(ev)
    for slot, s in enumerate(signals):
        padded_s = np.concatenate([s, np.zeros((total_ticks + 2 - starts[slot]) * tick - s.size,
                                               np.int16)])
        assert got[slot] + batch.flush(slot) == detect(padded_s), slot
        assert "".join(e.digit for e in got[slot]) == keys[slot]


def test_batch_rejects_wrong_shape() -> None:
    batch = BatchDtmfDetector(3)
    with pytest.raises(ValueError):
        batch.process(np.zeros((2, 160), np.int16))
    assert batch.process(np.zeros((3, 0), np.int16)) == []


def test_reset_restarts_sample_index() -> None:
    det = DtmfDetector()
    det.feed(zeros(500))
    det.reset()
    events = det.feed(np.concatenate([zeros(50), dtmf_tone("2", 60), zeros(60)]))
    assert [e.digit for e in events] == ["2"]
    assert abs(events[0].start - 400) < 40


def test_wideband_sample_rate() -> None:
    sig = np.concatenate([zeros(30, 16000), dtmf_tone("6", 60, sample_rate=16000),
                          zeros(60, 16000), dtmf_tone("C", 60, sample_rate=16000),
                          zeros(60, 16000)])
    assert digits(sig, fs=16000) == "6C"


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        DtmfConfig(hits_to_begin=0)
    with pytest.raises(ValueError):
        DtmfConfig(min_purity=1.5)


def test_dc_offset_does_not_mask_weak_digits() -> None:
    """A DC offset (cheap ATAs, bad line cards) is removed from the purity test."""
    for offset in (2000, 8000):
        for digit in DIGITS:
            sig = padded(dtmf_tone(digit, 60, -25.0)).astype(np.int32) + offset
            assert digits(np.clip(sig, -32768, 32767).astype(np.int16)) == digit
    assert detect(np.full(8000, 5000, dtype=np.int16)) == []


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(np.int16, st.integers(0, 1200), elements=st.integers(-32768, 32767)),
    st.lists(st.integers(1, 400), min_size=1, max_size=8),
    st.sampled_from(DIGITS),
)
def test_any_audio_any_chunking_same_events(noise: np.ndarray, sizes: list[int],
                                            digit: str) -> None:
    """Arbitrary samples (full-scale included) around a real digit: never an exception,
    and the events never depend on how the audio is cut."""
    sig = np.concatenate([noise, dtmf_tone(digit, 60), zeros(40), noise[::-1]])
    assert _feed_in_chunks(sig, sizes) == _feed_in_chunks(sig, [sig.size])
