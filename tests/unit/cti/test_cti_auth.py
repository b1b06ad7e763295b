"""Password hashes, tokens and lockout with a fake clock."""

from __future__ import annotations

import pytest

from cti.auth import (
    Authenticator,
    CtiUser,
    LoginThrottle,
    MemoryUserDirectory,
    TokenStore,
    hash_password,
    verify_password,
)
from cti.messages import CtiRequestError
from cti.roles import Principal, Role


def test_hash_is_salted_and_verifies() -> None:
    one, two = hash_password("secret", log2_n=4), hash_password("secret", log2_n=4)
    assert one != two and one.startswith("scrypt$4$8$1$")
    assert "secret" not in one
    assert verify_password("secret", one) and verify_password("secret", two)
    assert not verify_password("Secret", one)


@pytest.mark.parametrize("bad", ["", "md5$abc", "scrypt$x$8$1$00$00", "scrypt$40$8$1$00$00",
                                 "scrypt$4$8$1$zz$00"])
def test_malformed_hash_never_verifies(bad: str) -> None:
    assert verify_password("secret", bad) is False


def test_default_cost_is_rfc7914_interactive() -> None:
    assert hash_password("x", salt=b"s" * 16).startswith("scrypt$14$8$1$")
    with pytest.raises(ValueError):
        hash_password("")


def test_lockout_and_unlock_with_fake_clock() -> None:
    throttle = LoginThrottle(max_failures=3, window_s=60.0, lockout_s=300.0)
    assert not throttle.record_failure("alice", 0.0)
    assert not throttle.record_failure("alice", 10.0)
    assert throttle.locked_until("alice", 10.0) is None
    assert throttle.record_failure("alice", 20.0)          # third within 60 s: locked
    assert throttle.locked_until("alice", 21.0) == 320.0
    assert throttle.locked_until("bob", 21.0) is None
    assert throttle.locked_until("alice", 320.0) is None   # expired
    # failures outside the window do not add up
    assert not throttle.record_failure("carol", 0.0)
    assert not throttle.record_failure("carol", 61.0)
    assert not throttle.record_failure("carol", 122.0)
    throttle.record_failure("dave", 0.0)
    throttle.record_failure("dave", 1.0)
    throttle.record_failure("dave", 2.0)
    throttle.unlock("dave")
    assert throttle.locked_until("dave", 3.0) is None


def test_tokens_expire_and_revoke() -> None:
    store = TokenStore(ttl_s=100.0)
    principal = Principal("alice", Role.AGENT)
    token = store.issue(principal, now=0.0)
    assert store.verify(token, 99.0) == principal
    assert store.verify(token, 100.0) is None
    token = store.issue(principal, now=200.0)
    store.revoke_user("alice")
    assert store.verify(token, 201.0) is None


def _auth(**throttle: float) -> Authenticator:
    users = MemoryUserDirectory([
        CtiUser("alice", Role.AGENT, hash_password("pw", log2_n=4), frozenset({"q"}),
                agent_id="a1"),
        CtiUser("gone", Role.AGENT, hash_password("pw", log2_n=4), enabled=False),
    ])
    return Authenticator(users, LoginThrottle(**throttle))  # type: ignore[arg-type]


async def test_password_then_token_login() -> None:
    auth = _auth()
    principal, token = await auth.login(user="alice", password="pw", token=None, now=0.0)
    assert principal.agent_id == "a1" and principal.queues == frozenset({"q"})
    again, same = await auth.login(user=None, password=None, token=token, now=1.0)
    assert again == principal and same == token
    with pytest.raises(CtiRequestError) as info:
        await auth.login(user="bob", password=None, token=token, now=1.0)
    assert info.value.code.value == "auth_failed"


async def test_unknown_disabled_and_wrong_are_the_same_failure() -> None:
    auth = _auth()
    messages = set()
    for user, pw in (("nobody", "pw"), ("gone", "pw"), ("alice", "bad")):
        with pytest.raises(CtiRequestError) as info:
            await auth.login(user=user, password=pw, token=None, now=0.0)
        assert info.value.code.value == "auth_failed"
        messages.add(info.value.message)
    assert len(messages) == 1


async def test_lockout_refuses_even_the_right_password() -> None:
    auth = _auth(max_failures=2, window_s=60.0, lockout_s=30.0)
    with pytest.raises(CtiRequestError):
        await auth.login(user="alice", password="x", token=None, now=0.0)
    with pytest.raises(CtiRequestError) as info:
        await auth.login(user="alice", password="x", token=None, now=1.0)
    assert info.value.code.value == "locked_out"
    with pytest.raises(CtiRequestError) as info:
        await auth.login(user="alice", password="pw", token=None, now=2.0)
    assert info.value.code.value == "locked_out"
    principal, _ = await auth.login(user="alice", password="pw", token=None, now=31.5)
    assert principal.user == "alice"


async def test_login_needs_credentials() -> None:
    with pytest.raises(CtiRequestError) as info:
        await _auth().login(user="alice", password=None, token=None, now=0.0)
    assert info.value.code.value == "invalid_args"
