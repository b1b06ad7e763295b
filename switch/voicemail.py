"""Voicemail: the switch answers, plays a greeting and a beep, and records a message.

Issue 4 point 7. The call manager (``switch.b2bua``) answers the caller and runs
:meth:`VoicemailService.record` on the caller's media channel, for a dial-plan voicemail
target (the after-hours rule of the demo) or when an extension does not take a call
(``switch.forwarding`` Rule 3).

Rules:

* Rule 1 -- a mailbox exists when it is a SIP user's name or one of ``[voicemail] boxes``.
* Rule 2 -- the message: the greeting (TTS, Chinese by default) and a 1 kHz beep (the
  IVR's record beep, ``ivr_lang.live.beep_pcm``), then the caller is recorded (stereo WAV:
  the caller on the left channel, what the switch played on the right) until an end key
  (``#``), ``max_s`` seconds, or the hang-up. Keys pressed during the greeting are
  discarded so a key cannot end a message before it starts.
* Rule 3 -- a hang-up ends the recording like ``#`` does: the file is valid whenever the
  process stops (``switch.media.recorder`` Rule 1) and the message is stored even though
  the call's task is being cancelled (the store runs shielded).
* Rule 4 -- a message shorter than ``min_s`` or with a silent caller side
  (``ivr_lang.live.is_silent_wav``) is discarded: its file is deleted and no row is kept.
* Rule 5 -- kept messages are rows of ``voicemail_messages`` (box, caller, time, duration,
  file path, how they ended), and the call's CDR gets the file as its recording reference
  (``RecordingStarted`` on the bus).
* Rule 6 -- the IVR's ``voicemail BOX`` statement (the hotline's after-hours message) files
  its recording in mailbox BOX the same way (``ivr_handle``; Rules 4 and 5), so
  ``softswitch voicemail list`` shows those messages too.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr_lang.live import beep_pcm, is_silent_wav
from storage.db import StorageError
from switch.config import VoicemailConfig
from switch.media.errors import MediaError
from switch.router import Voicemail

logger = logging.getLogger(__name__)

__all__ = ["Recorded", "VoicemailService", "wav_seconds"]

_STOP_ERRORS = (MediaError, OSError)
GREETING_RATE = 160
"""TTS speed of the greeting (espeak-ng words per minute; the IVR's default)."""


def wav_seconds(path: str | Path) -> float:
    """Duration of a WAV file in seconds (0.0 when it cannot be read)."""
    try:
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate()
            return w.getnframes() / rate if rate else 0.0
    except (OSError, wave.Error, EOFError):
        return 0.0


@dataclass(frozen=True, slots=True)
class Recorded:
    """What one voicemail call produced (``message_id`` None: discarded, Rule 4)."""

    path: str
    duration_s: float
    ended_by: str
    message_id: int | None


class VoicemailService:
    """Records messages (see the module docstring for the rules).

    Args:
        media: the node's ``MediaService``.
        repo: where messages are stored (``storage.voicemail_repository``); None keeps
            the files only (tests of the media part).
        directory: mailbox files go to ``directory/<box>/``.
        config: the ``[voicemail]`` table.
        user_exists: Rule 1, ``name -> bool`` (the registration service's user cache).
        wall: wall clock for file names and message times.
    """

    def __init__(self, media: Any, repo: Any, *, directory: Path, config: VoicemailConfig,
                 user_exists: Callable[[str], bool] = lambda _name: False,
                 wall: Callable[[], float] | None = None) -> None:
        self.media = media
        self.repo = repo
        self.directory = Path(directory)
        self.config = config
        self.user_exists = user_exists
        self.wall = wall or (lambda: dt.datetime.now(dt.UTC).timestamp())
        self.stats = {"calls": 0, "kept": 0, "discarded": 0, "store_failed": 0}
        self.last: list[Recorded] = []
        """The last few results (for logs and tests)."""
        self._storing: set[asyncio.Task[Any]] = set()

    def has_box(self, box: str) -> bool:
        """Rule 1."""
        return bool(box) and (box in self.config.boxes or self.user_exists(box))

    def serves(self, target: object) -> bool:
        """Whether a dial-plan target is one of our mailboxes (the call manager asks)."""
        return isinstance(target, Voicemail) and self.has_box(target.box)

    def _path(self, box: str, call_id: str) -> Path:
        stamp = dt.datetime.fromtimestamp(self.wall(), dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in box)
        return self.directory / safe / f"{stamp}-{call_id}.wav"

    async def warm_up(self) -> None:
        """Render the greeting once (the TTS caches it) so no caller waits for it."""
        tts = getattr(self.media, "tts", None)
        if tts is None:
            return
        try:
            pcm = await tts.render(self.config.greeting, self.config.voice, GREETING_RATE)
        except MediaError as exc:
            logger.warning("voicemail greeting cannot be rendered: %s", exc)
            return
        logger.info("voicemail greeting ready (%.1f s)", len(pcm) / 8000)

    def _drain(self, cid: int) -> None:
        with contextlib.suppress(MediaError):
            queue = self.media.digits(cid)
            while not queue.empty():
                queue.get_nowait()

    async def _prompt(self, cid: int) -> None:
        """Rule 2: stop what plays (ringback), greeting, beep."""
        with contextlib.suppress(*_STOP_ERRORS):
            await self.media.stop(cid)
        try:
            await (await self.media.say(cid, self.config.greeting, voice=self.config.voice,
                                        rate=GREETING_RATE))
        except _STOP_ERRORS as exc:  # no TTS here: the beep alone still says "speak now"
            logger.warning("voicemail greeting not played: %s", exc)
        await (await self.media.play(cid, [beep_pcm()]))
        self._drain(cid)

    async def _wait_end(self, cid: int) -> str:
        queue = self.media.digits(cid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.max_s
        while (left := deadline - loop.time()) > 0:
            try:
                event = await asyncio.wait_for(queue.get(), left)
            except TimeoutError:
                break
            if event.digit in self.config.end_keys:
                return "key"
        return "max_length"

    async def record(self, call_id: str, cid: int, *, box: str, caller: str,
                     on_recording: Callable[[str], None] | None = None) -> Recorded:
        """Run one voicemail call on media channel ``cid`` (Rules 2-5).

        Raises:
            CancelledError: the caller hung up (the message is stored first, Rule 3).
            MediaError: the channel went away before recording started.
        """
        self.stats["calls"] += 1
        await self._prompt(cid)
        path = self._path(box, call_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        written = await self.media.record_start(cid, path, mode="stereo")
        started = self.wall()
        if on_recording is not None:
            on_recording(str(written))
        logger.info("voicemail %s: recording %s for box %s from %s", call_id, written, box,
                    caller)
        try:
            ended_by = await self._wait_end(cid)
        except asyncio.CancelledError:
            task = asyncio.get_running_loop().create_task(
                self._finish(call_id, cid, box, caller, Path(written), "hangup", started,
                             on_recording), name=f"voicemail-store-{call_id}")
            self._storing.add(task)
            task.add_done_callback(self._storing.discard)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
            raise
        return await self._finish(call_id, cid, box, caller, Path(written), ended_by, started,
                                  on_recording)

    async def _finish(self, call_id: str, cid: int, box: str, caller: str, path: Path,
                      ended_by: str, started: float,
                      on_recording: Callable[[str], None] | None) -> Recorded:
        try:
            await self.media.record_stop(cid)
        except MediaError:
            # The hang-up closed the channel first, which closes the recorder; give a
            # worker process the moment it needs to finish that close.
            await asyncio.sleep(0.2)
        return await self.file_message(call_id, box, caller, path, ended_by, started,
                                       on_recording)

    async def file_message(self, call_id: str, box: str, caller: str, path: Path,
                           ended_by: str, started: float,
                           on_recording: Callable[[str], None] | None = None) -> Recorded:
        """Rules 4 and 5 for a finished recording: discard it or store it in ``box``."""
        seconds = await asyncio.to_thread(wav_seconds, path)
        silent = await asyncio.to_thread(is_silent_wav, path)
        if seconds < self.config.min_s or silent:
            with contextlib.suppress(OSError):
                path.unlink()
            if on_recording is not None:
                on_recording("")
            self.stats["discarded"] += 1
            logger.info("voicemail %s: message for %s discarded (%.2f s%s)", call_id, box,
                        seconds, ", silent" if silent else "")
            return self._remember(Recorded(str(path), seconds, ended_by, None))
        message_id = None
        if self.repo is not None:
            try:
                info = await self.repo.add(box, caller, call_id, seconds, str(path), ended_by,
                                           dt.datetime.fromtimestamp(started, dt.UTC))
                message_id = info.id
            except StorageError as exc:
                self.stats["store_failed"] += 1
                logger.error("voicemail %s: message %s not stored (the file is kept): %s",
                             call_id, path, exc)
        self.stats["kept"] += 1
        logger.info("voicemail %s: message %s for box %s from %s, %.1f s, ended by %s",
                    call_id, message_id, box, caller, seconds, ended_by)
        return self._remember(Recorded(str(path), seconds, ended_by, message_id))

    def _remember(self, result: Recorded) -> Recorded:
        self.last = [*self.last[-99:], result]
        return result

    def ivr_handle(self, live: Any, *, call_id: str, caller: str) -> Any:
        """Wrap an IVR call handle (``ivr_lang.live.LiveCall``) so that messages its
        ``voicemail BOX`` statement records are filed in mailbox BOX too (Rule 6)."""
        return _MailboxCall(live, self, call_id, caller)


class _MailboxCall:
    """Rule 6: an IVR call handle whose ``voicemail`` recordings become messages."""

    def __init__(self, live: Any, service: VoicemailService, call_id: str,
                 caller: str) -> None:
        self._live = live
        self._service = service
        self._call_id = call_id
        self._caller = caller

    def __getattr__(self, name: str) -> Any:
        return getattr(self._live, name)

    async def record(self, *, maxlen_s: float, beep: bool, end_keys: str,
                     mailbox: str | None) -> str | None:
        started = self._service.wall()
        try:
            path = await self._live.record(maxlen_s=maxlen_s, beep=beep, end_keys=end_keys,
                                           mailbox=mailbox)
        except asyncio.CancelledError:
            if mailbox is not None:  # hung up while speaking: keep what was said
                await self._file_after_hangup(mailbox, started)
            raise
        if path is not None and mailbox is not None:
            await self._service.file_message(self._call_id, mailbox, self._caller, Path(path),
                                             "ivr", started)
        return path

    async def _file_after_hangup(self, mailbox: str, started: float) -> None:
        """The handle named its file ``<recordings_dir>/<box>/<call_id>-<n>.wav``: file the
        newest one of this call (shielded: the call's task is being cancelled)."""
        folder = Path(self._live.recordings_dir) / mailbox
        found = sorted(folder.glob(f"{self._call_id}-*.wav"),
                       key=lambda p: p.stat().st_mtime_ns)
        if not found:
            return
        task = asyncio.get_running_loop().create_task(self._service.file_message(
            self._call_id, mailbox, self._caller, found[-1], "hangup", started))
        self._service._storing.add(task)
        task.add_done_callback(self._service._storing.discard)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)


class VoicemailFeatures:
    """Voicemail and call forwarding wired into a node's call manager (``switch.app``).

    Args:
        db: the node's database (messages and forwarding settings).
        media: the node's ``MediaService``.
        config: ``[voicemail]``.
        directory: where mailbox files go (``<recordings_dir>/voicemail``).
        user_exists: Rule 1's user check (``RegistrationService.lookup_user``).
        refresh_s: how often forwarding settings are reloaded (``switch.forwarding``
            Rule 5).
    """

    def __init__(self, db: Any, media: Any, config: VoicemailConfig, directory: Path, *,
                 user_exists: Callable[[str], bool], refresh_s: float = 2.0) -> None:
        from storage.voicemail_repository import ForwardRepository, VoicemailRepository
        from switch.forwarding import Forwarding, ForwardingTable

        self.service = VoicemailService(media, VoicemailRepository(db), directory=directory,
                                        config=config, user_exists=user_exists)
        self.table = ForwardingTable(ForwardRepository(db).all, refresh_s)
        self.forwarding = Forwarding(self.table, self.service, fallback=config.enabled,
                                     limit=config.forward_limit)
        self._warm: asyncio.Task[None] | None = None

    async def start(self, calls: Any) -> None:
        """Load the forwarding settings and hook both features into ``calls``; render the
        greeting in the background (when the node is idle) so that callers do not wait."""
        await self.service.repo.ensure_schema()
        await self.table.start()
        calls.voicemail = self.service
        calls.forwarding = self.forwarding
        self._warm = asyncio.get_running_loop().create_task(self._warm_when_idle(calls),
                                                            name="voicemail-greeting")

    async def _warm_when_idle(self, calls: Any, quiet_s: float = 2.0) -> None:
        """Render the greeting once no call has been up for ``quiet_s``: a render competes
        for the CPU and the TTS thread with the prompts of calls in progress."""
        quiet = 0.0
        while quiet < quiet_s:
            await asyncio.sleep(0.5)
            quiet = quiet + 0.5 if not calls.calls else 0.0
        await self.service.warm_up()

    async def stop(self) -> None:
        await self.table.stop()
        if self._warm is not None:
            self._warm.cancel()
            await asyncio.gather(self._warm, return_exceptions=True)
