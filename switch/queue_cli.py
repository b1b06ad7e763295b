"""``softswitch queue stats [QUEUE] [--interval 15m]``: KPIs from the stored queue log.

Every figure comes from the stored queue log alone (``switch.acd.log`` Rule 2), through
:mod:`switch.acd.kpi`, so the report says the same as the live figures: the ``queue_log``
table plus the entries a node left in its outage spool (``switch.queue_log`` Rule 2). The
node need not run: the command opens the database like ``softswitch user`` does (SQLite in
WAL mode lets both use the file). Service level is the default variant of
:class:`~switch.acd.kpi.SlVariant` (answered within T / (answered + abandoned after T)),
T = ``--threshold`` seconds.

Exit codes: 0 success, 1 a bad config or an unreachable database, 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import re
import sys
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from storage.acd_log_repository import QueueLogRepository
from storage.db import Database, StorageError
from switch.acd.kpi import AgentKpi, QueueKpi, agent_kpis, interval_kpis, queue_kpis_by_queue
from switch.acd.log import QueueLogEntry
from switch.config import ConfigError, load_config
from switch.queue_log import SPOOL_NAME, read_spool

logger = logging.getLogger(__name__)

__all__ = ["parse_interval", "queue_main", "render_stats"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> float:
    """``"15m"`` -> 900.0 (units s, m, h, d; a bare number is seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration like 15m or 1h, got {text!r}")
    return float(match[1]) * _UNITS[match[2] or "s"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _width(text: str) -> int:
    """Terminal columns of ``text``: CJK (East Asian wide/full-width) characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(rows: list[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [c + " " * (w - _width(c)) for c, w in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip(), file=out)


_QUEUE_HEAD = ("QUEUE", "OFFERED", "ANSWERED", "ABANDONED", "TIMEOUT", "REFUSED", "SL",
               "ASA_S", "AHT_S", "ABANDON", "LONGEST_S")


def _queue_row(label: str, k: QueueKpi) -> tuple[str, ...]:
    return (label, str(k.offered), str(k.answered), str(k.abandoned), str(k.timed_out),
            str(k.refused), _pct(k.service_level), _secs(k.asa_s), _secs(k.aht_s),
            _pct(k.abandon_rate), _secs(k.longest_wait_s))


def render_stats(entries: Sequence[QueueLogEntry], out: TextIO, *, queue: str | None = None,
                 interval_s: float | None = None, threshold_s: float = 20.0) -> None:
    """Print the queue and agent tables for ``entries``."""
    per_queue = queue_kpis_by_queue(entries, threshold_s=threshold_s)
    if queue is not None:
        per_queue = {q: k for q, k in per_queue.items() if q == queue}
    rows = [_QUEUE_HEAD] + [_queue_row(q, k) for q, k in per_queue.items()]
    _table(rows, out)
    if interval_s is not None:
        for name in per_queue:
            print(f"\n{name} per {interval_s:g} s (UTC):", file=out)
            buckets = interval_kpis(entries, interval_s, queue=name, threshold_s=threshold_s)
            rows = [("START", *_QUEUE_HEAD[1:])]
            for start, kpi in buckets.items():
                label = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%d %H:%M")
                rows.append(_queue_row(label, kpi))
            _table(rows, out)
    agents = agent_kpis(entries, now=time.time())
    print(file=out)
    rows = [("AGENT", "ANSWERED", "MISSED", "AHT_S", "OCCUPANCY")]
    rows += [(a, str(k.answered), str(k.missed), _secs(k.aht_s), _pct(k.occupancy))
             for a, k in sorted(agents.items())]
    _table(rows, out)


def _json_stats(entries: Sequence[QueueLogEntry], queue: str | None,
                threshold_s: float) -> dict[str, Any]:
    def kpi(k: QueueKpi) -> dict[str, Any]:
        d = asdict(k)
        d["sl_variant"] = k.sl_variant.value
        return d

    def agent(k: AgentKpi) -> dict[str, Any]:
        return {**asdict(k), "aht_s": k.aht_s, "occupancy": k.occupancy}

    per_queue = queue_kpis_by_queue(entries, threshold_s=threshold_s)
    return {"queues": {q: kpi(k) for q, k in per_queue.items() if queue in (None, q)},
            "agents": {a: agent(k) for a, k in agent_kpis(entries, now=time.time()).items()}}


async def _load(url: str, queue: str | None, since: float | None,
                spool: Path) -> list[QueueLogEntry]:
    """The stored entries, plus those a node left in its outage spool (not yet written:
    the node writes them at its next start), without duplicates, in time order."""
    db = Database(url)
    try:
        repo = QueueLogRepository(db)
        await repo.ensure_schema()
        entries = await repo.entries(since=since, queue=queue)
        spooled = [(u, e) for u, e in read_spool(spool)
                   if (since is None or e.time >= since)
                   and (queue is None or e.queue in (queue, "NONE"))]
        if spooled:
            stored = await repo.stored([u for u, _ in spooled])
            entries += [e for u, e in spooled if u not in stored]
            entries.sort(key=lambda e: e.time)
        return entries
    finally:
        await db.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softswitch queue",
                                     description="ACD queue reports from the queue log.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    stats = actions.add_parser("stats", help="KPIs per queue and agent")
    stats.add_argument("queue", nargs="?", help="only this queue")
    stats.add_argument("--interval", type=parse_interval, metavar="DURATION",
                       help="also per interval, e.g. 15m")
    stats.add_argument("--since", type=parse_interval, metavar="DURATION",
                       help="only calls of the last DURATION, e.g. 24h")
    stats.add_argument("--threshold", type=float, default=20.0, metavar="S",
                       help="service-level threshold in seconds (default 20)")
    stats.add_argument("--json", action="store_true", help="JSON instead of tables")
    stats.add_argument("--config", metavar="FILE", help="TOML configuration file")
    stats.add_argument("--data-dir", metavar="DIR", help="node data directory")
    stats.add_argument("--db", metavar="URL", help="database URL")
    return parser


def queue_main(argv: Sequence[str], out: TextIO | None = None) -> int:
    """Entry point of ``softswitch queue``; returns the exit code."""
    out = out or sys.stdout
    args = build_parser().parse_args(list(argv))
    overrides = {k: v for k, v in (("node.data_dir", args.data_dir), ("db.url", args.db))
                 if v is not None}
    try:
        config = load_config(args.config, overrides)
        since = time.time() - args.since if args.since else None
        spool = config.node.data_dir / SPOOL_NAME
        entries = asyncio.run(_load(config.db.url, args.queue, since, spool))
    except (ConfigError, StorageError) as exc:
        print(f"softswitch: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(_json_stats(entries, args.queue, args.threshold), indent=2,
                         ensure_ascii=False), file=out)
    else:
        render_stats(entries, out, queue=args.queue, interval_s=args.interval,
                     threshold_s=args.threshold)
    return 0
