"""Test harness: two SipCores joined by a fake UDP link (h11 ConnectionPair, aioquic
roundtrip). The link can drop, duplicate, delay or reorder datagrams by matching their
first line; time only moves when the test says so (explicit ``now``)."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from random import Random

from signaling.core import CoreConfig, SipCore
from signaling.events import Address, Event
from signaling.message import Request, Response, make_response
from signaling.parser import parse_message
from signaling.timers import TimerConfig

UAC_ADDR = Address("udp", "192.0.2.1", 5060)
UAS_ADDR = Address("udp", "192.0.2.2", 5070)


def first_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].decode()


@dataclass
class Rule:
    """Apply ``action`` to the next ``times`` datagrams whose first line matches."""

    match: Callable[[str], bool]
    action: str  # "drop" | "dup" | "delay"
    times: int = 1
    delay: float = 0.0


@dataclass
class FakeLink:
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[float, str, str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def add(self, match: str | Callable[[str], bool], action: str, times: int = 1,
            delay: float = 0.0) -> None:
        pred = match if callable(match) else (lambda line, m=match: line.startswith(m))
        self.rules.append(Rule(pred, action, times, delay))

    chaos: Callable[[str], list[float]] | None = None

    def copies(self, line: str) -> list[float]:
        """Delays at which this datagram arrives (empty: dropped)."""
        if self.chaos is not None:
            return self.chaos(line)
        for rule in self.rules:
            if rule.times > 0 and rule.match(line):
                rule.times -= 1
                if rule.action == "drop":
                    self.dropped.append(line)
                    return []
                if rule.action == "dup":
                    return [0.0, 0.0]
                return [rule.delay]
        return [0.0]


class UacUasPair:
    """A UAC core and a UAS core on a fake link, with a shared fake clock."""

    def __init__(self, *, timers: TimerConfig | None = None, transport: str = "udp",
                 seed: int = 7, **uas_kwargs: object) -> None:
        timers = timers or TimerConfig()
        self.transport = transport
        self.uac = SipCore(CoreConfig(host=UAC_ADDR.host, port=UAC_ADDR.port, timers=timers,
                                      transport=transport), rng=Random(seed))
        self.uas = SipCore(CoreConfig(host=UAS_ADDR.host, port=UAS_ADDR.port, timers=timers,
                                      transport=transport,
                                      **uas_kwargs),  # type: ignore[arg-type]
                           rng=Random(seed + 1))
        # Over a stream transport both ends share one connection (id 1).
        conn = None if transport == "udp" else 1
        self.uac_addr = Address(transport, UAC_ADDR.host, UAC_ADDR.port, conn)
        self.uas_addr = Address(transport, UAS_ADDR.host, UAS_ADDR.port, conn)
        self.now = 0.0
        self.link = FakeLink()
        self._flight: list[tuple[float, int, bytes, Address, SipCore]] = []
        self._seq = count()
        self.uac_events: list[Event] = []
        self.uas_events: list[Event] = []
        self.wire: list[tuple[float, str, str]] = []  # (time, "uac->uas", first line)

    # -- moving datagrams ---------------------------------------------------------------
    def _collect(self) -> None:
        pairs = ((self.uac, self.uac_addr, self.uas), (self.uas, self.uas_addr, self.uac))
        for core, src, other in pairs:
            for data, dest in core.datagrams_to_send():
                target = self.uas if (dest.host, dest.port) == (UAS_ADDR.host, UAS_ADDR.port) \
                    else self.uac if (dest.host, dest.port) == (UAC_ADDR.host, UAC_ADDR.port) \
                    else None
                assert target is other, f"datagram to unexpected {dest}"
                line = first_line(data)
                self.wire.append((self.now, "uac->uas" if core is self.uac else "uas->uac", line))
                for delay in self.link.copies(line):
                    heapq.heappush(self._flight,
                                   (self.now + delay, next(self._seq), data, src, target))
        self.uac_events.extend(self.uac.events())
        self.uas_events.extend(self.uas.events())

    def run(self, until: float | None = None) -> None:
        """Deliver datagrams and fire timers in time order up to ``until`` (default: now)."""
        end = self.now if until is None else until
        self._collect()
        while True:
            times = [t for t in (self.uac.next_deadline(), self.uas.next_deadline()) if t]
            if self._flight:
                times.append(self._flight[0][0])
            t = min(times) if times else None
            if t is None or t > end:
                break
            self.now = max(self.now, t)
            while self._flight and self._flight[0][0] <= self.now:
                _, _, data, src, target = heapq.heappop(self._flight)
                target.handle_datagram(data, src, self.now)
                self._collect()
            for core in (self.uac, self.uas):
                d = core.next_deadline()
                if d is not None and d <= self.now:
                    core.handle_timer(self.now)
            self._collect()
        self.now = max(self.now, end)

    def advance(self, dt: float) -> None:
        self.run(self.now + dt)

    # -- application helpers ------------------------------------------------------------
    def take(self, side: str, kind: type) -> list:
        events = self.uac_events if side == "uac" else self.uas_events
        got = [e for e in events if isinstance(e, kind)]
        for e in got:
            events.remove(e)
        return got

    def invite(self, body: bytes = b"v=0\r\n", content_type: str = "application/sdp",
               **kw: object) -> tuple[Request, str]:
        req = self.uac.create_request(
            "INVITE", f"sip:bob@{UAS_ADDR.host}:{UAS_ADDR.port}",
            from_="Alice <sip:alice@example.com>", to="Bob <sip:bob@example.com>",
            body=body, content_type=content_type, **kw)  # type: ignore[arg-type]
        tid = self.uac.send_request(req, self.uas_addr, self.now)
        self._collect()
        return req, tid

    def request(self, method: str, **kw: object) -> tuple[Request, str]:
        req = self.uac.create_request(
            method, f"sip:bob@{UAS_ADDR.host}:{UAS_ADDR.port}",
            from_="Alice <sip:alice@example.com>", to="Bob <sip:bob@example.com>",
            **kw)  # type: ignore[arg-type]
        tid = self.uac.send_request(req, self.uas_addr, self.now)
        self._collect()
        return req, tid

    def answer(self, event: object, status: int, *, tag: str | None = "uastag",
               contact: bool = True, body: bytes = b"", extra: list | None = None) -> Response:
        req = event.request  # type: ignore[attr-defined]
        extra = list(extra or [])
        if contact and req.method == "INVITE" and status < 300:
            extra.append(("Contact", f"<sip:bob@{UAS_ADDR.host}:{UAS_ADDR.port}>"))
        if body:
            extra.append(("Content-Type", "application/sdp"))
        resp = make_response(req, status, to_tag=tag, body=body, extra=extra)
        self.uas.send_response(resp, event.transaction_id, self.now)  # type: ignore[attr-defined]
        self._collect()
        return resp

    def lines(self, direction: str | None = None) -> list[str]:
        return [line for _, d, line in self.wire if direction is None or d == direction]


def parse(data: bytes) -> Request | Response:
    return parse_message(data)
