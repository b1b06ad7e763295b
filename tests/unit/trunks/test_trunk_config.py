"""[trunks.<name>] parsing: types, defaults, derived values and errors naming the key."""

from __future__ import annotations

import ipaddress
import tomllib

import pytest

from signaling.events import Address
from switch.config import ConfigError
from switch.trunks.config import TrunkConfig, parse_trunks
from switch.trunks.numbers import CallerIdMode, NumberFormat, NumberRule

EXAMPLE = """
[trunks.telecom]
enabled = true
host = "203.0.113.10"
transport = "udp"
outbound_proxy = "sip:198.51.100.5:5070"
username = "02161234567"
auth_username = "auth-02161234567"
password = "pa55word"
realm = "sh.ctcims.cn"
register = true
register_expires_s = 1800
country_code = "86"
area_code = "21"
number_format = "national"
outbound_rules = [ { prefix = "9", strip = 1 }, { pattern = "[2-8]\\\\d{7}", prepend = "021" } ]
caller_id_mode = "per-user"
caller_id_number = "02161234567"
caller_id_map = { "1001" = "02161234501" }
caller_id_format = "e164"
did_map = { "021 6123 4567" = "ivr:hotline", "4008001234" = "queue:billing" }
allowed_sources = ["203.0.113.0/28", "198.51.100.5"]
max_calls = 10
deny_prefixes = ["+86168"]

[trunks.backup]
enabled = false
host = "sip.backup.example"
caller_id_mode = "fixed"
caller_id_number = "02161234567"
transit_trunks = ["telecom"]
"""


def load(text: str) -> dict[str, TrunkConfig]:
    return parse_trunks(tomllib.loads(text).get("trunks", {}))


def test_full_example() -> None:
    trunks = load(EXAMPLE)
    t = trunks["telecom"]
    assert list(trunks) == ["telecom", "backup"]
    assert t.port == 5060 and t.auth_user == "auth-02161234567"
    assert t.outbound_rules == (NumberRule(prefix="9", strip=1),
                                NumberRule(pattern=r"[2-8]\d{7}", prepend="021"))
    assert t.number_format is NumberFormat.NATIONAL
    assert t.caller_id.mode is CallerIdMode.PER_USER
    assert t.caller_id.per_user == {"1001": "02161234501"}
    assert dict(t.did_map) == {"+862161234567": "ivr:hotline", "4008001234": "queue:billing"}
    assert t.route_did("+86 21 6123 4567") == "ivr:hotline"
    assert t.route_did("61234567") == "ivr:hotline"  # local form, area code 21
    assert t.route_did("02161234568") is None
    assert t.next_hop() == Address("udp", "198.51.100.5", 5070)
    assert t.registrar_uri == "sip:203.0.113.10"
    assert t.aor == "sip:02161234567@203.0.113.10"
    assert ipaddress.ip_network("203.0.113.0/28") in t.source_networks()
    assert trunks["backup"].transit_trunks == ("telecom",)


def test_password_not_in_repr() -> None:
    t = load(EXAMPLE)["telecom"]
    assert "pa55word" not in repr(t) and "pa55word" not in str(t)


def test_defaults_and_derived_sources() -> None:
    t = TrunkConfig(name="t", host="192.0.2.1", transport="tls")
    assert t.port == 5061 and not t.register and t.max_calls == 30
    assert t.registrar_uri == "sips:192.0.2.1;transport=tls"
    assert t.source_networks() == (ipaddress.ip_network("192.0.2.1/32"),)
    named = TrunkConfig(name="n", host="sip.example.com")
    assert named.source_networks() == ()  # a name is never trusted without DNS


