"""Call detail records: one per call attempt, written to storage without ever losing one.

Three parts:

* :class:`Cdr` / :class:`CdrLeg` -- the record (caller, callee, route, start/answer/end times,
  disposition, hang-up cause and side, codec, per-leg RTP statistics with an estimated MOS,
  recording reference). :class:`CdrCollector` builds them from bus events.
* :func:`estimate_mos` -- the ITU-T G.107 E-model, simplified for G.711 (formula below).
* :class:`CdrWriter` -- the async writer. Rules:

  - Rule 1 -- :meth:`CdrWriter.submit` never blocks a call; CDRs are written in batches by a
    background task through a :class:`CdrSink` (``storage.cdr_repository``).
  - Rule 2 -- when the database is unavailable (``StorageUnavailableError``) the CDRs stay
    in memory AND are appended to a spool file (JSON lines, fsync'ed) in the data dir, so a
    crash during an outage loses nothing. The writer retries every ``retry_interval_s``;
    once everything pending is written the spool is emptied.
  - Rule 3 -- at start the spool is replayed. Writes are idempotent (every CDR has a unique
    ``uuid`` and the sink skips uuids it already has), so a crash between the database
    commit and the spool truncation writes no duplicate.
  - Rule 4 -- a CDR the database refuses for another reason (a constraint, bad data) is not
    retried forever: it goes to ``<spool>.rejected`` (JSON lines) with an ERROR log line.
  - Rule 5 -- :meth:`CdrWriter.close` (graceful shutdown, after the calls were hung up)
    writes or spools everything pending before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import json
import logging
import os
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from storage.db import StorageError, StorageUnavailableError
from switch.events import (
    CallAnswered,
    CallDequeued,
    CallEvent,
    CallHungUp,
    CallOffered,
    CallQueued,
    CallRouted,
    LegMediaStats,
    RecordingStarted,
)

logger = logging.getLogger(__name__)

__all__ = [
    "Cdr",
    "CdrCollector",
    "CdrLeg",
    "CdrSink",
    "CdrWriter",
    "Disposition",
    "disposition_for",
    "estimate_mos",
    "r_factor",
]

# --- MOS: ITU-T G.107 E-model, simplified for G.711 ---------------------------------------

R_DEFAULT = 93.2
"""R with every G.107 parameter at its default (G.107 §7.7: "R = 93.2")."""
BPL_G711_PLC = 25.1
"""Packet-loss robustness Bpl of G.711 with Appendix I PLC (ITU-T G.113 Appendix I)."""
BPL_G711 = 4.3
"""Bpl of G.711 without PLC (G.113 Appendix I)."""
PACKETISATION_MS = 20.0
"""One G.711 frame of 20 ms (ptime) waits to be filled before it is sent."""


def r_factor(loss_pct: float, jitter_ms: float, delay_ms: float = 0.0, *, plc: bool = True,
             burst_ratio: float = 1.0) -> float:
    """The E-model transmission rating R for a G.711 leg.

    Formula (G.107 §7, with Ie = 0 for G.711, defaults elsewhere)::

        d      = delay_ms + 2 * jitter_ms + 20        # one-way: network + jitter buffer
                                                      # (about twice the jitter) + ptime
        Id     = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)    # Cole & Rosenbluth's fit of
                                                            # G.107's Idd/Idte for echo-free
        Ie_eff = Ie + (95 - Ie) Ppl / (Ppl / BurstR + Bpl)   # G.107 eq. 7-29
        R      = 93.2 - Id - Ie_eff

    with Ppl the packet loss in percent, Bpl = 25.1 (PLC) or 4.3 (no PLC), BurstR = 1 for
    random loss, H the Heaviside step.
    """
    d = max(0.0, delay_ms) + 2.0 * max(0.0, jitter_ms) + PACKETISATION_MS
    i_d = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)
    ppl = min(max(0.0, loss_pct), 100.0)
    bpl = BPL_G711_PLC if plc else BPL_G711
    ie_eff = 95.0 * ppl / (ppl / max(burst_ratio, 1e-9) + bpl)
    return R_DEFAULT - i_d - ie_eff


def estimate_mos(loss_pct: float, jitter_ms: float, delay_ms: float = 0.0, *,
                 plc: bool = True, burst_ratio: float = 1.0) -> float:
    """Estimated MOS-CQE (1.0-4.5) from :func:`r_factor` through G.107 Annex B (B-4)::

        MOS = 1                                          R < 0
        MOS = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6    0 <= R <= 100
        MOS = 4.5                                        R > 100
    """
    r = r_factor(loss_pct, jitter_ms, delay_ms, plc=plc, burst_ratio=burst_ratio)
    if r < 0:
        return 1.0
    if r > 100:
        return 4.5
    return round(1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6, 2)


# --- the record ----------------------------------------------------------------------------


class Disposition(enum.StrEnum):
    """How a call attempt ended (the usual CDR dispositions)."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    CANCELLED = "cancelled"


