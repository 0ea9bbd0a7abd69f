"""``memory://``: the storage contract kept in dicts, for tests, benchmarks
and deployments that want live viewing only.

Everything is lost when the process exits. Chunk payloads are bounded by
``max_bytes`` (``MEMORY_STORAGE_BYTES``): past it, the chunks written first
are evicted, whichever session they belong to, and counted in
:attr:`MemoryStorage.evicted_chunks`. A session keeps its row, its seqs and
its end index, so resuming and deduplicating stay exact; only history reads
of evicted ranges come back shorter, as after retention. One lock
serialises all calls, which makes each ``write`` atomic for readers.

Chunks are kept as plain tuples (:data:`_Row`), not :class:`Chunk`
objects: a tuple of strings, numbers and bytes drops out of the cyclic
garbage collector's sight after its first collection, while a dataclass
instance stays tracked. With a gigabyte of chunks, full collections would
otherwise walk ~100k objects, stalling the event loop for tens of
milliseconds each time (measured as the ack latency's p99).
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Final

from .. import _core
from .base import (
    ANY_SESSION,
    Chunk,
    ChunkBatch,
    ExpiredCounts,
    ResumeState,
    SessionError,
    SessionFilter,
    SessionRecord,
    Storage,
    StorageError,
    check_status,
    resume_from,
    window,
)

# A stored chunk: Chunk's fields in order (session_id, seq, first_index,
# event_count, first_timestamp, last_timestamp, codec, payload, received_at).
# A flush's payloads stay in Rust (ChunkPayload: the ring's event bytes,
# shared), built into bytes only when read.
_Row = tuple[
    str, int, int, int, float | None, float | None, str, bytes | _core.ChunkPayload, float | None
]
_SESSION: Final = 0
_SEQ: Final = 1
_FIRST: Final = 2
_COUNT: Final = 3
_PAYLOAD: Final = 7


# What an evicted row's slot holds until the front of its list is cut off
# in bulk (see MemoryStorage._remove): without it the evicted payloads
# would stay alive up to that cut, as much again as the store's limit.
_EVICTED: _Row = ("", -1, -1, 0, None, None, "none", b"", None)


def _chunk(row: _Row) -> Chunk:
    payload = row[_PAYLOAD]
    if isinstance(payload, bytes):
        return Chunk(*row)  # type: ignore[arg-type]
    sid, seq, first, count, first_ts, last_ts, codec, _, received = row
    return Chunk(sid, seq, first, count, first_ts, last_ts, codec, bytes(payload), received)


def _first_index(row: _Row) -> int:
    return row[_FIRST]


def _order(row: _Row) -> tuple[int, int]:
    return (row[_FIRST], row[_SEQ])


class MemoryStorage(Storage):
    """In-memory storage. ``open`` and ``close`` only flip a flag: data
    written before ``close`` is still there after the same object is
    opened again. ``max_bytes=None`` keeps every chunk (tests)."""

    name = "memory"
    blocking = False  # dicts and a lock held for microseconds

    def __init__(self, max_bytes: int | None = None) -> None:
        self._lock = threading.Lock()
        self._open = False
        self._sessions: dict[str, SessionRecord] = {}
        self._seqs: dict[str, set[int]] = {}
        self._chunks: dict[str, list[_Row]] = {}  # ordered by (first_index, seq)
        # How many rows at the front of a session's list were evicted: they
        # are dropped from the list in bulk (see _remove), since deleting
        # the first item of a long list moves all the others; meanwhile
        # their slots hold _EVICTED, not the rows and their payloads.
        self._heads: dict[str, int] = {}
        self._ends: dict[str, int] = {}  # past the last event ever stored
        self._errors: dict[str, list[SessionError]] = {}  # oldest first
        self._written: deque[_Row] = deque()  # stored chunks, oldest write first
        self.max_bytes = max_bytes
        self.stored_bytes = 0
        self.evicted_chunks = 0

    def __repr__(self) -> str:
        return f"MemoryStorage(max_bytes={self.max_bytes})"

    def open(self) -> None:
        with self._lock:
            self._open = True

    def close(self) -> None:
        with self._lock:
            self._open = False

    def _require_open(self) -> None:
        if not self._open:
            raise StorageError("storage is not open")

    def write(
        self,
        sessions: Sequence[SessionRecord],
        chunks: Sequence[Chunk],
        errors: Sequence[SessionError],
    ) -> None:
        check_status(sessions)  # before any change: all or nothing
        with self._lock:
            self._require_open()
            for record in sessions:
                self._sessions[record.session_id] = record.copy()
            # A flush's rows come from Rust as these tuples already.
            if isinstance(chunks, ChunkBatch):
                rows: Iterable[_Row] = chunks.flush.shared_rows()
            else:
                rows = (c.row() for c in chunks)
            for row in rows:
                sid, seq = row[_SESSION], row[_SEQ]
                seqs = self._seqs.setdefault(sid, set())
                if seq in seqs:
                    continue
                seqs.add(seq)
                kept = self._chunks.get(sid)
                if kept is None:
                    self._chunks[sid] = [row]
                elif (last := kept[-1])[_FIRST] < row[_FIRST] or (
                    last[_FIRST] == row[_FIRST] and last[_SEQ] < seq
                ):
                    kept.append(row)  # in order, as a live session writes
                else:
                    insort(kept, row, lo=self._heads.get(sid, 0), key=_order)
                self._ends[sid] = max(self._ends.get(sid, 0), row[_FIRST] + row[_COUNT])
                self._written.append(row)
                self.stored_bytes += len(row[_PAYLOAD])
            for error in errors:
                self._errors.setdefault(error.session_id, []).append(error)
            if self.max_bytes is not None:
                self._evict(self.max_bytes)

    def _evict(self, max_bytes: int) -> None:
        """Drop the oldest written chunks until the payloads fit."""
        while self.stored_bytes > max_bytes and self._written:
            row = self._written.popleft()
            if self._remove(row):
                self.evicted_chunks += 1

    def _remove(self, row: _Row) -> bool:
        """Take ``row`` out of its session's list; False if it is gone
        already (expired with its session)."""
        sid = row[_SESSION]
        chunks = self._chunks.get(sid)
        if not chunks:
            return False
        head = self._heads.get(sid, 0)
        if head < len(chunks) and chunks[head] is row:
            # The oldest chunk of its session, as eviction mostly finds.
            chunks[head] = _EVICTED
            head += 1
            if head >= 64 and 2 * head >= len(chunks):
                del chunks[:head]
                head = 0
            self._heads[sid] = head
        else:
            i = bisect_left(chunks, _order(row), lo=head, key=_order)
            if i == len(chunks) or chunks[i] is not row:
                return False
            del chunks[i]
        self.stored_bytes -= len(row[_PAYLOAD])
        return True

    def get_session(self, session_id: str) -> SessionRecord | None:
        with self._lock:
            self._require_open()
            record = self._sessions.get(session_id)
            return None if record is None else record.copy()

    def list_sessions(
        self,
        *,
        status: str | None = None,
        limit: int = 100,
        prefix: str = "",
        where: SessionFilter = ANY_SESSION,
    ) -> list[SessionRecord]:
        if limit <= 0:
            return []
        with self._lock:
            self._require_open()
            found = [
                r
                for r in self._sessions.values()
                if (status is None or r.status == status)
                and r.session_id.startswith(prefix)
                and where.matches(r)
            ]
        found.sort(key=lambda r: (r.started_at, r.session_id), reverse=True)
        return [r.copy() for r in found[:limit]]

    def read_chunks(self, session_id: str, from_index: int, max_events: int) -> list[Chunk]:
        with self._lock:
            self._require_open()
            chunks = self._chunks.get(session_id, [])
            head = self._heads.get(session_id, 0)
            # Same seek as SQLite: start at the last chunk starting at or
            # before from_index (all chunks sharing its first_index).
            start = bisect_right(chunks, from_index, lo=head, key=_first_index)
            if start > head:
                start = bisect_left(chunks, chunks[start - 1][_FIRST], lo=head, key=_first_index)
            rows = (_chunk(chunks[i]) for i in range(start, len(chunks)))
            return window(rows, from_index, max_events)

    def resume_state(self, session_id: str) -> ResumeState | None:
        with self._lock:
            self._require_open()
            if session_id not in self._sessions:
                return None
            end = self._ends.get(session_id, 0)
            return resume_from(end, sorted(self._seqs.get(session_id, ())))

    def session_errors(self, session_id: str, limit: int = 100) -> list[SessionError]:
        if limit <= 0:
            return []
        with self._lock:
            self._require_open()
            errors = self._errors.get(session_id, [])
            # Newest first by time; among equal times, the later insert first.
            ordered = sorted(enumerate(errors), key=lambda ie: (ie[1].at, ie[0]), reverse=True)
            return [e for _, e in ordered[:limit]]

    def expire(self, cutoff: float) -> ExpiredCounts:
        """Chunks stored without a session row are kept, as in SQLite."""
        with self._lock:
            self._require_open()
            gone = [sid for sid, r in self._sessions.items() if r.started_at < cutoff]
            chunks = errors = 0
            for sid in gone:
                del self._sessions[sid]
                dropped = self._chunks.pop(sid, [])[self._heads.pop(sid, 0) :]
                chunks += len(dropped)
                self.stored_bytes -= sum(len(row[_PAYLOAD]) for row in dropped)
                self._seqs.pop(sid, None)
                self._ends.pop(sid, None)
                errors += len(self._errors.pop(sid, ()))
            if gone:
                expired = set(gone)
                self._written = deque(r for r in self._written if r[_SESSION] not in expired)
            for sid, kept in list(self._errors.items()):
                recent = [e for e in kept if e.at >= cutoff]
                errors += len(kept) - len(recent)
                if recent:
                    self._errors[sid] = recent
                else:
                    del self._errors[sid]
            return ExpiredCounts(sessions=len(gone), chunks=chunks, errors=errors)

    def check(self) -> None:
        with self._lock:
            self._require_open()
