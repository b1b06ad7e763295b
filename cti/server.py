"""The CTI server: the asyncio shell around :mod:`cti.protocol` (IVR_CTI_ACD.md §B.8).

One reader task and one writer task per client; the pure :class:`~cti.protocol.CtiSession`
decides what each line means, the server checks scopes, calls the backend, audits, and fans
out events.

Rules:

* Rule 1 (slow clients never stall the switch) -- :meth:`CtiServer.publish` is synchronous
  and never awaits: each event is encoded once, given the next sequence number of every
  stream that wants it, kept in that stream's ring and put on the client's bounded outbound
  queue. A client whose queue is full is disconnected at once; its stream keeps collecting
  events so the client can ``resume`` (or, if the ring overflowed, take a snapshot).
* Rule 2 (streams outlive connections) -- a *stream* (the logical session: principal,
  subscriptions, sequence numbers, ring) is created at login and kept ``resume_grace_s``
  after its connection drops; ``resume {session_id, last_seq}`` on a new connection of the
  same user replays what was missed, or answers ``resync_required``. Replayed events are
  written before the ``resume`` response.
* Rule 3 (requests in order) -- the requests of one connection run one at a time, in order;
  their responses and the events share one outbound queue, so a client sees an event that a
  command caused after that command's response only if the backend emitted it after
  accepting (the fake does so synchronously: events may come first; match by ``call_id``).
* Rule 4 -- TLS when a certificate is configured; plain TCP only on loopback unless
  ``allow_plaintext`` is set (§B.8).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cti.audit import AuditEntry, AuditSink, LoggingAuditSink, redact
from cti.auth import Authenticator
from cti.backend import BackendEvent, CtiBackend
from cti.config import CtiConfig
from cti.dispatch import BUSINESS as _BUSINESS
from cti.messages import (
    COMMANDS,
    EVENTS,
    PROTOCOL_VERSION,
    CtiRequestError,
    ErrorCode,
    Request,
    dumps,
    encode_error,
)
from cti.protocol import (
    NEED_DATA,
    ConnectionClosed,
    CtiSession,
    EventFilter,
    EventRing,
    RequestReceived,
    RequestRejected,
    SessionConfig,
    SessionState,
)
from cti.roles import Principal, Role, can_see_event
from cti.scope import authorize, filter_snapshot

logger = logging.getLogger(__name__)

__all__ = ["CtiConfig", "CtiServer"]

SERVER_NAME = "softswitch-cti"
CAPABILITIES = ("resume", "snapshot", "subscribe-filters", "tokens", "screen-pop")
_READ_BYTES = 64 * 1024
_EVENT_HEAD = b'{"v":%d,"type":"evt","seq":%%d' % PROTOCOL_VERSION
"""An event line is this head with its seq, then the body shared by all streams."""
_LINGER_S = 2.0
_LINGER_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class _Stream:
    """Rule 2: the logical session."""

    session_id: str
    principal: Principal
    token: str
    ring: EventRing
    filters: dict[str, EventFilter] = field(default_factory=dict)
    conn: _Connection | None = None
    detached_at: float | None = None


class _Connection:
    """One client connection: the session core, and a bounded outbound queue (Rule 1).

    The queue is a deque plus a wake-up event rather than an ``asyncio.Queue``: fan-out
    appends to hundreds of them per event, and this is the cheapest bounded queue asyncio
    allows (no per-item future bookkeeping).
    """

    def __init__(self, server: CtiServer, writer: asyncio.StreamWriter, session: CtiSession,
                 peer: str, queue_max: int) -> None:
        self.server = server
        self.writer = writer
        self.session = session
        self.peer = peer
        self.queue: deque[bytes] = deque()
        self.queue_max = queue_max
        self.wakeup = asyncio.Event()
        self.stream: _Stream | None = None
        self.closed = False
        self.linger = False

    def enqueue(self, line: bytes) -> bool:
        """Queue one line; on overflow drop the connection (Rule 1) and return False."""
        if self.closed:
            return False
        if len(self.queue) >= self.queue_max:
            logger.warning("CTI client %s too slow (%d lines queued): disconnecting",
                           self.peer, len(self.queue))
            self.server.dropped_slow += 1
            self.abort()
            return False
        self.queue.append(line)
        if not self.wakeup.is_set():
            self.wakeup.set()
        return True

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.server._detach(self)
            self.writer.transport.abort()

    async def write_loop(self) -> None:
        queue = self.queue
        try:
            while True:
                await self.wakeup.wait()
                self.wakeup.clear()
                while queue:
                    batch = [queue.popleft() for _ in range(min(len(queue), 256))]
                    self.writer.write(b"".join(batch))
                    await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            logger.debug("CTI write to %s failed: %s", self.peer, exc)
            self.abort()


Handler = Callable[["CtiServer", _Connection, Request], Awaitable[dict[str, Any]]]


class CtiServer:
    """The CTI listener.

    Args:
        backend: the switch (or :class:`~cti.fake.FakeBackend`).
        authenticator: users, lockout and tokens.
        config: listener settings.
        audit: audit sink (default: the ``cti.audit`` logger).
    """

    def __init__(self, backend: CtiBackend, authenticator: Authenticator,
                 config: CtiConfig | None = None, audit: AuditSink | None = None) -> None:
        self.backend = backend
        self.auth = authenticator
        self.config = config or CtiConfig()
        self.audit: AuditSink = audit or LoggingAuditSink()
        self.dropped_slow = 0
        self.events_published = 0
        self._streams: dict[str, _Stream] = {}
        self._connections: set[_Connection] = set()
        self._monitors: dict[str, tuple[str, str]] = {}
        self._last_stats = 0.0
        self.extra_handlers: dict[str, Handler] = {}
        """Commands other packages install (``cti.campaign_commands.install``)."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._session_config = SessionConfig(self.config.max_line_bytes,
                                             self.config.auth_timeout_s,
                                             self.config.idle_timeout_s,
                                             self.config.max_login_failures)
        backend.set_event_sink(self.publish)

    # -------------------------------------------------------------- lifecycle

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.config.certfile is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.config.certfile, self.config.keyfile)
        return ctx

    async def start(self) -> int:
        """Listen; return the bound port."""
        self._server = await asyncio.start_server(
            self._client, self.config.host, self.config.port, ssl=self._ssl_context(),
            limit=_READ_BYTES)
        self._spawn(self._housekeeping())
        port = int(self._server.sockets[0].getsockname()[1])
        logger.info("CTI server on %s:%d (%s)", self.config.host, port,
                    "TLS" if self.config.certfile else "plain TCP")
        return port

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop listening and drop every client."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> CtiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    # -------------------------------------------------------------- fan-out (Rule 1)

    def publish(self, event: BackendEvent) -> None:
        """Fan one backend event out to every stream that may and wants to see it."""
        self.events_published += 1
        name = json.dumps(event.name)
        tail = (f',"ts":{time.time()!r},"event":{name},"data":'.encode() +
                json.dumps(event.data, separators=(",", ":"), ensure_ascii=False).encode() +
                b"}\n")
        for stream in self._streams.values():
            if not stream.filters or not can_see_event(stream.principal, event.name,
                                                       event.queues, event.agent_id):
                continue
            if not any(f.matches(event.name, event.queues, event.agent_id)
                       for f in stream.filters.values()):
                continue
            seq = stream.ring.next_seq()
            stream.ring.append(seq, tail)
            if stream.conn is not None:
                stream.conn.enqueue(_EVENT_HEAD % seq + tail)

    def _detach(self, conn: _Connection) -> None:
        stream = conn.stream
        if stream is not None and stream.conn is conn:
            stream.conn = None
            stream.detached_at = asyncio.get_running_loop().time()
        conn.stream = None

    async def _housekeeping(self) -> None:
        """Drop expired detached streams; publish periodic ``queue.stats``."""
        loop = asyncio.get_running_loop()
        period = self.config.stats_interval_s
        while True:
            await asyncio.sleep(min(period, 1.0) if period else 1.0)
            now = loop.time()
            for sid, stream in list(self._streams.items()):
                if stream.detached_at is not None and \
                        now - stream.detached_at > self.config.resume_grace_s:
                    del self._streams[sid]
            if period and now - self._last_stats >= period:
                self._last_stats = now
                await self.publish_queue_stats()

    async def publish_queue_stats(self) -> None:
        """One ``queue.stats`` event per queue (§C.7 wallboard figures)."""
        try:
            rows = await self.backend.queue_stats(queues=None)
        except CtiRequestError as exc:
            logger.warning("queue stats unavailable: %s", exc)
            return
        except Exception:  # a backend bug must not stop housekeeping (resume expiry)
            logger.exception("queue stats failed")
            return
        for row in rows:
            self.publish(BackendEvent("queue.stats", row, frozenset((row["queue"],))))

    # -------------------------------------------------------------- connections

    async def _client(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        session = CtiSession(self._session_config, loop.time())
        conn = _Connection(self, writer, session, peer, self.config.outbound_queue_max)
        unauthenticated = sum(c.session.state is not SessionState.ACTIVE
                              for c in self._connections)
        if unauthenticated >= self.config.max_unauthenticated:
            error = CtiRequestError(ErrorCode.TOO_MANY_SESSIONS, "too many connections "
                                    "waiting to log in")
            writer.write(dumps(encode_error(None, error)))
            writer.close()
            return
        self._connections.add(conn)
        writer_task = asyncio.ensure_future(conn.write_loop())
        try:
            await self._read_loop(reader, conn)
        except (ConnectionError, OSError) as exc:
            logger.debug("CTI client %s: %s", peer, exc)
        finally:
            self._connections.discard(conn)
            self._detach(conn)
            if not conn.closed:  # let queued replies (an error before close) go out
                with contextlib.suppress(asyncio.TimeoutError, ConnectionError, OSError):
                    await asyncio.wait_for(self._flush(conn), 1.0)
                if conn.linger:
                    await self._linger(reader, writer)
            conn.closed = True
            writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer_task
            writer.close()

    @staticmethod
    async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Lingering close after ``line_too_long``: half-close, then read and discard what
        the peer is still sending (bounded in time and bytes), so that closing does not
        reset the connection and destroy the error reply before the peer reads it."""
        with contextlib.suppress(asyncio.TimeoutError, ConnectionError, OSError):
            if writer.can_write_eof():
                writer.write_eof()
            async with asyncio.timeout(_LINGER_S):
                discarded = 0
                while discarded < _LINGER_BYTES:
                    chunk = await reader.read(_READ_BYTES)
                    if not chunk:
                        break
                    discarded += len(chunk)

    @staticmethod
    async def _flush(conn: _Connection) -> None:
        while conn.queue:
            conn.writer.write(conn.queue.popleft())
        await conn.writer.drain()

    async def _read_loop(self, reader: asyncio.StreamReader, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        session = conn.session
        while not conn.closed:
            deadline = session.next_deadline()
            if deadline is None:
                return
            try:
                async with asyncio.timeout_at(deadline):
                    data = await reader.read(_READ_BYTES)
            except TimeoutError:
                timed_out = session.handle_timer(loop.time())
                if timed_out is not None:
                    logger.info("CTI client %s: %s", conn.peer, timed_out.reason)
                    conn.enqueue(timed_out.data)
                    return
                continue
            session.receive_data(data, loop.time())
            while True:
                event = session.next_event()
                if event is NEED_DATA or isinstance(event, ConnectionClosed):
                    break
                if isinstance(event, RequestRejected):
                    self._rejected(conn, event)
                    if event.close:
                        conn.linger = True
                        return
                    continue
                assert isinstance(event, RequestReceived)
                await self._execute(conn, event.request)
                if session.state is SessionState.CLOSED:
                    return
            if not data:
                return

    def _rejected(self, conn: _Connection, event: RequestRejected) -> None:
        conn.enqueue(event.data)
        if event.forbidden:
            self._audit(conn, event.cmd or "?", {}, "denied", event.error.code)
        if event.close:
            logger.info("CTI client %s: %s; closing", conn.peer, event.error.message)

    # -------------------------------------------------------------- requests

    async def _execute(self, conn: _Connection, request: Request) -> None:
        spec = COMMANDS[request.cmd]
        principal = conn.session.principal
        try:
            handler = _SESSION_HANDLERS.get(request.cmd) or self.extra_handlers.get(request.cmd)
            if handler is not None:
                result = await handler(self, conn, request)
            else:
                assert principal is not None
                result = await self._business(conn, principal, request)
        except CtiRequestError as exc:
            conn.enqueue(conn.session.send_error(request.id, exc))
            if principal is not None and (exc.code is ErrorCode.FORBIDDEN or
                                          self._audited(principal, request)):
                outcome = "denied" if exc.code is ErrorCode.FORBIDDEN else "error"
                self._audit(conn, request.cmd, request.args, outcome, exc.code, principal)
            return
        except Exception:
            logger.exception("CTI %s from %s failed", request.cmd, conn.peer)
            error = CtiRequestError(ErrorCode.INTERNAL, "internal error")
            conn.enqueue(conn.session.send_error(request.id, error))
            return
        conn.enqueue(conn.session.send_response(request.id, result))
        if principal is not None and spec.group != "session" and \
                self._audited(principal, request):
            self._audit(conn, request.cmd, request.args, "ok", None, principal)

    @staticmethod
    def _audited(principal: Principal, request: Request) -> bool:
        spec = COMMANDS[request.cmd]
        return spec.audited or (spec.mutating and
                                principal.role in (Role.SUPERVISOR, Role.ADMIN))

    def _audit(self, conn: _Connection, cmd: str, args: dict[str, Any], outcome: str,
               code: ErrorCode | None, principal: Principal | None = None) -> None:
        who = principal or conn.session.principal
        self.audit.record(AuditEntry(
            time.time(), who.user if who else "", who.role.value if who else "", cmd,
            redact(args), outcome, code.value if code else None, conn.peer))

    async def _business(self, conn: _Connection, principal: Principal,
                        request: Request) -> dict[str, Any]:
        args = dict(request.args)
        await authorize(self.backend, principal, request.cmd, args, self._monitors)
        result = await _BUSINESS[request.cmd](self.backend, principal, args)
        if request.cmd in ("monitor.listen", "monitor.whisper", "monitor.barge"):
            self._monitors[result["monitor_id"]] = (principal.user, args["agent_id"])
        elif request.cmd == "monitor.stop":
            self._monitors.pop(args["monitor_id"], None)
        return result

    # -------------------------------------------------------------- session commands

    async def _hello(self, conn: _Connection, request: Request) -> dict[str, Any]:
        return {"server": SERVER_NAME, "version": PROTOCOL_VERSION,
                "capabilities": list(CAPABILITIES), "heartbeat_s": self.config.heartbeat_s,
                "max_line_bytes": self.config.max_line_bytes}

    async def _login(self, conn: _Connection, request: Request) -> dict[str, Any]:
        args = request.args
        loop = asyncio.get_running_loop()
        try:
            principal, token = await self.auth.login(
                user=args["user"], password=args["password"], token=args["token"],
                now=loop.time())
        except CtiRequestError:
            if conn.session.login_failed():
                logger.info("CTI client %s: too many failed logins; closing", conn.peer)
            raise
        except Exception:  # the user store failed: leave LOGGING_IN, report internal
            conn.session.login_failed()
            raise
        conn.session.login_succeeded(principal)
        stream = _Stream(secrets.token_urlsafe(12), principal, token,
                         EventRing(self.config.ring_size), conn=conn)
        self._streams[stream.session_id] = stream
        conn.stream = stream
        logger.info("CTI login %s (%s) from %s", principal.user, principal.role.value,
                    conn.peer)
        return {"user": principal.user, "role": principal.role.value,
                "queues": sorted(principal.queues), "all_queues": principal.all_queues,
                "agent_id": principal.agent_id, "token": token,
                "session_id": stream.session_id}

    async def _logout(self, conn: _Connection, request: Request) -> dict[str, Any]:
        stream = conn.stream
        if stream is not None:
            self.auth.tokens.revoke(stream.token)
            self._streams.pop(stream.session_id, None)
            conn.stream = None
        return {}

    async def _ping(self, conn: _Connection, request: Request) -> dict[str, Any]:
        stream = conn.stream
        return {"last_seq": stream.ring.seq if stream else 0}

    def _stream_of(self, conn: _Connection) -> _Stream:
        assert conn.stream is not None
        return conn.stream

    async def _subscribe(self, conn: _Connection, request: Request) -> dict[str, Any]:
        stream = self._stream_of(conn)
        args = request.args
        for pattern in args["events"] or ():
            if pattern not in EVENTS and not (pattern.endswith("*") and any(
                    name.startswith(pattern[:-1]) for name in EVENTS)):
                raise CtiRequestError(ErrorCode.INVALID_ARGS, f"unknown event {pattern!r}",
                                      "events")
        for queue in args["queues"] or ():
            if not stream.principal.in_scope((queue,)):
                raise CtiRequestError(ErrorCode.FORBIDDEN,
                                      f"queue {queue} is not in your scope", "queues")
        sub_id = f"s{len(stream.filters) + 1}-{secrets.token_hex(3)}"
        stream.filters[sub_id] = EventFilter.build(args["events"] or (), args["queues"] or (),
                                                   args["agents"] or ())
        return {"subscription_id": sub_id, "session_id": stream.session_id,
                "last_seq": stream.ring.seq}

    async def _unsubscribe(self, conn: _Connection, request: Request) -> dict[str, Any]:
        stream = self._stream_of(conn)
        if stream.filters.pop(request.args["subscription_id"], None) is None:
            raise CtiRequestError(ErrorCode.NOT_FOUND, "no such subscription",
                                  "subscription_id")
        return {}

    async def _snapshot(self, conn: _Connection, request: Request) -> dict[str, Any]:
        stream = self._stream_of(conn)
        snap = await self.backend.snapshot()
        last_seq = stream.ring.seq  # no await between the snapshot and this read
        return {"snapshot": filter_snapshot(stream.principal, snap, request.args["queues"]),
                "session_id": stream.session_id, "last_seq": last_seq}

    async def _resume(self, conn: _Connection, request: Request) -> dict[str, Any]:
        current = self._stream_of(conn)
        old = self._streams.get(request.args["session_id"])
        if old is None or old.principal.user != current.principal.user:
            raise CtiRequestError(ErrorCode.RESYNC_REQUIRED,
                                  "unknown or expired session; subscribe and take a snapshot",
                                  "session_id")
        if old is current:
            raise CtiRequestError(ErrorCode.INVALID_ARGS, "this is the current session",
                                  "session_id")
        lines = old.ring.since(request.args["last_seq"])
        if lines is None:
            raise CtiRequestError(ErrorCode.RESYNC_REQUIRED,
                                  "events since last_seq are no longer kept; take a snapshot",
                                  "last_seq")
        if old.conn is not None:  # the old connection is half-dead: the client left it
            old.conn.abort()
        for seq, tail in lines:
            conn.enqueue(_EVENT_HEAD % seq + tail)
        old.conn, old.detached_at, old.principal = conn, None, current.principal
        self.auth.tokens.revoke(old.token)
        old.token = current.token
        del self._streams[current.session_id]
        conn.stream = old
        return {"session_id": old.session_id, "replayed": len(lines), "last_seq": old.ring.seq}


_SESSION_HANDLERS: dict[str, Handler] = {
    "hello": CtiServer._hello, "auth.login": CtiServer._login, "auth.logout": CtiServer._logout,
    "ping": CtiServer._ping, "subscribe": CtiServer._subscribe,
    "unsubscribe": CtiServer._unsubscribe, "snapshot.get": CtiServer._snapshot,
    "resume": CtiServer._resume,
}
