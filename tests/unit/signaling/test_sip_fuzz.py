"""Property tests: the parser invariant and round trips (h11's fuzz rule, STYLE.md §4.5).

Invariant: for ANY bytes, ``parse_message`` + ``validate_message`` + every typed accessor
either succeed or raise :class:`SipParseError`; nothing else escapes. Generated valid
messages round-trip: ``bytes(parse(bytes(parse(x)))) == bytes(parse(x))``. Deterministic
(``derandomize``) so CI results do not depend on luck.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling.errors import SipParseError
from signaling.framing import StreamFramer
from signaling.headers import CSeq, NameAddr, Via, parse_auth_params, parse_params
from signaling.message import Message, Request
from signaling.parser import parse_message
from signaling.uri import SipUri
from signaling.validate import validate_message

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
#: Fewer examples where generating one message is the expensive part.
FUZZ_GEN = settings(FUZZ, max_examples=100)

VECTORS = Path(__file__).resolve().parents[3] / "tests" / "vectors"

SEED = (
    b"INVITE sip:bob@biloxi.com;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com:5060;branch=z9hG4bK776asdhds;rport, "
    b"SIP/2.0/TCP [2001:db8::1];received=192.0.2.1;branch=z9hG4bK2\r\n"
    b"Max-Forwards: 70\r\nTo: \"Bob B\" <sip:bob@biloxi.com>\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\nCSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.com>;q=0.5;expires=60, *\r\n"
    b"Authorization: Digest username=\"alice\", realm=\"atlanta.com\", nonce=\"x,y\"\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n"
)
SEEDS = [SEED, *(p.read_bytes() for p in sorted(VECTORS.glob("*/*.sip")))]


def exercise(msg: Message) -> None:
    """Touch every typed view; each may raise SipParseError only."""
    for attr in ("call_id", "cseq", "vias", "top_via", "branch", "from_", "to", "from_tag",
                 "to_tag", "contacts", "content_type", "max_forwards"):
        try:
            getattr(msg, attr)
        except SipParseError:
            pass
    if isinstance(msg, Request):
        try:
            _ = msg.uri_parsed
        except SipParseError:
            pass
    try:
        for via in msg.vias:
            _ = (via.rport, via.ttl, via.received, str(via))
    except SipParseError:
        pass
    try:
        for c in msg.contacts:
            _ = (c.q, c.expires, c.tag, str(c))
    except SipParseError:
        pass
    for name in ("Authorization", "WWW-Authenticate"):
        value = msg.headers.get(name)
        if value is not None:
            try:
                parse_auth_params(value)
            except SipParseError:
                pass
    bytes(msg)


def check_bytes(data: bytes) -> None:
    for datagram in (True, False):
        try:
            msg = parse_message(data, datagram=datagram)
        except SipParseError:
            continue
        try:
            validate_message(msg, supported=("timer",))
        except SipParseError:
            pass
        exercise(msg)


@FUZZ
@given(st.binary(max_size=1500))
def test_random_bytes(data: bytes) -> None:
    check_bytes(data)


#: Bytes that matter to SIP syntax, plus a letter and a digit.
MUTATION_BYTES = [*b'\x00\r\n \t:;,<>"\\%@[]=?*~\xff\xc3', 65, 48]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["replace", "insert", "delete", "dup"]))
        byte = draw(st.sampled_from(MUTATION_BYTES))
        if op == "replace":
            data[pos] = byte
        elif op == "insert":
            data.insert(pos, byte)
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        else:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 20))]
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_valid_messages(data: bytes) -> None:
    check_bytes(data)
    check_bytes(data.replace(b"{CL}", b"0"))


SIP_TEXT = st.text(alphabet=st.sampled_from(list('abcAZ09-.!%*_+`\'~:;,=?&@<>"\\[]/ \t*\x00é')),
                   max_size=60)


@FUZZ
@given(SIP_TEXT)
def test_header_parsers_on_random_text(text: str) -> None:
    for fn in (lambda t: SipUri.parse(t, allow_other=True), SipUri.parse, Via.parse,
               CSeq.parse, NameAddr.parse, parse_params, parse_auth_params):
        try:
            out = fn(text)
        except SipParseError:
            continue
        str(out)
        if isinstance(out, NameAddr):
            try:
                _ = (out.q, out.expires)
            except SipParseError:
                pass
        if isinstance(out, Via):
            _ = (out.rport, out.ttl)


# -- round trips of generated valid messages ---------------------------------------------
TOKEN = st.text(alphabet=st.sampled_from(list("abcXYZ019-.!%*_+`'~")), min_size=1, max_size=12)
LABEL = st.text(alphabet=st.sampled_from(list("abcxyz019")), min_size=1, max_size=8)
HOST = st.one_of(
    st.builds(lambda a, b: f"{a}.{b}example.org", LABEL, LABEL),
    st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d}", *[st.integers(0, 255)] * 4),
    st.sampled_from(["[2001:db8::1]", "[::ffff:192.0.2.1]", "[2001:db8::10:5070]"]),
)
USER = st.text(alphabet=st.sampled_from(list("abcXYZ019-_.!~*'()&=+$,;?/")), min_size=1,
               max_size=12).map(lambda u: u.replace(";", "%3B") if u.startswith(";") else u)
# token characters that are also paramchar (a URI parameter name must be both here)
PNAME = st.text(alphabet=st.sampled_from(list("abcXYZ019-.!*_~'+")), min_size=1, max_size=8)
PORT = st.one_of(st.none(), st.integers(1, 65535))
DISPLAY = st.one_of(st.none(), st.text(alphabet=st.sampled_from(list('ab Z"\\,<>;é')),
                                       max_size=10))


@st.composite
def uris(draw: st.DrawFn) -> str:
    user = draw(st.one_of(st.none(), USER))
    port = draw(PORT)
    params = draw(st.lists(st.tuples(PNAME, st.one_of(st.none(), LABEL)), max_size=3))
    text = f"sip:{user + '@' if user else ''}{draw(HOST)}{':' + str(port) if port else ''}"
    return text + "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["INVITE", "BYE", "OPTIONS", "REGISTER", "X-NEW"]))
    ruri = draw(uris())
    to = NameAddr(draw(DISPLAY), SipUri.parse(draw(uris())))
    frm = NameAddr(draw(DISPLAY), SipUri.parse(draw(uris()))).with_tag(draw(TOKEN))
    vias = [Via(draw(st.sampled_from(["UDP", "TCP", "TLS"])), draw(HOST), draw(PORT),
                (("branch", "z9hG4bK" + draw(TOKEN)),)) for _ in range(draw(st.integers(1, 3)))]
    body = draw(st.binary(max_size=40))
    lines = [f"{method} {ruri} SIP/2.0"]
    lines += [f"{draw(st.sampled_from(['Via', 'v', 'VIA']))}: {v}" for v in vias]
    lines += [f"To: {to}", f"From: {frm}", f"Call-ID: {draw(TOKEN)}@{draw(LABEL)}",
              f"CSeq: {draw(st.integers(0, 2**31 - 1))} {method}",
              f"Max-Forwards: {draw(st.integers(0, 255))}"]
    if body:
        lines.append("Content-Type: application/octet-stream")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@FUZZ_GEN
@given(messages())
def test_generated_messages_validate_and_round_trip(data: bytes) -> None:
    msg = parse_message(data)
    validate_message(msg)
    once = bytes(msg)
    again = parse_message(once)
    validate_message(again)
    assert bytes(again) == once
    assert again.body == msg.body
    assert [str(v) for v in again.vias] == [str(v) for v in msg.vias]
    assert str(again.from_) == str(msg.from_) and again.from_tag == msg.from_tag
    assert again.to.uri is not None and msg.to.uri is not None
    assert again.to.uri.equivalent(msg.to.uri)
    assert isinstance(again, Request) and isinstance(msg, Request)
    assert again.uri_parsed.equivalent(msg.uri_parsed)
    # typed views re-serialise to equivalent values
    assert NameAddr.parse(str(msg.to)) == msg.to
    assert Via.parse(str(msg.top_via)) == msg.top_via


@FUZZ_GEN
@given(st.lists(messages(), min_size=1, max_size=3), st.data())
def test_framer_any_chunking(msgs: list[bytes], data: st.DataObject) -> None:
    stream = b"\r\n\r\n".join(msgs)  # pings between messages
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    framer = StreamFramer()
    out = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        framer.receive_data(stream[prev:cut])
        prev = cut
        while (m := framer.next_message()) is not None:
            out.append(bytes(m))
    assert out == [bytes(parse_message(m)) for m in msgs]
    assert framer.take_pongs() == len(msgs) - 1


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=5))
def test_framer_random_bytes(chunks: list[bytes]) -> None:
    framer = StreamFramer(max_bytes=2048)
    try:
        for chunk in chunks:
            framer.receive_data(chunk)
            while True:
                try:
                    m = framer.next_message()
                except SipParseError:
                    if framer.broken:
                        raise
                    continue
                if m is None:
                    break
                exercise(m)
    except SipParseError:
        assert framer.broken


@FUZZ_GEN
@given(messages(), st.booleans())
def test_folding_and_line_endings_do_not_change_meaning(data: bytes, lf_only: bool) -> None:
    """LWS may be folded around ';' (SEMI) and line endings may be bare LF: same views."""
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    folded = [ln.replace(b";", b"\r\n ;") if ln[:1] in (b"V", b"v") else ln for ln in lines]
    head2 = b"\r\n".join(folded)
    if lf_only:
        head2 = head2.replace(b"\r\n", b"\n")
    other = parse_message(head2 + (b"\n\n" if lf_only else sep) + body)
    msg = parse_message(data)
    validate_message(other)
    assert [str(v) for v in other.vias] == [str(v) for v in msg.vias]
    assert other.from_ == msg.from_ and other.to == msg.to and other.cseq == msg.cseq
    assert other.body == msg.body
