"""Calls through trunks with SIPp as the carrier, on loopback (issue 4 point 4).

One node per test, two trunks: "carrier" at 127.0.0.2 (trusted, digest credentials,
fixed caller ID, E.164 Request-URI, only user 1001 may dial out) and "cheap" at
127.0.0.3 (untrusted). Phones are on 127.0.0.1, so the source address alone tells the
switch whether a request comes from a phone or from a carrier (the whole 127/8 block is
loopback on Linux).

* out: 1001 (SIPp UAC with digest) dials 9 13812345678 -> the carrier (SIPp UAS) answers
  407, then 200; we check the carrier's trace: Request-URI, From, P-Asserted-Identity,
  the digest, Call-ID / From tag kept and CSeq + 1 on the second INVITE.
* in: the carriers (SIPp UAC, no credentials) call DIDs that reach extension 1002 (a SIPp
  UAS); the trusted carrier's P-Asserted-Identity is the caller, the untrusted one's is
  ignored and not passed on.
* toll fraud: an unauthenticated INVITE to 9... and to a DID from an unknown address get
  407 and are never routed; a user not in allowed_users, an international number, and
  a carrier dialing 9... (transit) are refused; the carrier never sees an INVITE.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from signaling.auth import DigestClient, digest_response, parse_digest_params
from signaling.location import compute_ha1

from .conftest import (
    SIPP_DIR,
    Node,
    free_port,
    require,
    run_cli,
    sipp_register,
    start_node,
    stop_node,
)

pytestmark = pytest.mark.interop

PASSWORD = "secret"
TRUNK_PASSWORD = "tRunk-s3cret"
CARRIER_IP = "127.0.0.2"
CHEAP_IP = "127.0.0.3"
STRANGER_IP = "127.0.0.4"
DID_TRUSTED = "02161234567"
DID_CHEAP = "02161230000"
DID_HOTLINE = "02161239999"


@dataclass
class TrunkNode:
    node: Node
    carrier_port: int
    cheap_port: int


def _config(carrier_port: int, cheap_port: int) -> str:
    return f"""
[calls]
no_answer_timeout_s = 10

[trunks.carrier]
enabled = true
host = "{CARRIER_IP}"
port = {carrier_port}
username = "8621001"
password = "{TRUNK_PASSWORD}"
realm = "carrier.test"
country_code = "86"
area_code = "21"
number_format = "e164"
outbound_rules = []
caller_id_mode = "fixed"
caller_id_number = "{DID_TRUSTED}"
caller_id_format = "national"
trusted = true
did_map = {{ "{DID_TRUSTED}" = "user:1002", "{DID_HOTLINE}" = "ivr:hotline" }}
allowed_users = ["1001"]

[trunks.cheap]
enabled = true
host = "{CHEAP_IP}"
port = {cheap_port}
country_code = "86"
area_code = "21"
did_map = {{ "{DID_CHEAP}" = "1002" }}

[[dialplan.rules]]
name = "extensions"
match = "_10XX"
target = "extension"

