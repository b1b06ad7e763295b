"""SIP timer values (RFC 3261 §17, Table 4 of Appendix A; RFC 6026 §8.4 for Timers L and M).

Every transaction timer is derived from three base values: T1 (the RTT estimate, 500 ms),
T2 (the cap on non-INVITE and INVITE-response retransmission intervals, 4 s) and T4 (the
longest time a message may stay in the network, 5 s). Timers that only exist to absorb
retransmissions over an unreliable transport (D, I, J, K) are zero over TCP/TLS.

Nothing here reads the clock: the machines add these durations to the ``now`` they are given.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RELIABLE_TRANSPORTS", "TimerConfig", "is_reliable"]

#: Transports that retransmit for us (RFC 3261 §18): no A/E/G retransmissions over these.
RELIABLE_TRANSPORTS: frozenset[str] = frozenset({"tcp", "tls", "sctp", "ws", "wss"})


def is_reliable(transport: str) -> bool:
    """True for stream transports, on which the transaction layer does not retransmit."""
    return transport.lower() in RELIABLE_TRANSPORTS


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """Base timer values and the Timer A–M derivations of RFC 3261 Table 4 / RFC 6026.

    Every derived value is a method taking ``reliable`` where the RFC distinguishes the
    transport, so a caller never mixes up "0 s on TCP" with "T4 on UDP".
    """

    t1: float = 0.5
    """RTT estimate in seconds (RFC 3261 §17.1.1.1); initial retransmit interval."""
    t2: float = 4.0
    """Maximum retransmit interval in seconds for non-INVITE requests and INVITE responses."""
    t4: float = 5.0
    """Maximum duration in seconds a message remains in the network."""
    timer_d_min: float = 32.0
    """Lower bound of Timer D over unreliable transports ("at least 32 s", §17.1.1.2)."""
    trying_delay: float | None = 0.2
    """§17.2.1: a server INVITE transaction sends 100 Trying if the TU has not answered
    within 200 ms; ``0.0`` sends it at once, ``None`` never (the TU sends its own)."""

    def __post_init__(self) -> None:
        if not (0 < self.t1 <= self.t2):
            raise ValueError("timers need 0 < t1 <= t2")
        if self.t4 <= 0:
            raise ValueError("t4 must be positive")

    # -- client INVITE (Figure 5) ------------------------------------------------------
    def timer_a(self) -> float:
        """Initial INVITE retransmit interval (UDP only); doubles on each firing, no cap."""
        return self.t1

    def timer_b(self) -> float:
        """INVITE transaction timeout: 64*T1."""
        return 64 * self.t1

    def timer_d(self, reliable: bool) -> float:
        """Wait time for response retransmits in Completed: >32 s on UDP, 0 on TCP."""
        return 0.0 if reliable else max(self.timer_d_min, 64 * self.t1)

    # -- client non-INVITE (Figure 6) -------------------------------------------------
    def timer_e(self) -> float:
        """Initial non-INVITE retransmit interval (UDP only); doubles up to T2."""
        return self.t1

    def timer_f(self) -> float:
        """Non-INVITE transaction timeout: 64*T1."""
        return 64 * self.t1

    def timer_k(self, reliable: bool) -> float:
        """Wait time for response retransmits: T4 on UDP, 0 on TCP."""
        return 0.0 if reliable else self.t4

    # -- server INVITE (Figure 7) ------------------------------------------------------
    def timer_g(self) -> float:
        """Initial INVITE-response retransmit interval (UDP only); doubles up to T2."""
        return self.t1

    def timer_h(self) -> float:
        """Wait time for the ACK: 64*T1."""
        return 64 * self.t1

    def timer_i(self, reliable: bool) -> float:
        """Wait time for ACK retransmits: T4 on UDP, 0 on TCP."""
        return 0.0 if reliable else self.t4

    # -- server non-INVITE (Figure 8) --------------------------------------------------
    def timer_j(self, reliable: bool) -> float:
        """Wait time for request retransmits: 64*T1 on UDP, 0 on TCP."""
        return 0.0 if reliable else 64 * self.t1

    # -- RFC 6026 Accepted state ------------------------------------------------------
    def timer_l(self) -> float:
        """Server INVITE Accepted: wait time for INVITE retransmits after a 2xx, 64*T1."""
        return 64 * self.t1

    def timer_m(self) -> float:
        """Client INVITE Accepted: wait time for 2xx retransmits, 64*T1."""
        return 64 * self.t1

    # -- helpers -----------------------------------------------------------------------
    def next_interval(self, interval: float, *, capped: bool = True) -> float:
        """The next retransmit interval after ``interval``: doubled, capped at T2 when the
        RFC caps it (E and G; Timer A is not capped, §17.1.1.2)."""
        doubled = interval * 2
        return min(doubled, self.t2) if capped else doubled
