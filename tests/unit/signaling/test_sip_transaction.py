"""RFC 3261 §17 transaction machines (Figures 5–8 + RFC 6026) on scripted timelines.

Time advances by explicit ``now`` values: T1 doublings for Timers A/E/G, 64*T1 for B/F/H,
T4 for I/K, and the reliable-transport variants where D/I/J/K are zero.
"""

from __future__ import annotations

import heapq

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.events import Address
from signaling.message import Request, Response, make_response
from signaling.parser import parse_message
from signaling.timers import TimerConfig
from signaling.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Effect,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    Transaction,
    TransactionState,
    TransactionStateError,
    TxInput,
    build_ack_for_non2xx,
    build_cancel,
    server_key,
)

S = TransactionState
UDP = Address("udp", "192.0.2.9", 5060)
TCP = Address("tcp", "192.0.2.9", 5060, connection_id=4)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\r\n"
    b"Max-Forwards: 70\r\n"
    b"Route: <sip:p1.example.com;lr>\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def invite() -> Request:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    return msg


def options() -> Request:
    msg = parse_message(INVITE.replace(b"INVITE", b"OPTIONS"))
    assert isinstance(msg, Request)
    return msg


class Sink:
    """Records what transactions ask of their owner; keeps a heap like the layer."""

    def __init__(self, config: TimerConfig | None = None) -> None:
        self.config = config or TimerConfig()
        self.sent: list[tuple[float, bytes]] = []
        self.up: list[Request | Response] = []
        self.failed: list[Effect] = []
        self.terminated: list[Transaction] = []
        self.now = 0.0

    def send_datagram(self, data: bytes, dest: Address) -> None:
        self.sent.append((self.now, data))

    def schedule(self, txn: Transaction) -> None:
        pass

    def transaction_message(self, txn: Transaction, message: Request | Response) -> None:
        self.up.append(message)

    def transaction_failed(self, txn: Transaction, effect: Effect) -> None:
        self.failed.append(effect)

    def transaction_terminated(self, txn: Transaction) -> None:
        self.terminated.append(txn)

    def lines(self) -> list[str]:
        return [d.split(b"\r\n", 1)[0].decode() for _, d in self.sent]

    def times(self) -> list[float]:
        return [t for t, _ in self.sent]


def run_timers(txn: Transaction, sink: Sink, until: float) -> None:
    """Fire the transaction's timers in order until ``until`` (a one-object event loop)."""
    while txn.deadline is not None and txn.deadline <= until:
        sink.now = txn.deadline
        txn.handle_timer(sink.now)


def resp(request: Request, status: int, tag: str | None = "totag") -> Response:
    return make_response(request, status, to_tag=tag)


# -- Figure 5: client INVITE --------------------------------------------------------------
def test_client_invite_timer_a_doubles_without_cap_and_timer_b_times_out() -> None:
    sink = Sink()
    txn = ClientInviteTransaction("k", invite(), UDP, sink)
    txn.start(0.0)
    run_timers(txn, sink, 100.0)
    # original + retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 (A = T1, 2T1, 4T1, ...)
    assert sink.times() == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert sink.failed == [Effect.TIMEOUT]
    assert txn.state is S.TERMINATED and sink.terminated == [txn]
    assert txn.deadline is None


def test_client_invite_over_tcp_does_not_retransmit() -> None:
    sink = Sink()
    txn = ClientInviteTransaction("k", invite(), TCP, sink)
    txn.start(0.0)
    assert txn.deadline == 32.0
    run_timers(txn, sink, 100.0)
    assert sink.times() == [0.0]
    assert sink.failed == [Effect.TIMEOUT]


def test_client_invite_provisional_stops_a_and_b() -> None:
    sink = Sink()
    req = invite()
    txn = ClientInviteTransaction("k", req, UDP, sink)
    txn.start(0.0)
    sink.now = 0.2
    txn.receive_response(resp(req, 180), 0.2)
    assert txn.state is S.PROCEEDING and txn.deadline is None
    run_timers(txn, sink, 500.0)
    assert len(sink.sent) == 1 and sink.failed == []


