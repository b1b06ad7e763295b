"""DTMF receiver for many channels at once (ITU-T Q.23 tones, Q.24 receiver limits).

How it works (all channels in one pass, per engine tick):

1. The stream of each channel is cut into half-blocks of ``H`` samples (5 ms), aligned to
   the channel's absolute sample index, so results do not depend on how audio is chunked.
2. Analysis windows are two consecutive half-blocks (10 ms, Hann window, hop 5 ms).  The
   windowed DFT at the 8 DTMF frequencies and the 4 second harmonics of the high group
   (plus a weighted sum for the DC level) is one float32 matrix product of the
   half-blocks with a precomputed basis (dsp.goertzel); a window's coefficient is the
   first-half product of its first half-block plus the second-half product of its
   second half-block.
3. Per window, vectorized over channels: strongest row and column, then
   * level: each of the two tones >= ``min_level_dbm0``;
   * twist within limits;
   * purity: the two tones carry >= ``min_purity`` of the window's (windowed) energy,
     not counting a DC offset.  Speech and music spread energy over many frequencies; a
     window only partly covered by a tone also fails, which is what makes the duration
     limits sharp;
   * second harmonic of the column tone well below it (talk-off, voiced speech);
   * frequency: the phase advance of each tone between consecutive windows (lag H)
     measures its frequency to a few Hz, unambiguous over +/-100 Hz; it must be within
     ``max_freq_deviation`` (2.5 %, the midpoint of Q.24's 1.5 % accept / 3.5 % reject).
4. A hit/miss state machine (Asterisk ``dsp.c`` style) turns window results into digits:
   ``hits_to_begin`` consecutive window pairs agreeing on a digit start it,
   ``misses_to_end`` windows without it end it.  It only ever sees window results, and
   its state is a few integer arrays, one entry per channel, so each step is a handful of
   vector operations for all channels (a Python loop over the 4 windows of a 20 ms tick,
   never over channels or samples); Python objects are built only for actual events.

Q.24 (AT&T column) limits and how they are met (windows of 10 ms at hop 5 ms):
* duration: a 40 ms tone always contains >= 6 whole windows (7 when aligned, and a window
  mostly covered by the tone usually passes too); a 23 ms tone gives at most 4 windows that
  pass the purity test; 6 consecutive windows (5 hits) are required.  Measured over every
  sample alignment, with or without noise at 15 dB SNR: tones of 27 ms and less are never
  reported, tones of 36 ms and more always are;
* a 10 ms interruption spoils at most 3-4 windows (< ``misses_to_end`` = 5), a 40 ms pause
  spoils >= 8, so it separates digits;
* twist, stated as level(high group) - level(low group): Q.24 asks for operation from +4 dB
  to -8 dB.  The names differ between documents, so the sign is what counts; here, as in
  Asterisk ``dsp.c`` and spandsp, "normal twist" is the high group *weaker* (up to 8 dB: a
  loop attenuates high frequencies more) and "reverse twist" is the high group *stronger*
  (up to 4 dB).  The limits are set 1 dB wider to absorb measurement error;
* level: 0 to -25 dBm0 per frequency operate, -55 dBm0 must not: threshold -36 dBm0;
* frequency: +/-1.5 % operate, +/-3.5 % must not.

Talk-off: checked on espeak-ng speech in seven languages (Mandarin included) at levels
from -26 to -2 dBm0 and on synthetic music (tests/unit/dsp/test_dsp_talkoff.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dsp.goertzel import goertzel_basis, hann, tone_power_scale
from dsp.level import dbm0_to_amplitude
from dsp.tones import DTMF_COL_HZ, DTMF_KEYPAD, DTMF_ROW_HZ, dtmf_tone

logger = logging.getLogger(__name__)

__all__ = [
    "BatchDtmfDetector",
    "DtmfConfig",
    "DtmfDetector",
    "DtmfEvent",
    "dtmf_tone",
]

_DIGITS = "".join(DTMF_KEYPAD)  # index = row * 4 + col


@dataclass(frozen=True)
class DtmfConfig:
    """Thresholds of the DTMF receiver (sources in the module docstring).

    Attributes:
        hop_ms: half-block length; analysis windows are 2 hops long (Hann).
        min_level_dbm0: weakest accepted level of each tone (Q.24: -25 operate, -55 not).
        normal_twist_db: how far the high group may be *below* the low group (Q.24: 8 dB,
            plus 1 dB margin).
        reverse_twist_db: how far the high group may be *above* the low group (Q.24: 4 dB,
            plus 1 dB margin).
        min_purity: share of the window energy the two tones must carry.
        max_freq_deviation: accepted relative frequency error of each tone.
        max_harmonic_db: second harmonic of the column tone relative to it.
        hits_to_begin: consecutive agreeing window pairs that start a digit.
        misses_to_end: consecutive windows without the digit that end it.
        emit_at_onset: report a digit as soon as it starts (duration None) instead of when
            it ends (duration known).
    """

    hop_ms: float = 5.0
    min_level_dbm0: float = -36.0
    normal_twist_db: float = 9.0
    reverse_twist_db: float = 5.0
    min_purity: float = 0.80
    max_freq_deviation: float = 0.025
    max_harmonic_db: float = -12.0
    hits_to_begin: int = 5
    misses_to_end: int = 5
    emit_at_onset: bool = False

    def __post_init__(self) -> None:
        if self.hits_to_begin < 1 or self.misses_to_end < 1:
            raise ValueError("hits_to_begin and misses_to_end must be >= 1")
        if not 0.0 < self.min_purity <= 1.0:
            raise ValueError("min_purity must be in (0, 1]")


@dataclass(frozen=True)
class DtmfEvent:
    """A detected digit.

    Attributes:
        digit: one of "0123456789*#ABCD".
        start: onset, in samples from the first sample ever fed to the channel.
        duration: length in samples when known (None if reported at onset).
    """

    digit: str
    start: int
    duration: int | None


class BatchDtmfDetector:
    """DTMF detection for ``capacity`` channels (slots) fed in lockstep.

    ``process(frames)`` takes ``(capacity, S)`` int16 (row i = slot i, any S) and returns
    ``[(slot, DtmfEvent), ...]``.  Sample indexes are per slot and restart at 0 on
    ``reset(slot)``.
    """

    def __init__(self, capacity: int, sample_rate: int = 8000,
                 config: DtmfConfig | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.sample_rate = sample_rate
        self.config = cfg = config or DtmfConfig()
        hop = round(sample_rate * cfg.hop_ms / 1000.0)
        self._hop = hop
        win_len = 2 * hop
        window = hann(win_len)
        freqs = list(DTMF_ROW_HZ) + list(DTMF_COL_HZ) + [2.0 * f for f in DTMF_COL_HZ]
        self._nf = len(freqs)
        basis = goertzel_basis(freqs, win_len, sample_rate, window)  # (2H, 2F)
        w2 = window ** 2
        # rows [0, 2F]: first half of the window (cos, sin, then w**2 for the DC estimate);
        # rows [2F + 1, 4F + 2): the same for the second half
        self._basis_t = np.ascontiguousarray(np.concatenate([
            basis[:hop].T, w2[None, :hop], basis[hop:].T, w2[None, hop:]]).astype(np.float32))
        self._inv_w2_sum = float(1.0 / np.sum(w2))
        self._w2 = np.stack([w2[:hop], w2[hop:]], axis=1).astype(np.float32)
        tone_scale = tone_power_scale(win_len, window)
        self._purity_scale = float(np.sum(window) ** 2 / (2.0 * np.sum(w2)))
        self._pmin = float(tone_scale * dbm0_to_amplitude(cfg.min_level_dbm0) ** 2)
        self._normal = 10.0 ** (cfg.normal_twist_db / 10.0)
        self._reverse = 10.0 ** (cfg.reverse_twist_db / 10.0)
        self._harm = 10.0 ** (cfg.max_harmonic_db / 10.0)
        f8 = np.array(freqs[:8])
        self._f8 = f8
        self._phase_step = 2.0 * np.pi * f8 * hop / sample_rate  # nominal phase advance per hop
        self._rad_to_hz = sample_rate / (2.0 * np.pi * hop)
        self._carry = np.zeros((capacity, hop), dtype=np.int16)
        self._prev_first = np.zeros((2 * self._nf + 1, capacity), dtype=np.float32)
        self._prev_e1 = np.zeros(capacity, dtype=np.float32)
        self._plen = np.zeros(capacity, dtype=np.int64)
        self._prev_x = np.zeros((capacity, 8), dtype=np.complex64)
        self._prev_cand = np.full(capacity, -1, dtype=np.int16)
        self._nwin = np.zeros(capacity, dtype=np.int64)
        # hit/miss state machine, one entry per slot (see _machine_step)
        self._run_digit = np.full(capacity, -1, dtype=np.int64)
        self._run = np.zeros(capacity, dtype=np.int64)
        self._digit = np.full(capacity, -1, dtype=np.int64)
        self._start_win = np.zeros(capacity, dtype=np.int64)
        self._last_win = np.zeros(capacity, dtype=np.int64)
        self._misses = np.zeros(capacity, dtype=np.int64)

    # ------------------------------------------------------------------ slots
    def reset(self, slot: int) -> None:
        """Forget everything about ``slot``; its sample index restarts at 0."""
        self._carry[slot] = 0
        self._plen[slot] = 0
        self._prev_x[slot] = 0.0
        self._prev_first[:, slot] = 0.0
        self._prev_e1[slot] = 0.0
        self._prev_cand[slot] = -1
        self._nwin[slot] = 0
        self._clear_machine(slot)

    def flush(self, slot: int) -> list[DtmfEvent]:
        """End of the slot's audio: report a digit still in progress (with its duration so
        far) and clear the hit/miss state.  The sample index keeps counting."""
        events: list[DtmfEvent] = []
        if self._digit[slot] >= 0 and not self.config.emit_at_onset:
            events.append(self._event(slot, end=True))
        self._clear_machine(slot)
        return events

    def _clear_machine(self, slot: int) -> None:
        self._run_digit[slot] = -1
        self._run[slot] = 0
        self._digit[slot] = -1
        self._start_win[slot] = 0
        self._last_win[slot] = 0
        self._misses[slot] = 0

    # --------------------------------------------------------------- analysis
    def _half_blocks(self, frames: NDArray[np.int16]) -> tuple[NDArray[np.int16],
                                                                NDArray[np.int64]]:
        """The new complete half-blocks of every slot, ``(cap, nmax, H)``.

        The carry holds each slot's incomplete half-block (``plen`` samples) right-aligned,
        so slot i's first new half-block starts ``H - plen[i]`` samples into carry+frames.
        Slots fed in lockstep but assigned at different times can differ in ``plen`` (and
        by one in the number of new half-blocks); they are gathered with an index array.
        """
        hop = self._hop
        size = frames.shape[1]
        buf = np.concatenate([self._carry, frames], axis=1)
        plen = self._plen
        nh = (plen + size) // hop
        nmax = int(nh.max())
        lo, hi = int(plen.min()), int(plen.max())
        if nmax == 0:
            blocks = np.empty((self.capacity, 0, hop), dtype=np.int16)
        elif lo == hi:
            off = hop - lo
            blocks = buf[:, off: off + nmax * hop].reshape(self.capacity, nmax, hop)
        else:
            idx = (hop - plen)[:, None] + np.arange(nmax * hop)[None, :]
            np.minimum(idx, hop + size - 1, out=idx)
            blocks = np.take_along_axis(buf, idx, axis=1).reshape(self.capacity, nmax, hop)
        self._carry = np.ascontiguousarray(buf[:, -hop:])
        self._plen = plen + size - nh * hop
        return blocks, nh

    def process(self, frames: NDArray[np.int16]) -> list[tuple[int, DtmfEvent]]:
        """Analyse one chunk for every slot.

        Args:
            frames: int16 ``(capacity, S)``; S may be any length (typically 160).
        Returns:
            ``(slot, event)`` pairs in slot order, then time order.
        Raises:
            ValueError: wrong shape.
        """
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape[0] != self.capacity:
            raise ValueError(f"expected ({self.capacity}, S) frames, got {frames.shape}")
        if frames.dtype != np.int16:
            frames = frames.astype(np.int16)
        if frames.shape[1] == 0:
            return []
        blocks, nh = self._half_blocks(frames)
        if blocks.shape[1] == 0:
            return []
        cand, hit = self._analyse(blocks, nh)
        nwin_before = self._nwin.copy()
        self._nwin += nh
        found: list[tuple[int, int, DtmfEvent]] = []
        for j in range(cand.shape[1]):
            found += self._machine_step(j, cand[:, j], hit[:, j], nwin_before + j, j < nh)
        found.sort(key=lambda item: (item[0], item[1]))
        return [(slot, ev) for slot, _, ev in found]

    def _analyse(self, blocks: NDArray[np.int16], nh: NDArray[np.int64]
                 ) -> tuple[NDArray[np.int16], NDArray[np.bool_]]:
        """Per-window candidate digit (-1 = none) and hit flags, shape ``(cap, nmax)``.

        Window m of a slot = its half-blocks m-1 and m.  Each half-block is multiplied once
        by both halves of the windowed basis (``(4F, H) @ (H, R)``, no overlapping copies),
        and a window's coefficients are the first-half product of the previous half-block
        plus the second-half product of this one.  One row per frequency and one column
        per window keeps every per-frequency vector contiguous, so the "argmax" over the
        four tones of a group is a few whole-vector comparisons.
        """
        cap, nmax, hop = blocks.shape
        nf = self._nf
        flat = blocks.reshape(-1, hop).astype(np.float32)
        halves = (self._basis_t @ flat.T).reshape(4 * nf + 2, cap, nmax)
        first, second = halves[: 2 * nf + 1], halves[2 * nf + 1:]
        energy = (np.square(flat) @ self._w2).reshape(cap, nmax, 2)
        y = np.concatenate([self._prev_first[:, :, None], first[:, :, :-1]], axis=2)
        y += second
        y = y.reshape(2 * nf + 1, cap * nmax)  # cos parts, sin parts, DC (weighted sum)
        ew = np.concatenate([self._prev_e1[:, None], energy[:, :-1, 0]], axis=1)
        ew += energy[:, :, 1]
        # windowed energy without the DC offset (a DC level is no speech, but it would
        # dilute the purity of a weak tone): E - (sum w^2 x)^2 / sum w^2
        ew = ew.reshape(-1) - np.square(y[2 * nf]) * self._inv_w2_sum
        power = np.square(y[:nf])
        power += np.square(y[nf:2 * nf])
        row, pr = _argmax4(power[0:4])
        col, pc = _argmax4(power[4:8])
        p2 = np.where(col < 2, np.where(col == 0, power[8], power[9]),
                      np.where(col == 2, power[10], power[11]))
        ok = (pr >= self._pmin) & (pc >= self._pmin)
        ok &= pc <= pr * self._reverse
        ok &= pr <= pc * self._normal
        ok &= (pr + pc) >= (self.config.min_purity * self._purity_scale) * ew
        ok &= p2 <= pc * self._harm
        ok = ok.reshape(cap, nmax)
        if nmax > 1:
            ok &= np.arange(nmax)[None, :] < nh[:, None]
        cand = np.where(ok, (row * 4 + col).reshape(cap, nmax), -1).astype(np.int16)

        cand_prev = np.concatenate([self._prev_cand[:, None], cand[:, :-1]], axis=1)
        hit = np.zeros((cap, nmax), dtype=bool)
        si, sj = np.nonzero((cand >= 0) & (cand == cand_prev))
        if si.size:
            c = cand[si, sj].astype(np.int64)
            bins = np.stack([c // 4, 4 + c % 4], axis=1)  # (k, 2) frequency numbers
            flat_now = (si * nmax + sj)[:, None]
            now = y[bins, flat_now] - 1j * y[bins + nf, flat_now]
            before = np.where(sj[:, None] > 0,
                              y[bins, flat_now - 1] - 1j * y[bins + nf, flat_now - 1],
                              self._prev_x[si[:, None], bins])
            advance = np.angle(now * np.conj(before)) - self._phase_step[bins]
            advance = (advance + np.pi) % (2.0 * np.pi) - np.pi
            deviation = np.abs(advance * self._rad_to_hz) / self._f8[bins]
            hit[si, sj] = (deviation <= self.config.max_freq_deviation).all(axis=1)

        # remember the last window of each slot for the next call
        has = nh > 0
        last = np.flatnonzero(has) * nmax + (nh[has] - 1)
        self._prev_x[has] = (y[:8, last] - 1j * y[nf:nf + 8, last]).T
        self._prev_cand[has] = cand.reshape(-1)[last]
        rows_has = np.flatnonzero(has)
        self._prev_first[:, has] = first[:, rows_has, nh[has] - 1]
        self._prev_e1[has] = energy[rows_has, nh[has] - 1, 0]
        return cand, hit

    # ---------------------------------------------------------- state machine
    def _machine_step(self, j: int, cand: NDArray[np.int16], hit: NDArray[np.bool_],
              win: NDArray[np.int64], valid: NDArray[np.bool_]
              ) -> list[tuple[int, int, DtmfEvent]]:
        """Window ``j`` of this call for every slot at once: the hit/miss machine of
        Asterisk ``dsp.c``, vectorized over slots (slots whose window ``j`` does not exist,
        ``valid`` False, keep their state).

        * run: consecutive hits (window agrees with the previous one on the same digit and
          both frequencies check out); ``hits_to_begin`` of them start a digit, which
          began at the first window of the run.
        * misses: consecutive windows without the current digit; ``misses_to_end`` of
          them end it, at its last confirming window.
        """
        cfg = self.config
        c = cand.astype(np.int64)
        h = hit & valid
        run = np.where(h, np.where(c == self._run_digit, self._run + 1, 1), 0)
        self._run = np.where(valid, run, self._run)
        self._run_digit = np.where(valid, np.where(h, c, -1), self._run_digit)

        active = (self._digit >= 0) & valid
        confirm = active & (c == self._digit)
        miss = active & ~confirm
        self._last_win = np.where(confirm, win, self._last_win)
        self._misses = np.where(confirm, 0, self._misses + miss)
        found: list[tuple[int, int, DtmfEvent]] = []
        ended = miss & (self._misses >= cfg.misses_to_end)
        if ended.any():
            for slot in np.flatnonzero(ended).tolist():
                if not cfg.emit_at_onset:
                    found.append((slot, j, self._event(slot, end=True)))
            self._digit[ended] = -1
            self._misses[ended] = 0

        begin = valid & (self._digit < 0) & (self._run >= cfg.hits_to_begin)
        if begin.any():
            self._digit[begin] = self._run_digit[begin]
            self._start_win[begin] = win[begin] - self._run[begin]
            self._last_win[begin] = win[begin]
            self._misses[begin] = 0
            if cfg.emit_at_onset:
                for slot in np.flatnonzero(begin).tolist():
                    found.append((slot, j, self._event(slot, end=False)))
        return found

    def _event(self, slot: int, end: bool) -> DtmfEvent:
        """The event of the slot's current digit (window w spans half-blocks w-1, w)."""
        start = max(0, (int(self._start_win[slot]) - 1) * self._hop)
        digit = _DIGITS[int(self._digit[slot])]
        if not end:
            return DtmfEvent(digit, start, None)
        stop = (int(self._last_win[slot]) + 1) * self._hop
        return DtmfEvent(digit, start, stop - start)


