"""Batch receive for the media engine: a whole drain of datagrams checked with array ops.

Sans-IO like ``engine.py`` (packets and arrival times are handed in). The host drains every
channel socket at once (``batchio.BatchIO``) and calls :meth:`BatchReceiveMixin.receive_batch`
with the arrays; this module gives *exactly* the result of calling
``MediaEngine.receive_rtp`` for every datagram in arrival order, but does the common case
without per-packet Python:

* RFC 3550 section 5.1 header checks (version, CSRC count, extension, padding), the payload
  type check and the source-address check (RFC 4961 symmetric RTP, ``latch.py``) are array
  comparisons over the batch. Bad datagrams, wrong payload types and foreign packets that
  the latch would drop without changing its state are counted the same way.
* Packets of a channel are taken in rounds: round r holds the r-th packet of every channel,
  so within a round each channel appears once and its state can be read, checked and
  written with fancy indexing, and rounds follow each other in arrival order.
* A packet is *fast* when it is the steady case: audio payload type, from the channel's
  accepted source, playout anchored, neither late nor beyond the ring, no delay shrink due.
  Fast packets are accounted (last arrival, octets, latch counts folded in lazily by
  :meth:`_sync_latch`), copied into the jitter ring with one scatter per payload size and
  stamped through the same pending list as the scalar path.
* Anything else (the first packets of a stream, RFC 4733 events, comfort noise, a re-latch
  candidate, a late packet, a re-anchor) *diverts* the channel: that packet and every later
  one of the channel in this batch go through the scalar ``receive_rtp`` in order, so rare
  cases keep one implementation.

RFC 3550 A.1/A.8 accounting: a channel whose ``RtpSource`` is validated has its numbers
mirrored in arrays (``RtpSource.steady_state``), and an in-sequence packet (same SSRC,
``0 < seq - max_seq < MAX_DROPOUT``, the case ``update`` handles in a few lines) is applied
there for the whole round: extended sequence, the 128-packet duplicate window as two 64-bit
words, received count, and the A.8 jitter in float64 exactly as ``update`` computes it. The
mirror is written back (:meth:`BatchReceiveMixin.rtp_source`) before anyone reads the
object -- statistics, RTCP reports, the scalar path -- and reloaded after the scalar path
changed it. Any other sequence case diverts the packet to ``receive_rtp``.
"""

from __future__ import annotations

import ipaddress
import logging
from array import array
from typing import Any

import numpy as np
from numpy.typing import NDArray

from switch.media.rtp import MAX_DROPOUT, RtpSource

logger = logging.getLogger(__name__)

__all__ = ["BatchReceiveMixin"]

_CN_PT = 13
_MAX_ROUNDS = 4  # packets of one channel beyond this in a batch take the scalar path
_FRAME = 160
_BLOCK = 40
_NEVER = np.iinfo(np.int64).min
_GROW_HOLDOFF_S = 0.1  # playout delay grows by at most one frame per 100 ms
_SHRINK_AFTER_S = 5.0  # ... and shrinks by one frame after 5 s without late packets
# RFC 3550 5.1 fixed header, read as one record per packet
_HDR = np.dtype([("b0", "u1"), ("b1", "u1"), ("seq", ">u2"), ("ts", ">u4"), ("ssrc", ">u4")])


_HOST_INT: dict[str, int] = {}  # IPv4 literal -> int, -1 for other hosts (memo)


def _addr_key(addr: tuple[str, int] | None) -> int:
    """(IPv4 literal, port) -> ip << 16 | port; -1 for anything else (slow path)."""
    if addr is None:
        return -1
    host = addr[0]
    ip = _HOST_INT.get(host)
    if ip is None:
        try:
            ip = int(ipaddress.IPv4Address(host))
        except (ipaddress.AddressValueError, ValueError):
            ip = -1
        if len(_HOST_INT) > 4096:
            _HOST_INT.clear()
        _HOST_INT[host] = ip
    if ip < 0:
        return -1
    return (ip << 16) | (int(addr[1]) & 0xFFFF)


