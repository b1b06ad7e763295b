"""Tests for switch.media.prompts (WAV decoding, prompt cache) and switch.media.player."""

from __future__ import annotations

import os
import random
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from switch.media.errors import MediaError, PromptNotFoundError, WavFormatError
from switch.media.player import FRAME_SAMPLES, FinishReason, Player, PlayerBank
from switch.media.prompts import (
    ByteLru,
    PromptStore,
    alaw_to_linear,
    load_wav,
    ulaw_to_linear,
    write_wav,
)

# ------------------------------------------------------------------------- WAV helpers


def make_wav(tag: int, channels: int, rate: int, bits: int, payload: bytes, *,
             extensible: bool = False, declared_size: int | None = None) -> bytes:
    """Build a WAV file by hand (independent of the code under test)."""
    block_align = channels * bits // 8
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block_align,
                          block_align, bits, 22, bits, 0) + struct.pack("<H", tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block_align, block_align, bits)
    size = len(payload) if declared_size is None else declared_size
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # odd chunk + pad byte
            + b"data" + struct.pack("<I", size) + payload)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tone(rate: int, freq: float, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def dominant_hz(pcm: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.argmax(spectrum) * rate / pcm.size)


def test_pcm16_8k_round_trip_is_exact(tmp_path: Path) -> None:
    pcm = np.random.default_rng(0).integers(-32768, 32768, 4000).astype(np.int16)
    write_wav(tmp_path / "a.wav", pcm)
    out = load_wav(tmp_path / "a.wav")
    np.testing.assert_array_equal(out, pcm)
    assert out.dtype == np.int16 and not out.flags.writeable


@pytest.mark.parametrize("rate", [11025, 16000, 22050, 44100, 48000])
def test_resampled_tone_keeps_frequency_and_duration(tmp_path: Path, rate: int) -> None:
    x = (tone(rate, 440.0, 1.0) * 32767).astype("<i2")
    stereo = np.stack((x, x), axis=1)
    (tmp_path / "t.wav").write_bytes(make_wav(1, 2, rate, 16, stereo.tobytes()))
    out = load_wav(tmp_path / "t.wav")
    assert out.size == 8000
    assert abs(dominant_hz(out) - 440.0) <= 1.0
    assert 0.4 * 32767 < np.abs(out[200:-200]).max() < 0.6 * 32767


def test_resampling_removes_out_of_band_content(tmp_path: Path) -> None:
    # 6 kHz at 48 kHz is above the 4 kHz Nyquist of the output: it must not alias to 2 kHz
    x = (tone(48000, 6000.0, 0.5) * 32767).astype("<i2")
    (tmp_path / "hf.wav").write_bytes(make_wav(1, 1, 48000, 16, x.tobytes()))
    out = load_wav(tmp_path / "hf.wav")
    assert np.sqrt(np.mean(out[400:-400].astype(np.float64) ** 2)) < 200


def test_stereo_is_mixed_down(tmp_path: Path) -> None:
    left = np.full(800, 1000, dtype="<i2")
    right = np.full(800, 3000, dtype="<i2")
    data = np.stack((left, right), axis=1).tobytes()
    (tmp_path / "s.wav").write_bytes(make_wav(1, 2, 8000, 16, data))
    assert set(load_wav(tmp_path / "s.wav").tolist()) == {2000}


SAMPLES = np.array([0, 1, -1, 1000, -1000, 32767, -32768, 12345, -23456], dtype=np.int64)


@pytest.mark.parametrize(
    ("bits", "encode", "expected"),
    [
        (8, lambda s: ((s >> 8) + 128).astype(np.uint8).tobytes(), (SAMPLES >> 8) << 8),
        (16, lambda s: s.astype("<i2").tobytes(), SAMPLES),
        (24, lambda s: b"".join(int(v * 256).to_bytes(3, "little", signed=True) for v in s),
         SAMPLES),
        (32, lambda s: (s * 65536).astype("<i4").tobytes(), SAMPLES),
    ],
)
@pytest.mark.parametrize("extensible", [False, True])
def test_pcm_widths(tmp_path: Path, bits: int, encode, expected, extensible: bool) -> None:
    path = tmp_path / f"w{bits}.wav"
    path.write_bytes(make_wav(1, 1, 8000, bits, encode(SAMPLES), extensible=extensible))
    np.testing.assert_array_equal(load_wav(path), expected)


def test_float32(tmp_path: Path) -> None:
    x = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0], dtype="<f4")
    (tmp_path / "f.wav").write_bytes(make_wav(3, 1, 8000, 32, x.tobytes()))
    np.testing.assert_array_equal(load_wav(tmp_path / "f.wav"),
                                  [0, 16384, -16384, 32767, -32768, 32767])


