"""Registrar (RFC 3261 §10.3), RFC 3665 §2 flows, NAT rewriting, expiry, restart, keep-alive."""

from __future__ import annotations

import random

import pytest

from signaling.auth import DigestAuthenticator, DigestClient
from signaling.events import Address
from signaling.ids import IdGenerator
from signaling.keepalive import KeepAliveTracker, Reachability, ReachabilityChanged, build_options
from signaling.location import Binding, UserCredentials, compute_ha1
from signaling.message import Request
from signaling.parser import parse_message
from signaling.registrar import Registrar

T0 = 1_750_000_000.0
BOB_TLS = Address("tls", "192.0.2.4", 5061)
PHONE = Address("udp", "203.0.113.50", 40123)  # the NAT's public side


def register(
    contacts: list[str] | None = None,
    *,
    cseq: int = 1,
    call_id: str = "1j9FpLxk3uxtm8tn@biloxi.example.com",
    to: str = "Bob <sips:bob@biloxi.example.com>",
    expires: str | None = None,
    ruri: str = "sips:ss2.biloxi.example.com",
    extra: str = "",
) -> Request:
    """A REGISTER in the shape of RFC 3665 §2 (F1/F3/...)."""
    lines = [
        f"REGISTER {ruri} SIP/2.0",
        "Via: SIP/2.0/TLS client.biloxi.example.com:5061;branch=z9hG4bKnashds7",
        "Max-Forwards: 70",
        "From: Bob <sips:bob@biloxi.example.com>;tag=a73kszlfl",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
    ]
    lines += [f"Contact: {c}" for c in contacts or []]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if extra:
        lines.append(extra)
    lines.append("Content-Length: 0")
    msg = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def contacts_of(outcome_headers: list[tuple[str, str]]) -> list[str]:
    return [v for k, v in outcome_headers if k == "Contact"]


AOR = "sips:bob@biloxi.example.com"


# --- RFC 3665 §2 -----------------------------------------------------------------------------


def test_rfc3665_2_1_new_registration_with_401_challenge() -> None:
    realm = "atlanta.example.com"
    auth = DigestAuthenticator(realm, b"k" * 32, random_bytes=random.Random(1).randbytes)
    users = {"bob": UserCredentials("bob", realm, {a: compute_ha1("bob", realm, "zanzibar", a)
                                                   for a in ("MD5", "SHA-256")})}
    reg = Registrar(["biloxi.example.com"])
    # F1 REGISTER without credentials -> F2 401 (the shell asks the authenticator).
    f1 = register(["<sips:bob@client.biloxi.example.com>"], cseq=1)
    assert f1.headers.get("Authorization") is None
    challenge = auth.challenge(T0, BOB_TLS.host)
    # F3 REGISTER with credentials, CSeq 2.
    value = DigestClient(lambda: "0a4f113b").authorize(
        challenge[0], "REGISTER", f1.uri, "bob", "zanzibar")
    f3 = register(["<sips:bob@client.biloxi.example.com>"], cseq=2,
                  extra=f"Authorization: {value}")
    res = auth.verify("REGISTER", f3.headers.get("Authorization") or "", users.get, T0 + 1,
                      BOB_TLS.host, request_uri=f3.uri)
    assert res.ok
    out = reg.handle_register(f3, BOB_TLS, res.username, T0 + 1)
    # F4 200 OK: the binding with its expiry (default 3600 s) and a Date.
    assert out.response_status == 200 and out.changed_aors == {AOR}
    assert contacts_of(out.extra_headers) == ["<sips:bob@client.biloxi.example.com>;expires=3600"]
    assert dict(out.extra_headers)["Date"].endswith("GMT")
    resp = out.to_response(f3, to_tag="37GkEhwl6")
    assert resp.status == 200 and resp.reason == "OK"
    assert resp.headers.get("To") == "Bob <sips:bob@biloxi.example.com>;tag=37GkEhwl6"
    assert resp.headers.get_all("Contact") == [
        "<sips:bob@client.biloxi.example.com>;expires=3600"]
    (b,) = reg.lookup(AOR, T0 + 2)
    assert b.contact == "sips:bob@client.biloxi.example.com"  # TLS: no NAT rewrite
    assert (b.transport, b.source_host, b.cseq) == ("tls", "192.0.2.4", 2)


