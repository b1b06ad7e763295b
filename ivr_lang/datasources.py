"""Data sources a script may ``lookup``: SQL on storage, Python functions, HTTP JSON.

A script declares each source with its parameters::

    source 住户(phone) sql "SELECT name, unit, vip FROM residents WHERE phone = :phone"
    source 新建工单(account, kind) python "create_work_order"
    source 工单状态(number) http "http://crm.example/api/orders/{number}"

and :class:`DataSources` runs them through what the deployment injects: an async SQL runner
(storage/ provides one over SQLAlchemy), a registry of Python callables by name, and an
async HTTP JSON fetcher (runtime.urllib_fetcher, since aiohttp is not a dependency). This
module does no I/O itself and enforces no timeout: the interpreter's lookup function is
wrapped by runtime.with_timeout (asyncio.wait_for), or by the simulator's fake clock.

Results: SQL gives the first row as a dict (None when no row, which takes ``on empty``);
Python and HTTP give whatever the function or the JSON body is. Any failure becomes
:class:`~ivr_lang.interpreter.DataSourceError`, which takes ``on error``.
"""

from __future__ import annotations

import inspect
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from . import ast as A
from .interpreter import DataSourceError

logger = logging.getLogger(__name__)

__all__ = ["DataSources", "HttpFetcher", "SqlRunner", "bind_args", "http_url"]

#: ``await sql(query, params)`` -> rows as dicts.
SqlRunner = Callable[[str, Mapping[str, Any]], Awaitable[list[dict[str, Any]]]]
#: ``await fetch(url, timeout_s)`` -> parsed JSON body.
HttpFetcher = Callable[[str, float], Awaitable[Any]]


def bind_args(src: A.SourceDecl, args: list[Any]) -> dict[str, Any]:
    """Parameter name -> value; the checker guarantees the count, this re-checks it."""
    if len(args) != len(src.params):
        raise DataSourceError(f"{src.name.text} takes {len(src.params)} argument(s), "
                              f"got {len(args)}")
    return {p.text: (str(v) if v is not None and not isinstance(v, str | int | float)
                     else v) for p, v in zip(src.params, args, strict=True)}


def http_url(src: A.SourceDecl, params: Mapping[str, Any]) -> str:
    """Fill ``{name}`` placeholders, percent-encoding each value (no injection into paths)."""
    url = src.target
    for name, value in params.items():
        url = url.replace("{" + name + "}", urllib.parse.quote(str(value), safe=""))
    return url


class DataSources:
    """Runs declared sources through injected runners (sql, python registry, http)."""

    def __init__(self, *, sql: SqlRunner | None = None,
                 python: Mapping[str, Callable[..., Any]] | None = None,
                 http: HttpFetcher | None = None) -> None:
        self.sql = sql
        self.python: dict[str, Callable[..., Any]] = dict(python or {})
        self.http = http

    def register(self, name: str, fn: Callable[..., Any]) -> None:
        """Register a Python function that scripts can name in ``source ... python``."""
        self.python[name] = fn

    async def lookup(self, src: A.SourceDecl, args: list[Any], timeout_s: float) -> Any:
        """Run one lookup; raises DataSourceError on any failure of the source."""
        params = bind_args(src, args)
        kind = src.kind.text
        try:
            if kind == "sql":
                if self.sql is None:
                    raise DataSourceError("no SQL runner configured")
                rows = await self.sql(src.target, params)
                return dict(rows[0]) if rows else None
            if kind == "python":
                fn = self.python.get(src.target)
                if fn is None:
                    raise DataSourceError(f"no Python function registered as '{src.target}'")
                result = fn(*params.values())
                return await result if inspect.isawaitable(result) else result
            if kind == "http":
                if self.http is None:
                    raise DataSourceError("no HTTP fetcher configured")
                return await self.http(http_url(src, params), timeout_s)
        except DataSourceError:
            raise
        except Exception as exc:  # a business system may raise anything: it takes on error
            logger.warning("data source %s failed: %r", src.name.text, exc)
            raise DataSourceError(f"{type(exc).__name__}: {exc}") from exc
        raise DataSourceError(f"unknown data source kind '{kind}'")
