"""switch.config: defaults, merging, and errors that name the key and its origin."""

from __future__ import annotations

import dataclasses
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from switch.config import (
    Config,
    ConfigError,
    DbConfig,
    NodeConfig,
    SipConfig,
    load_config,
)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative data_dir resolves here, never in the repo


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _error(path: str | None = None, overrides: dict[str, object] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides or {})
    return str(info.value)


def test_embedded_default_matches_dataclass_defaults(tmp_path: Path) -> None:
    config = load_config(None, {})
    assert config.sip == SipConfig()
    assert config.node == NodeConfig(data_dir=(tmp_path / "data").resolve())
    assert config.db == DbConfig(url=f"sqlite+aiosqlite:///{(tmp_path / 'data').resolve()}"
                                 "/softswitch.db")
    assert config.sip.realm == config.sip.domain == "softswitch"
    assert config.sip.active_transports == ("udp", "tcp")
    assert config.source is None


def test_default_toml_lists_every_key() -> None:
    text = resources.files("switch").joinpath("default_config.toml").read_text("utf-8")
    doc = tomllib.loads(text)
    for section, cls in (("node", NodeConfig), ("sip", SipConfig), ("db", DbConfig)):
        assert set(doc[section]) == {f.name for f in dataclasses.fields(cls)}, section


def test_file_then_overrides_precedence(tmp_path: Path) -> None:
    path = _write(tmp_path, '[sip]\nport = 5070\ndomain = "pbx.example"\n'
                            '[node]\nlog_level = "debug"\ndata_dir = "var"\n')
    config = load_config(path, {"sip.port": "5080", "sip.bind": "127.0.0.1"})
    assert config.sip.port == 5080 and config.sip.bind == "127.0.0.1"
    assert config.sip.domain == config.sip.realm == "pbx.example"
    assert config.node.log_level == "DEBUG"
    assert config.node.data_dir == (tmp_path / "var").resolve()
    assert config.sip.tls_port == 5061  # untouched default
    assert config.source == path


def test_db_url_override_and_plain_url_upgrade(tmp_path: Path) -> None:
    config = load_config(None, {"db.url": f"sqlite:///{tmp_path}/x.db"})
    assert config.db.url == f"sqlite+aiosqlite:///{tmp_path}/x.db"
    pg = load_config(None, {"db.url": "postgresql://u:p@db/ss"})
    assert pg.db.url == "postgresql+asyncpg://u:p@db/ss"


def test_bad_db_url_names_key() -> None:
    assert _error(None, {"db.url": "nonsense"}).startswith("command line: db.url:")


def test_wrong_type_in_file_names_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, '[sip]\nport = "abc"\n')
    assert _error(path) == (
        f"{path}: sip.port: expected an integer between 1 and 65535, got 'abc'")


def test_out_of_range_names_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "[sip]\nport = 70000\n")
    assert "sip.port: expected an integer between 1 and 65535, got 70000" in _error(path)


def test_bool_is_not_an_integer(tmp_path: Path) -> None:
    path = _write(tmp_path, "[sip]\nt1_ms = true\n")
    assert "sip.t1_ms: expected an integer between 10 and 10000, got true" in _error(path)


def test_cli_string_not_a_number() -> None:
    assert _error(None, {"sip.port": "abc"}) == (
        "command line: sip.port: expected an integer between 1 and 65535, got 'abc'")


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = _write(tmp_path, "[sip]\nprot = 5060\n")
    assert _error(path) == f"{path}: sip.prot: unknown key (did you mean 'port'?)"


def test_unknown_section(tmp_path: Path) -> None:
    path = _write(tmp_path, "[sipp]\nport = 1\n")
    assert _error(path).startswith(f"{path}: sipp: unknown section (did you mean 'sip'?)")


def test_section_must_be_a_table(tmp_path: Path) -> None:
    path = _write(tmp_path, "sip = 5\n")
    assert "sip: expected a table [sip], got 5" in _error(path)


def test_toml_syntax_error_gives_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '[sip]\nport = 5060\ndomain = "unterminated\n')
    message = _error(path)
    assert message.startswith(f"{path}:3:") and "TOML syntax error" in message


def test_missing_file() -> None:
    assert _error("/nonexistent/site.toml") == "/nonexistent/site.toml: config file not found"


def test_bad_choice_and_bad_bind(tmp_path: Path) -> None:
    assert "node.log_level: expected one of 'DEBUG'" in _error(None, {"node.log_level": "loud"})
    assert "sip.bind: expected an IP address, got 'nowhere'" in _error(
        None, {"sip.bind": "nowhere"})
    assert load_config(None, {"sip.bind": "::"}).sip.bind == "::"