def test_rfc3665_2_2_update_2_3_query_2_4_cancellation() -> None:
    reg = Registrar(["biloxi.example.com"])
    first = register(["<sips:bob@client.biloxi.example.com>"], cseq=2)
    assert reg.handle_register(first, BOB_TLS, "bob", T0).response_status == 200
    # §2.2: Bob adds a mailto contact (same Call-ID, higher CSeq).
    upd = register(["<mailto:bob@biloxi.example.com>"], cseq=3)
    out = reg.handle_register(upd, BOB_TLS, "bob", T0 + 10)
    assert out.response_status == 200
    assert sorted(contacts_of(out.extra_headers)) == [
        "<mailto:bob@biloxi.example.com>;expires=3600",
        "<sips:bob@client.biloxi.example.com>;expires=3590",
    ]
    # §2.3: no Contact = query; nothing changes.
    q = reg.handle_register(register([], cseq=4), BOB_TLS, "bob", T0 + 20)
    assert q.response_status == 200 and q.changed_aors == frozenset()
    assert len(contacts_of(q.extra_headers)) == 2
    # §2.4: Contact: * with Expires: 0 removes everything; the 200 has no Contact.
    cancel = register(["*"], cseq=5, expires="0")
    out = reg.handle_register(cancel, BOB_TLS, "bob", T0 + 30)
    assert out.response_status == 200 and out.changed_aors == {AOR}
    assert contacts_of(out.extra_headers) == []
    assert reg.lookup(AOR, T0 + 30) == []
    assert reg.pop_dirty() == {AOR: []}


# --- §10.3 rules -----------------------------------------------------------------------------


def test_expires_header_param_min_max_and_423() -> None:
    reg = Registrar(min_expires_s=60, max_expires_s=3600, default_expires_s=1800)
    out = reg.handle_register(register(["<sip:a@192.0.2.1>;expires=120", "<sip:b@192.0.2.1>"],
                                       expires="600"), BOB_TLS, "bob", T0)
    assert sorted(contacts_of(out.extra_headers)) == [
        "<sip:a@192.0.2.1>;expires=120", "<sip:b@192.0.2.1>;expires=600"]
    out = reg.handle_register(register(["<sip:c@192.0.2.1>"], cseq=2, expires="99999"),
                              BOB_TLS, "bob", T0)
    assert "<sip:c@192.0.2.1>;expires=3600" in contacts_of(out.extra_headers)
    out = reg.handle_register(register(["<sip:d@192.0.2.1>"], cseq=3), BOB_TLS, "bob", T0)
    assert "<sip:d@192.0.2.1>;expires=1800" in contacts_of(out.extra_headers)
    # Too brief: 423 with Min-Expires, and nothing of the request is applied.
    out = reg.handle_register(register(["<sip:e@192.0.2.1>", "<sip:f@192.0.2.1>;expires=30"],
                                       cseq=4), BOB_TLS, "bob", T0)
    assert out.response_status == 423 and out.reason == "Interval Too Brief"
    assert out.extra_headers == [("Min-Expires", "60")]
    assert len(reg.lookup(AOR, T0)) == 4
    # 0 is allowed even though it is below the minimum: it removes.
    out = reg.handle_register(register(["<sip:a@192.0.2.1>;expires=0"], cseq=5), BOB_TLS,
                              "bob", T0)
    assert out.response_status == 200 and len(reg.lookup(AOR, T0)) == 3


