"""WebSocket extension negotiation: the ``Sec-WebSocket-Extensions`` header
(RFC 6455 section 9.1) and the one extension we accept, permessage-deflate
(RFC 7692).

The handshake hands every ``Sec-WebSocket-Extensions`` header of the request
to :func:`negotiate_deflate`, which returns the value of the response header
and the agreed :class:`DeflateParams`, or None when no offer is acceptable (the
connection then runs without compression, as if nothing had been offered).

What we answer to an acceptable offer:

- ``server_no_context_takeover``, always (allowed even when not offered, RFC
  7692 section 7.1.1.1): the server compresses every message on its own, so
  one compressed message can be sent unchanged to many viewers and no
  compressor is kept per connection between messages.
- ``client_no_context_takeover``, always (allowed even when not offered,
  RFC 7692 section 7.1.1.1; a client that offered permessage-deflate must
  accept it or fail the connection): the client compresses every message on
  its own and the inflater is reset after each one. So a message over
  ``MAX_MESSAGE_BYTES`` can be skipped unread and answered with
  ``payload_too_large``, the connection going on; were the client to keep its
  context, the next message would refer to the skipped one's bytes and the
  server could only close with 1009, which a tracker takes for a network
  drop and resends the same message in a loop. What it costs in
  compression of tracker traffic is measured by ``benches/deflate_context.py``
  (docs/protocol.md, "Compression").
- ``server_max_window_bits=N`` when offered, echoing N: we compress with a
  window of at most N bits. zlib cannot compress with an 8-bit window, so a
  client that asks for 8 gets the extension with every server message sent
  uncompressed (RSV1 clear is always allowed); declining the offer would
  lose the compression of what the client sends, which is what ingest needs.
- ``client_max_window_bits=M`` when offered, with M the smaller of the
  client's value (15 when it gave none) and ``Config.ws_deflate_client_window_bits``.

An offer is declined, and the next one considered, when it has a parameter
we do not know, a parameter twice, or a value that is not allowed (window
bits are a decimal 8..15 without leading zeros, RFC 7692 section 7.1.2; the
context takeover parameters take no value). Values may be quoted strings.
A header element that does not parse is skipped; the others still count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "MIN_COMPRESS_BYTES",
    "DeflateParams",
    "Offer",
    "negotiate_deflate",
    "parse_extensions",
]

PERMESSAGE_DEFLATE = "permessage-deflate"

MIN_COMPRESS_BYTES = 128
"""Messages shorter than this are sent uncompressed even when compression
was negotiated: a few dozen bytes of JSON (an ack, a control message) do not
shrink enough to pay for the deflate call, and may even grow."""

# One extension offer: its name and its parameters in order; a parameter
# without a value has None.
Offer = tuple[str, tuple[tuple[str, str | None], ...]]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_WINDOW_BITS = re.compile(r"8|9|1[0-5]")


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """permessage-deflate as agreed with one client.

    Neither side keeps context (``server_no_context_takeover`` and
    ``client_no_context_takeover`` are always agreed), so what varies is
    the windows.
    """

    server_max_window_bits: int = 15
    """Largest window the server may compress with (8..15)."""
    client_max_window_bits: int = 15
    """Largest window the client compresses with (8..15)."""
    client_no_context_takeover: bool = False
    """The client starts every message with an empty window. Always True in
    what :func:`negotiate_deflate` agrees."""

    @property
    def server_compresses(self) -> bool:
        """Whether the server can compress for this client at all: zlib's
        smallest window is 9 bits, so a client that allows only 8 gets
        uncompressed messages."""
        return self.server_max_window_bits >= 9


def parse_extensions(values: Iterable[bytes]) -> list[Offer]:
    """Every extension offered in these ``Sec-WebSocket-Extensions`` header
    values, in order. Names are lower-cased; quoted values are unquoted.
    Elements that do not follow the RFC 6455 section 9.1 grammar are skipped."""
    offers: list[Offer] = []
    for value in values:
        text = value.decode("latin-1")
        pos = 0
        while pos < len(text):
            offer, pos = _parse_element(text, pos)
            if offer is not None:
                offers.append(offer)
    return offers


def _parse_element(text: str, pos: int) -> tuple[Offer | None, int]:
    """One list element from ``pos``; returns it (None when empty or
    malformed) and the position after the comma that ends it."""
    pos = _skip_ows(text, pos)
    if pos < len(text) and text[pos] == ",":
        return None, pos + 1  # empty element: allowed by RFC 9110 section 5.6.1
    name = _TOKEN.match(text, pos)
    if name is None:
        return None, _skip_element(text, pos)
    pos = name.end()
    params: list[tuple[str, str | None]] = []
    while True:
        pos = _skip_ows(text, pos)
        if pos == len(text):
            break
        if text[pos] == ",":
            pos += 1
            break
        if text[pos] != ";":
            return None, _skip_element(text, pos)
        pos = _skip_ows(text, pos + 1)
        param = _TOKEN.match(text, pos)
        if param is None:
            return None, _skip_element(text, pos)
        pos = _skip_ows(text, param.end())
        value: str | None = None
        if pos < len(text) and text[pos] == "=":
            pos = _skip_ows(text, pos + 1)
            token = _TOKEN.match(text, pos)
            quoted = _QUOTED.match(text, pos)
            if token is not None:
                value, pos = token.group(), token.end()
            elif quoted is not None:
                value = re.sub(r"\\(.)", r"\1", quoted.group(1))
                pos = quoted.end()
                # Unquoted, the value must still be a token (RFC 6455 9.1).
                if _TOKEN.fullmatch(value) is None:
                    return None, _skip_element(text, pos)
            else:
                return None, _skip_element(text, pos)
        params.append((param.group().lower(), value))
    return (name.group().lower(), tuple(params)), pos


def _skip_ows(text: str, pos: int) -> int:
    """Position after any spaces and tabs at ``pos``."""
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _skip_element(text: str, pos: int) -> int:
    """Position after the next comma outside a quoted string (or the end)."""
    while pos < len(text):
        char = text[pos]
        if char == ",":
            return pos + 1
        if char == '"':
            quoted = _QUOTED.match(text, pos)
            if quoted is None:
                return len(text)  # an unterminated quote swallows the rest
            pos = quoted.end()
            continue
        pos += 1
    return pos


def negotiate_deflate(
    values: Iterable[bytes], *, client_window_bits: int = 15
) -> tuple[bytes, DeflateParams] | None:
    """Accept the first permessage-deflate offer in these header values
    that we can; return the response header value and the agreed
    parameters, or None. ``client_window_bits`` (9..15) bounds the window
    we let clients compress with, when they offer ``client_max_window_bits``.
    """
    for name, params in parse_extensions(values):
        if name == PERMESSAGE_DEFLATE:
            agreed = _accept(params, client_window_bits)
            if agreed is not None:
                return agreed
    return None


def _accept(
    params: tuple[tuple[str, str | None], ...], client_window_bits: int
) -> tuple[bytes, DeflateParams] | None:
    """The answer to one permessage-deflate offer, or None to decline it."""
    seen: set[str] = set()
    server_bits: int | None = None  # offered server_max_window_bits
    client_bits: int | None = None  # answered client_max_window_bits
    for name, value in params:
        if name in seen:
            return None
        seen.add(name)
        if name == "server_no_context_takeover" and value is None:
            pass  # we send it anyway
        elif name == "client_no_context_takeover" and value is None:
            pass  # we require it anyway
        elif name == "server_max_window_bits" and value is not None:
            if _WINDOW_BITS.fullmatch(value) is None:
                return None
            server_bits = int(value)
        elif name == "client_max_window_bits":
            if value is None:
                client_bits = client_window_bits
            elif _WINDOW_BITS.fullmatch(value) is None:
                return None
            else:
                client_bits = min(int(value), client_window_bits)
        else:
            return None  # unknown, or a value where none belongs (or missing)

    answer = [PERMESSAGE_DEFLATE, "server_no_context_takeover", "client_no_context_takeover"]
    if server_bits is not None:
        answer.append(f"server_max_window_bits={server_bits}")
    if client_bits is not None:
        answer.append(f"client_max_window_bits={client_bits}")
    agreed = DeflateParams(
        server_max_window_bits=15 if server_bits is None else server_bits,
        client_max_window_bits=15 if client_bits is None else client_bits,
        client_no_context_takeover=True,
    )
    return "; ".join(answer).encode("ascii"), agreed
