"""CTI wire messages: versioned requests, responses and events, validated (IVR_CTI_ACD.md §B.8).

Every message is one JSON object with ``"v": 1`` and a ``"type"``:

* request ``{"v":1,"type":"req","id":"c-42","cmd":"call.answer","args":{"call_id":"…"}}``
* response ``{"v":1,"type":"res","id":"c-42","ok":true,"result":{…}}`` or
  ``{"v":1,"type":"res","id":"c-42","ok":false,"error":{"code":"forbidden","message":"…",
  "field":null}}``
* event ``{"v":1,"type":"evt","seq":1207,"ts":1767000000.25,"event":"call.delivered",
  "data":{…}}``

Rules:

* Rule 1 -- command and event names follow CSTA (ECMA-269) services/events, spelled as in
  IVR_CTI_ACD.md §B.8 (``call.transfer_blind`` = SingleStepTransferCall, ``call.hangup`` =
  ClearConnection…); :data:`COMMANDS` records the CSTA service of each.
* Rule 2 -- there is no generic "execute"/"originate to dialplan" command (§B.7): only the
  business verbs of :data:`COMMANDS` exist, and arguments are a closed schema (unknown
  argument names are an error, not ignored).
* Rule 3 -- error codes are data (:class:`ErrorCode`); a validation error names the field.
* Rule 4 -- a ``res`` means *accepted*; the state change is confirmed by an event.

This module is pure (no I/O, no clock).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "COMMANDS",
    "EVENTS",
    "PROTOCOL_VERSION",
    "Arg",
    "CommandSpec",
    "CtiError",
    "CtiRequestError",
    "ErrorCode",
    "EventMessage",
    "Request",
    "dumps",
    "encode_error",
    "encode_event",
    "encode_result",
    "parse_envelope",
    "parse_request",
    "request_id_of",
    "validate_args",
    "validate_event",
    "validate_response",
]

PROTOCOL_VERSION = 1
"""The only wire version so far; ``hello`` negotiates it."""

_MAX_ID_LEN = 64
_MAX_STR_LEN = 1024
_MAX_DATA_KEYS = 64


class ErrorCode(StrEnum):
    """Error codes carried in ``error.code`` (stable wire values)."""

    BAD_JSON = "bad_json"                      # the line is not JSON / not UTF-8
    BAD_REQUEST = "bad_request"                # JSON, but not a request envelope
    LINE_TOO_LONG = "line_too_long"            # frame over the limit; the session closes
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_COMMAND = "unknown_command"
    INVALID_ARGS = "invalid_args"              # missing, unknown or ill-typed argument
    HELLO_REQUIRED = "hello_required"
    NOT_AUTHENTICATED = "not_authenticated"
    ALREADY_AUTHENTICATED = "already_authenticated"
    AUTH_FAILED = "auth_failed"
    LOCKED_OUT = "locked_out"
    FORBIDDEN = "forbidden"                    # role or scope does not allow it
    NOT_FOUND = "not_found"
    INVALID_STATE = "invalid_state"            # e.g. hold a call that is not connected
    NOT_SUPPORTED = "not_supported"            # the switch or the device cannot do it
    RESYNC_REQUIRED = "resync_required"        # resume impossible: take a snapshot
    TOO_MANY_SESSIONS = "too_many_sessions"
    TIMEOUT = "timeout"                        # auth or idle timeout; the session closes
    INTERNAL = "internal"


class CtiError(Exception):
    """Root of the CTI package's errors (STYLE.md §4.5)."""


class CtiRequestError(CtiError):
    """A request that is answered with an error response.

    Args:
        code: the wire error code.
        message: human-readable explanation (never contains a secret).
        field: the argument or envelope field at fault, when there is one.
    """

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def to_wire(self) -> dict[str, Any]:
        """The ``error`` object of a response."""
        return {"code": self.code.value, "message": self.message, "field": self.field}


