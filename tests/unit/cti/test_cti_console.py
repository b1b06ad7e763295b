"""The terminal console, driven through its line interface in-process."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable

from cti_helpers import PASSWORD

from cti.client import CtiClient
from cti.config import CtiConfig
from cti.console import Console, console_main, run_console
from cti.demo import DEMO_PASSWORD, run_demo
from cti.fake import FakeBackend
from cti.server import CtiServer

Connect = Callable[..., Awaitable[CtiClient]]


async def test_agent_console_session(server: CtiServer, connect: Connect,
                                     backend: FakeBackend) -> None:
    out = io.StringIO()
    console = Console(await connect(), out)
    for line in (f"login alice {PASSWORD}", "agent 1001", "state notready lunch",
                 "state ready"):
        assert await console.handle(line)
    await console.wait_for_output("agent.ready", out.getvalue)
    call_id = await backend.inbound_call("13800000001", "billing", tags={"intent": "bill"})
    await console.wait_for_output("=== SCREEN POP", out.getvalue)
    text = out.getvalue()
    assert "Wang Wei" in text and "[VIP]" in text and "unpaid bills: 1" in text
    assert "ivr: intent=bill" in text
    assert console.call_id == call_id
    for line in ("answer", "hold", "retrieve", "data account=A-1", "getdata", "dtmf 1#"):
        assert await console.handle(line)
    assert '"account": "A-1"' in out.getvalue()
    await console.handle("transfer 8001")
    await console.wait_for_output("agent.wrapup", out.getvalue)
    assert console.call_id is None
    await console.handle("hangup")
    assert "no current call" in out.getvalue()
    await console.handle("listen a2")
    assert "forbidden" in out.getvalue()
    await console.handle("bogus")
    assert "unknown command 'bogus'" in out.getvalue()
    await console.handle("state")
    assert "usage error" in out.getvalue()
    await console.handle("help")
    assert "force-hangup CALL" in out.getvalue()
    assert not await console.handle("quit")
    await console.close()


async def test_supervisor_console(server: CtiServer, connect: Connect,
                                  backend: FakeBackend) -> None:
    agent = await connect("alice")
    await agent.agent_login("1001")
    out = io.StringIO()
    console = Console(await connect(), out)
    await console.handle(f"login sup {PASSWORD}")
    await console.handle("listen a1")
    assert "monitor mon-" in out.getvalue()
    await console.handle("mode barge")
    await console.handle("stop")
    await console.handle("force-state a1 ready")
    await console.wait_for_output("agent.ready agent_id=a1", out.getvalue)
    await backend.inbound_call("13800000002", "billing")
    await console.handle("waiting billing")
    await console.handle("queues")
    await console.handle("stats")
    await console.handle("snapshot")
    text = out.getvalue()
    assert "monitor mode barge" in text and "monitor stopped" in text
    assert "forced a1 to ready" in text
    assert "queue billing" in text and "agent a1" in text
    await console.close()


async def test_run_console_reads_lines_until_eof(server: CtiServer) -> None:
    client = await CtiClient.connect("127.0.0.1", server.port)
    lines = iter([f"login wall {PASSWORD}\n", "stats\n", ""])

    async def next_line() -> str:
        return next(lines)

    out = io.StringIO()
    assert await run_console(client, next_line, out) == 0
    assert "logged in as wall (wallboard)" in out.getvalue()
    await client.close()


def test_console_main_reports_connection_failure() -> None:
    assert console_main(["--port", "1"], stdin=io.StringIO(""), stdout=io.StringIO()) == 1
    assert console_main(["--bogus"]) == 2


async def test_demo_server_with_console() -> None:
    stop = asyncio.Event()
    started: asyncio.Future[CtiServer] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(run_demo(CtiConfig(stats_interval_s=0.0), 0.05, stop,
                                          started))
    server = await started
    out = io.StringIO()
    client = await CtiClient.connect("127.0.0.1", server.port)
    console = Console(client, out)
    await console.handle(f"login alice {DEMO_PASSWORD}")
    await console.handle("agent 1001")
    await console.handle("state ready")
    await console.wait_for_output("=== SCREEN POP", out.getvalue)
    assert "resident:" in out.getvalue()
    await console.handle("answer")
    await console.wait_for_output("call.established", out.getvalue)
    await console.close()
    await client.close()
    stop.set()
    assert await task is server