def test_client_invite_non2xx_is_acked_by_the_transaction() -> None:
    sink = Sink()
    req = invite()
    txn = ClientInviteTransaction("k", req, UDP, sink)
    txn.start(0.0)
    busy = resp(req, 486)
    txn.receive_response(busy, 1.0)
    assert txn.state is S.COMPLETED
    assert sink.lines()[-1] == "ACK sip:bob@biloxi.example.com SIP/2.0"
    ack = parse_message(sink.sent[-1][1])
    assert ack.headers.get("CSeq") == "314159 ACK"
    assert ack.to_tag == "totag"
    assert ack.branch == "z9hG4bKnashds8"  # §17.1.1.3: same branch as the INVITE
    assert ack.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]
    # A retransmitted 486 is answered with the ACK again and not passed up twice.
    txn.receive_response(busy, 2.0)
    assert sink.lines().count("ACK sip:bob@biloxi.example.com SIP/2.0") == 2
    assert [m.status for m in sink.up if isinstance(m, Response)] == [486]
    # Timer D: > 32 s on UDP
    assert txn.deadline == pytest.approx(33.0)
    run_timers(txn, sink, 40.0)
    assert txn.state is S.TERMINATED and sink.failed == []


def test_client_invite_non2xx_over_tcp_terminates_at_once() -> None:
    sink = Sink()
    req = invite()
    txn = ClientInviteTransaction("k", req, TCP, sink)
    txn.start(0.0)
    txn.receive_response(resp(req, 603), 0.1)
    assert txn.state is S.TERMINATED  # Timer D = 0 on reliable transports
    assert sink.lines()[-1].startswith("ACK ")


def test_client_invite_accepted_passes_2xx_retransmissions_until_timer_m() -> None:
    sink = Sink()
    req = invite()
    txn = ClientInviteTransaction("k", req, UDP, sink)
    txn.start(0.0)
    ok = resp(req, 200)
    txn.receive_response(ok, 0.1)
    assert txn.state is S.ACCEPTED
    txn.receive_response(ok, 0.6)
    assert [m.status for m in sink.up if isinstance(m, Response)] == [200, 200]
    assert len(sink.sent) == 1  # no ACK from the transaction for a 2xx
    run_timers(txn, sink, 0.1 + 32.0)
    assert txn.state is S.TERMINATED


# -- Figure 6: client non-INVITE ----------------------------------------------------------
def test_client_non_invite_timer_e_caps_at_t2_and_f_times_out() -> None:
    sink = Sink()
    txn = ClientNonInviteTransaction("k", options(), UDP, sink)
    txn.start(0.0)
    run_timers(txn, sink, 100.0)
    # E intervals 0.5, 1, 2, 4, 4, 4, ... until F = 32 s
    assert sink.times() == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert sink.failed == [Effect.TIMEOUT]


def test_client_non_invite_proceeding_retransmits_every_t2() -> None:
    sink = Sink()
    req = options()
    txn = ClientNonInviteTransaction("k", req, UDP, sink)
    txn.start(0.0)
    sink.now = 0.1
    txn.receive_response(resp(req, 100, None), 0.1)
    assert txn.state is S.PROCEEDING
    run_timers(txn, sink, 10.0)
    # Timer E was armed at 0.5 in Trying; after it fires in Proceeding it is T2.
    assert sink.times() == [0.0, 0.5, 4.5, 8.5]


def test_client_non_invite_final_then_timer_k() -> None:
    sink = Sink()
    req = options()
    txn = ClientNonInviteTransaction("k", req, UDP, sink)
    txn.start(0.0)
    ok = resp(req, 200)
    txn.receive_response(ok, 0.2)
    txn.receive_response(ok, 0.3)  # retransmission absorbed
    assert len(sink.up) == 1 and txn.state is S.COMPLETED
    assert txn.deadline == pytest.approx(5.2)  # K = T4
    run_timers(txn, sink, 10.0)
    assert txn.state is S.TERMINATED and len(sink.sent) == 1


