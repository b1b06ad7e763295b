"""LiveCall: the interpreter's CallHandle over a real channel (media service + call control).

DESIGN.md "Call model": IVR programs drive a channel through one CallHandle API. This is
the live implementation of :class:`~ivr_lang.interpreter.CallHandle`; the simulator's
FakeCall is the other. It is one of the two ivr_lang modules allowed to import asyncio
(with runtime.py): the interpreter stays pure.

Rules:

* Rule 1 -- prompts. ``say`` renders text with the media service's TTS (Chinese text is
  read through pinyin by ``switch.media.tts``) and ``play`` plays a prompt file; both
  return only when the prompt has ended. With barge-in, the engine stops the prompt on the
  first key (``FinishReason.BARGED_IN``) and the keys waiting on the channel's digit queue
  are returned. Keys already waiting when a barge-in prompt would start are type-ahead:
  the prompt is skipped and they are returned at once (a caller who knows the menu is not
  made to listen to it). After a prompt without barge-in the keys pressed during it are
  discarded, as the simulator does.
* Rule 2 -- collection. ``collect`` reads the channel's digit queue with the first-digit
  timeout, then the inter-digit timeout after each key (ITU-T Q.24 style digit timing),
  until ``max_digits`` keys or an end key; the end key is not returned. When the entry is
  complete but the step has an end key, the caller will press it anyway ("six digits, then
  #"): a key arriving within ``END_KEY_GRACE_S`` is consumed if it is an end key, and kept
  for the next prompt or collection if not -- so a late "#" never barges into the next
  prompt.
* Rule 3 -- the caller may hang up at any moment: the owner (switch.ivr_service) cancels
  the task running the interpreter, so the pending await raises CancelledError; every
  method also raises :class:`~ivr_lang.interpreter.CallerHungUp` once :meth:`gone` was
  called, and stops the prompt it started.
* Rule 4 -- call control (transfer, queue, tags for the CDR, hang-up) is not the media
  service's business: it goes through the :class:`CallControl` the switch passes in.
* Rule 5 -- the queue statement goes to the live ACD through the call control's ``queue``
  method (``switch.queues``: music on hold, announcements, agents rung, the caller bridged)
  and returns its outcome: "answered", "timeout", "full" or "closed". Only when the switch
  has no ACD queue of that name (the control returns None, or has no ``queue`` method)
  does :meth:`enqueue` play ringback as hold for at most ``HOLD_S`` seconds (bounded by
  the statement's ``maxwait``) and return "closed", so the script's ``on closed`` branch
  (voicemail in the demo) runs.
* Rule 6 -- a prompt that cannot be played (``media_errors``) raises IvrRuntimeError, which
  the interpreter sends to the script's ``on error`` handler, then the operator queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .expr import IvrRuntimeError
from .interpreter import CallerHungUp

logger = logging.getLogger(__name__)

__all__ = ["HOLD_S", "CallControl", "LiveCall", "beep_pcm", "is_silent_wav"]

HOLD_S = 3.0
"""How long :meth:`LiveCall.enqueue` plays hold before answering "closed" when the switch
has no ACD queue of that name (Rule 5)."""
SILENCE_PEAK = 300
"""A recording whose caller side never exceeds this peak (of 32767) counts as empty."""
BARRED_WAIT_S = 0.3
"""After a barge-in, how long to wait for the key that stopped the prompt to be queued."""
END_KEY_GRACE_S = 1.0
"""After ``max_digits`` keys, how long an end key may still come and be consumed (Rule 2)."""


class CallControl(Protocol):
    """What LiveCall needs from the call manager (implemented by switch.ivr_service)."""

    async def transfer(self, target: str, timeout_s: float) -> str:
        """Blind transfer: "connected", "busy", "noanswer" or "fail"."""
        ...

    def tag(self, key: str, value: str) -> None:
        """Attach data to the call's CDR."""
        ...

    def hangup(self) -> None:
        """End the call from the switch side."""
        ...

    # Optional (Rule 5): ``async def queue(name, *, skill, priority, maxwait_s, tags)``
    # returns "answered", "timeout", "full", "closed", or None when there is no such queue.


def beep_pcm(freq_hz: float = 1000.0, ms: int = 250, amplitude: int = 8000) -> np.ndarray:
    """The record beep: a short sine at 8 kHz, int16 (ITU-T E.180 uses 1000-1400 Hz)."""
    n = 8 * ms
    t = np.arange(n) / 8000.0
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def is_silent_wav(path: str | Path, peak: int = SILENCE_PEAK) -> bool:
    """Whether the caller side (left channel, or the only one) of a WAV file is silent."""
    try:
        with wave.open(str(path), "rb") as w:
            channels = w.getnchannels()
            data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    except (OSError, wave.Error, EOFError):
        return True
    if data.size == 0:
        return True
    caller = data[::channels] if channels > 1 else data
    return int(np.abs(caller.astype(np.int32)).max()) <= peak


