"""Records and the abstract storage interface.

Nothing here knows which database sits behind :class:`Storage`: the records
are plain dataclasses, timestamps are epoch seconds (floats), and the helpers
at the bottom compute the parts of the contract that every backend shares
(windows over chunks, resume points), so SQLite, memory and PostgreSQL
answer the same questions the same way.

Invariant the server keeps and the backends rely on: the chunks of one
session never overlap in event indexes (the server assigns ``first_index``
from :attr:`ResumeState.next_index` and its own counter), so ordering by
``first_index`` is ordering by events.
"""

from __future__ import annotations

import abc
import dataclasses
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, overload

from .. import _core
from ..errors import StorageError as StorageError

STATUSES = ("active", "ended")


def iso_utc(ts: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC with millisecond precision and a ``Z``
    suffix (``2024-05-01T12:00:00.250Z``), the form browsers' ``Date``
    parses; None stays None. Sub-millisecond digits are truncated."""
    if ts is None:
        return None
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


@dataclass(slots=True)
class SessionRecord:
    """One recorded session: what the tracker told us at start, plus counters
    the server keeps. Mutable, because the sessions layer updates it as
    batches arrive; hand :meth:`copy` to anything that keeps it."""

    session_id: str
    started_at: float  # server clock, epoch seconds
    user_id: str | None = None
    url: str | None = None
    user_agent: str | None = None
    referrer: str | None = None
    time_zone: str | None = None
    viewport_width: int | None = None
    viewport_height: int | None = None
    device_pixel_ratio: float | None = None
    client_start_time: float | None = None  # tracker's startTime, ms
    ended_at: float | None = None
    last_event_at: float | None = None  # server clock, epoch seconds
    event_count: int = 0
    byte_count: int = 0
    status: str = "active"  # "active" | "ended"
    # Index of the meta event before the latest full snapshot (or of that
    # snapshot): where a late viewer starts, even once memory trimmed it.
    keyframe_index: int | None = None
    # How far the tracker's clock is ahead of the server's, ms (negative:
    # behind); None until a batch with events arrived. See
    # rust/src/ingest/skew.rs for how it is measured.
    clock_skew_ms: float | None = None
    # The tracker's latest ``snapshot_missing`` notice: the page's full
    # snapshot could not be delivered (why, its size, the limit it was
    # over, and when the server heard it), so the session holds incremental
    # events without it. All None when no notice came. Flat fields, like
    # the viewport's, so that every backend stores them as plain columns.
    snapshot_missing_reason: str | None = None
    snapshot_missing_bytes: int | None = None
    snapshot_missing_limit_bytes: int | None = None
    snapshot_missing_at: float | None = None  # server clock, epoch seconds

    def to_json(self) -> dict[str, Any]:
        """The API shape: camelCase keys, server times as ISO-8601 UTC strings
        (see :func:`iso_utc`), ``clientStartTime`` as the tracker sent it (ms),
        ``viewport`` always an object (its fields may be null), and
        ``clockSkewMs`` rounded to the millisecond (null until measured),
        and ``snapshotMissing`` an object (null unless the tracker said the
        full snapshot could not be delivered)."""
        return {
            "sessionId": self.session_id,
            "userId": self.user_id,
            "url": self.url,
            "userAgent": self.user_agent,
            "referrer": self.referrer,
            "timeZone": self.time_zone,
            "viewport": {
                "width": self.viewport_width,
                "height": self.viewport_height,
                "devicePixelRatio": self.device_pixel_ratio,
            },
            "clientStartTime": self.client_start_time,
            "startedAt": iso_utc(self.started_at),
            "endedAt": iso_utc(self.ended_at),
            "lastEventAt": iso_utc(self.last_event_at),
            "eventCount": self.event_count,
            "byteCount": self.byte_count,
            "keyframeIndex": self.keyframe_index,
            "status": self.status,
            "clockSkewMs": None if self.clock_skew_ms is None else round(self.clock_skew_ms),
            "snapshotMissing": None
            if self.snapshot_missing_reason is None
            else {
                "reason": self.snapshot_missing_reason,
                "bytes": self.snapshot_missing_bytes,
                "limitBytes": self.snapshot_missing_limit_bytes,
                "at": iso_utc(self.snapshot_missing_at),
            },
        }

    def mark_snapshot_missing(self, reason: str, size: int, limit: int | None, at: float) -> None:
        """Record a ``snapshot_missing`` notice; the latest one wins."""
        self.snapshot_missing_reason = reason
        self.snapshot_missing_bytes = size
        self.snapshot_missing_limit_bytes = limit
        self.snapshot_missing_at = at

    def copy(self) -> SessionRecord:
        # Five times cheaper than dataclasses.replace, which re-reads the
        # fields each call: every flush copies each session it writes.
        return SessionRecord(*_record_fields(self))


# Every field of SessionRecord, in order (they are all __init__ arguments).
_record_fields = operator.attrgetter(*(f.name for f in dataclasses.fields(SessionRecord)))


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """What ``GET /sessions`` may ask of :meth:`Storage.list_sessions`
    besides status and tenant; every field left None matches everything.

    ``user_id`` matches exactly, ``url`` is a substring of the session's
    first URL (case-sensitive, as stored), ``since`` and ``until`` bound
    ``started_at`` (epoch seconds, server clock; ``since`` inclusive,
    ``until`` exclusive), ``min_duration`` is in seconds, from
    ``started_at`` to ``ended_at`` (to ``last_event_at`` while the session
    is live). ``before`` is a page's cursor: only sessions after it in the
    listing order, i.e. ``(started_at, session_id)`` below it.

    Backed by indexes on ``started_at`` and on ``user_id`` then
    ``started_at`` in both SQL backends (migration 0005); the URL and
    duration conditions are checked on the rows those select (an index on
    a substring or on a duration every flush moves would cost every write)."""

    user_id: str | None = None
    url: str | None = None
    since: float | None = None
    until: float | None = None
    min_duration: float | None = None
    before: tuple[float, str] | None = None

    def matches(self, r: SessionRecord) -> bool:
        """The same test in Python (the memory backend)."""
        end = r.ended_at if r.ended_at is not None else r.last_event_at
        duration = (end if end is not None else r.started_at) - r.started_at
        return (
            (self.user_id is None or r.user_id == self.user_id)
            and (self.url is None or (r.url is not None and self.url in r.url))
            and (self.since is None or r.started_at >= self.since)
            and (self.until is None or r.started_at < self.until)
            and (self.min_duration is None or duration >= self.min_duration)
            and (self.before is None or (r.started_at, r.session_id) < self.before)
        )


ANY_SESSION = SessionFilter()


ChunkRow = tuple[str, int, int, int, float | None, float | None, str, bytes, float | None]
"""A :class:`Chunk`'s fields in order (:meth:`Chunk.row`)."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One accepted tracker batch, stored as received."""

    session_id: str
    seq: int  # tracker's batch seq; unique per session
    first_index: int  # index of the chunk's first event in the session
    event_count: int
    first_timestamp: float | None
    last_timestamp: float | None
    # "none": ``payload`` is the JSON array of the events as received.
    # "zstd" / "deflate": ``payload`` is the array's *contents* (the events
    # joined by commas, without the brackets) compressed, so that zstd
    # chunks concatenate into one array without being decompressed.
    codec: str
    payload: bytes
    # When the server accepted the batch: server clock, epoch seconds. None
    # only for chunks stored before replaywire recorded it.
    received_at: float | None = None

    @property
    def end_index(self) -> int:
        return self.first_index + self.event_count

    def row(self) -> ChunkRow:
        """The fields in order, as a tuple: the shape the memory backend
        keeps, the SQL backends bind and the Rust queue takes (a flush's
        ``rows()`` have it too)."""
        return (
            self.session_id,
            self.seq,
            self.first_index,
            self.event_count,
            self.first_timestamp,
            self.last_timestamp,
            self.codec,
            self.payload,
            self.received_at,
        )


class ChunkBatch(Sequence[Chunk]):
    """The chunks of one flush as the writer hands them to
    :meth:`Storage.write`: a :class:`replaywire._core.Flush`, whose payloads
    stay in Rust. Backends with a bulk path take :attr:`flush` (PostgreSQL
    encodes its COPY stream from it, SQLite binds its rows); any other
    reader gets :class:`Chunk` objects, built on first access."""

    __slots__ = ("_chunks", "flush")

    def __init__(self, flush: _core.Flush) -> None:
        self.flush = flush
        self._chunks: list[Chunk] | None = None

    def _built(self) -> list[Chunk]:
        if self._chunks is None:
            self._chunks = [Chunk(*row) for row in self.flush.rows()]
        return self._chunks

    def __len__(self) -> int:
        return len(self.flush)

    def __bool__(self) -> bool:
        return len(self.flush) > 0

    @overload
    def __getitem__(self, i: int) -> Chunk: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Chunk]: ...
    def __getitem__(self, i: int | slice) -> Chunk | Sequence[Chunk]:
        return self._built()[i]

    def __iter__(self) -> Iterator[Chunk]:
        return iter(self._built())


