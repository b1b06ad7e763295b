"""RegistrationClient: scripted timelines with explicit ``now`` against a real digest
authenticator and registrar (signaling.auth / signaling.registrar) as the carrier."""

from __future__ import annotations

import itertools
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling.auth import DigestAuthenticator, LockoutPolicy
from signaling.core import SipCore
from signaling.events import Address
from signaling.location import UserCredentials, compute_ha1
from signaling.message import Request, Response, make_response
from signaling.parser import parse_message
from signaling.registrar import Registrar
from switch.trunks.config import TrunkConfig
from switch.trunks.registration import (
    TRANSITIONS,
    RegInput,
    RegistrationClient,
    RegistrationState,
    RegistrationStateChanged,
    SendRegister,
)

REALM = "carrier.test"
S = RegistrationState


class Carrier:
    """A registrar with digest auth, answering REGISTERs synchronously (wall = now)."""

    def __init__(self, password: str = "s3cret", *, min_expires_s: int = 60,
                 max_expires_s: int = 3600) -> None:
        self.auth = DigestAuthenticator(REALM, b"k" * 32, random_bytes=Random(7).randbytes,
                                        lockout=LockoutPolicy(max_failures=100))
        self.registrar = Registrar((), min_expires_s=min_expires_s,
                                   max_expires_s=max_expires_s,
                                   default_expires_s=min(3600, max_expires_s))
        self.users = {"8621001": UserCredentials(
            "8621001", REALM, {alg: compute_ha1("8621001", REALM, password, alg)
                                for alg in ("MD5", "SHA-256")})}
        self.received: list[Request] = []

    def answer(self, request: Request, now: float) -> Response:
        request = parse_message(request.serialize())  # what goes over the wire
        self.received.append(request)
        authz = request.headers.get("Authorization")
        result = None
        if authz is not None:
            result = self.auth.verify("REGISTER", authz, self.users.get, now, "127.0.0.1",
                                      request_uri=request.uri)
        if result is None or not result.ok:
            status, headers = self.auth.rejection(result, now, "127.0.0.1")
            return make_response(request, status, to_tag="t1", extra=headers)
        outcome = self.registrar.handle_register(request, Address("udp", "127.0.0.1", 5099),
                                                 result.username, now)
        return outcome.to_response(request, to_tag="t1")


def trunk(**kw: object) -> TrunkConfig:
    base: dict[str, object] = dict(name="cn", host="127.0.0.1", port=5090, register=True,
                                   username="8621001", password="s3cret",
                                   register_expires_s=600)
    base.update(kw)
    return TrunkConfig(**base)  # type: ignore[arg-type]


def client(t: TrunkConfig | None = None, seed: int = 1) -> RegistrationClient:
    core = SipCore(rng=Random(seed))
    return RegistrationClient(t or trunk(), contact="<sip:8621001@127.0.0.1:5060>",
                              builder=core.create_request, rng=Random(seed))


def sends(c: RegistrationClient) -> list[SendRegister]:
    return [o for o in c.outputs() if isinstance(o, SendRegister)]


def run(c: RegistrationClient, carrier: Carrier, now: float, limit: int = 10) -> int:
    """Deliver every pending REGISTER to the carrier and its answer back; count rounds."""
    rounds = 0
    pending = sends(c)
    while pending and rounds < limit:
        out = pending.pop(0)
        rounds += 1
        c.handle_response(carrier.answer(out.request, now), now)
        pending += sends(c)
    return rounds


def test_register_answers_challenge_and_is_verified() -> None:
    c, carrier = client(), Carrier()
    c.start(0.0)
    assert run(c, carrier, 0.0) == 2
    assert c.state is S.REGISTERED
    first, second = carrier.received
    assert "Authorization" not in first.headers
    assert "Authorization" in second.headers
    assert second.call_id == first.call_id  # Rule 1
    assert (first.cseq.seq, second.cseq.seq) == (1, 2)
    assert first.headers.get("Expires") == "600"
    assert carrier.registrar.lookup("sip:8621001@127.0.0.1", 0.0)


