"""Contract tests: every JSON example of cti/PROTOCOL.md is a valid message of version 1,
and the documentation, the schemas, the permission table and the dispatch table agree."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cti.dispatch import BUSINESS
from cti.messages import (
    COMMANDS,
    EVENTS,
    ErrorCode,
    parse_request,
    validate_event,
    validate_response,
)
from cti.roles import PERMISSIONS

DOC = Path(__file__).resolve().parents[3] / "cti" / "PROTOCOL.md"


def _examples() -> list[dict[str, Any]]:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```jsonl\n(.*?)```", text, re.S)
    assert blocks, "no jsonl blocks in PROTOCOL.md"
    return [json.loads(line) for block in blocks for line in block.splitlines() if line.strip()]


EXAMPLES = _examples()


@pytest.mark.parametrize("message", EXAMPLES,
                         ids=lambda m: f"{m['type']}:{m.get('cmd') or m.get('event') or m['id']}")
def test_example_is_valid(message: dict[str, Any]) -> None:
    kind = message["type"]
    if kind == "req":
        parse_request(message)
    elif kind == "res":
        validate_response(message)
    else:
        validate_event(message)


def test_every_command_and_event_has_an_example() -> None:
    commands = {m["cmd"] for m in EXAMPLES if m["type"] == "req"}
    events = {m["event"] for m in EXAMPLES if m["type"] == "evt"}
    assert set(COMMANDS) - commands == set()
    assert set(EVENTS) - events == set()


def test_every_error_code_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for code in ErrorCode:
        assert f"`{code.value}`" in text, code


def test_tables_agree() -> None:
    session = {name for name, spec in COMMANDS.items() if spec.group == "session"}
    assert set(BUSINESS) == set(COMMANDS) - session
    assert set(PERMISSIONS) <= set(COMMANDS)
    assert set(PERMISSIONS) == set(COMMANDS) - {"hello", "auth.login"}
    for name in COMMANDS:
        assert f"`{name}`" in DOC.read_text(encoding="utf-8"), name