def _audioop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            pytest.skip("audioop not available (Python >= 3.13)")
    return audioop


def test_g711_tables_match_audioop() -> None:
    audioop = _audioop()
    codes = bytes(range(256))
    ref_u = np.frombuffer(audioop.ulaw2lin(codes, 2), dtype="<i2")
    ref_a = np.frombuffer(audioop.alaw2lin(codes, 2), dtype="<i2")
    np.testing.assert_array_equal(ulaw_to_linear(codes), ref_u)
    np.testing.assert_array_equal(alaw_to_linear(codes), ref_a)
    assert ulaw_to_linear(b"\xff")[0] == 0 and alaw_to_linear(b"\xd5")[0] == 8


@pytest.mark.parametrize(("tag", "table"), [(7, ulaw_to_linear), (6, alaw_to_linear)])
def test_g711_wav(tmp_path: Path, tag: int, table) -> None:
    codes = bytes(random.Random(tag).randrange(256) for _ in range(1600))
    path = tmp_path / "g711.wav"
    path.write_bytes(make_wav(tag, 1, 8000, 8, codes))
    np.testing.assert_array_equal(load_wav(path), table(codes))


def test_truncated_data_chunk_reads_available_frames(tmp_path: Path) -> None:
    payload = np.arange(101, dtype="<i2").tobytes() + b"\x07"  # odd trailing byte
    path = tmp_path / "cut.wav"
    path.write_bytes(make_wav(1, 1, 8000, 16, payload, declared_size=10_000))
    np.testing.assert_array_equal(load_wav(path), np.arange(101))


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(PromptNotFoundError):
        load_wav(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(WavFormatError):
        load_wav(tmp_path / "junk.wav")
    (tmp_path / "adpcm.wav").write_bytes(make_wav(2, 1, 8000, 4, b"\x00" * 100))
    with pytest.raises(WavFormatError, match="format tag 2"):
        load_wav(tmp_path / "adpcm.wav")
    nodata = make_wav(1, 1, 8000, 16, b"")
    (tmp_path / "nodata.wav").write_bytes(nodata.replace(b"data", b"junk"))
    with pytest.raises(MediaError):
        load_wav(tmp_path / "nodata.wav")


# ------------------------------------------------------------------------- prompt store


def test_byte_lru_evicts_by_bytes() -> None:
    lru: ByteLru[str, bytes] = ByteLru(max_bytes=100)
    lru.put("a", b"a", 40)
    lru.put("b", b"b", 40)
    assert lru.get("a") == b"a"  # a is now most recent
    lru.put("c", b"c", 40)
    assert "b" not in lru and "a" in lru and "c" in lru and lru.nbytes == 80
    lru.put("huge", b"h", 1000)
    assert "huge" not in lru and lru.nbytes == 80


def test_prompt_store_caches_and_reloads_on_change(tmp_path: Path) -> None:
    write_wav(tmp_path / "hello.wav", np.full(800, 5, dtype=np.int16))
    store = PromptStore(tmp_path)
    first = store.get("hello")
    assert store.get("hello.wav") is first and store.loads == 1
    write_wav(tmp_path / "hello.wav", np.full(1600, 7, dtype=np.int16))
    os.utime(tmp_path / "hello.wav", ns=(1, 10**18))  # make sure the mtime differs
    second = store.get("hello")
    assert store.loads == 2 and second.size == 1600 and int(second[0]) == 7


def test_prompt_store_refuses_escape(tmp_path: Path) -> None:
    root = tmp_path / "prompts"
    root.mkdir()
    write_wav(tmp_path / "secret.wav", np.zeros(10, dtype=np.int16))
    store = PromptStore(root)
    with pytest.raises(PromptNotFoundError):
        store.get("../secret")
    with pytest.raises(PromptNotFoundError):
        store.get(str(tmp_path / "secret.wav"))
    with pytest.raises(PromptNotFoundError):
        store.get("absent")


# ------------------------------------------------------------------------- player


def ramp(n: int, base: int) -> np.ndarray:
    return (base + np.arange(n) % 1000).astype(np.int16)


def test_player_pads_items_and_finishes() -> None:
    a, b = ramp(200, 0), ramp(100, 5000)
    player = Player([a, b])
    frames = []
    while (frame := player.next_frame()) is not None:
        assert frame.shape == (FRAME_SAMPLES,) and frame.dtype == np.int16
        frames.append(frame.copy())
    assert len(frames) == 3 and player.done
    assert player.finish_reason is FinishReason.COMPLETED
    out = np.concatenate(frames)
    np.testing.assert_array_equal(out[:200], a)
    assert not out[200:320].any()  # silence pad to the frame boundary
    np.testing.assert_array_equal(out[320:420], b)
    assert player.next_frame() is None


def test_player_loop_and_stop() -> None:
    player = Player([ramp(320, 0)], loop=True)
    frames = [player.next_frame() for _ in range(5)]
    assert all(f is not None for f in frames)
    np.testing.assert_array_equal(frames[0], frames[2])
    np.testing.assert_array_equal(frames[1], frames[3])
    player.stop()
    assert player.next_frame() is None and player.finish_reason is FinishReason.STOPPED


def test_player_barge_in() -> None:
    player = Player([ramp(1600, 0)])
    player.next_frame()
    assert player.on_digit("5") is True
    assert player.next_frame() is None and player.finish_reason is FinishReason.BARGED_IN
    locked = Player([ramp(1600, 0)], barge_in=False)
    assert locked.on_digit("5") is False
    assert locked.next_frame() is not None
    assert Player([]).done


def test_bank_matches_players_frame_by_frame() -> None:
    """Random plays/stops/digits on 16 slots: the bank equals one Player per slot."""
    rng = random.Random(42)
    prompts = [ramp(rng.randrange(1, 3000), 1000 * k) for k in range(12)]
    n = 16
    bank = PlayerBank(n, initial_pool_samples=2048)  # small: forces growth and compaction
    players: list[Player | None] = [None] * n
    finished_bank: list[tuple[int, FinishReason]] = []
    finished_ref: list[tuple[int, FinishReason]] = []
    for _tick in range(400):
        for _ in range(rng.randrange(3)):
            slot = rng.randrange(n)
            action = rng.random()
            if action < 0.5:
                items = rng.sample(prompts, rng.randrange(1, 4))
                loop, barge = rng.random() < 0.2, rng.random() < 0.7
                if players[slot] is not None and not players[slot].done:
                    finished_ref.append((slot, FinishReason.STOPPED))
                bank.play(slot, items, loop=loop, barge_in=barge)
                players[slot] = Player(items, loop=loop, barge_in=barge)
            elif action < 0.75:
                stopped = bank.on_digit(slot)
                p = players[slot]
                assert stopped == (p is not None and p.on_digit())
                if stopped:
                    finished_ref.append((slot, FinishReason.BARGED_IN))
            else:
                bank.stop(slot)
                p = players[slot]
                if p is not None and not p.done:
                    p.stop()
                    finished_ref.append((slot, FinishReason.STOPPED))
        out = np.full((n, FRAME_SAMPLES), -7, dtype=np.int16)
        mask = bank.fill(out)
        for slot, p in enumerate(players):
            frame = p.next_frame() if p is not None else None
            if frame is None:
                assert not mask[slot]
                assert (out[slot] == -7).all()  # untouched
            else:
                assert mask[slot]
                np.testing.assert_array_equal(out[slot], frame)
            if p is not None and p.done and p.finish_reason is FinishReason.COMPLETED:
                finished_ref.append((slot, FinishReason.COMPLETED))
                players[slot] = None
        finished_bank.extend(bank.pop_finished())
    assert sorted(finished_bank, key=str) == sorted(finished_ref, key=str)


def test_bank_loop_music_on_hold_and_shared_pool() -> None:
    moh = ramp(480, 0)
    bank = PlayerBank(3)
    bank.play(0, [moh], loop=True, barge_in=False)
    bank.play(2, [moh], loop=True)
    out = np.zeros((3, FRAME_SAMPLES), dtype=np.int16)
    seen = []
    for _ in range(6):
        bank.fill(out)
        seen.append(out[0].copy())
        np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(np.concatenate(seen[:3]), np.concatenate(seen[3:]))
    assert bank.on_digit(0) is False and bank.on_digit(2) is True
    assert bank.pop_finished() == [(2, FinishReason.BARGED_IN)]
    assert bank.playing.tolist() == [True, False, False]
    bank.play(1, [])
    assert bank.pop_finished() == [(1, FinishReason.COMPLETED)]


def test_bank_rejects_bad_items_without_side_effects() -> None:
    bank = PlayerBank(2)
    bank.play(0, [ramp(800, 0)])
    with pytest.raises(MediaError):
        bank.play(0, [ramp(160, 0), np.zeros(160, dtype=np.float32)])
    assert bank.playing[0]  # the current play was not disturbed
    with pytest.raises(MediaError):
        Player([np.zeros(10, dtype=np.int32)])
