"""Reading a session's events back: from its ring buffer when the range is
still in memory, else from stored chunks plus the chunks still queued for
storage. Every accepted batch is in one of those two places at any moment
(the writer drops a chunk from its queue only after it committed), so a
history read is complete. The result is contiguous from ``from_index``: it
stops at the first gap rather than skipping one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import _core
from ..storage import Chunk, Storage, StorageError

if TYPE_CHECKING:
    from .hub import Hub


MAX_INDEX = 2**63 - 1  # event indexes are BIGINT in storage; clients may send any u64 or more


@dataclass(frozen=True, slots=True)
class EventsPage:
    """Events ``first_index .. first_index + count`` as one JSON array:
    raw when ``codec`` is ``"none"``, else zstd frames whose concatenated
    contents are that array (``codec == "zstd"``)."""

    first_index: int
    count: int
    events: bytes
    codec: str = "none"
    # With codec "parts": the array as pieces to send one after the other
    # (``events`` is empty), so that large events are never joined.
    parts: tuple[bytes | memoryview, ...] = ()

    @property
    def next_index(self) -> int:
        return self.first_index + self.count


async def read_history(
    hub: Hub, session_id: str, from_index: int, limit: int, codec: str = "none"
) -> EventsPage:
    """The events from ``from_index`` on. With ``codec="zstd"``, a page read
    from storage is built from the stored zstd chunks as they are (see
    :func:`assemble_zstd`); with ``codec="parts"``, as pieces that are never
    joined (see :func:`assemble_parts`); a page still in the ring buffer is
    raw whatever ``codec`` asks for. An index past ``MAX_INDEX`` holds no
    event: it is answered empty before it reaches the ring buffer (u64) or
    storage (int64), which cannot take it."""
    if from_index > MAX_INDEX:
        return EventsPage(from_index, 0, b"[]")
    buffers = hub.ingest
    live = hub.live.get(session_id)
    # A detached session's ring may have stopped short of its tail (see
    # replaywire.sessions.hub): storage and the queue are read instead.
    attached = live is None or bool(live.trackers) or live.ended
    if attached and session_id in buffers and from_index >= buffers.first_index(session_id):
        part = buffers.read(session_id, from_index, limit, hub.config.viewer_batch_bytes * 16)
        return EventsPage(part.first_index, part.count, part.json())
    # During a storage outage some chunks wait in the spool, unreadable
    # until drained: answer "retry" rather than a page with a hole.
    for first, end in hub.writer.spooled_spans(session_id).values():
        if end > from_index and first < from_index + limit:
            raise StorageError(
                "some of these events wait in the outage spool; retry once storage is back",
                retryable=True,
            )
    # Take the queued chunks before reading storage: a chunk committed while
    # the read runs is then still in our copy of the queue.
    pending = hub.writer.pending_chunks(session_id)
    max_size = hub.config.max_message_bytes
    assembler = {"zstd": assemble_zstd, "parts": assemble_parts}.get(codec)
    if assembler is not None:
        args = (session_id, from_index, limit, max_size, pending)
        return await hub.writer.read(_read_assembled, assembler, hub.storage, *args)
    stored = await hub.writer.read(
        read_chunks, hub.storage, session_id, from_index, limit, max_size
    )
    return assemble(stored, pending, from_index, limit)


def raw_payload(chunk: Chunk, max_size: int) -> bytes:
    """A chunk's events as a JSON array, decompressed if need be. A
    compressed chunk holds only the array's contents (see
    :class:`~replaywire.storage.Chunk`); one stored before that rule holds
    the whole array, which its first byte tells apart (events are objects)."""
    if chunk.codec == "none":
        return chunk.payload
    data = _core.decompress(chunk.codec, chunk.payload, max_size)
    return data if data[:1] == b"[" else b"[" + data + b"]"


def read_chunks(
    storage: Storage, session_id: str, from_index: int, limit: int, max_size: int
) -> list[Chunk]:
    """Stored chunks with their payloads decompressed (blocking: runs in the
    reader thread, so decompression never holds the event loop). A chunk's
    raw payload was one tracker message, so ``max_size`` bounds it."""
    return [
        chunk
        if chunk.codec == "none"
        else dataclasses.replace(chunk, codec="none", payload=raw_payload(chunk, max_size))
        for chunk in storage.read_chunks(session_id, from_index, limit)
    ]


def _plan(
    stored: list[Chunk], pending: list[Chunk], from_index: int, limit: int
) -> list[tuple[Chunk, int, int]]:
    """The ``(chunk, skip, take)`` slices that make the contiguous run of at
    most ``limit`` events starting at ``from_index``, stopping at a gap."""
    by_start: dict[int, Chunk] = {c.first_index: c for c in stored}
    for c in pending:
        by_start.setdefault(c.first_index, c)
    slices: list[tuple[Chunk, int, int]] = []
    index = from_index
    remaining = limit
    for start in sorted(by_start):
        chunk = by_start[start]
        if remaining <= 0 or start > index:
            break
        if chunk.end_index <= index or chunk.event_count == 0:
            continue
        skip = index - start
        take = min(chunk.event_count - skip, remaining)
        slices.append((chunk, skip, take))
        index += take
        remaining -= take
    return slices


def assemble(stored: list[Chunk], pending: list[Chunk], from_index: int, limit: int) -> EventsPage:
    """Join decompressed chunks into the contiguous run of at most ``limit``
    events that starts at ``from_index``. Only the chunks at the edges are
    split."""
    parts: list[bytes] = []
    count = 0
    for chunk, skip, take in _plan(stored, pending, from_index, limit):
        if skip == 0 and take == chunk.event_count:
            parts.append(chunk.payload)
        else:
            events = _core.split_events(chunk.payload)[skip : skip + take]
            parts.append(b"[" + b",".join(events) + b"]")
        count += take
    return EventsPage(from_index, count, _core.join_events(parts))


def _read_assembled(
    assemble_: Callable[[list[Chunk], list[Chunk], int, int, int], EventsPage],
    storage: Storage,
    session_id: str,
    from_index: int,
    limit: int,
    max_size: int,
    pending: list[Chunk],
) -> EventsPage:
    """Read stored chunks and assemble them with ``assemble_`` (blocking:
    runs in the reader thread, decompression included)."""
    stored = storage.read_chunks(session_id, from_index, limit)
    return assemble_(stored, pending, from_index, limit, max_size)


def assemble_parts(
    stored: list[Chunk], pending: list[Chunk], from_index: int, limit: int, max_size: int
) -> EventsPage:
    """The page of :func:`assemble` as pieces: ``[``, each chunk's events
    (views into its decompressed payload, not copies), ``,`` between them,
    ``]``. A 50 MB snapshot goes out as the one object its decompression
    made, not joined into a page and then into a response body."""
    parts: list[bytes | memoryview] = [b"["]
    count = 0
    for chunk, skip, take in _plan(stored, pending, from_index, limit):
        if count:
            parts.append(b",")
        count += take
        if skip == 0 and take == chunk.event_count:
            parts.append(_contents(chunk, max_size))
        else:
            events = _core.split_events(raw_payload(chunk, max_size))[skip : skip + take]
            parts.append(b",".join(events))
    parts.append(b"]")
    return EventsPage(from_index, count, b"", codec="parts", parts=tuple(parts))


def _contents(chunk: Chunk, max_size: int) -> memoryview:
    """A chunk's events between the brackets, without copying them."""
    if chunk.codec == "none":
        return memoryview(chunk.payload)[1:-1]  # the core writes ``[e0,...]`` exactly
    data = _core.decompress(chunk.codec, chunk.payload, max_size)
    # Only the contents are compressed, except in chunks stored before that rule.
    return memoryview(data)[1:-1] if data[:1] == b"[" else memoryview(data)


