"""Transport-layer rules that do not need a socket (RFC 3261 §18, RFC 3581, RFC 3263 lite).

* §18.2.1 / RFC 3581 §4: a server stamps the top Via of a received request with
  ``received=<source IP>`` when it differs from sent-by, and fills an empty ``rport`` with
  the source port, so responses find their way back through NATs.
* §18.2.2: where a response goes: the same connection for streams; else ``maddr``; else
  the ``received`` address at the ``rport`` (or sent-by) port.
* §8.1.2 / RFC 3263 without DNS: the next hop of a request from its URI's transport param,
  host and port (names are left to the shell's resolver).

Pure functions; the only state is the :class:`~signaling.events.Address` values.
"""

from __future__ import annotations

from .events import Address
from .headers import Via
from .message import Request, split_header_values
from .uri import SipUri

__all__ = [
    "Address",
    "default_port",
    "response_destination",
    "stamp_received",
    "uri_address",
]


def default_port(transport: str) -> int:
    """§19.1.2: 5060 for UDP/TCP, 5061 for TLS."""
    return 5061 if transport.lower() in ("tls", "wss") else 5060


def stamp_received(request: Request, source: Address) -> Via:
    """Apply §18.2.1 and RFC 3581 §4 to the top Via of ``request`` in place.

    Returns the (possibly new) top Via. The header text is only rewritten when something
    changes, so the common case (a phone with a correct sent-by, no rport) costs nothing
    beyond the Via parse the transaction key needed anyway.
    """
    via = request.top_via
    host = source.host
    add_received = via.host != host and via.host.strip("[]") != host
    fill_rport = False
    for k, v in via.params:
        if v is None and k.lower() == "rport":
            fill_rport = True
            break
    if not add_received and not fill_rport:
        return via
    # One construction instead of chained with_param() copies: this runs per request.
    params: list[tuple[str, str | None]] = []
    for k, v in via.params:
        lk = k.lower()
        if lk == "received":
            continue
        if lk == "rport" and fill_rport:
            v = str(source.port)
        params.append((k, v))
    # RFC 3581 §4: received MUST be added whenever rport is filled in.
    params.append(("received", host))
    new = Via(via.transport, via.host, via.port, tuple(params))
    items = request.headers._items
    for item in items:
        if item[0] == "Via":
            values = split_header_values(item[1])
            values[0] = str(new)
            item[1] = ", ".join(values)
            break
    cache = request._cache  # keep the other typed views (From, To, CSeq) parsed
    vias = cache.get("vias")
    if vias is not None:
        cache["vias"] = [new, *vias[1:]]
    cache["top_via"] = new
    return new


def response_destination(via: Via, source: Address) -> Address:
    """§18.2.2 (with RFC 3581 §4): where responses to a request with top Via ``via`` go.

    Streams answer on the connection the request came in on. For UDP, ``maddr`` wins,
    then ``received``+``rport``, then ``received``+sent-by port.
    """
    transport = via.transport.lower()
    if source.connection_id is not None:
        return source
    maddr = via.maddr
    port = via.port or default_port(transport)
    if maddr:
        return Address(transport, maddr, port)
    host = via.received or via.host
    rport = via.rport
    if isinstance(rport, int) and not isinstance(rport, bool):
        port = rport
    return Address(transport, host.strip("[]"), port)


def uri_address(uri: SipUri, default_transport: str = "udp") -> Address:
    """The next-hop address for a SIP URI without DNS (§8.1.2, RFC 3263 §4 simplified):
    ``transport`` parameter, else TLS for sips, else ``default_transport``; explicit port,
    else the transport's default; ``maddr`` overrides the host."""
    transport = uri.transport or ("tls" if uri.scheme == "sips" else default_transport)
    host = uri.maddr or uri.host
    port = uri.port or default_port(transport)
    return Address(transport, host.strip("[]"), port)