class LiveCall:
    """CallHandle of one answered channel (see the module docstring for the rules).

    Args:
        media: the ``switch.media.service.MediaService`` the channel lives on.
        cid: the caller leg's media channel id.
        control: call control (transfer, tags, hang-up) for this call.
        caller, called: the numbers the script sees as ``caller`` / ``called``.
        call_id: used to name recordings.
        recordings_dir: where ``record`` and ``voicemail`` write their WAV files.
        voice, rate: TTS voice and speed (espeak-ng words per minute).
        clock: the call's local wall time for calendars.
        media_errors: exceptions of a prompt that cannot be played (a missing file, a TTS
            failure); they become script runtime errors, so ``on error`` runs (Rule 6).
            The same exceptions are ignored when stopping media on a channel the hang-up
            has already closed.
    """

    def __init__(self, media: Any, cid: int, control: CallControl, *, caller: str,
                 called: str, call_id: str, recordings_dir: Path, voice: str = "zh",
                 rate: int = 160,
                 clock: Callable[[], _dt.datetime] = _dt.datetime.now,
                 media_errors: tuple[type[BaseException], ...] = (OSError,)) -> None:
        self.media = media
        self.cid = cid
        self.control = control
        self.caller = caller
        self.called = called
        self.call_id = call_id
        self.recordings_dir = Path(recordings_dir)
        self.voice = voice
        self.rate = rate
        self.clock = clock
        self.media_errors = media_errors
        self.prompts: list[str] = []
        """Every prompt started on this call, in order (say text or play file): for logs
        and tests, so a test can check what the caller heard."""
        self._gone = False
        self._held = ""
        self._recordings = 0

    # ------------------------------------------------------------------ plumbing
    def gone(self) -> None:
        """The caller hung up: every later method raises CallerHungUp (Rule 3)."""
        self._gone = True

    def _check(self) -> None:
        if self._gone:
            raise CallerHungUp()

    def local_time(self) -> _dt.datetime:
        return self.clock()

    def _queue(self) -> asyncio.Queue[Any]:
        return self.media.digits(self.cid)

    def _waiting(self) -> bool:
        return bool(self._held) or not self._queue().empty()

    async def _next_key(self, timeout_s: float) -> str | None:
        """The next key (held first), or None after ``timeout_s``."""
        if self._held:
            key, self._held = self._held[0], self._held[1:]
            return key
        try:
            event = await asyncio.wait_for(self._queue().get(), timeout_s)
        except TimeoutError:
            return None
        return str(event.digit)

    def _drain(self) -> str:
        q = self._queue()
        keys = [self._held]
        self._held = ""
        while not q.empty():
            keys.append(q.get_nowait().digit)
        return "".join(keys)

    async def _finish_prompt(self, fut: asyncio.Future[Any], bargein: bool) -> str:
        try:
            reason = await fut
        except asyncio.CancelledError:
            with contextlib.suppress(*self.media_errors):  # the channel may be closed already
                await self.media.stop(self.cid)
            raise
        self._check()
        if not bargein:
            self._drain()
            return ""
        if getattr(reason, "value", reason) == "barged_in" and not self._waiting():
            # The engine stops the prompt on the key; its queue entry may lag a moment.
            with contextlib.suppress(TimeoutError):
                digit = await asyncio.wait_for(self._queue().get(), BARRED_WAIT_S)
                return digit.digit + self._drain()
        return self._drain()

    # ------------------------------------------------------------------ prompts
    async def say(self, text: str, *, bargein: bool) -> str:
        """Rule 1: speak ``text``; with barge-in, the keys that stopped it."""
        self._check()
        if bargein and self._waiting():
            return self._drain()  # type-ahead
        self.prompts.append(text)
        logger.info("ivr %s say: %s", self.call_id, text)
        try:
            fut = await self.media.say(self.cid, text, voice=self.voice, rate=self.rate,
                                       barge_in=bargein)
        except self.media_errors as exc:
            raise IvrRuntimeError(f"cannot say {text!r}: {exc}") from exc
        return await self._finish_prompt(fut, bargein)

    async def play(self, file: str, *, bargein: bool) -> str:
        """Rule 1: play a prompt file (a name under the prompt directory, or a path)."""
        self._check()
        if bargein and self._waiting():
            return self._drain()
        self.prompts.append(file)
        logger.info("ivr %s play: %s", self.call_id, file)
        try:
            fut = await self.media.play(self.cid, [file], barge_in=bargein)
        except self.media_errors as exc:
            raise IvrRuntimeError(f"cannot play {file}: {exc}") from exc
        return await self._finish_prompt(fut, bargein)

    # ------------------------------------------------------------------ digits
    async def collect(self, *, max_digits: int, timeout_s: float, interdigit_s: float,
                      end_keys: str, first: str = "") -> str:
        """Rule 2: collect digits with first-digit and inter-digit timeouts."""
        self._check()
        keys = ""
        ended = False
        rest = first
        while rest and not ended and len(keys) < max_digits:
            key, rest = rest[0], rest[1:]
            if key in end_keys:
                ended = True
            else:
                keys += key
        if rest and not ended and rest[0] in end_keys:
            ended, rest = True, rest[1:]
        self._held = rest + self._held  # a burst longer than the entry: later input
        while not ended and len(keys) < max_digits:
            key = await self._next_key(interdigit_s if keys else timeout_s)
            self._check()
            if key is None:
                break
            if key in end_keys:
                ended = True
            else:
                keys += key
        if len(keys) >= max_digits and end_keys and not ended:
            key = await self._next_key(min(END_KEY_GRACE_S, interdigit_s))
            self._check()
            if key is not None and key not in end_keys:
                self._held = key + self._held
        logger.info("ivr %s collected %r", self.call_id, keys)
        return keys

    # ------------------------------------------------------------------ call control
    async def transfer(self, target: str, *, mode: str, timeout_s: float) -> str:
        """Rule 4: a blind connect to ``target`` (an extension) through the call manager."""
        self._check()
        if mode != "blind":
            logger.warning("ivr %s: transfer mode %s runs as blind", self.call_id, mode)
        outcome = await self.control.transfer(target, timeout_s)
        logger.info("ivr %s transfer to %s: %s", self.call_id, target, outcome)
        return outcome

    async def enqueue(self, queue: str, *, skill: str | None, priority: int,
                      maxwait_s: float | None, tags: dict[str, Any]) -> str:
        """Rule 5: the live ACD's outcome, or a brief hold and "closed" without one."""
        self._check()
        queue_fn = getattr(self.control, "queue", None)
        if queue_fn is not None:
            outcome = await queue_fn(queue, skill=skill, priority=priority,
                                     maxwait_s=maxwait_s, tags=tags)
            if outcome is not None:
                self._check()
                self._drain()
                logger.info("ivr %s queue %s: %s", self.call_id, queue, outcome)
                return str(outcome)
        hold = min(HOLD_S, maxwait_s) if maxwait_s is not None else HOLD_S
        logger.info("ivr %s queue %s (skill %s, priority %d): no ACD, closed after %.1fs hold",
                    self.call_id, queue, skill, priority, hold)
        fut = await self.media.tone(self.cid, "ringback")
        try:
            await asyncio.sleep(hold)
        finally:
            with contextlib.suppress(*self.media_errors):
                await self.media.stop(self.cid)
        await fut
        self._check()
        self._drain()
        return "closed"

    async def record(self, *, maxlen_s: float, beep: bool, end_keys: str,
                     mailbox: str | None) -> str | None:
        """Record the caller to a WAV under ``recordings_dir``; None when silent."""
        self._check()
        self._recordings += 1
        sub = mailbox or "record"
        path = self.recordings_dir / sub / f"{self.call_id}-{self._recordings}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        if beep:
            await (await self.media.play(self.cid, [beep_pcm()]))
        self._drain()
        await self.media.record_start(self.cid, path, mode="stereo")
        q = self._queue()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + maxlen_s
        written: str | None = None
        try:
            while (left := deadline - loop.time()) > 0:
                try:
                    event = await asyncio.wait_for(q.get(), left)
                except TimeoutError:
                    break
                if event.digit in end_keys:
                    break
        finally:
            with contextlib.suppress(*self.media_errors):
                written = await self.media.record_stop(self.cid)
        self._check()
        written_path = Path(written) if written else path
        if await asyncio.to_thread(is_silent_wav, written_path):
            with contextlib.suppress(OSError):
                written_path.unlink()
            logger.info("ivr %s: recording empty", self.call_id)
            return None
        logger.info("ivr %s: recorded %s", self.call_id, written_path)
        return str(written_path)

    async def tag(self, key: str, value: Any) -> None:
        """Rule 4: attach ``key = value`` to the call's CDR (values as text)."""
        self._check()
        if isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = "" if value is None else str(value)
        self.control.tag(key, text)

    async def hangup(self) -> None:
        """Rule 4: the switch ends the call (BYE to the caller)."""
        if self._gone:
            return
        self.control.hangup()
