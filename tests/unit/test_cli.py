"""The softswitch command, end to end through main([...]) with a tmp data directory."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from switch.cli import build_parser, config_from_args, main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _db_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("softswitch.db*")))


def test_user_lifecycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path / "data")
    code, out, err = _run(capsys, "user", "add", "1001", "--password", "Sekrit-99",
                          "--display-name", "Front desk", "--data-dir", d)
    assert (code, err) == (0, "") and out == "added user 1001 (realm softswitch)\n"
    assert "Sekrit-99" not in out
    code, out, _ = _run(capsys, "user", "add", "1002", "--password", "x2", "--data-dir", d)
    assert code == 0
    code, out, _ = _run(capsys, "user", "list", "--data-dir", d)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["USER", "DISPLAY", "NAME", "REALM", "ENABLED",
                                              "CREATED", "(UTC)"]
    assert lines[1].startswith("1001") and "Front desk" in lines[1] and "yes" in lines[1]
    assert lines[2].startswith("1002") and lines[-1] == "2 user(s)"
    code, out, _ = _run(capsys, "user", "passwd", "1001", "--password", "New-Pass-1",
                        "--data-dir", d)
    assert code == 0 and "password changed for user 1001" in out and "New-Pass-1" not in out
    code, out, _ = _run(capsys, "user", "remove", "1002", "--data-dir", d)
    assert (code, out) == (0, "removed user 1002\n")
    code, out, _ = _run(capsys, "user", "list", "--data-dir", d)
    assert "1002" not in out and out.endswith("1 user(s)\n")
    data = _db_bytes(tmp_path / "data")
    assert data and b"Sekrit-99" not in data and b"New-Pass-1" not in data


def test_user_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path)
    assert main(["user", "add", "1001", "--password", "pw", "--data-dir", d]) == 0
    code, _, err = _run(capsys, "user", "add", "1001", "--password", "pw2", "--data-dir", d)
    assert code == 1 and err == "softswitch: error: user already exists: 1001\n"
    code, _, err = _run(capsys, "user", "remove", "ghost", "--data-dir", d)
    assert code == 1 and "no such user: ghost" in err
    code, _, err = _run(capsys, "user", "passwd", "ghost", "--password", "p", "--data-dir", d)
    assert code == 1 and "no such user: ghost" in err
    code, _, err = _run(capsys, "user", "add", "bad name", "--password", "p", "--data-dir", d)
    assert code == 1 and "invalid username" in err
    assert "pw2" not in err


def test_password_from_stdin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("from-stdin-pw\n"))
    code, out, _ = _run(capsys, "user", "add", "1001", "--data-dir", str(tmp_path))
    assert code == 0 and "from-stdin-pw" not in out
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = _run(capsys, "user", "add", "1002", "--data-dir", str(tmp_path))
    assert code == 1 and "password must not be empty" in err


def test_user_commands_honour_db_and_config(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    db_file = tmp_path / "elsewhere" / "users.db"
    config = tmp_path / "site.toml"
    config.write_text('[sip]\ndomain = "pbx.example"\n')
    code, out, _ = _run(capsys, "user", "add", "2001", "--password", "p", "--config",
                        str(config), "--db", f"sqlite:///{db_file}",
                        "--data-dir", str(tmp_path / "d"))
    assert code == 0 and "(realm pbx.example)" in out and db_file.exists()
    code, out, _ = _run(capsys, "user", "list", "--db", f"sqlite:///{db_file}",
                        "--data-dir", str(tmp_path / "d"))
    assert "2001" in out and "pbx.example" in out


def test_bad_config_file_exits_1_naming_key(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "site.toml"
    config.write_text("[sip]\nport = 0\n")
    for argv in (["run"], ["user", "list"]):
        code, _, err = _run(capsys, *argv, "--config", str(config),
                            "--data-dir", str(tmp_path))
        assert code == 1
        assert err == (f"softswitch: error: {config}: sip.port: expected an integer between "
                       "1 and 65535, got 0\n")


def test_bad_run_flags_exit_1_naming_key(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--data-dir", str(tmp_path)]
    code, _, err = _run(capsys, "run", "--sip-port", "abc", *d)
    assert code == 1 and "sip.port: expected an integer between 1 and 65535, got 'abc'" in err
    code, _, err = _run(capsys, "run", "--rtp-ports", "20000", *d)
    assert code == 1 and "--rtp-ports: media.rtp_ports: expected FIRST-LAST" in err
    code, _, err = _run(capsys, "run", "--log-level", "chatty", *d)
    assert code == 1 and "node.log_level" in err
    code, _, err = _run(capsys, "run", "--sip-trace", str(tmp_path / "no" / "t.log"), *d)
    assert code == 1 and "--sip-trace" in err


def test_run_flags_build_the_config(tmp_path: Path) -> None:
    args = build_parser().parse_args([
        "run", "--sip-port", "5070", "--bind", "127.0.0.1", "--db", "sqlite:///x.db",
        "--data-dir", str(tmp_path / "d"), "--log-level", "debug",
        "--sip-trace", str(tmp_path / "t.log"), "--rtp-ports", "30000-30100",
        "--cti-port", "7001",
    ])
    config = config_from_args(args)
    assert (config.sip.port, config.sip.bind) == (5070, "127.0.0.1")
    assert config.db.url == "sqlite+aiosqlite:///x.db"
    assert config.node.data_dir == (tmp_path / "d").resolve()
    assert config.node.log_level == "DEBUG"
    assert config.cti_raw == {"port": 7001}
    assert config.media_raw["rtp_ports"] == (30000, 30100)
    assert args.sip_trace == str(tmp_path / "t.log")


def test_run_calls_node_with_config_and_trace(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` hands the built Config to switch.app.run_node and returns its exit code."""
    import types

    seen: list[object] = []

    def run_node(config: object, sip_trace: str | None) -> int:
        seen.append((config, sip_trace))
        return 7

    fake = types.ModuleType("switch.app")
    fake.run_node = run_node  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "switch.app", fake)
    trace = str(tmp_path / "t.log")
    assert main(["run", "--data-dir", str(tmp_path / "d"), "--sip-trace", trace]) == 7
    [(config, sip_trace)] = seen
    assert sip_trace == trace and (tmp_path / "d").is_dir()
    assert config.node.data_dir == (tmp_path / "d").resolve()  # type: ignore[attr-defined]


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["user"]) == 2
    assert main(["user", "add"]) == 2
    assert main(["frobnicate"]) == 2
    capsys.readouterr()


def test_version_and_help_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("softswitch ")
    assert main(["run", "--help"]) == 0
    help_text = capsys.readouterr().out
    for flag in ("--config", "--sip-port", "--bind", "--db", "--data-dir", "--log-level",
                 "--sip-trace", "--rtp-ports", "--cti-port"):
        assert flag in help_text


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """Commands parsed by their own packages are not argparse subcommands; the top-level
    help still names them, and each of them answers --help."""
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in ("run", "user", "user forward", "voicemail", "ivr", "queue", "campaign",
                    "cti", "cti-user"):
        assert f"  {command} " in text, command
    for argv in (["voicemail", "--help"], ["queue", "--help"], ["campaign", "--help"],
                 ["cti-user", "--help"], ["user", "forward", "--help"]):
        assert main(argv) == 0, argv
        assert "usage:" in capsys.readouterr().out.lower()
