"""The pure cores must not do I/O or read the clock (DESIGN.md "Three rings").

Time is an argument (`now`) and sockets live in the async shell, so that every protocol
machine can be driven by a test with a fake clock. This test reads the source of each pure
module and fails if it imports asyncio, socket, selectors or time, or calls datetime.now().
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PURE_PACKAGES = ["signaling", "dsp", "ivr_lang", "switch/acd"]
PURE_EXCLUDES = {"signaling/aio", "ivr_lang/live.py", "ivr_lang/runtime.py"}
PURE_FILES = [
    "switch/media/rtp.py",
    "switch/media/rtcp.py",
    "switch/media/jitter.py",
    "switch/media/rfc4733.py",
    "switch/media/digits.py",
    "switch/media/latch.py",
    "switch/media/ports.py",
    "switch/media/dtmf_info.py",
    "switch/media/readout.py",
    "cti/protocol.py",
    "cti/messages.py",
    "cti/roles.py",
    "cti/backend.py",
    "cti/acd_events.py",
    "switch/router.py",
    "switch/calendar.py",
    "switch/events.py",
    "switch/routing_config.py",
    "switch/campaigns/model.py",
    "switch/campaigns/window.py",
    "switch/campaigns/scheduler.py",
    "switch/campaigns/csv_import.py",
    "switch/trunks/config.py",
    "switch/trunks/numbers.py",
    "switch/trunks/policy.py",
    "switch/trunks/registration.py",
]
FORBIDDEN_MODULES = {"asyncio", "socket", "selectors", "time", "threading", "trio", "uvloop"}
FORBIDDEN_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("date", "today")}


def _pure_sources() -> list[Path]:
    files: list[Path] = []
    for pkg in PURE_PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if any(rel == ex or rel.startswith(ex + "/") for ex in PURE_EXCLUDES):
                continue
            files.append(path)
    files.extend(ROOT / f for f in PURE_FILES if (ROOT / f).exists())
    return files


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{path.name}:{node.lineno} imports {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            mod = (node.module or "").split(".")[0]
            if node.level == 0 and mod in FORBIDDEN_MODULES:
                found.append(f"{path.name}:{node.lineno} imports from {node.module}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", None)
            if (name, node.func.attr) in FORBIDDEN_CALLS:
                found.append(f"{path.name}:{node.lineno} reads the clock ({name}.{node.func.attr})")
    return found


def test_pure_modules_found() -> None:
    assert any(p.parent.name == "signaling" for p in _pure_sources())


@pytest.mark.parametrize("path", _pure_sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_pure_module_does_no_io(path: Path) -> None:
    assert _violations(path) == []


def test_checker_catches_violations(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom asyncio import sleep\nimport datetime\nx = datetime.now()\n")
    assert len(_violations(bad)) == 3
