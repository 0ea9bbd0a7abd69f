"""Reading a session's events back: from its ring buffer when the range is
still in memory, else from stored chunks plus the chunks still queued for
storage. Every accepted batch is in one of those two places at any moment
(the writer drops a chunk from its queue only after it committed), so a
history read is complete. The result is contiguous from ``from_index``: it
stops at the first gap rather than skipping one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import _core
from ..storage import Chunk, Storage, StorageError

if TYPE_CHECKING:
    from .hub import Hub


@dataclass(frozen=True, slots=True)
class EventsPage:
    """Events ``first_index .. first_index + count`` as one raw JSON array."""

    first_index: int
    count: int
    events: bytes

    @property
    def next_index(self) -> int:
        return self.first_index + self.count


async def read_history(hub: Hub, session_id: str, from_index: int, limit: int) -> EventsPage:
    buffers = hub.buffers
    if session_id in buffers and from_index >= buffers.first_index(session_id):
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
    stored = await hub.writer.read(
        read_chunks, hub.storage, session_id, from_index, limit, hub.config.max_message_bytes
    )
    return assemble(stored, pending, from_index, limit)


def read_chunks(
    storage: Storage, session_id: str, from_index: int, limit: int, max_size: int
) -> list[Chunk]:
    """Stored chunks with their payloads decompressed (blocking: runs in the
    reader thread, so decompression never holds the event loop). A chunk's
    raw payload was one tracker message, so ``max_size`` bounds it."""
    return [
        chunk
        if chunk.codec == "none"
        else dataclasses.replace(
            chunk, codec="none", payload=_core.decompress(chunk.codec, chunk.payload, max_size)
        )
        for chunk in storage.read_chunks(session_id, from_index, limit)
    ]


def assemble(stored: list[Chunk], pending: list[Chunk], from_index: int, limit: int) -> EventsPage:
    """Join chunks into the contiguous run of at most ``limit`` events that
    starts at ``from_index``. Only the chunks at the edges are split."""
    by_start: dict[int, Chunk] = {c.first_index: c for c in stored}
    for c in pending:
        by_start.setdefault(c.first_index, c)
    parts: list[bytes] = []
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
        if skip == 0 and take == chunk.event_count:
            parts.append(chunk.payload)
        else:
            events = _core.split_events(chunk.payload)[skip : skip + take]
            parts.append(b"[" + b",".join(events) + b"]")
        index += take
        remaining -= take
    return EventsPage(from_index, index - from_index, _core.join_events(parts))
