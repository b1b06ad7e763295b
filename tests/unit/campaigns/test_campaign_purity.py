"""The campaign core is pure (STYLE.md §4.2 "Boundaries"): model, window, scheduler,
messages and the CSV import read no clock, open no socket or database, start no task."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[3] / "switch" / "campaigns"
PURE = ["__init__.py", "model.py", "window.py", "scheduler.py", "messages.py",
        "csv_import.py"]
FORBIDDEN = {"asyncio", "socket", "selectors", "time", "threading", "uvloop", "trio",
             "storage", "sqlalchemy", "aiosqlite", "random"}
CLOCK_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("date", "today"),
               ("dt", "now"), ("time", "time")}


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in FORBIDDEN]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            mod = (node.module or "").split(".")[0]
            if mod in FORBIDDEN:
                found.append(mod)
            if node.module in ("switch.campaigns.sources", "switch.campaigns.cli"):
                found.append(node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Attribute):   # dt.datetime.now()
                owner_name = owner.attr
            else:
                owner_name = owner.id if isinstance(owner, ast.Name) else ""
            if (owner_name, node.func.attr) in CLOCK_CALLS:
                found.append(f"{owner_name}.{node.func.attr}")
    return found


@pytest.mark.parametrize("name", PURE)
def test_campaign_core_module_is_pure(name: str) -> None:
    assert _problems(PKG / name) == []


def test_checker_catches_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom storage.db import Database\nimport datetime as dt\n"
                   "dt.datetime.now()\n")
    assert _problems(bad) == ["time", "storage", "datetime.now"]