def disposition_for(answered: bool, sip_status: int | None, cause: str) -> Disposition:
    """Disposition from the answer state, final SIP status and cause (RFC 3261 §21)."""
    if answered:
        return Disposition.ANSWERED
    if sip_status in (486, 600) or cause == "user_busy":
        return Disposition.BUSY
    if sip_status == 487 or cause == "originator_cancel":
        return Disposition.CANCELLED
    if sip_status in (408, 480) or cause == "no_answer":
        return Disposition.NO_ANSWER
    return Disposition.FAILED


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


@dataclass(frozen=True, slots=True)
class CdrLeg:
    """One leg's media statistics (RFC 3550 §6.4 receiver figures)."""

    channel: str
    role: str
    """"caller" (A leg) or "callee" (B legs)."""
    codec: str = ""
    remote: str = ""
    packets_received: int = 0
    packets_lost: int = 0
    jitter_ms: float = 0.0
    rtt_ms: float | None = None
    mos: float | None = None

    @property
    def loss_pct(self) -> float:
        expected = self.packets_received + self.packets_lost
        return 100.0 * self.packets_lost / expected if expected else 0.0


@dataclass(frozen=True, slots=True)
class Cdr:
    """One call attempt. Times are timezone-aware UTC."""

    uuid: str
    call_id: str
    caller: str
    callee: str
    start_at: dt.datetime
    end_at: dt.datetime
    disposition: Disposition
    answer_at: dt.datetime | None = None
    route: str = ""
    """The dial plan rule's name."""
    target: str = ""
    source: str = ""
    hangup_cause: str = ""
    hangup_side: str = ""
    sip_status: int | None = None
    codec: str = ""
    recording_ref: str = ""
    queue: str = ""
    agent_id: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    legs: tuple[CdrLeg, ...] = ()

    @property
    def duration_s(self) -> float:
        return (self.end_at - self.start_at).total_seconds()

    @property
    def billsec(self) -> float:
        """Seconds from answer to end (0 when unanswered)."""
        return (self.end_at - self.answer_at).total_seconds() if self.answer_at else 0.0

    def to_json(self) -> str:
        data = asdict(self)
        for key in ("start_at", "end_at", "answer_at"):
            data[key] = data[key].isoformat() if data[key] is not None else None
        data["disposition"] = self.disposition.value
        data["tags"] = dict(self.tags)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Cdr:
        """Raises ValueError/KeyError/TypeError on a damaged line."""
        data: dict[str, Any] = json.loads(text)
        for key in ("start_at", "end_at", "answer_at"):
            if data.get(key) is not None:
                data[key] = dt.datetime.fromisoformat(data[key])
        data["disposition"] = Disposition(data["disposition"])
        data["legs"] = tuple(CdrLeg(**leg) for leg in data.get("legs", ()))
        return cls(**data)


def new_cdr_uuid() -> str:
    return uuidlib.uuid4().hex


# --- building CDRs from bus events ---------------------------------------------------------


@dataclass(slots=True)
class _Open:
    offered: CallOffered
    route: str = ""
    target: str = ""
    answer_at: float | None = None
    codec: str = ""
    recording: str = ""
    queue: str = ""
    agent: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    legs: dict[str, CdrLeg] = field(default_factory=dict)


