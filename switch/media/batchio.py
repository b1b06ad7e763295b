"""Batched RTP socket I/O of one engine host: drain every channel socket, send every packet.

Why: per-datagram Python (an event-loop callback, a ``recvfrom`` returning a bytes object and
an address tuple, a ``sendto`` with a tuple) cost about 10 us per packet and limited one
worker to ~600 channels (profiled with cProfile: socket calls and the loop's per-datagram
dispatch took 2/3 of the process; the tick's numpy work 1/10). Here the RTP sockets are not
registered with the event loop at all: they sit in one level-triggered epoll set of their
own, and once per drain :meth:`BatchIO.drain` asks it which sockets are readable and receives
every queued datagram of those into preallocated arrays (:class:`RxBatch`); an idle socket
costs nothing (a ``recv`` that finds nothing costs about 0.8 us here, per socket and drain).
:meth:`BatchIO.send` sends one tick's packets from one buffer.

Two implementations with the same contract (tests check they give identical batches):

* ``"c"``: ``switch.media._rtpio`` (``_rtpio.c``, built by ``setup.py``): ``epoll_wait``,
  ``recvmmsg`` per ready socket and a ``sendto`` loop, without the GIL.
* ``"python"``: the same loops with ``select.epoll.poll``, ``socket.recvmsg_into`` and
  ``sendto`` (the fallback when the extension was not built; slower per packet).

Arrival times are the kernel's receive timestamps (``SO_TIMESTAMPNS``), moved to the
monotonic clock, so RFC 3550 A.8 jitter and the latch's silence timer see when a packet
really arrived, not when the host got round to draining it.
"""

from __future__ import annotations

import logging
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

__all__ = ["IMPLEMENTATIONS", "RX_STRIDE", "BatchIO", "RxBatch", "c_available"]

try:
    from switch.media import _rtpio  # type: ignore[attr-defined]
except ImportError:  # built by setup.py; optional
    _rtpio = None

IMPLEMENTATIONS = ("auto", "c", "python")
#: Room per received datagram. Longer datagrams are truncated and reported with length -1
#: (counted ``bad`` by the engine): 1,024 octets hold 100 ms of G.711 plus any header.
RX_STRIDE = 1024
SO_TIMESTAMPNS = 35  # Linux <asm-generic/socket.h>; the socket module does not export it
_VLEN = 16  # datagrams per recvmmsg call
_TS = struct.Struct("@qq")  # struct timespec on 64-bit Linux


def c_available() -> bool:
    """True when the C extension was built and imports."""
    return _rtpio is not None


@dataclass(slots=True)
class RxBatch:
    """Datagrams received by one :meth:`BatchIO.drain` (the first ``count`` rows).

    ``data[j, :lens[j]]`` is datagram j (``lens[j] == -1``: longer than ``RX_STRIDE``),
    received on the socket of engine slot ``slots[j]`` from ``fam[j]`` (4 or 6) address
    ``ip[j]`` (IPv4, host order) or ``ip6[j]``, port ``port[j]``, at monotonic ``t[j]`` s.
    Datagrams of one slot are in arrival order.
    """

    count: int
    slots: NDArray[np.int64]
    data: NDArray[np.uint8]
    lens: NDArray[np.int32]
    ip: NDArray[np.uint32]
    port: NDArray[np.uint16]
    fam: NDArray[np.uint8]
    ip6: NDArray[np.uint8]
    t: NDArray[np.float64]


