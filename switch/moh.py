"""Music on hold: what a held party hears while the other side has the call on hold.

RFC 3264 §8.4 and RFC 6337 §5.3: a party that holds a call sends a re-INVITE with
``sendonly`` (or ``inactive``); the SIP driver answers it and reports ``LegHeld``. The
party left waiting is the *other* leg of the bridge, and in a B2BUA with anchored media the
switch is the one that can give it something to hear. This module plays a looped prompt
to that leg and stops it when the holder resumes (``sendrecv`` again).

Rules:

* Rule 1 -- the music is ``[calls] moh_file`` (any WAV the prompt loader reads: it is
  converted once to 8 kHz mono at start-up) or, when that is empty, a loop generated here
  with numpy at start-up: a soft arpeggio over a I-vi-IV-V progression, every note inside
  the telephone band, enveloped so that note changes do not click, peaking about 14 dB
  under full scale. Nothing binary is shipped; the loop is written to
  ``<data_dir>/moh/default.wav`` so operators can listen to it.
* Rule 2 -- the prompt player overrides what the bridge delivers to a channel
  (``switch.media.engine``: prompts are overlaid after mixing), so the held leg stays
  bridged while the music plays and hears its partner again as soon as it stops; the
  bridge is never torn down for a hold.
* Rule 3 -- only answered, bridged calls that are not being transferred get music: a hold
  during ringing, an IVR call or a pending transfer is left to its owner.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from switch.media.errors import MediaError
from switch.media.prompts import load_wav, write_wav

if TYPE_CHECKING:
    from switch.b2bua import Call, CallManager
    from switch.channel import Channel

logger = logging.getLogger(__name__)

__all__ = ["MOH_NOTES_HZ", "MusicOnHold", "default_moh_pcm", "load_moh"]

SAMPLE_RATE = 8000
_NOTE_S = 0.25
_CHORDS = (  # I - vi - IV - V in C major; frequencies of A4 = 440 Hz equal temperament
    (523.25, 659.25, 783.99, 1046.50),   # C5 E5 G5 C6
    (440.00, 523.25, 659.25, 880.00),    # A4 C5 E5 A5
    (349.23, 440.00, 523.25, 698.46),    # F4 A4 C5 F5
    (392.00, 493.88, 587.33, 783.99),    # G4 B4 D5 G5
)
MOH_NOTES_HZ: frozenset[float] = frozenset(f for chord in _CHORDS for f in chord)
"""Every note of the generated loop (tests detect the music by these)."""


def default_moh_pcm(bars: int = 2, peak: float = 6500.0) -> NDArray[np.int16]:
    """Rule 1: the generated loop (8 kHz int16), ``bars`` passes over the 4 chords.

    Each chord is arpeggiated up and down in eighth notes (0.25 s), each note a sine with
    a quiet octave partial under a 10 ms attack and an exponential decay, so the loop is
    pleasant, band-limited and seamless (it starts and ends at a note boundary).
    """
    n = int(_NOTE_S * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    attack = np.minimum(1.0, t / 0.010)
    release = np.minimum(1.0, (_NOTE_S - t) / 0.010)
    envelope = attack * release * np.exp(-t / 0.18)
    notes: list[NDArray[np.float64]] = []
    for _ in range(bars):
        for chord in _CHORDS:
            for freq in (*chord, *chord[-2:0:-1], chord[0], chord[2]):
                tone = np.sin(2 * np.pi * freq * t) + 0.25 * np.sin(4 * np.pi * freq * t)
                notes.append(tone * envelope)
    pcm = np.concatenate(notes)
    pcm *= peak / max(1e-9, float(np.abs(pcm).max()))
    out: NDArray[np.int16] = np.rint(pcm).astype(np.int16)
    return out


def load_moh(moh_file: str, data_dir: Path) -> NDArray[np.int16]:
    """The music for ``[calls] moh_file`` (relative to ``data_dir``), or the generated loop.

    Raises:
        MediaError: the configured file is missing or not a readable WAV (start-up fails:
            a wrong path should not be discovered by the first caller put on hold).
    """
    if moh_file:
        path = Path(moh_file)
        pcm = load_wav(path if path.is_absolute() else data_dir / path)
        if pcm.size < SAMPLE_RATE // 10:
            raise MediaError(f"{moh_file}: music on hold shorter than 0.1 s")
        return pcm
    pcm = default_moh_pcm()
    target = data_dir / "moh" / "default.wav"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            write_wav(target, pcm)
    except OSError as exc:  # the music still plays; only the copy for people is missing
        logger.warning("could not write %s: %s", target, exc)
    return pcm


class MusicOnHold:
    """Plays the music to held parties (see the module docstring for the rules).

    Args:
        manager: the call manager (its media service, task spawner and calls).
        pcm: the music, 8 kHz mono int16 (:func:`load_moh`).
    """

    def __init__(self, manager: CallManager, pcm: NDArray[np.int16]) -> None:
        self.manager = manager
        self.pcm = pcm
        self.playing: set[int] = set()
        """Media channel ids hearing the music now."""

    @staticmethod
    def other_party(call: Call, leg: Channel) -> Channel | None:
        """The leg bridged to ``leg`` in ``call`` (None if there is none)."""
        if call.b is None:
            return None
        if leg is call.a:
            return call.b
        return call.a if leg is call.b else None

    def hold_changed(self, call: Call, leg: Channel, held: bool) -> None:
        """``leg``'s far end put the call on hold (``held``) or took it off (Rule 3)."""
        if call.ending:
            return
        other = self.other_party(call, leg)
        if other is None or other.media_id is None or other.ended:
            return
        cid = other.media_id
        if held:
            self.manager._spawn(self.start(cid), f"moh-{other.name}")
        else:
            self.manager._spawn(self.stop(cid), f"moh-stop-{other.name}")

    async def start(self, cid: int) -> None:
        """Loop the music on media channel ``cid`` (Rule 2: it stays bridged)."""
        try:
            await self.manager.media.play(cid, [self.pcm], loop=True)
        except MediaError as exc:  # the channel closed meanwhile
            logger.info("no music on hold for media channel %d: %s", cid, exc)
            return
        self.playing = {c for c in self.playing if self._is_open(c)}  # drop closed channels
        self.playing.add(cid)
        logger.info("music on hold started on media channel %d", cid)

    def _is_open(self, cid: int) -> bool:
        try:
            self.manager.media.digits(cid)  # raises for a channel that was closed
        except MediaError:
            return False
        return True

    async def stop(self, cid: int) -> None:
        """Stop the music on ``cid`` if it plays there (a resume, a transfer)."""
        if cid not in self.playing:
            return
        self.playing.discard(cid)
        try:
            await self.manager.media.stop(cid)
        except MediaError as exc:
            logger.debug("stop music on %d: %s", cid, exc)
            return
        logger.info("music on hold stopped on media channel %d", cid)