@dataclass(frozen=True, slots=True)
class SessionError:
    """A protocol error answered to a tracker, kept for operators."""

    session_id: str
    at: float  # server clock, epoch seconds
    code: str
    message: str
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The API shape (``GET /sessions/{id}/errors``): ``at`` as
        ISO-8601 UTC (see :func:`iso_utc`); ``seq`` null when the error
        concerned no batch."""
        return {"at": iso_utc(self.at), "code": self.code, "message": self.message, "seq": self.seq}


@dataclass(frozen=True, slots=True)
class ResumeState:
    """Where a reconnecting tracker's session continues."""

    next_index: int  # max end_index over the session's chunks (0 if none)
    next_seq: int  # smallest seq >= 0 not stored (all seqs below it are stored)
    seqs_above: tuple[int, ...]  # stored seqs > next_seq (out-of-order arrivals), ascending


@dataclass(frozen=True, slots=True)
class ExpiredCounts:
    """What one :meth:`Storage.expire` call removed.

    ``chunks`` is exact for backends that delete rows. PostgreSQL drops whole
    daily partitions instead, and counts their rows by the planner's
    estimate (``pg_class.reltuples``, kept by autovacuum) when it has one,
    counting exactly only partitions never analysed: treat it as
    approximate there."""

    sessions: int
    chunks: int
    errors: int
    partitions: int = 0  # whole chunk partitions dropped (PostgreSQL only)