class BatchIO:
    """The RTP sockets of one engine host, drained and written in batches.

    Args:
        capacity: slots (engine capacity); sockets are registered per slot.
        impl: "auto" (C when built, else Python), "c" or "python".
        max_batch: datagrams per drain chunk (more are handed over in further chunks).

    Raises:
        ValueError: unknown ``impl``, or "c" when the extension is not built.
    """

    def __init__(self, capacity: int, impl: str = "auto", max_batch: int = 4096) -> None:
        if impl not in IMPLEMENTATIONS:
            raise ValueError(f"unknown RTP I/O implementation {impl!r}")
        if impl == "c" and _rtpio is None:
            raise ValueError("RTP I/O 'c' requested but switch.media._rtpio is not built "
                             "(pip install -e . with a C compiler and Python headers)")
        self.impl = "c" if impl == "c" or (impl == "auto" and _rtpio is not None) else "python"
        self.capacity = capacity
        self._fd_of = np.full(capacity, -1, dtype=np.int32)
        self._sock_of: list[socket.socket | None] = [None] * capacity
        self._slot_of_fd = np.full(1024, -1, dtype=np.int32)
        self._epoll = select.epoll()
        cap = max_batch
        self._data = np.zeros((cap, RX_STRIDE), dtype=np.uint8)
        self._lens = np.zeros(cap, dtype=np.int32)
        self._idx = np.zeros(cap, dtype=np.int32)
        self._ip = np.zeros(cap, dtype=np.uint32)
        self._port = np.zeros(cap, dtype=np.uint16)
        self._fam = np.zeros(cap, dtype=np.uint8)
        self._ip6 = np.zeros((cap, 16), dtype=np.uint8)
        self._tns = np.zeros(cap, dtype=np.int64)
        self._views = [memoryview(row) for row in self._data]
        self._err = np.zeros(0, dtype=np.uint8)
        self.rx_errors = 0
        self.drains = 0

    # ------------------------------------------------------------------ sockets

    def register(self, slot: int, sock: socket.socket) -> None:
        """Drain ``sock`` for ``slot`` from now on; asks for kernel receive timestamps."""
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError as exc:  # arrival = drain time instead
            logger.debug("SO_TIMESTAMPNS unavailable: %s", exc)
        if self._sock_of[slot] is not None:
            self.unregister(slot)
        fd = sock.fileno()
        if fd >= self._slot_of_fd.size:
            grown = np.full(max(fd + 1, 2 * self._slot_of_fd.size), -1, dtype=np.int32)
            grown[: self._slot_of_fd.size] = self._slot_of_fd
            self._slot_of_fd = grown
        self._epoll.register(fd, select.EPOLLIN)
        self._slot_of_fd[fd] = slot
        self._fd_of[slot] = fd
        self._sock_of[slot] = sock

    def unregister(self, slot: int) -> None:
        """Stop draining the socket of ``slot`` (call before closing it)."""
        fd = int(self._fd_of[slot])
        if fd < 0:
            return
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError) as exc:  # already closed by its owner
            logger.debug("epoll unregister fd %d: %s", fd, exc)
        self._slot_of_fd[fd] = -1
        self._fd_of[slot] = -1
        self._sock_of[slot] = None

    def close(self) -> None:
        """Release the epoll set (the sockets belong to their endpoints)."""
        for slot in np.flatnonzero(self._fd_of >= 0).tolist():
            self.unregister(slot)
        self._epoll.close()

    # ------------------------------------------------------------------ receive

    def drain(self) -> Iterator[RxBatch]:
        """Receive every queued datagram of every registered socket, as chunks of at most
        ``max_batch`` datagrams. The arrays are reused: consume each chunk before asking
        for the next (this is a generator)."""
        self.drains += 1
        full = True
        while full:
            if self.impl == "c":
                count, errors, full = _rtpio.drain(
                    self._epoll.fileno(), self._slot_of_fd, self._data, self._lens, self._idx,
                    self._ip, self._port, self._fam, self._ip6, self._tns, _VLEN)
            else:
                count, errors, full = self._py_drain()
            self.rx_errors += errors
            if count:
                yield RxBatch(count, self._idx[:count].astype(np.int64), self._data[:count],
                              self._lens[:count], self._ip[:count], self._port[:count],
                              self._fam[:count], self._ip6[:count], self._tns[:count] / 1e9)

    def _py_drain(self) -> tuple[int, int, bool]:
        """Pure-Python :func:`_rtpio.drain` (same outputs)."""
        count = errors = 0
        cap = self._lens.size
        anc = socket.CMSG_SPACE(_TS.size)
        shift = time.monotonic_ns() - time.time_ns()
        now = time.monotonic_ns()
        views, lens, idx, tns = self._views, self._lens, self._idx, self._tns
        for fd, _ in self._epoll.poll(0):
            slot = int(self._slot_of_fd[fd]) if fd < self._slot_of_fd.size else -1
            sock = self._sock_of[slot] if slot >= 0 else None
            if sock is None:
                continue
            while True:
                if count >= cap:
                    return count, errors, True
                try:
                    nbytes, ancdata, flags, addr = sock.recvmsg_into([views[count]], anc)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    errors += 1
                    break
                lens[count] = -1 if flags & socket.MSG_TRUNC else nbytes
                idx[count] = slot
                tns[count] = now
                for level, kind, blob in ancdata:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS \
                            and len(blob) >= _TS.size:
                        sec, nsec = _TS.unpack_from(blob)
                        tns[count] = sec * 1_000_000_000 + nsec + shift
                self._store_addr(count, sock.family, addr)
                count += 1
        return count, errors, False

    def _store_addr(self, j: int, family: int, addr: Any) -> None:
        if family == socket.AF_INET6:
            self._fam[j] = 6
            self._ip[j] = 0
            self._ip6[j] = np.frombuffer(socket.inet_pton(socket.AF_INET6, addr[0]), np.uint8)
        else:
            self._fam[j] = 4
            self._ip[j] = int.from_bytes(socket.inet_aton(addr[0]), "big")
        self._port[j] = addr[1]

    # ------------------------------------------------------------------ send

    def send(self, slots: NDArray[np.int64], data: bytes | memoryview, stride: int,
             ip: NDArray[np.uint32], port: NDArray[np.uint16],
             lens: NDArray[np.int32] | None = None) -> NDArray[np.uint8]:
        """Send packet j (``data[j*stride:][:lens[j] or stride]``) from the socket of
        ``slots[j]`` to IPv4 ``ip[j]:port[j]``; returns 1 per packet that failed (full
        buffer, unregistered slot), else 0. Never raises for socket errors."""
        n = int(slots.size)
        if self._err.size < n:
            self._err = np.zeros(max(n, 2 * self._err.size), dtype=np.uint8)
        err = self._err[:n]
        if n == 0:
            return err
        fds = self._fd_of[slots]
        lens32 = None if lens is None else np.ascontiguousarray(lens, dtype=np.int32)
        if self.impl == "c":
            _rtpio.send(fds, data, stride, lens32, np.ascontiguousarray(ip, dtype=np.uint32),
                        np.ascontiguousarray(port, dtype=np.uint16), err)
            return err
        mv = memoryview(data)
        hosts = [socket.inet_ntoa(struct.pack("!I", a)) for a in ip.tolist()]
        sizes = [stride] * n if lens32 is None else lens32.tolist()
        for j, (slot, host, p, size) in enumerate(zip(slots.tolist(), hosts, port.tolist(),
                                                      sizes, strict=True)):
            sock = self._sock_of[slot]
            err[j] = 1
            if sock is None or not 0 <= size <= stride:
                continue
            try:
                sock.sendto(mv[j * stride : j * stride + size], (host, p))
            except OSError as exc:
                logger.debug("slot %d RTP send failed: %s", slot, exc)
                continue
            err[j] = 0
        return err
