"""What a queued caller hears: music on hold and position/expected-wait announcements.

Part of the live ACD (``switch.queues`` Rule 1). Rules:

* Rule 1 -- one thing at a time per caller: every media step of a caller takes the caller's
  lock, so an announcement stops the music, speaks, and starts the music again without
  racing a second announcement or the bridge.
* Rule 2 -- the bridge wins: a caller marked inactive (bridged, or leaving) gets no more
  music or speech; the shell also cancels the caller's pending media tasks.
* Rule 3 -- a caller who cannot hear keeps its place: a failed prompt or a channel closed by
  the hang-up (``media_errors``) is ignored here; the queue goes on.
* Rule 4 -- music on hold is a call-progress tone of the configured profile (``ringback`` by
  default, ``switch.queue_config.MOH_TONES``) or a prompt file played in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from switch.queue_config import MOH_TONES

logger = logging.getLogger(__name__)

__all__ = ["HeldCaller", "HoldMedia", "announcement_text"]


def announcement_text(position: int | None, expected_wait_s: float | None,
                      callback_key: str = "") -> str:
    """The position/expected-wait announcement, in Chinese ("您前面还有3位，预计等待2分钟"),
    with the callback offer when the queue has a ``callback_key``.

    ``position`` is 1-based (1: nobody ahead); the wait is rounded up to whole minutes.
    Returns "" when there is nothing to say.
    """
    parts = []
    if position is not None:
        ahead = position - 1
        parts.append("您是下一位" if ahead <= 0 else f"您前面还有{ahead}位")
    if expected_wait_s is not None:
        parts.append(f"预计等待{max(1, math.ceil(expected_wait_s / 60))}分钟")
    text = "，".join(parts) + "。" if parts else ""
    return text + f"如需回电，请按{callback_key}。" if callback_key else text


@dataclass(eq=False, slots=True)
class HeldCaller:
    """A caller waiting in a queue (owned by ``switch.queues.QueueService``).

    Attributes:
        call: the ``switch.b2bua.Call``.
        queue: the queue it waits in now (changes on an overflow to another queue).
        since: when it entered (wall clock).
        done: resolved with the ``QueueOutcome`` when the wait ends.
        moh: music on hold (Rule 4).
        tags: the IVR's tags (screen pop).
        active: False once bridged or leaving (Rule 2).
    """

    call: Any
    queue: str
    since: float
    done: asyncio.Future[Any]
    moh: str
    tags: dict[str, Any]
    active: bool = True
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class HoldMedia:
    """Plays music and announcements to held callers through a ``MediaService``.

    Args:
        voice, rate: the TTS voice and speed of announcements.
        media_errors: exceptions ignored when a prompt fails or the channel is gone.
    """

    def __init__(self, *, voice: str = "zh", rate: int = 160,
                 media_errors: tuple[type[BaseException], ...] = (OSError,)) -> None:
        self.voice = voice
        self.rate = rate
        self.media_errors = media_errors

    async def _start_music(self, media: Any, held: HeldCaller, cid: int) -> None:
        if held.moh in MOH_TONES:
            await media.tone(cid, held.moh)
        else:
            await media.play(cid, [held.moh], loop=True)

    async def music(self, media: Any, held: HeldCaller) -> None:
        """Start the caller's music on hold (Rules 1, 2, 4)."""
        cid = held.call.a.media_id
        if cid is None:
            return
        async with held.lock:
            if held.active:
                with contextlib.suppress(*self.media_errors):
                    await self._start_music(media, held, cid)

    async def silence(self, media: Any, cid: int) -> None:
        """Stop whatever plays to the caller (it leaves the queue)."""
        with contextlib.suppress(*self.media_errors):
            await media.stop(cid)

    async def announce(self, media: Any, held: HeldCaller, text: str) -> None:
        """Stop the music, speak ``text``, start the music again (Rules 1-3)."""
        cid = held.call.a.media_id
        if cid is None or getattr(media, "tts", None) is None:
            return
        async with held.lock:
            if not held.active:
                return
            logger.info("call %s: announce %s", held.call.id, text)
            with contextlib.suppress(*self.media_errors):
                await media.stop(cid)
                await (await media.say(cid, text, voice=self.voice, rate=self.rate))
                if held.active:
                    await self._start_music(media, held, cid)
