"""Symmetric RTP latching (RFC 4961 symmetric RTP; the "comedia" behaviour of SBCs).

Pure core: ``now`` is passed in.

Why: a phone behind NAT puts its private address in SDP; its packets arrive from the
NAT's public address. We answer to where the media really comes from ("latch"), and after
latching we refuse packets from anyone else, so a third party cannot inject audio or
flood the channel (packets are dropped and counted, never played).

Rules:

1. Before latching, a source must send ``latch_packets`` packets in a row (no other
   source in between) to be latched; the address from SDP (``expected_addr``) is trusted
   and latches on its first packet. Packets before the latch are not accepted.
2. Once latched, only the latched source is accepted.
3. Re-latch (the phone roamed, the NAT binding changed) only after the latched source has
   been silent for ``relatch_after_s``, and again only after ``latch_packets`` in a row
   from the new source.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

__all__ = ["Addr", "SymmetricLatch"]

Addr = tuple[str, int]


class SymmetricLatch:
    """Source-address filter for one RTP (or RTCP) socket of one channel."""

    __slots__ = (
        "_candidate",
        "_candidate_count",
        "_last_at",
        "accepted",
        "dropped",
        "expected_addr",
        "latch_packets",
        "latched",
        "relatch_after_s",
        "relatches",
    )

    def __init__(
        self,
        expected_addr: Addr | None = None,
        latch_packets: int = 3,
        relatch_after_s: float = 2.0,
    ) -> None:
        if latch_packets < 1:
            raise ValueError("latch_packets must be at least 1")
        self.expected_addr = expected_addr
        self.latch_packets = latch_packets
        self.relatch_after_s = relatch_after_s
        self.latched: Addr | None = None
        self._last_at = 0.0
        self._candidate: Addr | None = None
        self._candidate_count = 0
        self.accepted = 0
        self.dropped = 0
        self.relatches = 0

    @property
    def target(self) -> Addr | None:
        """Where to send our RTP: the latched source, else the SDP address."""
        return self.latched if self.latched is not None else self.expected_addr

    def accept(self, addr: Addr, now: float) -> bool:
        """Should the packet from ``addr`` arriving at ``now`` be processed?"""
        latched = self.latched
        if addr == latched:
            self._last_at = now
            self._candidate = None
            self.accepted += 1
            return True
        if latched is not None and now - self._last_at < self.relatch_after_s:
            self.dropped += 1
            return False
        if addr != self._candidate:
            self._candidate = addr
            self._candidate_count = 0
        self._candidate_count += 1
        need = 1 if addr == self.expected_addr and latched is None else self.latch_packets
        if self._candidate_count < need:
            self.dropped += 1
            return False
        if latched is not None:
            self.relatches += 1
            logger.info("RTP re-latched from %s:%d to %s:%d", *latched, *addr)
        else:
            logger.debug("RTP latched to %s:%d", *addr)
        self.latched = addr
        self._last_at = now
        self._candidate = None
        self.accepted += 1
        return True

    def fast_source(self) -> Addr | None:
        """The latched source when its packets need no decision beyond an address compare
        (latched, no re-latch candidate being counted), else None. A batch receiver may
        accept packets from it without calling :meth:`accept` and report them later with
        :meth:`absorb`."""
        return self.latched if self._candidate is None else None

    @property
    def last_at(self) -> float:
        """When the latched source was last accepted."""
        return self._last_at

    def absorb(self, accepted: int, dropped: int, last_at: float) -> None:
        """Account packets a batch receiver accepted from :meth:`fast_source` (the last at
        ``last_at``) or dropped as foreign within the re-latch hold time: the same effect
        as the :meth:`accept` calls it saved."""
        self.accepted += accepted
        self.dropped += dropped
        if accepted and last_at > self._last_at:
            self._last_at = last_at

    def reset(self, expected_addr: Addr | None = None) -> None:
        """A new remote SDP (re-INVITE): forget the latch and trust the new address."""
        self.expected_addr = expected_addr
        self.latched = None
        self._candidate = None
        self._candidate_count = 0