def test_refresh_at_grant_minus_margin_with_preemptive_credentials() -> None:
    c, carrier = client(), Carrier(max_expires_s=300)  # carrier grants less than asked
    c.start(0.0)
    run(c, carrier, 0.0)
    assert c.expires_at == 300.0
    assert c.next_deadline() == 270.0
    c.handle_timer(269.0)
    assert sends(c) == []
    c.handle_timer(270.0)
    (out,) = sends(c)
    assert "Authorization" in out.request.headers  # nc=2 with the kept nonce
    assert 'nc=00000002' in (out.request.headers.get("Authorization") or "")
    c.handle_response(carrier.answer(out.request, 270.0), 270.0)
    assert c.state is S.REGISTERED and c.expires_at == 570.0
    assert len(carrier.received) == 3  # no second challenge round


def test_short_grant_refreshes_at_half() -> None:
    c = client()
    c.start(0.0)
    (out,) = sends(c)
    ok = make_response(out.request, 200, to_tag="x",
                       extra=[("Contact", "<sip:8621001@127.0.0.1:5060>;expires=40")])
    c.handle_response(ok, 10.0)
    assert c.expires_at == 50.0 and c.refresh_at == 30.0


def test_grant_from_expires_header_when_contact_has_none() -> None:
    c = client()
    c.start(0.0)
    (out,) = sends(c)
    ok = make_response(out.request, 200, to_tag="x", extra=[("Expires", "120")])
    c.handle_response(ok, 0.0)
    assert c.expires_at == 120.0


def test_wrong_password_fails_without_storm_and_backs_off() -> None:
    c, carrier = client(trunk(password="wrong")), Carrier()
    c.start(0.0)
    rounds = run(c, carrier, 0.0)
    assert rounds == 2  # REGISTER, answer to nonce 1; the next challenge stops it
    assert len(carrier.received) == 2
    assert c.state is S.FAILED
    assert "credentials" in c.last_reason
    assert 30.0 <= c.next_deadline() <= 37.5  # type: ignore[operator]


def test_same_nonce_twice_is_wrong_credentials() -> None:
    c = client()
    c.start(0.0)
    (out,) = sends(c)
    challenge = 'Digest realm="r", nonce="abc", algorithm=MD5, qop="auth"'
    c.handle_response(make_response(out.request, 401, extra=[("WWW-Authenticate", challenge)]),
                      0.0)
    (out2,) = sends(c)
    assert 'nonce="abc"' in (out2.request.headers.get("Authorization") or "")
    c.handle_response(make_response(out2.request, 401, extra=[("WWW-Authenticate", challenge)]),
                      0.0)
    assert c.state is S.FAILED and sends(c) == []


def test_stale_nonce_is_answered_silently_but_bounded() -> None:
    c = client()
    c.start(0.0)
    (out,) = sends(c)
    n = itertools.count()
    for _ in range(4):
        ch = f'Digest realm="r", nonce="n{next(n)}", algorithm=MD5, qop="auth", stale=true'
        c.handle_response(make_response(out.request, 401, extra=[("WWW-Authenticate", ch)]),
                          0.0)
        got = sends(c)
        if c.state is S.FAILED:
            break
        (out,) = got
    assert c.state is S.FAILED and "stale" in c.last_reason


def test_realm_restriction_never_sends_credentials_elsewhere() -> None:
    c = client(trunk(realm="carrier.test"))
    c.start(0.0)
    (out,) = sends(c)
    ch = 'Digest realm="evil", nonce="n", algorithm=MD5'
    c.handle_response(make_response(out.request, 401, extra=[("WWW-Authenticate", ch)]), 0.0)
    assert c.state is S.FAILED and sends(c) == []


def test_407_uses_proxy_authorization() -> None:
    c = client()
    c.start(0.0)
    (out,) = sends(c)
    ch = 'Digest realm="proxy", nonce="p1", algorithm=MD5'
    c.handle_response(make_response(out.request, 407, extra=[("Proxy-Authenticate", ch)]), 0.0)
    (out2,) = sends(c)
    assert "Proxy-Authorization" in out2.request.headers
    assert "Authorization" not in out2.request.headers


