"""Typed asyncio client of the CTI protocol, with automatic reconnect and resume.

Usage::

    client = await CtiClient.connect("127.0.0.1", 7000)        # hello is done here
    await client.login("alice", password="…")
    await client.subscribe(events=["call.*", "agent.*"])
    await client.agent_login(device="1001")
    async for event in client.events():                       # CtiEvent(seq, ts, event, data)
        if event.event == "call.delivered":
            print(event.data["screen_pop"])

Rules:

* Rule 1 -- one method per command (names follow :data:`cti.messages.COMMANDS`); an error
  response raises :class:`CtiCommandError` with the wire ``code`` and ``field``.
* Rule 2 (reconnect) -- when the connection drops after login, the client reconnects with
  backoff, logs in with its token and sends ``resume {session_id, last_seq}``: missed events
  arrive in order and duplicates (``seq <= last_seq``) are dropped. If the server answers
  ``resync_required``, the client re-subscribes with the same filters and yields a local
  ``session.resync_required`` event (``seq`` 0): the application then calls
  :meth:`CtiClient.snapshot`. Requests in flight when the link drops raise
  :class:`CtiConnectionLost`; they are not retried (they may have been executed).
* Rule 3 -- the client sends ``ping`` every ``heartbeat_s`` the server announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from cti.messages import (
    COMMANDS,
    PROTOCOL_VERSION,
    CtiError,
    ErrorCode,
    EventMessage,
    dumps,
    validate_event,
)

logger = logging.getLogger(__name__)

__all__ = ["CtiClient", "CtiCommandError", "CtiConnectionLost", "CtiEvent", "LoginInfo"]

CtiEvent = EventMessage
"""An event as delivered to the application: ``seq``, ``ts``, ``event``, ``data``."""

_RESYNC = "session.resync_required"


class CtiCommandError(CtiError):
    """The server answered a request with an error (Rule 1)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{code}: {message}" + (f" (field {field})" if field else ""))
        self.code = code
        self.message = message
        self.field = field


class CtiConnectionLost(CtiError):
    """The connection dropped before the response arrived."""


@dataclass(frozen=True, slots=True)
class LoginInfo:
    """The ``auth.login`` result."""

    user: str
    role: str
    queues: list[str]
    agent_id: str | None
    token: str
    session_id: str


