"""DTMF talk-off: no digits in speech (espeak-ng, several languages incl. Mandarin) or in
synthetic music; a digit mixed into speech is still found.

Speech is generated at test time into tmp_path (espeak-ng writes 22,050 Hz WAV) and
resampled to 8 kHz with dsp.resample; it is cached for the module.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from dsp.dtmf import DtmfDetector, DtmfEvent
from dsp.resample import to_rate
from dsp.tones import PROFILES, dtmf_tone, render_tone

ESPEAK = shutil.which("espeak-ng")

SENTENCES: dict[str, list[str]] = {
    "en-us": [
        "Thank you for calling the property management service hotline.",
        "For questions about your bill, press one. To report a repair, press two.",
        "Please hold while we connect you to the next available agent.",
        "Your payment of three hundred and twenty five dollars was received on Monday.",
    ],
    "cmn": [
        "您好，欢迎致电物业服务热线。",
        "查询物业费账单请按一，报修请按二，投诉和建议请按三。",
        "请稍候，我们正在为您转接客服人员。",
        "您本月的水费是一百二十八元五角，请在月底前缴纳。",
    ],
    "de": [
        "Vielen Dank für Ihren Anruf bei der Hausverwaltung.",
        "Für Fragen zu Ihrer Rechnung drücken Sie bitte die Eins.",
        "Bitte warten Sie, Sie werden gleich mit einem Mitarbeiter verbunden.",
    ],
    "fr-fr": [
        "Merci de votre appel au service de gestion immobilière.",
        "Pour les questions de facturation, tapez un. Pour une réparation, tapez deux.",
        "Veuillez patienter, un conseiller va vous répondre.",
    ],
    "es": [
        "Gracias por llamar a la línea de atención de administración de fincas.",
        "Para consultas de facturación, marque uno. Para reparaciones, marque dos.",
    ],
    "ru": [
        "Спасибо за звонок в службу управления недвижимостью.",
        "По вопросам оплаты нажмите один. Чтобы сообщить о поломке, нажмите два.",
    ],
    "ja": [
        "お電話ありがとうございます。",
        "担当者におつなぎしますので、少々お待ちください。",
    ],
}


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """8 kHz int16 speech per voice: all its sentences at normal, fast/high and slow/low
    voice settings, with 200 ms gaps."""
    if ESPEAK is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng); CI installs it")
    out_dir: Path = tmp_path_factory.mktemp("speech")
    result: dict[str, np.ndarray] = {}
    for voice, sentences in SENTENCES.items():
        parts: list[np.ndarray] = []
        for k, text in enumerate(sentences):
            for variant, args in enumerate((["-s", "160", "-p", "50"],
                                            ["-s", "200", "-p", "85"],
                                            ["-s", "130", "-p", "15"])):
                wav = out_dir / f"{voice}_{k}_{variant}.wav"
                subprocess.run([ESPEAK, "-v", voice, *args, "-w", str(wav), text],
                               check=True, capture_output=True, timeout=30)
                rate, pcm = wavfile.read(wav)
                parts += [to_rate(pcm.astype(np.int16), rate, 8000),
                          np.zeros(1600, np.int16)]
        result[voice] = np.concatenate(parts)
    return result


def _detect(sig: np.ndarray) -> list[DtmfEvent]:
    det = DtmfDetector()
    return det.feed(sig) + det.flush()


def _gain(sig: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(np.rint(sig.astype(np.float64) * gain), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("voice", list(SENTENCES))
def test_no_digits_in_speech(speech: dict[str, np.ndarray], voice: str) -> None:
    sig = speech[voice]
    assert sig.size > 8000 * 5  # several seconds per language
    for gain in (0.25, 1.0, 4.0):  # about -26 to -2 dBm0 average; 4.0 clips heavily
        assert _detect(_gain(sig, gain)) == [], (voice, gain)


@pytest.mark.parametrize("voice", ["en-us", "cmn", "de"])
def test_digit_mixed_into_speech_is_detected(speech: dict[str, np.ndarray],
                                             voice: str) -> None:
    """Speech at -6 dB (about -20 dBm0 average) with 80 ms digits at -10 dBm0 per tone
    placed over talking, at four positions."""
    base = _gain(speech[voice], 0.5).astype(np.float64)
    for k, digit in enumerate("19#D"):
        sig = base.copy()
        tone = dtmf_tone(digit, 80, -10.0).astype(np.float64)
        pos = sig.size * (k + 1) // 5
        sig[pos:pos + tone.size] += tone
        events = _detect(np.clip(np.rint(sig), -32768, 32767).astype(np.int16))
        assert [e.digit for e in events] == [digit], (voice, digit)
        assert abs(events[0].start - pos) <= 160  # speech may mask the first windows


# ---------------------------------------------------------------- music
FS = 8000


def _note(freq: float, seconds: float, harmonics: int) -> np.ndarray:
    t = np.arange(int(seconds * FS)) / FS
    env = np.minimum(1.0, t / 0.02) * np.exp(-1.5 * t)
    out = np.zeros_like(t)
    for k in range(1, harmonics + 1):
        if freq * k < 3800:
            out += np.sin(2 * np.pi * freq * k * t) / k
    return 6000.0 * out * env


def _midi(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69) / 12)


def _chords() -> np.ndarray:
    chords = []
    for root in range(48, 90):
        for shape in ((0, 4, 7), (0, 3, 7), (0, 4, 7, 10), (0, 5, 9)):
            chords.append(sum(_note(_midi(root + i), 0.25, 6) for i in shape))
    return np.concatenate(chords)


def _melody() -> np.ndarray:
    rng = np.random.default_rng(17)
    return np.concatenate([_note(_midi(float(m)), 0.2, 2) for m in rng.integers(60, 96, 150)])


def _sweeps() -> np.ndarray:
    """Glissandi at >= 2 kHz/s.  (A pair that lingers within 2.5 % of a DTMF pair for more
    than ~30 ms *is* a DTMF signal by Q.24's own limits, so slow dual sweeps are not a fair
    talk-off test.)"""
    t = np.arange(FS) / FS

    def chirp(f0: float, f1: float) -> np.ndarray:
        return 8000.0 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / 2 * t * t))

    return np.concatenate([
        chirp(300, 3400), chirp(3400, 300),                   # single tone, 3.1 kHz/s
        chirp(500, 2900) + chirp(3400, 1000),                 # dual, crossing
        chirp(650, 3000) + chirp(1150, 3400),                 # dual, parallel upwards
        chirp(3000, 600) + chirp(3400, 1100),                 # dual, parallel downwards
    ])


def _as_pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("name", ["chords", "melody", "sweeps"])
def test_no_digits_in_music(name: str) -> None:
    sig = {"chords": _chords, "melody": _melody, "sweeps": _sweeps}[name]()
    for gain in (0.3, 1.0, 3.0):
        assert _detect(_as_pcm(sig * gain)) == [], (name, gain)


def test_no_digits_in_call_progress_tones() -> None:
    for profile in PROFILES.values():
        for pattern in (profile.dial, profile.ringback, profile.busy, profile.congestion,
                        profile.call_waiting):
            assert _detect(render_tone(pattern, 0, 8000 * 6)) == [], (profile.name, pattern)
