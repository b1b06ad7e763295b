"""Work orders at the desk on a running node (issue 6 point 8): a CTI agent creates a repair
order for a resident and moves it to in progress; after the node stops, the IVR's own
``工单(number)`` query (``ivr_lang/demo/hotline.ivr``) on the node's database reads the
progress the desk set."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from cti.client import CtiClient

from .conftest import ROOT, Node, free_port, run_cli, start_node, stop_node

pytestmark = pytest.mark.interop

PASSWORD = "secret"
RESIDENT = "13800000000"   # 张伟, 3栋2单元501 (storage/hotline_demo.py)


@pytest.fixture
def desk_node(tmp_path: Path) -> Iterator[tuple[Node, int]]:
    data = tmp_path / "data"
    data.mkdir()
    res = run_cli(data, "cti-user", "add", "alice", "--role", "agent", "--agent-id", "a1",
                  "--queues", "*", "--password", PASSWORD)
    assert res.returncode == 0, res.stderr
    cti_port = free_port()
    node = start_node(data, "--cti-port", str(cti_port))
    yield node, cti_port
    stop_node(node)


def _ivr_status_query() -> str:
    script = (ROOT / "ivr_lang" / "demo" / "hotline.ivr").read_text(encoding="utf-8")
    found = re.search(r'^source 工单\(number\) sql "(.+)"$', script, re.M)
    assert found, "the demo script's work-order source moved"
    return found.group(1).replace(":number", "?")


async def test_order_created_at_the_desk_is_what_the_ivr_reads(
        desk_node: tuple[Node, int]) -> None:
    node, cti_port = desk_node
    client = await CtiClient.connect("127.0.0.1", cti_port, reconnect=False)
    try:
        await client.login("alice", PASSWORD)
        await client.subscribe()
        created = await client.request("workorder.create", kind="repair", phone=RESIDENT,
                                       description="卫生间漏水")
        number = created["number"]
        assert created["unit"] == "3栋2单元501" and created["account"] == "100001"
        event = await client.next_event(10.0)
        while event.event != "workorder.created":
            event = await client.next_event(10.0)
        assert event.data["number"] == number
        await client.request("workorder.update", number=number, status="in_progress",
                             progress="维修师傅已出发")
        listed = await client.request("workorder.list", phone=RESIDENT)
        assert number in [o["number"] for o in listed["orders"]]
    finally:
        await client.close()
    assert stop_node(node) == 0
    with sqlite3.connect(node.data_dir / "softswitch.db") as db:
        row = db.execute(_ivr_status_query(), (number,)).fetchone()
    assert row is not None and row[0] == "维修师傅已出发" and row[1] == "3栋2单元501"
