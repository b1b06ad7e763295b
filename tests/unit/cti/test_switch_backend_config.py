"""``[cti]`` settings of a node: every key checked, errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cti.config import CTI_KEYS, cti_config
from switch.config import _CTI_KEYS, ConfigError


def _problem(raw: dict[str, object]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cti_config(raw)
    return info.value


def test_the_node_config_accepts_exactly_the_cti_keys() -> None:
    assert set(_CTI_KEYS) == set(CTI_KEYS)


def test_values_become_the_listener_config_and_the_backend_timers(tmp_path: Path) -> None:
    crt, key = tmp_path / "c.pem", tmp_path / "k.pem"
    crt.write_text("x")
    key.write_text("y")
    config, extra = cti_config({"port": 7070, "host": "0.0.0.0", "certfile": str(crt),
                                "keyfile": str(key), "heartbeat_s": 10,
                                "ring_timeout_s": 20, "screen_pop_timeout_s": 2.5})
    assert (config.port, config.host, config.certfile, config.heartbeat_s) == (
        7070, "0.0.0.0", str(crt), 10.0)
    assert extra == {"ring_timeout_s": 20.0, "screen_pop_timeout_s": 2.5}
    assert cti_config({"host": "0.0.0.0", "allow_plaintext": True})[0].allow_plaintext


@pytest.mark.parametrize(("raw", "key", "words"), [
    ({"hots": "x"}, "cti.hots", "unknown key"),
    ({"host": 1}, "cti.host", "expected str"),
    ({"max_line_bytes": True}, "cti.max_line_bytes", "expected int"),
    ({"ring_timeout_s": -1}, "cti.ring_timeout_s", "must not be negative"),
    ({"allow_plaintext": "yes"}, "cti.allow_plaintext", "expected bool"),
    ({"certfile": "/nonexistent.pem"}, "cti.certfile", "file not found"),
    ({"host": "10.1.2.3"}, "cti.host", "needs allow_plaintext"),
    ({"max_line_bytes": 10}, "cti.max_line_bytes", "1 KiB..16 MiB"),
])
def test_bad_values_name_their_key(raw: dict[str, object], key: str, words: str) -> None:
    problem = _problem(raw)
    assert problem.key == key and words in str(problem)


def test_certfile_without_keyfile(tmp_path: Path) -> None:
    crt = tmp_path / "c.pem"
    crt.write_text("x")
    problem = _problem({"certfile": str(crt)})
    assert problem.key == "cti.certfile" and "go together" in str(problem)
