"""SDP session descriptions (RFC 8866): model, parser and serializer.

Rules of this module:

* Rule 1 -- round trip: ``serialize(parse(x))`` gives ``x`` back (with CRLF line ends) for
  every description we accept. Attributes are kept as an ordered list of ``(name, value)``
  in the order received, unknown ones included; the typed views (``rtpmaps``, ``fmtp``,
  ``ptime``, ``direction``, ``rtcp_port``) read that list, so nothing is lost or reordered.
* Rule 2 -- any text gives a :class:`SessionDescription` or an :class:`SdpError` carrying the
  1-based line number, never another exception.
* Rule 3 -- be liberal where phones are sloppy and strict where it matters: LF or CRLF line
  ends, trailing blank lines, a missing ``t=``, session lines out of the RFC 8866 §5 order
  (some phones put ``c=`` after ``t=``; serialization restores the order) and
  ``a=rtpmap`` encoding names in any case are accepted; an unknown line type, a
  session-only line inside a media section, a repeated single line, a missing
  ``v=``/``o=``/``s=``, a bad ``m=``, ``c=`` or ``rtpmap`` are rejected (RFC 8866 §5: a
  parser "MUST completely ignore or reject" a description with a type letter it does not
  understand; we reject).

Order written (RFC 8866 §5): v o s i u e p c b t r z k a, then per media m i c b k a.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .errors import RemoteSipError

__all__ = [
    "DIRECTIONS",
    "Connection",
    "MediaDescription",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "Timing",
    "parse",
]

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
"""RFC 8866 §6.7 direction attributes; absent means sendrecv."""


class SdpError(RemoteSipError):
    """A malformed session description (RFC 8866 §9 syntax), at ``line`` (1-based, 0 if none).

    As a remote error it answers 400 Bad Request by default.
    """

    def __init__(self, detail: str, line: int = 0) -> None:
        super().__init__(f"SDP line {line}: {detail}" if line else f"SDP: {detail}")
        self.line = line


@dataclass(slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``."""

    username: str
    session_id: str
    session_version: int
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    def __str__(self) -> str:
        return (f"{self.username} {self.session_id} {self.session_version} "
                f"{self.nettype} {self.addrtype} {self.address}")


