"""RFC 3264 offer/answer: RFC 4317 and RFC 3264 §10 examples, hold, DTMF, validation."""

from __future__ import annotations

import pytest
from _sdp_vectors import RFC4317_OFFER, crlf
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.offer_answer import (
    PCMA,
    PCMU,
    Codec,
    NegotiatedMedia,
    OfferAnswerError,
    SdpSession,
    answer_direction,
    make_answer,
    make_offer,
    process_answer,
)
from signaling.sdp import parse

# RFC 4317 §2.1 (written from the RFC text): Bob's answer to Alice's offer.
RFC4317_ANSWER = crlf("""
    v=0
    o=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com
    s=
    c=IN IP4 host.biloxi.example.com
    t=0 0
    m=audio 49174 RTP/AVP 0
    a=rtpmap:0 PCMU/8000
    m=video 49170 RTP/AVP 32
    a=rtpmap:32 MPV/90000
""")

# RFC 3264 §10.1 (written from the RFC text): one audio and two video streams; Bob rejects
# the first video stream with port 0.
RFC3264_OFFER = crlf("""
    v=0
    o=alice 2890844526 2890844526 IN IP4 host.anywhere.com
    s=
    c=IN IP4 host.anywhere.com
    t=0 0
    m=audio 49170 RTP/AVP 0
    a=rtpmap:0 PCMU/8000
    m=video 51372 RTP/AVP 31
    a=rtpmap:31 H261/90000
    m=video 53000 RTP/AVP 32
    a=rtpmap:32 MPV/90000
""")
RFC3264_ANSWER = crlf("""
    v=0
    o=bob 2890844730 2890844730 IN IP4 host.example.com
    s=
    c=IN IP4 host.example.com
    t=0 0
    m=audio 49920 RTP/AVP 0
    a=rtpmap:0 PCMU/8000
    m=video 0 RTP/AVP 31
    m=video 53000 RTP/AVP 32
    a=rtpmap:32 MPV/90000
""")

ANS = {"session_id": "77", "session_version": 1}


def test_rfc4317_2_1_answer_processed_by_the_offerer() -> None:
    neg = process_answer(parse(RFC4317_OFFER), parse(RFC4317_ANSWER))
    assert neg == NegotiatedMedia(
        codec="PCMU", payload_type=0, clock_rate=8000, ptime_ms=20, telephone_event_pt=None,
        remote_address="host.biloxi.example.com", remote_port=49174, direction="sendrecv",
        rtcp_port=49175, remote_hold=False, media_index=0, recv_payload_type=0,
        recv_telephone_event_pt=None,
    )


def test_rfc4317_2_1_offer_answered_by_us_rejects_video_in_place() -> None:
    answer, neg = make_answer(parse(RFC4317_OFFER), [PCMA, PCMU], "192.0.2.10", 30000, **ANS)
    audio, video = answer.media
    assert (audio.port, audio.formats) == (30000, ["8"])  # our preference: PCMA, offer's PT
    assert audio.rtpmaps[8].encoding == "PCMA" and audio.direction == "sendrecv"
    assert (video.media, video.port, video.proto, video.formats) == (
        "video", 0, "RTP/AVP", ["31", "32"])
    assert video.attributes == []
    assert neg.codec == "PCMA" and neg.remote_port == 49170
    assert neg.remote_address == "host.atlanta.example.com" and neg.telephone_event_pt is None
    # The answer is valid from the offerer's side too.
    back = process_answer(parse(RFC4317_OFFER), parse(answer.serialize()))
    assert back.codec == "PCMA" and back.remote_port == 30000


def test_prefer_offer_order() -> None:
    _, neg = make_answer(parse(RFC4317_OFFER), [PCMA, PCMU], "192.0.2.10", 30000,
                         prefer_offer_order=True, **ANS)
    assert neg.codec == "PCMU"


def test_rfc3264_10_1_answer_with_rejected_stream() -> None:
    neg = process_answer(parse(RFC3264_OFFER), parse(RFC3264_ANSWER))
    assert (neg.codec, neg.remote_address, neg.remote_port) == ("PCMU", "host.example.com", 49920)
    answer, ours = make_answer(parse(RFC3264_OFFER), ["PCMU"], "192.0.2.10", 4000, **ANS)
    assert [m.port for m in answer.media] == [4000, 0, 0]
    assert ours.media_index == 0


