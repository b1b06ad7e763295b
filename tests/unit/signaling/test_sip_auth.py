"""Digest authentication: RFC 2617 §3.5 and RFC 7616 §3.9.1 vectors, nonces, replay, lockout."""

from __future__ import annotations

import logging
import random

import pytest

from signaling.auth import (
    AuthResult,
    DigestAuthenticator,
    DigestClient,
    LockoutPolicy,
    digest_response,
    parse_digest_params,
)
from signaling.errors import SipParseError
from signaling.location import UserCredentials, compute_ha1

REALM = "softswitch.test"
SECRET = b"0123456789abcdef0123456789abcdef"
URI = "sip:softswitch.test"
T0 = 1_700_000_000.0


# --- RFC vectors ---------------------------------------------------------------------------


def test_rfc2617_section_3_5_md5_qop_auth() -> None:
    # RFC 2617 §3.5: Mufasa / "Circle Of Life" / testrealm@host.com, GET /dir/index.html.
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life", "MD5")
    resp = digest_response(
        algorithm="MD5", ha1=ha1, nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", method="GET",
        uri="/dir/index.html", qop="auth", nc="00000001", cnonce="0a4f113b",
    )
    assert resp == "6629fae49393a05397450978507c4ef1"


RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1(algorithm: str, expected: str) -> None:
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    resp = digest_response(
        algorithm=algorithm, ha1=ha1, nonce=RFC7616_NONCE, method="GET",
        uri="/dir/index.html", qop="auth", nc="00000001", cnonce=RFC7616_CNONCE,
    )
    assert resp == expected


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_client_reproduces_rfc7616_vectors(algorithm: str, expected: str) -> None:
    challenge = (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    client = DigestClient(lambda: RFC7616_CNONCE)
    value = client.authorize(challenge, "GET", "/dir/index.html", "Mufasa", "Circle of Life")
    scheme, p = parse_digest_params(value)
    assert scheme == "Digest"
    assert p["response"] == expected
    assert p["nc"] == "00000001" and p["qop"] == "auth"
    assert p["opaque"] == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    assert "qop=auth," in value and f"algorithm={algorithm}" in value
    # The same client with an HA1 instead of the password gives the same answer.
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    again = DigestClient(lambda: RFC7616_CNONCE).authorize(
        challenge, "GET", "/dir/index.html", "Mufasa", ha1={algorithm: ha1}
    )
    assert parse_digest_params(again)[1]["response"] == expected


def test_rfc2069_and_sess_forms() -> None:
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    # RFC 2069: response = H(HA1:nonce:HA2), no qop.
    import hashlib

    ha2 = hashlib.md5(b"GET:/dir/index.html").hexdigest()
    want = hashlib.md5(f"{ha1}:abc:{ha2}".encode()).hexdigest()
    assert digest_response(algorithm="MD5", ha1=ha1, nonce="abc", method="GET",
                           uri="/dir/index.html") == want
    # MD5-sess: HA1' = H(HA1:nonce:cnonce).
    sess = hashlib.md5(f"{ha1}:abc:cn".encode()).hexdigest()
    want = hashlib.md5(f"{sess}:abc:00000001:cn:auth:{ha2}".encode()).hexdigest()
    assert digest_response(algorithm="MD5-sess", ha1=ha1, nonce="abc", method="GET",
                           uri="/dir/index.html", qop="auth", nc="00000001",
                           cnonce="cn") == want
    with pytest.raises(ValueError):
        digest_response(algorithm="SHA-1", ha1=ha1, nonce="n", method="GET", uri="/")


# --- header syntax -------------------------------------------------------------------------


def test_parse_and_format_params() -> None:
    scheme, p = parse_digest_params(
        'Digest username="a\\"b", realm="r, x",nonce=abc ,  qop=auth, nc=00000001'
    )
    assert scheme == "Digest"
    assert p == {"username": 'a"b', "realm": "r, x", "nonce": "abc", "qop": "auth",
                 "nc": "00000001"}
    value = DigestClient(lambda: "c").authorize('Digest realm="r", nonce="n"', "GET", "/",
                                                'a"b', "pw")
    assert value.startswith('Digest username="a\\"b", realm="r", nonce="n", uri="/"')
    assert parse_digest_params(value)[1]["username"] == 'a"b'


@pytest.mark.parametrize(
    "bad",
    ["", 'Digest realm="x', "Digest realm", 'Digest realm="a", realm="b"', "Digest a=b c=d",
     'Digest ="x"'],
)
def test_parse_rejects_malformed(bad: str) -> None:
    with pytest.raises(SipParseError):
        parse_digest_params(bad)


# --- server round trips --------------------------------------------------------------------


def _users(*names: str, password: str = "secret", realm: str = REALM) -> dict[str, UserCredentials]:
    return {
        n: UserCredentials(n, realm, {a: compute_ha1(n, realm, password, a)
                                      for a in ("MD5", "SHA-256")})
        for n in names
    }


def _auth(**kw: object) -> DigestAuthenticator:
    rng = random.Random(7)
    return DigestAuthenticator(REALM, SECRET, random_bytes=rng.randbytes, **kw)  # type: ignore[arg-type]


def _client() -> DigestClient:
    rng = random.Random(3)
    return DigestClient(lambda: f"{rng.getrandbits(64):016x}")


def test_challenge_lists_sha256_first_then_md5() -> None:
    auth = _auth()
    values = auth.challenge(T0, "192.0.2.1")
    assert len(values) == 2
    algs = [parse_digest_params(v)[1]["algorithm"] for v in values]
    assert algs == ["SHA-256", "MD5"]
    p = parse_digest_params(values[0])[1]
    assert p["realm"] == REALM and p["qop"] == "auth" and p["opaque"] and "stale" not in p
    assert parse_digest_params(values[1])[1]["nonce"] == p["nonce"]
    assert 'qop="auth"' in values[0]
    stale = auth.challenge(T0, "192.0.2.1", stale=True)
    assert parse_digest_params(stale[0])[1]["stale"] == "true"
    assert "stale=true" in stale[0]


@pytest.mark.parametrize("pick", [0, 1])
def test_client_against_server_both_algorithms(pick: int) -> None:
    auth, users = _auth(), _users("alice")
    challenge = auth.challenge(T0, "192.0.2.1")[pick]
    value = _client().authorize(challenge, "REGISTER", URI, "alice", "secret")
    res = auth.verify("REGISTER", value, users.get, T0 + 1, "192.0.2.1", request_uri=URI)
    assert res == AuthResult(True, "alice", "ok", algorithm=("SHA-256", "MD5")[pick])
    assert res.status_code == 200


def test_select_challenge_prefers_server_order_and_skips_unknown() -> None:
    values = ['Digest realm="r", nonce="n", algorithm=SHA-512-256', 'Digest realm="r", nonce="n"']
    assert DigestClient.select_challenge(values) == values[1]
    with pytest.raises(SipParseError):
        DigestClient.select_challenge(values[:1])


def test_wrong_password_wrong_realm_wrong_uri_and_method() -> None:
    auth, users = _auth(), _users("alice")
    ch = auth.challenge(T0, "192.0.2.1")[0]
    bad_pw = _client().authorize(ch, "REGISTER", URI, "alice", "guess")
    res = auth.verify("REGISTER", bad_pw, users.get, T0, "192.0.2.1", request_uri=URI)
    assert not res.ok and res.reason == "wrong response" and res.status_code == 401
    good = _client().authorize(ch, "REGISTER", URI, "alice", "secret")
    res = auth.verify("INVITE", good, users.get, T0, "192.0.2.1", request_uri=URI)
    assert res.reason == "wrong response"
    res = auth.verify("REGISTER", good, users.get, T0, "192.0.2.1", request_uri="sip:other")
    assert res.reason == "digest uri does not match the Request-URI"
    other_realm = ch.replace(f'realm="{REALM}"', 'realm="evil.example"')
    v = _client().authorize(other_realm, "REGISTER", URI, "alice", "secret")
    assert auth.verify("REGISTER", v, users.get, T0, "192.0.2.1").reason == "wrong realm"
    v = _client().authorize(ch, "REGISTER", URI, "mallory", "secret")
    assert auth.verify("REGISTER", v, users.get, T0, "192.0.2.1").reason == "unknown user"


def test_nonce_bound_to_address_and_signature() -> None:
    auth, users = _auth(), _users("alice")
    ch = auth.challenge(T0, "192.0.2.1")[0]
    v = _client().authorize(ch, "REGISTER", URI, "alice", "secret")
    assert auth.verify("REGISTER", v, users.get, T0, "192.0.2.99").reason == "unknown nonce"
    other = DigestAuthenticator(REALM, b"x" * 32, random_bytes=random.Random(1).randbytes)
    no_opaque = v.split(", opaque=")[0]
    assert other.verify("REGISTER", no_opaque, users.get, T0, "192.0.2.1").reason == (
        "unknown nonce"
    )
    forged = v.replace(parse_digest_params(v)[1]["nonce"], "A" * 43)
    assert auth.verify("REGISTER", forged, users.get, T0, "192.0.2.1").reason == "unknown nonce"


def test_expired_nonce_with_right_password_is_stale() -> None:
    auth, users = _auth(nonce_lifetime_s=300), _users("alice")
    ch = auth.challenge(T0, "192.0.2.1")[0]
    v = _client().authorize(ch, "REGISTER", URI, "alice", "secret")
    res = auth.verify("REGISTER", v, users.get, T0 + 301, "192.0.2.1")
    assert not res.ok and res.stale and res.reason == "nonce expired" and res.status_code == 401
    # Wrong password on an expired nonce is a plain failure, not stale.
    bad = _client().authorize(ch, "REGISTER", URI, "alice", "nope")
    res = auth.verify("REGISTER", bad, users.get, T0 + 301, "192.0.2.1")
    assert not res.stale and res.reason == "wrong response"
    # The phone retries on the fresh stale challenge and succeeds.
    fresh = auth.challenge(T0 + 301, "192.0.2.1", stale=True)[0]
    v2 = _client().authorize(fresh, "REGISTER", URI, "alice", "secret")
    assert auth.verify("REGISTER", v2, users.get, T0 + 302, "192.0.2.1").ok


def test_nonce_count_must_increase() -> None:
    auth, users, client = _auth(), _users("alice"), _client()
    ch = auth.challenge(T0, "192.0.2.1")[0]
    first = client.authorize(ch, "REGISTER", URI, "alice", "secret")
    assert auth.verify("REGISTER", first, users.get, T0, "192.0.2.1").ok
    res = auth.verify("REGISTER", first, users.get, T0 + 1, "192.0.2.1")
    assert res.reason == "nonce-count replayed" and not res.ok
    second = client.authorize(ch, "REGISTER", URI, "alice", "secret")
    assert parse_digest_params(second)[1]["nc"] == "00000002"
    assert auth.verify("REGISTER", second, users.get, T0 + 2, "192.0.2.1").ok
    assert not auth.verify("REGISTER", first, users.get, T0 + 3, "192.0.2.1").ok
    zero = first.replace("nc=00000001", "nc=00000000")
    assert auth.verify("REGISTER", zero, users.get, T0, "192.0.2.1").reason.startswith("bad")


def test_nonce_tracker_is_bounded_and_evicted_nonces_go_stale() -> None:
    auth, users = _auth(max_tracked_nonces=4), _users("alice")
    answers = []
    for i in range(6):
        ch = auth.challenge(T0 + i, "192.0.2.1")[0]
        v = _client().authorize(ch, "REGISTER", URI, "alice", "secret")
        assert auth.verify("REGISTER", v, users.get, T0 + i, "192.0.2.1").ok
        answers.append(ch)
    assert auth.tracked_nonces == 4
    # The evicted first nonce cannot be proven fresh: stale, so the phone re-challenges.
    c = DigestClient(lambda: "cn")
    c.authorize(answers[0], "REGISTER", URI, "alice", "secret")
    v = c.authorize(answers[0], "REGISTER", URI, "alice", "secret")
    res = auth.verify("REGISTER", v, users.get, T0 + 10, "192.0.2.1")
    assert res.stale and not res.ok


def test_rfc2069_md5_accepted_only_when_allowed() -> None:
    users = _users("alice")
    for allow in (True, False):
        auth = _auth(allow_rfc2069=allow)
        ch = auth.challenge(T0, "192.0.2.1")[1].replace(', qop="auth"', "")
        v = _client().authorize(ch, "REGISTER", URI, "alice", "secret")
        assert "qop" not in parse_digest_params(v)[1]
        res = auth.verify("REGISTER", v, users.get, T0, "192.0.2.1")
        assert res.ok is allow
        if not allow:
            assert res.reason == "qop required"


def test_sess_algorithms_when_configured() -> None:
    auth = _auth(algorithms=("SHA-256-sess", "MD5-sess", "SHA-256"))
    users = _users("alice")
    chs = auth.challenge(T0, "192.0.2.1")
    assert parse_digest_params(chs[0])[1]["algorithm"] == "SHA-256-sess"
    client = _client()  # one client: the three challenges share a nonce, so nc counts on
    for ch in chs:
        v = client.authorize(ch, "REGISTER", URI, "alice", "secret")
        assert auth.verify("REGISTER", v, users.get, T0, "192.0.2.1").ok
    # An algorithm that was not offered is refused (no downgrade to MD5).
    md5 = _client().authorize(chs[0].replace("SHA-256-sess", "MD5"), "REGISTER", URI,
                              "alice", "secret")
    assert auth.verify("REGISTER", md5, users.get, T0, "192.0.2.1").reason.endswith("offered")


def test_auth_int_covers_the_body() -> None:
    auth, users = _auth(qops=("auth", "auth-int")), _users("alice")
    ch = auth.challenge(T0, "192.0.2.1")[0].replace('qop="auth,auth-int"', 'qop="auth-int"')
    v = _client().authorize(ch, "INVITE", URI, "alice", "secret", body=b"v=0\r\n")
    assert auth.verify("INVITE", v, users.get, T0, "192.0.2.1", body=b"v=0\r\n").ok
    v = _client().authorize(ch, "INVITE", URI, "alice", "secret", body=b"v=0\r\n")
    res = auth.verify("INVITE", v, users.get, T0, "192.0.2.1", body=b"v=1\r\n")
    assert res.reason == "wrong response"


def test_userhash_opaque_disabled_and_missing_fields() -> None:
    auth = _auth()
    users = _users("alice")
    users["bob"] = UserCredentials("bob", REALM, users["alice"].ha1, enabled=False)
    ch = auth.challenge(T0, "192.0.2.1")[0]
    v = _client().authorize(ch, "REGISTER", URI, "alice", "secret")
    assert auth.verify("REGISTER", v + ", userhash=true", users.get, T0,
                       "192.0.2.1").reason == "userhash not supported"
    opaque = parse_digest_params(v)[1]["opaque"]
    assert auth.verify("REGISTER", v.replace(opaque, "x"), users.get, T0,
                       "192.0.2.1").reason == "wrong opaque"
    vb = _client().authorize(ch, "REGISTER", URI, "bob", "secret")
    assert auth.verify("REGISTER", vb, users.get, T0, "192.0.2.1").reason == "user disabled"
    assert auth.verify("REGISTER", 'Digest username="alice"', users.get, T0,
                       "192.0.2.1").reason == "missing realm"
    assert auth.verify("REGISTER", "Basic YWxhZGRpbg==", users.get, T0,
                       "192.0.2.1").reason == "not a Digest credential"
    assert auth.verify("REGISTER", 'Digest realm="x', users.get, T0,
                       "192.0.2.1").reason == "malformed Authorization header"


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        DigestAuthenticator(REALM, b"short", random_bytes=random.Random(0).randbytes)
    with pytest.raises(ValueError):
        _auth(algorithms=("SHA-1",))
    with pytest.raises(ValueError):
        LockoutPolicy(max_failures=0)


# --- lockout -------------------------------------------------------------------------------


def _fail_once(auth: DigestAuthenticator, users: dict[str, UserCredentials], user: str,
               ip: str, now: float) -> AuthResult:
    ch = auth.challenge(now, ip)[0]
    v = _client().authorize(ch, "REGISTER", URI, user, "wrong")
    return auth.verify("REGISTER", v, users.get, now, ip)


def test_lockout_per_address_then_unlock(caplog: pytest.LogCaptureFixture) -> None:
    policy = LockoutPolicy(max_failures=3, window_s=60, lockout_s=300)
    auth, users = _auth(lockout=policy), _users("alice", "bob", "carol", "dave")
    ip = "203.0.113.9"
    with caplog.at_level(logging.WARNING, logger="signaling.auth"):
        assert not _fail_once(auth, users, "alice", ip, T0).locked
        assert not _fail_once(auth, users, "bob", ip, T0 + 1).locked
        res = _fail_once(auth, users, "carol", ip, T0 + 2)
    assert res.locked and res.status_code == 403 and res.retry_after_s == 300
    assert any("203.0.113.9 locked" in r.getMessage() for r in caplog.records)
    # No secrets in the log lines.
    for rec in caplog.records:
        msg = rec.getMessage()
        assert "secret" not in msg and "wrong" not in msg.replace("wrong response", "")
        for u in users.values():
            for ha1 in u.ha1.values():
                assert ha1 not in msg
    # While locked even the right password gets 403, with the remaining time.
    ch = auth.challenge(T0 + 100, ip)[0]
    good = _client().authorize(ch, "REGISTER", URI, "dave", "secret")
    res = auth.verify("REGISTER", good, users.get, T0 + 100, ip)
    assert res.locked and res.retry_after_s == 202
    assert auth.locked_for(T0 + 100, ip) == pytest.approx(202)
    # Another address is unaffected; after the lock time the address works again.
    ch2 = auth.challenge(T0 + 100, "203.0.113.10")[0]
    ok = _client().authorize(ch2, "REGISTER", URI, "dave", "secret")
    assert auth.verify("REGISTER", ok, users.get, T0 + 100, "203.0.113.10").ok
    ch3 = auth.challenge(T0 + 303, ip)[0]
    ok = _client().authorize(ch3, "REGISTER", URI, "dave", "secret")
    assert auth.verify("REGISTER", ok, users.get, T0 + 303, ip).ok


def test_lockout_per_user_across_addresses() -> None:
    policy = LockoutPolicy(max_failures=3, window_s=60, lockout_s=120)
    auth, users = _auth(lockout=policy), _users("alice")
    for i in range(2):
        assert not _fail_once(auth, users, "alice", f"198.51.100.{i}", T0 + i).locked
    res = _fail_once(auth, users, "alice", "198.51.100.7", T0 + 5)
    assert res.locked
    ch = auth.challenge(T0 + 10, "198.51.100.50")[0]
    good = _client().authorize(ch, "REGISTER", URI, "alice", "secret")
    assert auth.verify("REGISTER", good, users.get, T0 + 10, "198.51.100.50").locked
    assert auth.locked_for(T0 + 10, "198.51.100.50", "alice") > 0
    ch = auth.challenge(T0 + 126, "198.51.100.50")[0]
    good = _client().authorize(ch, "REGISTER", URI, "alice", "secret")
    assert auth.verify("REGISTER", good, users.get, T0 + 126, "198.51.100.50").ok


def test_failures_outside_the_window_do_not_lock_and_success_resets() -> None:
    policy = LockoutPolicy(max_failures=3, window_s=10, lockout_s=120)
    auth, users = _auth(lockout=policy), _users("alice")
    ip = "192.0.2.77"
    for t in (0, 11, 22, 33):
        assert not _fail_once(auth, users, "alice", ip, T0 + t).locked
    assert not _fail_once(auth, users, "alice", ip, T0 + 34).locked
    ch = auth.challenge(T0 + 35, ip)[0]
    ok = _client().authorize(ch, "REGISTER", URI, "alice", "secret")
    assert auth.verify("REGISTER", ok, users.get, T0 + 35, ip).ok
    # Counters were cleared by the success: two more failures do not lock.
    assert not _fail_once(auth, users, "alice", ip, T0 + 36).locked
    assert not _fail_once(auth, users, "alice", ip, T0 + 37).locked


def test_nonce_count_entries_expire_with_their_nonce() -> None:
    auth, users = _auth(nonce_lifetime_s=300), _users("alice")
    for t in (0, 10):
        ch = auth.challenge(T0 + t, "192.0.2.1")[0]
        v = _client().authorize(ch, "REGISTER", URI, "alice", "secret")
        assert auth.verify("REGISTER", v, users.get, T0 + t, "192.0.2.1").ok
    assert auth.tracked_nonces == 2
    ch = auth.challenge(T0 + 305, "192.0.2.1")[0]
    v = _client().authorize(ch, "REGISTER", URI, "alice", "secret")
    assert auth.verify("REGISTER", v, users.get, T0 + 305, "192.0.2.1").ok
    assert auth.tracked_nonces == 2  # the T0 nonce is gone, T0+10 and T0+305 remain


def test_future_nonce_is_not_ours() -> None:
    auth, users = _auth(), _users("alice")
    ch = auth.challenge(T0 + 60, "192.0.2.1")[0]
    v = _client().authorize(ch, "REGISTER", URI, "alice", "secret")
    assert auth.verify("REGISTER", v, users.get, T0, "192.0.2.1").reason == "unknown nonce"


def test_rejection_status_and_headers() -> None:
    policy = LockoutPolicy(max_failures=2, window_s=60, lockout_s=30)
    auth, users = _auth(lockout=policy), _users("alice")
    status, headers = auth.rejection(None, T0, "192.0.2.5")
    assert status == 401 and [k for k, _ in headers] == ["WWW-Authenticate"] * 2
    assert "stale" not in headers[0][1]
    status, headers = auth.rejection(None, T0, "192.0.2.5", proxy=True)
    assert status == 407 and headers[0][0] == "Proxy-Authenticate"
    ch = auth.challenge(T0, "192.0.2.5")[0]
    v = _client().authorize(ch, "REGISTER", URI, "alice", "secret")
    stale = auth.verify("REGISTER", v, users.get, T0 + 400, "192.0.2.5")
    status, headers = auth.rejection(stale, T0 + 400, "192.0.2.5")
    assert status == 401 and "stale=true" in headers[0][1]
    _fail_once(auth, users, "alice", "192.0.2.5", T0 + 500)
    locked = _fail_once(auth, users, "alice", "192.0.2.5", T0 + 501)
    assert auth.rejection(locked, T0 + 501, "192.0.2.5") == (403, [("Retry-After", "30")])
    # A new request from the locked address without credentials is refused too.
    assert auth.rejection(None, T0 + 511, "192.0.2.5") == (403, [("Retry-After", "20")])
    assert auth.rejection(None, T0 + 532, "192.0.2.5")[0] == 401