def _argmax4(p: NDArray[np.float32]) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """Index and value of the largest of 4 rows, per column (first wins on ties)."""
    hi01 = p[1] > p[0]
    i01 = hi01.astype(np.intp)
    v01 = np.maximum(p[0], p[1])
    hi23 = p[3] > p[2]
    i23 = hi23.astype(np.intp) + 2
    v23 = np.maximum(p[2], p[3])
    second = v23 > v01
    return np.where(second, i23, i01), np.maximum(v01, v23)


class DtmfDetector:
    """Single-channel DTMF detector: a batch detector of capacity 1.

    ``feed`` accepts any length of int16 samples; the events are identical however the
    audio is chunked.  ``flush`` reports a digit still in progress at the end.
    """

    def __init__(self, sample_rate: int = 8000, config: DtmfConfig | None = None) -> None:
        self._batch = BatchDtmfDetector(1, sample_rate, config)

    @property
    def config(self) -> DtmfConfig:
        """The thresholds in use."""
        return self._batch.config

    def feed(self, samples: NDArray[np.int16]) -> list[DtmfEvent]:
        """Analyse more samples (1-D int16); returns the digits completed so far."""
        x = np.asarray(samples)
        if x.ndim != 1:
            raise ValueError(f"expected 1-D samples, got shape {x.shape}")
        return [ev for _, ev in self._batch.process(x[None, :])]

    def flush(self) -> list[DtmfEvent]:
        """End of audio: report a digit still in progress."""
        return self._batch.flush(0)

    def reset(self) -> None:
        """Start over at sample index 0."""
        self._batch.reset(0)
