"""The ``softswitch`` command: ``run`` a node and manage SIP ``user``s.

Flags of ``run`` are a stable interface (outside scripts use them): ``--config FILE``,
``--sip-port N``, ``--bind ADDR``, ``--db URL``, ``--data-dir DIR``, ``--log-level LEVEL``,
``--sip-trace FILE``, ``--rtp-ports A-B``, ``--cti-port N``. The ``user`` subcommands take
the same ``--config``, ``--data-dir`` and ``--db`` and open the database directly: the node
need not run (SQLite in WAL mode lets both use the file; a running node reads users at
start).

Exit codes: 0 success, 1 an error of the operator's input or environment (bad config,
unknown user, database down), 2 a usage error (argparse), 130 interrupted.

Passwords: given with ``--password``, or read from stdin (one line) or a prompt when the
flag is omitted -- the flag is visible in ``ps`` and shell history, stdin is not. They are
never printed or logged.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TextIO

from storage import Database, StorageError, UserRepository
from switch.config import Config, ConfigError, load_config
from switch.logsetup import configure_logging

logger = logging.getLogger(__name__)

__all__ = ["build_parser", "config_from_args", "main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_OVERRIDES = {  # argparse dest -> dotted config key
    "data_dir": "node.data_dir",
    "log_level": "node.log_level",
    "sip_port": "sip.port",
    "bind": "sip.bind",
    "db": "db.url",
    "rtp_ports": "media.rtp_ports",
    "cti_port": "cti.port",
}


class CliError(Exception):
    """An operator error reported as ``softswitch: error: ...`` with exit code 1."""


def _version() -> str:
    try:
        return metadata.version("softswitch")
    except metadata.PackageNotFoundError:
        return "unknown"


def _add_storage_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--data-dir", metavar="DIR", help="node data directory (default ./data)")
    parser.add_argument("--db", metavar="URL",
                        help="database URL (default sqlite in the data directory)")


_MORE_COMMANDS = """\
more commands (each takes --help):
  user forward      call forwarding of an extension (always, busy, no answer)
  voicemail         list, play and delete voicemail messages
  ivr               check an IVR script, or test it against transcripts
  queue             queue statistics (KPIs) from the stored queue log
  campaign          outbound campaigns: create, start, pause, resume, stop, status, report
  cti               the CTI console for an agent or a supervisor
  cti-user          CTI users and roles
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``softswitch`` command."""
    parser = argparse.ArgumentParser(
        prog="softswitch", description="Self-hosted softswitch and CTI engine.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_MORE_COMMANDS)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run a switch node")
    _add_storage_flags(run)
    run.add_argument("--sip-port", metavar="N", help="SIP UDP/TCP port (default 5060)")
    run.add_argument("--bind", metavar="ADDR", help="SIP listen address (default 0.0.0.0)")
    run.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR")
    run.add_argument("--sip-trace", metavar="FILE", help="append every SIP message to FILE")
    run.add_argument("--rtp-ports", metavar="A-B", help="RTP port range, e.g. 10000-20000")
    run.add_argument("--cti-port", metavar="N", help="CTI server TCP port")
    run.set_defaults(handler=_cmd_run)

    user = commands.add_parser("user", help="manage SIP users")
    actions = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--password", metavar="PW", help="password (default: read stdin/prompt)")
    add.add_argument("--display-name", metavar="TEXT")
    _add_storage_flags(add)
    add.set_defaults(handler=_cmd_user_add)
    listing = actions.add_parser("list", help="list users")
    _add_storage_flags(listing)
    listing.set_defaults(handler=_cmd_user_list)
    remove = actions.add_parser("remove", help="delete a user")
    remove.add_argument("name")
    _add_storage_flags(remove)
    remove.set_defaults(handler=_cmd_user_remove)
    passwd = actions.add_parser("passwd", help="set a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--password", metavar="PW", help="password (default: read stdin/prompt)")
    _add_storage_flags(passwd)
    passwd.set_defaults(handler=_cmd_user_passwd)
    return parser


def _port_range(text: str) -> tuple[int, int]:
    found = re.fullmatch(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*", text)
    if not found:
        raise ConfigError(f"expected FIRST-LAST, e.g. 10000-20000, got {text!r}",
                          key="media.rtp_ports", origin="--rtp-ports")
    first, last = int(found.group(1)), int(found.group(2))
    if not 1 <= first < last <= 65535:
        raise ConfigError(f"expected 1 <= FIRST < LAST <= 65535, got {text!r}",
                          key="media.rtp_ports", origin="--rtp-ports")
    return first, last


def config_from_args(args: argparse.Namespace) -> Config:
    """Build the Config a command would use, without starting anything.

    Raises:
        ConfigError: naming the key and where its value came from.
    """
    overrides: dict[str, object] = {}
    for dest, key in _OVERRIDES.items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides[key] = _port_range(value) if dest == "rtp_ports" else value
    return load_config(args.config, overrides)


def _cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    config = config_from_args(args)
    try:
        config.node.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create data directory {config.node.data_dir}: {exc}") from exc
    if args.sip_trace is not None and not Path(args.sip_trace).parent.is_dir():
        raise CliError(f"--sip-trace: directory does not exist: {Path(args.sip_trace).parent}")
    configure_logging(config.node.log_level)
    try:  # lazy: the user commands work without loading the node's wiring
        app = importlib.import_module("switch.app")
    except ModuleNotFoundError as exc:
        if exc.name != "switch.app":
            raise
        raise CliError("this installation has no node runtime (switch.app is missing)") from exc
    return int(app.run_node(config, args.sip_trace))


def _read_password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != first:
            raise CliError("the passwords do not match")
        return first
    line = sys.stdin.readline() if sys.stdin is not None else ""
    return line.rstrip("\r\n")


async def _with_users(config: Config,
                      action: Callable[[UserRepository], Awaitable[int]]) -> int:
    db = Database(config.db.url)
    try:
        await db.start()
        return await action(UserRepository(db))
    finally:
        await db.close()


def _user_command(args: argparse.Namespace,
                  action: Callable[[Config, UserRepository], Awaitable[int]]) -> int:
    config = config_from_args(args)
    return asyncio.run(_with_users(config, lambda repo: action(config, repo)))


def _cmd_user_add(args: argparse.Namespace, out: TextIO) -> int:
    password = _read_password(args)

    async def action(config: Config, repo: UserRepository) -> int:
        info = await repo.add(args.name, password, config.sip.realm, args.display_name)
        print(f"added user {info.username} (realm {info.realm})", file=out)
        return EXIT_OK

    return _user_command(args, action)


def _cmd_user_list(args: argparse.Namespace, out: TextIO) -> int:
    async def action(config: Config, repo: UserRepository) -> int:
        users = await repo.list()
        rows = [("USER", "DISPLAY NAME", "REALM", "ENABLED", "CREATED (UTC)")]
        rows += [(u.username, u.display_name or "", u.realm, "yes" if u.enabled else "no",
                  u.created_at.strftime("%Y-%m-%d %H:%M")) for u in users]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(),
                  file=out)
        print(f"{len(users)} user(s)", file=out)
        return EXIT_OK

    return _user_command(args, action)


def _cmd_user_remove(args: argparse.Namespace, out: TextIO) -> int:
    async def action(config: Config, repo: UserRepository) -> int:
        await repo.remove(args.name)
        print(f"removed user {args.name}", file=out)
        return EXIT_OK

    return _user_command(args, action)


def _cmd_user_passwd(args: argparse.Namespace, out: TextIO) -> int:
    password = _read_password(args)

    async def action(config: Config, repo: UserRepository) -> int:
        await repo.set_password(args.name, password, realm=config.sip.realm)
        print(f"password changed for user {args.name} (realm {config.sip.realm})", file=out)
        return EXIT_OK

    return _user_command(args, action)


def _ivr_command(argv: Sequence[str]) -> int:
    """``softswitch ivr check|test ...``: the IVR tools parse their own arguments."""
    from ivr_lang.cli import check_main, test_main

    tools = {"check": check_main, "test": test_main}
    if not argv or argv[0] not in tools:
        print("usage: softswitch ivr check FILE... | softswitch ivr test FILE [--keys K]",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(tools[argv[0]](list(argv[1:])))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def _delegated_command(name: str, argv: Sequence[str]) -> int:
    """Subcommands whose packages parse their own arguments (they share --config,
    --data-dir and --db with the rest of the CLI)."""
    if name == "cti":
        from cti.console import console_main as entry
    elif name == "cti-user":
        from cti.users import cti_user_main as entry
    elif name == "queue":
        from switch.queue_cli import queue_main as entry
    else:
        try:
            from switch.campaigns.cli import campaign_main as entry
        except ImportError:
            print("softswitch campaign: not available in this build", file=sys.stderr)
            return EXIT_ERROR
    try:
        return int(entry(list(argv)))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``softswitch`` console script; returns the exit code."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["ivr"]:
        return _ivr_command(args_in[1:])
    if args_in[:1] in (["cti"], ["cti-user"], ["campaign"], ["queue"]):
        return _delegated_command(args_in[0], args_in[1:])
    if args_in[:1] == ["voicemail"] or args_in[:2] == ["user", "forward"]:
        from switch.voicemail_cli import forward_main, voicemail_main

        if args_in[0] == "voicemail":
            return voicemail_main(args_in[1:])
        return forward_main(args_in[2:])
    parser = build_parser()
    try:
        args = parser.parse_args(args_in)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.handler(args, sys.stdout))
    except (ConfigError, StorageError, CliError) as exc:
        print(f"softswitch: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
