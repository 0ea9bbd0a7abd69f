"""The server side of the RFC 6455 opening handshake (section 4.2).

It runs once per connection, so it stays in Python: the per-byte work of a
WebSocket is in its frames, not in its handshake.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import h11

from ..errors import HandshakeError as HandshakeError

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def _tokens(value: bytes) -> set[bytes]:
    return {t.strip().lower() for t in value.split(b",")}


def wants_upgrade(request: h11.Request) -> bool:
    """True when the request asks to switch to WebSocket at all."""
    for name, value in request.headers:
        if name == b"upgrade" and b"websocket" in _tokens(value):
            return True
    return False


def check_upgrade(request: h11.Request) -> bytes:
    """Validate a WebSocket upgrade request; return the accept value.

    Raises :class:`HandshakeError` with the status to answer: 400 for a
    malformed request (not GET, missing ``Connection: upgrade``, missing or
    malformed key), 426 with ``Sec-WebSocket-Version: 13`` for other versions.
    """
    headers: dict[bytes, list[bytes]] = {}
    for name, value in request.headers:
        headers.setdefault(name, []).append(value)
    if request.method != b"GET":
        raise HandshakeError(400, "bad_upgrade", "WebSocket upgrade must use GET")
    if not any(b"websocket" in _tokens(v) for v in headers.get(b"upgrade", [])):
        raise HandshakeError(400, "bad_upgrade", "missing 'Upgrade: websocket'")
    if not any(b"upgrade" in _tokens(v) for v in headers.get(b"connection", [])):
        raise HandshakeError(400, "bad_upgrade", "missing 'Connection: Upgrade'")
    versions = headers.get(b"sec-websocket-version", [])
    if versions != [b"13"]:
        raise HandshakeError(
            426,
            "unsupported_version",
            "only WebSocket version 13 is supported",
            [(b"sec-websocket-version", b"13")],
        )
    keys = headers.get(b"sec-websocket-key", [])
    if len(keys) != 1:
        raise HandshakeError(400, "bad_upgrade", "missing Sec-WebSocket-Key")
    key = keys[0].strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except (binascii.Error, ValueError):
        raise HandshakeError(
            400, "bad_upgrade", "Sec-WebSocket-Key is not 16 bytes of base64"
        ) from None
    return accept_key(key)