def test_transports(tmp_path: Path) -> None:
    assert load_config(None, {"sip.transports": "udp"}).sip.transports == ("udp",)
    path = _write(tmp_path, '[sip]\ntransports = ["udp", "sctp"]\n')
    assert "sip.transports: expected a list of strings from 'udp', 'tcp'" in _error(path)
    path = _write(tmp_path, "[sip]\ntransports = []\n")
    assert "sip.transports: expected at least one transport" in _error(path)


def test_tls_needs_both_files_that_exist(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    path = _write(tmp_path, f'[sip]\ntls_cert = "{cert}"\n')
    assert f"{path}: sip.tls_key: tls_cert and tls_key must be set together" == _error(path)
    path = _write(tmp_path, f'[sip]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    assert f"{path}: sip.tls_cert: file not found: {cert}" == _error(path)
    cert.write_text("x")
    key.write_text("y")
    config = load_config(path, {})
    assert config.sip.active_transports == ("udp", "tcp", "tls")
    assert "sip.tls_port: must differ" in _error(path, {"sip.tls_port": "5060"})


def test_cross_field_expires_error_blames_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[sip]\nmin_expires_s = 7200\n")
    message = _error(path)
    assert message.startswith(f"{path}: sip.default_expires_s: expected min_expires_s <=")


def test_t2_below_t1(tmp_path: Path) -> None:
    assert "sip.t2_ms: must not be below sip.t1_ms" in _error(None, {"sip.t1_ms": "5000"})


def test_direct_construction_validates() -> None:
    with pytest.raises(ConfigError, match=r"^sip\.port: expected an integer"):
        SipConfig(port=0)
    with pytest.raises(ConfigError, match=r"^node\.log_level"):
        NodeConfig(log_level="verbose")
    assert SipConfig(domain="a.example").realm == "a.example"
    assert Config().sip.port == 5060


def test_media_table_goes_to_media_config(tmp_path: Path) -> None:
    pytest.importorskip("switch.media.config")
    path = _write(tmp_path, '[media]\nrtp_ports = [30000, 30100]\nrecordings_dir = "rec"\n')
    config = load_config(path, {})
    assert config.media is not None
    assert (config.media.rtp_port_min, config.media.rtp_port_max) == (30000, 30100)
    assert config.media.recordings_dir == (tmp_path / "data" / "rec").resolve()
    assert config.media_raw["rtp_ports"] == [30000, 30100]
    cli = load_config(path, {"media.rtp_ports": (40000, 40010)})
    assert (cli.media.rtp_port_min, cli.media.rtp_port_max) == (40000, 40010)


def test_media_errors_name_the_key(tmp_path: Path) -> None:
    pytest.importorskip("switch.media.config")
    path = _write(tmp_path, "[media]\nrtp_portz = 1\n")
    assert _error(path).startswith(f"{path}: media.rtp_portz: unknown key")
    path = _write(tmp_path, "[media]\nrtp_ports = [5, 6]\n")
    assert _error(path).startswith(f"{path}: media.rtp_port_min:")
    path = _write(tmp_path, "[media]\nrtp_ports = 5\n")
    assert "media.rtp_ports: expected [first, last], got 5" in _error(path)


def test_media_kept_raw_without_media_config(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setattr("switch.config._import_media_config", lambda: None)
    path = _write(tmp_path, '[media]\nanything = "goes"\n')
    config = load_config(path, {"media.rtp_ports": (1000, 2000)})
    assert config.media is None
    assert config.media_raw == {"anything": "goes", "rtp_ports": (1000, 2000)}


def test_cti_port(tmp_path: Path) -> None:
    assert load_config(None, {"cti.port": "7001"}).cti_raw == {"port": 7001}
    assert "cti.port: expected an integer between 1 and 65535, got 'x'" in _error(
        None, {"cti.port": "x"})
    path = _write(tmp_path, "[cti]\nhots = 1\n")
    assert "cti.hots: unknown key" in _error(path)
    path = _write(tmp_path, "[cti]\nport = 7001\nhost = 1\n")
    assert "cti.host: expected str, got 1" in _error(path)
    path = _write(tmp_path, "[cti]\nport = 7001\nhost = \"0.0.0.0\"\n")
    assert "cti.host: plain TCP on 0.0.0.0 needs allow_plaintext" in _error(path)
    path = _write(tmp_path, "[cti]\nport = 7001\ncertfile = \"nope.pem\"\n")
    assert "cti.certfile: file not found: nope.pem" in _error(path)
    config = load_config(_write(tmp_path, "[cti]\nport = 7001\nring_timeout_s = 5\n"))
    assert config.cti_raw == {"port": 7001, "ring_timeout_s": 5}


def test_config_error_shape() -> None:
    err = ConfigError("bad", key="sip.port", origin="f.toml")
    assert (str(err), err.key, err.origin, err.problem) == (
        "f.toml: sip.port: bad", "sip.port", "f.toml", "bad")
    assert isinstance(err, ValueError)
