"""``python -m ivr_lang check|test ...``: the same entry points as ``softswitch ivr``."""

from __future__ import annotations

import sys

from .cli import check_main, test_main


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("check", "test"):
        print("usage: python -m ivr_lang check FILE... | test FILE [options]")
        return 2
    return (check_main if argv[0] == "check" else test_main)(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