class CdrCollector:
    """Turns a call's events into one :class:`Cdr` when its first (A) leg hangs up.

    Feed it every event: ``bus.tap(collector.handle)`` (a tap loses nothing, a lagging
    subscription could); completed CDRs go to ``on_cdr`` (normally :meth:`CdrWriter.submit`).
    :meth:`finish_all` closes the calls still up at shutdown.
    """

    def __init__(self, on_cdr: Any) -> None:
        self._on_cdr = on_cdr
        self._open: dict[str, _Open] = {}

    @property
    def open_calls(self) -> int:
        return len(self._open)

    def tag(self, call_id: str, key: str, value: str) -> None:
        """Attach data (IVR ``tag``) to the call's CDR."""
        if call_id in self._open:
            self._open[call_id].tags[key] = value

    def handle(self, ev: object) -> None:
        if not isinstance(ev, CallEvent):
            return
        if isinstance(ev, CallOffered):
            call = self._open.get(ev.call_id)
            if call is None:
                call = self._open[ev.call_id] = _Open(ev)
            role = "caller" if ev.channel == call.offered.channel else "callee"
            call.legs.setdefault(ev.channel, CdrLeg(ev.channel, role))
            return
        call = self._open.get(ev.call_id)
        if call is None:
            return
        if isinstance(ev, CallRouted):
            call.route, call.target = ev.rule, ev.target
        elif isinstance(ev, CallAnswered):
            if call.answer_at is None:  # the callee's answer, or the switch's (IVR)
                call.answer_at = ev.at
            call.codec = call.codec or ev.codec
        elif isinstance(ev, CallQueued):
            call.queue = ev.queue
        elif isinstance(ev, CallDequeued):
            call.agent = ev.agent_id or call.agent
        elif isinstance(ev, RecordingStarted):
            call.recording = ev.ref
        elif isinstance(ev, LegMediaStats):
            self._stats(call, ev)
        elif isinstance(ev, CallHungUp) and ev.channel == call.offered.channel:
            self._finish(call, ev.at, ev.cause, ev.side, ev.sip_status)

    def _stats(self, call: _Open, ev: LegMediaStats) -> None:
        leg = call.legs.get(ev.channel) or CdrLeg(ev.channel, "callee")
        expected = ev.packets_received + ev.packets_lost
        loss = 100.0 * ev.packets_lost / expected if expected else 0.0
        delay = ev.rtt_ms / 2 if ev.rtt_ms is not None else 0.0
        call.legs[ev.channel] = replace(
            leg, codec=ev.codec, remote=ev.remote, packets_received=ev.packets_received,
            packets_lost=ev.packets_lost, jitter_ms=ev.jitter_ms, rtt_ms=ev.rtt_ms,
            mos=estimate_mos(loss, ev.jitter_ms, delay) if expected else None)

    def _finish(self, call: _Open, at: float, cause: str, side: str,
                sip_status: int | None) -> None:
        del self._open[call.offered.call_id]
        o = call.offered
        cdr = Cdr(
            uuid=new_cdr_uuid(), call_id=o.call_id, caller=o.caller, callee=o.callee,
            start_at=_utc(o.at), end_at=_utc(max(at, o.at)),
            answer_at=_utc(call.answer_at) if call.answer_at is not None else None,
            disposition=disposition_for(call.answer_at is not None, sip_status, cause),
            route=call.route, target=call.target, source=o.source, hangup_cause=cause,
            hangup_side=side, sip_status=sip_status, codec=call.codec,
            recording_ref=call.recording, queue=call.queue, agent_id=call.agent,
            tags=dict(call.tags), legs=tuple(call.legs.values()))
        self._on_cdr(cdr)

    def finish_all(self, at: float, cause: str = "shutdown") -> int:
        """Close every call still open (switch stopping); returns how many."""
        calls = list(self._open.values())
        for call in calls:
            self._finish(call, at, cause, "system", None)
        return len(calls)


# --- the writer ----------------------------------------------------------------------------


class CdrSink(Protocol):
    """Where CDRs are stored (``storage.cdr_repository.CdrRepository``)."""

    async def insert_many(self, cdrs: Sequence[Cdr]) -> int:
        """Store the CDRs whose uuid is not stored yet; return how many were new.

        Raises:
            StorageUnavailableError: nothing was written; retry later.
            StorageError: the batch was refused for another reason.
        """
        ...


