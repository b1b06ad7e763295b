"""The pure session machine: order of hello/login/commands, role table, timers, close."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cti.messages import COMMANDS, ErrorCode
from cti.protocol import (
    NEED_DATA,
    TRANSITIONS,
    CtiSession,
    RequestReceived,
    RequestRejected,
    SessionConfig,
    SessionState,
    SessionTimedOut,
)
from cti.roles import PERMISSIONS, Principal, Role

SAMPLE_ARGS: dict[str, dict[str, Any]] = {
    name: {arg: ({"str": "x", "int": 1, "number": 1.0, "bool": True, "object": {},
                  "str_list": []}[spec.kind] if not spec.choices else spec.choices[0])
           for arg, spec in cmd.args.items() if spec.required}
    for name, cmd in COMMANDS.items()
}


def line(cmd: str, args: dict[str, Any] | None = None, req_id: str = "r") -> bytes:
    return json.dumps({"v": 1, "type": "req", "id": req_id, "cmd": cmd,
                       "args": SAMPLE_ARGS[cmd] if args is None else args}).encode() + b"\n"


def feed(session: CtiSession, data: bytes, now: float = 0.0) -> RequestReceived | RequestRejected:
    session.receive_data(data, now)
    event = session.next_event()
    assert isinstance(event, RequestReceived | RequestRejected)
    assert session.next_event() is NEED_DATA
    return event


def code(event: object) -> str:
    assert isinstance(event, RequestRejected), event
    return event.error.code.value


def active(role: Role = Role.AGENT, config: SessionConfig | None = None) -> CtiSession:
    session = CtiSession(config or SessionConfig(), 0.0)
    assert isinstance(feed(session, line("hello")), RequestReceived)
    assert isinstance(feed(session, line("auth.login", {"user": "u", "password": "p"})),
                      RequestReceived)
    session.login_succeeded(Principal("u", role, frozenset({"q"}), agent_id="a1"))
    assert session.state is SessionState.ACTIVE
    return session


def test_commands_before_hello_and_before_login_are_refused() -> None:
    session = CtiSession(SessionConfig(), 0.0)
    assert code(feed(session, line("agent.set_state"))) == "hello_required"
    assert code(feed(session, line("auth.login", {"user": "u", "password": "p"}))) == \
        "hello_required"
    assert isinstance(feed(session, line("ping")), RequestReceived)  # ping is always fine
    assert isinstance(feed(session, line("hello")), RequestReceived)
    assert code(feed(session, line("hello"))) == "not_authenticated"
    assert code(feed(session, line("call.answer"))) == "not_authenticated"
    # an unknown command is not revealed as such before login
    assert code(feed(session, line("ping", {}).replace(b"ping", b"system.exec"))) == \
        "not_authenticated"
    assert session.state is SessionState.AWAIT_LOGIN


def test_login_outcomes_and_logout() -> None:
    session = active()
    assert code(feed(session, line("auth.login", {"user": "u", "password": "p"}))) == \
        "already_authenticated"
    assert isinstance(feed(session, line("auth.logout")), RequestReceived)
    assert session.state is SessionState.AWAIT_LOGIN and session.principal is None
    assert code(feed(session, line("agent.set_state"))) == "not_authenticated"


def test_too_many_failed_logins_close_the_session() -> None:
    session = CtiSession(SessionConfig(max_login_failures=3), 0.0)
    feed(session, line("hello"))
    for attempt in range(3):
        assert isinstance(feed(session, line("auth.login", {"user": "u", "password": "x"})),
                          RequestReceived)
        closed = session.login_failed()
        assert closed is (attempt == 2)
    assert session.state is SessionState.CLOSED
    assert session.next_deadline() is None


def test_unknown_command_after_login() -> None:
    session = active()
    raw = b'{"v":1,"type":"req","id":"9","cmd":"execute","args":{"app":"System"}}\n'
    event = feed(session, raw)
    assert code(event) == "unknown_command" and event.request_id == "9"


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_role_table_every_command(role: Role) -> None:
    """Table-driven: each command is accepted iff PERMISSIONS grants it to the role."""
    session = active(role)
    for name in COMMANDS:
        if name in ("hello", "auth.login", "auth.logout"):
            continue
        event = feed(session, line(name))
        allowed = role in PERMISSIONS.get(name, frozenset())
        if allowed:
            assert isinstance(event, RequestReceived), (role, name, event)
        else:
            assert code(event) == "forbidden", (role, name)
            assert isinstance(event, RequestRejected) and event.forbidden


def test_forbidden_is_checked_before_arguments() -> None:
    session = active(Role.WALLBOARD)
    assert code(feed(session, line("call.force_hangup", {"bogus": 1}))) == "forbidden"


def test_deny_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    session = active(Role.SUPERVISOR)
    monkeypatch.delitem(PERMISSIONS, "monitor.listen")
    assert code(feed(session, line("monitor.listen"))) == "forbidden"


def test_supervisor_only_commands() -> None:
    for name in ("monitor.listen", "monitor.whisper", "monitor.barge", "monitor.switch",
                 "monitor.stop", "call.take_over"):
        assert PERMISSIONS[name] == frozenset({Role.SUPERVISOR})
    assert not any(Role.WALLBOARD in roles for name, roles in PERMISSIONS.items()
                   if COMMANDS[name].mutating)


def test_auth_timeout_then_idle_timeout() -> None:
    config = SessionConfig(auth_timeout_s=10.0, idle_timeout_s=30.0)
    session = CtiSession(config, now=100.0)
    assert session.next_deadline() == 110.0
    assert session.handle_timer(109.9) is None
    timed_out = session.handle_timer(110.0)
    assert isinstance(timed_out, SessionTimedOut) and timed_out.reason == "login timeout"
    assert json.loads(timed_out.data)["error"]["code"] == "timeout"
    assert session.state is SessionState.CLOSED

    session = active(config=config)
    assert session.next_deadline() == 30.0
    session.receive_data(line("ping"), now=25.0)
    session.next_event()
    assert session.next_deadline() == 55.0
    assert session.handle_timer(40.0) is None
    timed_out = session.handle_timer(55.0)
    assert timed_out is not None and timed_out.reason == "idle timeout"


def test_line_too_long_closes() -> None:
    session = active()
    session.receive_data(b"{" * 70_000, 0.0)
    event = session.next_event()
    assert code(event) == "line_too_long"
    assert isinstance(event, RequestRejected) and event.close
    assert session.state is SessionState.CLOSED
    session.receive_data(line("ping"), 0.0)
    assert session.next_event() is NEED_DATA


def test_transition_table_is_the_single_error_path() -> None:
    states = {s for s, _ in TRANSITIONS} | set(TRANSITIONS.values())
    assert SessionState.CLOSED not in states
    assert ErrorCode.HELLO_REQUIRED.value == "hello_required"


def test_event_ring_resume_window() -> None:
    from cti.protocol import EventRing

    ring = EventRing(size=3)
    assert ring.since(0) == []
    for _ in range(5):
        seq = ring.next_seq()
        ring.append(seq, b"body%d" % seq)
    assert [s for s, _ in ring.since(2) or []] == [3, 4, 5]
    assert ring.since(4) == [(5, b"body5")]
    assert ring.since(5) == []
    assert ring.since(1) is None      # event 2 was dropped: snapshot required
    assert ring.since(6) is None and ring.since(-1) is None


def test_event_filter() -> None:
    from cti.protocol import EventFilter

    any_event = EventFilter.build()
    assert any_event.matches("call.held", frozenset(), None)
    calls = EventFilter.build(events=["call.*", "agent.ready"], queues=["billing"])
    assert calls.matches("call.queued", frozenset({"billing"}), None)
    assert calls.matches("agent.ready", frozenset({"billing", "repair"}), "a1")
    assert not calls.matches("agent.busy", frozenset({"billing"}), "a1")
    assert not calls.matches("call.queued", frozenset({"repair"}), None)
    assert not calls.matches("call.queued", frozenset(), None)
    agent = EventFilter.build(agents=["a1"])
    assert agent.matches("agent.busy", frozenset(), "a1")
    assert not agent.matches("agent.busy", frozenset(), "a2")
    assert not agent.matches("queue.stats", frozenset({"billing"}), None)


_CMDS = [*COMMANDS, "system.exec", ""]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_CMDS), st.booleans(), st.sampled_from(list(Role))),
                max_size=25))
def test_random_command_sequences_follow_the_table(
        steps: list[tuple[str, bool, Role]]) -> None:
    """h2-style: any sequence lands in a valid state or is refused, never raises."""
    session = CtiSession(SessionConfig(max_login_failures=3), 0.0)
    for cmd, ok, role in steps:
        before = session.state
        args = SAMPLE_ARGS.get(cmd, {})
        session.receive_data(json.dumps({"v": 1, "type": "req", "id": "r", "cmd": cmd,
                                         "args": args}).encode() + b"\n", 0.0)
        event = session.next_event()
        if before is SessionState.CLOSED:
            assert event is NEED_DATA
            continue
        assert isinstance(event, RequestReceived | RequestRejected)
        if isinstance(event, RequestReceived):
            kind = {"hello": "hello", "auth.login": "auth.login", "auth.logout": "auth.logout",
                    "ping": "ping"}.get(cmd, "command")
            assert any(s is before and i.value == kind for s, i in TRANSITIONS), (before, cmd)
            if before is SessionState.ACTIVE and kind == "command":
                assert session.principal is not None
                assert session.principal.role in PERMISSIONS[cmd]
            if cmd == "auth.login":
                if ok:
                    session.login_succeeded(Principal("u", role, agent_id="a1"))
                else:
                    session.login_failed()
        else:
            assert session.state in (before, SessionState.CLOSED)


def test_hello_version_negotiation() -> None:
    session = CtiSession(SessionConfig(), 0.0)
    event = feed(session, line("hello", {"versions": ["2", "3"]}))
    assert code(event) == "unsupported_version"
    assert isinstance(event, RequestRejected) and event.error.field == "versions"
    assert session.state is SessionState.AWAIT_HELLO
    assert isinstance(feed(session, line("hello", {"versions": ["2", "1"]})), RequestReceived)