def test_423_raises_expires_to_min_expires() -> None:
    c, carrier = client(trunk(register_expires_s=60)), Carrier(min_expires_s=300)
    c.start(0.0)
    run(c, carrier, 0.0)
    assert c.state is S.REGISTERED
    assert [r.headers.get("Expires") for r in carrier.received] == ["60", "60", "300"]
    assert c.expires_at == 300.0


def test_423_without_longer_min_expires_fails() -> None:
    c = client()
    c.start(0.0)
    (out,) = sends(c)
    c.handle_response(make_response(out.request, 423, extra=[("Min-Expires", "600")]), 0.0)
    assert c.state is S.FAILED


@pytest.mark.parametrize("status", [403, 404, 500, 503])
def test_final_errors_fail_with_exponential_backoff(status: int) -> None:
    c = client()
    c.start(0.0)
    now, delays = 0.0, []
    for _ in range(8):
        (out,) = sends(c)
        c.handle_response(make_response(out.request, status), now)
        assert c.state is S.FAILED
        deadline = c.next_deadline()
        assert deadline is not None
        delays.append(deadline - now)
        now = deadline
        c.handle_timer(now)
        assert c.state is S.REGISTERING
    assert 30.0 <= delays[0] <= 37.5
    assert 60.0 <= delays[1] <= 75.0
    assert all(d <= 600.0 for d in delays) and delays[-1] == 600.0


def test_retry_after_is_honoured() -> None:
    c = client()
    c.start(0.0)
    (out,) = sends(c)
    c.handle_response(make_response(out.request, 503, extra=[("Retry-After", "300")]), 0.0)
    assert c.next_deadline() == 300.0


def test_jitter_comes_from_the_injected_random() -> None:
    def first_delay(seed: int) -> float:
        c = client(seed=seed)
        c.start(0.0)
        (out,) = sends(c)
        c.handle_response(make_response(out.request, 403), 0.0)
        return c.next_deadline() or 0.0

    assert first_delay(3) == first_delay(3)
    assert len({first_delay(s) for s in range(6)}) > 1


def test_timeout_fails_and_stale_timeouts_are_ignored() -> None:
    c = client()
    c.start(0.0)
    (out,) = sends(c)
    assert not c.handle_timeout(out.cseq + 5, 1.0)
    assert c.handle_timeout(out.cseq, 32.0)
    assert c.state is S.FAILED


def test_responses_for_other_requests_are_ignored() -> None:
    c = client()
    c.start(0.0)
    (out,) = sends(c)
    other = make_response(out.request, 200)
    other.headers.set("Call-ID", "someone-else")
    assert not c.handle_response(other, 0.0)
    assert c.handle_response(make_response(out.request, 100), 0.0)
    assert c.state is S.REGISTERING


def test_binding_expiry_while_refresh_is_unanswered() -> None:
    c = client()
    c.start(0.0)
    (out,) = sends(c)
    c.handle_response(make_response(out.request, 200, extra=[("Expires", "100")]), 0.0)
    c.handle_timer(70.0)
    (refresh,) = sends(c)
    assert c.next_deadline() == 100.0
    c.handle_timer(100.0)
    assert c.state is S.REGISTERING
    c.handle_response(make_response(refresh.request, 200, extra=[("Expires", "100")]), 101.0)
    assert c.state is S.REGISTERED


def test_stop_deregisters_only_our_contact() -> None:
    c, carrier = client(), Carrier()
    c.start(0.0)
    run(c, carrier, 0.0)
    c.outputs()
    c.stop(5.0)
    outs = c.outputs()
    (unreg,) = [o for o in outs if isinstance(o, SendRegister)]
    assert unreg.request.headers.get("Expires") == "0"
    assert unreg.request.headers.get("Contact") == "<sip:8621001@127.0.0.1:5060>"
    assert c.state is S.UNREGISTERING
    c.handle_response(carrier.answer(unreg.request, 5.0), 5.0)
    assert c.state is S.UNREGISTERED and c.next_deadline() is None
    assert carrier.registrar.lookup("sip:8621001@127.0.0.1", 5.0) == []


