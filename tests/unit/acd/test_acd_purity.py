"""switch/acd is a pure core (STYLE.md §4.2 "Boundaries"): no asyncio, sockets, threads or
clock reads, and no module-level random (randomness is an injected random.Random)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ACD = Path(__file__).resolve().parents[3] / "switch" / "acd"
FORBIDDEN = {"asyncio", "socket", "selectors", "time", "threading", "uvloop", "trio"}
CLOCK_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("date", "today")}
GLOBAL_RANDOM = {"random", "choice", "choices", "randint", "uniform", "expovariate", "shuffle",
                 "sample", "seed", "randrange", "gauss"}


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
            if mod == "random":
                found += [a.name for a in node.names if a.name in GLOBAL_RANDOM]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else None
            if (name, node.func.attr) in CLOCK_CALLS or (name == "random" and
                                                         node.func.attr in GLOBAL_RANDOM):
                found.append(f"{name}.{node.func.attr}")
    return found


@pytest.mark.parametrize("path", sorted(ACD.glob("*.py")), ids=lambda p: p.name)
def test_acd_module_is_pure(path: Path) -> None:
    assert _problems(path) == []


def test_checker_catches_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nimport random\nfrom random import choice\nrandom.random()\n")
    assert len(_problems(bad)) == 3
