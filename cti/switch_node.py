"""Running the CTI server inside a node: ``[cti]`` settings, users, backend, listener.

``switch/app.py`` calls :func:`start_cti` after the call manager started and
:meth:`NodeCti.close` before it stops, so CTI clients see the calls ended at shutdown.

Rules:

* Rule 1 -- the server runs when ``[cti] port`` (or ``--cti-port``) is set; every ``[cti]``
  key is checked here and a bad value is a :class:`switch.config.ConfigError` naming the
  key (``cti.certfile``...), raised before anything listens.
* Rule 2 -- users come from storage (``softswitch cti-user add``, :mod:`cti.users`); the
  audit goes to the ``cti.audit`` logger (one JSON object per line).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cti.audit import AuditSink, LoggingAuditSink
from cti.auth import Authenticator, LoginThrottle
from cti.config import CTI_KEYS, cti_config
from cti.screen_pop import StorageResidentDirectory
from cti.server import CtiServer
from cti.switch_backend import SwitchBackend
from cti.workorder_commands import install as install_workorders
from storage.cti_models import CtiUserRepository
from storage.db import Database
from storage.hotline_repository import HotlineRepository
from switch.b2bua import CallManager

logger = logging.getLogger(__name__)

__all__ = ["CTI_KEYS", "NodeCti", "cti_config", "start_cti"]

@dataclass(slots=True)
class NodeCti:
    """The CTI server of a node and its backend."""

    server: CtiServer
    backend: SwitchBackend

    @property
    def port(self) -> int:
        return self.server.port

    async def close(self) -> None:
        """Stop listening, drop the clients, hang up the CTI-placed legs."""
        await self.server.close()
        await self.backend.close()


async def start_cti(raw: Mapping[str, Any], db: Database, hotline: HotlineRepository,
                    calls: CallManager, recordings_dir: Path,
                    audit: AuditSink | None = None) -> NodeCti | None:
    """Start the CTI server when ``[cti] port`` is set (Rule 1); None otherwise.

    Raises:
        ConfigError: a bad ``[cti]`` value.
        OSError: the port cannot be bound.
    """
    if "port" not in raw:
        return None
    config, extra = cti_config(raw)
    residents = StorageResidentDirectory(hotline)
    await residents.warm_up()
    backend = SwitchBackend(calls, residents, recordings_dir=recordings_dir, **extra)
    users = CtiUserRepository(db)
    auth = Authenticator(users, LoginThrottle(max_failures=config.max_login_failures))
    server = CtiServer(backend, auth, config, audit or LoggingAuditSink())
    install_workorders(server, hotline)
    backend.attach()
    try:
        await server.start()
    except BaseException:
        await backend.close()
        raise
    return NodeCti(server, backend)
