"""Schemas: every validation error names its field; error codes are data."""

from __future__ import annotations

from typing import Any

import pytest

from cti.messages import (
    COMMANDS,
    CtiRequestError,
    ErrorCode,
    encode_error,
    encode_event,
    encode_result,
    parse_request,
    validate_args,
    validate_event,
    validate_response,
)


def req(cmd: str = "call.hold", args: Any = None, **extra: Any) -> dict[str, Any]:
    out = {"v": 1, "type": "req", "id": "c-1", "cmd": cmd,
           "args": {"call_id": "k"} if args is None else args}
    out.update(extra)
    return out


@pytest.mark.parametrize(("obj", "code", "field"), [
    ([1, 2], "bad_request", None),
    ("text", "bad_request", None),
    (req(v=2), "unsupported_version", "v"),
    (req(v=True), "unsupported_version", "v"),
    (req(type="evt"), "bad_request", "type"),
    (req(id=""), "bad_request", "id"),
    (req(id=7), "bad_request", "id"),
    (req(id="x" * 65), "bad_request", "id"),
    (req(cmd=5), "bad_request", "cmd"),
    (req(extra=1), "bad_request", "extra"),
    (req("call.execute"), "unknown_command", "cmd"),
    (req(args=[1]), "invalid_args", "args"),
    (req(args={}), "invalid_args", "call_id"),
    (req(args={"call_id": 12}), "invalid_args", "call_id"),
    (req(args={"call_id": "k", "app": "System"}), "invalid_args", "app"),
    (req("agent.set_state", {"state": "away"}), "invalid_args", "state"),
    (req("queue.set_priority", {"queue": "q", "call_id": "c", "priority": True}),
     "invalid_args", "priority"),
    (req("queue.set_priority", {"queue": "q", "call_id": "c", "priority": 1.5}),
     "invalid_args", "priority"),
    (req("call.set_data", {"call_id": "c", "data": {"nested": {"a": 1}}}),
     "invalid_args", "data.nested"),
    (req("subscribe", {"events": "call.*"}), "invalid_args", "events"),
    (req("callback.schedule", {"queue": "q", "number": "1", "at": float("nan")}),
     "invalid_args", "at"),
    (req("call.make", {"destination": "1" * 65}), "invalid_args", "destination"),
])
def test_invalid_requests_name_the_field(obj: Any, code: str, field: str | None) -> None:
    with pytest.raises(CtiRequestError) as info:
        parse_request(obj)
    assert info.value.code.value == code
    assert info.value.field == field
    wire = encode_error("c-1", info.value)
    assert validate_response(wire)["error"]["field"] == field


def test_defaults_are_filled() -> None:
    request = parse_request(req("agent.set_state", {"state": "ready"}))
    assert request.args == {"agent_id": None, "state": "ready", "reason": ""}
    assert request.spec.csta == "SetAgentState"


def test_no_generic_execute_command() -> None:
    for name in COMMANDS:
        assert not any(word in name for word in ("exec", "originate", "command", "eval",
                                                 "config", "shell"))
    assert validate_args("ping", {}) == {}


def test_encoders_round_trip() -> None:
    assert validate_response(encode_result("x", {"a": 1}))["result"] == {"a": 1}
    event = validate_event(encode_event(3, 1.5, "call.held", {"call_id": "c", "agent_id": "a"}))
    assert (event.seq, event.event) == (3, "call.held")
    with pytest.raises(CtiRequestError) as info:
        validate_event(encode_event(3, 1.5, "call.held", {"call_id": "c"}))
    assert info.value.field == "data.agent_id"
    assert ErrorCode("forbidden") is ErrorCode.FORBIDDEN
