"""The SDP offer/answer model (RFC 3264) for the switch's audio legs.

Rules of this module:

* Rule 1 -- audio only. The first audio stream over ``RTP/AVP`` with a codec in common is
  accepted; every other stream (video, a second audio, SRTP profiles) is rejected in place
  with port 0 and the offer's formats (RFC 3264 §6: the answer has exactly as many m-lines
  as the offer, in the same order).
* Rule 2 -- one voice codec per answer (plus telephone-event): the media engine then never
  has to follow a codec switch mid-call. The codec is the first of the answerer's own
  preference list that the offer has, unless ``prefer_offer_order`` (then the offerer's).
* Rule 3 -- the offer's payload-type numbers are reused in the answer (RFC 3264 §6.1,
  "that same payload type number SHOULD be used"); rtpmap lines are written even for
  static types. Encoding names compare case-insensitively (RFC 4855 §3).
* Rule 4 -- direction: the answerer's direction mirrors the offerer's (sendonly -> recvonly,
  recvonly -> sendonly, inactive -> inactive, RFC 3264 §6.1) intersected with what the
  answerer itself wants. ``c=0.0.0.0`` (RFC 2543 hold, RFC 3264 §8.4) is read as "do not
  send to me": it removes the offerer's receive direction.
* Rule 5 -- an answer may list formats that were not offered (RFC 3264 §6.1 allows it) but
  they are never selected; an answer with no offered codec, a different m-line count or
  media type, or a direction the offer did not allow is an :class:`OfferAnswerError`.

Session versions (RFC 3264 §8, RFC 8866 §5.2): :class:`SdpSession` stamps our descriptions
and increments ``o=`` version only when the body changed, so a re-INVITE without changes
repeats the same version.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import RemoteSipError
from .sdp import Connection, MediaDescription, Origin, SessionDescription, Timing

__all__ = [
    "KNOWN_CODECS",
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "TELEPHONE_EVENT",
    "Codec",
    "NegotiatedMedia",
    "OfferAnswerError",
    "SdpSession",
    "answer_direction",
    "make_answer",
    "make_offer",
    "process_answer",
]


class OfferAnswerError(RemoteSipError):
    """No acceptable media, or an answer that breaks RFC 3264; answered with 488."""

    status_code = 488
    reason = "Not Acceptable Here"


@dataclass(frozen=True, slots=True)
class Codec:
    """A payload format we can offer: name, clock rate and preferred payload type."""

    name: str
    clock_rate: int
    payload_type: int
    channels: int = 1
    fmtp: str | None = None

    def matches(self, name: str, clock_rate: int, channels: int | None) -> bool:
        return (name.lower() == self.name.lower() and clock_rate == self.clock_rate
                and (channels or 1) == self.channels)


PCMU = Codec("PCMU", 8000, 0)
PCMA = Codec("PCMA", 8000, 8)
G722 = Codec("G722", 8000, 9)
TELEPHONE_EVENT = Codec("telephone-event", 8000, 101, fmtp="0-15")
KNOWN_CODECS: dict[str, Codec] = {c.name.lower(): c for c in (PCMU, PCMA, G722)}

STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {
    0: ("PCMU", 8000), 3: ("GSM", 8000), 4: ("G723", 8000), 5: ("DVI4", 8000),
    6: ("DVI4", 16000), 7: ("LPC", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000),
    10: ("L16", 44100), 12: ("QCELP", 8000), 13: ("CN", 8000), 15: ("G728", 8000),
    18: ("G729", 8000),
}
"""RFC 3551 Table 4 (audio); used when an offer omits the rtpmap of a static type."""

_SUPPORTED_EVENTS = frozenset(range(16))
"""RFC 4733 §3.2 DTMF events 0-15 (digits, *, #, A-D)."""

_FLAGS: dict[str, tuple[bool, bool]] = {
    "sendrecv": (True, True), "sendonly": (True, False),
    "recvonly": (False, True), "inactive": (False, False),
}


def _direction(send: bool, recv: bool) -> str:
    for name, flags in _FLAGS.items():
        if flags == (send, recv):
            return name
    raise AssertionError("unreachable")


def answer_direction(offer_direction: str, local_direction: str = "sendrecv") -> str:
    """The answerer's direction (RFC 3264 §6.1) given the offerer's and its own wish."""
    o_send, o_recv = _FLAGS[offer_direction]
    l_send, l_recv = _FLAGS[local_direction]
    return _direction(o_recv and l_send, o_send and l_recv)


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """What the media engine needs once offer and answer agree (one audio stream).

    ``payload_type``/``telephone_event_pt`` are the numbers to *send* with (the peer's
    numbering); ``recv_*`` the numbers we receive (ours). ``direction`` is *our* direction;
    ``remote_hold`` is true when the peer does not want our media (sendonly, inactive or
    ``c=0.0.0.0``). ``ptime_ms`` is the packet time the peer asked to receive.
    """

    codec: str
    payload_type: int
    clock_rate: int
    ptime_ms: int
    telephone_event_pt: int | None
    remote_address: str
    remote_port: int
    direction: str
    rtcp_port: int
    remote_hold: bool = False
    media_index: int = 0
    recv_payload_type: int | None = None
    recv_telephone_event_pt: int | None = None

    @property
    def can_send(self) -> bool:
        return _FLAGS[self.direction][0]

    @property
    def can_receive(self) -> bool:
        return _FLAGS[self.direction][1]


# --- helpers over one m-line ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Format:
    pt: int
    name: str
    clock_rate: int
    channels: int | None


def _formats(m: MediaDescription) -> list[_Format]:
    """The m-line's RTP formats resolved through rtpmap or the static table."""
    maps = m.rtpmaps
    out = []
    for f in m.formats:
        if not f.isdigit():
            continue
        pt = int(f)
        rm = maps.get(pt)
        if rm is not None:
            out.append(_Format(pt, rm.encoding, rm.clock_rate, rm.channels))
        elif pt in STATIC_PAYLOAD_TYPES:
            name, rate = STATIC_PAYLOAD_TYPES[pt]
            out.append(_Format(pt, name, rate, None))
    return out


def _parse_events(spec: str | None) -> set[int]:
    """RFC 4733 §2.4.1 event list ``0-15,16``; absent means 0-15."""
    if spec is None:
        return set(range(16))
    events: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        lo, dash, hi = part.partition("-")
        if lo.isdigit() and (not dash or hi.isdigit()):
            a, b = int(lo), int(hi) if dash else int(lo)
            if b - a < 256:
                events.update(range(a, b + 1))
    return events


def _format_events(events: set[int]) -> str:
    ordered = sorted(events)
    parts: list[str] = []
    start = prev = ordered[0]
    for e in [*ordered[1:], -2]:
        if e != prev + 1:
            parts.append(f"{start}-{prev}" if prev != start else str(start))
            start = e
        prev = e
    return ",".join(parts)


def _hold_connection(sd: SessionDescription, m: MediaDescription) -> bool:
    conn = sd.media_connection(m)
    return conn is not None and conn.is_hold_address


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _as_codec(c: Codec | str) -> Codec:
    if isinstance(c, Codec):
        return c
    try:
        return KNOWN_CODECS[c.lower()]
    except KeyError:
        raise ValueError(f"unknown codec {c!r}; pass a Codec") from None


def _remote_ptime(m: MediaDescription, default_ms: int) -> int:
    ptime = m.ptime
    value = int(ptime) if ptime and ptime > 0 else default_ms
    maxptime = m.maxptime
    if maxptime and maxptime > 0:
        value = min(value, int(maxptime))
    return max(1, value)


def _session(username: str, session_id: str, version: int, address: str) -> SessionDescription:
    return SessionDescription(
        origin=Origin(username, session_id, version, address, "IN", _addrtype(address)),
        session_name="-",
        connection=Connection(address, _addrtype(address)),
        timings=[Timing(0, 0)],
    )


# --- offers ---------------------------------------------------------------------------------


def make_offer(
    codecs: Sequence[Codec | str],
    address: str,
    port: int,
    *,
    session_id: str,
    session_version: int,
    ptime_ms: int = 20,
    direction: str = "sendrecv",
    dtmf: bool = True,
    username: str = "-",
) -> SessionDescription:
    """An audio offer listing ``codecs`` in preference order (RFC 3264 §5)."""
    if direction not in _FLAGS:
        raise ValueError(f"bad direction {direction!r}")
    sd = _session(username, session_id, session_version, address)
    chosen = [_as_codec(c) for c in codecs]
    if not chosen:
        raise ValueError("an offer needs at least one codec")
    if dtmf:
        chosen.append(TELEPHONE_EVENT)
    m = MediaDescription("audio", port, "RTP/AVP", [str(c.payload_type) for c in chosen])
    for c in chosen:
        chans = f"/{c.channels}" if c.channels != 1 else ""
        m.attributes.append(("rtpmap", f"{c.payload_type} {c.name}/{c.clock_rate}{chans}"))
        if c.fmtp:
            m.attributes.append(("fmtp", f"{c.payload_type} {c.fmtp}"))
    m.attributes.append(("ptime", str(ptime_ms)))
    m.attributes.append((direction, None))
    sd.media.append(m)
    return sd


# --- answers --------------------------------------------------------------------------------


def _pick_codec(
    offered: list[_Format], supported: list[Codec], prefer_offer_order: bool
) -> _Format | None:
    voice = [f for f in offered if f.name.lower() not in ("telephone-event", "cn")]
    if prefer_offer_order:
        for f in voice:
            if any(c.matches(f.name, f.clock_rate, f.channels) for c in supported):
                return f
        return None
    for c in supported:
        for f in voice:
            if c.matches(f.name, f.clock_rate, f.channels):
                return f
    return None


def _rejected(m: MediaDescription) -> MediaDescription:
    return MediaDescription(m.media, 0, m.proto, list(m.formats) or ["0"])


def make_answer(
    offer: SessionDescription,
    supported: Sequence[Codec | str],
    address: str,
    port: int,
    *,
    session_id: str,
    session_version: int,
    ptime_ms: int = 20,
    direction: str = "sendrecv",
    dtmf: bool = True,
    username: str = "-",
    prefer_offer_order: bool = False,
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer ``offer`` (RFC 3264 §6) accepting one audio stream.

    Raises :class:`OfferAnswerError` (488) when no audio stream is acceptable.
    """
    codecs = [_as_codec(c) for c in supported]
    answer = _session(username, session_id, session_version, address)
    negotiated: NegotiatedMedia | None = None
    for index, m in enumerate(offer.media):
        if negotiated is not None or m.media != "audio" or m.port == 0 or m.proto != "RTP/AVP":
            answer.media.append(_rejected(m))
            continue
        offered = _formats(m)
        codec = _pick_codec(offered, codecs, prefer_offer_order)
        conn = offer.media_connection(m)
        if codec is None or conn is None:
            answer.media.append(_rejected(m))
            continue
        te = _telephone_event(m, offered, codec.clock_rate) if dtmf else None
        o_send, o_recv = _FLAGS[offer.media_direction(m)]
        hold = _hold_connection(offer, m)
        offer_dir = _direction(o_send, o_recv and not hold)
        our_dir = answer_direction(offer_dir, direction)
        answer.media.append(_answer_media(m, codec, te, port, ptime_ms, our_dir))
        negotiated = NegotiatedMedia(
            codec=codec.name, payload_type=codec.pt, clock_rate=codec.clock_rate,
            ptime_ms=_remote_ptime(m, ptime_ms),
            telephone_event_pt=te[0] if te else None,
            remote_address=conn.host, remote_port=m.port, direction=our_dir,
            rtcp_port=m.rtcp_port or m.port + 1, remote_hold=not _FLAGS[offer_dir][1],
            media_index=index, recv_payload_type=codec.pt,
            recv_telephone_event_pt=te[0] if te else None,
        )
    if negotiated is None:
        raise OfferAnswerError("no acceptable audio stream in the offer")
    return answer, negotiated


def _telephone_event(
    m: MediaDescription, offered: list[_Format], clock_rate: int
) -> tuple[int, str] | None:
    """The offer's telephone-event PT at the codec's rate, with the events we both know."""
    fmtp = m.fmtp
    for f in offered:
        if f.name.lower() == "telephone-event" and f.clock_rate == clock_rate:
            events = _parse_events(fmtp.get(str(f.pt))) & _SUPPORTED_EVENTS
            if events:
                return f.pt, _format_events(events)
    return None


def _answer_media(
    offer_m: MediaDescription, codec: _Format, te: tuple[int, str] | None, port: int,
    ptime_ms: int, direction: str,
) -> MediaDescription:
    formats = [str(codec.pt)] + ([str(te[0])] if te else [])
    am = MediaDescription("audio", port, offer_m.proto, formats)
    chans = f"/{codec.channels}" if codec.channels else ""
    am.attributes.append(("rtpmap", f"{codec.pt} {codec.name}/{codec.clock_rate}{chans}"))
    if te:
        am.attributes.append(("rtpmap", f"{te[0]} telephone-event/{codec.clock_rate}"))
        am.attributes.append(("fmtp", f"{te[0]} {te[1]}"))
    am.attributes.append(("ptime", str(ptime_ms)))
    am.attributes.append((direction, None))
    return am


# --- processing an answer to our offer ------------------------------------------------------


def process_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """Validate the answer to our ``offer`` (RFC 3264 §6, §7) and extract the media.

    Raises :class:`OfferAnswerError` on a broken or empty answer.
    """
    if len(answer.media) != len(offer.media):
        raise OfferAnswerError(
            f"answer has {len(answer.media)} m-lines, the offer {len(offer.media)}"
        )
    pairs = list(enumerate(zip(offer.media, answer.media, strict=True)))
    for index, (om, am) in pairs:
        if om.media != am.media:
            raise OfferAnswerError(f"m-line {index}: {am.media} answers {om.media}")
        if om.port == 0 and am.port != 0:
            raise OfferAnswerError(f"m-line {index}: accepts a stream the offer disabled")
    for index, (om, am) in pairs:
        if am.port != 0 and om.media == "audio":
            return _negotiated_from_answer(index, offer, om, answer, am)
    raise OfferAnswerError("the answer accepted no audio stream")


def _negotiated_from_answer(
    index: int, offer: SessionDescription, om: MediaDescription,
    answer: SessionDescription, am: MediaDescription,
) -> NegotiatedMedia:
    offered = _formats(om)
    answered = _formats(am)
    voice = [
        (a, o) for a in answered for o in offered
        if a.name.lower() == o.name.lower() and a.clock_rate == o.clock_rate
        and (a.channels or 1) == (o.channels or 1)
        and a.name.lower() not in ("telephone-event", "cn")
    ]
    if not voice:
        raise OfferAnswerError(f"m-line {index}: answer has no codec from the offer")
    a_codec, o_codec = voice[0]
    o_send, o_recv = _FLAGS[offer.media_direction(om)]
    a_send, a_recv = _FLAGS[answer.media_direction(am)]
    if (a_send and not o_recv) or (a_recv and not o_send):
        raise OfferAnswerError(f"m-line {index}: answer direction not allowed by the offer")
    a_recv = a_recv and not _hold_connection(answer, am)
    conn = answer.media_connection(am)
    if conn is None:
        raise OfferAnswerError(f"m-line {index}: no connection address")
    te_send = _telephone_event(am, answered, a_codec.clock_rate)
    te_recv = _telephone_event(om, offered, a_codec.clock_rate)
    both = te_send is not None and te_recv is not None
    return NegotiatedMedia(
        codec=o_codec.name, payload_type=a_codec.pt, clock_rate=a_codec.clock_rate,
        ptime_ms=_remote_ptime(am, int(om.ptime or 20)),
        telephone_event_pt=te_send[0] if both and te_send else None,
        remote_address=conn.host, remote_port=am.port,
        direction=_direction(o_send and a_recv, o_recv and a_send),
        rtcp_port=am.rtcp_port or am.port + 1, remote_hold=not a_recv,
        media_index=index, recv_payload_type=o_codec.pt,
        recv_telephone_event_pt=te_recv[0] if both and te_recv else None,
    )


# --- versions -------------------------------------------------------------------------------


class SdpSession:
    """Our side of one SDP session: a fixed ``o=`` id and a version that moves on change.

    RFC 3264 §8: a new offer in the same session keeps the origin and increments the
    version by one *if anything changed*; an unchanged description keeps the version.
    """

    def __init__(self, session_id: str, initial_version: int, username: str = "-") -> None:
        self.session_id = session_id
        self.version = initial_version
        self.username = username
        self._last: str | None = None

    def stamp(self, sd: SessionDescription) -> SessionDescription:
        """A copy of ``sd`` with our origin and the right version."""
        out = copy.deepcopy(sd)
        out.origin.username = self.username
        out.origin.session_id = self.session_id
        out.origin.session_version = 0
        body = out.serialize()
        if self._last is not None and body != self._last:
            self.version += 1
        self._last = body
        out.origin.session_version = self.version
        return out
