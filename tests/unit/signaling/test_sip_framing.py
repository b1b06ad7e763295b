"""Stream framing (RFC 3261 §18.3) and keep-alives (RFC 5626 §3.5.1) of StreamFramer."""

from __future__ import annotations

import pytest

from signaling.errors import MessageTooLarge, SipParseError
from signaling.framing import StreamFramer
from signaling.message import Request, Response


def _msg(n: int, body: bytes = b"") -> bytes:
    head = (
        f"MESSAGE sip:ops@example.org SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 198.51.100.7;branch=z9hG4bKf{n}\r\n"
        f"To: <sip:ops@example.org>\r\nFrom: <sip:c@example.net>;tag={n}\r\n"
        f"Call-ID: frame-{n}\r\nCSeq: {n} MESSAGE\r\nMax-Forwards: 70\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


STREAM = _msg(1, b"hello") + _msg(2) + _msg(3, b"x" * 300 + b"\r\n\r\nINVITE lookalike")


def _drain(framer: StreamFramer) -> list[Request | Response]:
    out = []
    while (m := framer.next_message()) is not None:
        out.append(m)
    return out


def _feed(chunks: list[bytes]) -> list[Request | Response]:
    framer = StreamFramer()
    out = []
    for chunk in chunks:
        framer.receive_data(chunk)
        out.extend(_drain(framer))
    assert framer.buffered == 0
    return out


def _check(msgs: list[Request | Response]) -> None:
    assert [m.call_id for m in msgs] == ["frame-1", "frame-2", "frame-3"]
    assert [m.body for m in msgs][:2] == [b"hello", b""]
    assert msgs[2].body.endswith(b"INVITE lookalike")


def test_whole_stream_in_one_chunk() -> None:
    _check(_feed([STREAM]))


def test_byte_at_a_time() -> None:
    _check(_feed([STREAM[i : i + 1] for i in range(len(STREAM))]))


@pytest.mark.parametrize("size", [2, 7, 64, 333])
def test_arbitrary_chunk_sizes(size: int) -> None:
    _check(_feed([STREAM[i : i + size] for i in range(0, len(STREAM), size)]))


def test_need_data_until_body_complete() -> None:
    framer = StreamFramer()
    data = _msg(1, b"hello")
    framer.receive_data(data[:-1])
    assert framer.next_message() is None
    framer.receive_data(data[-1:])
    msg = framer.next_message()
    assert msg is not None and msg.body == b"hello"
    assert framer.next_message() is None


def test_keepalive_pings_and_stray_crlf() -> None:
    framer = StreamFramer()
    framer.receive_data(b"\r\n\r\n")
    assert framer.next_message() is None and framer.pong_needed
    assert framer.take_pongs() == 1 and not framer.pong_needed
    for byte in b"\r\n\r\n\r\n\r\n":  # two pings, one byte at a time
        framer.receive_data(bytes([byte]))
        assert framer.next_message() is None
    assert framer.take_pongs() == 2
    framer.receive_data(b"\r\n" + _msg(1))  # a single CRLF (a pong) before a message
    assert framer.next_message() is not None
    assert framer.take_pongs() == 0
    framer.receive_data(b"\r\n\r\n")
    framer.pong_needed = False  # the adapter's way of acknowledging
    assert framer.take_pongs() == 0


def test_missing_content_length_is_fatal_with_partial_message() -> None:
    framer = StreamFramer()
    framer.receive_data(_msg(1).replace(b"Content-Length: 0\r\n", b""))
    with pytest.raises(SipParseError) as info:
        framer.next_message()
    assert framer.broken and info.value.status_code == 400
    assert isinstance(info.value.message, Request) and info.value.message.call_id == "frame-1"
    with pytest.raises(SipParseError):
        framer.next_message()
    with pytest.raises(SipParseError):
        framer.receive_data(_msg(2))


@pytest.mark.parametrize(
    "cl_lines",
    [b"Content-Length: 5\r\nl: 6\r\n", b"Content-Length: -5\r\n", b"Content-Length: x\r\n"],
)
def test_bad_or_conflicting_content_length_is_fatal(cl_lines: bytes) -> None:
    framer = StreamFramer()
    framer.receive_data(_msg(1).replace(b"Content-Length: 0\r\n", cl_lines))
    with pytest.raises(SipParseError):
        framer.next_message()
    assert framer.broken


def test_oversize_body_rejected_before_it_arrives() -> None:
    framer = StreamFramer(max_bytes=2000)
    framer.receive_data(_msg(1).replace(b"Content-Length: 0", b"Content-Length: 5000"))
    with pytest.raises(MessageTooLarge) as info:
        framer.next_message()
    assert info.value.status_code == 513 and framer.broken


def test_oversize_head_rejected_without_buffering_more() -> None:
    framer = StreamFramer(max_bytes=1000)
    framer.receive_data(b"INVITE sip:a@b SIP/2.0\r\n")
    for _ in range(100):
        try:
            framer.receive_data(b"X-Filler: " + b"y" * 40 + b"\r\n")
            assert framer.next_message() is None
        except MessageTooLarge:
            break
    else:
        pytest.fail("an endless head was accepted")
    assert framer.broken and framer.buffered < 1100


def test_malformed_framed_message_is_skipped_not_fatal() -> None:
    framer = StreamFramer()
    bad = _msg(1).replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1)
    framer.receive_data(bad + _msg(2))
    with pytest.raises(SipParseError) as info:
        framer.next_message()
    assert info.value.status_code == 505 and not framer.broken
    nxt = framer.next_message()
    assert nxt is not None and nxt.call_id == "frame-2"


def test_compact_content_length_and_lf_only_heads() -> None:
    data = _msg(1, b"abc").replace(b"Content-Length: 3", b"l :3").replace(b"\r\n", b"\n")
    msgs = _feed([data[:50], data[50:], _msg(2), _msg(3, b"z")])
    assert [m.body for m in msgs] == [b"abc", b"", b"z"]


def test_responses_are_framed_too() -> None:
    resp = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nTo: <sip:a@b>;tag=1\r\n"
            b"From: <sip:c@d>;tag=2\r\nCall-ID: r1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 2\r\n"
            b"\r\nok")
    msgs = _feed([resp[:10], resp[10:]])
    assert isinstance(msgs[0], Response) and msgs[0].body == b"ok"


def test_equal_content_lengths_with_leading_zeros_agree() -> None:
    data = _msg(1, b"abc").replace(b"Content-Length: 3\r\n", b"Content-Length: 003\r\nl: 3\r\n")
    assert [m.body for m in _feed([data])] == [b"abc"]
    framer = StreamFramer()
    framer.receive_data(_msg(1).replace(b"Content-Length: 0\r\n", b"Content-Length: \r\n"))
    with pytest.raises(SipParseError):
        framer.next_message()
    assert framer.broken


def test_large_pipelined_burst_is_fine_but_an_undrained_buffer_is_not() -> None:
    burst = b"".join(_msg(i, b"b" * 900) for i in range(300))  # ~350 KB in one read
    framer = StreamFramer()
    framer.receive_data(burst[:200])
    framer.receive_data(burst[200:])
    assert len(_drain(framer)) == 300
    with pytest.raises(MessageTooLarge):
        for _ in range(20):
            framer.receive_data(burst[:100_000])  # never drained
    assert framer.broken
