"""A small reference decoder for what replaywire sends viewers.

It shows, in plain Python, everything a client needs to follow a live
session: text frames are JSON messages; binary frames carry a run of events
compressed with the codec the viewer asked for (``?codec=zstd|deflate|none``
on the WebSocket URL, or ``zstd-dict``: zstd with the server's dictionary,
whose bytes :class:`ViewerStream` is given). The layout is in docs/protocol.md ("Binary event
frames"). It uses the standard library's ``zlib`` for deflate and the
``zstandard`` package for zstd (``pip install zstandard``), not replaywire's
own Rust core, so it doubles as a check that the format is standard.

    decoder = ViewerStream()
    for frame in websocket:                   # str or bytes, as received
        for event in decoder.feed(frame):      # raw JSON bytes of each event, in order
            ...

:class:`ViewerStream` follows one session: it checks that every message
starts where the previous one ended and raises :class:`GapError` if not (a
client would then re-join with ``fromIndex``), and it starts over on a
``resync`` snapshot.

Every events message carries ``serverTime`` (:attr:`EventsMessage.server_time`),
the server's clock in epoch ms when it was built. Events keep the tracker's
own timestamps, and trackers' clocks are often off (``clockSkewMs`` in
``viewer_joined`` and ``GET /sessions/{id}`` says by how much); a client that
plays live sessions at a fixed delay should measure that delay on the
server's clock, not assume the tracker's agrees with its own.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from . import codecs
from .errors import GapError as GapError

__all__ = ["EventsMessage", "GapError", "ViewerStream", "decode_message", "split_events"]

# Version 2: version kind codec flags count firstIndex rawLength serverTime idLength.
BINARY_HEADER = struct.Struct(">BBBBIQIQH")
# Version 1 (servers before serverTime): the same without serverTime.
BINARY_HEADER_V1 = struct.Struct(">BBBBIQIH")
KINDS = {1: "snapshot", 2: "delta", 3: "session_events"}
FLAG_RESYNC = 0x01


@dataclass(frozen=True, slots=True)
class EventsMessage:
    """A run of events: ``snapshot``, ``delta`` or ``session_events``."""

    type: str
    session_id: str
    first_index: int
    count: int
    codec: str
    events_json: bytes  # the events as one JSON array, decompressed
    resync: bool = False
    server_time: int | None = None  # server clock when built, epoch ms (None: older server)

    @property
    def next_index(self) -> int:
        return self.first_index + self.count

    def events(self) -> list[Any]:
        """The events parsed (use :func:`split_events` to keep raw bytes)."""
        parsed: list[Any] = json.loads(self.events_json)
        return parsed


def decode_message(
    frame: bytes | str, *, max_size: int = 256 * 1024 * 1024, dictionary: bytes | None = None
) -> Any:
    """A received frame as an :class:`EventsMessage` (binary frames, and text
    frames of type snapshot/delta/session_events) or, for every other text
    message, the parsed JSON object. ``max_size`` bounds decompression.
    ``dictionary``: for ``codec=zstd-dict``, the bytes of
    ``GET /dictionaries/{dictionaryId}`` (the id ``viewer_joined`` names)."""
    if isinstance(frame, str):
        return _decode_text(frame)
    return _decode_binary(frame, max_size, dictionary)


def _decode_text(frame: str) -> Any:
    message = json.loads(frame)
    if message.get("type") not in ("snapshot", "delta", "session_events"):
        return message
    data = message["data"]
    return EventsMessage(
        message["type"],
        data["sessionId"],
        data["firstIndex"],
        data["count"],
        data.get("codec", "none"),
        json.dumps(data["events"], separators=(",", ":")).encode(),
        bool(data.get("resync", False)),
        data.get("serverTime"),
    )


def _decode_binary(frame: bytes, max_size: int, dictionary: bytes | None) -> EventsMessage:
    version = frame[0]
    server_time: int | None
    if version == 2:
        header = BINARY_HEADER
        _, kind, wire_id, flags, count, first, raw_length, server_time, id_length = (
            header.unpack_from(frame)
        )
    elif version == 1:
        header, server_time = BINARY_HEADER_V1, None
        _, kind, wire_id, flags, count, first, raw_length, id_length = header.unpack_from(frame)
    else:
        raise ValueError(f"binary frame version {version} is not supported")
    offset = header.size
    session_id = frame[offset : offset + id_length].decode()
    if raw_length > max_size:
        raise ValueError(f"frame announces {raw_length} bytes, more than max_size")
    codec = codecs.BY_WIRE_ID[wire_id]
    events_json = _decompress(codec, frame[offset + id_length :], raw_length, max_size, dictionary)
    if len(events_json) != raw_length:
        raise ValueError(f"decompressed {len(events_json)} bytes, header says {raw_length}")
    return EventsMessage(
        KINDS[kind],
        session_id,
        first,
        count,
        codec.name,
        events_json,
        bool(flags & FLAG_RESYNC),
        server_time,
    )


def _decompress(
    codec: codecs.Codec, payload: bytes, raw_length: int, max_size: int, dictionary: bytes | None
) -> bytes:
    """A binary frame's events, with the standard library's zlib or the
    ``zstandard`` package (a decoder this project did not write)."""
    if codec.compressor == "none":
        return bytes(payload)
    if codec.compressor == "deflate":
        return zlib.decompressobj(wbits=-15).decompress(payload, raw_length + 1)
    import zstandard  # optional: only viewers that ask for zstd need it

    if not codec.dictionary:
        return zstandard.ZstdDecompressor().decompress(payload, max_output_size=max_size)
    if dictionary is None:
        raise ValueError(f"a {codec.name} frame needs the dictionary (GET /dictionaries/ID)")
    decompressor = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(dictionary))
    data: bytes = decompressor.decompress(payload, max_output_size=max_size)
    return data


def split_events(events_json: bytes) -> list[bytes]:
    """The raw bytes of each event of a JSON array (re-serialised compactly)."""
    return [json.dumps(e, separators=(",", ":")).encode() for e in json.loads(events_json)]


class ViewerStream:
    """Follows one session's messages and yields its events in order."""

    def __init__(self, dictionary: bytes | None = None) -> None:
        self.next_index: int | None = None
        self.ended = False
        self.resyncs = 0
        self.dictionary = dictionary  # codec=zstd-dict: GET /dictionaries/{dictionaryId}

    def feed(self, frame: bytes | str) -> list[Any]:
        """The events a frame carries (parsed), after checking continuity."""
        message = decode_message(frame, dictionary=self.dictionary)
        if not isinstance(message, EventsMessage):
            if message.get("type") == "session_ended":
                self.ended = True
            return []
        if message.type == "snapshot":
            if message.resync:
                self.resyncs += 1
            self.next_index = message.first_index
        elif self.next_index is not None and message.first_index != self.next_index:
            raise GapError(f"expected index {self.next_index}, got {message.first_index}")
        self.next_index = message.next_index
        return message.events()