def test_several_contacts_q_ordering() -> None:
    reg = Registrar()
    out = reg.handle_register(register([
        "<sip:desk@192.0.2.1>;q=0.5",
        '"Soft" <sip:soft@192.0.2.2>;q=1.0, <sip:mobile@192.0.2.3>;q=0.7',
        "<sip:fax@192.0.2.4>",
    ]), BOB_TLS, "bob", T0)
    assert contacts_of(out.extra_headers) == [
        "<sip:soft@192.0.2.2>;expires=3600",
        "<sip:fax@192.0.2.4>;expires=3600",
        "<sip:mobile@192.0.2.3>;expires=3600;q=0.7",
        "<sip:desk@192.0.2.1>;expires=3600;q=0.5",
    ]
    assert [b.q for b in reg.lookup(AOR, T0)] == [1.0, 1.0, 0.7, 0.5]


@pytest.mark.parametrize(
    ("contacts", "expires"),
    [(["*"], None), (["*"], "60"), (["*", "<sip:a@192.0.2.1>"], "0")],
)
def test_wildcard_needs_expires_zero_and_a_single_contact(contacts: list[str],
                                                         expires: str | None) -> None:
    reg = Registrar()
    out = reg.handle_register(register(contacts, expires=expires), BOB_TLS, "bob", T0)
    assert out.response_status == 400


def test_call_id_and_cseq_rules() -> None:
    reg = Registrar()
    assert reg.handle_register(register(["<sip:a@192.0.2.1>"], cseq=10), BOB_TLS, "bob",
                               T0).response_status == 200
    # Same Call-ID, same or lower CSeq: out of order, 500, nothing changes.
    for cseq in (10, 9):
        out = reg.handle_register(register(["<sip:a@192.0.2.1>;expires=0"], cseq=cseq),
                                  BOB_TLS, "bob", T0 + 1)
        assert out.response_status == 500 and reg.lookup(AOR, T0 + 1)
    out = reg.handle_register(register(["*"], cseq=10, expires="0"), BOB_TLS, "bob", T0 + 1)
    assert out.response_status == 500
    # Another Call-ID (the phone rebooted) may replace it regardless of CSeq.
    out = reg.handle_register(register(["<sip:a@192.0.2.1>"], cseq=1, call_id="other@x"),
                              BOB_TLS, "bob", T0 + 2)
    assert out.response_status == 200
    assert reg.lookup(AOR, T0 + 2)[0].call_id == "other@x"
    # The Contact URI compare is RFC 3261 §19.1.4 (host case-insensitive): a refresh.
    out = reg.handle_register(register(["<sip:a@192.0.2.1;transport=udp>"], cseq=2,
                                       call_id="other@x"), BOB_TLS, "bob", T0 + 3)
    assert len(reg.lookup(AOR, T0 + 3)) == 2  # a transport param makes it a new URI
    out = reg.handle_register(register(["<sip:a@192.0.2.1>"], cseq=3, call_id="other@x"),
                              BOB_TLS, "bob", T0 + 4)
    assert len(reg.lookup(AOR, T0 + 4)) == 2


def test_same_contact_twice_in_one_request_last_one_wins() -> None:
    reg = Registrar()
    out = reg.handle_register(register(["<sip:a@192.0.2.1>;expires=300",
                                        "<sip:a@192.0.2.1>;expires=0"]), BOB_TLS, "bob", T0)
    assert out.response_status == 200 and reg.lookup(AOR, T0) == []
    out = reg.handle_register(register(["<sip:a@192.0.2.1>;expires=300",
                                        "<sip:A@192.0.2.1>;expires=600"], cseq=2),
                              BOB_TLS, "bob", T0)
    assert contacts_of(out.extra_headers) == ["<sip:a@192.0.2.1>;expires=300",
                                              "<sip:A@192.0.2.1>;expires=600"]


