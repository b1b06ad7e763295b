"""What the benchmarks that run a real node share: ports, users, readiness, CPU, SIPp output."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["cpu_seconds", "create_users", "free_port", "read_sipp_screens", "wait_ready"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def create_users(data_dir: Path, count: int, password: str) -> None:
    from storage.db import Database, default_sqlite_url
    from storage.repositories import UserRepository

    db = Database(default_sqlite_url(data_dir))
    await db.start()
    try:
        await UserRepository(db).add_many(
            [(f"u{i:05d}", password, None) for i in range(count)], "softswitch"
        )
    finally:
        await db.close()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    probe = (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKb\r\n"
        f"From: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: bench-ready\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.3)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("node exited during start-up")
            s.sendto(probe.replace(b"127.0.0.1:9", f"127.0.0.1:{s.getsockname()[1]}".encode()),
                     ("127.0.0.1", port))
            try:
                if s.recvfrom(65536)[0].startswith(b"SIP/2.0 200"):
                    return
            except TimeoutError:
                pass
    raise RuntimeError("node did not become ready")


def read_sipp_screens(workdir: Path) -> tuple[int, int | None, float]:
    """(successful, failed or None, SIPp's cumulative call rate) from the ``*_screen.log``
    files SIPp wrote with ``-trace_screen``; the files are removed for the next step."""
    screen = "".join(p.read_text(errors="replace") for p in workdir.glob("*_screen.log"))
    for p in workdir.glob("*_screen.log"):
        p.unlink()
    ok = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", screen)
    bad = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", screen)
    rate = re.search(r"Call Rate\s*\|\s*[\d.]+ cps\s*\|\s*([\d.]+) cps", screen)
    return (int(ok.group(1)) if ok else 0, int(bad.group(1)) if bad else None,
            float(rate.group(1)) if rate else 0.0)