def test_client_non_invite_over_tcp_k_is_zero() -> None:
    sink = Sink()
    req = options()
    txn = ClientNonInviteTransaction("k", req, TCP, sink)
    txn.start(0.0)
    txn.receive_response(resp(req, 404), 0.2)
    assert txn.state is S.TERMINATED


def test_transport_error_reports_and_terminates() -> None:
    sink = Sink()
    txn = ClientNonInviteTransaction("k", options(), UDP, sink)
    txn.start(0.0)
    txn.transport_error(0.1)
    assert sink.failed == [Effect.TRANSPORT_ERR] and txn.state is S.TERMINATED


# -- Figure 7: server INVITE --------------------------------------------------------------
def test_server_invite_sends_100_after_200ms_and_resends_it() -> None:
    sink = Sink()
    req = invite()
    txn = ServerInviteTransaction("k", req, UDP, sink)
    txn.start(0.0)
    assert txn.deadline == pytest.approx(0.2)
    run_timers(txn, sink, 0.2)
    assert sink.lines() == ["SIP/2.0 100 Trying"]
    txn.receive_request(req, 0.5)  # retransmitted INVITE: last provisional again
    assert sink.lines() == ["SIP/2.0 100 Trying"] * 2


def test_server_invite_100_immediately_or_never() -> None:
    sink = Sink(TimerConfig(trying_delay=0.0))
    txn = ServerInviteTransaction("k", invite(), UDP, sink)
    txn.start(0.0)
    assert sink.lines() == ["SIP/2.0 100 Trying"]
    sink2 = Sink(TimerConfig(trying_delay=None))
    txn2 = ServerInviteTransaction("k", invite(), UDP, sink2)
    txn2.start(0.0)
    assert txn2.deadline is None and sink2.sent == []


def test_server_invite_tu_provisional_suppresses_100() -> None:
    sink = Sink()
    req = invite()
    txn = ServerInviteTransaction("k", req, UDP, sink)
    txn.start(0.0)
    txn.send_response(resp(req, 180), 0.05)
    run_timers(txn, sink, 1.0)
    assert sink.lines() == ["SIP/2.0 180 Ringing"]


def test_server_invite_timer_g_until_h_when_ack_is_lost() -> None:
    sink = Sink()
    req = invite()
    txn = ServerInviteTransaction("k", req, UDP, sink)
    txn.start(0.0)
    sink.now = 0.1
    txn.send_response(resp(req, 486), 0.1)
    run_timers(txn, sink, 100.0)
    times = [round(t - 0.1, 6) for t in sink.times()]
    # G: T1, 2T1, 4T1, then T2 each time, until H = 64*T1 = 32 s
    assert times[:6] == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5]
    assert times[-1] == 31.5 and len(times) == 11
    assert sink.failed == [Effect.TIMEOUT] and txn.state is S.TERMINATED


def test_server_invite_ack_confirms_then_timer_i() -> None:
    sink = Sink()
    req = invite()
    txn = ServerInviteTransaction("k", req, UDP, sink)
    txn.start(0.0)
    final = resp(req, 404)
    txn.send_response(final, 0.1)
    txn.receive_request(req, 0.3)  # INVITE retransmission: 404 again
    ack = build_ack_for_non2xx(req, final)
    txn.receive_request(ack, 0.4)
    assert txn.state is S.CONFIRMED
    txn.receive_request(ack, 0.5)  # ACK retransmission absorbed
    assert txn.deadline == pytest.approx(5.4)  # Timer I = T4
    run_timers(txn, sink, 10.0)
    assert txn.state is S.TERMINATED
    assert sink.lines() == ["SIP/2.0 404 Not Found"] * 2 and sink.failed == []


def test_server_invite_over_tcp_no_g_and_i_zero() -> None:
    sink = Sink()
    req = invite()
    txn = ServerInviteTransaction("k", req, TCP, sink)
    txn.start(0.0)
    final = resp(req, 480)
    txn.send_response(final, 0.0)
    assert txn.deadline == pytest.approx(32.0)  # only H
    txn.receive_request(build_ack_for_non2xx(req, final), 1.0)
    assert txn.state is S.TERMINATED


