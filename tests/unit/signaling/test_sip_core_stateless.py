"""SipCore.stateless_hook: answers chosen by the application without a transaction."""

from __future__ import annotations

from signaling.core import CoreConfig, SipCore
from signaling.events import Address, RequestReceived
from signaling.message import Request, Response, make_response

SRC = Address("udp", "192.0.2.10", 5062)


def _register(branch: str, authz: str | None = None) -> bytes:
    lines = [
        "REGISTER sip:example.com SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK{branch};rport",
        "From: <sip:alice@example.com>;tag=a1",
        "To: <sip:alice@example.com>",
        "Call-ID: stateless-1",
        "CSeq: 1 REGISTER",
        "Contact: <sip:alice@192.0.2.10:5062>",
    ]
    if authz:
        lines.append(f"Authorization: {authz}")
    return ("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode()


def _hook(request: Request, source: Address, now: float) -> Response | None:
    if request.method == "REGISTER" and "Authorization" not in request.headers:
        return make_response(request, 401, to_tag="t", extra=[("WWW-Authenticate", "Digest x")])
    return None


def test_hook_answers_without_transaction_and_retransmissions_get_answers_too() -> None:
    core = SipCore(CoreConfig(host="198.51.100.1"))
    core.stateless_hook = _hook
    for _ in range(2):  # the request and its retransmission
        core.handle_datagram(_register("aaa"), SRC, 10.0)
        out = core.datagrams_to_send()
        assert len(out) == 1
        data, dest = out[0]
        assert data.startswith(b"SIP/2.0 401 Unauthorized")
        assert dest.port == 5062 and b"rport=5062" in data
        assert core.events() == []
    assert len(core.layer.server) == 0
    assert core.stats["stateless"] == 2
    assert core.next_deadline() is None


def test_requests_the_hook_declines_go_up_as_usual() -> None:
    core = SipCore(CoreConfig(host="198.51.100.1"))
    core.stateless_hook = _hook
    core.handle_datagram(_register("bbb", authz='Digest username="alice"'), SRC, 10.0)
    events = core.events()
    assert len(events) == 1 and isinstance(events[0], RequestReceived)
    assert len(core.layer.server) == 1
