"""TransactionLayer: routing by §17.1.3/§17.2.3 keys, absorbing retransmissions, and one
heap of deadlines with lazy deletion for thousands of transactions."""

from __future__ import annotations

import pytest

from signaling.errors import LocalSipError
from signaling.events import Address
from signaling.message import Request, Response, make_response
from signaling.parser import parse_message
from signaling.timers import TimerConfig
from signaling.transaction import (
    Effect,
    Transaction,
    TransactionState,
    build_ack_for_non2xx,
    build_cancel,
)
from signaling.transaction_layer import TransactionLayer

PEER = Address("udp", "192.0.2.7", 5060)


def request(method: str = "OPTIONS", branch: str = "z9hG4bK1", host: str = "192.0.2.7",
            cseq: int = 1) -> Request:
    data = (
        f"{method} sip:svc@192.0.2.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:5060;branch={branch}\r\n"
        "Max-Forwards: 70\r\nTo: <sip:svc@192.0.2.1>\r\n"
        "From: <sip:a@192.0.2.7>;tag=ft\r\nCall-ID: c1@192.0.2.7\r\n"
        f"CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


class User:
    def __init__(self) -> None:
        self.responses: list[tuple[str, int]] = []
        self.acks: list[Request] = []
        self.failures: list[tuple[str, Effect]] = []
        self.terminated: list[str] = []

    def on_response(self, txn: Transaction, response: Response, now: float) -> None:
        self.responses.append((txn.id, response.status))

    def on_server_ack(self, txn: Transaction, ack: Request, now: float) -> None:
        self.acks.append(ack)

    def on_failure(self, txn: Transaction, effect: Effect, now: float) -> None:
        self.failures.append((txn.id, effect))

    def on_terminated(self, txn: Transaction, now: float) -> None:
        self.terminated.append(txn.id)


def layer() -> tuple[TransactionLayer, User]:
    user = User()
    return TransactionLayer(TimerConfig(), user), user


def test_server_retransmission_absorbed_and_answered_with_last_response() -> None:
    tl, _ = layer()
    req = request()
    txn, new = tl.receive_request(req, PEER, 0.0)
    assert new and txn is not None
    again, new2 = tl.receive_request(request(), PEER, 0.1)
    assert again is txn and not new2
    assert tl.outbox == []  # Trying: absorbed silently
    tl.send_response(txn, make_response(req, 200, to_tag="x"), 0.2)
    tl.receive_request(request(), PEER, 0.3)
    assert [d.split(b"\r\n")[0] for d, _ in tl.outbox] == [b"SIP/2.0 200 OK"] * 2
    assert tl.stats["retransmissions_absorbed"] == 2


def test_same_branch_different_sent_by_or_method_are_different_transactions() -> None:
    tl, _ = layer()
    a, _ = tl.receive_request(request(), PEER, 0.0)
    b, new_b = tl.receive_request(request(host="192.0.2.8"), PEER, 0.0)
    c, new_c = tl.receive_request(request("INFO"), PEER, 0.0)
    assert new_b and new_c and len({id(a), id(b), id(c)}) == 3


def test_ack_routing_non2xx_absorbed_2xx_left_to_the_core() -> None:
    tl, _user = layer()
    inv = request("INVITE")
    txn, _ = tl.receive_request(inv, PEER, 0.0)
    assert txn is not None
    final = make_response(inv, 486, to_tag="t")
    tl.send_response(txn, final, 0.1)
    found, new = tl.receive_request(build_ack_for_non2xx(inv, final), PEER, 0.2)
    assert found is txn and not new and txn.state is TransactionState.CONFIRMED
    stray, new = tl.receive_request(request("ACK", branch="z9hG4bKother"), PEER, 0.3)
    assert stray is None and not new


def test_client_routing_by_branch_and_cseq_method() -> None:
    tl, user = layer()
    inv = request("INVITE", branch="z9hG4bKabc")
    txn = tl.send_request(inv, PEER, 0.0)
    cancel = tl.send_request(build_cancel(inv), PEER, 0.1)
    assert txn.id != cancel.id
    ok_cancel = parse_message(bytes(make_response(build_cancel(inv), 200, to_tag="t")))
    assert isinstance(ok_cancel, Response)
    assert tl.receive_response(ok_cancel, 0.2) is cancel
    assert user.responses == [(cancel.id, 200)]
    stray = make_response(request(branch="z9hG4bKnone"), 200)
    assert tl.receive_response(stray, 0.3) is None
    assert tl.stats["stray_responses"] == 1


def test_client_api_misuse_is_a_local_error() -> None:
    tl, _ = layer()
    with pytest.raises(LocalSipError):
        tl.send_request(request("ACK"), PEER, 0.0)
    with pytest.raises(LocalSipError):
        tl.send_request(request(branch="1234"), PEER, 0.0)  # no magic cookie
    tl.send_request(request(), PEER, 0.0)
    with pytest.raises(LocalSipError):
        tl.send_request(request(), PEER, 0.0)


def test_timeouts_are_reported_and_tables_emptied() -> None:
    tl, user = layer()
    txn = tl.send_request(request(), PEER, 0.0)
    assert tl.next_deadline() == 0.5
    t = 0.0
    while (d := tl.next_deadline()) is not None:
        t = d
        tl.handle_timer(t)
    assert t == 32.0
    assert user.failures == [(txn.id, Effect.TIMEOUT)]
    assert tl.live_count() == 0 and user.terminated == [txn.id]


def test_ten_thousand_transactions_one_heap_lazy_deletion() -> None:
    tl, _ = layer()
    txns = []
    for i in range(10_000):
        req = request(branch=f"z9hG4bK{i}")
        txn, _ = tl.receive_request(req, PEER, i * 0.001)
        assert txn is not None
        tl.send_response(txn, make_response(req, 200, to_tag="t"), i * 0.001)
        txns.append(txn)
    assert tl.live_count() == 10_000
    assert tl.next_deadline() == pytest.approx(32.0)
    # Half expire; the rest stay, and the heap holds one entry per live transaction.
    tl.handle_timer(32.0 + 4.9995)
    assert tl.live_count() == 5_000
    assert tl.heap_size() == 5_000
    assert tl.next_deadline() == pytest.approx(32.0 + 5.0)
    tl.handle_timer(100.0)
    assert tl.live_count() == 0 and tl.next_deadline() is None


def test_stale_heap_entries_are_skipped_and_compacted() -> None:
    tl, user = layer()
    for i in range(3000):
        txn = tl.send_request(request(branch=f"z9hG4bKc{i}"), PEER, 0.0)
        ok = make_response(txn.request, 200, to_tag="t")  # type: ignore[arg-type]
        tl.receive_response(ok, 0.1)  # E and F stop: their entries go stale
    # Every transaction now waits only for Timer K (T4 = 5 s).
    assert tl.next_deadline() == pytest.approx(5.1)
    assert tl.heap_size() <= 4 * tl.live_count() + 1024
    tl.handle_timer(5.1)
    assert tl.live_count() == 0 and len(user.terminated) == 3000
