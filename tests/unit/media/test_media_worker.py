"""Media worker processes: two workers, placement, a bridge across real sockets, clean stop."""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path

import numpy as np
import pytest

from dsp import g711
from dsp.dtmf import BatchDtmfDetector
from dsp.tones import dtmf_tone
from switch.media.config import MediaConfig
from switch.media.errors import MediaError
from switch.media.player import FinishReason
from switch.media.rtp import build_packet
from switch.media.service import MediaService
from switch.media.worker import WorkerBackend


def peer() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def drain(s: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(s.recv(2048))
        except BlockingIOError:
            return out


async def test_two_workers_bridge_and_stop(tmp_path: Path) -> None:
    base = random.Random().randrange(50000, 59000, 2)
    cfg = MediaConfig(rtp_port_min=base, rtp_port_max=base + 199, workers=2,
                      recordings_dir=tmp_path, prompt_cache_dir=tmp_path, max_catchup_ms=3000)
    svc = MediaService(cfg, seed=11)
    await svc.start()
    backends = list(svc.backends)
    pa, pb, pc = peer(), peer(), peer()
    try:
        assert len(backends) == 2 and all(isinstance(b, WorkerBackend) for b in backends)
        assert backends[0].pid != backends[1].pid
        a = await svc.open_channel(remote=pa.getsockname())
        b = await svc.open_channel(remote=pb.getsockname(), near=a.channel_id)
        c = await svc.open_channel(remote=pc.getsockname())  # least loaded: the other one
        assert a.backend == b.backend != c.backend
        ranges = cfg.worker_port_ranges()
        for info in (a, b, c):
            lo, hi = ranges[info.backend]
            assert lo <= info.local_addr[1] <= hi
        with pytest.raises(MediaError):
            await svc.bridge(a.channel_id, c.channel_id)
        await svc.bridge(a.channel_id, b.channel_id)
        pcm = np.concatenate([np.zeros(800, np.int16), dtmf_tone("8", 150),
                              np.zeros(2400, np.int16)])
        loop = asyncio.get_running_loop()
        start = loop.time()
        for k in range(len(pcm) // 160):
            await asyncio.sleep(max(0.0, start + 0.02 * k - loop.time()))
            payload = g711.ulaw_encode(pcm[160 * k:160 * (k + 1)]).tobytes()
            pa.sendto(build_packet(0, k, 160 * k, 5, payload), a.local_addr)
        digit = await asyncio.wait_for(svc.events.get(), 3.0)
        assert (digit.channel_id, digit.event.digit) == (a.channel_id, "8")
        await asyncio.sleep(0.1)
        audio = np.concatenate([g711.ulaw_decode(np.frombuffer(p[12:], np.uint8))
                                for p in drain(pb)])
        assert [e.digit for _, e in BatchDtmfDetector(1).process(audio[None, :])] == ["8"]
        fut = await svc.tone(c.channel_id, "busy", duration_ms=60)
        assert await asyncio.wait_for(fut, 3.0) is FinishReason.COMPLETED
        with pytest.raises(KeyError):
            await backends[0].request("stats", (999,))
        health = await svc.health()
        assert [h["channels"] for h in health] == [2, 1]
        assert all(h["ticks"] > 10 for h in health)
    finally:
        await svc.shutdown()
        for s in (pa, pb, pc):
            s.close()
    for backend in backends:
        assert backend.process is not None and not backend.process.is_alive()
        assert backend.process.exitcode == 0
        assert backend.final_health is not None


def test_large_prompt_under_uvloop(tmp_path: Path) -> None:
    """A prompt bigger than the pipe's socket buffer crosses intact when the front runs
    uvloop (as the node does): uvloop makes watched descriptors non-blocking, which tore
    ``Connection.send`` frames and killed the worker ("media worker 0 is gone")."""
    uvloop = pytest.importorskip("uvloop")
    base = random.Random().randrange(50000, 59000, 2)
    cfg = MediaConfig(rtp_port_min=base, rtp_port_max=base + 19, workers=1,
                      recordings_dir=tmp_path, prompt_cache_dir=tmp_path)
    pcm = np.zeros(8000 * 40, np.int16)  # 640 kB, several times a socket buffer

    async def scenario() -> None:
        svc = MediaService(cfg, seed=3)
        await svc.start()
        try:
            cid = (await svc.open_channel(remote=("127.0.0.1", 9))).channel_id
            for _ in range(3):
                fut = await svc.play(cid, [pcm])
            await svc.stop(cid)
            assert await asyncio.wait_for(fut, 3.0) is FinishReason.STOPPED
            assert (await svc.health())[0]["channels"] == 1
        finally:
            await svc.shutdown()

    uvloop.run(scenario())