class CdrWriter:
    """Batches CDRs to a :class:`CdrSink` with an outage spool (Rules 1-5).

    Args:
        sink: the CDR store.
        spool_path: the spool file (JSON lines), e.g. ``<data_dir>/cdr-spool.jsonl``.
        batch_size: CDRs per database transaction.
        retry_interval_s: wait between attempts while the database is unavailable.
    """

    def __init__(self, sink: CdrSink, spool_path: Path, *, batch_size: int = 200,
                 retry_interval_s: float = 5.0) -> None:
        self._sink = sink
        self.spool_path = Path(spool_path)
        self.rejected_path = self.spool_path.with_name(self.spool_path.name + ".rejected")
        self.batch_size = batch_size
        self.retry_interval_s = retry_interval_s
        self._pending: list[Cdr] = []
        self._spooled: set[str] = set()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.outage = False
        """True while the last write attempt failed with StorageUnavailableError."""
        self.written = 0
        self.rejected = 0

    @property
    def pending(self) -> int:
        """CDRs not yet confirmed in the database."""
        return len(self._pending)

    @property
    def spooled(self) -> int:
        """Pending CDRs that are safe in the spool file."""
        return len(self._spooled)

    async def start(self) -> None:
        """Replay the spool (Rule 3) and start the background writer."""
        self._replay()
        if self._pending:
            await self.flush()
        self._task = asyncio.create_task(self._run(), name="cdr-writer")

    def _replay(self) -> None:
        try:
            lines = self.spool_path.read_text("utf-8").splitlines()
        except FileNotFoundError:
            return
        known = {c.uuid for c in self._pending}
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                cdr = Cdr.from_json(line)
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("%s:%d: skipping a damaged CDR line: %s", self.spool_path, n, exc)
                continue
            if cdr.uuid not in known:
                known.add(cdr.uuid)
                self._pending.append(cdr)
            self._spooled.add(cdr.uuid)
        logger.info("replaying %d spooled CDR(s) from %s", len(self._spooled), self.spool_path)

    def submit(self, cdr: Cdr) -> None:
        """Queue a CDR for writing; never blocks on the database (Rule 1). During an
        outage the CDR goes to the spool at once (Rule 2) and waits for the next retry."""
        self._pending.append(cdr)
        if self.outage:
            self._spool()
        else:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            if self.outage:  # retry on the timer only, not once per new CDR
                await asyncio.sleep(self.retry_interval_s)
            else:
                await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> bool:
        """Write everything pending now; True when nothing is left pending.

        On an outage the pending CDRs are spooled (Rule 2) and False is returned.
        """
        async with self._lock:
            while self._pending:
                batch = self._pending[:self.batch_size]
                try:
                    await self._sink.insert_many(batch)
                except StorageUnavailableError as exc:
                    self._enter_outage(exc)
                    return False
                except StorageError as exc:
                    try:
                        await self._one_by_one(batch, exc)
                    except StorageUnavailableError as again:
                        self._enter_outage(again)
                        return False
                del self._pending[:len(batch)]
                self.written += len(batch)
            if self.outage:
                logger.info("CDR database back: spooled CDRs written")
            self.outage = False
            self._clear_spool()
            return True

    def _enter_outage(self, exc: StorageError) -> None:
        if not self.outage:
            logger.warning("CDR database unavailable, spooling to %s: %s", self.spool_path, exc)
        self.outage = True
        self._spool()

    async def _one_by_one(self, batch: Sequence[Cdr], exc: StorageError) -> None:
        logger.warning("CDR batch refused (%s); writing one by one", exc)
        for cdr in batch:
            try:
                await self._sink.insert_many([cdr])
            except StorageUnavailableError:
                raise
            except StorageError as one:
                self._append(self.rejected_path, [cdr])
                self.rejected += 1
                self.written -= 1
                logger.error("CDR %s of call %s refused by the database (%s); kept in %s",
                             cdr.uuid, cdr.call_id, one, self.rejected_path)

    def _spool(self) -> None:
        fresh = [c for c in self._pending if c.uuid not in self._spooled]
        if not fresh:
            return
        try:
            self._append(self.spool_path, fresh)
        except OSError as exc:
            logger.error("cannot spool %d CDR(s) to %s: %s (kept in memory only)",
                         len(fresh), self.spool_path, exc)
            return
        self._spooled.update(c.uuid for c in fresh)

    @staticmethod
    def _append(path: Path, cdrs: Sequence[Cdr]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write("".join(c.to_json() + "\n" for c in cdrs))
            f.flush()
            os.fsync(f.fileno())

    def _clear_spool(self) -> None:
        if not self._spooled and not self.spool_path.exists():
            return
        try:
            self.spool_path.unlink(missing_ok=True)
        except OSError as exc:
            logger.error("cannot remove CDR spool %s: %s", self.spool_path, exc)
            return
        self._spooled.clear()

    async def close(self) -> bool:
        """Stop the background task and write or spool everything pending (Rule 5)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        return await self.flush()
