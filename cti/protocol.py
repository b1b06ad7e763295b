"""Sans-IO CTI protocol: line framing, the session state machine, event ring and filters.

The h11 shape (STYLE.md §2.1): the caller owns the socket and feeds bytes with
:meth:`CtiSession.receive_data`, pulls events with :meth:`CtiSession.next_event` until
:data:`NEED_DATA`, and writes the bytes that :meth:`CtiSession.send_response` and friends
return. Time is an argument (``now``); nothing here touches a socket or a clock.

Framing (IVR_CTI_ACD.md §B.8): one JSON object per line, UTF-8, ``\\n``-terminated (a
trailing ``\\r`` is tolerated), at most ``max_line_bytes`` (64 KiB) per line.

* Rule 1 -- a line longer than the limit is answered ``line_too_long`` and the session
  closes; the framer keeps at most ``max_line_bytes`` + one read of bytes, never the whole
  line (a 10 MB line costs 64 KiB of memory, not 10 MB).
* Rule 2 -- every other bad input (not UTF-8, not JSON, not an object, bad envelope,
  unknown command, bad arguments, a command above one's role) is answered with an error
  response and the session continues. :meth:`next_event` raises nothing on bad input.
* Rule 3 -- the session table (below) is the single place that decides what may be sent
  in which state; a pair missing from :data:`TRANSITIONS` is the single error path.

Session machine::

    AWAIT_HELLO --hello--> AWAIT_LOGIN --auth.login--> LOGGING_IN --ok--> ACTIVE
                                  ^                         |            |
                                  +--------failed-----------+            |
                                  +------------------auth.logout---------+
    any state --line too long / auth or idle timeout / too many failed logins--> CLOSED
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from cti.messages import (
    COMMANDS,
    PROTOCOL_VERSION,
    CtiRequestError,
    ErrorCode,
    Request,
    dumps,
    encode_error,
    encode_result,
    parse_envelope,
    request_id_of,
    validate_args,
)
from cti.roles import Principal, check_permission

__all__ = [
    "NEED_DATA",
    "TRANSITIONS",
    "ConnectionClosed",
    "CtiSession",
    "EventFilter",
    "EventRing",
    "LineFramer",
    "LineTooLong",
    "RequestReceived",
    "RequestRejected",
    "SessionConfig",
    "SessionInput",
    "SessionState",
    "SessionTimedOut",
]

MAX_LINE_BYTES: Final = 64 * 1024


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()
"""Returned by ``next_event``/``next_line`` when more bytes are needed."""


class LineTooLong(CtiRequestError):
    """Rule 1: a frame over the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(ErrorCode.LINE_TOO_LONG, f"line longer than {limit} bytes")


class LineFramer:
    """Newline-delimited frames with a hard size limit (Rule 1)."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._buf = bytearray()
        self._scan = 0
        self._broken = False
        self.eof = False

    def receive_data(self, data: bytes) -> None:
        """Add bytes; ``b""`` means the peer closed its side."""
        if self._broken:
            return
        if not data:
            self.eof = True
        self._buf += data

    def next_line(self) -> bytes | _NeedData:
        """The next complete line without its terminator, or :data:`NEED_DATA`.

        Raises:
            LineTooLong: once; afterwards the framer ignores all input.
        """
        if self._broken:
            return NEED_DATA
        end = self._buf.find(b"\n", self._scan)
        if end < 0:
            self._scan = len(self._buf)
            if len(self._buf) > self.max_line_bytes:
                self._broken = True
                self._buf.clear()
                raise LineTooLong(self.max_line_bytes)
            return NEED_DATA
        if end > self.max_line_bytes:
            self._broken = True
            self._buf.clear()
            raise LineTooLong(self.max_line_bytes)
        line = bytes(self._buf[:end])
        del self._buf[:end + 1]
        self._scan = 0
        return line[:-1] if line.endswith(b"\r") else line

    @property
    def buffered(self) -> int:
        """Bytes held (for tests of Rule 1)."""
        return len(self._buf)


# --------------------------------------------------------------------------- session


class SessionState(Enum):
    AWAIT_HELLO = "await_hello"
    AWAIT_LOGIN = "await_login"
    LOGGING_IN = "logging_in"
    ACTIVE = "active"
    CLOSED = "closed"


class SessionInput(Enum):
    HELLO = "hello"
    LOGIN = "auth.login"
    LOGIN_OK = "login_ok"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "auth.logout"
    PING = "ping"
    COMMAND = "command"


St, In = SessionState, SessionInput
TRANSITIONS: dict[tuple[SessionState, SessionInput], SessionState] = {
    (St.AWAIT_HELLO, In.HELLO): St.AWAIT_LOGIN,
    (St.AWAIT_HELLO, In.PING): St.AWAIT_HELLO,
    (St.AWAIT_LOGIN, In.LOGIN): St.LOGGING_IN,
    (St.AWAIT_LOGIN, In.PING): St.AWAIT_LOGIN,
    (St.LOGGING_IN, In.LOGIN_OK): St.ACTIVE,
    (St.LOGGING_IN, In.LOGIN_FAILED): St.AWAIT_LOGIN,
    (St.ACTIVE, In.PING): St.ACTIVE,
    (St.ACTIVE, In.COMMAND): St.ACTIVE,
    (St.ACTIVE, In.LOGOUT): St.AWAIT_LOGIN,
}
"""(state, input) -> next state (Rule 3)."""

_REFUSALS: dict[SessionState, tuple[ErrorCode, str]] = {
    St.AWAIT_HELLO: (ErrorCode.HELLO_REQUIRED, "send hello first"),
    St.AWAIT_LOGIN: (ErrorCode.NOT_AUTHENTICATED, "log in first (auth.login)"),
    St.LOGGING_IN: (ErrorCode.INVALID_STATE, "a login is in progress"),
    St.ACTIVE: (ErrorCode.ALREADY_AUTHENTICATED, "already logged in"),
    St.CLOSED: (ErrorCode.INVALID_STATE, "the session is closed"),
}


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Timeouts and limits of one session."""

    max_line_bytes: int = MAX_LINE_BYTES
    auth_timeout_s: float = 30.0
    """From connect to a successful login (AMI ``authtimeout`` default, §B.1)."""
    idle_timeout_s: float = 90.0
    """No bytes for this long closes the session (3 missed 30 s pings)."""
    max_login_failures: int = 3
    """Failed logins on one connection before it is closed."""


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A valid request the shell must execute (and answer)."""

    request: Request


@dataclass(frozen=True, slots=True)
class RequestRejected:
    """A request refused by the core; ``data`` is the error response to write.

    ``forbidden`` marks a role refusal (the server audits those); ``close`` asks the shell
    to close after writing ``data``.
    """

    request_id: str | None
    cmd: str | None
    error: CtiRequestError
    data: bytes
    close: bool = False

    @property
    def forbidden(self) -> bool:
        return self.error.code is ErrorCode.FORBIDDEN


@dataclass(frozen=True, slots=True)
class SessionTimedOut:
    """Auth or idle timeout; ``data`` is the notice to write before closing."""

    reason: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side."""


