"""Output shared by the benchmarks: every one prints its table, then its JSON document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["emit_json"]


def emit_json(doc: dict[str, Any], path: str | None) -> None:
    """Write ``doc`` to ``path``, or print it after the table when no path is given."""
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    if path:
        Path(path).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
