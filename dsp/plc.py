"""Packet loss concealment for 8 kHz speech, vectorized over channels.

After ITU-T G.711 Appendix I ("A high quality low-complexity algorithm for packet loss
concealment with G.711"), adapted to a zero-delay, one-call-per-tick engine:

* A history of the last 48.75 ms (390 samples) of *output* is kept per channel.
* At the first lost frame the pitch period P is found by normalized autocorrelation of
  the last 20 ms against lags of 5..15 ms (40..120 samples, 66..200 Hz) and the history
  is frozen as the channel's template.
* Concealed audio loops the last period of the template, two periods from 10 ms and
  three from 20 ms; each loop's last P/4 samples are overlap-added with the P/4 samples
  *before* it, so it loops without a click. It is at full level for the first 10 ms,
  then attenuated linearly by 20 % per 10 ms, reaching silence at 60 ms.
* The first good frame after an erasure is overlap-added with the continuation of the
  synthetic signal over P/4 + 4 ms per extra 10 ms of erasure, at most 10 ms.

Differences from Appendix I, deliberate: App. I delays all output by 3.75 ms so it can
also overlap-add at the *start* of an erasure. We add no delay to the media path; the
start join falls on a pitch-period boundary, so it is continuous for voiced speech.

Everything is numpy over ``(k, 160)`` arrays of the channels (``slots``) concerned in a
tick, with no Python loop at all.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

logger = logging.getLogger(__name__)

__all__ = ["HISTORY_SAMPLES", "PITCH_MAX", "PITCH_MIN", "Plc", "find_pitch"]

HISTORY_SAMPLES = 390  # 48.75 ms at 8 kHz (App. I history buffer)
PITCH_MIN = 40  # 5 ms, 200 Hz
PITCH_MAX = 120  # 15 ms, 66.7 Hz
CORR_SAMPLES = 160  # 20 ms correlation window
FULL_LEVEL_SAMPLES = 80  # the first 10 ms of an erasure are not attenuated
ATTEN_PER_SAMPLE = 0.2 / 80  # 20 % per 10 ms afterwards -> silent at 60 ms
MAX_OLA_SAMPLES = 80  # 10 ms cap on the end-of-erasure overlap-add
OLA_STEP_SAMPLES = 32  # +4 ms of overlap-add per extra 10 ms of erasure


def _gain(offsets: NDArray[np.intp]) -> NDArray[np.float32]:
    """Attenuation for samples ``offsets`` samples into an erasure."""
    g = 1.0 - (offsets - FULL_LEVEL_SAMPLES) * ATTEN_PER_SAMPLE
    gain: NDArray[np.float32] = np.clip(g, 0.0, 1.0).astype(np.float32)
    return gain


class Plc:
    """Per-slot concealment state for up to ``capacity`` channels.

    Call :meth:`good` with every received frame (it returns the frame, smoothed if it
    ends an erasure) and :meth:`conceal` for every lost frame, both for the set of slots
    concerned in the current tick. :meth:`reset` when a slot gets a new call.
    """

    def __init__(self, capacity: int, frame: int = 160) -> None:
        if capacity <= 0 or frame <= 0:
            raise ValueError("capacity and frame must be positive")
        self.capacity = capacity
        self.frame = frame
        self._hist = np.zeros((capacity, HISTORY_SAMPLES), dtype=np.float32)
        self._template = np.zeros((capacity, HISTORY_SAMPLES), dtype=np.float32)
        self._pitch = np.full(capacity, PITCH_MAX, dtype=np.intp)
        self._erased = np.zeros(capacity, dtype=np.intp)  # samples concealed so far

    def reset(self, slots: ArrayLike) -> None:
        """Forget history for ``slots`` (a new call on those slots)."""
        idx = np.asarray(slots, dtype=np.intp)
        self._hist[idx] = 0.0
        self._erased[idx] = 0

    def good(self, slots: ArrayLike, pcm: NDArray[np.int16]) -> NDArray[np.int16]:
        """Record received frames; smooth those that end an erasure.

        Args:
            slots: ``(k,)`` channel indexes.
            pcm: ``(k, frame)`` received audio.

        Returns:
            ``(k, frame)`` int16: ``pcm`` itself where no erasure ended, else a copy with
            the overlap-add applied to the affected rows.
        """
        idx = np.asarray(slots, dtype=np.intp)
        if idx.size == 0:
            return pcm
        x = pcm.astype(np.float32)
        erased = self._erased[idx]
        ending = np.nonzero(erased > 0)[0]
        out = pcm
        if ending.size:
            x[ending] = self._fade_in(idx[ending], x[ending])
            out = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
            self._erased[idx[ending]] = 0
        self._push(idx, x)
        return out

    def conceal(self, slots: ArrayLike) -> NDArray[np.int16]:
        """Synthesize one frame for each lost slot.

        Returns:
            ``(k, frame)`` int16 concealment, silence once 60 ms have been concealed.
        """
        idx = np.asarray(slots, dtype=np.intp)
        if idx.size == 0:
            return np.zeros((0, self.frame), dtype=np.int16)
        starting = idx[self._erased[idx] == 0]
        if starting.size:
            self._start_erasure(starting)
        offsets = self._erased[idx][:, None] + np.arange(self.frame)[None, :]
        y = self._synth(idx, offsets) * _gain(offsets)
        self._erased[idx] += self.frame
        self._push(idx, y)
        pcm: NDArray[np.int16] = np.clip(np.rint(y), -32768, 32767).astype(np.int16)
        return pcm

    # -- internals ----------------------------------------------------------------------
    def _push(self, idx: NDArray[np.intp], x: NDArray[np.float32]) -> None:
        """Append frames to the output history."""
        n = self.frame
        if n >= HISTORY_SAMPLES:
            self._hist[idx] = x[:, n - HISTORY_SAMPLES :]
        else:
            h = self._hist[idx]
            self._hist[idx] = np.concatenate((h[:, n:], x), axis=1)

    def _start_erasure(self, idx: NDArray[np.intp]) -> None:
        """Find the pitch and freeze the history the concealment will loop over."""
        h = self._hist[idx]
        self._pitch[idx] = find_pitch(h)
        self._template[idx] = h

    def _synth(self, idx: NDArray[np.intp], offsets: NDArray[np.intp]) -> NDArray[np.float32]:
        """The concealment signal ``offsets`` samples into the erasure (before attenuation).

        One pitch period is looped for the first 10 ms, two from 10 ms and three from
        20 ms (as App. I does, so long erasures do not buzz), cross-faded over P/4 at each
        switch. The loops are in phase (each is a whole number of periods ending at the
        same sample), so the cross-fades are benign.
        """
        pitch = self._pitch[idx][:, None]
        quarter = np.maximum(pitch // 4, 1)
        snap = self._template[idx]
        y1, y2, y3 = (_loop(snap, m * pitch, quarter, offsets) for m in (1, 2, 3))
        w2 = np.clip((offsets - FULL_LEVEL_SAMPLES) / quarter, 0.0, 1.0)
        w3 = np.clip((offsets - 2 * FULL_LEVEL_SAMPLES) / quarter, 0.0, 1.0)
        return ((y1 * (1.0 - w2) + y2 * w2) * (1.0 - w3) + y3 * w3).astype(np.float32)

    def _fade_in(self, idx: NDArray[np.intp], x: NDArray[np.float32]) -> NDArray[np.float32]:
        """Overlap-add the synthetic continuation into the first good frame."""
        erased = self._erased[idx]
        pitch = self._pitch[idx]
        extra = np.maximum(0, (erased - 1) // FULL_LEVEL_SAMPLES)
        length = np.minimum(
            np.minimum(MAX_OLA_SAMPLES, self.frame), pitch // 4 + OLA_STEP_SAMPLES * extra
        )
        n = np.arange(self.frame)[None, :]
        offsets = erased[:, None] + n
        synth = self._synth(idx, offsets) * _gain(offsets)
        w = np.clip((n + 1) / (length[:, None] + 1), 0.0, 1.0).astype(np.float32)
        mixed: NDArray[np.float32] = (synth * (1.0 - w) + x * w).astype(np.float32)
        return mixed


def _loop(
    snap: NDArray[np.float32],
    span: NDArray[np.intp],
    quarter: NDArray[np.intp],
    offsets: NDArray[np.intp],
) -> NDArray[np.float32]:
    """Loop the last ``span`` samples of ``snap``; the loop's last ``quarter`` samples are
    overlap-added with the ``quarter`` samples before the loop, so that its end leads
    into its start without a click."""
    pos = HISTORY_SAMPLES - span + offsets % span
    y = np.take_along_axis(snap, pos, axis=1)
    into_tail = pos - (HISTORY_SAMPLES - quarter)
    before = np.take_along_axis(snap, np.maximum(pos - span, 0), axis=1)
    w = (into_tail + 0.5) / quarter
    return np.where(into_tail >= 0, y * (1.0 - w) + before * w, y).astype(np.float32)


def find_pitch(hist: NDArray[np.float32]) -> NDArray[np.intp]:
    """Pitch period per row by normalized autocorrelation (full search over the range).

    Args:
        hist: ``(k, HISTORY_SAMPLES)`` recent output, newest last.

    Returns:
        ``(k,)`` periods in samples, ``PITCH_MIN..PITCH_MAX``.
    """
    target = hist[:, HISTORY_SAMPLES - CORR_SAMPLES :]
    span = hist[:, HISTORY_SAMPLES - CORR_SAMPLES - PITCH_MAX : HISTORY_SAMPLES - PITCH_MIN]
    windows = sliding_window_view(span, CORR_SAMPLES, axis=1)  # window w <-> lag MAX - w
    corr = np.einsum("kwn,kn->kw", windows, target)
    energy = np.einsum("kwn,kwn->kw", windows, windows)
    score = corr / np.sqrt(energy + 1.0)
    pitch: NDArray[np.intp] = (PITCH_MAX - np.argmax(score, axis=1)).astype(np.intp)
    return pitch
