"""Exception hierarchy of switch.media (STYLE.md section 4.5: one root per package).

Every error the media layer raises on purpose derives from :class:`MediaError`, so the IVR and
the channel code can catch one type when a prompt, a recording or a TTS render fails and go on
with the call (play silence, take the error branch) instead of dropping it.
"""

from __future__ import annotations

__all__ = [
    "MediaError",
    "PromptNotFoundError",
    "RecorderError",
    "TtsError",
    "WavFormatError",
]


class MediaError(Exception):
    """Root of all media-layer errors."""


class WavFormatError(MediaError):
    """A WAV file is malformed or uses an encoding we do not decode."""


class PromptNotFoundError(MediaError, FileNotFoundError):
    """A prompt file does not exist or cannot be read."""


class RecorderError(MediaError):
    """A recording cannot be written (bad shape, closed recorder, I/O failure)."""


class TtsError(MediaError):
    """Text-to-speech rendering failed (no engine, unknown voice, empty audio)."""
