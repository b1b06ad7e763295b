"""SDP test vectors shared by the SDP and offer/answer tests, written from the RFC text."""

from __future__ import annotations


def crlf(text: str) -> str:
    """An indented triple-quoted SDP as wire text (CRLF line ends)."""
    return "\r\n".join(line.strip() for line in text.strip().splitlines()) + "\r\n"


# RFC 4317 §2.1: Alice's audio + video offer.
RFC4317_OFFER = crlf("""
    v=0
    o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com
    s=
    c=IN IP4 host.atlanta.example.com
    t=0 0
    m=audio 49170 RTP/AVP 0 8 97
    a=rtpmap:0 PCMU/8000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:97 iLBC/8000
    m=video 51372 RTP/AVP 31 32
    a=rtpmap:31 H261/90000
    a=rtpmap:32 MPV/90000
""")
