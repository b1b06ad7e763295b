"""Async edge: data-source kinds, real timeouts, HTTP fetch, reload rules, version pinning."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest

from ivr_lang import ast as A
from ivr_lang.datasources import DataSources, http_url
from ivr_lang.interpreter import DataSourceError
from ivr_lang.parser import parse
from ivr_lang.runtime import ScriptStore, run_call, urllib_fetcher, with_timeout

SCRIPT = """flow t:
  timeout 5s
  retries 1
  operator q

queue q
source slow(x) python "slow"
source order(n) http "http://127.0.0.1:{port}/orders/{n}"

step a:
  lookup r = slow("1") timeout 0.2s:
    on error:
      say "超时"
      hangup
  say "{r}"
  hangup
"""


def _source(program: A.Program, name: str) -> A.SourceDecl:
    return next(s for s in program.sources if s.name.text == name)


class LiveishCall:
    """A CallHandle whose actions really await (like a live channel would)."""

    caller = "13800000000"
    called = "4008000000"

    def __init__(self) -> None:
        self.said: list[str] = []
        self.gate = asyncio.Event()

    def local_time(self) -> dt.datetime:
        return dt.datetime(2026, 11, 30, 10, 0)

    async def say(self, text: str, *, bargein: bool) -> str:
        self.said.append(text)
        await asyncio.sleep(0)
        return ""

    async def play(self, file: str, *, bargein: bool) -> str:
        return ""

    async def collect(self, *, max_digits: int, timeout_s: float, interdigit_s: float,
                      end_keys: str, first: str = "") -> str:
        await self.gate.wait()
        return "1"

    async def transfer(self, target: str, *, mode: str, timeout_s: float) -> str:
        return "connected"

    async def enqueue(self, queue: str, *, skill: str | None, priority: int,
                      maxwait_s: float | None, tags: dict[str, Any]) -> str:
        return "answered"

    async def record(self, *, maxlen_s: float, beep: bool, end_keys: str,
                     mailbox: str | None) -> str | None:
        return None

    async def tag(self, key: str, value: Any) -> None:
        return None

    async def hangup(self) -> None:
        self.said.append("<hangup>")


async def test_python_source_slower_than_timeout_takes_error_branch() -> None:
    store = ScriptStore()
    assert store.load("t", SCRIPT.replace("{port}", "8080"), "t.ivr") == []

    async def slow(x: str) -> str:
        await asyncio.sleep(5)
        return x

    call = LiveishCall()
    result = await asyncio.wait_for(
        run_call(store, "t", call, DataSources(python={"slow": slow})), 3)
    assert call.said == ["超时", "<hangup>"] and result.reason == "hangup"

    async def fast(x: str) -> str:
        return "快" + x

    call = LiveishCall()
    await run_call(store, "t", call, DataSources(python={"fast": fast, "slow": fast}))
    assert call.said == ["快1", "<hangup>"]


async def test_sync_python_function_and_exceptions_become_data_source_errors() -> None:
    p = parse(SCRIPT, "t.ivr")
    src = _source(p, "slow")
    sources = DataSources()
    sources.register("slow", lambda x: {"v": x})
    assert await sources.lookup(src, ["1"], 1.0) == {"v": "1"}
    sources.register("slow", lambda x: 1 / 0)
    with pytest.raises(DataSourceError, match="ZeroDivisionError"):
        await sources.lookup(src, ["1"], 1.0)
    with pytest.raises(DataSourceError, match="no Python function"):
        await DataSources().lookup(src, ["1"], 1.0)
    with pytest.raises(DataSourceError, match="takes 1"):
        await sources.lookup(src, [], 1.0)


async def test_sql_source_through_injected_runner() -> None:
    p = parse('source s(account) sql "SELECT owed FROM bills WHERE account = :account"\n'
              'step a:\n  hangup\n', "t.ivr")
    seen: list[tuple[str, dict[str, Any]]] = []

    async def sql(query: str, params: Any) -> list[dict[str, Any]]:
        seen.append((query, dict(params)))
        return [{"owed": 1.5}] if params["account"] == "1" else []

    sources = DataSources(sql=sql)
    assert await sources.lookup(p.sources[0], ["1"], 1.0) == {"owed": 1.5}
    assert await sources.lookup(p.sources[0], ["2"], 1.0) is None
    assert seen[0] == ("SELECT owed FROM bills WHERE account = :account", {"account": "1"})


async def test_http_source_with_urllib_fetcher_on_loopback() -> None:
    requests: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ")[1].decode()
        requests.append(path)
        if path.endswith("/bad"):
            body, status = b"not json", b"200 OK"
        else:
            body, status = json.dumps({"status": "done", "path": path}).encode(), b"200 OK"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                     b"Connection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        p = parse(SCRIPT.replace("{port}", str(port)), "t.ivr")
        src = _source(p, "order")
        assert http_url(src, {"n": "a/b c"}).endswith("/orders/a%2Fb%20c")
        lookup = with_timeout(DataSources(http=urllib_fetcher))
        got = await lookup(src, ["2026 11"], 2.0)
        assert got == {"status": "done", "path": "/orders/2026%2011"}
        with pytest.raises(DataSourceError):
            await lookup(src, ["bad"], 2.0)
    finally:
        server.close()
        await server.wait_closed()
    assert len(requests) == 2


async def test_reload_keeps_running_version_and_rejects_bad_scripts() -> None:
    store = ScriptStore()
    v1 = 'flow t:\n  timeout 5s\n  retries 1\n  operator q\nqueue q\n' \
         'menu m:\n  prompt "一请按1"\n  1:\n    say "旧"\n    hangup\n  on failure -> m\n'
    assert store.load("hl", v1) == []
    call = LiveishCall()
    task = asyncio.create_task(run_call(store, "hl", call, DataSources()))
    await asyncio.sleep(0.01)  # the call is waiting for a key on version 1
    diags = store.load("hl", v1.replace("-> m", "-> nowhere"))
    assert [d.code for d in diags] == ["E110"]
    current = store.current("hl")
    assert current is not None and current.version == 1  # the bad script never replaced it
    assert store.load("hl", v1.replace("旧", "新")) == []
    current = store.current("hl")
    assert current is not None and current.version == 2
    call.gate.set()
    await asyncio.wait_for(task, 2)
    assert call.said == ["一请按1", "旧", "<hangup>"]  # pinned to the version it started on
    call2 = LiveishCall()
    call2.gate.set()
    await run_call(store, "hl", call2, DataSources())
    assert call2.said[1] == "新"
    with pytest.raises(LookupError):
        await run_call(store, "other", call2, DataSources())