def test_only_first_audio_stream_is_accepted_and_srtp_is_rejected() -> None:
    offer = parse(crlf("""
        v=0
        o=- 1 1 IN IP4 192.0.2.1
        s=-
        c=IN IP4 192.0.2.1
        t=0 0
        m=audio 5000 RTP/SAVP 0
        m=audio 5002 RTP/AVP 96
        a=rtpmap:96 opus/48000/2
        m=audio 5004 RTP/AVP 0
        m=audio 5006 RTP/AVP 8
    """))
    answer, neg = make_answer(offer, ["PCMU", "PCMA"], "192.0.2.10", 4000, **ANS)
    assert [m.port for m in answer.media] == [0, 0, 4000, 0]
    assert neg.media_index == 2 and neg.remote_port == 5004 and neg.codec == "PCMU"


def test_no_common_codec_is_488() -> None:
    offer = parse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
                  "m=audio 5000 RTP/AVP 18\r\nm=video 5002 RTP/AVP 31\r\n")
    with pytest.raises(OfferAnswerError) as info:
        make_answer(offer, [PCMU, PCMA], "192.0.2.10", 4000, **ANS)
    assert info.value.status_code == 488


def test_dynamic_payload_types_case_and_telephone_event() -> None:
    # Vendor style: PCMU under a dynamic PT, lower-case names, events 0-16.
    offer = parse(crlf("""
        v=0
        o=- 5 5 IN IP6 2001:db8::9
        s=-
        c=IN IP6 2001:db8::9
        t=0 0
        m=audio 7078 RTP/AVP 112 100
        a=rtpmap:112 pcmu/8000
        a=rtpmap:100 TELEPHONE-EVENT/8000
        a=fmtp:100 0-16
        a=ptime:30
        a=rtcp:9999
    """))
    answer, neg = make_answer(offer, [PCMU], "2001:db8::1", 4000, **ANS)
    m = answer.media[0]
    assert m.formats == ["112", "100"]
    assert m.rtpmaps[112].encoding == "pcmu" and m.fmtp == {"100": "0-15"}
    assert answer.connection is not None and answer.connection.addrtype == "IP6"
    assert answer.origin.addrtype == "IP6"
    assert (neg.payload_type, neg.telephone_event_pt, neg.ptime_ms, neg.rtcp_port) == (
        112, 100, 30, 9999)
    assert neg.remote_address == "2001:db8::9"
    # No DTMF wanted: telephone-event left out.
    answer2, neg2 = make_answer(offer, [PCMU], "2001:db8::1", 4000, dtmf=False, **ANS)
    assert answer2.media[0].formats == ["112"] and neg2.telephone_event_pt is None


def test_telephone_event_ranges_and_rates() -> None:
    offer = make_offer([PCMU], "192.0.2.1", 5000, session_id="1", session_version=1)
    offer.media[0].attributes = [
        (k, "101 1,3-5,12,40-41" if k == "fmtp" else v) for k, v in offer.media[0].attributes
    ]
    answer, neg = make_answer(parse(offer.serialize()), [PCMU], "192.0.2.2", 6000, **ANS)
    assert answer.media[0].fmtp == {"101": "1,3-5,12"}
    assert neg.telephone_event_pt == 101
    wideband = parse(offer.serialize().replace("telephone-event/8000", "telephone-event/16000"))
    _, neg = make_answer(wideband, [PCMU], "192.0.2.2", 6000, **ANS)
    assert neg.telephone_event_pt is None


def test_static_type_without_rtpmap_and_maxptime() -> None:
    offer = parse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
                  "m=audio 5000 RTP/AVP 8 0\r\na=ptime:40\r\na=maxptime:30\r\n")
    answer, neg = make_answer(offer, [PCMU, PCMA], "192.0.2.2", 6000, **ANS)
    assert neg.codec == "PCMU" and neg.ptime_ms == 30
    assert answer.media[0].rtpmaps[0].encoding == "PCMU"


@pytest.mark.parametrize(
    ("offer_dir", "local", "expected"),
    [
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("inactive", "sendrecv", "inactive"),
        ("sendrecv", "sendonly", "sendonly"),
        ("sendonly", "sendonly", "inactive"),
        ("recvonly", "inactive", "inactive"),
    ],
)
def test_answer_direction_table(offer_dir: str, local: str, expected: str) -> None:
    assert answer_direction(offer_dir, local) == expected


