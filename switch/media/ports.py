"""RTP/RTCP port allocation from a configured range (RFC 3550 §11: RTP on an even port,
RTCP on the next, odd, one).

Pure: no sockets. The shell binds the port it is given; if the bind fails (another
program owns it) it calls :meth:`RtpPortAllocator.discard` and asks again.

Order: without an ``rng`` ports are handed out lowest first; with an injected
``random.Random`` the pool is shuffled once (so a fresh process does not reuse exactly
the ports of the one before, whose stale packets may still be in flight), deterministic
for a given seed. Released ports go to the *back* of the queue for the same reason.
"""

from __future__ import annotations

import logging
import random
from collections import deque

logger = logging.getLogger(__name__)

__all__ = ["PortsExhaustedError", "RtpPortAllocator"]


class PortsExhaustedError(RuntimeError):
    """Every RTP port of the range is in use (answer 503 to the new call)."""


class RtpPortAllocator:
    """Even RTP ports in ``[start, end]`` whose RTCP port (``port + 1``) is in range too."""

    def __init__(self, start: int, end: int, rng: random.Random | None = None) -> None:
        if not 0 < start <= end <= 65535:
            raise ValueError(f"bad port range {start}-{end}")
        first = start + (start & 1)
        ports = list(range(first, end, 2))  # port + 1 <= end
        if not ports:
            raise ValueError(f"port range {start}-{end} holds no even/odd RTP/RTCP pair")
        if rng is not None:
            rng.shuffle(ports)
        self.start = start
        self.end = end
        self._free: deque[int] = deque(ports)
        self._used: set[int] = set()
        self.discarded: set[int] = set()

    @property
    def available(self) -> int:
        return len(self._free)

    @property
    def in_use(self) -> int:
        return len(self._used)

    def allocate(self) -> int:
        """An even RTP port; RTCP is ``port + 1``.

        Raises:
            PortsExhaustedError: no free port.
        """
        if not self._free:
            raise PortsExhaustedError(
                f"all {len(self._used)} RTP ports of {self.start}-{self.end} in use"
            )
        port = self._free.popleft()
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        """Give a port back (it will be reused last).

        Raises:
            ValueError: the port was not allocated (a double release is a bug).
        """
        if port not in self._used:
            raise ValueError(f"port {port} is not allocated")
        self._used.remove(port)
        self._free.append(port)

    def discard(self, port: int) -> None:
        """Take an allocated port out of service (its bind failed: someone else owns it)."""
        if port not in self._used:
            raise ValueError(f"port {port} is not allocated")
        self._used.remove(port)
        self.discarded.add(port)
        logger.warning("RTP port %d taken out of the pool (bind failed)", port)
