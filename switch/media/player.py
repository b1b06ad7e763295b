"""Prompt playback: per-channel cursors that yield 20 ms frames, with barge-in and looping.

Two shapes of the same thing:

* :class:`Player` -- one channel's playback of a list of prompts, frame by frame
  (``next_frame()``). Simple, used by tests, the IVR simulator and low channel counts.
* :class:`PlayerBank` -- every channel of a media worker at once. The engine calls
  :meth:`PlayerBank.fill` once per 20 ms tick and gets the frames of all playing slots
  gathered with one fancy-indexing operation from a shared sample pool (DESIGN.md, "Why
  the media engine is fast"): per tick the Python work is a few numpy calls whatever the
  number of channels; per-slot Python runs only when a prompt ends.

Rules:

1. Frames are 160 samples (20 ms at 8 kHz). Each prompt is padded with silence to a whole
   number of frames, so a list of prompts plays with at most 20 ms of silence between items
   and a looped prompt (music on hold) wraps on a frame boundary.
2. Barge-in: a digit stops playback only when the play was started with
   ``barge_in=True`` (the IVR decides; a legal notice may forbid it). Stopping is immediate:
   the next frame is ``None`` / the slot is no longer playing.
3. A slot that finishes (end of list, ``stop()`` or barge-in) is reported once by
   :meth:`PlayerBank.pop_finished`, so the engine can tell the IVR that ``play`` completed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from switch.media.errors import MediaError

logger = logging.getLogger(__name__)

__all__ = ["FRAME_SAMPLES", "FinishReason", "Player", "PlayerBank"]

FRAME_SAMPLES = 160
"""Samples per 20 ms frame at 8 kHz (RFC 3551 section 4.5, default packetization)."""

class FinishReason(Enum):
    """Why a playback ended (reported to the IVR: ``play`` interrupted or complete)."""

    COMPLETED = "completed"
    STOPPED = "stopped"
    BARGED_IN = "barged_in"


def _pad_to_frames(pcm: NDArray[np.int16]) -> NDArray[np.int16]:
    """Copy ``pcm`` to int16, zero-padded to a multiple of FRAME_SAMPLES (rule 1)."""
    flat = np.asarray(pcm).reshape(-1)
    if flat.dtype != np.int16:
        raise MediaError(f"prompt samples must be int16, got {flat.dtype}")
    padded = np.zeros(-(-flat.size // FRAME_SAMPLES) * FRAME_SAMPLES, dtype=np.int16)
    padded[: flat.size] = flat
    return padded


class Player:
    """One channel's playback cursor over a list of prompts.

    Args:
        items: prompts (8 kHz mono int16 arrays) played in order.
        loop: start again after the last item until :meth:`stop` (music on hold).
        barge_in: whether :meth:`on_digit` stops the playback.
    """

    def __init__(self, items: Sequence[NDArray[np.int16]], *, loop: bool = False,
                 barge_in: bool = True) -> None:
        parts = [_pad_to_frames(item) for item in items]
        self._buffer = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        self._buffer.flags.writeable = False
        self._cursor = 0
        self.loop = loop
        self.barge_in = barge_in
        self.finish_reason: FinishReason | None = None
        if self._buffer.size == 0:
            self.finish_reason = FinishReason.COMPLETED

    @property
    def done(self) -> bool:
        """True once playback has ended for any reason."""
        return self.finish_reason is not None

    @property
    def position_samples(self) -> int:
        """Samples played so far within the current pass."""
        return self._cursor

    @property
    def total_samples(self) -> int:
        """Length of one pass over all items, including frame padding."""
        return int(self._buffer.size)

    def next_frame(self) -> NDArray[np.int16] | None:
        """Return the next 160-sample frame (a read-only view), or None when done."""
        if self.finish_reason is not None:
            return None
        start = self._cursor
        frame = self._buffer[start : start + FRAME_SAMPLES]
        self._cursor = start + FRAME_SAMPLES
        if self._cursor >= self._buffer.size:
            if self.loop:
                self._cursor = 0
            else:
                self.finish_reason = FinishReason.COMPLETED
        return frame

    def on_digit(self, digit: str = "") -> bool:
        """Handle a DTMF digit: stop if barge-in is allowed. Returns True if it stopped."""
        if self.barge_in and self.finish_reason is None:
            self.finish_reason = FinishReason.BARGED_IN
            return True
        return False

    def stop(self) -> None:
        """Stop playback now (no-op when already done)."""
        if self.finish_reason is None:
            self.finish_reason = FinishReason.STOPPED


@dataclass(slots=True)
class _PoolEntry:
    offset: int
    length: int
    users: int = 0
    keep: NDArray[np.int16] | None = field(default=None, repr=False)


class PlayerBank:
    """Playback for ``n_slots`` channels, gathered for all slots in one numpy call per tick.

    Every prompt played is copied once into a shared ``pool`` (deduplicated by array
    identity: prompts from :class:`~switch.media.prompts.PromptStore` and the TTS cache are
    the same object on every play). Each slot holds its current segment as
    ``(start, length, cursor)`` in parallel arrays; :meth:`fill` gathers the rows
    ``start + cursor`` of a sliding-window view of the pool (row ``k`` is
    ``pool[k : k + 160]``, no copy), i.e. one contiguous 320-byte copy per playing slot in
    a single numpy call. The pool is compacted when more than half of it belongs to prompts
    no slot plays any more.
    """

    def __init__(self, n_slots: int, *, initial_pool_samples: int = 1 << 16) -> None:
        self.n_slots = n_slots
        self.pool = np.zeros(max(initial_pool_samples, FRAME_SAMPLES), dtype=np.int16)
        self._windows = sliding_window_view(self.pool, FRAME_SAMPLES)
        self._pool_used = 0
        self._entries: dict[int, _PoolEntry] = {}
        self._live_samples = 0
        self.playing = np.zeros(n_slots, dtype=bool)
        self._start = np.zeros(n_slots, dtype=np.int64)
        self._length = np.zeros(n_slots, dtype=np.int64)
        self._cursor = np.zeros(n_slots, dtype=np.int64)
        self._barge_in = np.zeros(n_slots, dtype=bool)
        self._loop = [False] * n_slots
        self._queue: list[list[int]] = [[] for _ in range(n_slots)]
        self._segment: list[int] = [-1] * n_slots
        self._finished: list[tuple[int, FinishReason]] = []

    # ------------------------------------------------------------------ pool management

    def _intern(self, pcm: NDArray[np.int16]) -> int:
        """Place ``pcm`` in the pool (once per distinct array) and return its key."""
        key = id(pcm)
        entry = self._entries.get(key)
        if entry is None or entry.keep is not pcm:
            padded = _pad_to_frames(pcm)
            need = self._pool_used + padded.size
            if need > self.pool.size:
                self._compact(extra=padded.size)
            offset = self._pool_used
            self.pool[offset : offset + padded.size] = padded
            self._pool_used += padded.size
            entry = _PoolEntry(offset, padded.size, 0, pcm)
            self._entries[key] = entry
            self._live_samples += padded.size
        entry.users += 1
        return key

    def _release(self, key: int) -> None:
        entry = self._entries[key]
        entry.users -= 1
        if entry.users == 0:
            del self._entries[key]
            self._live_samples -= entry.length

    def _compact(self, extra: int) -> None:
        """Rebuild the pool from live entries, growing it if still too small."""
        size = self.pool.size
        while self._live_samples + extra > size // 2:
            size *= 2
        new_pool = np.zeros(size, dtype=np.int16)
        moved: dict[int, int] = {}
        used = 0
        for entry in self._entries.values():
            new_pool[used : used + entry.length] = \
                self.pool[entry.offset : entry.offset + entry.length]
            moved[entry.offset] = used
            entry.offset = used
            used += entry.length
        for slot in np.flatnonzero(self.playing):
            self._start[slot] = moved[int(self._start[slot])]
        self.pool, self._pool_used = new_pool, used
        self._windows = sliding_window_view(self.pool, FRAME_SAMPLES)
        logger.debug("player pool compacted: %d live samples, size %d", used, size)

    # ------------------------------------------------------------------ per-slot control

    def play(self, slot: int, items: Sequence[NDArray[np.int16]], *, loop: bool = False,
             barge_in: bool = True) -> None:
        """Start playing ``items`` on ``slot``, replacing (stopping) what it was playing."""
        for item in items:  # validate all before touching the pool or the slot
            if np.asarray(item).dtype != np.int16:
                raise MediaError(f"prompt samples must be int16, got {np.asarray(item).dtype}")
        if self.playing[slot] or self._queue[slot]:
            self._end(slot, FinishReason.STOPPED)
        keys = [self._intern(item) for item in items if np.asarray(item).size]
        if not keys:
            self._finished.append((slot, FinishReason.COMPLETED))
            return
        self._queue[slot] = keys
        self._loop[slot] = loop
        self._barge_in[slot] = barge_in
        self._start_segment(slot, 0)

    def _start_segment(self, slot: int, index: int) -> None:
        entry = self._entries[self._queue[slot][index]]
        self._segment[slot] = index
        self._start[slot] = entry.offset
        self._length[slot] = entry.length
        self._cursor[slot] = 0
        self.playing[slot] = True

    def _end(self, slot: int, reason: FinishReason) -> None:
        for key in self._queue[slot]:
            self._release(key)
        self._queue[slot] = []
        self._segment[slot] = -1
        self.playing[slot] = False
        self._finished.append((slot, reason))

    def stop(self, slot: int) -> None:
        """Stop ``slot`` now; reported as STOPPED if it was playing."""
        if self.playing[slot]:
            self._end(slot, FinishReason.STOPPED)

    def on_digit(self, slot: int) -> bool:
        """Barge-in on ``slot``: stop if its play allows it. Returns True if it stopped."""
        if self.playing[slot] and self._barge_in[slot]:
            self._end(slot, FinishReason.BARGED_IN)
            return True
        return False

    def pop_finished(self) -> list[tuple[int, FinishReason]]:
        """Slots whose playback ended since the last call, with the reason (rule 3)."""
        finished, self._finished = self._finished, []
        return finished

    # ------------------------------------------------------------------ the tick

    def fill(self, out: NDArray[np.int16]) -> NDArray[np.bool_]:
        """Write the next frame of every playing slot into ``out[slot]``.

        Args:
            out: ``(n_slots, 160)`` int16; rows of slots that are not playing are untouched.

        Returns:
            The boolean mask of slots that produced a frame this tick.
        """
        active = np.flatnonzero(self.playing)
        mask = self.playing.copy()
        if active.size == 0:
            return mask
        base = self._start[active] + self._cursor[active]
        out[active] = self._windows[base]  # one row gather: frame k = pool[k : k + 160]
        cursor = self._cursor[active] + FRAME_SAMPLES
        self._cursor[active] = cursor
        ended = active[cursor >= self._length[active]]
        for slot in ended.tolist():
            self._advance(slot)
        return mask

    def _advance(self, slot: int) -> None:
        """A segment ran out: go to the next item, wrap (loop) or finish."""
        nxt = self._segment[slot] + 1
        if nxt < len(self._queue[slot]):
            self._start_segment(slot, nxt)
        elif self._loop[slot]:
            self._start_segment(slot, 0)
        else:
            self._end(slot, FinishReason.COMPLETED)