[[dialplan.rules]]
name = "outbound"
match = "_9."
target = "trunk"
trunk = "carrier"
strip = 1
source = "user"
"""


@pytest.fixture
def trunk_node(tmp_path: Path) -> Iterator[TrunkNode]:
    data = tmp_path / "data"
    data.mkdir()
    for user in ("1001", "1002", "1003"):
        res = run_cli(data, "user", "add", user, "--password", PASSWORD)
        assert res.returncode == 0, res.stderr
    carrier_port, cheap_port = free_port(), free_port()
    cfg = tmp_path / "trunks.toml"
    cfg.write_text(_config(carrier_port, cheap_port))
    node = start_node(data, "--config", str(cfg))
    yield TrunkNode(node, carrier_port, cheap_port)
    stop_node(node)


def _cdrs(node: Node) -> list[sqlite3.Row]:
    assert node.proc.poll() is not None, "stop the node first"
    with sqlite3.connect(node.data_dir / "softswitch.db") as db:
        db.row_factory = sqlite3.Row
        return list(db.execute("SELECT * FROM cdrs ORDER BY id"))


def _messages(workdir: Path) -> str:
    logs = list(workdir.glob("*_messages.log"))
    assert logs, f"SIPp wrote no message trace in {workdir}"
    return "".join(p.read_text(errors="replace") for p in logs)


def _requests(log: str, method: str) -> list[str]:
    """The ``method`` requests SIPp received, from its -trace_msg log."""
    return [m.group(0) for m in re.finditer(rf"^{method} sip:.*?\r?\n\r?\n", log, re.S | re.M)]


def _header(message: str, name: str) -> str | None:
    found = re.search(rf"^{name}:\s*(.+?)\r?$", message, re.M | re.I)
    return found.group(1) if found else None


def _sipp(args: list[str], workdir: Path, timeout: float = 60) -> subprocess.Popen[str]:
    workdir.mkdir(exist_ok=True)
    return subprocess.Popen([require("sipp"), *args], cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=5)
    return proc.returncode, out


def _register(tmp_path: Path, node: Node, user: str, port: int) -> None:
    sipp_register(tmp_path, node.sip_port, user, PASSWORD, port)


# ---- out: phone -> switch -> carrier (407, then 200) -------------------------------------------

@pytest.mark.slow
def test_phone_calls_out_through_the_carrier_with_digest(tmp_path: Path,
                                                         trunk_node: TrunkNode) -> None:
    node = trunk_node.node
    carrier_dir = tmp_path / "carrier"
    carrier = _sipp(["-sf", str(SIPP_DIR / "carrier_invite_uas.xml"), "-i", CARRIER_IP,
                     "-p", str(trunk_node.carrier_port), "-mp", str(free_port()), "-m", "1",
                     "-nostdin", "-timeout", "30", "-timeout_error", "-trace_msg",
                     "-trace_err"], carrier_dir)
    time.sleep(0.3)  # SIPp binds its socket
    dial = "913812345678"
    csv = tmp_path / "uac.csv"
    csv.write_text(f"SEQUENTIAL\n1001;[authentication username=1001 "
                   f"password={PASSWORD}];{dial}\n")
    phone = _sipp(["-sf", str(SIPP_DIR / "uac_b2bua.xml"), f"127.0.0.1:{node.sip_port}",
                   "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()),
                   "-inf", str(csv), "-auth_uri", f"{dial}@127.0.0.1:{node.sip_port}",
                   "-m", "1", "-d", "500", "-nostdin", "-timeout", "30", "-timeout_error",
                   "-default_behaviors", "all,-abortunexp", "-trace_err"], tmp_path / "phone")
    phone_rc, phone_out = _finish(phone)
    carrier_rc, carrier_out = _finish(carrier)
    assert phone_rc == 0, phone_out + node.log()[-3000:]
    assert carrier_rc == 0, carrier_out + node.log()[-3000:]

    invites = _requests(_messages(carrier_dir), "INVITE")
    assert len(invites) == 2, invites
    first, second = invites
    uri = f"sip:+8613812345678@{CARRIER_IP}:{trunk_node.carrier_port}"
    for invite in invites:
        assert invite.startswith(f"INVITE {uri} SIP/2.0"), invite
        assert re.search(rf"<sip:{DID_TRUSTED}@{CARRIER_IP}>", _header(invite, "From") or "")
        assert _header(invite, "P-Asserted-Identity") == f"<sip:{DID_TRUSTED}@{CARRIER_IP}>"
    assert _header(first, "Proxy-Authorization") is None
    # RFC 3261 §8.1.3.5 / §22.2: same Call-ID and From tag, CSeq + 1.
    assert _header(first, "Call-ID") == _header(second, "Call-ID")
    tag = re.compile(r";tag=([^;\s]+)")
    assert tag.findall(_header(first, "From") or "") == tag.findall(_header(second, "From")
                                                                     or "")
    assert _header(first, "CSeq") == "1 INVITE" and _header(second, "CSeq") == "2 INVITE"
    _, p = parse_digest_params(_header(second, "Proxy-Authorization") or "")
    ha1 = compute_ha1("8621001", "carrier.test", TRUNK_PASSWORD)
    assert p["uri"] == uri and p["opaque"] == "op7"
    assert p["response"] == digest_response(algorithm="MD5", ha1=ha1, nonce=p["nonce"],
                                            method="INVITE", uri=uri, qop=p["qop"],
                                            nc=p["nc"], cnonce=p["cnonce"])
    stop_node(node)
    (cdr,) = _cdrs(node)
    assert (cdr["disposition"], cdr["caller"], cdr["callee"]) == ("answered", "1001", dial)
    assert (cdr["route"], cdr["target"]) == ("outbound", "trunk:carrier/13812345678")


# ---- in: carrier -> DID -> extension 1002 --------------------------------------------------------

@pytest.mark.slow
def test_carrier_calls_reach_the_did_target_with_trusted_identity_only(
        tmp_path: Path, trunk_node: TrunkNode) -> None:
    node = trunk_node.node
    uas_port = free_port()
    _register(tmp_path, node, "1002", uas_port)
    uas_dir = tmp_path / "uas"
    uas = _sipp(["-sf", str(SIPP_DIR / "uas_b2bua.xml"), "-i", "127.0.0.1", "-p",
                 str(uas_port), "-mp", str(free_port()), "-m", "2", "-nostdin", "-timeout",
                 "30", "-timeout_error", "-trace_msg", "-trace_err"], uas_dir)
    time.sleep(0.3)
    for ip, port, did in ((CARRIER_IP, trunk_node.carrier_port, DID_TRUSTED),
                          (CHEAP_IP, trunk_node.cheap_port, DID_CHEAP)):
        rc, out = _finish(_sipp(
            ["-sf", str(SIPP_DIR / "carrier_invite_uac.xml"), f"127.0.0.1:{node.sip_port}",
             "-i", ip, "-p", str(port), "-mp", str(free_port()), "-s", did,
             "-key", "caller", "13900001111", "-key", "asserted", "+8613900002222",
             "-m", "1", "-d", "300", "-nostdin", "-timeout", "20", "-timeout_error",
             "-default_behaviors", "all,-abortunexp", "-trace_err"], tmp_path / f"in-{ip}"))
        assert rc == 0, out + node.log()[-3000:]
    uas_rc, uas_out = _finish(uas)
    assert uas_rc == 0, uas_out
    # A DID routed straight to the hotline IVR (a program the dial plan does not name).
    rc, out = _finish(_sipp(
        ["-sf", str(SIPP_DIR / "carrier_invite_uac.xml"), f"127.0.0.1:{node.sip_port}",
         "-i", CARRIER_IP, "-p", str(trunk_node.carrier_port), "-mp", str(free_port()),
         "-s", DID_HOTLINE, "-key", "caller", "13900001111", "-key", "asserted",
         "+8613900002222", "-m", "1", "-d", "300", "-nostdin", "-timeout", "20",
         "-timeout_error", "-default_behaviors", "all,-abortunexp", "-trace_err"],
        tmp_path / "in-hotline"))
    assert rc == 0, out + node.log()[-3000:]
    invites = _requests(_messages(uas_dir), "INVITE")
    assert len(invites) == 2, invites
    trusted, cheap = invites
    # The trusted carrier's P-Asserted-Identity is the caller; the display name passes on.
    assert re.search(r'^"Carrier Caller" <sip:\+8613900002222@', _header(trusted, "From") or "")
    # The untrusted one's is ignored (the From user is the caller) and stripped.
    assert re.search(r'<sip:13900001111@', _header(cheap, "From") or "")
    assert "+8613900002222" not in cheap
    stop_node(node)
    cdrs = _cdrs(node)
    assert [(c["caller"], c["callee"], c["disposition"]) for c in cdrs] == [
        ("+8613900002222", DID_TRUSTED, "answered"), ("13900001111", DID_CHEAP, "answered"),
        ("+8613900002222", DID_HOTLINE, "answered")]
    assert [(c["route"], c["target"], c["source"]) for c in cdrs] == [
        ("did:carrier", "extension:1002", "trunk"), ("extensions", "extension:1002", "trunk"),
        ("did:carrier", "ivr:hotline", "trunk")]


# ---- toll fraud --------------------------------------------------------------------------------

class _Phone:
    """A minimal UDP SIP client bound to ``ip`` (it ACKs every final non-2xx)."""

    def __init__(self, ip: str, node_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.settimeout(5)
        self.ip, self.port = ip, self.sock.getsockname()[1]
        self.node = ("127.0.0.1", node_port)

    def close(self) -> None:
        self.sock.close()

    def _invite(self, number: str, user: str, call_id: str, tag: str, cseq: int,
                branch: str, extra: str = "") -> bytes:
        sdp = (f"v=0\r\no=- 1 1 IN IP4 {self.ip}\r\ns=-\r\nc=IN IP4 {self.ip}\r\nt=0 0\r\n"
               "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n").encode()
        head = (f"INVITE sip:{number}@127.0.0.1:{self.node[1]} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {self.ip}:{self.port};branch={branch};rport\r\n"
                f"From: <sip:{user}@127.0.0.1>;tag={tag}\r\nTo: <sip:{number}@127.0.0.1>\r\n"
                f"Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\n"
                f"Contact: <sip:{user}@{self.ip}:{self.port}>\r\nMax-Forwards: 70\r\n{extra}"
                f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n")
        return head.encode() + sdp

    def _final(self, call_id: str, cseq: int) -> str:
        while True:
            data = self.sock.recv(65536).decode(errors="replace")
            if f"Call-ID: {call_id}" in data and f"CSeq: {cseq} INVITE" in data:
                status = int(data.split(" ", 2)[1])
                if status >= 200:
                    return data

    def _ack(self, number: str, final: str, call_id: str, tag: str, cseq: int,
             branch: str) -> None:
        to = _header(final, "To") or ""
        ack = (f"ACK sip:{number}@127.0.0.1:{self.node[1]} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {self.ip}:{self.port};branch={branch};rport\r\n"
               f"From: <sip:x@127.0.0.1>;tag={tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
               f"CSeq: {cseq} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        self.sock.sendto(ack.encode(), self.node)

    def call(self, number: str, user: str, password: str | None = None) -> int:
        """INVITE ``number``; answer a 407 with digest when ``password`` is given. Returns
        the last final status."""
        call_id, tag = uuid.uuid4().hex, uuid.uuid4().hex[:8]
        cseq, branch, extra = 1, f"z9hG4bK{uuid.uuid4().hex}", ""
        while True:
            self.sock.sendto(self._invite(number, user, call_id, tag, cseq, branch, extra),
                             self.node)
            final = self._final(call_id, cseq)
            status = int(final.split(" ", 2)[1])
            self._ack(number, final, call_id, tag, cseq, branch)
            if status != 407 or password is None or extra:
                return status
            challenge = _header(final, "Proxy-Authenticate") or ""
            uri = f"sip:{number}@127.0.0.1:{self.node[1]}"
            authz = DigestClient(lambda: uuid.uuid4().hex[:16]).authorize(
                challenge, "INVITE", uri, user, password=password)
            extra = f"Proxy-Authorization: {authz}\r\n"
            cseq, branch = cseq + 1, f"z9hG4bK{uuid.uuid4().hex}"


def test_trunks_are_reached_by_authorised_users_only(trunk_node: TrunkNode) -> None:
    node = trunk_node.node
    carrier = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the carrier, listening
    carrier.bind((CARRIER_IP, trunk_node.carrier_port))
    carrier.settimeout(0.5)
    phone = _Phone("127.0.0.1", node.sip_port)
    cheap = _Phone(CHEAP_IP, node.sip_port)
    stranger = _Phone(STRANGER_IP, node.sip_port)
    try:
        # No credentials: challenged, never routed, whatever the number.
        assert phone.call("913812345678", "1001") == 407
        assert stranger.call(DID_TRUSTED, "13900001111") == 407
        # Wrong password: challenged again (the lockout counts it), never routed.
        assert phone.call("913812345678", "1001", "wrong") == 407
        # Authenticated but not in the carrier's allowed_users.
        assert phone.call("913812345678", "1003", PASSWORD) == 403
        # Allowed user, international number on a trunk without allow_international.
        assert phone.call("900441234567890", "1001", PASSWORD) == 403
        # A carrier dialing out through us (transit): the "9." rule is for users only.
        assert cheap.call("913812345678", "13900001111") == 404
        with pytest.raises(TimeoutError):
            data = carrier.recv(65536)
            pytest.fail(f"the carrier received {data[:200]!r}")
    finally:
        for peer in (phone, cheap, stranger):
            peer.close()
        carrier.close()
    stop_node(node)
    cdrs = _cdrs(node)
    assert [(c["caller"], c["callee"], c["sip_status"]) for c in cdrs] == [
        ("1003", "913812345678", 403), ("1001", "900441234567890", 403),
        ("13900001111", "913812345678", 404)]
    assert "trunk carrier: user call to '13812345678' by 1003: user not allowed" in node.log()
