"""``softswitch cti``: a terminal console for an agent or a supervisor.

It is a thin line interface over :class:`cti.client.CtiClient`: every line is one command,
every event is printed as it arrives, and ``call.delivered`` prints the screen pop (caller,
resident record, IVR tags). The console remembers the current call, consultation and
monitor, so ``hold``, ``transfer 8001`` or ``stop`` need no ids.

Commands (``help`` prints them)::

    login USER PASSWORD         log in (and subscribe to every event in scope)
    agent DEVICE [Q1,Q2]        agent login on a device     logout      agent logout
    state ready | state notready REASON                     wrapup      end wrap-up
    answer [CALL]  hangup [CALL]  hold  retrieve  dial NUMBER  dtmf DIGITS
    transfer NUMBER (blind)  consult NUMBER  complete  conference  cancel
    data KEY=VALUE...  getdata  record start|stop|pause|resume
    queues  stats [Q...]  waiting Q  pickup Q CALL  snapshot
    listen|whisper|barge AGENT  mode listen|whisper|barge  stop
    force-state AGENT ready|notready [REASON]  force-logout AGENT  force-hangup CALL
    quit

``console_main(argv)`` is the CLI entry; :class:`Console` is driven in-process by tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

from cti.client import CtiClient, CtiCommandError, CtiConnectionLost, CtiEvent

__all__ = ["Console", "console_main"]

HELP = __doc__.split("Commands (``help`` prints them)::", 1)[1].split("``console_main", 1)[0]


class Console:
    """Line commands -> client calls; events -> text.

    Args:
        client: a connected client.
        out: where to print.
    """

    def __init__(self, client: CtiClient, out: TextIO) -> None:
        self.client = client
        self.out = out
        self.call_id: str | None = None
        self.consult_id: str | None = None
        self.monitor_id: str | None = None
        self._printed = asyncio.Condition()
        self._event_task: asyncio.Task[None] | None = None
        self._commands: dict[str, Callable[[list[str]], Awaitable[None]]] = {
            "login": self._login, "agent": self._agent, "logout": self._logout,
            "state": self._state, "wrapup": self._wrapup, "answer": self._answer,
            "hangup": self._hangup, "hold": self._hold, "retrieve": self._retrieve,
            "dial": self._dial, "dtmf": self._dtmf, "transfer": self._transfer,
            "consult": self._consult, "complete": self._complete,
            "conference": self._conference, "cancel": self._cancel, "data": self._data,
            "getdata": self._getdata, "record": self._record, "queues": self._queues,
            "stats": self._stats, "waiting": self._waiting, "pickup": self._pickup,
            "snapshot": self._snapshot, "mode": self._mode, "stop": self._stop,
            "listen": lambda rest: self._monitor("listen", rest),
            "whisper": lambda rest: self._monitor("whisper", rest),
            "barge": lambda rest: self._monitor("barge", rest),
            "force-state": self._force_state, "force-logout": self._force_logout,
            "force-hangup": self._force_hangup,
        }

    # -------------------------------------------------------------- output

    def print(self, text: str) -> None:
        print(text, file=self.out, flush=True)
        self._notify()

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._printed:
                self._printed.notify_all()

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(wake())

    async def wait_for_output(self, text: str, output: Callable[[], str],
                              timeout_s: float = 5.0) -> None:
        """Wait until ``output()`` contains ``text`` (tests). Raises TimeoutError."""
        async with asyncio.timeout(timeout_s), self._printed:
            await self._printed.wait_for(lambda: text in output())

    def start_events(self) -> None:
        """Print events as they arrive (a background task)."""
        if self._event_task is None:
            self._event_task = asyncio.ensure_future(self._print_events())

    async def _print_events(self) -> None:
        async for event in self.client.events():
            self._track(event)
            self.print(format_event(event))

    def _track(self, event: CtiEvent) -> None:
        me = self.client.login_info.agent_id if self.client.login_info else None
        data = event.data
        if data.get("agent_id") != me or me is None:
            return
        if event.event in ("call.delivered", "call.established") and not data.get("consult_of"):
            self.call_id = data["call_id"]
        elif event.event in ("call.cleared", "call.transferred") and \
                data["call_id"] == self.call_id:
            self.call_id = None
            self.consult_id = None

    async def close(self) -> None:
        if self._event_task is not None:
            self._event_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._event_task

    # -------------------------------------------------------------- input

    async def handle(self, line: str) -> bool:
        """Run one command line; return False on ``quit``."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            self.print(f"error: {exc}")
            return True
        if not words:
            return True
        name, rest = words[0].lower(), words[1:]
        if name in ("quit", "exit"):
            return False
        if name == "help":
            self.print(HELP.rstrip())
            return True
        command = self._commands.get(name)
        if command is None:
            self.print(f"unknown command {name!r} (try help)")
            return True
        try:
            await command(rest)
        except CtiCommandError as exc:
            self.print(f"error: {exc}")
        except CtiConnectionLost as exc:
            self.print(f"error: {exc}")
        except (IndexError, ValueError) as exc:
            self.print(f"usage error: {exc or 'missing argument'} (try help)")
        return True

    def _call(self, rest: list[str]) -> str:
        call_id = rest[0] if rest else self.call_id
        if call_id is None:
            raise ValueError("no current call; give a call id")
        return call_id

    def _consult_id(self) -> str:
        if self.consult_id is None:
            raise ValueError("no consultation call (use consult NUMBER first)")
        return self.consult_id

    # -------------------------------------------------------------- commands

    async def _login(self, rest: list[str]) -> None:
        info = await self.client.login(rest[0], rest[1])
        await self.client.subscribe()
        self.print(f"logged in as {info.user} ({info.role}); queues "
                   f"{','.join(info.queues) or '*'}; agent {info.agent_id or '-'}")
        self.start_events()

    async def _agent(self, rest: list[str]) -> None:
        queues = rest[1].split(",") if len(rest) > 1 else None
        await self.client.agent_login(rest[0], queues)
        self.print(f"agent login on {rest[0]} accepted")

    async def _logout(self, rest: list[str]) -> None:
        await self.client.agent_logout(" ".join(rest) or None)
        self.print("agent logout accepted")

    async def _state(self, rest: list[str]) -> None:
        wanted = rest[0].lower().replace("-", "").replace("_", "")
        if wanted not in ("ready", "notready"):
            raise ValueError("state ready | state notready REASON")
        state = "ready" if wanted == "ready" else "not_ready"
        await self.client.set_state(state, " ".join(rest[1:]))
        self.print(f"state {state} accepted")

    async def _wrapup(self, rest: list[str]) -> None:
        await self.client.end_wrapup()
        self.print("wrap-up ended")

    async def _simple(self, verb: str, rest: list[str]) -> None:
        call_id = self._call(rest)
        await getattr(self.client, verb)(call_id)
        self.print(f"{verb} {call_id} accepted")

    async def _answer(self, rest: list[str]) -> None:
        await self._simple("answer", rest)

    async def _hangup(self, rest: list[str]) -> None:
        await self._simple("hangup", rest)

    async def _hold(self, rest: list[str]) -> None:
        await self._simple("hold", rest)

    async def _retrieve(self, rest: list[str]) -> None:
        await self._simple("retrieve", rest)

    async def _dial(self, rest: list[str]) -> None:
        self.call_id = await self.client.make_call(rest[0])
        self.print(f"dialing {rest[0]}: call {self.call_id}")

    async def _dtmf(self, rest: list[str]) -> None:
        await self.client.send_dtmf(self._call([]), rest[0])
        self.print(f"sent {rest[0]}")

    async def _transfer(self, rest: list[str]) -> None:
        await self.client.transfer_blind(self._call([]), rest[0])
        self.print(f"transfer to {rest[0]} accepted")

    async def _consult(self, rest: list[str]) -> None:
        self.consult_id = await self.client.consult(self._call([]), rest[0])
        self.print(f"consulting {rest[0]}: call {self.consult_id}")

    async def _complete(self, rest: list[str]) -> None:
        await self.client.transfer_complete(self._call([]), self._consult_id())
        self.print("transfer completed")

    async def _conference(self, rest: list[str]) -> None:
        result = await self.client.conference(self._call([]), self._consult_id())
        self.consult_id = None
        self.print(f"conference: {', '.join(result.get('parties', []))}")

    async def _cancel(self, rest: list[str]) -> None:
        await self.client.reconnect_call(self._call([]), self._consult_id())
        self.consult_id = None
        self.print("consultation cancelled; back to the caller")

    async def _data(self, rest: list[str]) -> None:
        pairs = dict(item.split("=", 1) for item in rest)
        await self.client.set_data(self._call([]), pairs)
        self.print("data attached")

    async def _getdata(self, rest: list[str]) -> None:
        self.print(json.dumps(await self.client.get_data(self._call(rest)), ensure_ascii=False))

    async def _record(self, rest: list[str]) -> None:
        result = await self.client.record(self._call(rest[1:]), rest[0])
        self.print(f"recording {result.get('recording')}")

    async def _queues(self, rest: list[str]) -> None:
        for row in await self.client.queue_list():
            self.print(f"{row['queue']:<16} waiting {row['waiting']:>3}  agents "
                       f"{row['agents_logged_in']}")

    async def _stats(self, rest: list[str]) -> None:
        for row in await self.client.queue_stats(rest or None):
            self.print(_stats_line(row))

    async def _waiting(self, rest: list[str]) -> None:
        callers = await self.client.queue_callers(rest[0])
        for c in callers:
            self.print(f"{c['position']:>3}. {c['call_id']}  {c['caller']}  waited "
                       f"{c['wait_s']:.0f} s  priority {c['priority']}")
        self.print(f"{len(callers)} waiting in {rest[0]}")

    async def _pickup(self, rest: list[str]) -> None:
        await self.client.pickup(rest[0], rest[1])
        self.call_id = rest[1]
        self.print(f"picked up {rest[1]}")

    async def _snapshot(self, rest: list[str]) -> None:
        snap = (await self.client.snapshot())["snapshot"]
        for agent in snap["agents"]:
            self.print(f"agent {agent['agent_id']:<10} {agent['state']:<10} "
                       f"{agent.get('reason') or ''}")
        for call in snap["calls"]:
            self.print(f"call  {call['call_id']:<10} {call['state']:<10} "
                       f"{call.get('caller') or ''} {call.get('agent_id') or ''}")
        for row in snap["queues"]:
            self.print(_stats_line(row))

    async def _monitor(self, mode: str, rest: list[str]) -> None:
        self.monitor_id = await self.client.monitor(rest[0], mode)
        self.print(f"{mode} on {rest[0]}: monitor {self.monitor_id}")

    async def _mode(self, rest: list[str]) -> None:
        if self.monitor_id is None:
            raise ValueError("no monitor running")
        await self.client.monitor_switch(self.monitor_id, rest[0])
        self.print(f"monitor mode {rest[0]}")

    async def _stop(self, rest: list[str]) -> None:
        if self.monitor_id is None:
            raise ValueError("no monitor running")
        await self.client.monitor_stop(self.monitor_id)
        self.monitor_id = None
        self.print("monitor stopped")

    async def _force_state(self, rest: list[str]) -> None:
        state = "ready" if rest[1].lower() == "ready" else "not_ready"
        await self.client.force_state(rest[0], state, " ".join(rest[2:]))
        self.print(f"forced {rest[0]} to {state}")

    async def _force_logout(self, rest: list[str]) -> None:
        await self.client.force_logout(rest[0], " ".join(rest[1:]))
        self.print(f"forced logout of {rest[0]}")

    async def _force_hangup(self, rest: list[str]) -> None:
        await self.client.force_hangup(rest[0])
        self.print(f"forced hang-up of {rest[0]}")