# --------------------------------------------------------------------------- schemas


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument of a command.

    ``kind``: ``str``, ``int``, ``number``, ``bool``, ``object`` (a flat JSON object of
    scalars: attached data) or ``str_list``.
    """

    kind: str
    required: bool = True
    choices: tuple[str, ...] = ()
    default: Any = None
    max_len: int = 256


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command: its arguments, its CSTA service, and how the server treats it.

    ``group`` is one of session, agent, call, queue, supervisor. ``mutating`` commands
    change switch state; ``audited`` ones are always written to the audit log.
    """

    name: str
    group: str
    csta: str
    args: Mapping[str, Arg] = field(default_factory=dict)
    mutating: bool = False
    audited: bool = False


def _s(required: bool = True, **kw: Any) -> Arg:
    return Arg("str", required, **kw)


_AGENT = {"agent_id": _s(False)}          # defaults to the caller's own agent
_CALL = {**_AGENT, "call_id": _s()}
_CONSULT = {**_CALL, "consult_call_id": _s()}
_STATES = ("ready", "not_ready")
_MODES = ("listen", "whisper", "barge")
_MONITOR = {"agent_id": _s(), "device": _s(False, max_len=64)}
WORK_ORDER_KINDS = ("repair", "complaint", "inquiry")
WORK_ORDER_STATUSES = ("open", "assigned", "in_progress", "closed")
"""As ``storage.hotline_models`` (a test keeps them equal; this module stays pure)."""
_ORDER = {"number": _s(max_len=12)}
"""``device``: the supervisor's phone to call (default: the device of the supervisor's own
agent login)."""


def _cmd(name: str, group: str, csta: str, args: Mapping[str, Arg] | None = None, *,
         mutating: bool = True, audited: bool = False) -> CommandSpec:
    return CommandSpec(name, group, csta, dict(args or {}), mutating, audited)


