"""The trunk service: runs one :class:`RegistrationClient` per registering trunk.

The async shell around the pure clients (STYLE §4.1): it sends their REGISTERs through the
:class:`~signaling.core.SipCore`, feeds them the core's ``ResponseReceived`` /
``TransactionTimedOut`` / ``TransportError`` events (matched by transaction id in
:meth:`TrunkService.handle_event`, which the node's event router calls), and arms one
``loop.call_at`` at the earliest deadline of all clients (aioquic's pattern).

Host names (a carrier's registrar or SBC) are resolved with ``loop.getaddrinfo`` before a
REGISTER is sent, so the event loop never blocks in DNS; a name that does not resolve
fails that attempt like a timeout and the client backs off (Rule 4 of the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
from collections.abc import Callable, Iterable, Mapping

from signaling.core import SipCore
from signaling.events import Address, ResponseReceived, TransactionTimedOut, TransportError

from .config import TrunkConfig
from .registration import (
    RegistrationClient,
    RegistrationState,
    RegistrationStateChanged,
    SendRegister,
)

__all__ = ["TrunkService"]

logger = logging.getLogger(__name__)

StatusListener = Callable[[RegistrationStateChanged], None]


class TrunkService:
    """Registration of every enabled trunk with ``register = true``.

    Args:
        core: the node's SIP core (builds and sends the requests).
        flush: the driver's flush (send what the core queued, dispatch its events).
        now: the loop clock (``driver.now``).
        trunks: the configured trunks (a mapping from :func:`parse_trunks` or a list).
        rng: randomness for backoff jitter and cnonces (``random.SystemRandom()`` default).
        on_status: called with every :class:`RegistrationStateChanged` (CTI, wallboard).
        stop_timeout_s: how long :meth:`stop` waits for the de-registrations.
    """

    def __init__(
        self,
        core: SipCore,
        flush: Callable[[], None],
        now: Callable[[], float],
        trunks: Mapping[str, TrunkConfig] | Iterable[TrunkConfig],
        *,
        rng: random.Random | None = None,
        on_status: StatusListener | None = None,
        stop_timeout_s: float = 2.0,
        retry_min_s: float = 30.0,
        retry_max_s: float = 600.0,
    ) -> None:
        self.core = core
        self._flush = flush
        self._now = now
        items = trunks.values() if isinstance(trunks, Mapping) else trunks
        self.trunks = {t.name: t for t in items}
        self._rng = rng or random.SystemRandom()
        self.on_status = on_status
        self.stop_timeout_s = stop_timeout_s
        self.clients: dict[str, RegistrationClient] = {}
        for trunk in self.trunks.values():
            if trunk.enabled and trunk.register:
                self.clients[trunk.name] = RegistrationClient(
                    trunk, contact=self._contact(trunk), builder=core.create_request,
                    rng=self._rng, call_id=core.ids.call_id(core.config.host),
                    from_tag=core.ids.tag(), retry_min_s=retry_min_s, retry_max_s=retry_max_s)
        self._txns: dict[str, tuple[RegistrationClient, int]] = {}
        self._resolved: dict[str, str] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    def _contact(self, trunk: TrunkConfig) -> str:
        cfg = self.core.config
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        t = "" if trunk.transport == "udp" else f";transport={trunk.transport}"
        return f"<sip:{trunk.username}@{host}:{cfg.port}{t}>"

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Send the first REGISTER of every registering trunk."""
        now = self._now()
        for client in self.clients.values():
            client.start(now)
        self._pump()
        if self.clients:
            logger.info("trunks: %d configured, %d registering", len(self.trunks),
                        len(self.clients))

    async def stop(self) -> None:
        """Deregister (Expires: 0) and wait up to ``stop_timeout_s`` for the answers."""
        now = self._now()
        for client in self.clients.values():
            client.stop(now)
        self._pump()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stop_timeout_s
        while any(c.state is RegistrationState.UNREGISTERING for c in self.clients.values()):
            left = deadline - loop.time()
            if left <= 0:
                logger.warning("trunks: de-registration unanswered after %.1f s",
                               self.stop_timeout_s)
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._txns.clear()

    def status(self) -> dict[str, RegistrationState]:
        """The registration state of each registering trunk."""
        return {name: c.state for name, c in self.clients.items()}

    def retry_now(self, name: str) -> None:
        """An operator's "register now" for one trunk (KeyError when not registering)."""
        self.clients[name].start(self._now())
        self._pump()

    # -- events from the core ----------------------------------------------------------------
    def handle_event(self, event: object) -> bool:
        """Feed a core event to the client whose REGISTER it answers; False if not ours."""
        if not isinstance(event, (ResponseReceived, TransactionTimedOut, TransportError)):
            return False
        entry = self._txns.get(event.transaction_id)
        if entry is None:
            return False
        client, cseq = entry
        now = self._now()
        if isinstance(event, ResponseReceived):
            if event.response.status >= 200:
                del self._txns[event.transaction_id]
            client.handle_response(event.response, now)
        else:
            del self._txns[event.transaction_id]
            reason = "timeout" if isinstance(event, TransactionTimedOut) else "transport error"
            client.handle_timeout(cseq, now, reason)
        self._pump()
        return True

    # -- plumbing ------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Send every client's REGISTERs, report state changes, re-arm the timer."""
        sent = False
        for client in self.clients.values():
            for out in client.outputs():
                if isinstance(out, SendRegister):
                    sent = self._send(client, out) or sent
                else:
                    self._changed.set()
                    if self.on_status is not None:
                        self.on_status(out)
        if sent:
            self._flush()
        self._rearm()

    def _send(self, client: RegistrationClient, out: SendRegister) -> bool:
        dest = out.destination
        host = self._resolved.get(dest.host, dest.host)
        if not _is_ip(host):
            task = asyncio.get_running_loop().create_task(self._resolve_and_send(client, out))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return False
        dest = Address(dest.transport, host, dest.port, dest.connection_id)
        txn = self.core.send_request(out.request, dest, self._now())
        self._txns[txn] = (client, out.cseq)
        return True

    async def _resolve_and_send(self, client: RegistrationClient, out: SendRegister) -> None:
        name = out.destination.host
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.core.config.host else socket.AF_INET
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(
                name, out.destination.port, family=family, type=socket.SOCK_DGRAM), 5.0)
        except (OSError, TimeoutError) as exc:
            logger.warning("trunk %s: cannot resolve %s: %s", client.trunk.name, name, exc)
            client.handle_timeout(out.cseq, self._now(), f"cannot resolve {name}")
            self._pump()
            return
        self._resolved[name] = str(infos[0][4][0])
        if client.pending_cseq == out.cseq:
            self._send(client, out)
            self._flush()
        self._rearm()

    def _rearm(self) -> None:
        deadlines = [d for c in self.clients.values() if (d := c.next_deadline()) is not None]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadlines:
            self._timer = asyncio.get_running_loop().call_at(min(deadlines), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self._now()
        for client in self.clients.values():
            client.handle_timer(now)
        self._pump()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