# ------------------------------------------------------------------ formatting


def _stats_line(row: dict[str, Any]) -> str:
    return (f"queue {row['queue']:<14} waiting {row['waiting']:>3}  longest "
            f"{row['longest_wait_s']:>5.0f} s  ready {row['agents_ready']:>3}  busy "
            f"{row.get('agents_busy', 0):>3}")


def format_screen_pop(data: dict[str, Any]) -> str:
    """The screen pop of a ``call.delivered`` event, as a few lines of text."""
    pop = data.get("screen_pop") or {}
    lines = [f"=== SCREEN POP  call {data['call_id']}  from {pop.get('caller_number')} "
             f"(queue {data.get('queue') or '-'}) ==="]
    resident = pop.get("resident")
    if resident:
        vip = "  [VIP]" if resident.get("vip") else ""
        lines.append(f"resident: {resident.get('name')}  unit {resident.get('unit')}{vip}")
        for key, label in (("open_work_orders", "open work orders"),
                           ("unpaid_bills", "unpaid bills"), ("recent_calls", "recent calls")):
            items = resident.get(key) or []
            lines.append(f"{label}: {len(items)}")
            lines.extend(f"  - {json.dumps(item, ensure_ascii=False)}" for item in items[:5])
    else:
        lines.append("resident: unknown caller")
    tags = pop.get("ivr_tags") or {}
    if tags:
        lines.append("ivr: " + ", ".join(f"{k}={v}" for k, v in tags.items()))
    return "\n".join(lines)


