"""Batched RTP socket I/O of one engine host: drain every channel socket, send every packet.

Why: per-datagram Python (an event-loop callback, a ``recvfrom`` returning a bytes object and
an address tuple, a ``sendto`` with a tuple) cost about 10 us per packet and limited one
worker to ~600 channels (profiled with cProfile: socket calls and the loop's per-datagram
dispatch took 2/3 of the process; the tick's numpy work 1/10). Here the RTP sockets are not
registered with the event loop at all: once per drain, :meth:`BatchIO.drain` receives every
queued datagram of every registered socket into preallocated arrays (:class:`RxBatch`), and
:meth:`BatchIO.send` sends one tick's packets from one buffer.

Two implementations with the same contract (tests check they give identical batches):

* ``"c"``: ``switch.media._rtpio`` (``_rtpio.c``, built by ``setup.py``): ``recvmmsg`` per
  socket and a ``sendto`` loop, without the GIL.
* ``"python"``: the same loops with ``socket.recvmsg_into`` / ``sendto`` (the fallback when
  the extension was not built; much slower per packet).

Arrival times are the kernel's receive timestamps (``SO_TIMESTAMPNS``), moved to the
monotonic clock, so RFC 3550 A.8 jitter and the latch's silence timer see when a packet
really arrived, not when the host got round to draining it.
"""

from __future__ import annotations

import logging
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
        self._dirty = True
        self._fds = np.zeros(0, dtype=np.int32)
        self._slots = np.zeros(0, dtype=np.int64)
        self._socks: list[socket.socket] = []
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
        self._fd_of[slot] = sock.fileno()
        self._sock_of[slot] = sock
        self._dirty = True

    def unregister(self, slot: int) -> None:
        """Stop draining the socket of ``slot`` (call before closing it)."""
        self._fd_of[slot] = -1
        self._sock_of[slot] = None
        self._dirty = True

    def _refresh(self) -> None:
        self._slots = np.flatnonzero(self._fd_of >= 0)
        self._fds = self._fd_of[self._slots].copy()
        self._socks = [self._sock_of[s] for s in self._slots.tolist()]  # type: ignore[misc]
        self._dirty = False

    # ------------------------------------------------------------------ receive

    def drain(self) -> Iterator[RxBatch]:
        """Receive every queued datagram of every registered socket, as chunks of at most
        ``max_batch`` datagrams. The arrays are reused: consume each chunk before asking
        for the next (this is a generator)."""
        if self._dirty:
            self._refresh()
        self.drains += 1
        first = 0
        while first >= 0 and self._fds.size:
            if self.impl == "c":
                count, errors, more = _rtpio.drain(
                    self._fds, self._data, self._lens, self._idx, self._ip, self._port,
                    self._fam, self._ip6, self._tns, first, _VLEN)
            else:
                count, errors, more = self._py_drain(first)
            self.rx_errors += errors
            if count:
                yield RxBatch(count, self._slots[self._idx[:count]], self._data[:count],
                              self._lens[:count], self._ip[:count], self._port[:count],
                              self._fam[:count], self._ip6[:count], self._tns[:count] / 1e9)
            first = more

    def _py_drain(self, first: int) -> tuple[int, int, int]:
        """Pure-Python :func:`_rtpio.drain` (same outputs)."""
        count = errors = 0
        cap = self._lens.size
        anc = socket.CMSG_SPACE(_TS.size)
        shift = time.monotonic_ns() - time.time_ns()
        now = time.monotonic_ns()
        views, lens, idx, tns = self._views, self._lens, self._idx, self._tns
        for i in range(first, len(self._socks)):
            sock = self._socks[i]
            while True:
                if count >= cap:
                    return count, errors, i
                try:
                    nbytes, ancdata, flags, addr = sock.recvmsg_into([views[count]], anc)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    errors += 1
                    break
                lens[count] = -1 if flags & socket.MSG_TRUNC else nbytes
                idx[count] = i
                tns[count] = now
                for level, kind, blob in ancdata:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS \
                            and len(blob) >= _TS.size:
                        sec, nsec = _TS.unpack_from(blob)
                        tns[count] = sec * 1_000_000_000 + nsec + shift
                self._store_addr(count, sock.family, addr)
                count += 1
        return count, errors, -1

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
