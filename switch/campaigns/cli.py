"""``softswitch campaign create|start|pause|resume|stop|status|report|list``.

The commands work on the database directly, like ``softswitch user``: the node need not run.
``start``, ``pause``, ``resume`` and ``stop`` only change the stored state; the running
node's dialer notices the change (``campaigns.updated_at``) and acts on it. ``status``
shows the counts per outcome with a progress bar; ``report`` prints the per-outcome table
and writes one CSV line per contact with ``--csv FILE``.

Examples::

    softswitch campaign create 3栋停水 --kind outage --building 3栋 --area 3栋 --what 水 \\
        --date 2026-12-02 --start 09:00 --end 17:00 --hours "daily 09:00-20:00" \\
        --calendar work_hours
    softswitch campaign create 催缴-12月 --kind arrears --overdue-days 30 --lines 8 --cps 2 \\
        --retry busy=300:3 --retry no_answer=1800:2
    softswitch campaign create 名单 --kind arrears --csv list.csv --all-or-nothing
    softswitch campaign start 催缴-12月
    softswitch campaign status 催缴-12月

Exit codes: 0 success, 1 an operator error (bad input, unknown campaign, a command not
allowed in the campaign's state, database down), 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from storage.campaign_repository import CampaignRepository
from storage.db import Database, StorageError
from switch.campaigns.csv_import import CsvImportError, parse_contacts_csv
from switch.campaigns.messages import REQUIRED_FIELDS, check_campaign_fields, on_answer
from switch.campaigns.model import (
    CallingWindow,
    Campaign,
    CampaignCommand,
    CampaignError,
    CampaignKind,
    CampaignState,
    Contact,
    Limits,
    NewContact,
    Outcome,
    Progress,
    RetryPolicy,
    RetryRule,
    phone_key,
)
from switch.campaigns.sources import arrears_residents, building_residents, work_order_resident
from switch.campaigns.window import compile_window
from switch.config import Config, ConfigError, load_config

logger = logging.getLogger(__name__)

__all__ = ["build_parser", "campaign_main", "progress_bar"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
KIND_NAMES = {"outage": CampaignKind.OUTAGE_NOTICE, "arrears": CampaignKind.ARREARS_REMINDER,
              "survey": CampaignKind.REPAIR_SURVEY}
KIND_NAMES.update({k.value: k for k in CampaignKind})
_COMMANDS = {"start": CampaignCommand.START, "pause": CampaignCommand.PAUSE,
             "resume": CampaignCommand.RESUME, "stop": CampaignCommand.STOP}


class CampaignCliError(CampaignError):
    """An operator error of the campaign command."""


def progress_bar(fraction: float, width: int = 30) -> str:
    """``[############..................]  40%``."""
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}%"


def _storage_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--data-dir", metavar="DIR", help="node data directory (default ./data)")
    parser.add_argument("--db", metavar="URL", help="database URL")