class CtiClient:
    """One CTI connection (see the module docstring).

    Args:
        host, port: the server.
        tls: an SSL context for TLS (``ssl.create_default_context(cafile=...)``).
        reconnect: reconnect and resume automatically after login (Rule 2).
        request_timeout_s: how long a request waits for its response.
        max_line_bytes: longest line accepted from the server.
    """

    def __init__(self, host: str, port: int, *, tls: ssl.SSLContext | None = None,
                 reconnect: bool = True, request_timeout_s: float = 10.0,
                 max_line_bytes: int = 1024 * 1024) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.reconnect = reconnect
        self.request_timeout_s = request_timeout_s
        self.max_line_bytes = max_line_bytes
        self.server_info: dict[str, Any] = {}
        self.login_info: LoginInfo | None = None
        self.last_seq = 0
        self.reconnects = 0
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._events: asyncio.Queue[CtiEvent | None] = asyncio.Queue()
        self._filters: list[dict[str, Any]] = []
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._closing = False
        self.connected = asyncio.Event()

    # -------------------------------------------------------------- connection

    @classmethod
    async def connect(cls, host: str, port: int, tls: ssl.SSLContext | None = None,
                      **options: Any) -> CtiClient:
        """Open a connection and say hello."""
        client = cls(host, port, tls=tls, **options)
        await client._open()
        return client

    async def _open(self) -> None:
        reader, writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.tls, limit=self.max_line_bytes,
            server_hostname=self.host if self.tls else None)
        self._writer = writer
        self._reader_task = asyncio.ensure_future(self._read_loop(reader, writer))
        self.connected.set()
        self.server_info = await self.request("hello", versions=[str(PROTOCOL_VERSION)],
                                              client="softswitch.cti.client")
        heartbeat = float(self.server_info.get("heartbeat_s", 30.0))
        if self._heartbeat_task is None or self._heartbeat_task.done():
            self._heartbeat_task = asyncio.ensure_future(self._heartbeat(heartbeat))

    async def close(self) -> None:
        """Close for good (no reconnect); :meth:`events` ends."""
        self._closing = True
        for task in (self._reconnect_task, self._heartbeat_task):
            if task is not None:
                task.cancel()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        self._events.put_nowait(None)

    async def __aenter__(self) -> CtiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def abort_connection(self) -> None:
        """Drop the TCP connection abruptly (tests of Rule 2; a network failure)."""
        if self._writer is not None:
            self._writer.transport.abort()

    async def _read_loop(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                self._handle_line(line)
        except (ConnectionError, OSError, ValueError) as exc:  # ValueError: line over limit
            logger.info("CTI connection to %s:%d lost: %s", self.host, self.port, exc)
        finally:
            self.connected.clear()
            writer.close()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(CtiConnectionLost("connection lost"))
            self._pending.clear()
            reconnecting = self._reconnect_task is not None and not self._reconnect_task.done()
            if reconnecting:
                pass  # the reconnect loop retries on its own
            elif not self._closing and self.reconnect and self.login_info is not None:
                self._reconnect_task = asyncio.ensure_future(self._reconnect_loop())
            elif not self._closing:
                self._events.put_nowait(None)

    def _handle_line(self, line: bytes) -> None:
        try:
            obj = json.loads(line.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            logger.warning("CTI: server sent a line that is not JSON")
            return
        if not isinstance(obj, dict):
            return
        if obj.get("type") == "res":
            future = self._pending.pop(obj.get("id") or "", None)
            if future is not None and not future.done():
                future.set_result(obj)
            elif obj.get("ok") is False:
                logger.warning("CTI server notice: %s", obj.get("error"))
            return
        if obj.get("type") == "evt":
            try:
                event = validate_event(obj)
            except CtiError as exc:
                logger.warning("CTI: bad event from server: %s", exc)
                return
            if event.seq <= self.last_seq:
                return  # duplicate after a resume
            self.last_seq = event.seq
            self._events.put_nowait(event)

    async def _heartbeat(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            if self.connected.is_set():
                with contextlib.suppress(CtiError, asyncio.TimeoutError):
                    await self.request("ping")

    async def _reconnect_loop(self) -> None:
        """Rule 2."""
        delay = 0.05
        assert self.login_info is not None
        old = self.login_info
        while not self._closing:
            try:
                await self._open()
                info = await self.login(token=old.token)
                break
            except CtiCommandError as exc:
                if exc.code in (ErrorCode.AUTH_FAILED, ErrorCode.LOCKED_OUT):
                    logger.error("CTI reconnect refused: %s", exc)
                    self._events.put_nowait(None)
                    return
                logger.info("CTI reconnect failed (%s); retry in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except (TimeoutError, OSError, CtiError) as exc:
                logger.info("CTI reconnect failed (%s); retry in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        else:
            return
        self.reconnects += 1
        try:
            result = await self.request("resume", session_id=old.session_id,
                                        last_seq=self.last_seq)
        except CtiCommandError as exc:
            if exc.code != ErrorCode.RESYNC_REQUIRED:
                raise
            self.last_seq = 0
            for args in self._filters:
                await self.request("subscribe", **args)
            self._events.put_nowait(CtiEvent(0, 0.0, _RESYNC, {"reason": exc.message}))
            return
        self.login_info = LoginInfo(info.user, info.role, info.queues, info.agent_id,
                                    info.token, result["session_id"])

    # -------------------------------------------------------------- requests

    async def request(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send one command and return its ``result`` (Rule 1).

        Raises:
            CtiCommandError: error response.
            CtiConnectionLost: the link dropped first.
        """
        if cmd not in COMMANDS:
            raise ValueError(f"unknown CTI command {cmd!r}")
        if self._writer is None or not self.connected.is_set():
            raise CtiConnectionLost("not connected")
        req_id = f"c-{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        clean = {k: v for k, v in args.items() if v is not None}
        self._writer.write(dumps({"v": PROTOCOL_VERSION, "type": "req", "id": req_id,
                                  "cmd": cmd, "args": clean}))
        try:
            reply = await asyncio.wait_for(future, self.request_timeout_s)
        finally:
            self._pending.pop(req_id, None)
        if reply.get("ok"):
            return dict(reply.get("result") or {})
        error = reply.get("error") or {}
        raise CtiCommandError(str(error.get("code")), str(error.get("message")),
                              error.get("field"))

    async def events(self) -> AsyncIterator[CtiEvent]:
        """Events in order, across reconnects; ends when the client is closed."""
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    async def next_event(self, timeout_s: float = 5.0) -> CtiEvent:
        """The next event (tests and scripts). Raises TimeoutError, CtiConnectionLost."""
        event = await asyncio.wait_for(self._events.get(), timeout_s)
        if event is None:
            raise CtiConnectionLost("closed")
        return event

    # -------------------------------------------------------------- session

    async def login(self, user: str | None = None, password: str | None = None,
                    token: str | None = None) -> LoginInfo:
        result = await self.request("auth.login", user=user, password=password, token=token)
        self.login_info = LoginInfo(result["user"], result["role"], result["queues"],
                                    result["agent_id"], result["token"], result["session_id"])
        return self.login_info

    async def logout(self) -> None:
        await self.request("auth.logout")
        self.login_info = None
        self._filters.clear()

    async def ping(self) -> dict[str, Any]:
        return await self.request("ping")

    async def subscribe(self, events: list[str] | None = None, queues: list[str] | None = None,
                        agents: list[str] | None = None) -> str:
        args = {"events": events, "queues": queues, "agents": agents}
        result = await self.request("subscribe", **args)
        self._filters.append(args)
        return str(result["subscription_id"])

    async def unsubscribe(self, subscription_id: str) -> None:
        await self.request("unsubscribe", subscription_id=subscription_id)

    async def snapshot(self, queues: list[str] | None = None) -> dict[str, Any]:
        result = await self.request("snapshot.get", queues=queues)
        return result

    async def resume(self, session_id: str, last_seq: int) -> dict[str, Any]:
        return await self.request("resume", session_id=session_id, last_seq=last_seq)

    # -------------------------------------------------------------- agent

    async def agent_login(self, device: str, queues: list[str] | None = None,
                          agent_id: str | None = None) -> dict[str, Any]:
        return await self.request("agent.login", device=device, queues=queues,
                                  agent_id=agent_id)

    async def agent_logout(self, reason: str | None = None,
                           agent_id: str | None = None) -> dict[str, Any]:
        return await self.request("agent.logout", reason=reason, agent_id=agent_id)

    async def set_state(self, state: str, reason: str = "",
                        agent_id: str | None = None) -> dict[str, Any]:
        return await self.request("agent.set_state", state=state, reason=reason,
                                  agent_id=agent_id)

    async def end_wrapup(self, agent_id: str | None = None) -> dict[str, Any]:
        return await self.request("agent.end_wrapup", agent_id=agent_id)

    # -------------------------------------------------------------- calls

    async def make_call(self, destination: str, data: dict[str, Any] | None = None,
                        agent_id: str | None = None) -> str:
        result = await self.request("call.make", destination=destination, data=data,
                                    agent_id=agent_id)
        return str(result["call_id"])

    async def _on_call(self, cmd: str, call_id: str, agent_id: str | None,
                       **extra: Any) -> dict[str, Any]:
        return await self.request(cmd, call_id=call_id, agent_id=agent_id, **extra)

    async def answer(self, call_id: str, agent_id: str | None = None) -> dict[str, Any]:
        return await self._on_call("call.answer", call_id, agent_id)

    async def hangup(self, call_id: str, agent_id: str | None = None) -> dict[str, Any]:
        return await self._on_call("call.hangup", call_id, agent_id)

    async def hold(self, call_id: str, agent_id: str | None = None) -> dict[str, Any]:
        return await self._on_call("call.hold", call_id, agent_id)

    async def retrieve(self, call_id: str, agent_id: str | None = None) -> dict[str, Any]:
        return await self._on_call("call.retrieve", call_id, agent_id)

    async def transfer_blind(self, call_id: str, destination: str,
                             agent_id: str | None = None) -> dict[str, Any]:
        return await self._on_call("call.transfer_blind", call_id, agent_id,
                                   destination=destination)

    async def consult(self, call_id: str, destination: str,
                      agent_id: str | None = None) -> str:
        result = await self._on_call("call.consult", call_id, agent_id,
                                     destination=destination)
        return str(result["consult_call_id"])

    async def transfer_complete(self, call_id: str, consult_call_id: str,
                                agent_id: str | None = None) -> dict[str, Any]:
        return await self._on_call("call.transfer_complete", call_id, agent_id,
                                   consult_call_id=consult_call_id)

    async def conference(self, call_id: str, consult_call_id: str,
                         agent_id: str | None = None) -> dict[str, Any]:
        return await self._on_call("call.conference", call_id, agent_id,
                                   consult_call_id=consult_call_id)

    async def reconnect_call(self, call_id: str, consult_call_id: str,
                             agent_id: str | None = None) -> dict[str, Any]:
        return await self._on_call("call.reconnect", call_id, agent_id,
                                   consult_call_id=consult_call_id)

    async def send_dtmf(self, call_id: str, digits: str,
                        agent_id: str | None = None) -> dict[str, Any]:
        return await self._on_call("call.send_dtmf", call_id, agent_id, digits=digits)

    async def set_data(self, call_id: str, data: dict[str, Any]) -> dict[str, Any]:
        return await self.request("call.set_data", call_id=call_id, data=data)

    async def get_data(self, call_id: str) -> dict[str, Any]:
        return await self.request("call.get_data", call_id=call_id)

    async def record(self, call_id: str, action: str) -> dict[str, Any]:
        return await self.request("call.record", call_id=call_id, action=action)

    # -------------------------------------------------------------- queues

    async def queue_list(self) -> list[dict[str, Any]]:
        return list((await self.request("queue.list"))["queues"])

    async def queue_stats(self, queues: list[str] | None = None) -> list[dict[str, Any]]:
        return list((await self.request("queue.stats", queues=queues))["stats"])

    async def queue_callers(self, queue: str) -> list[dict[str, Any]]:
        return list((await self.request("queue.callers", queue=queue))["callers"])

    async def pickup(self, queue: str, call_id: str,
                     agent_id: str | None = None) -> dict[str, Any]:
        return await self.request("queue.pickup", queue=queue, call_id=call_id,
                                  agent_id=agent_id)

    async def set_priority(self, queue: str, call_id: str, priority: int) -> dict[str, Any]:
        return await self.request("queue.set_priority", queue=queue, call_id=call_id,
                                  priority=priority)

    async def schedule_callback(self, queue: str, number: str, at: float | None = None,
                                data: dict[str, Any] | None = None) -> str:
        result = await self.request("callback.schedule", queue=queue, number=number, at=at,
                                    data=data)
        return str(result["callback_id"])

    # -------------------------------------------------------------- supervisor

    async def monitor(self, agent_id: str, mode: str = "listen") -> str:
        """Start listen, whisper or barge on an agent; returns the monitor id."""
        if mode not in ("listen", "whisper", "barge"):
            raise ValueError("mode must be listen, whisper or barge")
        result = await self.request(f"monitor.{mode}", agent_id=agent_id)
        return str(result["monitor_id"])

    async def monitor_switch(self, monitor_id: str, mode: str) -> dict[str, Any]:
        return await self.request("monitor.switch", monitor_id=monitor_id, mode=mode)

    async def monitor_stop(self, monitor_id: str) -> dict[str, Any]:
        return await self.request("monitor.stop", monitor_id=monitor_id)

    async def force_state(self, agent_id: str, state: str, reason: str = "") -> dict[str, Any]:
        return await self.request("agent.force_state", agent_id=agent_id, state=state,
                                  reason=reason)

    async def force_logout(self, agent_id: str, reason: str = "") -> dict[str, Any]:
        return await self.request("agent.force_logout", agent_id=agent_id, reason=reason)

    async def force_hangup(self, call_id: str) -> dict[str, Any]:
        return await self.request("call.force_hangup", call_id=call_id)

    async def take_over(self, call_id: str, agent_id: str | None = None) -> dict[str, Any]:
        return await self.request("call.take_over", call_id=call_id, agent_id=agent_id)
