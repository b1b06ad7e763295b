"""``softswitch voicemail list|play|delete`` and ``softswitch user forward``.

Like ``softswitch user``, the commands open the database directly (``--config``,
``--data-dir``, ``--db``): the node need not run. A running node picks up forwarding
changes within a few seconds (``switch.forwarding`` Rule 5) and new messages appear as
soon as they are recorded.

Examples::

    softswitch voicemail list            # every box
    softswitch voicemail list 1001
    softswitch voicemail play 7          # aplay/play if installed, else prints the path
    softswitch voicemail play 7 --out msg.wav
    softswitch voicemail delete 7
    softswitch user forward 1001 --busy 1002 --no-answer 9013800000000 --ring-s 15
    softswitch user forward 1001 --always voicemail:1001
    softswitch user forward 1001          # show
    softswitch user forward 1001 --off

Exit codes: 0 success, 1 an operator error (unknown message or user, bad target, database
down, a player that failed), 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TextIO, TypeVar

from storage.db import Database, StorageError
from storage.repositories import UserRepository
from storage.voicemail_repository import ForwardRepository, MessageInfo, VoicemailRepository
from switch.config import Config, ConfigError
from switch.forwarding import ForwardSettings, validate_target

logger = logging.getLogger(__name__)

__all__ = ["forward_main", "voicemail_main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
PLAYERS = ("aplay", "play")
"""Audio players tried in order (alsa-utils, sox)."""

T = TypeVar("T")


class VoicemailCliError(Exception):
    """An operator error, printed as ``softswitch: error: ...`` with exit code 1."""


def _storage_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--data-dir", metavar="DIR", help="node data directory (default ./data)")
    parser.add_argument("--db", metavar="URL",
                        help="database URL (default sqlite in the data directory)")


def _config(args: argparse.Namespace) -> Config:
    from switch.cli import config_from_args  # lazy: switch.cli imports this module lazily

    return config_from_args(args)


def _with_db(config: Config, action: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        db = Database(config.db.url)
        try:
            await db.start()
            return await action(db)
        finally:
            await db.close()

    return asyncio.run(run())


def _local(when: dt.datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _table(rows: list[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(),
              file=out)


# --- voicemail -------------------------------------------------------------------------------


def build_voicemail_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softswitch voicemail",
                                     description="List, play and delete voicemail messages.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list messages (of one box)")
    listing.add_argument("box", nargs="?")
    _storage_flags(listing)
    play = actions.add_parser("play", help="play a message (or copy it with --out)")
    play.add_argument("id", type=int)
    play.add_argument("--out", metavar="FILE", help="copy the WAV file here instead")
    play.add_argument("--path", action="store_true", help="only print the WAV file's path")
    _storage_flags(play)
    delete = actions.add_parser("delete", help="delete a message and its file")
    delete.add_argument("id", type=int)
    _storage_flags(delete)
    return parser


def _message(repo: VoicemailRepository, message_id: int) -> Awaitable[MessageInfo | None]:
    return repo.get(message_id)


def _cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    messages = _with_db(_config(args), lambda db: VoicemailRepository(db).list(args.box))
    rows = [("ID", "BOX", "FROM", "RECEIVED", "SECONDS", "ENDED BY")]
    rows += [(str(m.id), m.box, m.caller or "-", _local(m.created_at), f"{m.duration_s:.1f}",
              m.ended_by) for m in messages]
    _table(rows, out)
    print(f"{len(messages)} message(s)", file=out)
    return EXIT_OK


def _cmd_play(args: argparse.Namespace, out: TextIO) -> int:
    info = _with_db(_config(args), lambda db: _message(VoicemailRepository(db), args.id))
    if info is None:
        raise VoicemailCliError(f"no such message: {args.id}")
    path = Path(info.path)
    if not path.is_file():
        raise VoicemailCliError(f"message {args.id}: file {path} is missing")
    if args.out:
        try:
            shutil.copyfile(path, args.out)
        except OSError as exc:
            raise VoicemailCliError(f"cannot write {args.out}: {exc}") from exc
        print(f"message {info.id} ({info.duration_s:.1f} s from {info.caller or '-'}) "
              f"copied to {args.out}", file=out)
        return EXIT_OK
    player = None if args.path else next(
        (found for name in PLAYERS if (found := shutil.which(name))), None)
    if player is None:
        print(path, file=out)
        return EXIT_OK
    print(f"playing message {info.id} ({info.duration_s:.1f} s from {info.caller or '-'}): "
          f"{path}", file=out)
    out.flush()
    try:
        result = subprocess.run([player, "-q", str(path)], timeout=info.duration_s + 30,
                                check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VoicemailCliError(f"{player} failed: {exc}; the file is {path}") from exc
    if result.returncode != 0:
        raise VoicemailCliError(f"{player} exited with {result.returncode}; the file is {path}")
    return EXIT_OK


def _cmd_delete(args: argparse.Namespace, out: TextIO) -> int:
    info = _with_db(_config(args), lambda db: VoicemailRepository(db).delete(args.id))
    if info is None:
        raise VoicemailCliError(f"no such message: {args.id}")
    try:
        Path(info.path).unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        print(f"softswitch: warning: {info.path} not deleted: {exc}", file=sys.stderr)
    print(f"deleted message {info.id} of box {info.box}", file=out)
    return EXIT_OK


# --- forwarding ----------------------------------------------------------------------------


def build_forward_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="softswitch user forward",
        description="Show or set an extension's call forwarding. Targets are numbers routed "
                    "through the dial plan, or voicemail:BOX.")
    parser.add_argument("name", help="the extension (SIP user)")
    parser.add_argument("--always", metavar="N", help="forward every call (unconditional)")
    parser.add_argument("--busy", metavar="N", help="forward when busy")
    parser.add_argument("--no-answer", metavar="N", help="forward when not answered")
    parser.add_argument("--ring-s", metavar="S", type=float,
                        help="ring time before --no-answer (default [calls] "
                             "no_answer_timeout_s)")
    parser.add_argument("--off", action="store_true", help="remove every forward")
    _storage_flags(parser)
    return parser


def _target(flag: str, value: str | None) -> str | None:
    if value is None:
        return None
    if value in ("", "off", "none"):
        return ""
    try:
        return validate_target(value)
    except ValueError as exc:
        raise VoicemailCliError(f"{flag}: {exc}") from None


def _route_note(config: Config, target: str, caller: str) -> str:
    """Where the dial plan sends ``target`` now (a hint for the operator)."""
    if not target or target.startswith("voicemail:"):
        return ""
    from switch.router import DialPlan, Reject, describe_target
    from switch.routing_config import default_routing

    plan = DialPlan.from_config(config.routing or default_routing())
    decision = plan.route(target, caller, "user", dt.datetime.now(dt.UTC))
    if isinstance(decision.target, Reject):
        return f" (warning: the dial plan rejects {target} now: rule {decision.rule_name})"
    return f" ({target} -> {describe_target(decision.target)})"


def _cmd_forward(args: argparse.Namespace, out: TextIO) -> int:
    config = _config(args)
    changes = {"always": _target("--always", args.always),
               "busy": _target("--busy", args.busy),
               "no_answer": _target("--no-answer", args.no_answer)}
    if args.ring_s is not None and not 1 <= args.ring_s <= 600:
        raise VoicemailCliError("--ring-s: expected seconds between 1 and 600")
    if args.off and (any(v for v in changes.values()) or args.ring_s is not None):
        raise VoicemailCliError("--off cannot be combined with other forwards")

    async def action(db: Database) -> ForwardSettings | None:
        if await UserRepository(db).get(args.name) is None:
            raise VoicemailCliError(f"no such user: {args.name}")
        repo = ForwardRepository(db)
        if args.off:
            await repo.clear(args.name)
            return None
        current = await repo.get(args.name) or ForwardSettings(args.name)
        if all(v is None for v in changes.values()) and args.ring_s is None:
            return current
        settings = ForwardSettings(
            args.name,
            *(getattr(current, k) if v is None else v for k, v in changes.items()),
            ring_s=args.ring_s if args.ring_s is not None else current.ring_s)
        await repo.set(settings)
        return settings

    settings = _with_db(config, action)
    if settings is None:
        print(f"call forwarding of {args.name}: off", file=out)
        return EXIT_OK
    print(f"call forwarding of {args.name}: {settings.describe()}", file=out)
    for target in (settings.always, settings.busy, settings.no_answer):
        note = _route_note(config, target, args.name)
        if note:
            print(f"  {note.strip(' ()')}", file=out)
    return EXIT_OK


# --- entry points ----------------------------------------------------------------------------


def _main(parser: argparse.ArgumentParser, handler: Callable[[argparse.Namespace, TextIO], int],
          argv: Sequence[str]) -> int:
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return handler(args, sys.stdout)
    except (ConfigError, StorageError, VoicemailCliError) as exc:
        print(f"softswitch: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def voicemail_main(argv: Sequence[str]) -> int:
    """``softswitch voicemail ...``; returns the exit code."""
    handlers = {"list": _cmd_list, "play": _cmd_play, "delete": _cmd_delete}
    parser = build_voicemail_parser()

    def dispatch(args: argparse.Namespace, out: TextIO) -> int:
        return handlers[args.action](args, out)

    return _main(parser, dispatch, argv)


def forward_main(argv: Sequence[str]) -> int:
    """``softswitch user forward ...``; returns the exit code."""
    return _main(build_forward_parser(), _cmd_forward, argv)