@pytest.mark.parametrize("table, key", [
    ({"t": {"host": "h", "prot": 5060}}, "trunks.t.prot"),
    ({"t": {"host": "h", "port": "5060"}}, "trunks.t.port"),
    ({"t": {"host": "h", "port": 70000}}, "trunks.t.port"),
    ({"t": {"host": ""}}, "trunks.t.host"),
    ({"t": {"host": "h", "transport": "sctp"}}, "trunks.t.transport"),
    ({"t": {"host": "h", "register": True, "username": "u"}}, "trunks.t.password"),
    ({"t": {"host": "h", "register": True, "password": "p"}}, "trunks.t.username"),
    ({"t": {"host": "h", "register_expires_s": 10}}, "trunks.t.register_expires_s"),
    ({"t": {"host": "h", "outbound_proxy": "http://x"}}, "trunks.t.outbound_proxy"),
    ({"t": {"host": "h", "allowed_sources": ["10.0.0.0/33"]}}, "trunks.t.allowed_sources"),
    ({"t": {"host": "h", "outbound_rules": [{"prefix": "9", "strp": 1}]}},
     "trunks.t.outbound_rules[0]"),
    ({"t": {"host": "h", "outbound_rules": [{"pattern": "("}]}}, "trunks.t.outbound_rules[0]"),
    ({"t": {"host": "h", "number_format": "e.164"}}, "trunks.t.number_format"),
    ({"t": {"host": "h", "caller_id_mode": "fixed"}}, "trunks.t.caller_id_number"),
    ({"t": {"host": "h", "caller_id_number": "12ab"}}, "trunks.t.caller_id_number"),
    ({"t": {"host": "h", "did_map": {"x": "ivr:a"}}}, "trunks.t.did_map"),
    ({"t": {"host": "h", "did_map": {"02161234567": "ivr:a", "+862161234567": "q"}}},
     "trunks.t.did_map"),
    ({"t": {"host": "h", "transit_trunks": ["nope"]}}, "trunks.t.transit_trunks"),
    ({"t": {"host": "h", "max_calls": 0}}, "trunks.t.max_calls"),
    ({"t": {"host": "h", "enabled": "yes"}}, "trunks.t.enabled"),
    ({"bad name": {"host": "h"}}, "trunks.bad name"),
    ({"t": "not a table"}, "trunks.t"),
])
def test_errors_name_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_trunks(table)
    assert err.value.key == key, str(err.value)


def test_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match="did you mean 'register_expires_s'"):
        parse_trunks({"t": {"host": "h", "register_expire_s": 60}})


def test_one_did_one_enabled_trunk() -> None:
    table = {"a": {"host": "192.0.2.1", "did_map": {"4008001234": "ivr:a"}},
             "b": {"host": "192.0.2.2", "did_map": {"4008001234": "ivr:b"}}}
    with pytest.raises(ConfigError) as err:
        parse_trunks(table)
    assert err.value.key == "trunks.b.did_map"
    table["b"]["enabled"] = False
    assert set(parse_trunks(table)) == {"a", "b"}


DEMO_BLOCK = '''
[trunks.demo]
enabled = false
host = "sip.carrier.example"
port = 0
transport = "udp"
outbound_proxy = ""
username = "02161234567"
auth_username = ""
password = ""
realm = ""
register = false
register_expires_s = 3600
from_user = ""
from_domain = ""
country_code = "86"
area_code = "21"
number_format = "national"
outbound_rules = [{ prefix = "9", strip = 1 }]
caller_id_mode = "fixed"
caller_id_number = "02161234567"
caller_id_map = {}
caller_id_format = "national"
did_map = { "02161234567" = "ivr:hotline" }
allowed_sources = []
max_calls = 30
allow_international = false
allowed_users = []
deny_prefixes = ["+881", "+882", "+883"]
transit_trunks = []
'''


def test_demo_block_for_the_default_config_parses() -> None:
    demo = load(DEMO_BLOCK)["demo"]
    assert not demo.enabled and not demo.register
    assert demo.route_did("+862161234567") == "ivr:hotline"


def test_embedded_default_trunks_parse() -> None:
    from importlib import resources

    text = resources.files("switch").joinpath("default_config.toml").read_text("utf-8")
    table = tomllib.loads(text).get("trunks")
    if table is None:
        pytest.skip("the embedded default has no [trunks] tables yet")
    assert all(not t.enabled for t in parse_trunks(table).values())


def test_pure_modules_do_no_io() -> None:
    """config, numbers, policy and registration are pure cores (DESIGN.md three rings)."""
    import ast
    from pathlib import Path

    import switch.trunks as pkg

    forbidden = {"asyncio", "socket", "selectors", "time", "threading", "uvloop"}
    root = Path(pkg.__file__).parent
    for name in ("config.py", "numbers.py", "policy.py", "registration.py"):
        tree = ast.parse((root / name).read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module or ""]
            else:
                continue
            assert not {m.split(".")[0] for m in mods} & forbidden, f"{name}: {mods}"
