"""RTP/RTCP UDP endpoints of the media engine (async shell, DESIGN.md ring 3).

One endpoint per channel: an even RTP port and the next odd port for RTCP (RFC 3550
section 11), taken from the worker's range through ``ports.RtpPortAllocator``. The sockets
are created and bound here (no resolver round trip) and handed to
``loop.create_datagram_endpoint(sock=...)``.

Rule 1 -- the receive path does nothing but hand ``(slot, data, addr, now)`` to the engine
(``MediaEngine.receive_rtp``): parsing, validation, latching and the jitter buffer are the
engine's; the protocol object is a few attributes and one call. The engine host opens its
endpoints with ``batch=True``: then the RTP socket is left to ``batchio.BatchIO`` (drained
once per slice of the tick, all channels together) and only RTCP goes through the loop.

Rule 2 -- symmetric RTP (NAT): the sockets are never ``connect()``-ed, because the engine
may latch to a different source address than the SDP said; the engine decides where to
send and :meth:`RtpEndpoint.send` takes the address per packet.

Rule 3 -- socket errors (ICMP port unreachable reported as ``ConnectionRefusedError`` on the
next call, ``ENOBUFS``) are counted, never raised into the tick: a dead peer must not stop
the other channels of the worker.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from switch.media.errors import MediaError

logger = logging.getLogger(__name__)

__all__ = ["EndpointError", "RtpEndpoint", "open_endpoint"]

Receiver = Callable[[int, bytes, tuple[str, int], float], None]


class EndpointError(MediaError):
    """No RTP port pair could be bound."""


class _Protocol(asyncio.DatagramProtocol):
    """Forwards every datagram to the engine with the arrival time (rule 1)."""

    __slots__ = ("clock", "errors", "receive", "slot", "transport")

    def __init__(self, slot: int, receive: Receiver, clock: Callable[[], float]) -> None:
        self.slot = slot
        self.receive = receive
        self.clock = clock
        self.transport: asyncio.DatagramTransport | None = None
        self.errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.receive(self.slot, data, addr, self.clock())

    def error_received(self, exc: Exception) -> None:
        self.errors += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("slot %d socket error: %s", self.slot, exc)


class RtpEndpoint:
    """The RTP and RTCP sockets of one channel.

    Attributes:
        slot: the engine slot it feeds.
        port: local RTP port (RTCP is ``port + 1``).
    """

    def __init__(self, slot: int, port: int, rtp: tuple[Any | None, _Protocol],
                 rtcp: tuple[Any, _Protocol], release: Callable[[int], None],
                 rtp_sock: socket.socket | None = None) -> None:
        self.slot = slot
        self.port = port
        self._sock = rtp_sock
        self._rtp_tr, self._rtp_proto = rtp
        self._rtcp_tr, self._rtcp_proto = rtcp
        self._release = release
        self.send_errors = 0
        self.closed = False

    @property
    def local_addr(self) -> tuple[str, int]:
        """(host, port) the RTP socket is bound to."""
        if self._rtp_tr is None:
            assert self._sock is not None
            return self._sock.getsockname()[:2]
        return self._rtp_tr.get_extra_info("sockname")[:2]

    @property
    def rtp_socket(self) -> socket.socket | None:
        """The RTP socket (batch mode: read by ``batchio.BatchIO``, not by the loop)."""
        return self._sock

    @property
    def socket_errors(self) -> int:
        """Errors reported by the kernel on either socket plus failed sends."""
        return self._rtp_proto.errors + self._rtcp_proto.errors + self.send_errors

    def send(self, data: bytes | memoryview, addr: tuple[str, int]) -> None:
        """Send one RTP datagram (never raises, rule 3).

        Straight on the non-blocking socket: a UDP datagram is written whole or not at all,
        and on this machine ``socket.sendto`` costs about half of uvloop's
        ``transport.sendto`` (3.5 vs 7.6 us). A full send buffer drops the packet (counted),
        as a router would; RTP must not queue behind itself.
        """
        try:
            if self._sock is not None:
                self._sock.sendto(data, addr)
            else:
                self._rtp_tr.sendto(data, addr)
        except (OSError, RuntimeError, ValueError) as exc:
            self.send_errors += 1
            logger.debug("slot %d RTP send failed: %s", self.slot, exc)

    def sendto_fn(self) -> Callable[[bytes, tuple[str, int]], Any]:
        """The raw ``sendto`` of the RTP socket, for the engine host's send loop (it counts
        errors in :attr:`send_errors` itself)."""
        if self._sock is not None:
            return self._sock.sendto
        return self._rtp_tr.sendto

    def send_rtcp(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send one RTCP datagram to ``addr`` (the RTCP port of the peer)."""
        try:
            self._rtcp_tr.sendto(data, addr)
        except (OSError, RuntimeError, ValueError) as exc:
            self.send_errors += 1
            logger.debug("slot %d RTCP send failed: %s", self.slot, exc)

    def close(self) -> None:
        """Close both sockets and return the port pair to the allocator (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._rtp_tr is not None:
            self._rtp_tr.close()
        elif self._sock is not None:
            self._sock.close()
        self._rtcp_tr.close()
        self._release(self.port)


def _bind(host: str, port: int, rcvbuf: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def open_endpoint(loop: asyncio.AbstractEventLoop, allocator: Any, slot: int,
                        receive_rtp: Receiver, receive_rtcp: Receiver, *,
                        host: str = "127.0.0.1", rcvbuf: int = 0,
                        attempts: int = 16, batch: bool = False) -> RtpEndpoint:
    """Allocate a port pair, bind both sockets and register them with the loop.

    With ``batch=True`` the RTP socket is *not* registered with the loop (``receive_rtp`` is
    not called): the engine host drains it with ``batchio.BatchIO`` instead; RTCP, a few
    packets per minute, stays on the loop.

    A port held by another program is taken out of the pool (``allocator.discard``) and the
    next one tried, up to ``attempts`` times.

    Raises:
        EndpointError: the range is exhausted or every attempt failed to bind.
    """
    clock = time.monotonic  # uvloop's loop.time() is cached at 1 ms resolution
    for _ in range(attempts):
        try:
            port = allocator.allocate()
        except (MediaError, RuntimeError) as exc:
            raise EndpointError(f"no free RTP port: {exc}") from exc
        try:
            rtp_sock = _bind(host, port, rcvbuf)
        except OSError:
            allocator.discard(port)
            continue
        try:
            rtcp_sock = _bind(host, port + 1, rcvbuf)
        except OSError:
            rtp_sock.close()
            allocator.discard(port)
            continue
        rtp_proto = _Protocol(slot, receive_rtp, clock)
        rtcp_proto = _Protocol(slot, receive_rtcp, clock)
        try:
            if batch:
                rtp: tuple[Any, _Protocol] = (None, rtp_proto)
            else:
                rtp = await loop.create_datagram_endpoint(lambda p=rtp_proto: p, sock=rtp_sock)
            rtcp = await loop.create_datagram_endpoint(lambda p=rtcp_proto: p, sock=rtcp_sock)
        except BaseException:
            rtp_sock.close()
            rtcp_sock.close()
            allocator.release(port)
            raise
        return RtpEndpoint(slot, port, rtp, rtcp, allocator.release, rtp_sock)
    raise EndpointError(f"could not bind an RTP port pair on {host} after {attempts} attempts")
