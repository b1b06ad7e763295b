"""The async edge of ivr_lang: timeouts, the HTTP fetcher, script versions for live calls.

This is one of the two ivr_lang modules allowed to import asyncio (the other is live.py):
the interpreter stays pure and gets its data-source timeout from :func:`with_timeout`.

Rules for live operation (DESIGN.md "The IVR language"):

* Rule 1 -- a script is loaded only after a clean check: :meth:`ScriptStore.load` parses
  and checks the new text and, if any error is found, keeps the running version and
  returns the diagnostics (a bad edit never replaces a working script).
* Rule 2 -- a call keeps the version it started with: :meth:`ScriptStore.current` returns
  an immutable :class:`LoadedScript`; :func:`run_call` takes it once at the start, so a
  reload in the middle of a call changes nothing for that call (atomic swap of a reference).
* Rule 3 -- a data source that is slower than the lookup's ``timeout`` is cancelled and the
  lookup takes ``on error`` (asyncio.wait_for; the cancelled source sees CancelledError).
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from dataclasses import dataclass
from typing import Any

from . import ast as A
from .check import check_source, has_errors
from .datasources import DataSources
from .diagnostics import Diagnostic
from .interpreter import CallHandle, CallResult, DataSourceError, Interpreter, LookupFn

logger = logging.getLogger(__name__)

__all__ = ["LoadedScript", "ScriptStore", "run_call", "urllib_fetcher", "with_timeout"]

MAX_HTTP_BODY = 1 << 20


def with_timeout(sources: DataSources) -> LookupFn:
    """A lookup function enforcing each lookup's timeout with asyncio.wait_for (Rule 3)."""

    async def lookup(src: A.SourceDecl, args: list[Any], timeout_s: float) -> Any:
        try:
            return await asyncio.wait_for(sources.lookup(src, args, timeout_s), timeout_s)
        except TimeoutError as exc:
            raise DataSourceError(f"timed out after {timeout_s:g}s") from exc

    return lookup


async def urllib_fetcher(url: str, timeout_s: float) -> Any:
    """GET a JSON document with urllib in a worker thread (aiohttp is not a dependency)."""

    def fetch() -> Any:
        req = urllib.request.Request(url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            body = resp.read(MAX_HTTP_BODY + 1)
        if len(body) > MAX_HTTP_BODY:
            raise DataSourceError("HTTP response too large")
        return json.loads(body.decode("utf-8"))

    try:
        return await asyncio.to_thread(fetch)
    except (OSError, ValueError) as exc:
        raise DataSourceError(f"http: {exc}") from exc


@dataclass(frozen=True, slots=True)
class LoadedScript:
    """One checked version of a script; immutable, shared by the calls that started on it."""

    program: A.Program
    version: int
    warnings: tuple[Diagnostic, ...]


class ScriptStore:
    """Holds the running version of each named script; reloads only clean scripts (Rule 1)."""

    def __init__(self) -> None:
        self._scripts: dict[str, LoadedScript] = {}

    def load(self, name: str, text: str, filename: str | None = None) -> list[Diagnostic]:
        """Check ``text``; if clean, make it the version new calls get. Returns diagnostics."""
        program, diags = check_source(text, filename or name)
        if program is None or has_errors(diags):
            logger.warning("script %s not loaded: %d problem(s)", name,
                           sum(d.is_error for d in diags))
            return diags
        old = self._scripts.get(name)
        version = old.version + 1 if old else 1
        self._scripts[name] = LoadedScript(program, version, tuple(diags))
        logger.info("script %s loaded as version %d", name, version)
        return diags

    def current(self, name: str) -> LoadedScript | None:
        return self._scripts.get(name)


async def run_call(store: ScriptStore, name: str, call: CallHandle, sources: DataSources,
                   *, budget: int = 10_000) -> CallResult:
    """Run one live call on the version of ``name`` current at its start (Rule 2)."""
    script = store.current(name)
    if script is None:
        raise LookupError(f"no script loaded as {name!r}")
    interp = Interpreter(script.program, call, with_timeout(sources), budget=budget)
    return await interp.run()
