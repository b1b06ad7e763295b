"""Digest authentication: RFC 3261 §22, RFC 2617, RFC 7616 (SHA-256) and RFC 8760 (SIP).

Server side (:class:`DigestAuthenticator`) and client side (:class:`DigestClient`, for trunks).

Rules of this module:

* Rule 1 -- no state per challenge. A nonce is ``b64url(ts_ms | salt | HMAC(secret, ts_ms |
  salt | client-ip))``: the server recognises its own nonces and their age without a table,
  so a REGISTER flood costs no memory. Only nonces a client has *answered* enter the
  nonce-count tracker, which is bounded (see :class:`_NonceCounts`).
* Rule 2 -- never the password: verification uses the stored HA1 of the algorithm the client
  chose (``UserCredentials.ha1``). Passwords, HA1s and responses are never logged.
* Rule 3 -- constant-time comparison (:func:`hmac.compare_digest`) for every secret-derived
  value, and lockout checks *before* any hashing so a brute force is cheap to refuse.
* Rule 4 -- pure: time is the ``now`` argument, randomness comes from an injected source.

Choices (documented as the RFCs leave them open):

* Algorithms: MD5, SHA-256 and their "-sess" forms (RFC 7616 §3.4.2). SHA-512-256 is not
  offered (few SIP phones have it). Challenges list SHA-256 before MD5 (RFC 8760 §2.4,
  RFC 7616 §3.7: in order of preference, the client picks the first it supports).
* qop: ``auth`` is offered; ``auth-int`` is accepted when configured; an MD5 answer without
  qop (RFC 2069) is accepted for old phones unless ``allow_rfc2069=False`` (it has no nonce
  count, so replay is bounded only by the nonce lifetime).
* ``userhash`` (RFC 7616 §3.4.4) is not supported: we never offer it, and an answer that
  sets ``userhash=true`` is refused.
* Stale: an expired nonce with our valid signature *and* a correct response gives
  ``stale=True`` (RFC 7616 §3.3), so the phone retries with the new nonce silently; an
  expired nonce with a wrong response is an ordinary failure.
* Lockout: failures (wrong response, unknown user, disabled user) are counted per source
  address and per known username; ``max_failures`` within ``window_s`` locks the key for
  ``lockout_s``. While locked we answer **403 Forbidden with Retry-After** instead of
  challenging again (a new 401 would just invite the next guess). A nonce we cannot
  verify (foreign, forged, from before a restart) is not a failure: the client is
  challenged again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import struct
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import SipParseError
from .headers import format_auth_params, parse_auth_params
from .location import UserCredentials
from .uri import SipUri

__all__ = [
    "AuthResult",
    "DigestAuthenticator",
    "DigestClient",
    "LockoutPolicy",
    "digest_response",
    "parse_digest_params",
]

logger = logging.getLogger(__name__)

_HASHES: dict[str, str] = {"MD5": "md5", "SHA-256": "sha256"}
_NONCE_TS = struct.Struct(">Q")
_SALT_BYTES = 8
_MAC_BYTES = 16
_NONCE_BYTES = _NONCE_TS.size + _SALT_BYTES + _MAC_BYTES
_FUTURE_SKEW_S = 5.0
"""A nonce stamped later than ``now`` + this is not ours (or the clock jumped back)."""


def _h(algorithm: str, data: str) -> str:
    base = algorithm.upper().removesuffix("-SESS")
    return hashlib.new(_HASHES[base], data.encode("utf-8")).hexdigest()


def digest_response(
    *,
    algorithm: str,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str = "",
    cnonce: str = "",
    body: bytes = b"",
) -> str:
    """The request-digest of RFC 2617 §3.2.2.1 / RFC 7616 §3.4.1, from a stored HA1.

    ``algorithm`` is "MD5", "SHA-256" or a "-sess" form; for "-sess" the session HA1 is
    H(HA1 ":" nonce ":" cnonce) (RFC 7616 §3.4.2). ``qop`` None means RFC 2069 form.
    """
    alg = algorithm.upper()
    if alg.removesuffix("-SESS") not in _HASHES:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    if alg.endswith("-SESS"):
        ha1 = _h(alg, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        body_hash = hashlib.new(_HASHES[alg.removesuffix("-SESS")], body).hexdigest()
        ha2 = _h(alg, f"{method}:{uri}:{body_hash}")
    else:
        ha2 = _h(alg, f"{method}:{uri}")
    if qop is None:
        return _h(alg, f"{ha1}:{nonce}:{ha2}")
    return _h(alg, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


# --- header syntax (RFC 7616 §3.3/§3.4, RFC 3261 §25.1 challenge/credentials) ---------


def parse_digest_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Digest k=v, k="v"`` into (scheme, {lowercase key: unquoted value}).

    A thin layer over :func:`signaling.headers.parse_auth_params` that also refuses a
    token68 form, which Digest never uses. Raises :class:`SipParseError` when malformed.
    """
    scheme, params = parse_auth_params(value)
    if "token68" in params and scheme.lower() == "digest":
        raise SipParseError("Digest credentials need auth-params")
    return scheme, params


