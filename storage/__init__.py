"""Persistence for the softswitch: SQLAlchemy 2.x async over SQLite (default) or PostgreSQL.

The cores declare small Protocols (``signaling.location.LocationStore``,
``CredentialStore``); the repositories here implement them. Only the async shell
(``switch/app.py``, the CLI) touches this package.
"""

from __future__ import annotations

from storage.db import (
    Database,
    StorageConflictError,
    StorageError,
    StorageUnavailableError,
    default_sqlite_url,
    normalize_url,
    redact_url,
)
from storage.demo import DEMO_USERNAMES, ensure_demo_users, format_demo_users
from storage.repositories import (
    DuplicateUserError,
    InvalidUserError,
    LocationRepository,
    UnknownUserError,
    UserInfo,
    UserRepository,
)

__all__ = [
    "DEMO_USERNAMES",
    "Database",
    "DuplicateUserError",
    "InvalidUserError",
    "LocationRepository",
    "StorageConflictError",
    "StorageError",
    "StorageUnavailableError",
    "UnknownUserError",
    "UserInfo",
    "UserRepository",
    "default_sqlite_url",
    "ensure_demo_users",
    "format_demo_users",
    "normalize_url",
    "redact_url",
]
