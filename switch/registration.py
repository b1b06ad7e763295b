"""The registration service: digest-authenticated REGISTER, write-behind persistence of
bindings, NAT keep-alive pings and the live user directory.

The pure pieces (``signaling.auth``, ``signaling.registrar``, ``signaling.keepalive``) make
every decision; this module is the async shell around them. A REGISTER is answered from
memory at once; changed bindings reach the database in batches every
``persist_interval_s`` so that a burst of registrations costs a few transactions, and a
database outage delays persistence (retried, logged) but never a registration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from signaling.auth import DigestAuthenticator
from signaling.core import SipCore
from signaling.events import (
    Address,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportError,
)
from signaling.keepalive import KeepAlivePing, KeepAliveTracker, build_options
from signaling.location import Binding, UserCredentials
from signaling.message import Request, Response, make_response
from signaling.registrar import Registrar
from storage.db import StorageError
from storage.repositories import LocationRepository, UserRepository

logger = logging.getLogger(__name__)

__all__ = ["RegistrationService"]


class RegistrationService:
    """Answers REGISTER and keeps the location service persistent and fresh."""

    def __init__(
        self,
        core: SipCore,
        flush: Callable[[], None],
        now: Callable[[], float],
        registrar: Registrar,
        auth: DigestAuthenticator,
        users: UserRepository,
        locations: LocationRepository,
        *,
        local: Address,
        keepalive: KeepAliveTracker | None = None,
        persist_interval_s: float = 0.2,
        users_refresh_s: float = 2.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.core = core
        self._flush = flush
        self._now = now
        self.registrar = registrar
        self.auth = auth
        self.users_repo = users
        self.locations = locations
        self.local = local
        self.keepalive = keepalive
        self.persist_interval_s = persist_interval_s
        self.users_refresh_s = users_refresh_s
        self.wall = wall_clock
        self._users: dict[str, UserCredentials] = {}
        self._users_fp: tuple[int, str] | None = None
        self._pending: dict[str, list[Binding]] = {}
        self._pings: dict[str, KeepAlivePing] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = {"register_ok": 0, "register_challenged": 0, "register_rejected": 0,
                      "persist_batches": 0, "persist_failures": 0}

    # -- start / stop --------------------------------------------------------------------------
    async def start(self) -> None:
        await self.reload_users(force=True)
        loaded = self.registrar.load(await self.locations.load_bindings(), self.wall())
        logger.info("restored %d registration bindings from storage", loaded)
        if self.keepalive is not None:
            for aor in self.registrar.aors():
                self.keepalive.update(aor, self.registrar.lookup(aor, self.wall()), self._now())
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._persist_loop(), name="bindings-persist"),
            loop.create_task(self._users_loop(), name="users-refresh"),
            loop.create_task(self._expire_loop(), name="bindings-expire"),
        ]
        if self.keepalive is not None:
            self._tasks.append(loop.create_task(self._keepalive_loop(), name="keepalive"))

    async def stop(self) -> None:
        """Stop the loops and write every pending binding change (clean shutdown)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if not await self.persist_now():
            logger.error("could not persist %d changed AORs at shutdown", len(self._pending))

    # -- users -----------------------------------------------------------------------------------
    async def reload_users(self, force: bool = False) -> bool:
        """Reload the directory when it changed (``softswitch user add`` while running)."""
        fp = await self.users_repo.fingerprint()
        if not force and fp == self._users_fp:
            return False
        users = await self.users_repo.load_users()
        self._users = {u.username: u for u in users}
        self._users_fp = fp
        logger.info("user directory loaded: %d users", len(self._users))
        return True

    def lookup_user(self, username: str) -> UserCredentials | None:
        return self._users.get(username)

    async def _users_loop(self) -> None:
        while True:
            await asyncio.sleep(self.users_refresh_s)
            try:
                await self.reload_users()
            except StorageError as exc:
                logger.warning("user directory refresh failed: %s", exc)

    # -- REGISTER --------------------------------------------------------------------------------
    def challenge_statelessly(
        self, request: Request, source: Address, now: float
    ) -> Response | None:
        """The core's stateless hook: a REGISTER without credentials gets its 401 (or the
        403 of a lockout) without a transaction, so the first half of every registration,
        and a flood of unauthenticated ones, costs no transaction state."""
        if request.method != "REGISTER" or "Authorization" in request.headers:
            return None
        status, headers = self.auth.rejection(None, self.wall(), source.host)
        self.stats["register_challenged" if status == 401 else "register_rejected"] += 1
        return make_response(request, status, to_tag=self.core.ids.tag(), extra=headers)

    def handle_register(self, event: RequestReceived) -> None:
        request = event.request
        source_ip = event.source.host
        wall = self.wall()
        authz = request.headers.get("Authorization")
        result = None
        if authz is not None:
            result = self.auth.verify(
                "REGISTER", authz, self.lookup_user, wall, source_ip, request_uri=request.uri
            )
        if result is None or not result.ok:
            status, headers = self.auth.rejection(result, wall, source_ip)
            if status == 401:
                self.stats["register_challenged"] += 1
            else:
                self.stats["register_rejected"] += 1
            if result is not None and not result.stale:
                logger.info("REGISTER from %s for %s refused: %s", event.source,
                            result.username, result.reason)
            response = make_response(request, status, to_tag=self.core.ids.tag(), extra=headers)
        else:
            outcome = self.registrar.handle_register(request, event.source, result.username, wall)
            response = outcome.to_response(request, to_tag=self.core.ids.tag())
            if outcome.response_status == 200:
                self.stats["register_ok"] += 1
                if outcome.changed_aors and self.keepalive is not None:
                    for aor in outcome.changed_aors:
                        self.keepalive.update(aor, self.registrar.lookup(aor, wall), self._now())
            else:
                self.stats["register_rejected"] += 1
        self.core.send_response(response, event.transaction_id, self._now())

    # -- persistence -------------------------------------------------------------------------------
    async def persist_now(self) -> bool:
        """Write pending changes; False (changes kept for the next try) on a DB outage."""
        self._pending.update(self.registrar.pop_dirty())
        if not self._pending:
            return True
        batch, self._pending = self._pending, {}
        try:
            await self.locations.replace_bindings(batch)
        except StorageError as exc:
            # Keep the batch; newer changes of the same AOR (made meanwhile) win.
            for aor, bindings in batch.items():
                self._pending.setdefault(aor, bindings)
            self.stats["persist_failures"] += 1
            logger.warning("persisting %d AORs failed, will retry: %s", len(batch), exc)
            return False
        self.stats["persist_batches"] += 1
        return True

    async def _persist_loop(self) -> None:
        backoff = self.persist_interval_s
        while True:
            await asyncio.sleep(backoff)
            ok = await self.persist_now()
            backoff = self.persist_interval_s if ok else min(backoff * 2, 10.0)

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            wall = self.wall()
            for aor in self.registrar.expire(wall):
                if self.keepalive is not None:
                    self.keepalive.update(aor, self.registrar.lookup(aor, wall), self._now())

    # -- NAT keep-alive ----------------------------------------------------------------------------
    async def _keepalive_loop(self) -> None:
        assert self.keepalive is not None
        while True:
            await asyncio.sleep(1.0)
            pings, _changes = self.keepalive.poll(self._now())
            for ping in pings:
                request = build_options(
                    ping, local=self.local, from_uri=f"sip:keepalive@{self.local.host}",
                    ids=self.core.ids,
                )
                txn = self.core.send_request(request, ping.target, self._now())
                self._pings[txn] = ping
            if pings:
                self._flush()

    def handle_keepalive_result(
        self, event: ResponseReceived | TransactionTimedOut | TransportError
    ) -> bool:
        """Feed OPTIONS outcomes to the tracker; True when the event was ours."""
        if self.keepalive is None:
            return False
        ping = self._pings.pop(event.transaction_id, None)
        if ping is None:
            return False
        if isinstance(event, ResponseReceived):
            if event.response.status < 200:
                self._pings[event.transaction_id] = ping
                return True
            self.keepalive.on_response(ping.aor, ping.contact, self._now())
        else:
            self.keepalive.on_failure(ping.aor, ping.contact, self._now())
        return True