_QUOTED_CHALLENGE = {"realm", "nonce", "opaque", "qop", "domain"}
"""RFC 7616 §3.3: these challenge values are quoted-strings; algorithm and stale are not."""
_QUOTED_CREDENTIALS = {"username", "realm", "nonce", "uri", "response", "cnonce", "opaque"}
"""RFC 7616 §3.4: qop, nc and algorithm are tokens in credentials, the rest quoted."""


# --- results and policy -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """When repeated failures lock a source address or a username out."""

    max_failures: int = 5
    """Failures within ``window_s`` that trigger a lock."""
    window_s: float = 60.0
    """Sliding window over which failures are counted."""
    lockout_s: float = 300.0
    """How long a lock lasts; the 403 carries the remaining time in Retry-After."""
    max_tracked: int = 100_000
    """Bound on the failure table (oldest keys are forgotten first)."""

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.window_s <= 0 or self.lockout_s < 0:
            raise ValueError("LockoutPolicy needs max_failures >= 1, window_s > 0")


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Outcome of :meth:`DigestAuthenticator.verify`.

    The shell answers: ``ok`` -> go on; ``locked`` -> 403 + ``Retry-After: retry_after_s``;
    otherwise 401 with :meth:`DigestAuthenticator.challenge` (``stale=result.stale``).
    """

    ok: bool
    username: str | None
    reason: str
    stale: bool = False
    locked: bool = False
    retry_after_s: int = 0
    algorithm: str | None = None

    @property
    def status_code(self) -> int:
        """200 when authenticated, else the status to answer with (401 or 403)."""
        if self.ok:
            return 200
        return 403 if self.locked else 401


@dataclass(slots=True)
class _Failures:
    times: list[float]
    locked_until: float = 0.0


class _Lockout:
    """Sliding-window failure counter per key ("ip:1.2.3.4", "user:alice"), bounded."""

    def __init__(self, policy: LockoutPolicy) -> None:
        self.policy = policy
        self._table: OrderedDict[str, _Failures] = OrderedDict()

    def locked_for(self, key: str, now: float) -> float:
        entry = self._table.get(key)
        if entry is None or entry.locked_until <= now:
            return 0.0
        return entry.locked_until - now

    def fail(self, key: str, now: float) -> bool:
        """Record one failure; True when this failure starts a lock."""
        entry = self._table.get(key)
        if entry is None:
            entry = self._table[key] = _Failures([])
            while len(self._table) > self.policy.max_tracked:
                self._table.popitem(last=False)
        else:
            self._table.move_to_end(key)
        horizon = now - self.policy.window_s
        entry.times = [t for t in entry.times if t > horizon]
        entry.times.append(now)
        if len(entry.times) >= self.policy.max_failures and entry.locked_until <= now:
            entry.locked_until = now + self.policy.lockout_s
            entry.times.clear()
            return True
        return False

    def clear(self, key: str) -> None:
        entry = self._table.get(key)
        if entry is not None and entry.locked_until == 0.0:
            del self._table[key]
        elif entry is not None:
            entry.times.clear()

    def __len__(self) -> int:
        return len(self._table)


class _NonceCounts:
    """Highest nonce-count seen per answered nonce (RFC 7616 §3.4: nc must increase).

    Bounded: when full, the entry used first is evicted and ``floor_ms`` is raised to its
    timestamp; an unknown nonce stamped at or before the floor is treated as stale (we can
    no longer prove it was not replayed), which costs an honest client one silent retry.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.floor_ms = -1
        self._seen: OrderedDict[str, tuple[int, int]] = OrderedDict()  # nonce -> (nc, ts_ms)

    def check_and_update(self, nonce: str, ts_ms: int, nc: int) -> str | None:
        """None when accepted, else "replay" or "evicted"."""
        prev = self._seen.get(nonce)
        if prev is None:
            if ts_ms <= self.floor_ms:
                return "evicted"
            self._seen[nonce] = (nc, ts_ms)
            while len(self._seen) > self.max_entries:
                _, (_, old_ts) = self._seen.popitem(last=False)
                self.floor_ms = max(self.floor_ms, old_ts)
            return None
        if nc <= prev[0]:
            return "replay"
        self._seen[nonce] = (nc, ts_ms)
        return None

    def purge(self, oldest_valid_ms: int) -> None:
        """Forget nonces that have expired anyway (they fail the age check first)."""
        dead = [k for k, (_, ts) in self._seen.items() if ts < oldest_valid_ms]
        for k in dead:
            del self._seen[k]

    def __len__(self) -> int:
        return len(self._seen)


