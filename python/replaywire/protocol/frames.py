"""Server-to-client messages, encoded as ready-to-send WebSocket frames.

Event arrays are spliced in as raw bytes (never parsed and re-serialised),
so events reach viewers and REST clients byte-for-byte as the tracker sent
them. Session ids are JSON-encoded once per session (``LiveSession.id_json``).
"""

from __future__ import annotations

import json
from typing import Any

from .. import _core

CODEC_NONE = b'"none"'


def json_string(value: str) -> bytes:
    return json.dumps(value).encode()


def message(type_: str, data: dict[str, Any]) -> bytes:
    """A small control message as a text frame."""
    return _core.encode_text(json.dumps({"type": type_, "data": data}, separators=(",", ":")))


def ack(session_id_json: bytes, seq: int) -> bytes:
    return _core.encode_text(
        b'{"type":"ack","data":{"sessionId":%b,"seq":%d}}' % (session_id_json, seq)
    )


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
    type_: bytes, session_id_json: bytes, first_index: int, count: int, events_json: bytes
) -> bytes:
    """``snapshot``, ``delta`` or ``session_events``: a run of events with the
    index of the first, so a client can tell a gap or a duplicate. ``codec``
    is ``none`` until compressed deltas are negotiated."""
    return _core.encode_text(
        b'{"type":"%b","data":{"sessionId":%b,"firstIndex":%d,"count":%d,"codec":%b,"events":%b}}'
        % (type_, session_id_json, first_index, count, CODEC_NONE, events_json)
    )
