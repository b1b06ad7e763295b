"""CTI: a JSON-lines-over-TCP/TLS server for agent desktops and wallboards, and its client.

Layers (STYLE.md §4.1): :mod:`cti.protocol` and :mod:`cti.messages` are pure (framing,
session state machine, schemas); :mod:`cti.server` is the asyncio shell; the switch is
reached through the :class:`~cti.backend.CtiBackend` Protocol: :mod:`cti.switch_backend` on a
running node (started by :mod:`cti.switch_node`), :class:`~cti.fake.FakeBackend` in tests and
demos. Protocol reference: ``cti/PROTOCOL.md``.
"""

from __future__ import annotations

from cti.audit import AuditEntry, AuditSink, LoggingAuditSink, MemoryAuditSink
from cti.auth import (
    Authenticator,
    CtiUser,
    LoginThrottle,
    MemoryUserDirectory,
    TokenStore,
    UserDirectory,
    hash_password,
    verify_password,
)
from cti.backend import AGENT_STATE_EVENTS, BackendEvent, CallScope, CtiBackend
from cti.client import CtiClient, CtiCommandError, CtiConnectionLost, CtiEvent, LoginInfo
from cti.fake import FakeBackend, MemoryResidentDirectory
from cti.messages import COMMANDS, EVENTS, PROTOCOL_VERSION, CtiError, CtiRequestError, ErrorCode
from cti.roles import PERMISSIONS, Principal, Role
from cti.server import CtiConfig, CtiServer

__all__ = [
    "AGENT_STATE_EVENTS",
    "COMMANDS",
    "EVENTS",
    "PERMISSIONS",
    "PROTOCOL_VERSION",
    "AuditEntry",
    "AuditSink",
    "Authenticator",
    "BackendEvent",
    "CallScope",
    "CtiBackend",
    "CtiClient",
    "CtiCommandError",
    "CtiConfig",
    "CtiConnectionLost",
    "CtiError",
    "CtiEvent",
    "CtiRequestError",
    "CtiServer",
    "CtiUser",
    "ErrorCode",
    "FakeBackend",
    "LoggingAuditSink",
    "LoginInfo",
    "LoginThrottle",
    "MemoryAuditSink",
    "MemoryResidentDirectory",
    "MemoryUserDirectory",
    "Principal",
    "Role",
    "TokenStore",
    "UserDirectory",
    "hash_password",
    "verify_password",
]