def test_authorization_of_aors_and_domains() -> None:
    reg = Registrar(["biloxi.example.com"])
    out = reg.handle_register(register(["<sip:a@192.0.2.1>"]), BOB_TLS, "alice", T0)
    assert out.response_status == 403 and out.changed_aors == frozenset()
    out = reg.handle_register(register(["<sip:a@192.0.2.1>"]), BOB_TLS, None, T0)
    assert out.response_status == 403
    out = reg.handle_register(register(["<sip:a@192.0.2.1>"], to="<sip:bob@atlanta.example.com>"),
                              BOB_TLS, "bob", T0)
    assert out.response_status == 404
    out = reg.handle_register(register(["<sip:a@192.0.2.1>"], to="<tel:+15551234>"),
                              BOB_TLS, "bob", T0)
    assert out.response_status == 404
    # Escaped user part canonicalises (§10.3 step 5): %62ob is bob.
    out = reg.handle_register(register(["<sip:a@192.0.2.1>"],
                                       to="<sips:%62ob@BILOXI.example.com;user=phone>"),
                              BOB_TLS, "bob", T0)
    assert out.response_status == 200 and out.aor == AOR
    # A custom policy (e.g. an admin who may register several AORs).
    admin = Registrar(authorize=lambda user, aor: user == "admin")
    assert admin.handle_register(register(["<sip:a@192.0.2.1>"]), BOB_TLS, "admin",
                                 T0).response_status == 200


def test_malformed_register_is_400() -> None:
    reg = Registrar()
    for kwargs in ({"expires": "soon"}, {"contacts": ["<sip:a@192.0.2.1>;q=2"]},
                   {"contacts": ["<sip:a@192.0.2.1"]}):
        contacts = kwargs.pop("contacts", ["<sip:a@192.0.2.1>"])  # type: ignore[arg-type]
        out = reg.handle_register(register(contacts, **kwargs), BOB_TLS, "bob", T0)  # type: ignore[arg-type]
        assert out.response_status == 400


def test_max_contacts() -> None:
    reg = Registrar(max_contacts=2)
    out = reg.handle_register(register([f"<sip:p{i}@192.0.2.1>" for i in range(3)]), BOB_TLS,
                              "bob", T0)
    assert out.response_status == 403 and reg.lookup(AOR, T0) == []


# --- NAT ----------------------------------------------------------------------------------------


def test_udp_contact_rewritten_to_source_and_200_lists_the_original() -> None:
    reg = Registrar()
    req = register(["<sip:bob@10.0.0.7:5060;transport=udp;maddr=10.0.0.1;ob>;"
                    '+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1'],
                   to="<sip:bob@biloxi.example.com>", extra="User-Agent: Phone/1.0")
    out = reg.handle_register(req, PHONE, "bob", T0)
    assert contacts_of(out.extra_headers) == [
        "<sip:bob@10.0.0.7:5060;transport=udp;maddr=10.0.0.1;ob>;expires=3600"]
    (b,) = reg.lookup("sip:bob@biloxi.example.com", T0)
    assert b.contact == "sip:bob@203.0.113.50:40123;ob"
    assert b.registered_contact == "sip:bob@10.0.0.7:5060;transport=udp;maddr=10.0.0.1;ob"
    assert (b.source_host, b.source_port, b.transport) == ("203.0.113.50", 40123, "udp")
    assert b.instance_id == "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"
    assert b.reg_id == 1 and b.user_agent == "Phone/1.0"


