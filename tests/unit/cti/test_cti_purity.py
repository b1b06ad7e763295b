"""The CTI pure core (STYLE.md §4.2): framing, session, schemas, roles, the ACD mapping and
the backend Protocol import no asyncio/socket/clock, and neither do the cti modules they
import (checked transitively, so a pure module cannot reach I/O through a helper)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CTI = Path(__file__).resolve().parents[3] / "cti"
PURE = ["protocol.py", "messages.py", "roles.py", "acd_events.py", "backend.py"]
FORBIDDEN = {"asyncio", "socket", "selectors", "time", "threading", "uvloop", "trio", "ssl"}
CLOCK_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("date", "today"),
               ("time", "time"), ("time", "monotonic")}


def _imports(path: Path) -> tuple[list[str], list[str]]:
    """(forbidden things found, cti modules imported)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad, local = [], []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and (owner.id, node.func.attr) in CLOCK_CALLS:
                bad.append(f"{owner.id}.{node.func.attr}()")
        for name in names:
            if name.split(".")[0] in FORBIDDEN:
                bad.append(name)
            if name.startswith("cti."):
                local.append(name.split(".")[1] + ".py")
    return bad, local


@pytest.mark.parametrize("name", PURE)
def test_pure_module_and_its_cti_imports(name: str) -> None:
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        bad, local = _imports(CTI / current)
        assert bad == [], f"{current} (reached from {name}) uses {bad}"
        todo.extend(local)


def test_checker_sees_io(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import asyncio\nfrom cti.server import CtiServer\nimport time\n"
                      "t = time.monotonic()\n")
    bad, local = _imports(sample)
    assert bad == ["asyncio", "time", "time.monotonic()"] and local == ["server.py"]