def _create_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = actions.add_parser("create", help="create a campaign (DRAFT)")
    p.add_argument("name")
    p.add_argument("--kind", required=True, choices=sorted(KIND_NAMES))
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--building", metavar="PREFIX", help="residents whose unit starts so")
    src.add_argument("--overdue-days", metavar="N", type=int,
                     help="residents with bills unpaid more than N days past due")
    src.add_argument("--work-order", metavar="NUMBER", help="the resident of a closed order")
    src.add_argument("--csv", metavar="FILE", help="contacts from a CSV file")
    p.add_argument("--all-or-nothing", action="store_true",
                   help="reject the whole CSV file when one row is bad")
    p.add_argument("--today", metavar="YYYY-MM-DD", help="date for --overdue-days")
    p.add_argument("--hours", metavar="RULE", action="append",
                   help="calling hours, e.g. 'mon-fri 09:00-20:00' (repeatable)")
    p.add_argument("--calendar", metavar="NAME", default="",
                   help="node calendar for holidays and make-up working days")
    p.add_argument("--timezone", metavar="TZ", default="Asia/Shanghai")
    p.add_argument("--lines", metavar="N", type=int, default=4, help="concurrent lines")
    p.add_argument("--cps", metavar="X", type=float, default=1.0, help="calls per second")
    p.add_argument("--burst", metavar="N", type=int, default=1)
    p.add_argument("--retry", metavar="OUTCOME=DELAY:MAX", action="append", default=[],
                   help="busy/no_answer/failed retry: delay seconds and maximum attempts")
    p.add_argument("--no-retry-interrupted", action="store_true",
                   help="never retry a call cut by a crash (the default)")
    p.add_argument("--retry-interrupted", action="store_true",
                   help="retry a call cut by a crash by the failed rule (may call twice)")
    p.add_argument("--ring-timeout", metavar="S", type=float, default=0.0,
                   help="seconds a call rings before it counts as no answer "
                        "(default: the node's calls.no_answer_timeout_s)")
    p.add_argument("--ivr", metavar="FILE", help="IVR program to run on answer")
    p.add_argument("--trunk", metavar="NAME", default="", help="trunk for the calls")
    for name in ("area", "what", "date", "start", "end"):
        p.add_argument(f"--{name}", help=f"message field {{{name}}} (outage notice)")
    _storage_flags(p)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``softswitch campaign``."""
    parser = argparse.ArgumentParser(prog="softswitch campaign",
                                     description="Outbound campaigns.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    _create_parser(actions)
    for name in (*_COMMANDS, "status", "report"):
        p = actions.add_parser(name, help=f"{name} a campaign" if name in _COMMANDS
                               else f"{name} of a campaign")
        p.add_argument("name")
        if name == "report":
            p.add_argument("--csv", metavar="FILE", help="write one line per contact")
        if name == "status":
            p.add_argument("--width", type=int, default=30, help="progress bar width")
            p.add_argument("--watch", metavar="S", type=float,
                           help="repeat every S seconds until the campaign ends")
            p.add_argument("--follow", action="store_true",
                           help="follow a running campaign: the progress bar and the counts "
                                "per outcome redrawn in place every second (or --watch S) "
                                "until it ends")
        _storage_flags(p)
    _storage_flags(actions.add_parser("list", help="list campaigns"))
    return parser


def _config(args: argparse.Namespace) -> Config:
    overrides = {key: value for key, value in (("node.data_dir", args.data_dir),
                                               ("db.url", args.db)) if value is not None}
    return load_config(args.config, overrides)


def _retry(specs: Sequence[str], interrupted: bool) -> RetryPolicy:
    base = RetryPolicy()
    rules = {"busy": base.busy, "no_answer": base.no_answer, "failed": base.failed}
    for spec in specs:
        outcome, _, value = spec.partition("=")
        delay, _, most = value.partition(":")
        key = outcome.strip().replace("-", "_")
        if key not in rules:
            raise CampaignCliError(f"--retry {spec!r}: expected busy, no_answer or failed")
        try:
            rules[key] = RetryRule(float(delay), int(most))
        except ValueError:
            raise CampaignCliError(f"--retry {spec!r}: expected OUTCOME=DELAY_S:MAX_ATTEMPTS, "
                                   "e.g. busy=300:3") from None
    return RetryPolicy(rules["busy"], rules["no_answer"], rules["failed"], interrupted)


def _check_ivr(path: str) -> str:
    from ivr_lang import check_source, has_errors, render_all

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignCliError(f"--ivr: cannot read {path}: {exc}") from None
    _program, diags = check_source(text, path)
    if has_errors(diags):
        raise CampaignCliError(f"--ivr: {path} has errors:\n{render_all(diags, {path: text})}")
    return str(Path(path).resolve())


def _campaign(args: argparse.Namespace, config: Config) -> Campaign:
    kind = KIND_NAMES[args.kind]
    retry = _retry(args.retry, args.retry_interrupted and not args.no_retry_interrupted)
    if args.ring_timeout < 0:
        raise CampaignCliError("--ring-timeout must be >= 0")
    params = {n: getattr(args, n) for n in ("area", "what", "date", "start", "end")
              if getattr(args, n)}
    if kind is CampaignKind.OUTAGE_NOTICE and args.building and "area" not in params:
        params["area"] = args.building
    window = CallingWindow(tuple(args.hours or ("mon-fri 09:00-20:00",)), args.timezone,
                           args.calendar)
    compile_window(window, config.routing.calendars if config.routing else None)
    if args.trunk and args.trunk not in config.trunks:
        raise CampaignCliError(f"--trunk: no trunk called {args.trunk!r} (configured: "
                               f"{', '.join(config.trunks) or 'none'})")
    ivr = _check_ivr(args.ivr) if args.ivr else ""
    if not ivr:
        check_campaign_fields(kind, params)
    source = next(f"{flag} {getattr(args, flag)}" for flag in
                  ("building", "overdue_days", "work_order", "csv")
                  if getattr(args, flag) is not None)
    return Campaign(name=args.name, kind=kind, window=window,
                    limits=Limits(args.lines, args.cps, args.burst),
                    retry=retry, params=params,
                    ivr_program=ivr, trunk=args.trunk, source=source.replace("_", "-"),
                    ring_timeout_s=args.ring_timeout)


async def _contacts(args: argparse.Namespace, db: Database, campaign: Campaign,
                    out: TextIO) -> list[NewContact]:
    if args.csv is not None:
        try:
            data = Path(args.csv).read_bytes()
        except OSError as exc:
            raise CampaignCliError(f"--csv: cannot read {args.csv}: {exc}") from None
        try:
            result = parse_contacts_csv(data, required=REQUIRED_FIELDS[campaign.kind],
                                        all_or_nothing=args.all_or_nothing, source=args.csv)
        except CsvImportError as exc:
            for error in exc.errors:
                print(f"{args.csv}: {error}", file=out)
            raise
        for error in result.errors:
            print(f"{args.csv}: {error} (skipped)", file=out)
        return result.contacts
    if args.building is not None:
        return await building_residents(db, args.building)
    if args.work_order is not None:
        return [await work_order_resident(db, args.work_order)]
    today = (dt.date.fromisoformat(args.today) if args.today
             else dt.datetime.now(ZoneInfo(campaign.window.timezone)).date())
    return await arrears_residents(db, min_days=args.overdue_days, today=today)


def _check_messages(campaign: Campaign, contacts: Sequence[NewContact]) -> None:
    """Render every contact's message now, so a bad field fails at create, not on a call."""
    problems = []
    for i, c in enumerate(contacts):
        try:
            on_answer(campaign, Contact(i, c.name, c.phone, phone_key(c.phone), c.fields))
        except CampaignError as exc:
            problems.append(f"{c.name} {c.phone}: {exc}")
    if problems:
        raise CampaignCliError("cannot build the message for " + "; ".join(problems[:10])
                               + (f" (and {len(problems) - 10} more)" if len(problems) > 10
                                  else ""))


