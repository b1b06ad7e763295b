"""Media configuration (STYLE.md section 4.7: frozen dataclass, units in names, validated).

``MediaConfig`` is built once by ``switch/app.py`` (from TOML) and passed down explicitly to the
media service, its workers and their engines. Every field is checked in ``__post_init__`` and a
bad value raises :class:`ConfigError` whose message names the offending key, so an operator
sees ``media.rtp_port_min`` instead of a traceback from deep inside a socket call.

Port ranges: each channel takes an even RTP port and the next odd port for RTCP (RFC 3550
section 11), so the range must hold at least one even/odd pair per worker, and it is split into
``workers`` contiguous sub-ranges, one per worker process (DESIGN.md "Growing past one
machine").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from switch.media.errors import MediaError

logger = logging.getLogger(__name__)

__all__ = ["DTMF_MODES", "ConfigError", "MediaConfig"]

#: Accepted DTMF receive/send modes: RFC 4733 telephone-events, in-band audio (Goertzel),
#: SIP INFO (signalled, handled by the channel driver), or "auto" (RFC 4733 when negotiated,
#: else in-band).
DTMF_MODES = frozenset({"rfc4733", "inband", "info", "auto"})

_TONE_PROFILES = frozenset({"cn", "us", "etsi"})


class ConfigError(MediaError, ValueError):
    """A media configuration value is invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class MediaConfig:
    """Settings of the media layer.

    Attributes:
        rtp_port_min: first UDP port of the RTP range (inclusive, made even).
        rtp_port_max: last UDP port of the RTP range (inclusive).
        bind_host: local address the RTP sockets bind to.
        ptime_ms: packetization time of what we send; the tick period (RFC 3551 section 4.5
            default for G.711 is 20 ms).
        jitter_min_ms: initial and minimum playout delay of the jitter buffer.
        jitter_max_ms: the playout delay never grows beyond this; it also sizes the ring.
        workers: number of media worker processes (0 = run the engine in the caller's loop).
        dtmf_rx_mode: how digits are received ("auto", "rfc4733", "inband", "info").
        dtmf_tx_mode: how ``send_dtmf`` sends digits by default ("rfc4733" or "inband").
        dtmf_payload_type: dynamic payload type of telephone-event (RFC 4733 section 7).
        tone_profile: call-progress tone set (dsp.tones.PROFILES key), "cn" by default.
        recordings_dir: directory recordings are written to.
        prompt_cache_dir: directory of pre-rendered prompts / TTS cache.
        late_tick_ms: a tick starting more than this after its deadline is counted late.
        max_catchup_ms: a tick later than this skips ahead instead of catching up.
        rtcp_interval_s: nominal interval between RTCP reports per channel (RFC 3550 6.2).
        inactivity_timeout_s: no RTP for this long marks the channel inactive (0 = never).
        latch: symmetric RTP: latch to the source of the first valid packets (NAT).
        channels_per_worker: engine slot capacity per worker (0 = the port pairs of the
            worker's range, at most 1024). Every slot costs DSP time each tick (the batch
            DTMF detector runs over all slots), so do not oversize it.
        worker_nice: scheduling niceness of worker processes (0 = inherit; negative values
            need privileges): media has deadlines every 20 ms, signaling and reports do not.
        stagger_ticks: spread the workers' tick grids evenly over the 20 ms period.
        rtp_io: how RTP sockets are read and written: "auto" (the C extension
            ``switch.media._rtpio`` when it was built, else Python), "c" (fail at start if
            it is not built) or "python" (the pure-Python fallback; tests use it to compare).
            Either way the sockets are drained in batches (``batchio.py``).
        rx_drains_per_tick: how often per 20 ms the RTP sockets are drained (the tick's own
            drain included): more drains take receive work off the tick's latency path at
            a small fixed cost each.
    """

    rtp_port_min: int = 10000
    rtp_port_max: int = 20000
    bind_host: str = "127.0.0.1"
    ptime_ms: int = 20
    jitter_min_ms: int = 20
    jitter_max_ms: int = 200
    workers: int = 0
    dtmf_rx_mode: str = "auto"
    dtmf_tx_mode: str = "rfc4733"
    dtmf_payload_type: int = 101
    tone_profile: str = "cn"
    recordings_dir: Path = field(default_factory=lambda: Path("recordings"))
    prompt_cache_dir: Path = field(default_factory=lambda: Path("prompts"))
    late_tick_ms: float = 2.0
    max_catchup_ms: float = 100.0
    rtcp_interval_s: float = 5.0
    inactivity_timeout_s: float = 30.0
    latch: bool = True
    channels_per_worker: int = 0
    worker_nice: int = 0
    stagger_ticks: bool = True
    rtp_io: str = "auto"
    rx_drains_per_tick: int = 2

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"media.{key}: {why} (got {getattr(self, key)!r})")

        for key in ("rtp_port_min", "rtp_port_max"):
            value = getattr(self, key)
            if not isinstance(value, int) or not 1024 <= value <= 65535:
                raise bad(key, "must be an integer port in 1024..65535")
        if self.rtp_port_max - self.rtp_port_min < 1:
            raise bad("rtp_port_max", "must be above rtp_port_min by at least 1 (RTP+RTCP)")
        if self.ptime_ms != 20:
            raise bad("ptime_ms", "only 20 ms ticks are supported")
        if not 0 <= self.jitter_min_ms <= 1000:
            raise bad("jitter_min_ms", "must be within 0..1000")
        if not self.jitter_min_ms <= self.jitter_max_ms <= 2000:
            raise bad("jitter_max_ms", "must be within jitter_min_ms..2000")
        if not isinstance(self.workers, int) or not 0 <= self.workers <= 64:
            raise bad("workers", "must be an integer within 0..64")
        pairs = self.port_pairs()
        if pairs < max(1, self.workers):
            raise bad("rtp_port_max", "port range holds fewer RTP/RTCP pairs than workers")
        if self.dtmf_rx_mode not in DTMF_MODES:
            raise bad("dtmf_rx_mode", f"must be one of {sorted(DTMF_MODES)}")
        if self.dtmf_tx_mode not in {"rfc4733", "inband"}:
            raise bad("dtmf_tx_mode", "must be 'rfc4733' or 'inband'")
        if not 96 <= self.dtmf_payload_type <= 127:
            raise bad("dtmf_payload_type", "must be a dynamic payload type 96..127")
        if self.tone_profile not in _TONE_PROFILES:
            raise bad("tone_profile", f"must be one of {sorted(_TONE_PROFILES)}")
        if not 0 < self.late_tick_ms < self.ptime_ms:
            raise bad("late_tick_ms", "must be within (0, ptime_ms)")
        if not self.ptime_ms <= self.max_catchup_ms <= 10000:
            raise bad("max_catchup_ms", "must be within ptime_ms..10000")
        if not 0.5 <= self.rtcp_interval_s <= 60:
            raise bad("rtcp_interval_s", "must be within 0.5..60 s")
        if self.inactivity_timeout_s < 0:
            raise bad("inactivity_timeout_s", "must not be negative")
        if self.channels_per_worker < 0:
            raise bad("channels_per_worker", "must not be negative")
        if not -20 <= self.worker_nice <= 19:
            raise bad("worker_nice", "must be within -20..19")
        if self.rtp_io not in {"auto", "c", "python"}:
            raise bad("rtp_io", "must be 'auto', 'c' or 'python'")
        if not 1 <= self.rx_drains_per_tick <= 20:
            raise bad("rx_drains_per_tick", "must be within 1..20")
        object.__setattr__(self, "recordings_dir", Path(self.recordings_dir))
        object.__setattr__(self, "prompt_cache_dir", Path(self.prompt_cache_dir))

    def port_pairs(self) -> int:
        """Number of (even RTP, odd RTCP) port pairs in the configured range."""
        first = self.rtp_port_min + (self.rtp_port_min & 1)
        return max(0, (self.rtp_port_max - first + 1) // 2)

    def worker_port_ranges(self) -> list[tuple[int, int]]:
        """Split the range into one contiguous (min, max) sub-range per worker (>= 1)."""
        n = max(1, self.workers)
        first = self.rtp_port_min + (self.rtp_port_min & 1)
        per = self.port_pairs() // n
        return [(first + 2 * per * i, first + 2 * per * (i + 1) - 1) for i in range(n)]

    def capacity(self) -> int:
        """Engine slot capacity of one worker (channels it can hold)."""
        pairs = self.port_pairs() // max(1, self.workers)
        if self.channels_per_worker:
            return min(self.channels_per_worker, pairs)
        return min(pairs, 1024)
