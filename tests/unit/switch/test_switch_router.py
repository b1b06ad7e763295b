"""The dial plan: Asterisk patterns and their order, conditions, transforms, config errors."""

from __future__ import annotations

import datetime as dt
import tomllib
from zoneinfo import ZoneInfo

import pytest

from switch.config import ConfigError
from switch.router import (
    DialPlan,
    Extension,
    Ivr,
    PatternError,
    Queue,
    Reject,
    Trunk,
    Voicemail,
    compile_pattern,
    describe_target,
)
from switch.routing_config import DEFAULT_ROUTING_TOML, default_routing, parse_routing

MON_10 = dt.datetime(2026, 11, 30, 10, 0)  # a Monday, open
SUN_10 = dt.datetime(2026, 11, 29, 10, 0)  # a Sunday, closed


@pytest.mark.parametrize(("pattern", "yes", "no"), [
    ("_10XX", ["1000", "1001", "1099"], ["100", "10000", "1100", "10a1"]),
    ("_NXXXXXX", ["2345678", "9000000"], ["1234567", "0234567", "234567"]),
    ("_Z", ["1", "9"], ["0", "12"]),
    ("_[1-5]00", ["100", "500"], ["600", "000"]),
    ("_[135]X", ["10", "39", "59"], ["20", "40"]),
    ("_[1-35-7]", ["1", "3", "5", "7"], ["4", "8"]),
    ("_9.", ["90", "9013800000000"], ["9", "8013"]),
    ("_9!", ["9", "90", "91234"], ["8"]),
    ("_1-800-NXX", ["1800234"], ["1800134", "1-800-234"]),
    ("_*X#", ["*1#"], ["*#", "1"]),
    ("12345", ["12345"], ["1234", "123456"]),
    ("+8613800000000", ["+8613800000000"], ["8613800000000"]),
])
def test_patterns_match_like_asterisk(pattern: str, yes: list[str], no: list[str]) -> None:
    p = compile_pattern(pattern)
    assert [n for n in yes if not p.matches(n)] == []
    assert [n for n in no if p.matches(n)] == []


@pytest.mark.parametrize(("bad", "message"), [
    ("", "empty"),
    ("9.", "patterns start with '_'"),
    ("10XX", "patterns start with '_'"),
    ("_9.1", "must end the pattern"),
    ("_[1-", "no closing"),
    ("_[5-1]", "bad range"),
    ("_[]", "empty set"),
    ("_A1", "not allowed"),
    ("_", "nothing after"),
    ("12a", "not a number"),
])
def test_bad_patterns_are_explained(bad: str, message: str) -> None:
    with pytest.raises(PatternError, match=message):
        compile_pattern(bad)


def _plan(rules: str, calendars: str = "") -> DialPlan:
    return DialPlan.from_config(parse_routing(tomllib.loads(rules + calendars)))


def test_asterisk_order_most_specific_first() -> None:
    # Written least specific first; Asterisk sorts exact > digit > N > Z > X > set > . > !
    names = ["bang", "dot", "x", "z", "n", "literal", "set3", "exact", "short"]
    matches = ["_1!", "_1.", "_1X", "_1Z", "_1N", "_12", "_1[123]", "12", "_1"]
    text = "".join(f'[[dialplan.rules]]\nname = "{n}"\nmatch = "{m}"\ntarget = "ivr"\n'
                   f'program = "{n}"\n' for n, m in zip(names, matches, strict=True))
    plan = _plan(text)
    assert [r.name for r in plan.rules] == [
        "exact", "literal", "set3", "n", "z", "x", "dot", "bang", "short"]
    assert plan.route("12", "c", "user", MON_10).rule_name == "exact"
    assert plan.route("13", "c", "user", MON_10).rule_name == "set3"
    assert plan.route("15", "c", "user", MON_10).rule_name == "n"
    assert plan.route("11", "c", "user", MON_10).rule_name == "set3"  # before Z
    assert plan.route("10", "c", "user", MON_10).rule_name == "x"
    assert plan.route("1234", "c", "user", MON_10).rule_name == "dot"
    # "!" (zero or more) sorts before the end of "_1", so it takes "1" too (as in Asterisk)
    assert plan.route("1", "c", "user", MON_10).rule_name == "bang"


def test_longer_pattern_before_its_prefix_and_ties_keep_config_order() -> None:
    plan = _plan('[[dialplan.rules]]\nname = "a"\nmatch = "_12"\ntarget = "ivr"\nprogram = "a"\n'
                 '[[dialplan.rules]]\nname = "b"\nmatch = "_12X"\ntarget = "ivr"\nprogram = "b"\n'
                 '[[dialplan.rules]]\nname = "c"\nmatch = "_12X"\ntarget = "ivr"\nprogram = "c"\n')
    assert [r.name for r in plan.rules] == ["b", "c", "a"]


def test_default_dialplan_routes_the_demo() -> None:
    plan = DialPlan.from_config(default_routing())
    lists = {"vip": {"13800000000"}, "blocked": {"17000000000"}}
    assert plan.route("1001", "1002", "user", MON_10, lists).target == Extension("1001")
    assert plan.route("1010", "1002", "user", MON_10, lists).target == Extension("1010")
    hot = plan.route("12345", "13900001111", "trunk", SUN_10, lists)
    assert hot.target == Ivr("hotline") and hot.rule_name == "hotline"
    assert plan.route("0", "13900001111", "user", MON_10, lists).target == Queue("operator", 0)
    vip = plan.route("0", "13800000000", "user", MON_10, lists)
    assert vip.target == Queue("operator", 10)
    assert plan.route("0", "1001", "user", SUN_10, lists).target == Voicemail("operator")
    out = plan.route("913800000000", "1001", "user", MON_10, lists, explain=True)
    assert out.target == Reject(404, "no route")
    assert out.skipped == (("outbound", "disabled"),)
    blocked = plan.route("12345", "17000000000", "trunk", MON_10, lists)
    assert blocked.target == Reject(403, "caller blocked")
    assert blocked.rule_name == "blocked-caller"


