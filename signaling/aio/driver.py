"""Drives the sans-IO :class:`~signaling.core.SipCore` from asyncio (aioquic's pattern).

After anything happens — a datagram, a framed stream message, a timer, an application
call — the driver does the same three things: send what the core wants sent, hand the
core's events to the application, and re-arm the one timer at the core's next deadline.
One ``loop.call_at`` for the whole core, not one task per transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..core import SipCore
from ..errors import RemoteSipError
from ..events import Address
from ..message import Request, Response
from .transport import TransportSet

logger = logging.getLogger(__name__)

__all__ = ["SipDriver"]

EventHandler = Callable[[Any], None]


class SipDriver:
    """Glue between the transports, the core and the application's event handler."""

    def __init__(self, core: SipCore, handler: EventHandler | None = None) -> None:
        self.core = core
        self.handler = handler
        self.transports: TransportSet | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flushing = False
        self.dropped = 0

    def attach(self, transports: TransportSet) -> None:
        self.transports = transports

    # -- inbound ---------------------------------------------------------------------------
    def on_inbound(
        self,
        transport: str,
        data: bytes | Request | Response,
        host: str,
        port: int,
        conn_id: int | None,
    ) -> None:
        """The ``Sink`` given to :class:`TransportSet`."""
        source = Address(transport, host, port, conn_id)
        now = self._loop.time()
        try:
            if isinstance(data, (bytes, bytearray)):
                self.core.handle_datagram(bytes(data), source, now)
            else:
                self.core.handle_message(data, source, now)
        except RemoteSipError as exc:
            # The core answers what it can answer; a message too broken even for that is
            # dropped here, counted, and the node goes on (never an unhandled exception).
            self.dropped += 1
            logger.info("dropped a message from %s: %s", source, exc.detail)
        self.flush()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.core.handle_timer(self._loop.time())
        self.flush()

    # -- outbound / application calls ---------------------------------------------------------
    def now(self) -> float:
        return self._loop.time()

    def flush(self) -> None:
        """Send pending datagrams, dispatch events, re-arm the timer (re-entrancy safe)."""
        if self._flushing:
            return
        self._flushing = True
        try:
            core = self.core
            transports = self.transports
            while True:
                out = core.datagrams_to_send()
                events = core.events()
                if not out and not events:
                    break
                if transports is not None:
                    for data, addr in out:
                        transports.send(addr.transport, data, addr.host, addr.port,
                                        addr.connection_id)
                if self.handler is not None:
                    for event in events:
                        self.handler(event)
        finally:
            self._flushing = False
        self._rearm()

    def _rearm(self) -> None:
        deadline = self.core.next_deadline()
        if deadline is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
                self._timer_at = None
            return
        if self._timer is not None and self._timer_at is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