def _call() -> tuple[SdpSession, SdpSession]:
    return SdpSession("2890844526", 2890844526, "alice"), SdpSession("2808844564", 2808844564)


def test_hold_and_resume_flow_rfc4317_3_1_style() -> None:
    alice, bob = _call()
    offer = alice.stamp(make_offer([PCMU], "192.0.2.1", 49170, session_id="x",
                                   session_version=0, dtmf=False))
    answer, neg = make_answer(parse(offer.serialize()), [PCMU], "192.0.2.2", 49172, **ANS)
    answer = bob.stamp(answer)
    assert not neg.remote_hold and neg.direction == "sendrecv"
    assert process_answer(offer, answer).direction == "sendrecv"
    # Alice holds: same o= id, version + 1, a=sendonly; Bob answers a=recvonly.
    hold = alice.stamp(make_offer([PCMU], "192.0.2.1", 49170, session_id="x",
                                  session_version=0, dtmf=False, direction="sendonly"))
    assert hold.origin.session_id == "2890844526"
    assert hold.origin.session_version == offer.origin.session_version + 1
    hold_answer, neg = make_answer(parse(hold.serialize()), [PCMU], "192.0.2.2", 49172, **ANS)
    hold_answer = bob.stamp(hold_answer)
    assert hold_answer.media[0].direction == "recvonly"
    assert hold_answer.origin.session_version == answer.origin.session_version + 1
    assert neg.remote_hold and neg.direction == "recvonly" and not neg.can_send
    mine = process_answer(hold, hold_answer)
    assert mine.direction == "sendonly" and mine.can_send and not mine.can_receive
    assert not mine.remote_hold  # we hold; the peer still takes our media (music on hold)
    # Resume.
    resume = alice.stamp(make_offer([PCMU], "192.0.2.1", 49170, session_id="x",
                                    session_version=0, dtmf=False))
    assert resume.origin.session_version == hold.origin.session_version + 1
    _, neg = make_answer(parse(resume.serialize()), [PCMU], "192.0.2.2", 49172, **ANS)
    assert not neg.remote_hold and neg.direction == "sendrecv"


def test_rfc2543_hold_with_zero_address_and_inactive() -> None:
    offer = make_offer([PCMU], "0.0.0.0", 49170, session_id="1", session_version=2)
    _, neg = make_answer(parse(offer.serialize()), [PCMU], "192.0.2.2", 49172, **ANS)
    assert neg.remote_hold and neg.direction == "recvonly"
    inactive = make_offer([PCMU], "192.0.2.1", 49170, session_id="1", session_version=2,
                          direction="inactive")
    answer, neg = make_answer(parse(inactive.serialize()), [PCMU], "192.0.2.2", 49172, **ANS)
    assert neg.remote_hold and neg.direction == "inactive"
    assert answer.media[0].direction == "inactive"


def test_session_version_unchanged_without_modification() -> None:
    session = SdpSession("42", 1000)
    first = session.stamp(make_offer([PCMU], "192.0.2.1", 4000, session_id="z",
                                     session_version=9))
    again = session.stamp(make_offer([PCMU], "192.0.2.1", 4000, session_id="z",
                                     session_version=9))
    assert first.origin.session_version == again.origin.session_version == 1000
    assert first.serialize() == again.serialize()
    moved = session.stamp(make_offer([PCMU], "192.0.2.1", 4002, session_id="z",
                                     session_version=9))
    assert moved.origin.session_version == 1001 and moved.origin.session_id == "42"


