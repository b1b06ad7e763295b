"""The composition root: the one place that wires concrete classes into a running node.

Start-up order: storage (schema, demo users on first start) -> SIP core and services ->
sockets. Shutdown (SIGINT/SIGTERM) is the reverse: stop accepting, let the services
finish (pending bindings are written), close the sockets, close the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import secrets
import signal
import socket
import ssl
import sys
from pathlib import Path
from typing import Any

from cti.switch_node import NodeCti, start_cti
from signaling.aio.driver import SipDriver
from signaling.aio.transport import TransportSet
from signaling.auth import DigestAuthenticator, LockoutPolicy
from signaling.core import CoreConfig, SipCore
from signaling.events import (
    Address,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportError,
)
from signaling.keepalive import KeepAliveTracker
from signaling.message import make_response
from signaling.registrar import Registrar
from signaling.timers import TimerConfig
from storage.acd_log_repository import QueueLogRepository
from storage.cdr_repository import CdrRepository
from storage.db import Database, StorageError
from storage.demo import ensure_demo_users, format_demo_users
from storage.hotline_demo import ensure_hotline_demo
from storage.hotline_repository import HotlineRepository
from storage.repositories import LocationRepository, UserRepository
from switch.queue_log import SPOOL_NAME, QueueLogWriter
from switch.queues import QueueService

from . import messaging, voicemail
from .b2bua import CallManager
from .bus import EventBus
from .campaigns.node import start_dialer
from .cdr import CdrCollector, CdrWriter
from .config import Config, ConfigError
from .drivers.base import LegEvent
from .drivers.sip import SipChannelDriver
from .hotline_sources import hotline_data_sources
from .invite_challenge import chain_invite_challenge
from .ivr_service import IvrService
from .logsetup import call_context
from .media.config import MediaConfig
from .media.errors import MediaError
from .media.service import MediaService
from .moh import MusicOnHold, load_moh
from .registration import RegistrationService
from .router import DialPlan
from .routing_config import default_routing
from .trace import SipTrace
from .trunks import TrunkService
from .trunks.outbound import TrunkCalls

logger = logging.getLogger(__name__)

__all__ = ["Node", "run_node"]

#: Methods this node answers today; the core answers others with 405/501 + Allow.
NODE_METHODS = frozenset({"REGISTER", "OPTIONS", "ACK", "CANCEL", "BYE", "INVITE", "INFO",
                          "MESSAGE"})


def advertised_host(bind: str) -> str:
    """The address we put in Via, Contact and SDP: the bind address unless it is a
    wildcard, then this machine's first non-loopback IPv4 address.

    Not ``gethostbyname(gethostname())``: Debian maps the host name to 127.0.1.1, which
    would send every phone's RTP to its own loopback.
    """
    if bind not in ("0.0.0.0", "::", ""):
        return bind
    return primary_ipv4() or "127.0.0.1"


def primary_ipv4() -> str | None:
    """The IPv4 address of the first interface that has one and is not loopback (asked of
    the kernel per interface with SIOCGIFADDR; no packet is sent)."""
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _index, name in socket.if_nameindex():
            try:
                raw = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
            except OSError:
                continue  # no IPv4 address on this interface
            addr = socket.inet_ntoa(raw[20:24])
            if not addr.startswith("127."):
                return addr
    return None


def _nonce_secret(data_dir: Path) -> bytes:
    """A persistent secret so that nonces handed out before a restart stay verifiable."""
    path = data_dir / "nonce.key"
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    data = secrets.token_bytes(32)
    path.write_bytes(data)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o600)
    return data


class Node:
    """One running switch node."""

    def __init__(self, config: Config, sip_trace: str | None = None) -> None:
        self.config = config
        self.sip_trace_path = sip_trace
        self.db = Database(config.db.url)
        self.trace: SipTrace | None = None
        self.transports: TransportSet | None = None
        self.driver: SipDriver | None = None
        self.registration: RegistrationService | None = None
        self.trunks: TrunkService | None = None
        self.dialer: Any = None
        """The campaign dialer (``switch.campaigns.dialer.Dialer``)."""
        self.media: MediaService | None = None
        self.bus = EventBus()
        self.cdr_writer: CdrWriter | None = None
        self.cdr_collector: CdrCollector | None = None
        self.channels: SipChannelDriver | None = None
        self.voicemail: voicemail.VoicemailFeatures | None = None
        self.messaging: messaging.MessageRelay | None = None
        self.calls: CallManager | None = None
        self.ivr: IvrService | None = None
        self.cti: NodeCti | None = None
        self.queue_log: QueueLogWriter | None = None
        self.queues: QueueService | None = None
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        cfg = self.config
        sip = cfg.sip
        data_dir = Path(cfg.node.data_dir)
        await self.db.start()
        users = UserRepository(self.db)
        created = await ensure_demo_users(users, sip.realm)
        if created:
            # Shown once on stdout, never logged (the log may be shipped elsewhere).
            print(format_demo_users(created, sip.realm), flush=True)
        hotline = HotlineRepository(self.db)
        if await ensure_hotline_demo(self.db, hotline):
            logger.info("hotline demo data created")
        cdrs = CdrRepository(self.db)
        await cdrs.ensure_schema()
        self.cdr_writer = CdrWriter(cdrs, data_dir / "cdr-spool.jsonl")
        await self.cdr_writer.start()
        self.cdr_collector = CdrCollector(self.cdr_writer.submit)
        self.bus.tap(self.cdr_collector.handle)
        media_cfg = cfg.media or MediaConfig()
        if "bind_host" not in cfg.media_raw:
            # RTP follows SIP unless the operator says otherwise: a switch reachable on
            # the LAN for signalling must be reachable there for media too.
            media_cfg = dataclasses.replace(media_cfg, bind_host=sip.bind)
        self.media = MediaService(media_cfg)
        await self.media.start()

        host = advertised_host(sip.bind)
        core = SipCore(
            CoreConfig(
                host=host,
                port=sip.port,
                relayed_body_methods=("MESSAGE",),  # switch.messaging relays any type
                transport="udp" if "udp" in sip.active_transports else "tcp",
                timers=TimerConfig(t1=sip.t1_ms / 1000, t2=sip.t2_ms / 1000, t4=sip.t4_ms / 1000),
                user_agent=sip.user_agent or None,
                supported=("replaces",),  # RFC 3891: INVITE with Replaces (switch.transfer)
            )
        )
        core.allow = set(NODE_METHODS)
        core.allow.add("REFER")  # transfers (switch.transfer); NOTIFYs we only send
        self.driver = driver = SipDriver(core, self._on_event)

        registrar = Registrar(
            (sip.domain, host, "127.0.0.1", "localhost"),
            min_expires_s=sip.min_expires_s,
            max_expires_s=sip.max_expires_s,
            default_expires_s=sip.default_expires_s,
        )
        auth = DigestAuthenticator(
            sip.realm,
            _nonce_secret(data_dir),
            nonce_lifetime_s=sip.nonce_lifetime_s,
            algorithms=sip.auth_algorithms,
            lockout=LockoutPolicy(
                max_failures=sip.auth_max_failures,
                window_s=sip.auth_window_s,
                lockout_s=sip.auth_lockout_s,
            ),
        )
        keepalive = None
        if sip.options_keepalive_s > 0:
            keepalive = KeepAliveTracker(
                interval_s=sip.options_keepalive_s,
                timeout_s=min(8.0, sip.options_keepalive_s / 2),
            )
        self.registration = RegistrationService(
            core, driver.flush, driver.now, registrar, auth, users, LocationRepository(self.db),
            local=Address("udp", host, sip.port), keepalive=keepalive,
        )
        await self.registration.start()
        core.stateless_hook = self.registration.challenge_statelessly
        self.channels = SipChannelDriver(
            core, driver.flush, driver.now, self.media, self._on_leg_event, auth=auth,
            lookup_user=self.registration.lookup_user, registrar=registrar,
            domain=sip.domain, media_host=advertised_host(media_cfg.bind_host), wall=_wall)
        self.channels.overload.configure(  # switch.overload
            max_inflight=cfg.calls.max_inflight_invites,
            max_loop_lag_s=cfg.calls.overload_loop_lag_ms / 1000,
            retry_after_s=cfg.calls.overload_retry_after_s)
        core.stateless_hook = chain_invite_challenge(self.channels, core.stateless_hook)
        self.calls = CallManager(
            self.channels, self.media, self.bus,
            DialPlan.from_config(cfg.routing or default_routing()),
            no_answer_timeout_s=cfg.calls.no_answer_timeout_s,
            max_call_duration_s=cfg.calls.max_call_duration_s,
            caller_lists=hotline.caller_lists, wall=_wall)
        try:
            self.calls.moh = MusicOnHold(self.calls, load_moh(cfg.calls.moh_file, data_dir))
        except MediaError as exc:
            raise ConfigError(str(exc), key="calls.moh_file") from exc
        self.ivr = IvrService(
            self.media, hotline_data_sources(self.db, hotline), site_dir=data_dir / "ivr",
            recordings_dir=media_cfg.recordings_dir / "ivr",
            tts_cache_dir=media_cfg.prompt_cache_dir / "tts",
            tagger=self.cdr_collector.tag, media_errors=(MediaError, OSError))
        self.ivr.start_programs(cfg.routing or default_routing())
        await self._start_queues(data_dir)
        await self.ivr.start()
        self.calls.ivr = self.ivr
        self.calls.trunks = trunk_calls = TrunkCalls(cfg.trunks)
        self.channels.trunk_inbound = trunk_calls.inbound
        trunk_calls.load_programs(self.ivr)
        trunk_calls.start()
        await self.calls.start()
        self.cti = await start_cti(cfg.cti_raw, self.db, hotline, self.calls,
                                   media_cfg.recordings_dir / "cti")

        # Voicemail and forwarding hook into the call manager, MESSAGE into _dispatch.
        reg = self.registration
        self.voicemail = voicemail.VoicemailFeatures(
            self.db, self.media, cfg.voicemail, media_cfg.recordings_dir / "voicemail",
            user_exists=lambda name: reg.lookup_user(name) is not None)
        await self.voicemail.start(self.calls)
        self.ivr.voicemail = self.voicemail.service
        self.messaging = messaging.MessageRelay(
            core, driver.flush, driver.now, auth, reg.lookup_user, self.channels.lookup,
            sip.domain, _wall)

        if self.sip_trace_path:
            self.trace = SipTrace(self.sip_trace_path)
            self.trace.attach(asyncio.get_running_loop())
        trace = self.trace
        self.transports = TransportSet(
            sink=driver.on_inbound,
            max_message_bytes=sip.max_message_bytes,
            max_headers=sip.max_headers,
            trace=(lambda d, t, lo, re, data: trace.record(d, t, lo, re, data, _wall()))
            if trace is not None
            else None,
            tls_context=self._tls_context(),
        )
        driver.attach(self.transports)
        for transport in sip.active_transports:
            port = sip.tls_port if transport == "tls" else sip.port
            if transport == "udp":
                await self.transports.listen_udp(sip.bind, port)
            else:
                await self.transports.listen_stream(transport, sip.bind, port)
        # After the sockets: the first REGISTERs go out at once.
        self.trunks = TrunkService(core, driver.flush, driver.now, cfg.trunks)
        await self.trunks.start()
        self.dialer = await start_dialer(self)
        logger.info(
            "softswitch ready: SIP %s on %s port %d (domain %s), database %s",
            "/".join(sip.active_transports), sip.bind, sip.port, sip.domain,
            self.db.display_url,
        )

    async def _start_queues(self, data_dir: Path) -> None:
        """The live ACD (switch.queues) and its write-behind queue log."""
        assert self.calls is not None
        repo = QueueLogRepository(self.db)
        await repo.ensure_schema()
        self.queue_log = QueueLogWriter(repo, data_dir / SPOOL_NAME)
        await self.queue_log.start()
        self.queues = QueueService(self.config.queues, log=self.queue_log, bus=self.bus,
                                   media_errors=(MediaError, OSError))
        self.queues.attach(self.calls)
        await self.queues.start()

    def _tls_context(self) -> ssl.SSLContext | None:
        sip = self.config.sip
        if not (sip.tls_cert and sip.tls_key):
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(sip.tls_cert, sip.tls_key)
        return ctx

    def _on_event(self, event: object) -> None:
        """Route core events to the services that own them, with the Call-ID as log
        context so every line a service logs about this message can be grepped by call."""
        msg = getattr(event, "request", None) or getattr(event, "response", None)
        if msg is None:
            self._dispatch(event)
            return
        with call_context(call_id=msg.headers.get("Call-ID")):
            self._dispatch(event)

    def _on_leg_event(self, event: LegEvent) -> None:
        if self.dialer is not None and self.dialer.originator.handle(event):
            return  # a leg the switch originated (campaigns), not a B2BUA call
        if self.calls is not None:
            self.calls.handle(event)

    def _dispatch(self, event: object) -> None:
        reg = self.registration
        channels = self.channels
        if isinstance(event, RequestReceived):
            method = event.request.method
            if method == "REGISTER" and reg is not None:
                reg.handle_register(event)
                return
            if channels is not None and channels.handle(event):
                return
            if self.messaging is not None and self.messaging.handle_request(event):
                return
            if method in ("ACK",):
                return
            assert self.driver is not None
            # Nobody took it (a BYE/INFO of a call we do not know, an INFO outside any
            # call): refuse clearly instead of letting the peer time out.
            status = 481 if method == "BYE" or event.dialog_id is not None else 480
            self.driver.core.send_response(
                make_response(event.request, status, to_tag=self.driver.core.ids.tag()),
                event.transaction_id, self.driver.now(),
            )
        elif isinstance(event, (ResponseReceived, TransactionTimedOut, TransportError)):
            if self.trunks is not None and self.trunks.handle_event(event):
                return
            if self.messaging is not None and self.messaging.handle_event(event):
                return
            if channels is not None and channels.handle(event):
                return
            if reg is not None:
                reg.handle_keepalive_result(event)
        elif channels is not None:
            channels.handle(event)  # CANCEL, ACK, dialog ends of calls

    async def stop(self) -> None:
        logger.info("shutting down")
        if self.channels is not None:
            self.channels.overload.stop()
        if self.calls is not None:
            await self.calls.stop()  # BYE/CANCEL every call while the sockets are open
        if self.cti is not None:
            await self.cti.close()  # after the calls' cleared events; hangs up its own legs
        if self.queues is not None:
            await self.queues.stop()
        if self.queue_log is not None and not await self.queue_log.close():
            logger.error("queue log entries could not all be written; they are in the spool")
        if self.ivr is not None:
            await self.ivr.stop()
        if self.calls is not None and self.calls.trunks is not None:
            await self.calls.trunks.stop()
        if self.dialer is not None:
            await self.dialer.stop()  # campaign calls hung up and recorded, sockets open
        if self.channels is not None:
            await self.channels.drain()
        if self.voicemail is not None:
            await self.voicemail.stop()
        if self.trunks is not None:
            await self.trunks.stop()  # de-register while the sockets are still open
        if self.transports is not None:
            await self.transports.close()
        if self.registration is not None:
            await self.registration.stop()
        if self.driver is not None:
            self.driver.close()
        if self.trace is not None:
            self.trace.close()
        if self.media is not None:
            await self.media.shutdown()
        if self.cdr_collector is not None:
            left = self.cdr_collector.finish_all(_wall())
            if left:
                logger.warning("closed %d CDR(s) of calls still open at shutdown", left)
        if self.cdr_writer is not None and not await self.cdr_writer.close():
            logger.error("CDRs could not all be written; they are in the spool file")
        await self.db.close()
        logger.info("stopped")


def _wall() -> float:
    import time

    return time.time()


async def _main(config: Config, sip_trace: str | None) -> int:
    node = Node(config, sip_trace)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, node.stopping.set)
    try:
        await node.start()
    except (StorageError, OSError, ssl.SSLError, ConfigError) as exc:
        # A bad IVR program named by the dial plan is a configuration error too: it is
        # reported naming the key, and what was already started is shut down cleanly.
        logger.error("start-up failed: %s", exc)
        await node.stop()
        return 1
    # Tens of thousands of live transactions make the default GC thresholds scan the
    # same long-lived objects over and over: move what start-up built out of the
    # collector's way and collect young objects less often.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    await node.stopping.wait()
    await node.stop()
    return 0


def run_node(config: Config, sip_trace: str | None = None) -> int:
    """Run a node until SIGINT/SIGTERM; the exit code for the CLI."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        uvloop = None
    if uvloop is not None and sys.platform != "win32":
        return uvloop.run(_main(config, sip_trace))
    return asyncio.run(_main(config, sip_trace))