class Storage(abc.ABC):
    """Blocking API. Every method is called from a worker thread, never on
    the event loop; implementations must be safe for one writer thread and
    concurrent reader threads.

    Resource handling: :meth:`open` acquires whatever the backend holds
    (connections, files) and :meth:`close` releases all of it; close is
    idempotent. Any method but ``open``/``close`` on a storage that is not
    open raises :class:`StorageError` (not retryable).

    Error handling: backends raise only :class:`StorageError`, never their
    driver's exceptions, so callers need not know which database is behind.
    """

    name: str
    blocking: bool = True
    """Whether calls block on I/O. The writer runs a non-blocking backend's
    ``write`` on the event loop: a thread would only make the two contend
    for the GIL, handing it back and forth once per switch interval."""

    @abc.abstractmethod
    def open(self) -> None:
        """Connect and apply pending schema migrations (idempotent)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release every connection; idempotent."""

    @abc.abstractmethod
    def write(
        self,
        sessions: Sequence[SessionRecord],
        chunks: Sequence[Chunk],
        errors: Sequence[SessionError],
    ) -> None:
        """Store everything in ONE transaction: all of it or, on error,
        none of it. Chunks whose (session_id, seq) is already stored are
        ignored (the first stored wins), so retrying a write is safe. Session
        rows are upserted: every field is replaced by the record's. A status
        outside :data:`STATUSES` is rejected (not retryable)."""

    @abc.abstractmethod
    def get_session(self, session_id: str) -> SessionRecord | None: ...

    @abc.abstractmethod
    def list_sessions(
        self,
        *,
        status: str | None = None,
        limit: int = 100,
        prefix: str = "",
        where: SessionFilter = ANY_SESSION,
    ) -> list[SessionRecord]:
        """Sessions, newest ``started_at`` first (ties by session_id); with
        ``prefix``, only ids that start with it (a tenant's ``tenant:``),
        and only those ``where`` matches (see :class:`SessionFilter`)."""

    @abc.abstractmethod
    def read_chunks(self, session_id: str, from_index: int, max_events: int) -> list[Chunk]:
        """Chunks with ``end_index > from_index``, ordered by first_index,
        stopping once the events from ``from_index`` on reach ``max_events``
        (the last chunk may carry more; the caller trims). See
        :func:`window`."""

    @abc.abstractmethod
    def resume_state(self, session_id: str) -> ResumeState | None:
        """None if the session has no row (even if chunks exist)."""

    @abc.abstractmethod
    def session_errors(self, session_id: str, limit: int = 100) -> list[SessionError]:
        """The session's most recent errors, newest first."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise :class:`StorageError` if unusable (readiness probe)."""

    @abc.abstractmethod
    def expire(self, cutoff: float) -> ExpiredCounts:
        """Retention: delete every session that started before ``cutoff``
        (epoch seconds) with its chunks and errors, and every error recorded
        before ``cutoff`` (errors may name sessions never stored). Retention
        is by start time alone: a session still active is deleted too, and
        if its tracker keeps sending, what arrives next is stored as a new
        tail (the hub writes the record back with the next flush). Chunks
        stored without any session row are outside this rule (see each
        backend). Safe to run while writes go on, and from several
        instances at once."""

    def maintain(self, now: float) -> None:  # noqa: B027 (a hook most backends need not fill)
        """Upkeep ahead of need, called periodically with the current time
        (PostgreSQL creates the chunk partitions of the coming days).
        Nothing to do by default."""


