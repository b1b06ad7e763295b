"""Logging context and redaction; the SIP trace file format."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from signaling.location import UserCredentials
from switch.logsetup import (
    CallLoggerAdapter,
    call_context,
    configure_logging,
    current_call_context,
    redact,
)
from switch.trace import MemoryTrace, SipTrace, format_entry_header

MD5_HEX = "939e7578ed9e3c518a452acee763bce9"
SHA_HEX = "8f3c8c7bd0b1f0d2c8f2d6d9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging("DEBUG", stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def test_format_has_utc_time_level_logger_and_context(log_stream: io.StringIO) -> None:
    log = logging.getLogger("softswitch.test")
    log.info("no call")
    with call_context(call_id="abc@host", channel="7"):
        log.warning("in call %d", 1)
        with call_context(agent="1001"):
            log.info("with agent")
            assert current_call_context() == {"call_id": "abc@host", "channel": "7",
                                              "agent": "1001"}
    assert current_call_context() == {}
    lines = log_stream.getvalue().splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(stamp + r" INFO    softswitch\.test \[-\] no call", lines[0])
    assert lines[1].endswith("WARNING softswitch.test [call=abc@host channel=7] in call 1")
    assert lines[2].endswith("[call=abc@host channel=7 agent=1001] with agent")


async def test_context_follows_tasks(log_stream: io.StringIO) -> None:
    log = logging.getLogger("softswitch.test")

    async def worker() -> None:
        await asyncio.sleep(0)
        log.info("from task")

    with call_context(call_id="c1"):
        task = asyncio.create_task(worker())
    await task
    assert "[call=c1] from task" in log_stream.getvalue()


def test_adapter_binds_call_and_explicit_wins(log_stream: io.StringIO) -> None:
    log = CallLoggerAdapter(logging.getLogger("softswitch.test"), call_id="x1", agent="a9")
    with call_context(call_id="outer", channel="3"):
        log.info("adapted")
    assert "[call=x1 channel=3 agent=a9] adapted" in log_stream.getvalue()


def test_credentials_repr_hides_ha1() -> None:
    creds = UserCredentials("1001", "softswitch", {"MD5": MD5_HEX, "SHA-256": SHA_HEX})
    assert MD5_HEX not in repr(creds) and SHA_HEX not in repr(creds)


@pytest.mark.parametrize(("raw", "secret"), [
    ('Authorization: Digest username="1001", realm="softswitch", nonce="abc", '
     f'uri="sip:softswitch", response="{MD5_HEX}"', MD5_HEX),
    (f"Proxy-Authorization: Digest username=1001,response={MD5_HEX}", MD5_HEX),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("login password=hunter2 ok", "hunter2"),
    ('{"password": "hunter2"}', "hunter2"),
    ("user add 1001 --password hunter2", "hunter2"),
    ("user add 1001 --password=hunter2", "hunter2"),
    ("secret = 'hunter2'", "hunter2"),
    ("passwd: 'hunter2'", "hunter2"),
    (f"ha1={MD5_HEX}", MD5_HEX),
    (f"ha1_sha256: {SHA_HEX}", SHA_HEX),
    (f"ha1={{'MD5': '{MD5_HEX}', 'SHA-256': '{SHA_HEX}'}}", SHA_HEX),
])
def test_redact_masks_secrets(raw: str, secret: str) -> None:
    clean = redact(raw)
    assert secret not in clean and "***" in clean


@pytest.mark.parametrize("text", [
    f"Call-ID: {MD5_HEX}@host nonce=\"{MD5_HEX}\" response time 20 ms",
    "pass the call to agent 1001",
    "password changed for user 1001",
    "sent response=200 to 10.0.0.1",
    "Authorization: Digest username=\"1001\", realm=\"softswitch\"",
])
def test_redact_keeps_harmless_text(text: str) -> None:
    assert redact(text) == text


def test_redaction_filter_on_records_args_and_exceptions(log_stream: io.StringIO) -> None:
    log = logging.getLogger("softswitch.test")
    log.info("got %s", f'Authorization: Digest username="1001", response="{MD5_HEX}"')
    try:
        raise ValueError("bad password=hunter2")
    except ValueError:
        log.exception("failed for %s", "1001")
    output = log_stream.getvalue()
    assert MD5_HEX not in output and "hunter2" not in output
    assert 'response="***"' in output and "ValueError: bad password=***" in output


def test_configure_logging_is_idempotent() -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    first = configure_logging("INFO", stream=io.StringIO())
    second = configure_logging("WARNING", stream=io.StringIO())
    try:
        assert first not in root.handlers and second in root.handlers
        assert len(root.handlers) == before + 1 and root.level == logging.WARNING
    finally:
        root.removeHandler(second)


REGISTER = (b"REGISTER sip:softswitch SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1\r\n"
            b'Authorization: Digest username="1001", response="' + MD5_HEX.encode() + b'"\r\n'
            b"Content-Length: 0\r\n\r\n")
INVITE = b"INVITE sip:1002@softswitch SIP/2.0\r\nContent-Length: 4\r\n\r\nv=0\n"


def test_header_line_format() -> None:
    assert format_entry_header("in", "UDP", ("127.0.0.1", 5060), ("127.0.0.1", 5061), 412,
                               1_796_040_000.123456) == (
        "2026-11-30T12:00:00.123456Z in udp 127.0.0.1:5060 <- 127.0.0.1:5061 (412 bytes)")
    assert format_entry_header("out", "tcp", ("::1", 5060), ("::1", 40000), 5, 0.0) == (
        "1970-01-01T00:00:00.000000Z out tcp [::1]:5060 -> [::1]:40000 (5 bytes)")
    with pytest.raises(ValueError):
        format_entry_header("sideways", "udp", ("a", 1), ("b", 2), 0, 0.0)  # type: ignore[arg-type]


def _entries(path: Path) -> list[tuple[str, bytes]]:
    """Parse a trace file using the byte count of each header line."""
    data, out, pos = path.read_bytes(), [], 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        header = data[pos:end].decode()
        size = int(re.search(r"\((\d+) bytes\)$", header).group(1))  # type: ignore[union-attr]
        out.append((header, data[end + 1:end + 1 + size]))
        pos = end + 1 + size
        pos = data.index(b"\n", pos) + 1 if not data[end + 1:pos].endswith(b"\n") else pos
        assert data[pos:pos + 1] == b"\n"  # the blank separator line
        pos += 1
    return out


def test_trace_file_is_faithful_and_separated(tmp_path: Path) -> None:
    path = tmp_path / "sip.trace"
    with SipTrace(path) as trace:
        trace.record("in", "udp", ("127.0.0.1", 5060), ("127.0.0.1", 5061), REGISTER, 10.0)
        trace.record("out", "tcp", ("127.0.0.1", 5060), ("127.0.0.1", 5062), INVITE, 10.5)
        trace.record("out", "udp", ("127.0.0.1", 5060), ("127.0.0.1", 5061), b"ping", 11.0)
        assert trace.entries == 3
    entries = _entries(path)
    assert [h.split()[1:5] for h, _ in entries] == [
        ["in", "udp", "127.0.0.1:5060", "<-"], ["out", "tcp", "127.0.0.1:5060", "->"],
        ["out", "udp", "127.0.0.1:5060", "->"]]
    assert [m for _, m in entries] == [REGISTER, INVITE, b"ping"]
    assert MD5_HEX.encode() in path.read_bytes()  # faithful: not masked


def test_trace_appends_and_ignores_after_close(tmp_path: Path) -> None:
    path = tmp_path / "sip.trace"
    for t in (1.0, 2.0):
        trace = SipTrace(path)
        trace.record("in", "udp", ("127.0.0.1", 1), ("127.0.0.1", 2), INVITE, t)
        trace.close()
        trace.record("in", "udp", ("127.0.0.1", 1), ("127.0.0.1", 2), INVITE, t)
    assert len(_entries(path)) == 2


def test_trace_flushes_by_time_without_loop(tmp_path: Path) -> None:
    path = tmp_path / "sip.trace"
    trace = SipTrace(path)
    trace.record("in", "udp", ("127.0.0.1", 1), ("127.0.0.1", 2), INVITE, 100.0)
    assert path.read_bytes() == b""  # buffered
    trace.record("in", "udp", ("127.0.0.1", 1), ("127.0.0.1", 2), INVITE, 100.25)
    assert len(_entries(path)) == 2
    trace.close()


async def test_trace_flushes_by_loop_timer(tmp_path: Path) -> None:
    path = tmp_path / "sip.trace"
    trace = SipTrace(path, flush_interval_s=0.01)
    trace.attach(asyncio.get_running_loop())
    trace.record("in", "udp", ("127.0.0.1", 1), ("127.0.0.1", 2), INVITE, 1.0)
    assert path.read_bytes() == b""
    for _ in range(200):
        await asyncio.sleep(0.005)
        if path.read_bytes():
            break
    assert len(_entries(path)) == 1
    trace.close()


def test_memory_trace() -> None:
    trace = MemoryTrace()
    trace.record("in", "udp", ("127.0.0.1", 5060), ("127.0.0.1", 5061), REGISTER, 1.0)
    trace.record("out", "udp", ("127.0.0.1", 5060), ("127.0.0.1", 5061), b"SIP/2.0 401", 1.1)
    assert trace.messages("in") == [REGISTER] and trace.messages() == [REGISTER, b"SIP/2.0 401"]
    assert trace.entries[1].remote == ("127.0.0.1", 5061)