def test_trunk_strip_prepend_and_source_condition() -> None:
    plan = _plan('[[dialplan.rules]]\nname = "out"\nmatch = "_9."\ntarget = "trunk"\n'
                 'trunk = "demo"\nstrip = 1\nprepend = "0"\nsource = "user"\n')
    d = plan.route("913800000000", "1001", "user", MON_10)
    assert d.target == Trunk("demo", "013800000000") and d.number == "013800000000"
    assert describe_target(d.target) == "trunk:demo/013800000000"
    assert plan.route("913800000000", "x", "trunk", MON_10).target == Reject(404, "no route")


def test_caller_list_conditions_and_conditions_first_among_equals() -> None:
    plan = _plan(
        '[[dialplan.rules]]\nname = "all"\nmatch = "12345"\ntarget = "ivr"\nprogram = "h"\n'
        '[[dialplan.rules]]\nname = "vip"\nmatch = "12345"\ntarget = "queue"\nqueue = "vip"\n'
        'caller_in = ["vip"]\n'
        '[[dialplan.rules]]\nname = "nonvip-voicemail"\nmatch = "_5."\ntarget = "voicemail"\n'
        'caller_not_in = ["vip"]\n')
    lists = {"vip": frozenset({"139"})}
    assert plan.route("12345", "139", "trunk", MON_10, lists).rule_name == "vip"
    assert plan.route("12345", "138", "trunk", MON_10, lists).rule_name == "all"
    assert plan.route("5001", "138", "trunk", MON_10, lists).target == Voicemail("5001")
    assert plan.route("5001", "139", "trunk", MON_10, lists).rule_name == "no-route"


def test_calendar_condition_uses_zone_of_aware_times() -> None:
    plan = DialPlan.from_config(default_routing())
    # 01:30 UTC on Monday is 09:30 in Shanghai: open.
    utc = dt.datetime(2026, 11, 30, 1, 30, tzinfo=dt.UTC)
    assert plan.route("0", "x", "user", utc).rule_name == "operator"
    # 11:00 UTC is 19:00 in Shanghai: closed.
    late = dt.datetime(2026, 11, 30, 11, 0, tzinfo=ZoneInfo("UTC"))
    assert plan.route("0", "x", "user", late).rule_name == "operator-closed"


def test_default_toml_block_parses() -> None:
    cfg = parse_routing(tomllib.loads(DEFAULT_ROUTING_TOML))
    assert [r.name for r in cfg.dialplan.rules] == [
        "extensions", "outbound", "hotline", "operator", "operator-closed"]
    assert "work_hours" in cfg.calendars


@pytest.mark.parametrize(("toml", "key", "message"), [
    ('[[dialplan.rules]]\nmatch = "9."\ntarget = "trunk"\ntrunk = "t"\n',
     "dialplan.rules[0].match", "patterns start with '_'"),
    ('[[dialplan.rules]]\nmatch = "1"\ntarget = "quue"\n',
     "dialplan.rules[0].target", "did you mean 'queue'"),
    ('[[dialplan.rules]]\nmatch = "1"\ntarget = "queue"\n',
     "dialplan.rules[0].queue", "needs queue"),
    ('[[dialplan.rules]]\nmatch = "1"\ntarget = "ivr"\nprogram = "p"\nstrp = 1\n',
     "dialplan.rules[0].strp", "did you mean 'strip'"),
    ('[[dialplan.rules]]\ntarget = "ivr"\nprogram = "p"\n', "dialplan.rules[0].match",
     "missing"),
    ('[[dialplan.rules]]\nmatch = "1"\ntarget = "reject"\nstatus = 200\n',
     "dialplan.rules[0].status", "between 400 and 699"),
    ('[[dialplan.rules]]\nmatch = "1"\ntarget = "ivr"\nprogram = "p"\nstrip = "1"\n',
     "dialplan.rules[0].strip", "an integer"),
    ('[[dialplan.rules]]\nmatch = "1"\ntarget = "ivr"\nprogram = "p"\nsource = "sip"\n',
     "dialplan.rules[0].source", "user"),
    ('[[dialplan.rules]]\nmatch = "1"\ntarget = "ivr"\nprogram = "p"\ncalendar = "wh"\n',
     "dialplan.rules[0].calendar", "no calendar called 'wh'"),
    ('[[dialplan.rules]]\nmatch = "1"\ntarget = "ivr"\nprogram = "p"\nwhen = "shut"\n',
     "dialplan.rules[0].when", "'open' or 'closed'"),
    ('[dialplan]\nvip_priorty = 3\n', "dialplan.vip_priorty", "did you mean"),
    ('[dialplan]\nrules = 3\n', "dialplan.rules", "array of tables"),
])
def test_config_errors_name_the_key(toml: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_routing(tomllib.loads(toml))
    assert info.value.key == key


def test_check_references() -> None:
    cfg = default_routing()
    cfg.check_references(queues={"operator"}, programs={"hotline"}, trunks=set())
    with pytest.raises(ConfigError, match="no program called 'hotline'") as info:
        cfg.check_references(programs={"hotlin"})
    assert info.value.key == "dialplan.rules[2].program"
    with pytest.raises(ConfigError, match="no queue"):
        cfg.check_references(queues={"客服组"})
