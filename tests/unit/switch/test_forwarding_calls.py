"""Call forwarding and voicemail in the call manager, with in-process phones (the b2bua
harness) and the real media service: forward on busy / no answer / always, loops, the
voicemail fallback, and messages recorded from RTP the test sends (tone, "#", hang-up)."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import struct
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _b2bua_harness import Net, Phone, Switch

from dsp.g711 import ulaw_encode
from signaling.events import CancelReceived
from signaling.message import make_response
from signaling.sdp import parse as parse_sdp
from switch.config import VoicemailConfig, load_config
from switch.events import CallRouted, RecordingStarted
from switch.forwarding import Forwarding, ForwardingTable, ForwardSettings
from switch.router import DialPlan, Trunk
from switch.voicemail import VoicemailService


class MemoryRepo:
    """Stands in for ``VoicemailRepository`` (storage has its own tests)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    async def add(self, box: str, caller: str, call_id: str, duration_s: float, path: str,
                  ended_by: str, created_at: dt.datetime | None = None) -> Any:
        self.rows.append({"box": box, "caller": caller, "call_id": call_id,
                          "duration_s": duration_s, "path": path, "ended_by": ended_by})

        class Info:
            id = len(self.rows)

        return Info()


@pytest.fixture
async def net() -> Net:
    return Net()


@pytest.fixture
async def switch(net: Net, tmp_path: Path) -> AsyncIterator[Switch]:
    sw = Switch(net, tmp_path, no_answer_timeout_s=0.6)
    sw.table = ForwardingTable(None)  # type: ignore[attr-defined]
    sw.repo = MemoryRepo()  # type: ignore[attr-defined]
    sw.vm = VoicemailService(  # type: ignore[attr-defined]
        sw.media, sw.repo, directory=tmp_path / "vm",
        config=VoicemailConfig(max_s=8.0, min_s=1.0, boxes=("operator",)),
        user_exists=sw.users.__contains__)
    sw.calls.voicemail = sw.vm  # type: ignore[attr-defined]
    sw.calls.forwarding = Forwarding(sw.table, sw.vm, limit=3)  # type: ignore[attr-defined]
    await sw.start()
    yield sw
    await sw.stop()


def _forward(sw: Switch, ext: str, **kw: Any) -> None:
    sw.table.settings[ext] = ForwardSettings(ext, **kw)  # type: ignore[attr-defined]


def _routes(sw: Switch) -> list[tuple[str, str]]:
    return [(e.rule, e.target) for e in sw.of_type(CallRouted)]  # type: ignore[attr-defined]


async def test_busy_forwards_to_another_extension(net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="busy")
    carol = Phone(net, "1003", 5073)
    switch.register(bob)
    switch.register(carol)
    _forward(switch, "1002", busy="1003")
    txn = alice.call("1002")
    await switch.settle(lambda: 200 in alice.responses(txn))
    assert 486 not in alice.responses(txn) and carol.requests("INVITE")
    assert _routes(switch) == [("extensions", "extension:1002"),
                               ("forward-busy/extensions", "extension:1003")]
    alice.send_in_dialog("BYE")
    await switch.settle(lambda: bool(carol.requests("BYE")) and bool(switch.cdrs))
    cdr = switch.cdrs[0]
    assert (cdr.callee, cdr.disposition.value, cdr.target) == ("1002", "answered",
                                                               "extension:1003")


async def test_no_answer_forward_uses_its_ring_time_and_cancels_the_first_phone(
        net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="ring")
    carol = Phone(net, "1003", 5073)
    switch.register(bob)
    switch.register(carol)
    _forward(switch, "1002", no_answer="1003", ring_s=0.2)
    switch.calls.no_answer_timeout_s = 5.0
    loop = asyncio.get_running_loop()
    start = loop.time()
    txn = alice.call("1002")
    await switch.settle(lambda: bool(carol.requests("INVITE")))
    assert loop.time() - start < 3.0  # its 0.2 s, not the node's 5 s
    assert any(isinstance(e, CancelReceived) for e in bob.events)
    await switch.settle(lambda: 200 in alice.responses(txn))
    assert _routes(switch)[-1] == ("forward-no_answer/extensions", "extension:1003")


