"""Sans-IO framing and the session fed bytes: one chunk or one byte at a time (h11 fuzz)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from cti.messages import ErrorCode
from cti.protocol import (
    NEED_DATA,
    ConnectionClosed,
    CtiSession,
    LineFramer,
    LineTooLong,
    RequestReceived,
    RequestRejected,
    SessionConfig,
)
from cti.roles import Principal, Role

HELLO = b'{"v":1,"type":"req","id":"1","cmd":"hello","args":{}}\n'
LOGIN = b'{"v":1,"type":"req","id":"2","cmd":"auth.login","args":{"user":"a","password":"p"}}\n'
STATE = (b'{"v":1,"type":"req","id":"3","cmd":"agent.set_state",'
         b'"args":{"state":"ready"}}\r\n')


def _lines(framer: LineFramer) -> list[bytes]:
    out = []
    while (line := framer.next_line()) is not NEED_DATA:
        assert isinstance(line, bytes)
        out.append(line)
    return out


def test_framer_one_chunk_equals_byte_by_byte() -> None:
    data = HELLO + LOGIN + STATE + b"partial"
    whole = LineFramer()
    whole.receive_data(data)
    one = LineFramer()
    got: list[bytes] = []
    for i in range(len(data)):
        one.receive_data(data[i:i + 1])
        got.extend(_lines(one))
    assert _lines(whole) == got == [HELLO[:-1], LOGIN[:-1], STATE[:-2]]
    assert whole.buffered == one.buffered == len(b"partial")


def test_framer_rejects_long_line_without_buffering_it() -> None:
    framer = LineFramer(max_line_bytes=1024)
    framer.receive_data(b"x" * 1000)
    assert framer.next_line() is NEED_DATA
    framer.receive_data(b"x" * 100)
    try:
        framer.next_line()
    except LineTooLong as exc:
        assert exc.code is ErrorCode.LINE_TOO_LONG
    else:
        raise AssertionError("no LineTooLong")
    framer.receive_data(b"y" * 1_000_000 + b"\n")  # ignored: the framer is dead
    assert framer.buffered == 0
    assert framer.next_line() is NEED_DATA


def test_framer_long_line_with_newline_in_same_chunk() -> None:
    framer = LineFramer(max_line_bytes=1024)
    framer.receive_data(b"z" * 2000 + b"\n" + HELLO)
    try:
        framer.next_line()
        raise AssertionError("no LineTooLong")
    except LineTooLong:
        pass


def _drive(session: CtiSession, chunks: list[bytes]) -> list[object]:
    events: list[object] = []
    for chunk in chunks:
        session.receive_data(chunk, now=0.0)
        while (event := session.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, RequestReceived) and event.request.cmd == "auth.login":
                session.login_succeeded(Principal("a", Role.AGENT, agent_id="a1"))
            if isinstance(event, ConnectionClosed):
                return events
    return events


def _summary(events: list[object]) -> list[tuple[str, str]]:
    out = []
    for e in events:
        if isinstance(e, RequestReceived):
            out.append(("ok", e.request.cmd))
        elif isinstance(e, RequestRejected):
            out.append(("err", e.error.code.value))
        else:
            out.append(("closed", ""))
    return out


def test_session_bytes_in_events_out_chunked_and_bytewise() -> None:
    data = HELLO + b"not json\n" + LOGIN + STATE + b"[1,2]\n"
    whole = _summary(_drive(CtiSession(SessionConfig(), 0.0), [data, b""]))
    bytewise = _summary(_drive(CtiSession(SessionConfig(), 0.0),
                               [data[i:i + 1] for i in range(len(data))] + [b""]))
    assert whole == bytewise == [("ok", "hello"), ("err", "bad_json"), ("ok", "auth.login"),
                                 ("ok", "agent.set_state"), ("err", "bad_request"),
                                 ("closed", "")]


def test_rejection_carries_request_id_and_wire_error() -> None:
    session = CtiSession(SessionConfig(), 0.0)
    session.receive_data(b'{"v":1,"type":"req","id":"x7","cmd":"agent.login","args":{}}\n', 0.0)
    event = session.next_event()
    assert isinstance(event, RequestRejected)
    wire = json.loads(event.data)
    assert wire["id"] == "x7" and wire["ok"] is False
    assert wire["error"]["code"] == "hello_required"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=40))
def test_arbitrary_bytes_never_raise(data: bytes, step: int) -> None:
    session = CtiSession(SessionConfig(max_line_bytes=1024), 0.0)
    for i in range(0, len(data), step):
        session.receive_data(data[i:i + step], 0.0)
        while (event := session.next_event()) is not NEED_DATA:
            assert isinstance(event, RequestReceived | RequestRejected | ConnectionClosed)
            if isinstance(event, RequestReceived) and event.request.cmd == "auth.login":
                session.login_failed()


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) |
                    st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20))
def test_arbitrary_json_values_answered_with_errors(value: object) -> None:
    session = CtiSession(SessionConfig(), 0.0)
    session.receive_data(json.dumps(value).encode() + b"\n", 0.0)
    event = session.next_event()
    assert isinstance(event, RequestRejected)
    assert json.loads(event.data)["ok"] is False