def test_process_answer_validation() -> None:
    offer = parse(RFC4317_OFFER)
    with pytest.raises(OfferAnswerError, match="m-lines"):
        process_answer(offer, parse(RFC4317_ANSWER.split("m=video")[0]))
    swapped = RFC4317_ANSWER.replace("m=video 49170", "m=text 49170")
    with pytest.raises(OfferAnswerError, match="answers"):
        process_answer(offer, parse(swapped))
    foreign = RFC4317_ANSWER.replace("RTP/AVP 0\r\na=rtpmap:0 PCMU/8000",
                                     "RTP/AVP 18\r\na=rtpmap:18 G729/8000")
    with pytest.raises(OfferAnswerError, match="no codec"):
        process_answer(offer, parse(foreign))
    sendonly = parse(offer.serialize().replace("a=rtpmap:97 iLBC/8000",
                                               "a=rtpmap:97 iLBC/8000\r\na=sendonly"))
    bad_dir = parse(RFC4317_ANSWER.replace("a=rtpmap:0 PCMU/8000",
                                           "a=rtpmap:0 PCMU/8000\r\na=sendrecv"))
    with pytest.raises(OfferAnswerError, match="direction"):
        process_answer(sendonly, bad_dir)
    rejected_audio = parse(RFC4317_ANSWER.replace("m=audio 49174", "m=audio 0"))
    with pytest.raises(OfferAnswerError, match="no audio"):
        process_answer(offer, rejected_audio)
    disabled = parse(RFC4317_OFFER.replace("m=video 51372", "m=video 0"))
    with pytest.raises(OfferAnswerError, match="disabled"):
        process_answer(disabled, parse(RFC4317_ANSWER))


def test_answer_may_list_extra_formats_but_only_offered_ones_are_used() -> None:
    offer = make_offer([PCMU], "192.0.2.1", 4000, session_id="1", session_version=1)
    answer = parse(crlf("""
        v=0
        o=- 2 2 IN IP4 192.0.2.9
        s=-
        c=IN IP4 192.0.2.9
        t=0 0
        m=audio 6000 RTP/AVP 18 0 96
        a=rtpmap:18 G729/8000
        a=rtpmap:96 telephone-event/8000
        a=fmtp:96 0-15
    """))
    neg = process_answer(offer, answer)
    assert (neg.codec, neg.payload_type, neg.recv_payload_type) == ("PCMU", 0, 0)
    assert neg.telephone_event_pt == 96 and neg.recv_telephone_event_pt == 101


def test_make_offer_arguments() -> None:
    offer = make_offer([PCMU, Codec("G722", 8000, 9)], "2001:db8::1", 4000, session_id="1",
                       session_version=3, ptime_ms=30, direction="sendonly", username="ss")
    text = offer.serialize()
    assert "o=ss 1 3 IN IP6 2001:db8::1" in text and "c=IN IP6 2001:db8::1" in text
    assert "m=audio 4000 RTP/AVP 0 9 101" in text and "a=ptime:30" in text
    assert text.endswith("a=sendonly\r\n")
    with pytest.raises(ValueError):
        make_offer([], "192.0.2.1", 1, session_id="1", session_version=1, dtmf=False)
    with pytest.raises(ValueError):
        make_offer(["speex"], "192.0.2.1", 1, session_id="1", session_version=1)
    with pytest.raises(ValueError):
        make_offer([PCMU], "192.0.2.1", 1, session_id="1", session_version=1, direction="up")


_CODEC_POOL = [PCMU, PCMA, Codec("G722", 8000, 9), Codec("opus", 48000, 111, channels=2)]


@settings(max_examples=150, deadline=None)
@given(
    offered=st.lists(st.sampled_from(_CODEC_POOL), min_size=1, max_size=4, unique=True),
    supported=st.lists(st.sampled_from(_CODEC_POOL[:3]), min_size=1, max_size=3, unique=True),
    offer_dir=st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive"]),
    local_dir=st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive"]),
    dtmf=st.booleans(),
)
def test_answer_is_always_acceptable_to_the_offerer(
    offered: list[Codec], supported: list[Codec], offer_dir: str, local_dir: str, dtmf: bool
) -> None:
    offer = make_offer(offered, "192.0.2.1", 4000, session_id="1", session_version=1,
                       direction=offer_dir, dtmf=dtmf)
    common = [c for c in supported if c in offered]
    if not common:
        with pytest.raises(OfferAnswerError):
            make_answer(parse(offer.serialize()), supported, "192.0.2.2", 6000, **ANS)
        return
    answer, theirs = make_answer(parse(offer.serialize()), supported, "192.0.2.2", 6000,
                                 direction=local_dir, **ANS)
    assert theirs.codec == common[0].name
    mine = process_answer(offer, parse(answer.serialize()))
    assert (mine.codec, mine.payload_type) == (theirs.codec, theirs.payload_type)
    assert (mine.telephone_event_pt is not None) == dtmf
    # Each side sends only what the other receives.
    assert not (mine.can_send and not theirs.can_receive)
    assert not (theirs.can_send and not mine.can_receive)
    assert answer.media[0].direction == answer_direction(offer_dir, local_dir)