async def test_unconditional_forward_does_not_ring_and_loops_end_in_482(
        net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072)
    switch.register(bob)
    _forward(switch, "1002", always="1003")
    _forward(switch, "1003", always="1002")
    txn = alice.call("1002")
    await switch.settle(lambda: 482 in alice.responses(txn) and bool(switch.cdrs))
    assert not bob.requests("INVITE")
    assert len(_routes(switch)) == 4  # the dialed number, then the 3 forwards allowed
    assert (switch.cdrs[0].hangup_cause, switch.cdrs[0].sip_status) == ("forward_loop", 482)


async def test_decline_is_not_forwarded_and_fallback_off_gives_480(net: Net,
                                                                   switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="ignore")
    carol = Phone(net, "1003", 5073)
    switch.register(bob)
    switch.register(carol)
    _forward(switch, "1002", busy="1003", no_answer="1003")
    txn = alice.call("1002")
    await switch.settle(lambda: bool(bob.requests("INVITE")))
    invite = bob.requests("INVITE")[-1]
    bob.core.send_response(make_response(invite.request, 603, to_tag="d1"),
                           invite.transaction_id, net.loop.time())
    net.pump()
    await switch.settle(lambda: 603 in alice.responses(txn) and bool(switch.cdrs))
    assert not carol.requests("INVITE")  # the callee's "no" is final
    switch.calls.forwarding.fallback = False  # type: ignore[union-attr]
    switch.users["1004"] = switch.users["1003"]
    erin = Phone(net, "1001", 5075)
    txn = erin.call("1004")  # a user, not registered, voicemail fallback off
    await switch.settle(lambda: 480 in erin.responses(txn) and len(switch.cdrs) == 2)
    assert switch.cdrs[1].hangup_cause == "subscriber_absent"
    assert not switch.vm.last  # type: ignore[attr-defined]


async def test_busy_without_forward_and_forward_to_a_box_reach_voicemail(
        net: Net, switch: Switch) -> None:
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="busy")
    switch.register(bob)
    txn = alice.call("1002")
    await switch.settle(lambda: 200 in alice.responses(txn))  # the mailbox answers
    assert 486 not in alice.responses(txn)
    assert _routes(switch)[-1] == ("voicemail-busy", "voicemail:1002")
    alice.send_in_dialog("BYE")
    await switch.settle(lambda: len(switch.cdrs) == 1)
    _forward(switch, "1003", always="voicemail:operator")
    carol = Phone(net, "1001", 5074)
    txn = carol.call("1003")
    await switch.settle(lambda: 200 in carol.responses(txn))
    assert _routes(switch)[-1] == ("forward-always", "voicemail:operator")
    _forward(switch, "1003", always="voicemail:nobody")  # no such box: 480, not silence
    dave = Phone(net, "1001", 5075)
    txn = dave.call("1003")
    await switch.settle(lambda: 480 in dave.responses(txn))


class FakeTrunks:
    """Stands in for ``switch.trunks.outbound.TrunkCalls`` (``CallManager.trunks``)."""

    def __init__(self) -> None:
        self.dialed: list[tuple[str, Trunk]] = []

    def dial(self, manager: Any, call: Any, target: Trunk) -> None:
        self.dialed.append((call.id, target))
        manager._fail(call, 503, "network_failure", "system")


async def test_no_answer_forward_to_an_external_number_goes_to_the_trunk(
        net: Net, switch: Switch, tmp_path: Path) -> None:
    config = tmp_path / "plan.toml"
    config.write_text(
        '[dialplan]\n[[dialplan.rules]]\nname = "extensions"\nmatch = "_10XX"\n'
        'target = "extension"\n\n[[dialplan.rules]]\nname = "outbound"\nmatch = "_9."\n'
        'target = "trunk"\ntrunk = "demo"\nstrip = 1\nsource = "user"\n')
    switch.calls.dialplan = DialPlan.from_config(load_config(str(config)).routing)
    switch.calls.trunks = trunks = FakeTrunks()  # type: ignore[attr-defined]
    alice = Phone(net, "1001", 5071)
    bob = Phone(net, "1002", 5072, on_invite="ring")
    switch.register(bob)
    _forward(switch, "1002", no_answer="913800000000", ring_s=0.2)  # the agent's mobile
    txn = alice.call("1002")
    await switch.settle(lambda: 503 in alice.responses(txn))
    ((_, target),) = trunks.dialed
    assert target == Trunk("demo", "13800000000")
    assert _routes(switch)[-1] == ("forward-no_answer/outbound", "trunk:demo/13800000000")


