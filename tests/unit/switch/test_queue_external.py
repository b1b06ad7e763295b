"""Which trunk rings an agent on an outside number (switch/queue_external.py Rules 1-2) and
the trunk policy's ``may_ring_agent``: only trunks with ``agent_devices = true``, number
checks kept, ``max_calls`` counted."""

from __future__ import annotations

import pytest

from switch.channel import Channel
from switch.config import ConfigError
from switch.queue_external import agent_trunk
from switch.trunks.config import parse_trunks
from switch.trunks.outbound import TrunkCalls


def _calls(**extra: dict[str, object]) -> TrunkCalls:
    table: dict[str, dict[str, object]] = {
        "a_plain": {"host": "127.0.0.2", "country_code": "86"},
        "b_agents": {"host": "127.0.0.3", "country_code": "86", "agent_devices": True,
                     "deny_prefixes": ["+86168"], "max_calls": 1, "number_format": "e164"},
    }
    table.update(extra)
    return TrunkCalls(parse_trunks(table))


def test_only_a_trunk_that_allows_agent_devices_is_used() -> None:
    calls = _calls()
    found = agent_trunk(calls, "13900001111")
    assert found is not None
    trunk, number = found
    assert trunk.name == "b_agents" and number == "+8613900001111"
    plain = calls.policy.trunks["a_plain"]
    assert not calls.policy.may_ring_agent(plain, "13900001111").allowed


def test_number_checks_and_max_calls_still_apply() -> None:
    calls = _calls()
    assert agent_trunk(calls, "16800001111") is None        # denied prefix
    assert agent_trunk(calls, "+12025550123") is None       # international not allowed
    busy = Channel("sip/busy-1", "callee", "13900002222")
    calls.track("b_agents", busy)
    assert agent_trunk(calls, "13900001111") is None        # at max_calls (1)


def test_disabled_trunk_and_config_key() -> None:
    calls = _calls(b_agents={"host": "127.0.0.3", "agent_devices": True, "enabled": False})
    assert agent_trunk(calls, "13900001111") is None
    with pytest.raises(ConfigError):
        parse_trunks({"x": {"host": "127.0.0.2", "agent_devices": "yes"}})