def assemble_zstd(
    stored: list[Chunk], pending: list[Chunk], from_index: int, limit: int, max_size: int
) -> EventsPage:
    """The page of :func:`assemble` as concatenated zstd frames, for a
    client that accepts zstd. Whole stored zstd chunks go out as they are
    stored, never decompressed: each holds only its array's contents, so
    the frames ``[``, chunk, ``,``, chunk, ..., ``]`` decode to one array
    (a zstd decoder must read concatenated frames, RFC 8878 section 3).
    Chunks cut at the page's edges, chunks still queued for storage and
    chunks in other codecs are decompressed and compressed again; the
    small separator frames ride along with them where they can."""
    out = bytearray()
    glue = b"["  # what must come before the next events
    count = 0
    for chunk, skip, take in _plan(stored, pending, from_index, limit):
        count += take
        if chunk.codec == "zstd" and skip == 0 and take == chunk.event_count:
            out += _core.compress("zstd", glue, 1)
            out += chunk.payload
        else:
            events = _core.split_events(raw_payload(chunk, max_size))[skip : skip + take]
            out += _core.compress("zstd", glue + b",".join(events), 1)
        glue = b","
    out += _core.compress("zstd", b"[]" if count == 0 else b"]", 1)
    return EventsPage(from_index, count, bytes(out), codec="zstd")