def test_server_invite_accepted_absorbs_invite_until_timer_l() -> None:
    sink = Sink()
    req = invite()
    txn = ServerInviteTransaction("k", req, UDP, sink)
    txn.start(0.0)
    txn.send_response(resp(req, 200), 0.1)
    assert txn.state is S.ACCEPTED
    txn.receive_request(req, 0.6)
    assert len(sink.sent) == 1
    run_timers(txn, sink, 40.0)
    assert txn.state is S.TERMINATED and sink.failed == []


def test_server_invite_second_final_is_a_local_error() -> None:
    sink = Sink()
    req = invite()
    txn = ServerInviteTransaction("k", req, UDP, sink)
    txn.send_response(resp(req, 486), 0.0)
    with pytest.raises(TransactionStateError):
        txn.send_response(resp(req, 200), 0.1)


# -- Figure 8: server non-INVITE ----------------------------------------------------------
def test_server_non_invite_absorbs_then_resends_last_response() -> None:
    sink = Sink()
    req = options()
    txn = ServerNonInviteTransaction("k", req, UDP, sink)
    txn.receive_request(req, 0.1)  # Trying: absorbed silently
    assert sink.sent == []
    txn.send_response(resp(req, 100, None), 0.2)
    txn.receive_request(req, 0.3)
    assert sink.lines() == ["SIP/2.0 100 Trying"] * 2
    txn.send_response(resp(req, 200), 0.4)
    assert txn.request is None  # dropped: only the bytes are kept for Timer J
    txn.receive_request(req, 0.5)
    assert sink.lines()[-2:] == ["SIP/2.0 200 OK"] * 2
    assert txn.deadline == pytest.approx(32.4)  # Timer J = 64*T1
    run_timers(txn, sink, 40.0)
    assert txn.state is S.TERMINATED
    with pytest.raises(TransactionStateError):
        txn.send_response(resp(req, 200), 41.0)


def test_server_non_invite_over_tcp_j_is_zero() -> None:
    sink = Sink()
    req = options()
    txn = ServerNonInviteTransaction("k", req, TCP, sink)
    txn.send_response(resp(req, 200), 0.0)
    assert txn.state is S.TERMINATED and sink.terminated == [txn]


# -- keys and builders ---------------------------------------------------------------------
def test_server_key_rfc3261_and_2543_fallback() -> None:
    req = invite()
    assert server_key(req) == "z9hG4bKnashds8|pc33.atlanta.example.com:|INVITE"
    ack = build_ack_for_non2xx(req, resp(req, 486))
    assert server_key(ack) == server_key(req)  # ACK matches its INVITE (§17.2.3)
    cancel = build_cancel(req)
    assert server_key(cancel, "INVITE") == server_key(req)
    assert server_key(cancel) != server_key(req)
    old = parse_message(INVITE.replace(b";branch=z9hG4bKnashds8", b";branch=1"))
    assert isinstance(old, Request)
    key = server_key(old)
    assert key.startswith("2543|sip:bob@biloxi.example.com|1928301774|a84b4c76e66710|314159")
    old_ack = parse_message(bytes(build_ack_for_non2xx(old, resp(old, 486))))
    assert isinstance(old_ack, Request)
    assert server_key(old_ack) == key


def test_cancel_copies_the_request_hop_fields() -> None:
    req = invite()
    cancel = build_cancel(req)
    assert cancel.method == "CANCEL" and cancel.uri == req.uri
    assert cancel.headers.get("CSeq") == "314159 CANCEL"
    assert cancel.headers.get_all("Via") == req.headers.get_all("Via")[:1]
    assert cancel.headers.get("To") == req.headers.get("To")
    assert cancel.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]


# -- hypothesis: every (state, input) pair lands in a valid state or raises our error ---
MACHINES = [ClientInviteTransaction, ClientNonInviteTransaction, ServerInviteTransaction,
            ServerNonInviteTransaction]