async def _cmd_create(args: argparse.Namespace, repo: CampaignRepository, config: Config,
                      out: TextIO) -> int:
    campaign = _campaign(args, config)
    contacts = await _contacts(args, repo.db, campaign, out)
    if not contacts:
        raise CampaignCliError("the contact list is empty: nothing to create")
    _check_messages(campaign, contacts)
    created = await repo.create(campaign, contacts)
    print(f"created campaign {created.name} ({created.kind.value}, {len(contacts)} "
          f"contact(s), {created.state.value})", file=out)
    return EXIT_OK


async def _cmd_state(args: argparse.Namespace, repo: CampaignRepository, config: Config,
                     out: TextIO) -> int:
    state = await repo.command(args.name, _COMMANDS[args.action])
    print(f"campaign {args.name}: {state.value}", file=out)
    return EXIT_OK


def _progress_lines(progress: Progress, width: int) -> list[str]:
    lines = [f"{progress_bar(progress.fraction_done, width)}  {progress.done}/{progress.total}"
             f" done, {progress.dialing} dialing, {progress.pending} pending"
             + (f", {progress.skipped} skipped (opted out)" if progress.skipped else "")]
    for outcome in Outcome:
        lines.append(f"  {outcome.value:<13} {progress.attempts.get(outcome, 0):>7} attempt(s)"
                     f" {progress.finals.get(outcome, 0):>7} final")
    return lines


_sleep = asyncio.sleep
"""The pause between ``status --watch`` rounds (a seam for tests)."""
_ENDED = (CampaignState.DRAFT, CampaignState.STOPPED, CampaignState.COMPLETED)