def format_event(event: CtiEvent) -> str:
    """One event as text (the screen pop gets its own block)."""
    data = event.data
    if event.event == "call.delivered":
        return format_screen_pop(data)
    if event.event == "queue.stats":
        return "[stats] " + _stats_line(data)
    keys = ("call_id", "agent_id", "state", "reason", "queue", "cause", "destination", "mode")
    detail = " ".join(f"{k}={data[k]}" for k in keys if data.get(k) not in (None, ""))
    return f"[{event.seq}] {event.event} {detail}".rstrip()


# ------------------------------------------------------------------ CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softswitch cti",
                                     description="CTI console for agents and supervisors.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7000)
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--cafile", metavar="FILE", help="CA certificate for TLS")
    parser.add_argument("--user", help="log in at start")
    parser.add_argument("--password", help="password for --user (default: prompt)")
    return parser


async def run_console(client: CtiClient, lines: Callable[[], Awaitable[str]],
                      out: TextIO) -> int:
    """Read lines until EOF or quit; returns the exit code."""
    console = Console(client, out)
    try:
        while True:
            line = await lines()
            if not line:
                return 0
            if not await console.handle(line):
                return 0
    finally:
        await console.close()


def console_main(argv: Sequence[str], *, stdin: TextIO | None = None,
                 stdout: TextIO | None = None) -> int:
    """Entry point of ``softswitch cti``; returns the exit code."""
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    inp = stdin or sys.stdin
    out = stdout or sys.stdout

    async def main() -> int:
        tls = None
        if args.tls or args.cafile:
            tls = ssl.create_default_context(cafile=args.cafile)
        try:
            client = await CtiClient.connect(args.host, args.port, tls)
        except (OSError, CtiCommandError) as exc:
            print(f"softswitch cti: cannot connect to {args.host}:{args.port}: {exc}",
                  file=sys.stderr)
            return 1
        loop = asyncio.get_running_loop()

        async def read_line() -> str:
            return await loop.run_in_executor(None, inp.readline)

        try:
            if args.user:
                password = args.password
                if password is None:
                    import getpass

                    password = getpass.getpass("CTI password: ")
                first = [f"login {shlex.quote(args.user)} {shlex.quote(password)}\n"]

                async def lines() -> str:
                    return first.pop() if first else await read_line()

                return await run_console(client, lines, out)
            return await run_console(client, read_line, out)
        finally:
            await client.close()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 130
