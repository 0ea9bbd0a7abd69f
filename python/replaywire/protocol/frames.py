"""Server-to-client messages, encoded as ready-to-send WebSocket frames
(the tracker's acks and errors are built by its engine, in Rust).

Event arrays are spliced in as raw bytes (never parsed and re-serialised),
so events reach viewers and REST clients byte-for-byte as the tracker sent
them. Session ids are JSON-encoded once per session (``LiveSession.id_json``).
"""

from __future__ import annotations

import json
import struct
from typing import Any

from .. import _core, codecs

CODEC_NONE = b'"none"'

# Binary event frames (docs/protocol.md, "Codecs"): a fixed big-endian
# header, the session id, then the events' JSON array compressed with the
# frame's codec. Version 2 added serverTime (epoch ms) before the id length.
BINARY_VERSION = 2
BINARY_KINDS = {b"snapshot": 1, b"delta": 2, b"session_events": 3}
# version kind codec flags count first raw server_time idlen
BINARY_HEADER = struct.Struct(">BBBBIQIQH")
FLAG_RESYNC = 0x01


def json_string(value: str) -> bytes:
    return json.dumps(value).encode()


def message(type_: str, data: dict[str, Any]) -> bytes:
    """A small control message as a text frame."""
    return _core.encode_text(json.dumps({"type": type_, "data": data}, separators=(",", ":")))


def error(
    code: str, message_: str, seq: int | None = None, *, retry_after_ms: int | None = None
) -> bytes:
    data: dict[str, Any] = {"code": code, "message": message_}
    if seq is not None:
        data["seq"] = seq
    if retry_after_ms is not None:
        data["retryAfterMs"] = retry_after_ms
    return message("error", data)


def events(
    type_: bytes,
    session_id_json: bytes,
    first_index: int,
    count: int,
    events_json: bytes,
    *,
    server_time_ms: int,
    resync: bool = False,
    deflate_window_bits: int | None = None,
) -> bytes:
    """``snapshot``, ``delta`` or ``session_events`` as a text frame: a run of
    events with the index of the first, so a client can tell a gap or a
    duplicate, and ``serverTime``, the server's clock (epoch ms) when the
    message was built, so a client can play at a fixed delay behind the
    server whatever the tracker's clock says (the ``codec=none`` form;
    compressed codecs use :func:`events_binary`). With
    ``deflate_window_bits``, the frame is compressed for permessage-deflate
    with that window and no context, so the same bytes suit every client
    that agreed to at least that window."""
    extra = b',"resync":true' if resync else b""
    message = (
        b'{"type":"%b","data":{"sessionId":%b,"firstIndex":%d,"count":%d,"codec":%b,'
        b'"serverTime":%d%b,"events":%b}}'
        % (
            type_,
            session_id_json,
            first_index,
            count,
            CODEC_NONE,
            server_time_ms,
            extra,
            events_json,
        )
    )
    if deflate_window_bits is not None:
        return _core.encode_text_deflated(message, window_bits=deflate_window_bits)
    return _core.encode_text(message)


def events_binary(
    type_: bytes,
    session_id_json: bytes,
    first_index: int,
    count: int,
    codec: str,
    compressed: bytes,
    raw_length: int,
    *,
    server_time_ms: int,
    resync: bool = False,
) -> bytes:
    """A run of events as a binary frame: header, session id, then the
    events' JSON array compressed with ``codec`` (``raw_length`` bytes once
    decompressed). Built once per session tick and sent to every viewer of
    that codec unchanged."""
    sid = json.loads(session_id_json).encode()
    header = BINARY_HEADER.pack(
        BINARY_VERSION,
        BINARY_KINDS[type_],
        codecs.BY_NAME[codec].wire_id,
        FLAG_RESYNC if resync else 0,
        count,
        first_index,
        raw_length,
        server_time_ms,
        len(sid),
    )
    return _core.encode_binary(header + sid + compressed)
