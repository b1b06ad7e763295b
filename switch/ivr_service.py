"""IvrService: loads the IVR programs the dial plan names and runs one interpreter per call.

DESIGN.md "The IVR language": a script is loaded only after a clean check, and a call keeps
the version it started with when the script is reloaded (``ivr_lang.runtime.ScriptStore``).

Rules:

* Rule 1 -- where programs come from: program ``NAME`` is the file ``NAME.ivr`` in the
  node's site directory ``<node.data_dir>/ivr/`` if it is there, else in the shipped demo
  directory ``ivr_lang/demo/`` (the hotline demo is ``hotline.ivr``). A site edits its own
  copy without touching the installation. A program the dial plan names that cannot be
  found, or that does not pass the checker, stops start-up with a ConfigError naming the
  dial-plan key (``dialplan.rules[N].program``).
* Rule 2 -- reload: every ``reload_interval_s`` (and on SIGHUP) changed files are checked
  again; a clean one replaces the running version for new calls, a broken one is logged
  with its diagnostics and the old version keeps running.
* Rule 3 -- one call: :meth:`run` takes the current version once, builds a
  :class:`~ivr_lang.live.LiveCall` over the caller's media channel and runs the
  interpreter with the hotline data sources wrapped by ``with_timeout``. Runtime errors go
  to the script's ``on error`` handler, then to the operator queue (the interpreter's
  Rule 1); an exception that escapes anyway is logged and the caller is hung up by the
  call manager, never left in silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr_lang.datasources import DataSources
from ivr_lang.diagnostics import Diagnostic, render
from ivr_lang.interpreter import CallResult, Interpreter, TraceEvent
from ivr_lang.live import CallControl, LiveCall
from ivr_lang.runtime import ScriptStore, with_timeout
from switch.routing_config import RoutingConfig

logger = logging.getLogger(__name__)

__all__ = ["DEMO_DIR", "IvrService", "programs_in"]

DEMO_DIR = Path(__file__).resolve().parent.parent / "ivr_lang" / "demo"


def programs_in(routing: RoutingConfig) -> list[str]:
    """The IVR program names the enabled dial-plan rules use (in rule order, unique)."""
    names: list[str] = []
    for rule in routing.dialplan.rules:
        if rule.target == "ivr" and rule.enabled and rule.program not in names:
            names.append(rule.program)
    return names


@dataclass(slots=True)
class _Source:
    path: Path
    mtime_ns: int


class IvrService:
    """Loads, reloads and runs IVR programs (see the module docstring for the rules).

    Args:
        media: the node's ``MediaService`` (its TTS renders ``say``).
        sources: data sources for ``lookup`` (``switch.hotline_sources``).
        site_dir: the site's program directory (``<data_dir>/ivr``).
        recordings_dir: where ``record``/``voicemail`` files go.
        tts_cache_dir: disk cache of rendered prompts, when the media service has no TTS
            yet and :meth:`start` gives it one (None: memory only).
        tagger: ``tagger(call_id, key, value)`` attaches a tag to the call's CDR
            (``CdrCollector.tag``).
        voice, rate: TTS voice and speed.
        budget: the interpreter's statement budget per call.
        reload_interval_s: how often files are checked for changes (0: never).
        clock: the calls' local wall time (calendars).
        media_errors: exceptions of a failed prompt, turned into script runtime errors.
    """

    def __init__(self, media: Any, sources: DataSources, *, site_dir: Path,
                 recordings_dir: Path, tts_cache_dir: Path | None = None,
                 tagger: Callable[[str, str, str], None] | None = None,
                 demo_dir: Path = DEMO_DIR, voice: str = "zh", rate: int = 160,
                 budget: int = 10_000, reload_interval_s: float = 2.0,
                 clock: Callable[[], dt.datetime] = dt.datetime.now,
                 media_errors: tuple[type[BaseException], ...] = (OSError,)) -> None:
        self.media = media
        self.sources = sources
        self.lookup = with_timeout(sources)
        self.site_dir = Path(site_dir)
        self.demo_dir = Path(demo_dir)
        self.recordings_dir = Path(recordings_dir)
        self.tts_cache_dir = tts_cache_dir
        self.tagger = tagger
        self.voice = voice
        self.rate = rate
        self.budget = budget
        self.reload_interval_s = reload_interval_s
        self.clock = clock
        self.media_errors = media_errors
        self.store = ScriptStore()
        self._files: dict[str, _Source] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._sighup = False
        self.stats = {"calls": 0, "running": 0, "statements": 0, "reloads": 0,
                      "rejected_reloads": 0}
        self.last_calls: list[tuple[str, CallResult, list[str]]] = []
        """The last few finished calls (call id, result, prompts heard): for logs/tests."""
        self.voicemail: Any = None
        """``switch.voicemail.VoicemailService``: files ``voicemail BOX`` recordings as
        messages of mailbox BOX (None: the files only)."""

    # ------------------------------------------------------------------ programs
    def find(self, name: str) -> Path | None:
        """Rule 1: the site copy of ``name`` first, then the shipped demo."""
        for directory in (self.site_dir, self.demo_dir):
            path = directory / f"{name}.ivr"
            if path.is_file():
                return path
        return None

    def load(self, name: str) -> list[Diagnostic]:
        """Check and load program ``name`` from its file; returns the diagnostics.

        Raises:
            FileNotFoundError: no file for ``name``.
        """
        path = self.find(name)
        if path is None:
            raise FileNotFoundError(f"no {name}.ivr in {self.site_dir} or {self.demo_dir}")
        stat = path.stat()
        text = path.read_text(encoding="utf-8")
        self._files[name] = _Source(path, stat.st_mtime_ns)
        diags = self.store.load(name, text, str(path))
        for d in diags:
            # file:line:column, the source line and a caret, as `softswitch ivr check` shows.
            (logger.error if d.is_error else logger.warning)("%s", render(d, text))
        return diags

    def has(self, name: str) -> bool:
        return self.store.current(name) is not None

    def version(self, name: str) -> int | None:
        script = self.store.current(name)
        return script.version if script is not None else None

    def start_programs(self, routing: RoutingConfig) -> None:
        """Rule 1: load every program the dial plan names, or raise ConfigError."""
        available: list[str] = []
        for name in programs_in(routing):
            try:
                self.load(name)
            except FileNotFoundError as exc:
                logger.error("IVR program %s: %s", name, exc)
                continue
            if self.has(name):
                available.append(name)
        routing.check_references(programs=available)

    def reload_changed(self) -> list[str]:
        """Rule 2: reload the programs whose file changed (or moved); returns their names."""
        changed = []
        for name, src in list(self._files.items()):
            path = self.find(name)
            try:
                mtime = path.stat().st_mtime_ns if path is not None else None
            except OSError:
                mtime = None
            if path is None or mtime is None or (path == src.path and mtime == src.mtime_ns):
                continue
            before = self.version(name)
            try:
                self.load(name)
            except OSError as exc:
                logger.error("IVR program %s not reloaded: %s", name, exc)
                continue
            if self.version(name) != before:
                self.stats["reloads"] += 1
                changed.append(name)
            else:
                self.stats["rejected_reloads"] += 1
        return changed

    # ------------------------------------------------------------------ lifecycle
    async def start(self, names: Collection[str] = ()) -> None:
        """Load ``names`` (if not loaded), give the media service a TTS, watch files."""
        for name in names:
            if not self.has(name):
                self.load(name)
        if getattr(self.media, "tts", None) is None:
            from switch.media.tts import CachedTts, EspeakTts, PromptCache

            self.media.tts = CachedTts(EspeakTts(), PromptCache(self.tts_cache_dir))
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        if self.reload_interval_s > 0:
            self._watcher = loop.create_task(self._watch(), name="ivr-reload")

    def _on_sighup(self) -> None:
        logger.info("SIGHUP: checking IVR programs for changes")
        self.reload_changed()

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval_s)
            self.reload_changed()

    # ------------------------------------------------------------------ calls
    async def run(self, name: str, cid: int, control: CallControl, *, caller: str,
                  called: str, call_id: str,
                  variables: Mapping[str, str] | None = None) -> CallResult:
        """Rule 3: run one call on the version of ``name`` current now; ``variables``
        preset the program's flow ``input`` variables (a campaign contact's fields)."""
        script = self.store.current(name)
        if script is None:
            raise LookupError(f"no IVR program loaded as {name!r}")
        tagger = self.tagger

        class _Tagged:
            """The call's control with tags going to the CDR collector."""

            async def transfer(self, target: str, timeout_s: float) -> str:
                return await control.transfer(target, timeout_s)

            def tag(self, key: str, value: str) -> None:
                if tagger is not None:
                    tagger(call_id, key, value)
                control.tag(key, value)

            def hangup(self) -> None:
                control.hangup()

            async def queue(self, name: str, *, skill: str | None, priority: int,
                            maxwait_s: float | None, tags: dict[str, Any]) -> str | None:
                queue = getattr(control, "queue", None)
                if queue is None:
                    return None
                return await queue(name, skill=skill, priority=priority, maxwait_s=maxwait_s,
                                   tags=tags)

        live = LiveCall(self.media, cid, _Tagged(), caller=caller, called=called,
                        call_id=call_id, recordings_dir=self.recordings_dir,
                        voice=self.voice, rate=self.rate, clock=self.clock,
                        media_errors=self.media_errors)
        if self.voicemail is not None:  # `voicemail BOX` messages go to the mailboxes
            live = self.voicemail.ivr_handle(live, call_id=call_id, caller=caller)

        def trace(ev: TraceEvent) -> None:
            if ev.kind in ("enter", "lookup", "tag", "error", "end", "branch"):
                logger.info("ivr %s [%s] %s %s", call_id, ev.step, ev.kind, ev.detail)

        interp = Interpreter(script.program, live, self.lookup, budget=self.budget,
                             trace=trace, variables=variables)
        self.stats["calls"] += 1
        self.stats["running"] += 1
        logger.info("ivr %s: %s version %d for %s -> %s", call_id, name, script.version,
                    caller, called)
        try:
            result = await interp.run()
        except asyncio.CancelledError:
            live.gone()
            logger.info("ivr %s: ended by hang-up in step %s", call_id, interp.step)
            raise
        finally:
            self.stats["running"] -= 1
            self.stats["statements"] += interp.statements
        logger.info("ivr %s: left the IVR (%s) in step %s after %d statements; tags %s",
                    call_id, result.reason, result.step, result.statements, result.tags)
        self.last_calls = [*self.last_calls[-99:], (call_id, result, list(live.prompts))]
        return result