_COMMAND_LIST = [
    # session (ECMA-354 application session services)
    _cmd("hello", "session", "StartApplicationSession",
         {"versions": Arg("str_list", False), "client": _s(False),
          "capabilities": Arg("str_list", False)}, mutating=False),
    _cmd("auth.login", "session", "StartApplicationSession(credentials)",
         {"user": _s(False, max_len=64), "password": _s(False), "token": _s(False)},
         mutating=False),
    _cmd("auth.logout", "session", "StopApplicationSession", mutating=False),
    _cmd("ping", "session", "ResetApplicationSessionTimer", mutating=False),
    _cmd("subscribe", "session", "MonitorStart",
         {"events": Arg("str_list", False), "queues": Arg("str_list", False),
          "agents": Arg("str_list", False)}, mutating=False),
    _cmd("unsubscribe", "session", "MonitorStop", {"subscription_id": _s()}, mutating=False),
    _cmd("snapshot.get", "session", "SnapshotDevice/SnapshotCall",
         {"queues": Arg("str_list", False)}, mutating=False),
    _cmd("resume", "session", "(resync)",
         {"session_id": _s(), "last_seq": Arg("int")}, mutating=False),
    # agent (logical device)
    _cmd("agent.login", "agent", "SetAgentState(loggedOn)",
         {**_AGENT, "device": _s(), "queues": Arg("str_list", False)}),
    _cmd("agent.logout", "agent", "SetAgentState(loggedOff)", {**_AGENT, "reason": _s(False)}),
    _cmd("agent.set_state", "agent", "SetAgentState",
         {**_AGENT, "state": _s(choices=_STATES), "reason": _s(False, default="")}),
    _cmd("agent.end_wrapup", "agent", "SetAgentState(ready after workingAfterCall)", _AGENT),
    # call control
    _cmd("call.make", "call", "MakeCall",
         {**_AGENT, "destination": _s(max_len=64), "data": Arg("object", False)}),
    _cmd("call.answer", "call", "AnswerCall", _CALL),
    _cmd("call.hangup", "call", "ClearConnection", _CALL),
    _cmd("call.hold", "call", "HoldCall", _CALL),
    _cmd("call.retrieve", "call", "RetrieveCall", _CALL),
    _cmd("call.transfer_blind", "call", "SingleStepTransferCall",
         {**_CALL, "destination": _s(max_len=64)}),
    _cmd("call.consult", "call", "ConsultationCall", {**_CALL, "destination": _s(max_len=64)}),
    _cmd("call.transfer_complete", "call", "TransferCall", _CONSULT),
    _cmd("call.conference", "call", "ConferenceCall", _CONSULT),
    _cmd("call.reconnect", "call", "ReconnectCall", _CONSULT),
    _cmd("call.send_dtmf", "call", "GenerateDigits", {**_CALL, "digits": _s(max_len=32)}),
    _cmd("call.set_data", "call", "SetCallData (call-associated data)",
         {**_CALL, "data": Arg("object")}),
    _cmd("call.get_data", "call", "GetCallData", _CALL, mutating=False),
    _cmd("call.record", "call", "StartRecording/StopRecording/SuspendRecording",
         {**_CALL, "action": _s(choices=("start", "stop", "pause", "resume"))}),
    # queues (ACD)
    _cmd("queue.list", "queue", "(ACD group list)", mutating=False),
    _cmd("queue.stats", "queue", "(ACD statistics)", {"queues": Arg("str_list", False)},
         mutating=False),
    _cmd("queue.callers", "queue", "SnapshotDevice(ACD group)", {"queue": _s()},
         mutating=False),
    _cmd("queue.pickup", "queue", "GroupPickupCall", {**_AGENT, "queue": _s(), "call_id": _s()}),
    _cmd("queue.set_priority", "queue", "(ACD priority)",
         {"queue": _s(), "call_id": _s(), "priority": Arg("int")}, audited=True),
    _cmd("callback.schedule", "queue", "(callback in queue)",
         {"queue": _s(), "number": _s(max_len=64), "at": Arg("number", False),
          "data": Arg("object", False)}),
    # supervisor
    _cmd("monitor.listen", "supervisor", "MonitorStart + SingleStepConference(silent)",
         _MONITOR, audited=True),
    _cmd("monitor.whisper", "supervisor", "MonitorStart + SingleStepConference(whisper)",
         _MONITOR, audited=True),
    _cmd("monitor.barge", "supervisor", "IntrudeCall", _MONITOR, audited=True),
    _cmd("monitor.switch", "supervisor", "(change participation)",
         {"monitor_id": _s(), "mode": _s(choices=_MODES)}, audited=True),
    _cmd("monitor.stop", "supervisor", "MonitorStop", {"monitor_id": _s()}, audited=True),
    _cmd("agent.force_state", "supervisor", "SetAgentState(forced)",
         {"agent_id": _s(), "state": _s(choices=_STATES), "reason": _s(False, default="")},
         audited=True),
    _cmd("agent.force_logout", "supervisor", "SetAgentState(loggedOff, forced)",
         {"agent_id": _s(), "reason": _s(False, default="")}, audited=True),
    _cmd("call.force_hangup", "supervisor", "ClearCall", {"call_id": _s()}, audited=True),
    _cmd("call.take_over", "supervisor", "(intrude + transfer to supervisor)",
         {"call_id": _s(), "agent_id": _s(False)}, audited=True),
    # work orders at the desk (business data tied to a call; cti/workorder_commands.py)
    _cmd("workorder.create", "workorder", "(business data: work order)",
         {"call_id": _s(False), "kind": _s(choices=WORK_ORDER_KINDS),
          "account": _s(False, max_len=16), "phone": _s(False, max_len=32),
          "description": _s(False, max_len=1024, default=""),
          "department": _s(False, max_len=64)}),
    _cmd("workorder.update", "workorder", "(business data: work order)",
         {**_ORDER, "status": _s(False, choices=WORK_ORDER_STATUSES),
          "progress": _s(False, max_len=512), "department": _s(False, max_len=64)}),
    _cmd("workorder.get", "workorder", "(business data: work order)", _ORDER,
         mutating=False),
    _cmd("workorder.list", "workorder", "(business data: work orders)",
         {"account": _s(False, max_len=16), "phone": _s(False, max_len=32),
          "call_id": _s(False)}, mutating=False),
]