class BatchReceiveMixin:
    """Adds :meth:`receive_batch` to ``MediaEngine`` (state it uses is created there)."""

    # provided by MediaEngine
    capacity: int
    orphans: int
    _chans: list[Any]
    _open: NDArray[np.bool_]
    _ring: NDArray[np.uint8]
    _ring_len: int
    _nblocks: int
    _min_depth: int
    _play_np: NDArray[np.int64]
    _ts_base: array[int]
    _pending: array[int]
    _bad: NDArray[np.int64]
    _wrong_pt: NDArray[np.int64]
    _foreign: NDArray[np.int64]
    _octets_rx: NDArray[np.int64]
    _last_rx: NDArray[np.float64]
    _depth: NDArray[np.int64]
    _last_late: NDArray[np.float64]
    _last_adjust: NDArray[np.float64]
    _resync: NDArray[np.bool_]
    _gen: NDArray[np.int64]
    _anchor_at: NDArray[np.int64]
    _started: NDArray[np.bool_]
    _dirty: bool
    _max_depth: int
    late_packets: int
    jb_dropped: int

    def receive_rtp(self, slot: int, data: bytes, addr: tuple[str, int],
                    now: float) -> None: ...  # pragma: no cover - MediaEngine's

    # ------------------------------------------------------------------ per-channel state

    def _init_batch_rx(self, capacity: int) -> None:
        self._pending_np: list[NDArray[np.int64]] = []
        self._rx_pt = np.full(capacity, -1, dtype=np.int64)
        self._rx_dtmf_pt = np.full(capacity, -1, dtype=np.int64)
        self._fast_key = np.full(capacity, -1, dtype=np.int64)  # accepted source, -1: none
        self._latch_mode = np.zeros(capacity, dtype=bool)
        self._relatch_s = np.zeros(capacity)
        self._latch_acc = np.zeros(capacity, dtype=np.int64)  # not yet in latch.accepted
        self._latch_drop = np.zeros(capacity, dtype=np.int64)  # not yet in latch.dropped
        self._dst_key = np.full(capacity, -1, dtype=np.int64)  # where to send, -1: not IPv4
        self._ts_base_np = np.frombuffer(self._ts_base, dtype=np.int64)
        self._addr_of: dict[int, tuple[str, int]] = {}
        # RtpSource mirror (see the module docstring); dirty: the arrays are ahead
        self._m_valid = np.zeros(capacity, dtype=bool)
        self._m_dirty = np.zeros(capacity, dtype=bool)
        self._m_ssrc = np.zeros(capacity, dtype=np.int64)
        self._m_max = np.zeros(capacity, dtype=np.int64)
        self._m_cycles = np.zeros(capacity, dtype=np.int64)
        self._m_recv = np.zeros(capacity, dtype=np.int64)
        self._m_jitter = np.zeros(capacity)
        self._m_transit = np.zeros(capacity, dtype=np.int64)
        self._m_lo = np.zeros(capacity, dtype=np.uint64)
        self._m_hi = np.zeros(capacity, dtype=np.uint64)
        self.batch_fast = 0  # packets that took the array path
        self.batch_slow = 0  # packets diverted to receive_rtp

    def _open_batch_rx(self, ch: Any) -> None:
        slot = ch.slot
        self._rx_pt[slot] = ch.pt
        self._rx_dtmf_pt[slot] = ch.dtmf_pt
        self._latch_mode[slot] = ch.latch is not None
        self._relatch_s[slot] = ch.latch.relatch_after_s if ch.latch is not None else 0.0
        self._latch_acc[slot] = self._latch_drop[slot] = 0
        self._m_valid[slot] = self._m_dirty[slot] = False
        self._refresh_batch_rx(ch)

    def _close_batch_rx(self, slot: int) -> None:
        self._fast_key[slot] = -1
        self._dst_key[slot] = -1
        self._m_valid[slot] = self._m_dirty[slot] = False

    def rtp_source(self, slot: int) -> RtpSource:
        """The up-to-date ``RtpSource`` of ``slot`` (RTCP reports, statistics)."""
        self._flush_rtp(slot)
        return self._chans[slot].rtp  # type: ignore[no-any-return]

    def _flush_rtp(self, slot: int) -> None:
        """Write the mirrored A.1/A.8 numbers back into the channel's ``RtpSource``."""
        if not self._m_dirty[slot]:
            return
        self._m_dirty[slot] = False
        self._chans[slot].rtp.set_steady_state(
            int(self._m_max[slot]), int(self._m_cycles[slot]), int(self._m_recv[slot]),
            float(self._m_jitter[slot]), int(self._m_transit[slot]),
            int(self._m_lo[slot]) | (int(self._m_hi[slot]) << 64))

    def _flush_all_rtp(self) -> None:
        for slot in np.flatnonzero(self._m_dirty).tolist():
            self._flush_rtp(slot)

    def _load_rtp(self, slot: int) -> None:
        """Mirror the channel's ``RtpSource`` after the scalar path changed it."""
        state = self._chans[slot].rtp.steady_state()
        self._m_dirty[slot] = False
        self._m_valid[slot] = state is not None
        if state is not None:
            ssrc, max_seq, cycles, received, jitter, transit, mask = state
            self._m_ssrc[slot] = ssrc
            self._m_max[slot] = max_seq
            self._m_cycles[slot] = cycles
            self._m_recv[slot] = received
            self._m_jitter[slot] = jitter
            self._m_transit[slot] = transit
            self._m_lo[slot] = mask & 0xFFFFFFFFFFFFFFFF
            self._m_hi[slot] = mask >> 64

    def _refresh_batch_rx(self, ch: Any) -> None:
        """Recompute the source the array path may accept and the numeric destination."""
        remote = ch.remote
        latch = ch.latch
        if latch is not None:
            src = latch.fast_source()
            key = _addr_key(src) if src is not None and src == remote else -1
        else:
            key = _addr_key(remote)
        self._fast_key[ch.slot] = key
        self._dst_key[ch.slot] = _addr_key(remote)

    def _sync_latch(self, slot: int) -> None:
        """Fold the array path's latch decisions into the channel's ``SymmetricLatch``."""
        ch = self._chans[slot]
        if ch is None or ch.latch is None:
            return
        acc, drop = int(self._latch_acc[slot]), int(self._latch_drop[slot])
        if acc or drop:
            ch.latch.absorb(acc, drop, float(self._last_rx[slot]))
            self._latch_acc[slot] = self._latch_drop[slot] = 0

    def destinations(self, slots: NDArray[np.int64]) -> tuple[NDArray[np.uint32],
                                                              NDArray[np.uint16],
                                                              NDArray[np.bool_]]:
        """IPv4 address, port and "is IPv4" of the remote of every slot (for batch send)."""
        key = self._dst_key[slots]
        ok = key >= 0
        return ((key >> 16) & 0xFFFFFFFF).astype(np.uint32), (key & 0xFFFF).astype(np.uint16), ok

    # ------------------------------------------------------------------ playout control
    # (shared by receive_rtp and the batch path; the ring itself is MediaEngine's)

    def _reanchor(self, ch: Any, ts: int, play: int) -> int:
        """Schedule timestamp ``ts`` ``depth`` frames after the next tick (new source/jump)."""
        slot = ch.slot
        rel = play + _FRAME * int(self._depth[slot])
        self._resync[slot] = False
        self._gen[slot] = _NEVER
        self._ts_base[slot] = (ts - rel) & 0xFFFFFFFF
        self._anchor_at[slot] = rel
        if not self._started[slot]:
            self._started[slot] = True
            self._dirty = True
        return rel

    def _late(self, ch: Any, play: int, now: float) -> None:
        """A packet arrived after its samples were played: grow the playout delay.

        One frame at a time, at most once per ``_GROW_HOLDOFF_S`` (a single stall of the
        sender or the network makes a burst of packets late; one step absorbs the next
        such stall without inflating the delay by the whole burst). At the maximum delay
        the sender's clock is slower than ours: re-anchor instead.
        """
        slot = ch.slot
        ch.rtp.note_late()
        self.late_packets += 1
        self._last_late[slot] = now
        if now - self._last_adjust[slot] < _GROW_HOLDOFF_S:
            return
        self._last_adjust[slot] = now
        if self._depth[slot] < self._max_depth:
            self._depth[slot] += 1
            self._play[slot] = play - _FRAME
        else:
            self._depth[slot] = self._min_depth
            self._resync[slot] = True

    def _maybe_shrink(self, ch: Any, play: int, now: float) -> None:
        """Give back one frame of playout delay after ``_SHRINK_AFTER_S`` without a late
        packet: the frame at the playout point is skipped (counted in ``jb_dropped``)."""
        self._last_adjust[ch.slot] = now
        self._depth[ch.slot] -= 1
        self._play[ch.slot] = play + _FRAME
        self.jb_dropped += 1

    # ------------------------------------------------------------------ the batch

    def receive_batch(self, slots: NDArray[np.int64], data: NDArray[np.uint8],
                      lens: NDArray[np.int32], ip: NDArray[np.uint32],
                      port: NDArray[np.uint16], fam: NDArray[np.uint8],
                      ip6: NDArray[np.uint8], t: NDArray[np.float64]) -> None:
        """Accept datagram j (``data[j, :lens[j]]``, -1 = truncated) for ``slots[j]`` from
        (``ip[j]`` or ``ip6[j]`` by ``fam[j]``, ``port[j]``) at ``t[j]``; the datagrams of
        one slot must be in arrival order. Same effect as ``receive_rtp`` per datagram."""
        m = int(slots.size)
        if m == 0:
            return
        slots = slots.astype(np.int64, copy=False)
        lens = lens.astype(np.int64)
        is_open = self._open[slots]
        closed = m - int(is_open.sum())
        if closed:
            self.orphans += closed
        b0 = data[:, 0].astype(np.int64)
        valid = is_open & (lens >= 12) & ((b0 & 0xC0) == 0x80)
        if (b0 & 0x3F).any():  # CSRCs, extension or padding somewhere in the batch
            off, end = self._offsets(b0, data, lens, valid)
        else:
            off, end = np.full(m, 12, dtype=np.int64), lens
        bad = is_open & ~valid
        if bad.any():
            np.add.at(self._bad, slots[bad], 1)
        pt = data[:, 1].astype(np.int64) & 0x7F
        pt_ok = (pt == self._rx_pt[slots]) | (pt == self._rx_dtmf_pt[slots]) | (pt == _CN_PT)
        wrong = valid & ~pt_ok
        if wrong.any():
            np.add.at(self._wrong_pt, slots[wrong], 1)
        live = np.flatnonzero(valid & pt_ok)
        if live.size == 0:
            return
        key = np.where(fam == 4, (ip.astype(np.int64) << 16) | port, -2)
        # rank of each live packet among its slot's packets (arrival order kept)
        ls = slots[live]
        order = np.argsort(ls, kind="stable")
        live = live[order]
        ls = ls[order]
        new = np.ones(live.size, dtype=bool)
        new[1:] = ls[1:] != ls[:-1]
        if new.all():  # the usual case: one packet per channel
            rank = np.zeros(live.size, dtype=np.int64)
            rounds = 1
        else:
            starts = np.flatnonzero(new)
            rank = np.arange(live.size) - np.repeat(starts, np.diff(starts, append=live.size))
            rounds = min(int(rank.max()) + 1, _MAX_ROUNDS)
        diverted = np.full(self.capacity, _MAX_ROUNDS, dtype=np.int64)  # first slow round
        for r in range(rounds):
            sel = live[(rank == r) & (diverted[ls] > r)]
            if sel.size == 0:
                continue
            self._round(sel, slots, data, key, off, end, pt, t, diverted, r)
        divert_at = diverted[ls]
        slow = live[rank >= divert_at]
        if slow.size:
            self._receive_slow(slow, slots, data, lens, key, fam, ip6, port, t)

    @staticmethod
    def _offsets(b0: NDArray[np.int64], data: NDArray[np.uint8], lens: NDArray[np.int64],
                 valid: NDArray[np.bool_]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Payload offset and end per datagram (RFC 3550 5.1: CSRC list, 5.3.1 extension,
        padding count in the last octet); clears ``valid`` where they do not fit."""
        rows = np.arange(b0.size)
        stride = data.shape[1]
        off = 12 + ((b0 & 0x0F) << 2)
        has_ext = (b0 & 0x10) != 0
        valid &= ~has_ext | (lens >= off + 4)
        at = np.minimum(off + 2, stride - 2)
        ext_len = (data[rows, at].astype(np.int64) << 8) | data[rows, at + 1]
        off = np.where(has_ext, off + 4 + (ext_len << 2), off)
        has_pad = (b0 & 0x20) != 0
        pad = data[rows, np.clip(lens - 1, 0, stride - 1)].astype(np.int64)
        end = np.where(has_pad, lens - pad, lens)
        valid &= ~(has_pad & (pad == 0)) & (off <= end)
        return off, end

    def _round(self, sel: NDArray[np.int64], slots: NDArray[np.int64], data: NDArray[np.uint8],
               key: NDArray[np.int64], off: NDArray[np.int64], end: NDArray[np.int64],
               pt: NDArray[np.int64], t: NDArray[np.float64], diverted: NDArray[np.int64],
               r: int) -> None:
        """One packet per slot: classify, count drops, apply the fast ones."""
        s = slots[sel]
        k = key[sel]
        ts_now = t[sel]
        fk = self._fast_key[s]
        known = fk >= 0
        latch = self._latch_mode[s]
        match = known & (k == fk)
        # foreign: without latching anything but the SDP address; with a latch, anyone
        # else while the latched source spoke within relatch_after_s (latch rule 2)
        foreign = known & ~match & (~latch | (ts_now - self._last_rx[s] < self._relatch_s[s]))
        n = end[sel] - off[sel]
        play = self._play_np[s]
        hdr = np.ascontiguousarray(data[sel, :12]).view(_HDR).reshape(-1)
        tsv = hdr["ts"].astype(np.int64)
        rel = play + ((tsv - self._ts_base_np[s] - play + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        ahead = rel + n - play
        shrink = ((self._depth[s] > self._min_depth)
                  & (ts_now - self._last_adjust[s] > _SHRINK_AFTER_S)
                  & (ts_now - self._last_late[s] > _SHRINK_AFTER_S))
        seq = hdr["seq"].astype(np.int64)
        ssrc = hdr["ssrc"].astype(np.int64)
        udelta = (seq - self._m_max[s]) & 0xFFFF
        fast = (match & (pt[sel] == self._rx_pt[s]) & (n > 0) & (n <= self._ring_len // 4)
                & ~self._resync[s] & (ahead > 0) & (ahead <= self._ring_len - 2 * _FRAME)
                & ~shrink & self._m_valid[s] & (ssrc == self._m_ssrc[s]) & (udelta > 0)
                & (udelta < MAX_DROPOUT))
        divert = ~fast & ~foreign
        if divert.any():
            diverted[s[divert]] = r
        if foreign.any():
            fs = s[foreign]
            self._foreign[fs] += 1
            self._latch_drop[fs[self._latch_mode[fs]]] += 1
        if not fast.any():
            return
        sel, s, ts_now, n, rel, tsv = sel[fast], s[fast], ts_now[fast], n[fast], rel[fast], \
            tsv[fast]
        seq, udelta = seq[fast], udelta[fast]
        self.batch_fast += int(sel.size)
        self._latch_acc[s[self._latch_mode[s]]] += 1
        self._last_rx[s] = ts_now
        self._octets_rx[s] += n
        self._sequence(s, seq, udelta, tsv, (ts_now * 8000).astype(np.int64))
        self._scatter(s, sel, data, off[sel], n, rel)
        if self._pending:  # keep the stamp order: earlier scalar packets first
            self._pending_np.append(np.frombuffer(self._pending, dtype=np.int64)
                                    .reshape(-1, 3).copy())
            self._pending = array("q")
        self._pending_np.append(np.stack([s, rel, n], axis=1))

    def _sequence(self, s: NDArray[np.int64], seq: NDArray[np.int64],
                  udelta: NDArray[np.int64], ts: NDArray[np.int64],
                  arrival: NDArray[np.int64]) -> None:
        """``RtpSource.update`` for in-sequence packets of validated sources (one per slot):
        RFC 3550 A.1 ``update_seq`` (the ``udelta < MAX_DROPOUT`` branch) and A.8."""
        prev = self._m_max[s]
        self._m_cycles[s] += (seq < prev).astype(np.int64) << 16
        self._m_max[s] = seq
        # duplicate window: mask = ((mask << udelta) | 1) mod 2^128, as two uint64 words
        lo, hi = self._m_lo[s], self._m_hi[s]
        if (udelta == 1).all():  # the usual case: every packet is the next one
            self._m_hi[s] = (hi << np.uint64(1)) | (lo >> np.uint64(63))
            self._m_lo[s] = (lo << np.uint64(1)) | np.uint64(1)
        else:
            self._shift_window(s, udelta, lo, hi)
        self._m_recv[s] += 1
        transit = (arrival - ts) & 0xFFFFFFFF
        dt = (transit - self._m_transit[s]) & 0xFFFFFFFF
        dt = np.where(dt >= 0x80000000, 0x100000000 - dt, dt)
        jitter = self._m_jitter[s]
        self._m_jitter[s] = jitter + (dt - jitter) / 16.0
        self._m_transit[s] = transit
        self._m_dirty[s] = True

    def _shift_window(self, s: NDArray[np.int64], udelta: NDArray[np.int64],
                      lo: NDArray[np.uint64], hi: NDArray[np.uint64]) -> None:
        """Duplicate window ``mask = ((mask << udelta) | 1) mod 2^128`` on (hi, lo) words."""
        d = udelta.astype(np.uint64)
        small, mid = udelta < 64, (udelta >= 64) & (udelta < 128)
        s1 = np.minimum(d, np.uint64(63))
        s2 = np.uint64(64) - np.clip(d, np.uint64(1), np.uint64(63))
        s3 = np.clip(d, np.uint64(64), np.uint64(127)) - np.uint64(64)
        zero = np.uint64(0)
        self._m_hi[s] = np.where(small, (hi << s1) | (lo >> s2), np.where(mid, lo << s3, zero))
        self._m_lo[s] = np.where(small, lo << s1, zero) | np.uint64(1)

    def _scatter(self, s: NDArray[np.int64], rows: NDArray[np.int64], data: NDArray[np.uint8],
                 off: NDArray[np.int64], n: NDArray[np.int64], rel: NDArray[np.int64]) -> None:
        """Copy each payload into its slot's ring row at ``rel`` (modulo the ring)."""
        ring, ring_len = self._ring, self._ring_len
        pos = rel % ring_len
        for size in np.unique(n).tolist():
            g = n == size
            gs, grows, goff, gpos = s[g], rows[g], off[g], pos[g]
            if size % _BLOCK == 0 and not (gpos % _BLOCK).any() and (goff == goff[0]).all():
                # aligned frames (the normal case): copy 5 ms blocks, not single octets
                o = int(goff[0])
                src = data[grows, o : o + size].reshape(gs.size, size // _BLOCK, _BLOCK)
                cols = (gpos[:, None] // _BLOCK + np.arange(size // _BLOCK)) % self._nblocks
                ring.reshape(self.capacity, self._nblocks, _BLOCK)[gs[:, None], cols] = src
            else:
                span = np.arange(size)
                ring[gs[:, None], (gpos[:, None] + span) % ring_len] = \
                    data[grows[:, None], goff[:, None] + span]

    def _receive_slow(self, idx: NDArray[np.int64], slots: NDArray[np.int64],
                      data: NDArray[np.uint8], lens: NDArray[np.int64], key: NDArray[np.int64],
                      fam: NDArray[np.uint8], ip6: NDArray[np.uint8], port: NDArray[np.uint16],
                      t: NDArray[np.float64]) -> None:
        """Diverted packets through the scalar path, in arrival order per slot."""
        self.batch_slow += int(idx.size)
        addr_of = self._addr_of
        for j in idx.tolist():
            slot = int(slots[j])
            k = int(key[j])
            if k >= 0:
                addr = addr_of.get(k)
                if addr is None:
                    if len(addr_of) > 4096:
                        addr_of.clear()
                    addr = addr_of[k] = (str(ipaddress.IPv4Address(k >> 16)), k & 0xFFFF)
            else:
                addr = (str(ipaddress.IPv6Address(bytes(ip6[j]))), int(port[j]))
            self.receive_rtp(slot, bytes(data[j, : lens[j]]), addr, float(t[j]))
