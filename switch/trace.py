"""SIP message trace (``softswitch run --sip-trace FILE``): every message in and out.

One entry per message, written exactly as it crossed the wire:

    2026-11-30T12:00:00.123456Z in udp 127.0.0.1:5060 <- 127.0.0.1:5061 (412 bytes)
    REGISTER sip:softswitch SIP/2.0
    ...
    <blank line>

The header line gives UTC time, direction (``in``/``out``), transport, the local address,
an arrow pointing the way the message went, the remote address and the size. The message
follows byte for byte (CRLF line ends kept), then one blank line. The trace is faithful --
Authorization headers are not masked -- because it exists for debugging; it never holds a
password or HA1 since neither ever goes on the wire.

Writes go to a buffered file: :meth:`SipTrace.record` costs a memory copy, and the buffer is
flushed at most ``flush_interval_s`` (200 ms) after the first unflushed entry -- by a loop
timer when an event loop is attached, otherwise on the next record -- and on close.

:class:`MemoryTrace` keeps entries as :class:`TraceEntry` values for tests (the qlog idea):
both implement the :class:`TraceSink` Protocol the transports call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

logger = logging.getLogger(__name__)

__all__ = ["MemoryTrace", "SipTrace", "TraceEntry", "TraceSink", "format_entry_header"]

Direction = Literal["in", "out"]

FLUSH_INTERVAL_S = 0.2


class TraceSink(Protocol):
    """What a transport calls for every SIP message it receives or sends."""

    def record(self, direction: Direction, transport: str, local: tuple[str, int],
               remote: tuple[str, int], data: bytes, now_wall: float) -> None: ...


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One traced message."""

    direction: Direction
    transport: str
    local: tuple[str, int]
    remote: tuple[str, int]
    data: bytes
    now_wall: float


def _address(addr: tuple[str, int]) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_entry_header(direction: Direction, transport: str, local: tuple[str, int],
                        remote: tuple[str, int], size_bytes: int, now_wall: float) -> str:
    """The header line of an entry (without the newline)."""
    if direction not in ("in", "out"):
        raise ValueError(f"direction must be 'in' or 'out', got {direction!r}")
    stamp = dt.datetime.fromtimestamp(now_wall, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    arrow = "<-" if direction == "in" else "->"
    return (f"{stamp} {direction} {transport.lower()} {_address(local)} {arrow} "
            f"{_address(remote)} ({size_bytes} bytes)")


class SipTrace:
    """Appends entries to a file. Not thread-safe; one per node, used from the loop thread.

    Args:
        path: the trace file; created if missing, appended to if it exists.
        flush_interval_s: longest time an entry waits in the buffer.

    Raises:
        OSError: the file cannot be opened.
    """

    def __init__(self, path: str | Path, *, flush_interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.path = Path(path)
        self._file: BinaryIO | None = open(self.path, "ab", buffering=256 * 1024)  # noqa: SIM115
        self._flush_interval_s = flush_interval_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._oldest_unflushed: float | None = None
        self.entries = 0
        """How many messages were recorded."""

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Flush from a timer on ``loop`` so entries reach the file even when traffic stops."""
        self._loop = loop

    def record(self, direction: Direction, transport: str, local: tuple[str, int],
               remote: tuple[str, int], data: bytes, now_wall: float) -> None:
        """Append one message (see the module docstring for the format)."""
        if self._file is None:
            return
        header = format_entry_header(direction, transport, local, remote, len(data), now_wall)
        tail = b"\n" if data.endswith(b"\n") else b"\n\n"
        self._file.write(header.encode("ascii") + b"\n" + data + tail)
        self.entries += 1
        if self._oldest_unflushed is None:
            self._oldest_unflushed = now_wall
        if self._loop is not None:
            if self._timer is None:
                self._timer = self._loop.call_later(self._flush_interval_s, self._on_timer)
        elif now_wall - self._oldest_unflushed >= self._flush_interval_s:
            self.flush()

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self.flush()
        except OSError as exc:
            logger.warning("cannot write SIP trace %s: %s", self.path, exc)

    def flush(self) -> None:
        """Write buffered entries to the file now."""
        if self._file is not None:
            self._file.flush()
        self._oldest_unflushed = None

    def close(self) -> None:
        """Flush and close; later records are ignored."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None

    def __enter__(self) -> SipTrace:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class MemoryTrace:
    """Keeps every entry in a list, for tests that assert on the messages exchanged."""

    def __init__(self) -> None:
        self.entries: list[TraceEntry] = []

    def record(self, direction: Direction, transport: str, local: tuple[str, int],
               remote: tuple[str, int], data: bytes, now_wall: float) -> None:
        self.entries.append(TraceEntry(direction, transport, local, remote, bytes(data),
                                       now_wall))

    def messages(self, direction: Direction | None = None) -> list[bytes]:
        """The traced messages, optionally only one direction."""
        return [e.data for e in self.entries if direction is None or e.direction == direction]
