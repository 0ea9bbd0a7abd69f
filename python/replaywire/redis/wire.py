"""The bytes instances exchange over Redis pub/sub for live fan-out.

Channels (under ``REDIS_PREFIX``; the braces are hash tags, which put a
channel in its slot on a Redis Cluster):

- ``{fanout}:want``: an instance with viewers of a session it does not hold
  publishes ``FROM SESSION`` here (on join, then every ``PRESENCE_INTERVAL``
  while it has viewers, and when another instance claims the session):
  the session's key and the index its viewers have reached (``-`` before
  the first head). The instance holding the session answers with a
  ``head`` on the session's channel and relays its ticks from then on;
  when it holds the events from ``FROM`` on in memory, it sends them first,
  as deltas, so that a viewer that followed the session from another
  instance misses nothing its new holder has not yet stored.
- ``{sessionKey}:fanout`` (the session's tenant-scoped key,
  ``tenant:sessionId``): the holder's messages for that session, in
  order: ``head`` (where its stream of deltas continues), ``delta`` (one per
  tick) and ``end``.

A message is a fixed big-endian header then, for a delta, the events' JSON
array, zstd-compressed from ``COMPRESS_MIN`` bytes on (one frame with its
content size, so a subscriber hands it to its ``codec=zstd`` viewers as it
is). Every message carries the index it starts at: a subscriber tells a
lost or repeated message from the index alone and resynchronises.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import WireError as WireError

__all__ = ["Relayed", "decode", "decode_want", "delta_payload", "message", "want"]

VERSION = 1
DELTA, HEAD, END = 1, 2, 3
CODEC_NONE, CODEC_ZSTD = 0, 2
COMPRESS_MIN = 512  # smaller deltas travel raw: compressing them saves nothing worth a call
# version, kind, payload codec, (pad), first index, count, keyframe index (-1: none), raw length
HEADER = struct.Struct(">BBBxQIqI")
PAYLOAD = struct.Struct(">BI")  # codec, raw length: what the broadcaster builds once per tick


@dataclass(frozen=True, slots=True)
class Relayed:
    kind: int
    first: int
    count: int
    keyframe: int | None
    codec: int
    raw_length: int
    data: bytes

    @property
    def next_index(self) -> int:
        return self.first + self.count


def delta_payload(compress: Callable[[bytes], bytes], events_json: bytes) -> bytes:
    """A tick's events as relayed: built once per tick by the holder's
    broadcaster (as if it were one more codec), whatever the number of
    subscribing instances."""
    if len(events_json) >= COMPRESS_MIN:
        return PAYLOAD.pack(CODEC_ZSTD, len(events_json)) + compress(events_json)
    return PAYLOAD.pack(CODEC_NONE, len(events_json)) + events_json


def message(kind: int, first: int, count: int, keyframe: int | None, payload: bytes = b"") -> bytes:
    """One relayed message: ``payload`` is :func:`delta_payload`'s, or empty
    for ``head`` and ``end``."""
    codec, raw_length = PAYLOAD.unpack_from(payload) if payload else (CODEC_NONE, 0)
    header = HEADER.pack(
        VERSION, kind, codec, first, count, -1 if keyframe is None else keyframe, raw_length
    )
    return header + payload[PAYLOAD.size :]


def decode(data: bytes) -> Relayed:
    if len(data) < HEADER.size or data[0] != VERSION:
        raise WireError("not a replaywire fan-out message of this version")
    _, kind, codec, first, count, keyframe, raw_length = HEADER.unpack_from(data)
    if kind not in (DELTA, HEAD, END) or codec not in (CODEC_NONE, CODEC_ZSTD):
        raise WireError(f"unknown kind {kind} or codec {codec}")
    return Relayed(
        kind,
        first,
        count,
        None if keyframe < 0 else keyframe,
        codec,
        raw_length,
        data[HEADER.size :],
    )


def want(session_id: str, from_index: int | None) -> bytes:
    """A ``{fanout}:want`` message: ``session_id`` from ``from_index`` on."""
    return f"{'-' if from_index is None else from_index} {session_id}".encode()


def decode_want(data: bytes) -> tuple[str, int | None]:
    """The session key and index of a :func:`want` message."""
    text = data.decode("utf-8", "replace")
    first, _, session_id = text.partition(" ")
    if first == "-":
        return session_id, None
    try:
        return session_id, max(0, int(first))
    except ValueError:
        raise WireError(f"want message without an index: {text[:200]!r}") from None
