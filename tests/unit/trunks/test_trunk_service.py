"""TrunkService over real UDP on loopback against an in-process carrier built from our own
SIP core, digest authenticator and registrar (so the digest answer is really verified)."""

from __future__ import annotations

import asyncio
from random import Random

from signaling.aio.driver import SipDriver
from signaling.aio.transport import TransportSet
from signaling.auth import DigestAuthenticator
from signaling.core import CoreConfig, SipCore
from signaling.events import RequestReceived, ResponseReceived
from signaling.location import UserCredentials, compute_ha1
from signaling.message import Request, make_response
from signaling.registrar import Registrar
from signaling.timers import TimerConfig
from switch.trunks.config import TrunkConfig
from switch.trunks.registration import RegistrationState, RegistrationStateChanged
from switch.trunks.service import TrunkService

REALM = "carrier.test"
S = RegistrationState


class Endpoint:
    """A SipCore + driver + UDP socket on 127.0.0.1 with a free port."""

    def __init__(self) -> None:
        self.driver: SipDriver | None = None
        self.transports = TransportSet(sink=self._sink)
        self.events: list[object] = []
        self.port = 0

    def _sink(self, *args: object) -> None:
        assert self.driver is not None
        self.driver.on_inbound(*args)  # type: ignore[arg-type]

    async def start(self, handler: object, t1: float = 0.5) -> None:
        _, self.port = await self.transports.listen_udp("127.0.0.1", 0)
        core = SipCore(CoreConfig(host="127.0.0.1", port=self.port,
                                  timers=TimerConfig(t1=t1, t2=max(t1, 0.04), t4=t1)),
                       rng=Random(self.port))
        self.driver = SipDriver(core, handler)  # type: ignore[arg-type]
        self.driver.attach(self.transports)

    @property
    def core(self) -> SipCore:
        assert self.driver is not None
        return self.driver.core

    async def close(self) -> None:
        await self.transports.close()
        if self.driver is not None:
            self.driver.close()


class CarrierNode(Endpoint):
    def __init__(self, password: str = "s3cret", *, silent: bool = False) -> None:
        super().__init__()
        self.silent = silent
        self.auth = DigestAuthenticator(REALM, b"q" * 32, algorithms=("MD5",))
        self.registrar = Registrar((), min_expires_s=1, default_expires_s=60)
        self.user = UserCredentials("8621001", REALM,
                                    {"MD5": compute_ha1("8621001", REALM, password)})
        self.requests: list[Request] = []
        self.got = asyncio.Event()

    def handle(self, event: object) -> None:
        if not isinstance(event, RequestReceived) or self.silent:
            return
        req = event.request
        self.requests.append(req)
        self.got.set()
        now = 1000.0
        authz = req.headers.get("Authorization")
        result = None
        if authz:
            result = self.auth.verify("REGISTER", authz, lambda u: self.user, now, "127.0.0.1",
                                      request_uri=req.uri)
        if result is None or not result.ok:
            status, extra = self.auth.rejection(result, now, "127.0.0.1")
            resp = make_response(req, status, to_tag=self.core.ids.tag(), extra=extra)
        else:
            outcome = self.registrar.handle_register(req, event.source, result.username, now)
            resp = outcome.to_response(req, to_tag=self.core.ids.tag())
        assert self.driver is not None
        self.core.send_response(resp, event.transaction_id, self.driver.now())


async def node(trunk_port: int, *, t1: float = 0.5, password: str = "s3cret",
               host: str = "127.0.0.1") -> tuple[Endpoint, TrunkService, list[object]]:
    ours = Endpoint()
    statuses: list[object] = []
    service_box: list[TrunkService] = []

    def route(event: object) -> None:
        if not (service_box and service_box[0].handle_event(event)):
            ours.events.append(event)

    await ours.start(route, t1=t1)
    trunk = TrunkConfig(name="carrier", host=host, port=trunk_port, register=True,
                        username="8621001", password=password, register_expires_s=60)
    assert ours.driver is not None
    service = TrunkService(ours.core, ours.driver.flush, ours.driver.now, {"carrier": trunk},
                           rng=Random(5), on_status=statuses.append, stop_timeout_s=1.0)
    service_box.append(service)
    return ours, service, statuses


async def wait_for(predicate: object, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_registers_with_verified_digest_then_deregisters() -> None:
    carrier = CarrierNode()
    await carrier.start(carrier.handle)
    ours, service, statuses = await node(carrier.port)
    try:
        await service.start()
        await wait_for(lambda: service.status()["carrier"] is S.REGISTERED)
        assert [r.headers.get("Authorization") is not None for r in carrier.requests] == [
            False, True]
        assert len(carrier.registrar.lookup("sip:8621001@127.0.0.1", 1000.0)) == 1
        await service.stop()
        assert service.status()["carrier"] is S.UNREGISTERED
        last = carrier.requests[-1]
        assert last.headers.get("Expires") == "0"
        assert carrier.registrar.lookup("sip:8621001@127.0.0.1", 1000.0) == []
        news = [s.new for s in statuses if isinstance(s, RegistrationStateChanged)]
        assert news == [S.REGISTERING, S.REGISTERED, S.UNREGISTERING, S.UNREGISTERED]
        assert ours.events == []  # every REGISTER response was consumed by the service
    finally:
        await ours.close()
        await carrier.close()


async def test_wrong_password_fails_after_two_registers() -> None:
    carrier = CarrierNode()
    await carrier.start(carrier.handle)
    ours, service, _ = await node(carrier.port, password="nope")
    try:
        await service.start()
        await wait_for(lambda: service.status()["carrier"] is S.FAILED)
        assert len(carrier.requests) == 2
        client = service.clients["carrier"]
        assert client.retry_at is not None and client.retry_at - ours.driver.now() > 25
        await service.stop()
        assert service.status()["carrier"] is S.UNREGISTERED
    finally:
        await ours.close()
        await carrier.close()


async def test_silent_carrier_times_out_and_stop_is_bounded() -> None:
    carrier = CarrierNode(silent=True)
    await carrier.start(carrier.handle)
    ours, service, _ = await node(carrier.port, t1=0.01)  # Timer F = 64 * T1 = 0.64 s
    try:
        await service.start()
        await wait_for(lambda: service.status()["carrier"] is S.FAILED, timeout=5.0)
        assert service.clients["carrier"].last_reason == "timeout"
        service.retry_now("carrier")
        assert service.status()["carrier"] is S.REGISTERING
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await service.stop()  # the Expires: 0 is never answered either
        assert loop.time() - t0 < 1.5
    finally:
        await ours.close()
        await carrier.close()


async def test_host_name_is_resolved_without_blocking() -> None:
    carrier = CarrierNode()
    await carrier.start(carrier.handle)
    ours, service, _ = await node(carrier.port, host="localhost")
    try:
        await service.start()
        await wait_for(lambda: service.status()["carrier"] is S.REGISTERED)
        assert carrier.requests[0].uri == f"sip:localhost:{carrier.port}"
        await service.stop()
    finally:
        await ours.close()
        await carrier.close()


async def test_foreign_events_are_not_consumed() -> None:
    ours, service, _ = await node(5999)
    try:
        req = ours.core.create_request("OPTIONS", "sip:x@127.0.0.1", from_="<sip:a@b>",
                                       to="<sip:x@127.0.0.1>")
        assert not service.handle_event(ResponseReceived(make_response(req, 200), "nope"))
        assert not service.handle_event(object())
    finally:
        await ours.close()