# --- server -------------------------------------------------------------------------------


class DigestAuthenticator:
    """Challenges requests and verifies Authorization headers for one realm."""

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        nonce_lifetime_s: float = 300.0,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        lockout: LockoutPolicy | None = None,
        qops: tuple[str, ...] = ("auth",),
        allow_rfc2069: bool = True,
        max_tracked_nonces: int = 100_000,
    ) -> None:
        """``random_bytes(n)`` is the injected randomness (``os.urandom`` by default, a
        seeded ``random.Random().randbytes`` in tests); ``secret`` keys the nonce MAC and
        should be at least 16 random bytes, persisted if nonces must survive a restart."""
        if len(secret) < 16:
            raise ValueError("the nonce secret needs at least 16 bytes")
        for alg in algorithms:
            if alg.upper().removesuffix("-SESS") not in _HASHES:
                raise ValueError(f"unsupported digest algorithm {alg!r}")
        self.realm = realm
        self.nonce_lifetime_s = nonce_lifetime_s
        self.algorithms = algorithms
        self._offered = frozenset(a.upper() for a in algorithms)
        self.qops = qops
        self.allow_rfc2069 = allow_rfc2069
        self.lockout = lockout or LockoutPolicy()
        self._secret = secret
        self._random_bytes = random_bytes
        self._opaque = hmac.new(secret, b"opaque:" + realm.encode(), hashlib.sha256).hexdigest()[
            :32
        ]
        self._failures = _Lockout(self.lockout)
        self._counts = _NonceCounts(max_tracked_nonces)
        self._last_purge = 0.0

    # -- nonces ---------------------------------------------------------------------------
    def _mac(self, head: bytes, source_ip: str) -> bytes:
        return hmac.new(self._secret, head + source_ip.encode(), hashlib.sha256).digest()[
            :_MAC_BYTES
        ]

    def make_nonce(self, now: float, source_ip: str) -> str:
        """A fresh nonce bound to ``source_ip`` and stamped with ``now`` (millisecond)."""
        head = _NONCE_TS.pack(max(0, int(now * 1000))) + self._random_bytes(_SALT_BYTES)
        raw = head + self._mac(head, source_ip)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def _open_nonce(self, nonce: str, source_ip: str) -> int | None:
        """The nonce's timestamp (ms) if we minted it for this address, else None."""
        if len(nonce) != 43:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (ValueError, TypeError):
            return None
        if len(raw) != _NONCE_BYTES:
            return None
        head, mac = raw[: -_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(head, source_ip)):
            return None
        return int(_NONCE_TS.unpack_from(head)[0])

    # -- challenge ------------------------------------------------------------------------
    def challenge(self, now: float, source_ip: str, stale: bool = False) -> list[str]:
        """WWW-Authenticate values, one per algorithm in preference order (RFC 8760 §2.4).

        One nonce is shared by all the challenges of one response.
        """
        nonce = self.make_nonce(now, source_ip)
        qop = ",".join(self.qops)
        out = []
        for alg in self.algorithms:
            params = {"realm": self.realm, "nonce": nonce, "opaque": self._opaque,
                      "algorithm": alg, "qop": qop}
            if stale:
                params["stale"] = "true"
            out.append(format_auth_params("Digest", params, _QUOTED_CHALLENGE))
        return out

    def rejection(
        self, result: AuthResult | None, now: float, source_ip: str, *, proxy: bool = False
    ) -> tuple[int, list[tuple[str, str]]]:
        """Status and headers for a request without valid credentials (RFC 3261 §22.1).

        ``result`` None means "no credentials sent". Locked out (including a lock that is
        already running for this address): 403 with Retry-After. Otherwise a challenge:
        401 + WWW-Authenticate, or with ``proxy`` 407 + Proxy-Authenticate, carrying
        ``stale=true`` when the result says so.
        """
        left = self.locked_for(now, source_ip)
        if result is not None and result.locked:
            left = max(left, float(result.retry_after_s))
        if left > 0:
            return 403, [("Retry-After", str(max(1, int(left + 0.999))))]
        stale = result is not None and result.stale
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        values = self.challenge(now, source_ip, stale=stale)
        return (407 if proxy else 401), [(name, v) for v in values]

    def locked_for(self, now: float, source_ip: str, username: str | None = None) -> float:
        """Seconds of lock left for this address (or user); 0.0 when not locked."""
        left = self._failures.locked_for("ip:" + source_ip, now)
        if username is not None:
            left = max(left, self._failures.locked_for("user:" + username, now))
        return left

    # -- verification ---------------------------------------------------------------------
    def verify(
        self,
        method: str,
        authorization: str,
        credentials_lookup: Callable[[str], UserCredentials | None],
        now: float,
        source_ip: str,
        body: bytes = b"",
        *,
        request_uri: str | None = None,
    ) -> AuthResult:
        """Check one Authorization (or Proxy-Authorization) value (RFC 3261 §22.4).

        ``request_uri`` is the Request-URI of the request; when given, the digest ``uri``
        must name the same resource (RFC 2617 §3.2.2.5).
        """
        self._maybe_purge(now)
        left = self.locked_for(now, source_ip)
        if left > 0:
            return self._locked(None, left)
        try:
            scheme, p = parse_digest_params(authorization)
        except SipParseError:
            return AuthResult(False, None, "malformed Authorization header")
        username = p.get("username")
        if scheme.lower() != "digest" or not username:
            return AuthResult(False, username, "not a Digest credential")
        left = self._failures.locked_for("user:" + username, now)
        if left > 0:
            return self._locked(username, left)
        problem = self._check_syntax(p, request_uri)
        if problem is not None:
            return AuthResult(False, username, problem)
        ts_ms = self._open_nonce(p["nonce"], source_ip)
        if ts_ms is None or ts_ms > (now + _FUTURE_SKEW_S) * 1000:
            return AuthResult(False, username, "unknown nonce")
        creds = credentials_lookup(username)
        if creds is None or not creds.enabled:
            why = "unknown user" if creds is None else "user disabled"
            return self._fail(source_ip, None if creds is None else username, now, why)
        algorithm = p.get("algorithm", "MD5").upper()
        ha1 = creds.ha1.get(algorithm.removesuffix("-SESS"))
        if ha1 is None or creds.realm != self.realm:
            return self._fail(source_ip, username, now, f"no {algorithm} secret for user")
        qop = p.get("qop")
        expected = digest_response(
            algorithm=algorithm, ha1=ha1, nonce=p["nonce"], method=method, uri=p["uri"],
            qop=qop, nc=p.get("nc", ""), cnonce=p.get("cnonce", ""), body=body,
        )
        if not hmac.compare_digest(expected.encode(), p["response"].lower().encode()):
            return self._fail(source_ip, username, now, "wrong response")
        if now * 1000 - ts_ms > self.nonce_lifetime_s * 1000:
            return AuthResult(False, username, "nonce expired", stale=True, algorithm=algorithm)
        if qop is not None:
            verdict = self._counts.check_and_update(p["nonce"], ts_ms, int(p["nc"], 16))
            if verdict == "replay":
                return AuthResult(False, username, "nonce-count replayed", algorithm=algorithm)
            if verdict == "evicted":
                return AuthResult(False, username, "nonce forgotten", stale=True)
        self._failures.clear("ip:" + source_ip)
        self._failures.clear("user:" + username)
        return AuthResult(True, username, "ok", algorithm=algorithm)

    def _check_syntax(self, p: dict[str, str], request_uri: str | None) -> str | None:
        for key in ("realm", "nonce", "uri", "response"):
            if key not in p:
                return f"missing {key}"
        if p["realm"] != self.realm:
            return "wrong realm"
        if request_uri is not None and not _same_uri(p["uri"], request_uri):
            return "digest uri does not match the Request-URI"
        if p.get("userhash", "false").lower() == "true":
            return "userhash not supported"
        algorithm = p.get("algorithm", "MD5").upper()
        if algorithm not in self._offered:
            return f"algorithm {algorithm} not offered"
        if "opaque" in p and not hmac.compare_digest(p["opaque"], self._opaque):
            return "wrong opaque"
        qop = p.get("qop")
        if qop is None:
            if not (self.allow_rfc2069 and algorithm == "MD5"):
                return "qop required"
            return None
        if qop not in self.qops:
            return f"qop {qop} not offered"
        nc = p.get("nc", "")
        if len(nc) != 8 or any(c not in "0123456789abcdefABCDEF" for c in nc):
            return "bad nonce-count"
        if int(nc, 16) == 0 or not p.get("cnonce"):
            return "bad nonce-count or missing cnonce"
        return None

    def _locked(self, username: str | None, left: float) -> AuthResult:
        return AuthResult(
            False, username, "locked out", locked=True, retry_after_s=max(1, int(left + 0.999))
        )

    def _fail(self, source_ip: str, username: str | None, now: float, why: str) -> AuthResult:
        """Count a failure against the address and (known) user; lock at the threshold."""
        locked = False
        if self._failures.fail("ip:" + source_ip, now):
            locked = True
            logger.warning(
                "digest auth: address %s locked for %.0f s after %d failures (last: %s)",
                source_ip, self.lockout.lockout_s, self.lockout.max_failures, why,
            )
        if username is not None and self._failures.fail("user:" + username, now):
            locked = True
            logger.warning(
                "digest auth: user %r locked for %.0f s after %d failures (last from %s: %s)",
                username, self.lockout.lockout_s, self.lockout.max_failures, source_ip, why,
            )
        if locked:
            return self._locked(username, self.lockout.lockout_s)
        return AuthResult(False, username, why)

    def _maybe_purge(self, now: float) -> None:
        if now - self._last_purge >= self.nonce_lifetime_s:
            self._last_purge = now
            self._counts.purge(int((now - self.nonce_lifetime_s) * 1000))

    @property
    def tracked_nonces(self) -> int:
        """Entries in the nonce-count tracker (bounded by ``max_tracked_nonces``)."""
        return len(self._counts)