def test_nat_modes_and_ipv6_source() -> None:
    req = register(["<sip:bob@10.0.0.7:5060>"], to="<sip:bob@biloxi.example.com>")
    tcp = Address("tcp", "2001:db8::5", 50000)
    always = Registrar(nat_mode="always")
    always.handle_register(req, tcp, "bob", T0)
    assert always.lookup("sip:bob@biloxi.example.com", T0)[0].contact == (
        "sip:bob@[2001:db8::5]:50000;transport=tcp")
    never = Registrar(nat_mode="never")
    never.handle_register(req, PHONE, "bob", T0)
    assert never.lookup("sip:bob@biloxi.example.com", T0)[0].contact == "sip:bob@10.0.0.7:5060"
    udp = Registrar("biloxi.example.com")
    udp.handle_register(req, tcp, "bob", T0)  # TCP: kept as registered
    assert udp.lookup("sip:bob@biloxi.example.com", T0)[0].contact == "sip:bob@10.0.0.7:5060"
    # A non-SIP contact (RFC 3665 §2.2 mailto) is never rewritten, even over UDP.
    mail = register(["<mailto:bob@biloxi.example.com>"], to="<sip:bob@biloxi.example.com>",
                    call_id="m")
    assert udp.handle_register(mail, PHONE, "bob", T0).response_status == 200
    assert "mailto:bob@biloxi.example.com" in [
        b.contact for b in udp.lookup("sip:bob@biloxi.example.com", T0)]
    with pytest.raises(ValueError):
        Registrar(nat_mode="sometimes")
    with pytest.raises(ValueError):
        Registrar(min_expires_s=100, default_expires_s=50)


# --- expiry, persistence, restart ----------------------------------------------------------------


def test_expiry_dirty_tracking_and_restart() -> None:
    reg = Registrar()
    reg.handle_register(register(["<sip:a@192.0.2.1>;expires=100", "<sip:b@192.0.2.1>"]),
                        BOB_TLS, "bob", T0)
    other = register(["<sip:c@192.0.2.9>;expires=200"], to="<sips:carol@biloxi.example.com>",
                     call_id="c1")
    reg.handle_register(other, BOB_TLS, "carol", T0)
    dirty = reg.pop_dirty()
    assert set(dirty) == {AOR, "sips:carol@biloxi.example.com"} and len(dirty[AOR]) == 2
    assert reg.pop_dirty() == {}
    assert reg.next_expiry() == T0 + 100
    assert reg.expire(T0 + 99) == set()
    assert reg.expire(T0 + 100) == {AOR}
    assert [b.registered_contact for b in reg.lookup(AOR, T0 + 100)] == ["sip:b@192.0.2.1"]
    assert reg.pop_dirty() == {AOR: reg.lookup(AOR, T0 + 100)}
    assert reg.expire(T0 + 250) == {"sips:carol@biloxi.example.com"}
    stored = reg.lookup(AOR, T0 + 250)
    assert len(reg) == 1
    # Restart: a new registrar loads what the store had; expired rows are dropped and
    # reported dirty so the store forgets them.
    stale = Binding(aor="sip:old@x", contact="sip:old@192.0.2.3", expires_at=T0)
    broken = Binding(aor="sip:bad@x", contact="not a uri", expires_at=T0 + 10_000)
    fresh = Registrar()
    assert fresh.load([*stored, stale, broken], T0 + 300) == 1
    assert fresh.lookup(AOR, T0 + 300) == stored
    assert set(fresh.pop_dirty()) == {"sip:old@x", "sip:bad@x"}
    # The restored binding is refreshed by the next REGISTER (CSeq moves on).
    out = fresh.handle_register(register(["<sip:b@192.0.2.1>"], cseq=2), BOB_TLS, "bob",
                                T0 + 400)
    assert out.response_status == 200 and len(fresh.lookup(AOR, T0 + 400)) == 1
    assert fresh.remove_contact(AOR, "sip:b@192.0.2.1")
    assert not fresh.remove_contact(AOR, "sip:b@192.0.2.1")


def test_lookup_can_skip_unreachable_but_never_all() -> None:
    reg = Registrar()
    reg.handle_register(register(["<sip:a@192.0.2.1>;q=0.9", "<sip:b@192.0.2.2>;q=0.1"]),
                        BOB_TLS, "bob", T0)
    dead = {"sip:a@192.0.2.1"}
    assert [b.contact for b in reg.lookup(AOR, T0, skip=lambda b: b.contact in dead)] == [
        "sip:b@192.0.2.2"]
    dead.add("sip:b@192.0.2.2")
    assert len(reg.lookup(AOR, T0, skip=lambda b: b.contact in dead)) == 2


# --- keep-alive ----------------------------------------------------------------------------------


