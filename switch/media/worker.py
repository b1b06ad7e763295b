"""Media worker processes: one engine host per process, each with its own RTP port range.

Why processes: the per-packet Python work (receive, send) is what limits one event loop
(DESIGN.md "Growing past one machine"; TESTING.md: uvloop relays about 168,000 packets/s
in one process), so a node runs several workers to use every core. Signaling stays in the
switch's process; only media control crosses the process boundary.

Control protocol, over a ``multiprocessing`` pipe (pickled tuples, one message each):

* front -> worker: ``("req", request_id, op, args)``, ``("stop",)``
* worker -> front: ``("started", t0)``, ``("ok", request_id, result)``,
  ``("err", request_id, kind, message)``, ``("ev", kind, channel_id, payload)``,
  ``("stopped", health)``

``op`` and ``args`` are exactly those of :meth:`EngineHost.execute`, so a worker behaves
like a local backend. Errors come back as the same exception type for ``MediaError``,
``KeyError`` and ``ValueError`` (others become ``MediaError`` with the type name).

Rules: the worker runs uvloop when it is installed (falls back to asyncio), raises its
open-file limit for two sockets per channel, limits BLAS to one thread and tunes malloc
(``engine_host.tune_process``),
and ticks on the grid ``t0 + k * 20 ms`` given by the front, so all workers of a node tick
in phase. The front stops a worker with ``("stop",)`` and, if it has not exited within the
timeout, terminates that process (by its own handle, never by name). Both ends keep the
pipe descriptor blocking even under uvloop (see ``_watch``): ``Connection`` framing needs it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import os
import resource
from multiprocessing.connection import Connection
from typing import Any

from switch.media.config import MediaConfig
from switch.media.engine_host import EngineHost, tune_process
from switch.media.errors import MediaError

logger = logging.getLogger(__name__)

__all__ = ["WorkerBackend", "worker_main"]

_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0
_ERRORS: dict[str, type[Exception]] = {"KeyError": KeyError, "ValueError": ValueError,
                                       "OSError": OSError}


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise RLIMIT_NOFILE: %s", exc)


def _set_priority(nice: int) -> None:
    """Run this worker at ``nice``, in its own scheduling group.

    With the kernel's autogroup scheduling (``sched_autogroup_enabled``, the default on
    desktop and many server kernels) niceness only orders processes *within* a session;
    between sessions the CPU is shared equally. So the worker starts its own session and
    sets the nice value of that group too (``/proc/self/autogroup``, Linux >= 2.6.38).
    Failures are logged, never fatal.
    """
    try:
        os.setsid()
    except OSError as exc:
        logger.debug("setsid: %s", exc)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        logger.warning("cannot set worker_nice: %s", exc)
    try:
        with open("/proc/self/autogroup", "w", encoding="ascii") as f:
            f.write(str(nice))
    except OSError as exc:
        logger.debug("autogroup nice not set: %s", exc)


def _watch(loop: asyncio.AbstractEventLoop, conn: Connection, callback: Any) -> None:
    """Call ``callback`` when ``conn`` is readable, keeping its descriptor blocking.

    uvloop (libuv's ``uv_poll_init``) switches a watched descriptor to non-blocking mode,
    but ``Connection.send``/``recv`` frame each message with plain ``write``/``read`` calls
    that assume a blocking descriptor: a message larger than the socket buffer (a TTS
    prompt of a few seconds, 16 kB per second of int16 audio) then fails half-written
    with ``BlockingIOError``, the peer reads a torn frame and shuts down, and every later
    request fails with ``EPIPE``. Readiness polling does not care about the mode, so the
    descriptor is put back to blocking after registering it.
    """
    loop.add_reader(conn.fileno(), callback)
    os.set_blocking(conn.fileno(), True)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # optional dependency, only in workers
    except ImportError:
        logger.warning("uvloop not installed: media worker uses the default asyncio loop")
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def worker_main(conn: Connection, config: MediaConfig, port_range: tuple[int, int],
                seed: int | None, t0: float | None, log_level: int = logging.WARNING) -> None:
    """Entry point of a worker process (``multiprocessing`` target)."""
    logging.basicConfig(level=log_level,
                        format=f"%(asctime)s media-worker[{os.getpid()}] %(name)s %(message)s")
    _raise_nofile()
    tune_process()
    if config.worker_nice:
        _set_priority(config.worker_nice)
    loop = _new_loop()
    try:
        loop.run_until_complete(_serve(conn, config, port_range, seed, t0))
    finally:
        loop.close()
        conn.close()


async def _serve(conn: Connection, config: MediaConfig, port_range: tuple[int, int],
                 seed: int | None, t0: float | None) -> None:
    loop = asyncio.get_running_loop()

    def on_event(kind: str, cid: int, payload: Any) -> None:
        conn.send(("ev", kind, cid, payload))

    host = EngineHost(config, port_range, on_event, seed=seed)
    done = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def run(rid: int, op: str, args: tuple[Any, ...]) -> None:
        try:
            result = await host.execute(op, args)
        except Exception as exc:  # forwarded to the caller (never swallowed)
            if not isinstance(exc, (MediaError, KeyError, ValueError, OSError)):
                logger.exception("media worker: %s failed", op)
            conn.send(("err", rid, type(exc).__name__, str(exc)))
            return
        conn.send(("ok", rid, result))

    def on_readable() -> None:
        try:
            while conn.poll():
                msg = conn.recv()
                if msg[0] == "stop":
                    done.set()
                    return
                _, rid, op, args = msg
                task = loop.create_task(run(rid, op, args))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (EOFError, OSError):
            done.set()  # the front went away: shut down

    t0 = host.start(t0)
    _watch(loop, conn, on_readable)
    conn.send(("started", t0))
    try:
        await done.wait()
    finally:
        loop.remove_reader(conn.fileno())
        host.stop()
        try:
            conn.send(("stopped", host.health()))
        except (OSError, EOFError):
            pass


class WorkerBackend:
    """The front's handle on one worker process (a ``MediaService`` backend).

    Args:
        index: worker number.
        config: media configuration (pickled to the worker).
        port_range: this worker's (first, last) RTP port.
        on_event: ``(kind, channel_id, payload)`` callback on the front's loop.
        seed: SSRC seed (tests).
    """

    def __init__(self, index: int, config: MediaConfig, port_range: tuple[int, int],
                 on_event: Any, seed: int | None = None) -> None:
        self.index = index
        self.load = 0
        self.config = config
        self.port_range = port_range
        self._on_event = on_event
        self._seed = None if seed is None else seed + index
        self._conn: Connection | None = None
        self.process: multiprocessing.process.BaseProcess | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._started: asyncio.Future[float] | None = None
        self._stopped: asyncio.Future[Any] | None = None
        self.final_health: dict[str, Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pid(self) -> int | None:
        """OS process id of the worker (for CPU accounting)."""
        return self.process.pid if self.process is not None else None

    async def start(self, t0: float | None) -> float:
        """Spawn the worker and wait until it ticks; returns its tick origin."""
        self._loop = loop = asyncio.get_running_loop()
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
            os.environ.setdefault(var, "1")  # read by numpy at import in the child
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=worker_main, name=f"media-worker-{self.index}", daemon=True,
            args=(child, self.config, self.port_range, self._seed, t0,
                  logging.getLogger().getEffectiveLevel()))
        self.process.start()
        child.close()
        self._conn = parent
        self._started = loop.create_future()
        self._stopped = loop.create_future()
        _watch(loop, parent, self._on_readable)
        try:
            return await asyncio.wait_for(asyncio.shield(self._started), _START_TIMEOUT_S)
        except BaseException:
            await self._kill()
            raise

    async def request(self, op: str, args: tuple[Any, ...]) -> Any:
        """Run ``op`` in the worker and return its result (or raise its error)."""
        if self._conn is None or self._loop is None:
            raise MediaError(f"media worker {self.index} is not running")
        rid = next(self._ids)
        fut = self._loop.create_future()
        self._pending[rid] = fut
        try:
            self._conn.send(("req", rid, op, args))
        except (OSError, ValueError) as exc:
            self._pending.pop(rid, None)
            raise MediaError(f"media worker {self.index} is gone: {exc}") from exc
        return await fut

    async def stop(self) -> None:
        """Ask the worker to stop; terminate it if it does not exit in time."""
        if self._conn is None:
            return
        try:
            self._conn.send(("stop",))
            assert self._stopped is not None
            await asyncio.wait_for(asyncio.shield(self._stopped), _STOP_TIMEOUT_S)
        except (OSError, ValueError, TimeoutError) as exc:
            logger.warning("media worker %d did not stop cleanly: %s", self.index, exc)
        await self._kill()

    async def _kill(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._loop is not None:
            self._loop.remove_reader(conn.fileno())
            conn.close()
        proc = self.process
        if proc is not None:
            await asyncio.to_thread(proc.join, _STOP_TIMEOUT_S)
            if proc.is_alive():
                proc.terminate()
                await asyncio.to_thread(proc.join, _STOP_TIMEOUT_S)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(MediaError(f"media worker {self.index} stopped"))
        self._pending.clear()

    def _on_readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                self._dispatch(conn.recv())
        except (EOFError, OSError):
            if self._stopped is None or not self._stopped.done():
                logger.warning("media worker %d closed its pipe", self.index)
            if self._loop is not None and conn is self._conn:
                self._loop.remove_reader(conn.fileno())
            if self._started is not None and not self._started.done():
                self._started.set_exception(MediaError(f"media worker {self.index} exited"))
            if self._stopped is not None and not self._stopped.done():
                self._stopped.set_result(None)

    def _dispatch(self, msg: tuple[Any, ...]) -> None:
        tag = msg[0]
        if tag == "ev":
            self._on_event(msg[1], msg[2], msg[3])
        elif tag == "ok":
            fut = self._pending.pop(msg[1], None)
            if fut is not None and not fut.done():
                fut.set_result(msg[2])
        elif tag == "err":
            fut = self._pending.pop(msg[1], None)
            if fut is not None and not fut.done():
                exc_type = _ERRORS.get(msg[2])
                exc = exc_type(msg[3]) if exc_type else MediaError(f"{msg[2]}: {msg[3]}")
                fut.set_exception(exc)
        elif tag == "started" and self._started is not None and not self._started.done():
            self._started.set_result(msg[1])
        elif tag == "stopped" and self._stopped is not None and not self._stopped.done():
            self.final_health = msg[1]
            self._stopped.set_result(msg[1])
