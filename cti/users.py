"""``softswitch cti-user add|list|remove``: manage CTI accounts in the node's database.

Same conventions as ``softswitch user`` (switch/cli.py): ``--config FILE``, ``--data-dir DIR``
and ``--db URL`` pick the database (default: the SQLite file in the data directory); exit
code 0 on success, 1 for an operator error (unknown user, bad role, database down), 2 for a
usage error. The password comes from ``--password`` or, when omitted, from stdin (one line)
or a prompt; it is never printed or logged.

Examples::

    softswitch cti-user add alice --role agent --password PW --queues billing,repair \\
        --agent-id 1001
    softswitch cti-user add boss --role supervisor --password PW --queues '*'
    softswitch cti-user list
    softswitch cti-user remove alice
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence
from typing import TextIO

from cti.roles import Role

__all__ = ["build_parser", "cti_user_main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softswitch cti-user",
                                     description="Manage CTI users (roles and queue scopes).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def storage_flags(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--config", metavar="FILE", help="TOML configuration file")
        sub.add_argument("--data-dir", metavar="DIR", help="node data directory")
        sub.add_argument("--db", metavar="URL", help="database URL")

    add = actions.add_parser("add", help="create a CTI user")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--password", metavar="PW", help="password (default: stdin/prompt)")
    add.add_argument("--queues", metavar="Q1,Q2", default="",
                     help="queues in scope, comma-separated; '*' for all")
    add.add_argument("--agent-id", metavar="ID", help="the ACD agent this user acts as")
    storage_flags(add)
    storage_flags(actions.add_parser("list", help="list CTI users"))
    remove = actions.add_parser("remove", help="delete a CTI user")
    remove.add_argument("name")
    storage_flags(remove)
    return parser


def _read_password(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.password is not None:
        return str(args.password)
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != first:
            raise ValueError("the passwords do not match")
        return first
    return stdin.readline().rstrip("\r\n")


def _db_url(args: argparse.Namespace) -> str:
    from switch.config import load_config

    overrides: dict[str, object] = {}
    if args.data_dir is not None:
        overrides["node.data_dir"] = args.data_dir
    if args.db is not None:
        overrides["db.url"] = args.db
    return load_config(args.config, overrides).db.url


async def _run(args: argparse.Namespace, password: str | None, out: TextIO) -> int:
    from storage import Database
    from storage.cti_models import CtiUserRepository

    db = Database(_db_url(args))
    try:
        await db.start()
        repo = CtiUserRepository(db)
        if args.action == "add":
            assert password is not None
            queues = [q.strip() for q in args.queues.split(",") if q.strip()]
            info = await repo.add(args.name, args.role, password, queues, args.agent_id)
            print(f"added CTI user {info.name} (role {info.role}, queues "
                  f"{','.join(info.queues) or '-'})", file=out)
        elif args.action == "list":
            users = await repo.list()
            rows = [("USER", "ROLE", "QUEUES", "AGENT", "ENABLED")]
            rows += [(u.name, u.role, ",".join(u.queues) or "-", u.agent_id or "-",
                      "yes" if u.enabled else "no") for u in users]
            widths = [max(len(r[i]) for r in rows) for i in range(5)]
            for row in rows:
                print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(),
                      file=out)
            print(f"{len(users)} CTI user(s)", file=out)
        else:
            await repo.remove(args.name)
            print(f"removed CTI user {args.name}", file=out)
        return EXIT_OK
    finally:
        await db.close()


def cti_user_main(argv: Sequence[str], *, stdin: TextIO | None = None,
                  out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Entry point of ``softswitch cti-user``; returns the exit code."""
    from storage import StorageError
    from switch.config import ConfigError

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        password = _read_password(args, stdin or sys.stdin) if args.action == "add" else None
        return asyncio.run(_run(args, password, out))
    except (StorageError, ConfigError, ValueError) as exc:
        print(f"softswitch cti-user: error: {exc}", file=err)
        return EXIT_ERROR