COMMANDS: dict[str, CommandSpec] = {c.name: c for c in _COMMAND_LIST}
"""Every command the server knows. Anything else is ``unknown_command``."""

EVENTS: dict[str, tuple[str, ...]] = {
    "call.originated": ("call_id", "agent_id", "destination"),
    "call.delivered": ("call_id", "agent_id", "caller", "screen_pop"),
    "call.established": ("call_id", "agent_id"),
    "call.held": ("call_id", "agent_id"),
    "call.retrieved": ("call_id", "agent_id"),
    "call.transferred": ("call_id", "agent_id", "destination"),
    "call.conferenced": ("call_id", "agent_id", "parties"),
    "call.diverted": ("call_id", "destination"),
    "call.queued": ("call_id", "queue", "position"),
    "call.dequeued": ("call_id", "queue", "reason"),
    "call.data_updated": ("call_id", "data"),
    "call.failed": ("call_id", "cause"),
    "call.cleared": ("call_id", "cause"),
    "call.recording": ("call_id", "action"),
    "agent.logged_on": ("agent_id", "state"),
    "agent.logged_off": ("agent_id", "state"),
    "agent.ready": ("agent_id", "state"),
    "agent.not_ready": ("agent_id", "state", "reason"),
    "agent.reserved": ("agent_id", "state"),
    "agent.busy": ("agent_id", "state"),
    "agent.wrapup": ("agent_id", "state"),
    "queue.stats": ("queue", "waiting", "longest_wait_s", "agents_ready"),
    "campaign.progress": ("name", "state", "progress"),
    "monitor.started": ("monitor_id", "agent_id", "mode"),
    "monitor.stopped": ("monitor_id", "agent_id"),
    "session.resync_required": ("reason",),
    "workorder.created": ("number", "kind", "status", "call_id", "agent_id"),
    "workorder.updated": ("number", "status", "status_text", "agent_id"),
}
"""Event names (CSTA events, §B.8) and the data fields each must carry."""


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class Request:
    """A validated request: ``args`` holds every declared argument (defaults filled)."""

    id: str
    cmd: str
    args: dict[str, Any]

    @property
    def spec(self) -> CommandSpec:
        return COMMANDS[self.cmd]


def _fail(code: ErrorCode, message: str, field_: str | None = None) -> CtiRequestError:
    return CtiRequestError(code, message, field_)


def _check_scalar_map(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(ErrorCode.INVALID_ARGS, f"{name} must be an object", name)
    if len(value) > _MAX_DATA_KEYS:
        raise _fail(ErrorCode.INVALID_ARGS, f"{name} has more than {_MAX_DATA_KEYS} keys", name)
    for key, item in value.items():
        if len(key) > 64:
            raise _fail(ErrorCode.INVALID_ARGS, f"{name} key longer than 64 characters", name)
        ok = item is None or isinstance(item, (str, int, float, bool))
        if not ok or (isinstance(item, str) and len(item) > _MAX_STR_LEN):
            raise _fail(ErrorCode.INVALID_ARGS,
                        f"{name}.{key} must be a string (<= {_MAX_STR_LEN}), number, "
                        "boolean or null", f"{name}.{key}")
    return dict(value)


def _check_arg(name: str, spec: Arg, value: Any) -> Any:
    kind = spec.kind
    if kind == "str":
        if not isinstance(value, str):
            raise _fail(ErrorCode.INVALID_ARGS, f"{name} must be a string", name)
        if len(value) > spec.max_len:
            raise _fail(ErrorCode.INVALID_ARGS, f"{name} is longer than {spec.max_len}", name)
        if spec.choices and value not in spec.choices:
            raise _fail(ErrorCode.INVALID_ARGS,
                        f"{name} must be one of {', '.join(spec.choices)}", name)
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(ErrorCode.INVALID_ARGS, f"{name} must be an integer", name)
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value):
            raise _fail(ErrorCode.INVALID_ARGS, f"{name} must be a finite number", name)
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise _fail(ErrorCode.INVALID_ARGS, f"{name} must be true or false", name)
        return value
    if kind == "str_list":
        if not isinstance(value, list) or len(value) > 256 or \
                not all(isinstance(v, str) and len(v) <= 128 for v in value):
            raise _fail(ErrorCode.INVALID_ARGS,
                        f"{name} must be a list of strings (<= 256 items of <= 128)", name)
        return list(value)
    if kind == "object":
        return _check_scalar_map(name, value)
    raise AssertionError(f"unknown Arg kind {kind}")