def test_stop_when_failed_sends_nothing() -> None:
    c = client()
    c.start(0.0)
    (out,) = sends(c)
    c.handle_response(make_response(out.request, 403), 0.0)
    c.stop(1.0)
    assert sends(c) == [] and c.state is S.UNREGISTERED


def test_status_changes_are_reported() -> None:
    c, carrier = client(), Carrier()
    c.start(0.0)
    outs = c.outputs()
    changes = [o for o in outs if isinstance(o, RegistrationStateChanged)]
    assert [(x.old, x.new) for x in changes] == [(S.UNREGISTERED, S.REGISTERING)]
    (out,) = [o for o in outs if isinstance(o, SendRegister)]
    c.handle_response(carrier.answer(out.request, 0.0), 0.0)
    (out,) = sends(c)
    c.handle_response(carrier.answer(out.request, 0.0), 0.0)
    (done,) = c.outputs()
    assert isinstance(done, RegistrationStateChanged)
    assert (done.old, done.new, done.expires_at) == (S.REGISTERING, S.REGISTERED, 600.0)


def test_outbound_proxy_is_destination_and_route() -> None:
    c = client(trunk(outbound_proxy="sip:10.0.0.9:5070"))
    c.start(0.0)
    (out,) = sends(c)
    assert out.destination == Address("udp", "10.0.0.9", 5070)
    assert out.request.headers.get("Route") == "<sip:10.0.0.9:5070;lr>"
    assert out.request.uri == "sip:127.0.0.1:5090"


def test_tcp_trunk_via_names_tcp() -> None:
    c = client(trunk(transport="tcp"))
    c.start(0.0)
    (out,) = sends(c)
    assert (out.request.headers.get("Via") or "").startswith("SIP/2.0/TCP ")
    assert out.destination.transport == "tcp"
    assert out.request.uri == "sip:127.0.0.1:5090;transport=tcp"


def test_password_never_in_requests_or_repr() -> None:
    c, carrier = client(), Carrier()
    c.start(0.0)
    run(c, carrier, 0.0)
    assert all(b"s3cret" not in r.serialize() for r in carrier.received)
    assert "s3cret" not in repr(c.trunk)


ACTIONS = ["start", "stop", "timer", "timeout", "200", "401", "401-stale", "423", "403",
           "503", "100"]


@given(st.lists(st.sampled_from(ACTIONS), max_size=40))
def test_any_sequence_of_public_calls_keeps_a_valid_state(actions: list[str]) -> None:
    """h2-style: whatever arrives in whatever order, the public API never raises, the state
    is always one of the enum's, and a deadline exists exactly when one is needed."""
    c = client()
    now = 0.0
    nonce = itertools.count()
    last: SendRegister | None = None
    for action in actions:
        now += 1.0
        for out in c.outputs():
            if isinstance(out, SendRegister):
                last = out
        if action == "start":
            c.start(now)
        elif action == "stop":
            c.stop(now)
        elif action == "timer":
            deadline = c.next_deadline()
            c.handle_timer(deadline if deadline is not None else now)
        elif action == "timeout":
            c.handle_timeout(c.pending_cseq or 0, now)
        elif last is not None:
            status = int(action[:3])
            extra: list[tuple[str, str]] = []
            if status == 401:
                stale = ", stale=true" if action.endswith("stale") else ""
                extra = [("WWW-Authenticate",
                          f'Digest realm="r", nonce="n{next(nonce)}", algorithm=MD5{stale}')]
            elif status == 423:
                extra = [("Min-Expires", str(c.expires_s + 60))]
            c.handle_response(make_response(last.request, status, extra=extra), now)
        assert isinstance(c.state, RegistrationState)
        if c.state in (S.FAILED, S.REGISTERED):
            assert c.next_deadline() is not None
        if c.state in (S.REGISTERING, S.UNREGISTERING):
            assert c.pending_cseq is not None
    assert all((st_, RegInput.STOP) in TRANSITIONS for st_ in S)
