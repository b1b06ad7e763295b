"""A trunk registering to SIPp acting as the carrier's registrar (UAS scenario
``sipp/carrier_register_uas.xml``): digest challenge, 200 with Contact;expires, then the
deregistration at stop. The TrunkService runs in-process over real UDP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from random import Random

import pytest

from signaling.aio.driver import SipDriver
from signaling.aio.transport import TransportSet
from signaling.auth import digest_response, parse_digest_params
from signaling.core import CoreConfig, SipCore
from signaling.location import compute_ha1
from switch.trunks.config import TrunkConfig
from switch.trunks.registration import RegistrationState, RegistrationStateChanged
from switch.trunks.service import TrunkService

from .conftest import SIPP_DIR, free_port, require

pytestmark = pytest.mark.interop

PASSWORD = "tRunk-s3cret"


def _registers(log: str) -> list[str]:
    """The REGISTER requests SIPp received, from its -trace_msg log."""
    return [m.group(0) for m in re.finditer(r"REGISTER sip:.*?\r?\n\r?\n", log, re.S)]


def _verify_digest(register: str) -> None:
    """Check the Authorization SIPp could not check (RFC 2617 §3.2.2 with qop=auth)."""
    authz = re.search(r"^Authorization:\s*(.+?)\r?$", register, re.M)
    assert authz is not None, register
    _, p = parse_digest_params(authz.group(1))
    ha1 = compute_ha1(p["username"], p["realm"], PASSWORD)
    expected = digest_response(algorithm="MD5", ha1=ha1, nonce=p["nonce"], method="REGISTER",
                               uri=p["uri"], qop=p["qop"], nc=p["nc"], cnonce=p["cnonce"])
    assert p["response"] == expected
    assert p["opaque"] == "op42" and p["realm"] == "carrier.test"
    request_uri = register.split(" ", 2)[1]
    assert p["uri"] == request_uri


async def test_trunk_registers_to_sipp_carrier_and_deregisters(tmp_path: Path) -> None:
    sipp = require("sipp")
    carrier_port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sipp, "-sf", str(SIPP_DIR / "carrier_register_uas.xml"), "-i", "127.0.0.1",
        "-p", str(carrier_port), "-m", "1", "-timeout", "15", "-timeout_error", "-nostdin",
        "-trace_msg", "-trace_err", cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    holder: list[SipDriver] = []
    transports = TransportSet(sink=lambda *a: holder[0].on_inbound(*a))
    statuses: list[RegistrationStateChanged] = []
    try:
        _, port = await transports.listen_udp("127.0.0.1", 0)
        core = SipCore(CoreConfig(host="127.0.0.1", port=port), rng=Random(11))
        service_box: list[TrunkService] = []
        unrouted: list[object] = []

        def route(event: object) -> None:
            if not service_box[0].handle_event(event):
                unrouted.append(event)

        driver = SipDriver(core, route)
        driver.attach(transports)
        holder.append(driver)
        trunk = TrunkConfig(name="carrier", host="127.0.0.1", port=carrier_port,
                            register=True, username="8621001", password=PASSWORD,
                            realm="carrier.test", register_expires_s=300)
        service = TrunkService(core, driver.flush, driver.now, [trunk], rng=Random(3),
                               on_status=statuses.append, stop_timeout_s=3.0)
        service_box.append(service)
        await service.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while service.status()["carrier"] is not RegistrationState.REGISTERED:
            assert loop.time() < deadline, f"not registered: {statuses}"
            assert service.status()["carrier"] is not RegistrationState.FAILED, statuses
            await asyncio.sleep(0.02)
        client = service.clients["carrier"]
        assert client.expires_at is not None
        assert 59 <= client.expires_at - driver.now() <= 60  # SIPp granted 60 of 300
        await service.stop()
        assert service.status()["carrier"] is RegistrationState.UNREGISTERED
        assert [s.new for s in statuses] == [
            RegistrationState.REGISTERING, RegistrationState.REGISTERED,
            RegistrationState.UNREGISTERING, RegistrationState.UNREGISTERED]
        assert unrouted == []
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, out.decode(errors="replace")
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await transports.close()
        if holder:
            holder[0].close()
    logs = list(tmp_path.glob("*_messages.log"))
    assert logs, "SIPp wrote no message trace"
    registers = _registers(logs[0].read_text(errors="replace"))
    assert len(registers) >= 3
    first, second, last = registers[0], registers[1], registers[-1]
    assert "Authorization:" not in first
    _verify_digest(second)
    assert re.search(r"^Expires:\s*0\s*$", last, re.M)
    assert "Authorization:" in last  # the kept challenge, nc=00000002