def validate_args(cmd: str, args: Any) -> dict[str, Any]:
    """Check ``args`` against the command's schema; return them with defaults filled.

    Raises:
        CtiRequestError: ``unknown_command`` or ``invalid_args`` naming the field.
    """
    spec = COMMANDS.get(cmd)
    if spec is None:
        raise _fail(ErrorCode.UNKNOWN_COMMAND, f"unknown command {cmd!r}", "cmd")
    if not isinstance(args, dict):
        raise _fail(ErrorCode.INVALID_ARGS, "args must be an object", "args")
    for name in args:
        if name not in spec.args:
            raise _fail(ErrorCode.INVALID_ARGS, f"{cmd} takes no argument {name!r}", name)
    out: dict[str, Any] = {}
    for name, arg in spec.args.items():
        if name not in args or args[name] is None:
            if arg.required:
                raise _fail(ErrorCode.INVALID_ARGS, f"{cmd} needs {name}", name)
            out[name] = arg.default
            continue
        out[name] = _check_arg(name, arg, args[name])
    return out


def parse_envelope(obj: Any) -> tuple[str, str, Any]:
    """Validate a decoded JSON value as a request envelope: ``(id, cmd, raw args)``.

    The command name is not checked against :data:`COMMANDS` here (the session decides
    whether to reveal that it is unknown).

    Raises:
        CtiRequestError: with the field at fault; ``field`` is ``None`` only when the value
            is not an object at all.
    """
    if not isinstance(obj, dict):
        raise _fail(ErrorCode.BAD_REQUEST, "a message must be a JSON object")
    version = obj.get("v")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise _fail(ErrorCode.UNSUPPORTED_VERSION,
                    f"v must be {PROTOCOL_VERSION}, got {str(version)[:20]!r}", "v")
    if obj.get("type") != "req":
        raise _fail(ErrorCode.BAD_REQUEST, 'type must be "req"', "type")
    req_id = obj.get("id")
    if not isinstance(req_id, str) or not 0 < len(req_id) <= _MAX_ID_LEN:
        raise _fail(ErrorCode.BAD_REQUEST, f"id must be a string of 1..{_MAX_ID_LEN}", "id")
    cmd = obj.get("cmd")
    if not isinstance(cmd, str) or len(cmd) > 64:
        raise _fail(ErrorCode.BAD_REQUEST, "cmd must be a string (<= 64)", "cmd")
    extra = sorted(set(obj) - {"v", "type", "id", "cmd", "args"})
    if extra:
        raise _fail(ErrorCode.BAD_REQUEST, f"unknown envelope field {extra[0][:64]!r}",
                    extra[0][:64])
    return req_id, cmd, obj.get("args", {})


def parse_request(obj: Any) -> Request:
    """Validate a decoded JSON value as a request: envelope, command and arguments.

    Raises:
        CtiRequestError: with the field at fault.
    """
    req_id, cmd, args = parse_envelope(obj)
    return Request(req_id, cmd, validate_args(cmd, args))