def _message_for(inp: TxInput, req: Request) -> Request | Response | None:
    status = {TxInput.RECV_1XX: 180, TxInput.SEND_1XX: 180, TxInput.RECV_2XX: 200,
              TxInput.SEND_2XX: 200, TxInput.RECV_3XX_6XX: 486, TxInput.SEND_3XX_6XX: 486}
    if inp in status:
        return resp(req, status[inp])
    if inp is TxInput.RECV_REQUEST:
        return req
    if inp is TxInput.RECV_ACK:
        return build_ack_for_non2xx(req, resp(req, 486))
    return None


def _states(cls: type[Transaction]) -> list[TransactionState]:
    return sorted({s for s, _ in cls.TABLE} | {s for _, s in cls.TABLE.values()},
                  key=lambda s: s.value)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_every_state_input_pair_is_valid_or_a_local_error(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(MACHINES))
    state = data.draw(st.sampled_from(_states(cls)))
    inp = data.draw(st.sampled_from(list(TxInput)))
    req = invite() if cls in (ClientInviteTransaction, ServerInviteTransaction) else options()
    sink = Sink()
    txn = cls("k", req, UDP, sink)
    txn.state = state
    try:
        txn.step(inp, 1.0, _message_for(inp, req))
    except TransactionStateError:
        assert (state, inp) not in cls.TABLE
        return
    assert (state, inp) in cls.TABLE
    assert txn.state in _states(cls)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_random_input_sequences_keep_the_machine_consistent(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(MACHINES))
    transport = data.draw(st.sampled_from([UDP, TCP]))
    req = invite() if cls in (ClientInviteTransaction, ServerInviteTransaction) else options()
    sink = Sink()
    txn = cls("k", req, transport, sink)
    if hasattr(txn, "start"):
        txn.start(0.0)  # type: ignore[attr-defined]
    now = 0.0
    for inp in data.draw(st.lists(st.sampled_from(list(TxInput)), max_size=12)):
        now += data.draw(st.floats(min_value=0.0, max_value=5.0))
        if txn.deadline is not None and txn.deadline <= now:
            txn.handle_timer(now)
        try:
            txn.step(inp, now, _message_for(inp, req))
        except TransactionStateError:
            pass
        assert txn.state in _states(cls)
        if txn.state is S.TERMINATED:
            assert txn.deadline is None
            assert sink.terminated == [txn]
        elif txn.deadline is not None:
            assert txn.deadline >= now


def test_heap_of_deadlines_matches_a_sorted_schedule() -> None:
    """Two transactions' deadlines interleave correctly through one heap."""
    sink = Sink()
    a = ClientNonInviteTransaction("a", options(), UDP, sink)
    b = ClientInviteTransaction("b", invite(), UDP, sink)
    a.start(0.0)
    b.start(0.25)
    heap = [(a.deadline, 0, a), (b.deadline, 1, b)]
    heapq.heapify(heap)
    fired = []
    seq = 2
    while heap and heap[0][0] <= 4.0:
        d, _, t = heapq.heappop(heap)
        if t.deadline != d:
            continue
        sink.now = d
        t.handle_timer(d)
        fired.append((d, t.id))
        heapq.heappush(heap, (t.deadline, seq, t))
        seq += 1
    assert fired == [(0.5, "a"), (0.75, "b"), (1.5, "a"), (1.75, "b"), (3.5, "a"), (3.75, "b")]


def test_id_generator_is_seedable_unique_and_cookied() -> None:
    from random import Random

    from signaling.ids import IdGenerator

    a, b = IdGenerator(Random(5)), IdGenerator(Random(5))
    branches = [a.branch() for _ in range(1000)]
    assert branches[:3] == [b.branch() for _ in range(3)]  # deterministic with a seed
    assert len(set(branches)) == 1000 and all(x.startswith("z9hG4bK") for x in branches)
    assert len({a.tag() for _ in range(1000)}) == 1000
    assert a.call_id("192.0.2.1").endswith("@192.0.2.1")
