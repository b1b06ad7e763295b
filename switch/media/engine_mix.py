"""Routing inside the media engine: who hears whom, as index arrays (internal module).

Rule 1 -- the common case is a two-party bridge, and it costs one fancy index per tick for
all channels: ``src[slot]`` is the receive row a channel hears (``src[a] = b, src[b] = a``),
and an unrouted channel points at an all-zero row (silence). PCMU/PCMA interworking needs
nothing here: legs differ only in the encode table the engine applies afterwards.

Rule 2 -- conferences use ``dsp.mixer.mix_groups`` once per tick for every conference
(minus-one outputs: nobody hears their own voice). Supervision (listen / whisper / barge,
DESIGN.md "Call model") is a 3 x 3 mix matrix over [caller, agent, supervisor] from
``dsp.mixer``; it overrides the caller/agent bridge rows while active.

Rule 3 -- membership changes rebuild small index arrays; the tick never walks Python dicts
proportional to the number of channels, only the (few) supervised trios.

Tones: :class:`ToneSource` is a cadenced tone (``dsp.tones.TonePattern``) rendered by
absolute sample index, so all channels playing the same pattern are rendered in one call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dsp import mixer

logger = logging.getLogger(__name__)

__all__ = ["SUPERVISE_MODES", "MixPlan", "ToneSource"]

SUPERVISE_MODES = ("listen", "whisper", "barge")


@dataclass(eq=False)
class ToneSource:
    """A cadenced tone on one channel.

    ``start_sample`` advances by one frame per tick, so cadence and oscillator phase continue
    across ticks with no oscillator state; ``duration_samples`` (0 = until stopped) bounds a
    finite tone; ``barge_in`` lets a digit stop it.
    """

    pattern: Any
    start_sample: int = 0
    duration_samples: int = 0
    barge_in: bool = False

    def finished(self) -> bool:
        """True once a finite tone has been fully played."""
        return bool(self.duration_samples) and self.start_sample >= self.duration_samples


class MixPlan:
    """Bridges, conferences and supervised trios of one engine.

    Args:
        capacity: number of slots; row ``capacity`` of the receive buffer is silence.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.src = np.full(capacity, capacity, dtype=np.int64)
        self.conf_of: dict[int, object] = {}
        self._confs: dict[object, list[int]] = {}
        self.trios: dict[int, tuple[int, int, str]] = {}
        self._members = np.zeros(0, dtype=np.int64)
        self._group_of = np.zeros(0, dtype=np.int64)
        self._n_groups = 0
        self._matrices = {
            "listen": np.asarray(mixer.listen_matrix(), dtype=np.float32),
            "whisper": np.asarray(mixer.whisper_matrix(), dtype=np.float32),
            "barge": np.asarray(mixer.barge_matrix(), dtype=np.float32),
        }

    # ------------------------------------------------------------------ membership

    def bridge(self, a: int, b: int) -> None:
        """Two-party relay: ``a`` hears ``b`` and ``b`` hears ``a``."""
        if a == b:
            raise ValueError("cannot bridge a channel to itself")
        for slot in (a, b):
            self.unbridge(slot)
            self.leave(slot)
        self.src[a] = b
        self.src[b] = a

    def unbridge(self, slot: int) -> int | None:
        """Undo the bridge of ``slot``; returns the former peer (or None)."""
        peer = int(self.src[slot])
        if peer == self.capacity:
            return None
        self.src[slot] = self.capacity
        if self.src[peer] == slot:
            self.src[peer] = self.capacity
        return peer

    def peer(self, slot: int) -> int | None:
        """The bridged peer of ``slot``, if any."""
        peer = int(self.src[slot])
        return None if peer == self.capacity else peer

    def join(self, conference: object, slot: int) -> None:
        """Put ``slot`` into a conference (leaving any bridge or other conference)."""
        self.unbridge(slot)
        self.leave(slot)
        self.conf_of[slot] = conference
        self._confs.setdefault(conference, []).append(slot)
        self._rebuild()

    def leave(self, slot: int) -> None:
        """Take ``slot`` out of its conference (no-op when in none)."""
        conference = self.conf_of.pop(slot, None)
        if conference is None:
            return
        members = self._confs[conference]
        members.remove(slot)
        if not members:
            del self._confs[conference]
        self._rebuild()

    def members(self, conference: object) -> list[int]:
        """Slots in ``conference``."""
        return list(self._confs.get(conference, ()))

    def supervise(self, caller: int, agent: int, supervisor: int, mode: str) -> None:
        """Supervisor ``mode`` ("listen", "whisper", "barge") over a caller/agent pair."""
        if mode not in self._matrices:
            raise ValueError(f"unknown supervise mode {mode!r}; use one of {SUPERVISE_MODES}")
        if len({caller, agent, supervisor}) != 3:
            raise ValueError("caller, agent and supervisor must be three channels")
        self.unbridge(supervisor)
        self.leave(supervisor)
        self.trios[supervisor] = (caller, agent, mode)

    def unsupervise(self, supervisor: int) -> None:
        """End supervision by ``supervisor`` (caller and agent keep their bridge)."""
        self.trios.pop(supervisor, None)

    def remove(self, slot: int) -> None:
        """Forget ``slot`` everywhere (channel closed)."""
        self.unbridge(slot)
        self.leave(slot)
        self.trios.pop(slot, None)
        for sup, (caller, agent, _mode) in list(self.trios.items()):
            if slot in (caller, agent):
                del self.trios[sup]

    def _rebuild(self) -> None:
        groups = list(self._confs.values())
        self._n_groups = len(groups)
        self._members = np.asarray([s for g in groups for s in g], dtype=np.int64)
        self._group_of = np.asarray(
            [i for i, g in enumerate(groups) for _ in g], dtype=np.int64)

    # ------------------------------------------------------------------ the tick

    def render(self, rx: NDArray[np.int16], tx: NDArray[np.int16],
               slots: NDArray[np.int64]) -> None:
        """Write what every channel in ``slots`` hears into ``tx`` rows.

        Args:
            rx: (capacity + 1, 160) received PCM; the last row is silence.
            tx: (capacity, 160) output PCM.
            slots: the open slots.
        """
        tx[slots] = rx[self.src[slots]]
        if self._n_groups:
            tx[self._members] = mixer.mix_groups(rx, self._members, self._group_of,
                                                 self._n_groups)
        for sup, (caller, agent, mode) in self.trios.items():
            rows = [caller, agent, sup]
            tx[rows] = mixer.mix(rx[rows], self._matrices[mode])
