"""MediaService in this process (workers=0) with real UDP sockets on loopback."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from dsp import g711
from dsp.dtmf import BatchDtmfDetector
from dsp.tones import dtmf_tone
from switch.media.config import MediaConfig
from switch.media.errors import MediaError
from switch.media.player import FinishReason
from switch.media.rfc4733 import DtmfReceiver
from switch.media.rtp import build_packet, parse_header_fast
from switch.media.service import MediaService

SIPP_PCAPS = Path("/usr/share/sip-tester")


def config(tmp_path: Path, **kw: object) -> MediaConfig:
    base = random.Random().randrange(30000, 39000, 2)
    # max_catchup_ms: on a loaded CI machine a stalled loop catches up instead of skipping
    # ticks, so the audio the tests inspect stays continuous (only later).
    return MediaConfig(rtp_port_min=base, rtp_port_max=base + 99, workers=0,
                       recordings_dir=tmp_path, prompt_cache_dir=tmp_path,
                       max_catchup_ms=3000, **kw)  # type: ignore[arg-type]


class Peer:
    """A UDP socket playing the far end of a channel."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.addr: tuple[str, int] = self.sock.getsockname()
        self.got: list[bytes] = []

    def drain(self) -> list[bytes]:
        while True:
            try:
                self.got.append(self.sock.recv(2048))
            except BlockingIOError:
                return self.got

    def close(self) -> None:
        self.sock.close()


async def send_paced(peer: Peer, dst: tuple[str, int], packets: list[bytes],
                     interval_s: float = 0.020) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i, pkt in enumerate(packets):
        delay = start + i * interval_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        peer.sock.sendto(pkt, dst)
        peer.drain()


