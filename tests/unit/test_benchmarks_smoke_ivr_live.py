"""The live IVR benchmark still runs (3 calls walking the demo to the bill) with SIPp."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from benchmarks import bench_ivr_live


def test_dtmf_pcap_gives_each_digit_its_own_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "d.pcap"
    bench_ivr_live.write_dtmf_pcap(path, "00#", first_ts=1000)
    data = path.read_bytes()
    assert struct.unpack("<I", data[:4])[0] == 0xA1B2C3D4
    off, events = 24, []
    while off < len(data):
        incl = struct.unpack("<I", data[off + 8:off + 12])[0]
        pkt = data[off + 16:off + 16 + incl]
        rtp = pkt[14 + 20 + 8:]
        ts = struct.unpack("!I", rtp[4:8])[0]
        events.append((ts, rtp[12], bool(rtp[13] & 0x80), rtp[1] & 0x7F))
        off += 16 + incl
    assert len(events) == 18 and {e[3] for e in events} == {101}
    stamps = sorted({e[0] for e in events})
    assert len(stamps) == 3 and stamps[0] == 1000  # one timestamp per digit
    assert [e[1] for e in events[::6]] == [0, 0, 11]
    assert sum(e[2] for e in events) == 9  # three end packets per event


@pytest.mark.interop
@pytest.mark.slow
def test_ivr_live_benchmark_smoke(tmp_path: Path) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp is not installed")
    out = tmp_path / "ivr.json"
    assert bench_ivr_live.main(["--smoke", "--json", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    step = data["steps"][0]
    assert step["sip_failed"] == 0 and step["reached_bill"] == step["concurrent"] == 3
    assert data["best_concurrent_zero_failures"] == 3