@dataclass(slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (address may carry /ttl/count)."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @property
    def host(self) -> str:
        """The address without a multicast ``/ttl`` or ``/count`` suffix."""
        return self.address.split("/", 1)[0]

    @property
    def is_hold_address(self) -> bool:
        """RFC 2543 hold: ``c=IN IP4 0.0.0.0`` (RFC 3264 §8.4 says to accept it)."""
        return self.host in ("0.0.0.0", "::")

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`` (RFC 8866 §6.6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    def __str__(self) -> str:
        tail = f"/{self.channels}" if self.channels is not None else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"


@dataclass(slots=True)
class Timing:
    """``t=<start> <stop>`` with its ``r=`` repeat lines (kept as text)."""

    start: int = 0
    stop: int = 0
    repeats: list[str] = field(default_factory=list)


def _attr_line(name: str, value: str | None) -> str:
    return f"a={name}" if value is None else f"a={name}:{value}"


@dataclass(slots=True)
class MediaDescription:
    """One ``m=`` section: ``m=<media> <port>[/<count>] <proto> <fmt> ...``."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    information: str | None = None
    connection: Connection | None = None
    bandwidths: list[str] = field(default_factory=list)
    key: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    # -- typed views over ``attributes`` ----------------------------------------------
    def get_attributes(self, name: str) -> list[str | None]:
        return [v for k, v in self.attributes if k == name]

    def get_attribute(self, name: str) -> str | None:
        """Value of the first attribute of this name (None if absent or a flag)."""
        for k, v in self.attributes:
            if k == name:
                return v
        return None

    def has_attribute(self, name: str) -> bool:
        return any(k == name for k, _ in self.attributes)

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        """``a=rtpmap`` by payload type; malformed ones are skipped here (checked at parse)."""
        out: dict[int, RtpMap] = {}
        for value in self.get_attributes("rtpmap"):
            m = _parse_rtpmap(value)
            if m is not None:
                out[m.payload_type] = m
        return out

    @property
    def fmtp(self) -> dict[str, str]:
        """``a=fmtp:<fmt> <params>`` by format."""
        out: dict[str, str] = {}
        for value in self.get_attributes("fmtp"):
            if value:
                fmt, _, params = value.partition(" ")
                out[fmt] = params.strip()
        return out

    @property
    def ptime(self) -> float | None:
        return _number(self.get_attribute("ptime"))

    @property
    def maxptime(self) -> float | None:
        return _number(self.get_attribute("maxptime"))

    @property
    def direction(self) -> str | None:
        """The last direction attribute of this section, or None if there is none."""
        found = None
        for k, _ in self.attributes:
            if k in DIRECTIONS:
                found = k
        return found

    @property
    def rtcp_port(self) -> int | None:
        """RFC 3605 ``a=rtcp:<port>``; None when absent (RTCP then uses port + 1)."""
        value = self.get_attribute("rtcp")
        if not value:
            return None
        head = value.split(" ", 1)[0]
        return int(head) if head.isdigit() else None

    @property
    def rejected(self) -> bool:
        """RFC 3264 §6: a zero port rejects (or disables) the stream."""
        return self.port == 0

    def set_direction(self, direction: str) -> None:
        """Replace the direction attribute(s) by one (appended if there was none)."""
        if direction not in DIRECTIONS:
            raise ValueError(f"bad direction {direction!r}")
        kept = [(k, v) for k, v in self.attributes if k not in DIRECTIONS]
        self.attributes = [*kept, (direction, None)]

    def lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}".rstrip()]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={b}" for b in self.bandwidths)
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(_attr_line(k, v) for k, v in self.attributes)
        return out


@dataclass(slots=True)
class SessionDescription:
    """A whole SDP body (RFC 8866 §5)."""

    origin: Origin
    session_name: str = "-"
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[str] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    zone: str | None = None
    key: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    def serialize(self) -> str:
        """The description as text with CRLF line ends (RFC 8866 §5)."""
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out.extend(f"e={e}" for e in self.emails)
        out.extend(f"p={p}" for p in self.phones)
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={b}" for b in self.bandwidths)
        for t in self.timings:
            out.append(f"t={t.start} {t.stop}")
            out.extend(f"r={r}" for r in t.repeats)
        if self.zone is not None:
            out.append(f"z={self.zone}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(_attr_line(k, v) for k, v in self.attributes)
        for m in self.media:
            out.extend(m.lines())
        return "\r\n".join(out) + "\r\n"

    def __bytes__(self) -> bytes:
        return self.serialize().encode("utf-8")

    def __str__(self) -> str:
        return self.serialize()

    def session_direction(self) -> str | None:
        """A session-level direction attribute (applies to media without their own)."""
        found = None
        for k, _ in self.attributes:
            if k in DIRECTIONS:
                found = k
        return found

    def media_connection(self, m: MediaDescription) -> Connection | None:
        """The connection that applies to ``m`` (media level overrides session level)."""
        return m.connection if m.connection is not None else self.connection

    def media_direction(self, m: MediaDescription) -> str:
        """Effective direction of ``m``: its own, else the session's, else sendrecv."""
        return m.direction or self.session_direction() or "sendrecv"


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def _parse_rtpmap(value: str | None) -> RtpMap | None:
    if not value:
        return None
    pt, _, rest = value.strip().partition(" ")
    parts = rest.strip().split("/")
    if not pt.isdigit() or len(parts) not in (2, 3) or not parts[0]:
        return None
    if not parts[1].isdigit() or (len(parts) == 3 and not parts[2].isdigit()):
        return None
    channels = int(parts[2]) if len(parts) == 3 else None
    return RtpMap(int(pt), parts[0], int(parts[1]), channels)


# --- parser ---------------------------------------------------------------------------------

_SESSION_TYPES = frozenset("osiuepcbtrzka")
_MEDIA_TYPES = frozenset("icbka")
_SINGLE = frozenset("osiuczk")
"""Line types that may appear at most once per section (RFC 8866 §5 grammar)."""


def _parse_connection(value: str, line: int) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SdpError("c= needs <nettype> <addrtype> <address>", line)
    nettype, addrtype, address = parts
    host = address.split("/", 1)[0]
    if not host:
        raise SdpError("empty connection address", line)
    if nettype == "IN" and addrtype in ("IP4", "IP6"):
        try:
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
        except ValueError:
            ip = None
            numeric = all(c in "0123456789." for c in host)
            if ":" in host or numeric:
                raise SdpError(f"bad {addrtype} address {host!r}", line) from None
        if ip is not None and ip.version != (4 if addrtype == "IP4" else 6):
            raise SdpError(f"{host!r} is not an {addrtype} address", line)
    return Connection(address, addrtype, nettype)


def _parse_origin(value: str, line: int) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError("o= needs 6 fields", line)
    user, sess_id, version, nettype, addrtype, address = parts
    if not sess_id.isdigit() or not version.isdigit():
        raise SdpError("o= session id and version must be numbers", line)
    return Origin(user, sess_id, int(version), address, nettype, addrtype)


def _parse_media(value: str, line: int) -> MediaDescription:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError("m= needs <media> <port> <proto> <fmt> ...", line)
    media, port_text, proto, *formats = parts
    port_s, slash, count_s = port_text.partition("/")
    if not port_s.isdigit() or int(port_s) > 65535 or (slash and not count_s.isdigit()):
        raise SdpError(f"bad m= port {port_text!r}", line)
    if proto.upper().startswith("RTP/") and not all(f.isdigit() and int(f) < 128
                                                   for f in formats):
        raise SdpError("RTP payload types must be numbers 0-127", line)
    return MediaDescription(
        media, int(port_s), proto, formats, int(count_s) if slash else None
    )


def _parse_attribute(value: str) -> tuple[str, str | None]:
    name, sep, rest = value.partition(":")
    return name, (rest if sep else None)


def parse(data: str | bytes) -> SessionDescription:
    """Parse an SDP body; raise :class:`SdpError` (with the line number) if malformed."""
    if isinstance(data, (bytes, bytearray)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError("not UTF-8") from exc
    elif isinstance(data, str):
        text = data
    else:
        raise SdpError("not text")
    raw_lines = text.replace("\r\n", "\n").split("\n")
    while raw_lines and raw_lines[-1].strip() == "":
        raw_lines.pop()
    if not raw_lines:
        raise SdpError("empty description")
    sd: SessionDescription | None = None
    media: MediaDescription | None = None
    seen: set[str] = set()  # single-occurrence line types already seen in this section
    for number, raw in enumerate(raw_lines, start=1):
        if len(raw) < 2 or raw[1] != "=" or not ("a" <= raw[0] <= "z"):
            raise SdpError(f"not a <type>=<value> line: {raw[:40]!r}", number)
        kind, value = raw[0], raw[2:]
        if "\r" in value or "\x00" in value:
            raise SdpError("control character in value", number)
        if number == 1:
            if kind != "v" or value.strip() != "0":
                raise SdpError("the first line must be v=0", number)
            continue
        if kind == "m":
            if sd is None or sd.session_name == "\x00":
                raise SdpError("m= before o= and s=", number)
            media = _parse_media(value, number)
            sd.media.append(media)
            seen = set()
            continue
        allowed = _MEDIA_TYPES if media is not None else _SESSION_TYPES
        if kind not in allowed:
            where = "media" if media is not None else "session"
            raise SdpError(f"line type {kind!r} not allowed at {where} level", number)
        if kind in _SINGLE:
            if kind in seen:
                raise SdpError(f"repeated {kind}= line", number)
            seen.add(kind)
        if media is not None:
            _media_line(media, kind, value, number)
        elif kind == "o":
            sd = SessionDescription(origin=_parse_origin(value, number), session_name="\x00")
        elif sd is None:
            raise SdpError("o= must follow v=", number)
        else:
            _session_line(sd, kind, value, number)
    if sd is None:
        raise SdpError("missing o= line")
    if sd.session_name == "\x00":
        raise SdpError("missing s= line")
    return sd


def _session_line(sd: SessionDescription, kind: str, value: str, line: int) -> None:
    if kind == "s":
        sd.session_name = value
    elif kind == "i":
        sd.information = value
    elif kind == "u":
        sd.uri = value
    elif kind == "e":
        sd.emails.append(value)
    elif kind == "p":
        sd.phones.append(value)
    elif kind == "c":
        sd.connection = _parse_connection(value, line)
    elif kind == "b":
        sd.bandwidths.append(value)
    elif kind == "t":
        parts = value.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise SdpError("t= needs <start> <stop>", line)
        sd.timings.append(Timing(int(parts[0]), int(parts[1])))
    elif kind == "r":
        if not sd.timings:
            raise SdpError("r= without t=", line)
        sd.timings[-1].repeats.append(value)
    elif kind == "z":
        sd.zone = value
    elif kind == "k":
        sd.key = value
    elif kind == "a":
        sd.attributes.append(_parse_attribute(value))


def _media_line(m: MediaDescription, kind: str, value: str, line: int) -> None:
    if kind == "i":
        m.information = value
    elif kind == "c":
        m.connection = _parse_connection(value, line)
    elif kind == "b":
        m.bandwidths.append(value)
    elif kind == "k":
        m.key = value
    elif kind == "a":
        name, val = _parse_attribute(value)
        if name == "rtpmap" and _parse_rtpmap(val) is None:
            raise SdpError(f"bad rtpmap {val!r}", line)
        m.attributes.append((name, val))