def ulaw_packets(pcm: np.ndarray, ssrc: int = 0x4242) -> list[bytes]:
    return [build_packet(0, k, 160 * k, ssrc, g711.ulaw_encode(pcm[160 * k:160 * (k + 1)])
                         .tobytes()) for k in range(len(pcm) // 160)]


def decode_audio(packets: list[bytes], pt: int = 0) -> np.ndarray:
    frames = []
    for p in packets:
        hdr = parse_header_fast(p)
        if hdr is not None and hdr[0] == pt:
            frames.append(g711.ulaw_decode(np.frombuffer(p[hdr[5]:hdr[6]], dtype=np.uint8)))
    return np.concatenate(frames) if frames else np.zeros(0, np.int16)


@pytest.fixture
async def service(tmp_path: Path):
    svc = MediaService(config(tmp_path), seed=5)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.shutdown()


async def test_loopback_digit_through_bridge(service: MediaService) -> None:
    pa, pb = Peer(), Peer()
    try:
        a = await service.open_channel(remote=pa.addr)
        b = await service.open_channel(remote=pb.addr, near=a.channel_id)
        await service.bridge(a.channel_id, b.channel_id)
        pcm = np.concatenate([np.zeros(800, np.int16), dtmf_tone("5", 150),
                              np.zeros(2400, np.int16)])
        await send_paced(pa, a.local_addr, ulaw_packets(pcm))
        await asyncio.sleep(0.1)
        audio = decode_audio(pb.drain())
        events = BatchDtmfDetector(1).process(audio[None, :])
        assert [ev.digit for _, ev in events] == ["5"]
        digit = await asyncio.wait_for(service.events.get(), 1.0)
        assert (digit.channel_id, digit.event.digit) == (a.channel_id, "5")
        assert service.digits(a.channel_id).get_nowait().digit == "5"
        st = await service.stats(a.channel_id)
        assert st["octets_received"] == len(pcm) // 160 * 160 and st["bad"] == 0
        assert st["last_rx"] is not None and st["remote"] == pa.addr
    finally:
        pa.close()
        pb.close()


async def test_play_tone_stop_futures(service: MediaService) -> None:
    peer = Peer()
    try:
        ch = await service.open_channel(remote=peer.addr)
        prompt = (np.sin(np.arange(1600) / 3) * 6000).astype(np.int16)
        fut = await service.play(ch.channel_id, [prompt])
        assert await asyncio.wait_for(fut, 2.0) is FinishReason.COMPLETED
        long = await service.play(ch.channel_id, [np.ones(80000, np.int16)])
        await asyncio.sleep(0.05)
        await service.stop(ch.channel_id)
        assert await asyncio.wait_for(long, 1.0) is FinishReason.STOPPED
        tone = await service.tone(ch.channel_id, "ringback", duration_ms=100)
        assert await asyncio.wait_for(tone, 1.0) is FinishReason.COMPLETED
        with pytest.raises(MediaError):
            await service.tone(ch.channel_id, "nonsense")
        audio = decode_audio(peer.drain())
        assert np.abs(audio).max() > 3000
    finally:
        peer.close()


async def test_send_dtmf_rfc4733_and_inband(service: MediaService) -> None:
    peer = Peer()
    try:
        ch = await service.open_channel(remote=peer.addr)
        await asyncio.wait_for(service.send_dtmf(ch.channel_id, "12", duration_ms=80), 3.0)
        await asyncio.sleep(0.05)
        rx = DtmfReceiver()
        digits = []
        for p in peer.drain():
            hdr = parse_header_fast(p)
            if hdr and hdr[0] == 101:
                digits += [d.digit for d in rx.feed(hdr[2], hdr[4], p[hdr[5]:hdr[6]], 0.0)]
        assert digits == ["1", "2"]
        peer.got.clear()
        await asyncio.wait_for(service.send_dtmf(ch.channel_id, "3", mode="inband"), 3.0)
        await asyncio.sleep(0.05)
        events = BatchDtmfDetector(1).process(decode_audio(peer.drain())[None, :])
        assert [ev.digit for _, ev in events] == ["3"]
    finally:
        peer.close()


async def test_recording_stereo(service: MediaService, tmp_path: Path) -> None:
    peer = Peer()
    try:
        ch = await service.open_channel(remote=peer.addr)
        path = await service.record_start(ch.channel_id, tmp_path / "rec.wav")
        await send_paced(peer, ch.local_addr, ulaw_packets(np.full(3200, 2000, np.int16)))
        await asyncio.sleep(0.06)
        await service.record_pause(ch.channel_id)
        loud = [build_packet(0, 100 + k, 160 * (100 + k), 0x4242,
                             g711.ulaw_encode(np.full(160, 8000, np.int16)).tobytes())
                for k in range(10)]
        await send_paced(peer, ch.local_addr, loud)  # not recorded while paused
        await asyncio.sleep(0.06)
        await service.record_resume(ch.channel_id)
        assert await service.record_stop(ch.channel_id) == path
        with wave.open(path) as w:
            assert w.getnchannels() == 2 and w.getframerate() == 8000
            data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).reshape(-1, 2)
        assert (np.abs(data[:, 0] - 2000) < 100).sum() >= 1600  # what the peer said (left)
        assert not np.any(np.abs(data[:, 0]) > 7000)  # nothing from the paused part
        assert not np.any(data[:, 1])  # it heard silence (right)
        assert await service.record_stop(ch.channel_id) is None
    finally:
        peer.close()


async def test_unknown_channel_and_close_resolves_plays(service: MediaService) -> None:
    with pytest.raises(MediaError):
        await service.bridge(123, 456)
    ch = await service.open_channel()
    fut = await service.play(ch.channel_id, [np.ones(80000, np.int16)])
    await service.close_channel(ch.channel_id)
    assert fut.result() is FinishReason.STOPPED
    await service.close_channel(ch.channel_id)  # idempotent


def read_pcap_rtp(path: Path) -> list[tuple[float, bytes]]:
    """RTP payloads of UDP/IPv4 packets in a classic little-endian Ethernet pcap."""
    data = path.read_bytes()
    magic = data[:4]
    assert magic == b"\xd4\xc3\xb2\xa1", "only little-endian microsecond pcaps"
    out, off = [], 24
    while off + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", data, off)
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        out.append((sec + usec / 1e6, frame[14 + ihl + 8:]))
    return out


@pytest.mark.skipif(not (SIPP_PCAPS / "g711a.pcap").exists(), reason="SIPp pcaps absent")
async def test_sipp_pcap_pcma_30ms_and_rfc2833_digit(service: MediaService) -> None:
    pa, pb = Peer(), Peer()
    try:
        a = await service.open_channel(codec="PCMA", remote=pa.addr)
        b = await service.open_channel(remote=pb.addr, near=a.channel_id)
        await service.bridge(a.channel_id, b.channel_id)
        audio = read_pcap_rtp(SIPP_PCAPS / "g711a.pcap")[:40]  # 1.2 s of 30 ms packets
        assert all(len(p) == 12 + 240 for _, p in audio)
        await send_paced(pa, a.local_addr, [p for _, p in audio], 0.030)
        await asyncio.sleep(0.1)
        st = await service.stats(a.channel_id)
        assert st["octets_received"] == 40 * 240 and st["wrong_pt"] == 0
        assert st["played_frames"] >= 58  # 40 x 30 ms re-framed into 60 x 20 ms
        out = decode_audio(pb.drain())
        assert np.abs(out).max() > 1000  # the recording's speech came through, now PCMU
        dtmf = read_pcap_rtp(SIPP_PCAPS / "dtmf_2833_1.pcap")
        await send_paced(pa, a.local_addr, [p for _, p in dtmf])
        digit = await asyncio.wait_for(service.events.get(), 1.0)
        assert (digit.event.digit, digit.event.source) == ("1", "rfc4733")
        await asyncio.sleep(0.1)
        assert service.events.empty()  # one digit per key press
    finally:
        pa.close()
        pb.close()


def bind_pair() -> tuple[socket.socket, socket.socket]:
    """Two sockets on consecutive ports (RTP, RTCP) for a peer."""
    for _ in range(50):
        base = random.Random().randrange(20000, 29000, 2)
        rtp, rtcp = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
        try:
            rtp.bind(("127.0.0.1", base))
            rtcp.bind(("127.0.0.1", base + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        rtcp.settimeout(3.0)
        return rtp, rtcp
    raise RuntimeError("no free port pair")


async def test_rtcp_reports_and_inactivity_event(tmp_path: Path) -> None:
    from switch.media.rtcp import RtcpSdes, RtcpSenderReport, parse_compound
    from switch.media.service import RtpTimedOut

    svc = MediaService(config(tmp_path, rtcp_interval_s=0.5, inactivity_timeout_s=1.0))
    await svc.start()
    rtp, rtcp = bind_pair()
    try:
        ch = await svc.open_channel(remote=rtp.getsockname())
        report = await asyncio.to_thread(rtcp.recv, 2048)
        packets = parse_compound(report)
        assert isinstance(packets[0], RtcpSenderReport) and packets[0].packet_count > 0
        assert any(isinstance(p, RtcpSdes) for p in packets)
        event = await asyncio.wait_for(svc.events.get(), 3.0)  # no RTP ever came
        assert event == RtpTimedOut(ch.channel_id, None)
    finally:
        await svc.shutdown()
        rtp.close()
        rtcp.close()


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"rtp_port_min": 80}, "rtp_port_min"),
    ({"rtp_port_min": 20000, "rtp_port_max": 20000}, "rtp_port_max"),
    ({"ptime_ms": 30}, "ptime_ms"),
    ({"jitter_min_ms": 100, "jitter_max_ms": 50}, "jitter_max_ms"),
    ({"dtmf_rx_mode": "smoke"}, "dtmf_rx_mode"),
    ({"tone_profile": "mars"}, "tone_profile"),
    ({"workers": 3, "rtp_port_min": 20000, "rtp_port_max": 20003}, "rtp_port_max"),
])
def test_config_rejects_bad_values_naming_the_key(kwargs: dict, key: str) -> None:
    from switch.media.config import ConfigError

    with pytest.raises(ConfigError, match=f"media.{key}"):
        MediaConfig(**kwargs)


def test_config_worker_ranges() -> None:
    cfg = MediaConfig(rtp_port_min=10001, rtp_port_max=10100, workers=2)
    assert cfg.worker_port_ranges() == [(10002, 10049), (10050, 10097)]
    assert cfg.capacity() == 24
    assert MediaConfig(rtp_port_min=10000, rtp_port_max=20000).capacity() == 1024
    assert MediaConfig(channels_per_worker=100).capacity() == 100