async def _cmd_status(args: argparse.Namespace, repo: CampaignRepository, config: Config,
                      out: TextIO) -> int:
    if args.watch is not None and args.watch < 0.2:
        raise CampaignCliError("--watch needs at least 0.2 seconds")
    interval = args.watch if args.watch is not None else (1.0 if args.follow else None)
    redraw = args.follow and out.isatty()
    drawn = 0
    first: tuple[float, int] | None = None
    while True:
        campaign = await repo.get(args.name)
        progress = await repo.progress(campaign)
        lines = [f"campaign {campaign.name} ({campaign.kind.value}): {campaign.state.value}",
                 *_progress_lines(progress, args.width)]
        if args.follow:
            now, attempts = time.monotonic(), sum(progress.attempts.values())
            first = first or (now, attempts)
            rate = (attempts - first[1]) / (now - first[0]) if now > first[0] else 0.0
            lines.append(f"  {attempts} attempt(s), {rate:.1f}/s while followed")
        if redraw and drawn:
            out.write(f"\x1b[{drawn}F\x1b[J")  # back to the first line, clear below
        for line in lines:
            print(line, file=out)
        drawn = len(lines)
        if interval is None or campaign.state in _ENDED:
            return EXIT_OK
        out.flush()
        await _sleep(interval)   # the node updates the counts meanwhile


async def _cmd_report(args: argparse.Namespace, repo: CampaignRepository, config: Config,
                      out: TextIO) -> int:
    campaign = await repo.get(args.name)
    progress = await repo.progress(campaign)
    rows = await repo.report(campaign)
    print(f"campaign {campaign.name} ({campaign.kind.value}, {campaign.source}): "
          f"{campaign.state.value}", file=out)
    print(f"{'OUTCOME':<13} {'ATTEMPTS':>8} {'CONTACTS':>8}", file=out)
    for outcome in Outcome:
        print(f"{outcome.value:<13} {progress.attempts.get(outcome, 0):>8} "
              f"{progress.finals.get(outcome, 0):>8}", file=out)
    print(f"{'total':<13} {sum(progress.attempts.values()):>8} {progress.total:>8}", file=out)
    ratings = [r.rating for r in rows if r.rating is not None]
    if ratings:
        print(f"ratings: {len(ratings)}, average {sum(ratings) / len(ratings):.2f}", file=out)
    if args.csv:
        try:
            with open(args.csv, "w", encoding="utf-8-sig", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["name", "phone", "status", "attempts", "last_outcome",
                                 "rating", "account", "amount", "due_date", "unit",
                                 "work_order"])
                for r in rows:
                    writer.writerow([r.name, r.phone, r.status, r.attempts, r.last_outcome,
                                     "" if r.rating is None else r.rating,
                                     *(r.fields.get(k, "") for k in (
                                         "account", "amount", "due_date", "unit",
                                         "work_order"))])
        except OSError as exc:
            raise CampaignCliError(f"--csv: cannot write {args.csv}: {exc}") from None
        print(f"wrote {len(rows)} contact(s) to {args.csv}", file=out)
    return EXIT_OK


async def _cmd_list(args: argparse.Namespace, repo: CampaignRepository, config: Config,
                    out: TextIO) -> int:
    campaigns = await repo.list_campaigns()
    for c in campaigns:
        print(f"{c.name}  {c.kind.value}  {c.state.value}  {c.source}", file=out)
    print(f"{len(campaigns)} campaign(s)", file=out)
    return EXIT_OK


_HANDLERS = {"create": _cmd_create, "status": _cmd_status, "report": _cmd_report,
             "list": _cmd_list, **{name: _cmd_state for name in _COMMANDS}}


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    config = _config(args)
    db = Database(config.db.url)
    try:
        await db.start()
        return await _HANDLERS[args.action](args, CampaignRepository(db), config, out)
    finally:
        await db.close()


def campaign_main(argv: Sequence[str], out: TextIO | None = None,
                  err: TextIO | None = None) -> int:
    """``softswitch campaign ARGS``; returns the exit code (module docstring)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(list(argv))
    except SystemExit as exc:  # --help and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return asyncio.run(_run(args, out))
    except (CampaignError, ConfigError, StorageError, ValueError) as exc:
        print(f"softswitch campaign: error: {exc}", file=err)
        return EXIT_ERROR
