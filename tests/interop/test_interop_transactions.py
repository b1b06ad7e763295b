"""SipCore's transactions and dialogs against SIPp's built-in call scenarios, on loopback.

The core is driven directly over one UDP socket (a few lines of select loop standing in for
signaling/aio): as a UAC calling ``sipp -sn uas`` (INVITE, 180, 200, our ACK, our BYE) and
as a UAS answering ``sipp -sn uac`` (its INVITE, our 180/200, its ACK and BYE). Bounded in
calls and time; SIPp is stopped by PID.
"""

from __future__ import annotations

import select
import socket
import subprocess
import time
from pathlib import Path

import pytest

from signaling.core import CoreConfig, SipCore
from signaling.events import Address, RequestReceived, ResponseReceived
from signaling.message import make_response

from .conftest import free_port, require

pytestmark = pytest.mark.interop

SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 6000 RTP/AVP 0\r\n")


class UdpCore:
    """A SipCore on a real loopback socket; ``pump`` moves data and fires timers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        port = self.sock.getsockname()[1]
        self.core = SipCore(CoreConfig(host="127.0.0.1", port=port))

    def flush(self) -> None:
        for data, dest in self.core.datagrams_to_send():
            self.sock.sendto(data, (dest.host, dest.port))

    def pump(self, wait: float) -> list[object]:
        now = time.monotonic()
        deadline = self.core.next_deadline()
        timeout = wait if deadline is None else max(0.0, min(wait, deadline - now))
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if ready:
            while True:
                try:
                    data, (host, port) = self.sock.recvfrom(65536)
                except BlockingIOError:
                    break
                self.core.handle_datagram(data, Address("udp", host, port), time.monotonic())
        now = time.monotonic()
        deadline = self.core.next_deadline()
        if deadline is not None and deadline <= now:
            self.core.handle_timer(now)
        self.flush()
        return self.core.events()

    def close(self) -> None:
        self.sock.close()


def _sipp(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [require("sipp"), *args, "-i", "127.0.0.1", "-nostdin", "-timeout", "20",
         "-timeout_error", "-trace_err"],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen[str]) -> str:
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_core_as_uac_calls_sipp_uas(tmp_path: Path) -> None:
    port = free_port()
    sipp = _sipp("-sn", "uas", "-p", str(port), "-m", "3", cwd=tmp_path)
    ua = UdpCore()
    target = Address("udp", "127.0.0.1", port)
    try:
        # No waiting for SIPp to bind: Timer A retransmits the first INVITE until it does.
        answered = byes_ok = 0
        for i in range(3):
            invite = ua.core.create_request(
                "INVITE", f"sip:service@127.0.0.1:{port}", from_="<sip:core@127.0.0.1>",
                to=f"<sip:service@127.0.0.1:{port}>", body=SDP, content_type="application/sdp")
            tid = ua.core.send_request(invite, target, time.monotonic())
            ua.flush()
            dialog = None
            end = time.monotonic() + 10
            while time.monotonic() < end and dialog is None:
                for ev in ua.pump(0.1):
                    if (isinstance(ev, ResponseReceived) and ev.transaction_id == tid
                            and ev.response.status == 200):
                        dialog = ev.dialog_id
            assert dialog is not None, f"call {i}: no 200 OK"
            answered += 1
            bye = ua.core.send_in_dialog(dialog, "BYE", time.monotonic())
            ua.flush()
            end = time.monotonic() + 10
            done = False
            while time.monotonic() < end and not done:
                for ev in ua.pump(0.1):
                    if isinstance(ev, ResponseReceived) and ev.transaction_id == bye:
                        done = ev.response.status == 200
            byes_ok += done
        assert (answered, byes_ok) == (3, 3)
        assert ua.core.dialogs == {}
    finally:
        out = _stop(sipp)
        ua.close()
    assert sipp.returncode == 0, out


def test_core_as_uas_answers_sipp_uac(tmp_path: Path) -> None:
    ua = UdpCore()
    port = ua.sock.getsockname()[1]
    sipp = _sipp("-sn", "uac", f"127.0.0.1:{port}", "-p", str(free_port()), "-m", "5",
                 "-r", "10", "-d", "100", cwd=tmp_path)
    invites = byes = acks = 0
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end and sipp.poll() is None:
            for ev in ua.pump(0.05):
                if isinstance(ev, RequestReceived):
                    req, tid, now = ev.request, ev.transaction_id, time.monotonic()
                    if req.method == "INVITE":
                        invites += 1
                        tag = ua.core.ids.tag()
                        ua.core.send_response(make_response(req, 180, to_tag=tag), tid, now)
                        ua.core.send_response(make_response(
                            req, 200, to_tag=tag, body=SDP,
                            extra=[("Content-Type", "application/sdp")]), tid, now)
                    elif req.method == "BYE":
                        byes += 1
                        ua.core.send_response(make_response(req, 200), tid, now)
                    ua.flush()
                elif type(ev).__name__ == "AckReceived":
                    acks += 1
    finally:
        out = _stop(sipp)
        ua.close()
    assert sipp.returncode == 0, out
    assert (invites, acks, byes) == (5, 5, 5)
    assert ua.core.dialogs == {}
