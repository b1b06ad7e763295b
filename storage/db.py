"""The database handle: one async engine, one session per unit of work.

Rules of this module:

* Rule 1 -- nothing here is specific to a database product except :func:`_sqlite_pragmas`,
  which runs only when the URL's dialect is SQLite. The same code runs on PostgreSQL
  (``postgresql+asyncpg://user:pass@host/db``) for sites that share one database between
  several nodes (DESIGN.md "Growing past one machine").
* Rule 2 -- every failure that reaches a caller is a :class:`StorageError`. A database that
  cannot be reached (server down, disk full, locked past the busy timeout) is a
  :class:`StorageUnavailableError`: the operation did not happen and the caller may retry it
  (the registrar's write-behind keeps its batch and tries again later).
* Rule 3 -- an error message names the URL with its password hidden, never the password.

The schema is created with ``metadata.create_all`` at :meth:`Database.start`. That is enough
while the schema is young; once it settles, Alembic migrations replace it (DESIGN.md
"Storage"), and ``start()`` will check the revision instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.models import Base

logger = logging.getLogger(__name__)

__all__ = [
    "Database",
    "StorageConflictError",
    "StorageError",
    "StorageUnavailableError",
    "default_sqlite_url",
    "normalize_url",
    "redact_url",
]

SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long a SQLite writer waits for another process's lock (the CLI adding a user while the
node writes bindings) before the statement fails; 5 s is far above any single write here."""

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
                  "postgres": "postgresql+asyncpg"}
"""Plain URLs operators paste from other tools, mapped to the async driver we ship."""

_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


class StorageError(Exception):
    """Root of every storage failure (STYLE.md 4.5)."""


class StorageUnavailableError(StorageError):
    """The database could not be reached or refused the operation; nothing was written.

    Transient by nature (server restart, lock timeout, full disk): the caller retries.
    """


class StorageConflictError(StorageError):
    """A constraint rejected the write (for example a duplicate username)."""


def redact_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***``, safe for messages and logs."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _PASSWORD_IN_URL.sub(r"\1***@", url)


def normalize_url(url: str) -> str:
    """Give a plain ``sqlite://`` or ``postgresql://`` URL the async driver we ship.

    Raises:
        StorageError: the text is not a database URL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(f"not a database URL: {redact_url(url)!r}") from None
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is not None:
        parsed = parsed.set(drivername=driver)
    return parsed.render_as_string(hide_password=False)


def default_sqlite_url(data_dir: str | Path) -> str:
    """``sqlite+aiosqlite:///<data_dir>/softswitch.db`` with an absolute path."""
    path = Path(data_dir).expanduser().resolve() / "softswitch.db"
    return f"sqlite+aiosqlite:///{path}"


CONNECT_TIMEOUT_S = 10
"""A database server that does not answer within this is reported unavailable (asyncpg's
own default is 60 s, long enough to look like a hung start-up)."""


def _engine_options(url: URL) -> dict[str, Any]:
    """Options for server databases: bounded connect time, and a liveness check of pooled
    connections so a database restart costs one retry rather than a stream of errors."""
    if url.get_backend_name() == "sqlite":
        return {}
    options: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_driver_name() == "asyncpg":
        options["connect_args"] = {"timeout": CONNECT_TIMEOUT_S}
    return options


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection SQLite settings.

    WAL lets the CLI read and write while the node holds the file; synchronous=NORMAL is
    durable across application crashes in WAL mode (the SQLite docs, "pragma synchronous");
    foreign_keys is off by default in SQLite; busy_timeout makes a second writer wait rather
    than fail at once.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _import_feature_models() -> None:
    """Register every feature's tables on the shared metadata before ``create_all``.

    Imported here, not in models.py, because the feature modules import this module.
    """
    from storage import campaign_models, cdr_models, cti_models, hotline_models  # noqa: F401


class Database:
    """One engine and its session factory; the unit of work is :meth:`transaction`.

    Args:
        url: an SQLAlchemy async URL (``sqlite+aiosqlite:///path``,
            ``postgresql+asyncpg://user:pass@host/db``); plain ``sqlite://`` and
            ``postgresql://`` get the async driver.
        echo: log every SQL statement (debugging only).

    Raises:
        StorageError: the URL is malformed or its driver is not installed.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self._url = make_url(normalize_url(url))
        self.display_url = redact_url(self._url)
        """The URL with the password hidden, for messages."""
        try:
            self._engine: AsyncEngine = create_async_engine(
                self._url, echo=echo, **_engine_options(self._url))
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise StorageError(
                f"cannot use database {self.display_url}: {exc} "
                "(PostgreSQL needs the 'postgres' extra: pip install softswitch[postgres])"
            ) from exc
        if self._engine.dialect.name == "sqlite":
            event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """The dialect name ("sqlite", "postgresql")."""
        return self._engine.dialect.name

    async def start(self) -> None:
        """Open the database and create missing tables (Alembic will take this over).

        Raises:
            StorageUnavailableError: the database cannot be reached or created.
        """
        self._ensure_sqlite_dir()
        try:
            async with self._engine.begin() as conn:
                _import_feature_models()
                await conn.run_sync(Base.metadata.create_all)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StorageUnavailableError(
                f"cannot open database {self.display_url}: {_reason(exc)}"
            ) from exc
        logger.info("database ready: %s", self.display_url)

    def _ensure_sqlite_dir(self) -> None:
        if self.dialect != "sqlite" or self._url.database in (None, "", ":memory:"):
            return
        parent = Path(self._url.database).expanduser().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailableError(
                f"cannot create directory {parent} for database {self.display_url}: {exc}"
            ) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: a session inside a transaction, committed on success.

        Raises:
            StorageConflictError: a constraint rejected the write; nothing was committed.
            StorageUnavailableError: the database failed; nothing was committed, retry.
        """
        try:
            async with self._sessions() as session, session.begin():
                yield session
        except IntegrityError as exc:
            raise StorageConflictError(f"{self.display_url}: {_reason(exc)}") from exc
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StorageUnavailableError(
                f"database {self.display_url} failed: {_reason(exc)}"
            ) from exc

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    async def __aenter__(self) -> Database:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _reason(exc: BaseException) -> str:
    """The driver's own message without SQLAlchemy's long background link."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc) or type(exc).__name__
    return text.splitlines()[0]
