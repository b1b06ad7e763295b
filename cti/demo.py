"""A CTI demo server: the real server over the FakeBackend, with users and callers.

Until the switch is wired to the CTI server, this shows the protocol, the console and the
screen pop end to end: ``python -m cti.demo --port 7000`` then, in another terminal,
``softswitch cti --port 7000 --user alice`` (password ``demo``), ``agent 1001``,
``state ready``; a caller arrives every few seconds with a resident record and IVR tags.

Users (password ``demo``): ``alice`` and ``bob`` (agents a1/a2 of billing/repair),
``boss`` (supervisor, all queues), ``wall`` (wallboard, all queues).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import sys
from collections.abc import Sequence

from cti.audit import LoggingAuditSink
from cti.auth import Authenticator, CtiUser, MemoryUserDirectory, hash_password
from cti.config import CtiConfig
from cti.fake import FakeBackend, MemoryResidentDirectory
from cti.roles import Role
from cti.server import CtiServer

__all__ = ["DEMO_RESIDENTS", "demo_main", "run_demo"]

logger = logging.getLogger(__name__)

DEMO_PASSWORD = "demo"
DEMO_RESIDENTS = {
    "13800000001": {"name": "王伟 Wang Wei", "unit": "3-1202", "vip": True,
                    "open_work_orders": [{"id": "WO-2291", "kind": "water leak"}],
                    "unpaid_bills": [{"period": "2026-10", "amount": "356.00"}],
                    "recent_calls": [{"when": "2026-11-25 09:12", "queue": "repair"}]},
    "13800000002": {"name": "李娜 Li Na", "unit": "5-0301", "vip": False,
                    "open_work_orders": [], "unpaid_bills": [], "recent_calls": []},
}
_CALLERS = [("13800000001", "billing", {"intent": "bill", "account": "A-1002"}),
            ("13800000002", "repair", {"intent": "repair", "kind": "elevator"}),
            ("13900000009", "billing", {"intent": "complaint"})]


def demo_users(log2_n: int = 10) -> MemoryUserDirectory:
    password_hash = hash_password(DEMO_PASSWORD, log2_n=log2_n)
    both = frozenset({"billing", "repair"})
    return MemoryUserDirectory([
        CtiUser("alice", Role.AGENT, password_hash, both, agent_id="a1"),
        CtiUser("bob", Role.AGENT, password_hash, both, agent_id="a2"),
        CtiUser("boss", Role.SUPERVISOR, password_hash, all_queues=True, agent_id="s1"),
        CtiUser("wall", Role.WALLBOARD, password_hash, all_queues=True),
    ])


async def run_demo(config: CtiConfig, call_every_s: float, stop: asyncio.Event,
                   started: asyncio.Future[CtiServer] | None = None) -> CtiServer:
    """Serve until ``stop`` is set, placing a demo caller every ``call_every_s``;
    ``started`` receives the listening server."""
    backend = FakeBackend(["billing", "repair"], MemoryResidentDirectory(DEMO_RESIDENTS))
    server = CtiServer(backend, Authenticator(demo_users()), config, LoggingAuditSink())
    await server.start()
    if started is not None:
        started.set_result(server)
    try:
        for caller, queue, tags in itertools.cycle(_CALLERS):
            try:
                await asyncio.wait_for(stop.wait(), call_every_s)
                return server
            except TimeoutError:
                pass
            call_id = await backend.inbound_call(caller, queue, tags=tags)
            logger.info("demo caller %s in %s: %s", caller, queue, call_id)
    finally:
        await server.close()
    return server


def demo_main(argv: Sequence[str] | None = None) -> int:
    """``python -m cti.demo [--port N] [--every S]``."""
    parser = argparse.ArgumentParser(prog="python -m cti.demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7000)
    parser.add_argument("--every", type=float, default=8.0, help="seconds between callers")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = CtiConfig(host=args.host, port=args.port)
    try:
        asyncio.run(run_demo(config, args.every, asyncio.Event()))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(demo_main())