SessionEvent = RequestReceived | RequestRejected | ConnectionClosed

def _check_versions(versions: list[str] | None) -> None:
    """``hello.versions``: the client's supported versions must include ours."""
    if versions is not None and str(PROTOCOL_VERSION) not in versions:
        raise CtiRequestError(ErrorCode.UNSUPPORTED_VERSION,
                              f"this server speaks version {PROTOCOL_VERSION}", "versions")


_INPUT_OF_CMD = {"hello": In.HELLO, "auth.login": In.LOGIN, "auth.logout": In.LOGOUT,
                 "ping": In.PING}


class CtiSession:
    """Server side of one CTI connection (pure).

    Args:
        config: limits and timeouts.
        now: connection time.
    """

    def __init__(self, config: SessionConfig, now: float) -> None:
        self.config = config
        self.state = SessionState.AWAIT_HELLO
        self.principal: Principal | None = None
        self._framer = LineFramer(config.max_line_bytes)
        self._connected_at = now
        self._last_rx = now
        self._login_failures = 0

    # -------------------------------------------------------------- input

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the connection (``b""`` at EOF)."""
        self._last_rx = now
        self._framer.receive_data(data)

    def next_event(self) -> SessionEvent | _NeedData:
        """The next thing the shell must act on (Rule 2: bad input never raises)."""
        while self.state is not SessionState.CLOSED:
            try:
                line = self._framer.next_line()
            except LineTooLong as exc:
                return self._reject(None, None, exc, close=True)
            if line is NEED_DATA:
                return ConnectionClosed() if self._framer.eof else NEED_DATA
            assert isinstance(line, bytes)
            if line.strip():
                return self._handle_line(line)
        return NEED_DATA

    def _handle_line(self, line: bytes) -> SessionEvent:
        try:
            obj: Any = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            error = CtiRequestError(ErrorCode.BAD_JSON, f"not a JSON line: {exc}"[:200])
            return self._reject(None, None, error)
        req_id = request_id_of(obj)
        try:
            req_id, cmd, raw_args = parse_envelope(obj)
        except CtiRequestError as exc:
            return self._reject(req_id, None, exc)
        if cmd not in COMMANDS:
            if self.state is not SessionState.ACTIVE:  # reveal nothing before login
                return self._reject(req_id, cmd, self._refusal())
            error = CtiRequestError(ErrorCode.UNKNOWN_COMMAND, f"unknown command {cmd!r}",
                                    "cmd")
            return self._reject(req_id, cmd, error)
        session_input = _INPUT_OF_CMD.get(cmd, In.COMMAND)
        nxt = TRANSITIONS.get((self.state, session_input))
        if nxt is None:
            return self._reject(req_id, cmd, self._refusal())
        try:
            if session_input is In.COMMAND:
                assert self.principal is not None
                check_permission(self.principal, cmd)  # before args: no schema leak
            args = validate_args(cmd, raw_args)
            if session_input is In.HELLO:
                _check_versions(args["versions"])
        except CtiRequestError as exc:
            return self._reject(req_id, cmd, exc)
        if session_input is In.LOGOUT:
            self.principal = None
        self.state = nxt
        return RequestReceived(Request(req_id, cmd, args))

    def _refusal(self) -> CtiRequestError:
        code, message = _REFUSALS[self.state]
        return CtiRequestError(code, message, "cmd")

    def _reject(self, req_id: str | None, cmd: str | None, error: CtiRequestError,
                close: bool = False) -> RequestRejected:
        if close:
            self.state = SessionState.CLOSED
        return RequestRejected(req_id, cmd, error, dumps(encode_error(req_id, error)), close)

    # -------------------------------------------------------------- login outcome

    def login_succeeded(self, principal: Principal) -> None:
        """The shell verified the credentials of the pending ``auth.login``."""
        self._step(In.LOGIN_OK)
        self.principal = principal
        self._login_failures = 0

    def login_failed(self) -> bool:
        """The pending login failed; return True when the session must now close."""
        self._step(In.LOGIN_FAILED)
        self._login_failures += 1
        if self._login_failures >= self.config.max_login_failures:
            self.state = SessionState.CLOSED
            return True
        return False

    def _step(self, session_input: SessionInput) -> None:
        nxt = TRANSITIONS.get((self.state, session_input))
        if nxt is None:
            raise AssertionError(f"{session_input.value} in state {self.state.value}")
        self.state = nxt

    # -------------------------------------------------------------- output

    def send_response(self, req_id: str, result: dict[str, Any] | None = None) -> bytes:
        """Bytes of a success response."""
        return dumps(encode_result(req_id, result))

    def send_error(self, req_id: str | None, error: CtiRequestError) -> bytes:
        """Bytes of an error response."""
        return dumps(encode_error(req_id, error))

    # -------------------------------------------------------------- timers

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must run next (None once closed)."""
        if self.state is SessionState.CLOSED:
            return None
        idle = self._last_rx + self.config.idle_timeout_s
        if self.state is not SessionState.ACTIVE:
            return min(idle, self._connected_at + self.config.auth_timeout_s)
        return idle

    def handle_timer(self, now: float) -> SessionTimedOut | None:
        """Close the session when a deadline passed; return the notice to write."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return None
        idle = now >= self._last_rx + self.config.idle_timeout_s
        reason = "idle timeout" if idle else "login timeout"
        self.state = SessionState.CLOSED
        error = CtiRequestError(ErrorCode.TIMEOUT, reason)
        return SessionTimedOut(reason, dumps(encode_error(None, error)))


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class EventFilter:
    """One subscription: event names (``call.*`` prefixes allowed), queues and agents.

    An empty set means "any". An event passes when its name matches, and, if the filter
    names queues, the event concerns one of them, and, if it names agents, it concerns one.
    Build it with :meth:`build`.
    """

    names: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    queues: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()

    @classmethod
    def build(cls, events: Iterable[str] = (), queues: Iterable[str] = (),
              agents: Iterable[str] = ()) -> EventFilter:
        patterns = list(events)
        return cls(frozenset(p for p in patterns if not p.endswith("*")),
                   tuple(p[:-1] for p in patterns if p.endswith("*")),
                   frozenset(queues), frozenset(agents))

    def matches(self, name: str, queues: frozenset[str], agent_id: str | None) -> bool:
        if (self.names or self.prefixes) and name not in self.names and \
                not name.startswith(self.prefixes):
            return False
        if self.queues and self.queues.isdisjoint(queues):
            return False
        return not (self.agents and agent_id not in self.agents)


class EventRing:
    """Sequence numbers and the replay buffer of one logical session (for ``resume``).

    ``seq`` starts at 1 and grows by one per event delivered to this session; the last
    ``size`` events are kept as ``(seq, body)``, where ``body`` is the encoded event without
    its sequence number: the same ``bytes`` object is shared by every session that got the
    event, so a ring costs a tuple per entry, not a copy of the event. :meth:`since` answers
    a resume: the entries after ``last_seq``, or None when some were already dropped
    (snapshot required).
    """

    def __init__(self, size: int) -> None:
        self.seq = 0
        self._ring: deque[tuple[int, bytes]] = deque(maxlen=size)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def append(self, seq: int, body: bytes) -> None:
        self._ring.append((seq, body))

    def since(self, last_seq: int) -> list[tuple[int, bytes]] | None:
        if last_seq > self.seq or last_seq < 0:
            return None
        if last_seq == self.seq:
            return []
        if not self._ring or self._ring[0][0] > last_seq + 1:
            return None
        return [(seq, body) for seq, body in self._ring if seq > last_seq]
