"""Socket owners for SIP: UDP, TCP and TLS over IPv4 and IPv6 (RFC 3261 §18).

This is the thin asyncio ring around the sans-IO core. It turns socket activity into calls
of one ``Sink`` (datagram or framed stream message, with where it came from) and sends
bytes where the core says. Rules kept here, because they are about sockets:

* Stream connections are reused (§18.2.2, RFC 5923 spirit): a response goes back on the
  connection its request came on, and a request to a host:port we already have a
  connection with goes on that connection.
* Limits: a datagram larger than ``max_message_bytes`` is dropped (and counted); a stream
  whose framing fails is closed (there is no way to resynchronise, RFC 3261 §18.3).
* Keep-alive: a CRLFCRLF ping on a stream is answered with CRLF (RFC 5626 §3.5.1).
* Idle stream connections are closed after ``idle_timeout_s``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import SipParseError
from ..framing import StreamFramer
from ..message import Request, Response

logger = logging.getLogger(__name__)

__all__ = ["Sink", "TransportSet", "TransportStats"]

#: (transport, data-or-message, remote host, remote port, connection id)
Sink = Callable[[str, "bytes | Request | Response", str, int, "int | None"], None]


@dataclass(slots=True)
class TransportStats:
    """Counters an operator can read (and tests assert on)."""

    datagrams_in: int = 0
    datagrams_out: int = 0
    oversize_dropped: int = 0
    stream_messages_in: int = 0
    stream_framing_errors: int = 0
    connections_opened: int = 0
    connections_closed: int = 0
    send_errors: int = 0


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: TransportSet) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def datagram_received(self, data: bytes, addr: tuple[str, int] | tuple) -> None:
        owner = self.owner
        owner.stats.datagrams_in += 1
        if len(data) > owner.max_message_bytes:
            owner.stats.oversize_dropped += 1
            return
        if owner.trace is not None:
            owner.trace("in", "udp", self.local, (addr[0], addr[1]), data)
        owner.sink("udp", data, addr[0], addr[1], None)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: nothing to do for SIP over UDP (timers cover it).
        logger.debug("udp error: %s", exc)

    @property
    def local(self) -> tuple[str, int]:
        assert self.transport is not None
        name = self.transport.get_extra_info("sockname")
        return (name[0], name[1])


class _StreamProtocol(asyncio.Protocol):
    """One TCP or TLS connection with its own framer."""

    def __init__(self, owner: TransportSet, transport_name: str) -> None:
        self.owner = owner
        self.name = transport_name
        self.conn_id = next(owner._conn_ids)
        self.framer = StreamFramer(
            max_bytes=owner.max_message_bytes, max_headers=owner.max_headers
        )
        self.transport: asyncio.Transport | None = None
        self.remote: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        self.last_activity = 0.0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.remote = (peer[0], peer[1])
        self.local = (sock[0], sock[1])
        self.last_activity = asyncio.get_running_loop().time()
        self.owner._register(self)

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        self.last_activity = asyncio.get_running_loop().time()
        self.framer.receive_data(data)
        while True:
            try:
                msg = self.framer.next_message()
            except SipParseError as exc:
                owner.stats.stream_framing_errors += 1
                if not self.framer.broken:
                    # One framed message was malformed; the stream itself is still in step.
                    logger.info("%s from %s:%d: dropped a malformed message (%s)",
                                self.name, self.remote[0], self.remote[1], exc.detail)
                    continue
                logger.warning(
                    "%s from %s:%d: unframeable data (%s); closing the connection",
                    self.name, self.remote[0], self.remote[1], exc.detail,
                )
                if self.transport is not None:
                    self.transport.close()
                return
            if msg is None:
                break
            owner.stats.stream_messages_in += 1
            if owner.trace is not None:
                owner.trace("in", self.name, self.local, self.remote, bytes(msg))
            owner.sink(self.name, msg, self.remote[0], self.remote[1], self.conn_id)
        pongs = self.framer.take_pongs()
        if pongs and self.transport is not None:
            self.transport.write(b"\r\n" * pongs)

    def send(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("connection closed")
        self.last_activity = asyncio.get_running_loop().time()
        self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._unregister(self)
        if not self.closed.done():
            self.closed.set_result(None)


@dataclass
class _Listener:
    transport_name: str
    server: asyncio.base_events.Server | None = None
    udp: asyncio.DatagramTransport | None = None
    address: tuple[str, int] = ("", 0)


@dataclass
class TransportSet:
    """All SIP sockets of a node.

    ``sink`` receives every inbound datagram or framed message; ``trace`` (optional) sees
    every message in both directions for ``--sip-trace``.
    """

    sink: Sink
    max_message_bytes: int = 65536
    max_headers: int = 128
    idle_timeout_s: float = 600.0
    trace: Callable[[str, str, tuple[str, int], tuple[str, int], bytes], None] | None = None
    tls_context: ssl.SSLContext | None = None
    stats: TransportStats = field(default_factory=TransportStats)

    def __post_init__(self) -> None:
        self._conn_ids = itertools.count(1)
        self._listeners: list[_Listener] = []
        self._udp: dict[int, _UdpProtocol] = {}  # by address family
        self._conns: dict[int, _StreamProtocol] = {}
        self._by_remote: dict[tuple[str, str, int], int] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._connecting: dict[tuple[str, str, int], asyncio.Task[_StreamProtocol]] = {}

    # -- listening -------------------------------------------------------------------
    async def listen_udp(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(host, port), family=family
        )
        sock = transport.get_extra_info("socket")
        if sock is not None:
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
                except OSError:
                    pass
        self._udp.setdefault(family, protocol)
        addr = transport.get_extra_info("sockname")
        self._listeners.append(_Listener("udp", udp=transport, address=(addr[0], addr[1])))
        logger.info("SIP listening on udp %s port %d", addr[0], addr[1])
        self._start_reaper()
        return (addr[0], addr[1])

    async def listen_stream(self, transport_name: str, host: str, port: int) -> tuple[str, int]:
        """Listen for TCP (``"tcp"``) or TLS (``"tls"``, needs ``tls_context``)."""
        if transport_name == "tls" and self.tls_context is None:
            raise ValueError("TLS listener needs a certificate and key (sip.tls_cert, sip.tls_key)")
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _StreamProtocol(self, transport_name),
            host=host,
            port=port,
            ssl=self.tls_context if transport_name == "tls" else None,
            reuse_address=True,
        )
        addr = server.sockets[0].getsockname()
        self._listeners.append(_Listener(transport_name, server=server, address=(addr[0], addr[1])))
        logger.info("SIP listening on %s %s port %d", transport_name, addr[0], addr[1])
        self._start_reaper()
        return (addr[0], addr[1])

    def local_address(self, transport_name: str) -> tuple[str, int] | None:
        for lst in self._listeners:
            if lst.transport_name == transport_name:
                return lst.address
        return None

    # -- connection table ----------------------------------------------------------------
    def _register(self, conn: _StreamProtocol) -> None:
        self.stats.connections_opened += 1
        self._conns[conn.conn_id] = conn
        self._by_remote[(conn.name, conn.remote[0], conn.remote[1])] = conn.conn_id

    def _unregister(self, conn: _StreamProtocol) -> None:
        if self._conns.pop(conn.conn_id, None) is not None:
            self.stats.connections_closed += 1
        key = (conn.name, conn.remote[0], conn.remote[1])
        if self._by_remote.get(key) == conn.conn_id:
            del self._by_remote[key]

    def connection_count(self) -> int:
        return len(self._conns)

    # -- sending ---------------------------------------------------------------------------
    def send(
        self, transport_name: str, data: bytes, host: str, port: int, conn_id: int | None = None
    ) -> None:
        """Send now if possible; stream connects happen in the background."""
        name = transport_name.lower()
        if name == "udp":
            proto = self._udp.get(socket.AF_INET6 if ":" in host else socket.AF_INET)
            if proto is None or proto.transport is None:
                self.stats.send_errors += 1
                logger.warning("no UDP socket for %s", host)
                return
            self.stats.datagrams_out += 1
            if self.trace is not None:
                self.trace("out", "udp", proto.local, (host, port), data)
            proto.transport.sendto(data, (host, port))
            return
        conn = self._conns.get(conn_id) if conn_id is not None else None
        if conn is None:
            cid = self._by_remote.get((name, host, port))
            conn = self._conns.get(cid) if cid is not None else None
        if conn is not None:
            try:
                if self.trace is not None:
                    self.trace("out", name, conn.local, conn.remote, data)
                conn.send(data)
                return
            except ConnectionError:
                self.stats.send_errors += 1
        asyncio.get_running_loop().create_task(self._connect_and_send(name, data, host, port))

    async def _connect_and_send(self, name: str, data: bytes, host: str, port: int) -> None:
        key = (name, host, port)
        try:
            task = self._connecting.get(key)
            if task is None:
                task = asyncio.ensure_future(self._connect(name, host, port))
                self._connecting[key] = task
                task.add_done_callback(lambda _t: self._connecting.pop(key, None))
            conn = await task
            if self.trace is not None:
                self.trace("out", name, conn.local, conn.remote, data)
            conn.send(data)
        except (TimeoutError, OSError, ConnectionError, ssl.SSLError) as exc:
            self.stats.send_errors += 1
            logger.warning("cannot send over %s to %s:%d: %s", name, host, port, exc)

    async def _connect(self, name: str, host: str, port: int) -> _StreamProtocol:
        loop = asyncio.get_running_loop()
        ctx: ssl.SSLContext | None = None
        if name == "tls":
            ctx = ssl.create_default_context()
            if self.tls_context is not None and not self.tls_context.check_hostname:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: _StreamProtocol(self, name), host, port, ssl=ctx),
            timeout=10.0,
        )
        return proto

    # -- housekeeping ----------------------------------------------------------------------
    def _start_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap_idle())

    async def _reap_idle(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(30.0, self.idle_timeout_s / 2))
            cutoff = loop.time() - self.idle_timeout_s
            for conn in list(self._conns.values()):
                if conn.last_activity < cutoff and conn.transport is not None:
                    logger.info("closing idle %s connection to %s:%d", conn.name, *conn.remote)
                    conn.transport.close()

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for lst in self._listeners:
            if lst.server is not None:
                lst.server.close()
            if lst.udp is not None:
                lst.udp.close()
        conns = list(self._conns.values())
        for conn in conns:
            if conn.transport is not None:
                conn.transport.close()
        if conns:
            await asyncio.wait([c.closed for c in conns], timeout=2.0)
        for lst in self._listeners:
            if lst.server is not None:
                await lst.server.wait_closed()
        self._listeners.clear()
        self._udp.clear()