# ---- voicemail: RTP from a real socket ----------------------------------------------------


async def _send_tone(port: int, seconds: float) -> None:
    """20 ms PCMU packets of a 500 Hz tone, paced in real time, to the switch's port (from
    any port: the switch latches onto the source, symmetric RTP)."""
    n = int(seconds * 8000)
    pcm = (9000 * np.sin(2 * np.pi * 500.0 * np.arange(n) / 8000.0)).astype(np.int16)
    payload = ulaw_encode(pcm).tobytes()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        for k, i in enumerate(range(0, len(payload) - 159, 160)):
            header = struct.pack("!BBHII", 0x80, 0, k + 1, k * 160, 0x1234)
            s.sendto(header + payload[i:i + 160], ("127.0.0.1", port))
            await asyncio.sleep(0.02)


async def _leave_message(net: Net, switch: Switch, tone_s: float, end: str,
                         port: int = 5071) -> Phone:
    alice = Phone(net, "1001", port)
    started = len(switch.of_type(RecordingStarted))
    txn = alice.call("1002")  # not registered: no answer -> its mailbox
    await switch.settle(lambda: 200 in alice.responses(txn))
    rtp_port = parse_sdp(alice.last_response(200).body).media[0].port
    await switch.settle(lambda: len(switch.of_type(RecordingStarted)) > started, timeout=5)
    if tone_s:
        await _send_tone(rtp_port, tone_s)
    if end == "key":
        alice.send_in_dialog("INFO", b"Signal=#\r\nDuration=160\r\n", "application/dtmf-relay")
        await switch.settle(lambda: bool(alice.requests("BYE")), timeout=3)
    else:
        alice.send_in_dialog("BYE")
    await switch.settle(lambda: bool(switch.vm.last) and bool(switch.cdrs),  # type: ignore
                        timeout=3)
    return alice


async def test_voicemail_records_the_caller_until_hash(net: Net, switch: Switch) -> None:
    await _leave_message(net, switch, 1.6, "key")
    (result,) = switch.vm.last  # type: ignore[attr-defined]
    (row,) = switch.repo.rows  # type: ignore[attr-defined]
    assert (row["box"], row["caller"], row["ended_by"]) == ("1002", "1001", "key")
    assert 1.0 <= row["duration_s"] < 8.0 and row["path"] == result.path  # "#" before max_s
    with wave.open(result.path) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)[::2].astype(float)
    spectrum = np.abs(np.fft.rfft(pcm))
    assert abs(np.fft.rfftfreq(len(pcm), 1 / 8000)[int(spectrum.argmax())] - 500) < 15
    cdr = switch.cdrs[0]
    assert (cdr.disposition.value, cdr.target, cdr.route) == (
        "answered", "voicemail:1002", "voicemail-no_answer")
    assert cdr.recording_ref == result.path and cdr.hangup_side == "system"


async def test_hang_up_keeps_the_message_and_silence_is_discarded(net: Net,
                                                                  switch: Switch) -> None:
    await _leave_message(net, switch, 1.4, "hangup")
    (row,) = switch.repo.rows  # type: ignore[attr-defined]
    assert row["ended_by"] == "hangup" and row["duration_s"] >= 1.0
    assert Path(row["path"]).is_file()
    switch.cdrs.clear()
    await _leave_message(net, switch, 0.0, "key", port=5074)  # "#" at once: nothing said
    result = switch.vm.last[-1]  # type: ignore[attr-defined]
    assert result.message_id is None and not Path(result.path).exists()
    assert len(switch.repo.rows) == 1  # type: ignore[attr-defined]
    assert switch.cdrs[0].recording_ref == ""  # the discarded file is not referenced