def _same_uri(a: str, b: str) -> bool:
    """The digest-uri names the Request-URI's resource (RFC 2617 §3.2.2.5).

    Compared on scheme, user, host and port, not on URI parameters: phones such as pyVoIP
    1.6 put ``;transport=UDP`` in the digest-uri but not in the Request-URI. The response
    hash still covers the exact digest-uri string, and nonces are bound to the source
    address, so this leniency does not let a credential be replayed elsewhere.
    """
    if a == b or a.strip().lower() == b.strip().lower():
        return True
    try:
        ua, ub = SipUri.parse(a.strip()), SipUri.parse(b.strip())
    except SipParseError:
        return False
    return (
        ua.scheme == ub.scheme
        and (ua.user or "") == (ub.user or "")
        and ua.host.lower() == ub.host.lower()
        and (ua.port or 0) == (ub.port or 0)
    )


# --- client (trunks) -----------------------------------------------------------------------


class DigestClient:
    """Builds Authorization values for our own requests to a trunk (RFC 3261 §22.2).

    ``cnonce_source()`` returns a fresh client nonce (injected randomness). Nonce counts are
    kept per server nonce (RFC 7616 §3.4: "nc" counts the requests sent with that nonce),
    bounded to the last ``max_nonces`` nonces.
    """

    def __init__(self, cnonce_source: Callable[[], str], max_nonces: int = 64) -> None:
        self._cnonce_source = cnonce_source
        self._nc: OrderedDict[str, int] = OrderedDict()
        self._max_nonces = max_nonces

    @staticmethod
    def select_challenge(values: list[str]) -> str:
        """The first challenge (in the server's order) whose algorithm we support."""
        for value in values:
            try:
                scheme, p = parse_digest_params(value)
            except SipParseError:
                continue
            alg = p.get("algorithm", "MD5").upper()
            if scheme.lower() == "digest" and alg.removesuffix("-SESS") in _HASHES:
                return value
        raise SipParseError("no supported Digest challenge", status_code=401)

    def authorize(
        self,
        challenge: str,
        method: str,
        uri: str,
        username: str,
        password: str | None = None,
        ha1: str | Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> str:
        """The Authorization header value answering one WWW-Authenticate value.

        Give either ``password`` or ``ha1`` (a hex string for the challenge's algorithm, or
        a mapping algorithm -> hex as in :class:`UserCredentials`).
        """
        scheme, p = parse_digest_params(challenge)
        if scheme.lower() != "digest" or "nonce" not in p or "realm" not in p:
            raise SipParseError("not a usable Digest challenge")
        algorithm = p.get("algorithm", "MD5").upper()
        base = algorithm.removesuffix("-SESS")
        if base not in _HASHES:
            raise SipParseError(f"unsupported digest algorithm {algorithm}")
        realm, nonce = p["realm"], p["nonce"]
        if password is not None:
            secret = _h(base, f"{username}:{realm}:{password}")
        elif isinstance(ha1, str):
            secret = ha1
        elif ha1 is not None and base in ha1:
            secret = ha1[base]
        else:
            raise ValueError(f"need a password or an HA1 for {base}")
        offered = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
        qop = "auth" if "auth" in offered else ("auth-int" if "auth-int" in offered else None)
        params = {"username": username, "realm": realm, "nonce": nonce, "uri": uri}
        if qop is None:
            response = digest_response(
                algorithm=algorithm, ha1=secret, nonce=nonce, method=method, uri=uri
            )
            params["response"] = response
        else:
            nc = self._next_nc(nonce)
            cnonce = self._cnonce_source()
            response = digest_response(
                algorithm=algorithm, ha1=secret, nonce=nonce, method=method, uri=uri,
                qop=qop, nc=nc, cnonce=cnonce, body=body,
            )
            params.update(response=response, cnonce=cnonce, qop=qop, nc=nc)
        params["algorithm"] = p.get("algorithm", "MD5")
        if "opaque" in p:
            params["opaque"] = p["opaque"]
        return format_auth_params("Digest", params, _QUOTED_CREDENTIALS)

    def _next_nc(self, nonce: str) -> str:
        count = self._nc.pop(nonce, 0) + 1
        self._nc[nonce] = count
        while len(self._nc) > self._max_nonces:
            self._nc.popitem(last=False)
        return f"{count:08x}"