# --- shared semantics --------------------------------------------------------


def window(chunks: Iterable[Chunk], from_index: int, max_events: int) -> list[Chunk]:
    """The :meth:`Storage.read_chunks` rule over chunks already ordered by
    first_index: skip chunks that end at or before ``from_index``, then take
    chunks until the events from ``from_index`` on reach ``max_events``.
    Consumes ``chunks`` lazily, so a backend can feed it a cursor."""
    out: list[Chunk] = []
    total = 0
    if max_events <= 0:
        return out
    for chunk in chunks:
        end = chunk.end_index
        if end <= from_index:
            continue
        out.append(chunk)
        total += end - max(chunk.first_index, from_index)
        if total >= max_events:
            break
    return out


def resume_from(next_index: int, seqs: Iterable[int]) -> ResumeState:
    """A :class:`ResumeState` from the session's end index and its stored
    seqs in ascending order (negative seqs are ignored)."""
    next_seq = 0
    above: list[int] = []
    for seq in seqs:
        if seq < next_seq:
            continue
        if seq == next_seq:
            next_seq += 1
        else:
            above.append(seq)
    return ResumeState(next_index=next_index, next_seq=next_seq, seqs_above=tuple(above))


def check_status(sessions: Iterable[SessionRecord]) -> None:
    for record in sessions:
        if record.status not in STATUSES:
            raise StorageError(
                f"session {record.session_id!r}: status {record.status!r} is not one of {STATUSES}"
            )


def prefix_end(prefix: str) -> str:
    """The smallest string above every string that starts with ``prefix``
    (its last character bumped by one): ``prefix <= id < prefix_end`` is a
    prefix match an index can serve."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def id_range(prefix: str, placeholder: str) -> tuple[list[str], list[Any]]:
    """SQL conditions and arguments for ``session_id`` starting with
    ``prefix`` (none for an empty prefix)."""
    if not prefix:
        return [], []
    return (
        [f"session_id >= {placeholder}", f"session_id < {placeholder}"],
        [prefix, prefix_end(prefix)],
    )