def request_id_of(obj: Any) -> str | None:
    """The ``id`` of a (possibly invalid) request, so its error can be correlated."""
    if isinstance(obj, dict):
        req_id = obj.get("id")
        if isinstance(req_id, str) and 0 < len(req_id) <= _MAX_ID_LEN:
            return req_id
    return None


# --------------------------------------------------------------------------- encoding


def encode_result(req_id: str, result: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A success response."""
    return {"v": PROTOCOL_VERSION, "type": "res", "id": req_id, "ok": True,
            "result": dict(result or {})}


def encode_error(req_id: str | None, error: CtiRequestError) -> dict[str, Any]:
    """An error response (``id`` is null when the request could not be read)."""
    return {"v": PROTOCOL_VERSION, "type": "res", "id": req_id, "ok": False,
            "error": error.to_wire()}


def encode_event(seq: int, ts: float, name: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """An event envelope."""
    return {"v": PROTOCOL_VERSION, "type": "evt", "seq": seq, "ts": ts, "event": name,
            "data": dict(data)}


def dumps(obj: Mapping[str, Any]) -> bytes:
    """One compact JSON line, UTF-8, newline-terminated."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


@dataclass(frozen=True, slots=True)
class EventMessage:
    """A received event (client side)."""

    seq: int
    ts: float
    event: str
    data: dict[str, Any]


def validate_event(obj: Any) -> EventMessage:
    """Check an event envelope and that its data has the fields :data:`EVENTS` requires.

    Raises:
        CtiRequestError: ``bad_request`` naming the field.
    """
    if not isinstance(obj, dict) or obj.get("type") != "evt":
        raise _fail(ErrorCode.BAD_REQUEST, "not an event", "type")
    if obj.get("v") != PROTOCOL_VERSION:
        raise _fail(ErrorCode.UNSUPPORTED_VERSION, "bad version", "v")
    seq, ts, name, data = obj.get("seq"), obj.get("ts"), obj.get("event"), obj.get("data")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise _fail(ErrorCode.BAD_REQUEST, "seq must be a positive integer", "seq")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        raise _fail(ErrorCode.BAD_REQUEST, "ts must be a number", "ts")
    if name not in EVENTS:
        raise _fail(ErrorCode.BAD_REQUEST, f"unknown event {name!r}", "event")
    if not isinstance(data, dict):
        raise _fail(ErrorCode.BAD_REQUEST, "data must be an object", "data")
    for key in EVENTS[name]:
        if key not in data:
            raise _fail(ErrorCode.BAD_REQUEST, f"{name} needs data.{key}", f"data.{key}")
    return EventMessage(seq, float(ts), name, data)


def validate_response(obj: Any) -> dict[str, Any]:
    """Check a response envelope (client side and contract tests).

    Raises:
        CtiRequestError: ``bad_request`` naming the field.
    """
    if not isinstance(obj, dict) or obj.get("type") != "res":
        raise _fail(ErrorCode.BAD_REQUEST, "not a response", "type")
    if obj.get("v") != PROTOCOL_VERSION:
        raise _fail(ErrorCode.UNSUPPORTED_VERSION, "bad version", "v")
    if not (obj.get("id") is None or isinstance(obj.get("id"), str)):
        raise _fail(ErrorCode.BAD_REQUEST, "id must be a string or null", "id")
    if obj.get("ok") is True:
        if not isinstance(obj.get("result"), dict):
            raise _fail(ErrorCode.BAD_REQUEST, "result must be an object", "result")
    elif obj.get("ok") is False:
        err = obj.get("error")
        if not isinstance(err, dict) or err.get("code") not in {c.value for c in ErrorCode}:
            raise _fail(ErrorCode.BAD_REQUEST, "error.code must be a known code", "error.code")
        if not isinstance(err.get("message"), str):
            raise _fail(ErrorCode.BAD_REQUEST, "error.message must be a string",
                        "error.message")
    else:
        raise _fail(ErrorCode.BAD_REQUEST, "ok must be true or false", "ok")
    return obj