def test_keepalive_schedule_hysteresis_and_sync() -> None:
    reg = Registrar()
    reg.handle_register(register(["<sip:bob@10.0.0.7>"], to="<sip:bob@biloxi.example.com>"),
                        PHONE, "bob", T0)
    reg.handle_register(register(["<sip:bob@10.0.0.8>"], to="<sip:bob@biloxi.example.com>",
                                 call_id="tcp"), Address("tcp", "198.51.100.1", 5000), "bob", T0)
    aor = "sip:bob@biloxi.example.com"
    ka = KeepAliveTracker(interval_s=30, timeout_s=5, down_after=2, up_after=1)
    for a, bindings in reg.pop_dirty().items():
        ka.update(a, bindings, T0)
    assert len(ka) == 1  # TCP contacts are not pinged
    (b_udp,) = [b for b in reg.lookup(aor, T0) if b.transport == "udp"]
    deadline = ka.next_deadline()
    assert deadline is not None and T0 <= deadline < T0 + 30
    assert ka.poll(deadline - 0.001) == ([], [])
    pings, _ = ka.poll(deadline)
    assert [p.target for p in pings] == [PHONE] and pings[0].request_uri == "sip:bob@10.0.0.7"
    assert ka.poll(deadline + 1) == ([], [])  # outstanding: no second ping
    assert ka.on_response(aor, b_udp.contact, deadline + 0.2) == ReachabilityChanged(
        aor, b_udp.contact, Reachability.REACHABLE)
    assert not ka.is_unreachable(b_udp)
    # Two unanswered pings in a row -> UNREACHABLE; one is not enough.
    t = deadline + 30
    assert len(ka.poll(t)[0]) == 1
    _, changes = ka.poll(t + 5)
    assert changes == [] and ka.state(aor, b_udp.contact) is Reachability.REACHABLE
    assert len(ka.poll(t + 30)[0]) == 1
    _, changes = ka.poll(t + 35)
    assert changes == [ReachabilityChanged(aor, b_udp.contact, Reachability.UNREACHABLE)]
    assert ka.is_unreachable(b_udp)
    assert [b.transport for b in reg.lookup(aor, T0 + 100, skip=ka.is_unreachable)] == ["tcp"]
    # A transport failure reported by the core counts like a timeout; a late answer revives.
    ka.poll(t + 60)
    assert ka.on_failure(aor, b_udp.contact, t + 61) is None  # already down
    assert ka.on_failure(aor, b_udp.contact, t + 62) is None  # nothing outstanding
    assert ka.on_response(aor, b_udp.contact, t + 63) is not None
    # The binding goes away -> the target goes away.
    ka.update(aor, [], t + 70)
    assert len(ka) == 0 and ka.next_deadline() is None
    assert ka.state(aor, b_udp.contact) is Reachability.UNKNOWN
    with pytest.raises(ValueError):
        KeepAliveTracker(interval_s=5, timeout_s=5)


def test_build_options_request() -> None:
    ka = KeepAliveTracker()
    b = Binding(aor="sip:bob@biloxi.example.com", contact="sip:bob@203.0.113.50:40123",
                expires_at=T0 + 60, source_host="203.0.113.50", source_port=40123,
                registered_contact="sip:bob@10.0.0.7")
    ka.update(b.aor, [b], T0)
    (ping,), _ = ka.poll(T0 + 31)
    req = build_options(ping, local=Address("udp", "192.0.2.1", 5060),
                        from_uri="sip:keepalive@biloxi.example.com",
                        ids=IdGenerator(random.Random(5)))
    again = parse_message(bytes(req))
    assert isinstance(again, Request)
    assert again.method == "OPTIONS" and again.uri == "sip:bob@10.0.0.7"
    assert again.top_via.rport is True and again.top_via.branch.startswith("z9hG4bK")
    assert again.to.uri is not None and again.to.uri.canonical_aor() == b.aor
    assert again.from_tag and again.cseq.method == "OPTIONS"
